//! The seed's `boom`: calling `run` from inside a running loop is refused
//! before anything is created, with asyncio's message.
//!
//! `cargo run --example nested_run` (add `AIO_DEBUG=1` to see the note that
//! the refused future was never polled, with a logger installed).

fn main() -> Result<(), aio::Error> {
    aio::run(async {
        let refused = aio::run(async { println!("never printed") });
        match refused {
            Err(err) => println!("boom: {err} ({:?})", err.kind()),
            Ok(()) => println!("unexpected: the nested run ran"),
        }
    })
}
