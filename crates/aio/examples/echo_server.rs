//! A TCP echo server: every client gets its bytes back, many clients at
//! once, each served by a task of its own (asyncio's echo server).
//!
//! `cargo run --example echo_server [ADDR]` (default `127.0.0.1:8888`);
//! Ctrl-C stops it. Try it with `cargo run --example echo_client ADDR`.

use std::io;
use std::process::ExitCode;

use aio::net::TcpListener;

async fn serve(addr: String) -> io::Result<()> {
    let listener = TcpListener::bind(addr.as_str()).await?;
    println!("echo server listening on {}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        aio::create_task(async move {
            // `&TcpStream` reads and writes, so the stream echoes into itself.
            match futures_lite::io::copy(&stream, &mut &stream).await {
                Ok(bytes) => println!("{peer}: echoed {bytes} bytes"),
                Err(err) => eprintln!("{peer}: {err}"),
            }
        });
    }
}

fn main() -> ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8888".to_owned());
    match aio::run(serve(addr)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(err)) => {
            eprintln!("echo server: {err}");
            ExitCode::FAILURE
        }
        Err(err) if err.kind() == aio::ErrorKind::Interrupted => {
            println!("stopped by Ctrl-C");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("echo server: {err}");
            ExitCode::FAILURE
        }
    }
}
