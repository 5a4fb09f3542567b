//! `aio-bench <runtime> <workload> [--quick]`: runs one workload once, in
//! this process, on one runtime, and prints one line for `cargo xtask bench`:
//!
//! ```text
//! workload=<name> runtime=<rt> ns=<elapsed total nanoseconds> ops=<count>[ bytes_per_op=<n>]
//! ```
//!
//! `aio-bench --list` prints the workload names, one a line. `--quick`
//! divides the timed workloads' counts by ten. A runtime without the
//! workload (the floors have only the I/O and process ones, `floor-blocking`
//! only `tcp_churn` and `udp_pingpong`) prints `unsupported`.
//!
//! # How each workload maps onto each runtime
//!
//! aio runs on a fresh `SelectorEventLoop`; tokio on a current-thread runtime
//! (`enable_all`) with a `LocalSet`; async-executor on a `LocalExecutor`
//! driven by `async_io::block_on`. In the peers the workload's body runs as a
//! spawned task, as aio's main coroutine does under `run_until_complete`.
//!
//! | workload | aio | tokio | async-executor |
//! |---|---|---|---|
//! | `call_soon_chain` (1 M) | callbacks, each `call_soon`-ing the next; the last calls `stop()`; timed `run_forever` | tokio has no callbacks: local tasks, each `spawn_local`-ing the next | no callbacks: tasks, each `spawn`-ing the next (detached) |
//! | `yield` (1 M) | `aio::sleep(ZERO).await` in one task | `tokio::task::yield_now().await` | `futures_lite::future::yield_now().await` |
//! | `spawn_await` (200 k) | `aio::create_task`, 1,000 at a time, each batch awaited | `spawn_local` + `JoinHandle` | `LocalExecutor::spawn` + `Task` |
//! | `timers` (100 k) | tasks each awaiting `aio::sleep(0–10 ms)` inside an `async` block, all awaited | same with `tokio::time::sleep` | same with `async_io::Timer::after` |
//! | `threadsafe` (200 k) | `ThreadsafeLoop::call_soon_threadsafe` from a std thread; `run_forever` until the last stops it | `runtime::Handle::spawn` from a std thread (push + driver wake-up) | `spawn` on an `Arc<Executor>` from a std thread (a `LocalExecutor` cannot be reached from another thread) |
//! | `task_bytes` (10 k) | live bytes per task parked on `pending()` | `spawn_local` | `LocalExecutor::spawn` |
//! | `timer_bytes` (10 k) | live bytes per boxed `aio::sleep(1 h+)` polled once | boxed `tokio::time::Sleep` | boxed `async_io::Timer` |
//! | `tcp_pingpong` (20 k), `tcp_echo` (16 × 2 k), `tcp_echo_64k` (16 × 200) | `aio::net::TcpStream`, `futures_lite`'s `write_all` + `read_exact` | `tokio::net::TcpStream`, tokio's `write_all` + `read_exact` | `Async<std::net::TcpStream>`, `futures_lite`'s `write_all` + `read_exact` |
//! | `subprocess` (1 k), `subprocess_16` (1 k, 16 at once) | `aio::process::Command::new("true").spawn()?.wait()` under the policy's default child watcher | `tokio::process::Command`, the same calls | unsupported (no subprocesses; the floor: `posix_spawnp` + `waitpid`, `src/subprocess.rs`) |
//! | `run_overhead` (10 k) | `aio::run(async {})`: a loop from the policy, run, shut down, closed (as `asyncio.run`) | a current-thread runtime built (`enable_all`), `block_on(async {})`, dropped (as `#[tokio::main]`) | a `LocalExecutor`, `block_on(executor.run(async {}))` (async-io's reactor is a process-wide singleton: nothing to make per run) |
//! | `timer_cancel` (1 M) | `call_later(1 h, cb)` then `TimerHandle::cancel` | no timer handles: `tokio::time::sleep(1 h)`, pinned, polled once (into the wheel), dropped | `async_io::Timer::after(1 h)`, polled once, dropped |
//! | `tcp_churn` (10 k) | a server task accepts and drops each connection; the main task connects, reads to EOF, drops | the same with tokio's sockets | the same with `Async<TcpListener>` / `Async<TcpStream>` |
//! | `udp_pingpong` (20 k) | two connected `aio::net::UdpSocket`s, a client task (`send`, `recv`) and a server task (`recv`, `send`) | `tokio::net::UdpSocket`, the same | `Async<std::net::UdpSocket>`, the same |
//! | `idle_conn_bytes` (1 k) | live bytes per connected pair (both ends) made by `connect` + `accept` and kept open | the same | the same |
//!
//! The `floor` and `floor-epoll` of `tcp_churn` and `udp_pingpong` are the
//! event-driven loop of the TCP floors (below) running the same program:
//! a connector (connect, read to EOF, close) and an acceptor (accept,
//! close), or a UDP client and server, each a state machine stepped when
//! the poller reports the readiness it waits for (`src/floor_churn_udp.rs`).
//! `floor-blocking`, for these two only, is blocking std sockets in program
//! order on one thread, no poller at all (`src/floor.rs`): a reference no
//! event loop can reach. CPython's asyncio and uvloop run the same
//! workloads in `benches/python/aio_bench.py`, mapped in its docstring.
//!
//! The TCP workloads run client and server in the same process on the same
//! loop, so every runtime (and the floor) is measured the same way: the
//! main task connects `N` loopback connections and accepts them (untimed),
//! then creates a client task and a server task per connection, clients
//! and servers alternating, and awaits them all. A client writes its
//! message and reads the echo back in full; a server reads a whole message
//! and writes it back; each does its connection's share of the round
//! trips. Every stream has `TCP_NODELAY` on (aio's default; set by hand on
//! the peers' streams). The report's figure is nanoseconds per round trip
//! (all connections together for `tcp_echo`). The `floor` column is no
//! runtime: a hand-written single-threaded loop on `polling` with
//! edge-triggered registrations, which tries every operation first and
//! waits only when every endpoint would block (`src/floor.rs`);
//! `floor-epoll` is the same loop on epoll(7) by hand, without the system
//! calls `polling` adds around each wait. Both ends on one thread mean a
//! round trip costs the kernel work of both peers, with no cross-CPU
//! wake-up.
//!
//! In `timers` every runtime creates its sleep inside the task's `async`
//! block, so every deadline counts from the task's first poll: asyncio's
//! `sleep` starts its timer when awaited, and tokio's and async-io's start
//! theirs when created, so wrapping keeps the three comparable.
//!
//! The counted events of `call_soon_chain` and `threadsafe` tick a
//! thread-local countdown, so no runtime pays for an atomic or a channel the
//! others do not. Memory is weighed by the crate's counting global allocator
//! (the system allocator plus a running total), switched on only while
//! weighing.

use std::process::ExitCode;

use aio_benches::{Runtime, Workload};

const USAGE: &str = "usage: aio-bench <runtime> <workload> [--quick]
       aio-bench --list
runtimes: aio, tokio, async-executor, floor, floor-epoll, floor-blocking";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--list") {
        for workload in Workload::ALL {
            println!("{workload}");
        }
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }

    let quick = args.iter().any(|arg| arg == "--quick");
    let positional: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|arg| *arg != "--quick")
        .collect();
    let [runtime, workload] = positional[..] else {
        eprintln!("aio-bench: expected a runtime and a workload\n{USAGE}");
        return ExitCode::from(2);
    };
    let Some(runtime) = Runtime::from_name(runtime) else {
        eprintln!("aio-bench: unknown runtime `{runtime}`\n{USAGE}");
        return ExitCode::from(2);
    };
    let Some(workload) = Workload::from_name(workload) else {
        let known: Vec<&str> = Workload::ALL.iter().map(|workload| workload.name()).collect();
        eprintln!(
            "aio-bench: unknown workload `{workload}`; known: {}",
            known.join(", ")
        );
        return ExitCode::from(2);
    };

    if !runtime.supports(workload) {
        println!("unsupported");
        return ExitCode::SUCCESS;
    }
    match runtime.measure(workload, quick) {
        Ok(measurement) => {
            println!("{}", measurement.line(workload, runtime));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("aio-bench: {workload} on {runtime} failed: {error}");
            ExitCode::FAILURE
        }
    }
}
