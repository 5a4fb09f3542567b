//! The workloads behind `cargo xtask bench`: the same small programs written
//! for aio's selector loop and for two peers, tokio's current-thread runtime
//! (on a `LocalSet`) and async-executor's `LocalExecutor` (on
//! `async_io::block_on`), so that every aio figure is read as a ratio to a
//! peer measured on the same machine in the same run.
//!
//! **Place in the stack.** On top of everything: this crate uses aio only
//! through the facade, as a user program would, and nothing depends on it.
//! `xtask` runs its binary, `aio-bench`, once per measurement, each run in a
//! fresh process so that no runtime inherits another's heap or caches.
//!
//! | workload          | count  | what is timed or weighed |
//! |-------------------|--------|--------------------------|
//! | `call_soon_chain` | 1 M    | callbacks (aio) or tasks (peers), each scheduling the next |
//! | `yield`           | 1 M    | one task yielding to its scheduler |
//! | `spawn_await`     | 200 k  | spawn 1,000 trivial tasks, await them all, repeat |
//! | `timers`          | 100 k  | concurrent tasks sleeping 0–10 ms (deterministic LCG) |
//! | `threadsafe`      | 200 k  | callbacks posted from another thread, counted on the loop |
//! | `task_bytes`      | 10 k   | live heap bytes per parked task |
//! | `timer_bytes`     | 10 k   | live heap bytes per registered, pending sleep |
//! | `tcp_pingpong`    | 20 k   | round trips of 1 KiB on one loopback connection |
//! | `tcp_echo`        | 32 k   | round trips of 1 KiB, 16 connections at once (2,000 each) |
//! | `tcp_echo_64k`    | 3.2 k  | round trips of 64 KiB, 16 connections at once (200 each) |
//! | `subprocess`      | 1 k    | spawn `true` and wait for it, one at a time |
//! | `subprocess_16`   | 1 k    | spawn `true` and wait for it, 16 children at once |
//! | `run_overhead`    | 10 k   | make a loop, run an empty main on it, close it |
//! | `timer_cancel`    | 1 M    | register a timer an hour away and cancel it |
//! | `tcp_churn`       | 10 k   | connect, accept and close loopback connections, one at a time |
//! | `udp_pingpong`    | 20 k   | round trips of 1 KiB datagrams between two loopback sockets |
//! | `idle_conn_bytes` | 1 k    | live heap bytes per idle connected loopback pair (both ends) |
//!
//! How each workload maps onto each runtime is written at the top of
//! `src/bin/aio-bench.rs` and next to the code in the runtime modules. A
//! fourth column, `floor` (`floor.rs`, `floor_churn_udp.rs`), is no runtime
//! at all: the least work the OS allows, written by hand, for the workloads
//! where that means something; a fifth, `floor-epoll`, is the I/O floor on
//! epoll(7) without `polling`; a sixth, `floor-blocking`, is `tcp_churn` and
//! `udp_pingpong` on blocking sockets in program order, a reference no event
//! loop can reach. CPython's asyncio and uvloop run the same workloads from
//! `python/aio_bench.py`, started by `cargo xtask bench` in a virtualenv.
//!
//! # Example
//!
//! ```no_run
//! use aio_benches::{Runtime, Workload};
//!
//! let measurement = Runtime::Aio.measure(Workload::Yield, true)?;
//! println!("{}", measurement.line(Workload::Yield, Runtime::Aio));
//! # Ok::<(), aio_benches::BoxError>(())
//! ```

mod aio_loop;
mod async_executor_local;
pub mod countdown;
#[cfg(not(unix))]
mod elsewhere;
#[cfg(unix)]
mod floor;
#[cfg(unix)]
mod floor_churn_udp;
pub mod live_bytes;
#[cfg(unix)]
mod subprocess;
#[cfg(not(unix))]
use elsewhere::{floor, subprocess};
mod tokio_current_thread;
mod workload;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

pub use workload::{Lcg, Measurement, Runtime, TcpShape, Workload, pattern};

/// What a workload returns when a runtime refuses to run it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The global allocator of every binary linking this crate: the system
/// allocator, counting live bytes while a [`live_bytes::LiveBytes`] probe is
/// open. Declared here rather than in the binary so that the runtime modules
/// can open probes.
#[global_allocator]
static ALLOCATOR: live_bytes::CountingAllocator = live_bytes::CountingAllocator;

/// Tasks in the spawn-then-await batches of `spawn_await`.
pub const SPAWN_BATCH: u64 = 1_000;

/// `timers` sleeps between zero and this long.
pub const TIMER_SPREAD: std::time::Duration = std::time::Duration::from_millis(10);

/// How far in the future `timer_bytes` sets its timers: far enough that none
/// fires while it weighs them.
pub const PARKED_TIMER_DELAY: std::time::Duration = std::time::Duration::from_secs(3_600);

/// How far in the future `timer_cancel` sets each timer it cancels.
pub const CANCELLED_TIMER_DELAY: std::time::Duration = std::time::Duration::from_secs(3_600);

/// Bytes per datagram in `udp_pingpong`.
pub const UDP_MESSAGE_SIZE: usize = 1024;

/// A task that counts its first poll on the [`countdown`] and then never
/// completes: what `task_bytes` parks by the thousand.
pub async fn parked_task() {
    countdown::tick();
    std::future::pending::<()>().await;
}

/// Polls `future` once, with the calling task's waker, and completes: it
/// registers one timer without awaiting it.
pub async fn poll_once<F>(mut future: Pin<&mut F>)
where
    F: Future + ?Sized,
{
    std::future::poll_fn(|cx| {
        let _ = future.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
}

/// Polls every future of `futures` once, with the calling task's waker, and
/// completes: it registers thousands of timers without awaiting any of them.
pub async fn poll_each_once<F>(futures: &mut [Pin<Box<F>>])
where
    F: Future + ?Sized,
{
    std::future::poll_fn(|cx| {
        for future in futures.iter_mut() {
            // A future that happens to be ready is simply done; the caller
            // only cares that each one has been registered.
            let _ = future.as_mut().poll(cx);
        }
        Poll::Ready(())
    })
    .await;
}
