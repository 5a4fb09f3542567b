//! Many concurrent echo clients: each connects, sends messages of its own,
//! and checks that every byte comes back. Exits non-zero on any mismatch
//! or error.
//!
//! `cargo run --example echo_client [ADDR [CLIENTS [ROUNDS]]]`. With no
//! address it starts an echo server of its own on `127.0.0.1` (port 0), so
//! it runs standalone; give the address of `echo_server` to test that one.
//! Defaults: 100 clients, 50 rounds of 1 KiB each.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;

use aio::net::{TcpListener, TcpStream};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// An in-process echo server on a free loopback port.
async fn start_echo_server() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    aio::create_task(async move {
        while let Ok((stream, _)) = listener.accept().await {
            aio::create_task(async move {
                let _ = futures_lite::io::copy(&stream, &mut &stream).await;
            });
        }
    });
    Ok(addr)
}

/// One client: `rounds` messages of 1 KiB, each checked against its echo.
async fn client(addr: SocketAddr, id: usize, rounds: usize) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut echo = vec![0; 1024];
    for round in 0..rounds {
        let message: Vec<u8> = (0..1024).map(|i| (id * 31 + round * 7 + i) as u8).collect();
        stream.write_all(&message).await?;
        stream.read_exact(&mut echo).await?;
        if echo != message {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("client {id}: round {round} came back different"),
            ));
        }
    }
    // Half-close: the server sees end of stream and closes its side.
    stream.close().await?;
    if stream.read(&mut echo).await? != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("client {id}: extra bytes"),
        ));
    }
    Ok(())
}

async fn run(addr: Option<String>, clients: usize, rounds: usize) -> io::Result<usize> {
    let addr = match addr {
        Some(addr) => std::net::ToSocketAddrs::to_socket_addrs(addr.as_str())?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing"))?,
        None => start_echo_server().await?,
    };
    println!("{clients} clients x {rounds} rounds of 1 KiB against {addr}");
    let tasks: Vec<_> = (0..clients)
        .map(|id| aio::create_task(client(addr, id, rounds)))
        .collect();
    let mut failures = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                eprintln!("{err}");
                failures += 1;
            }
            Err(err) => {
                eprintln!("a client task failed: {err}");
                failures += 1;
            }
        }
    }
    Ok(failures)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = args.next();
    let number = |arg: Option<String>, default: usize| arg.and_then(|a| a.parse().ok()).unwrap_or(default);
    let clients = number(args.next(), 100);
    let rounds = number(args.next(), 50);
    match aio::run(run(addr, clients, rounds)) {
        Ok(Ok(0)) => {
            println!("all {clients} clients got every echo back");
            ExitCode::SUCCESS
        }
        Ok(Ok(failures)) => {
            eprintln!("{failures} of {clients} clients failed");
            ExitCode::FAILURE
        }
        Ok(Err(err)) => {
            eprintln!("echo client: {err}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("echo client: {err}");
            ExitCode::FAILURE
        }
    }
}
