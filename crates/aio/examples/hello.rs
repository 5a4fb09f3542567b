//! The seed program: print hello, sleep a second, print world.
//!
//! `cargo run --example hello`

use std::time::Duration;

fn main() -> Result<(), aio::Error> {
    aio::run(async {
        println!("hello");
        aio::sleep(Duration::from_secs(1)).await;
        println!("world");
    })
}
