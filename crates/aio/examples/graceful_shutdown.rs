//! A server that shuts down gracefully: on SIGTERM or Ctrl-C it stops
//! accepting (new connects are refused), lets the open connections finish,
//! and exits 0.
//!
//! `cargo run --example graceful_shutdown [ADDR]` (default
//! `127.0.0.1:8889`). Connect with `nc 127.0.0.1 8889`, type a few lines
//! (they are echoed), then `kill -TERM <pid>` or press Ctrl-C: the server
//! stops listening and waits for you to end the session (Ctrl-D). A second
//! Ctrl-C while it waits ends the process at once (aio's `Runner` rule).
//!
//! On Unix the signals go through `EventLoop::add_signal_handler`, so the
//! handlers run on the loop as ordinary callbacks. On Windows the loop has no
//! signals (`add_signal_handler` answers `Unsupported`): Ctrl-C then ends
//! `aio::run` with `ErrorKind::Interrupted`, which also stops the server
//! (without draining).

use std::cell::{Cell, RefCell};
use std::io;
use std::process::ExitCode;
use std::rc::Rc;
use std::task::{Poll, Waker};

use aio::net::TcpListener;
use futures_lite::future;

/// SIGINT and SIGTERM have these numbers on every Unix (POSIX).
#[cfg(unix)]
const SIGINT: i32 = 2;
#[cfg(unix)]
const SIGTERM: i32 = 15;

/// A one-way flag that tasks can wait on.
#[derive(Default)]
struct Event {
    set: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl Event {
    // Only the signal handlers set it, and only Unix has them.
    #[cfg_attr(not(unix), allow(dead_code))]
    fn set(&self) {
        self.set.set(true);
        for waker in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.set.get() {
                return Poll::Ready(());
            }
            self.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

/// The connections still open, and the tasks waiting for none to be.
#[derive(Default)]
struct Connections {
    open: Cell<usize>,
    waiters: RefCell<Vec<Waker>>,
}

impl Connections {
    fn opened(&self) {
        self.open.set(self.open.get() + 1);
    }

    fn closed(&self) {
        self.open.set(self.open.get() - 1);
        if self.open.get() == 0 {
            for waker in self.waiters.borrow_mut().drain(..) {
                waker.wake();
            }
        }
    }

    async fn drained(&self) {
        std::future::poll_fn(|cx| {
            if self.open.get() == 0 {
                return Poll::Ready(());
            }
            self.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

async fn serve(addr: String) -> io::Result<()> {
    let shutdown = Rc::new(Event::default());
    #[cfg(unix)]
    {
        let event_loop = aio::get_running_loop().map_err(io::Error::other)?;
        for (signum, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT (Ctrl-C)")] {
            let shutdown = shutdown.clone();
            event_loop
                .add_signal_handler(signum, move || {
                    println!("{name}: no new connections; waiting for the open ones");
                    shutdown.set();
                })
                .map_err(io::Error::other)?;
        }
    }

    let listener = TcpListener::bind(addr.as_str()).await?;
    println!(
        "listening on {} (pid {}); SIGTERM or Ctrl-C shuts down gracefully",
        listener.local_addr()?,
        std::process::id()
    );
    let connections = Rc::new(Connections::default());
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        let Some(accepted) = accepted else { break };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                eprintln!("accept: {err}");
                continue;
            }
        };
        println!("{peer}: connected");
        connections.opened();
        let connections = connections.clone();
        aio::create_task(async move {
            match futures_lite::io::copy(&stream, &mut &stream).await {
                Ok(bytes) => println!("{peer}: finished after {bytes} bytes"),
                Err(err) => println!("{peer}: {err}"),
            }
            drop(stream);
            connections.closed();
        });
    }
    // Closing the listener refuses new connects from here on.
    drop(listener);
    if connections.open.get() > 0 {
        println!(
            "waiting for {} open connection(s) to finish",
            connections.open.get()
        );
    }
    connections.drained().await;
    println!("all connections finished; exiting");
    Ok(())
}

fn main() -> ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8889".to_owned());
    match aio::run(serve(addr)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(err)) => {
            eprintln!("graceful_shutdown: {err}");
            ExitCode::FAILURE
        }
        Err(err) if err.kind() == aio::ErrorKind::Interrupted => {
            println!("interrupted by Ctrl-C");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("graceful_shutdown: {err}");
            ExitCode::FAILURE
        }
    }
}
