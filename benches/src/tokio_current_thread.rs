//! The workloads on tokio's current-thread runtime with a `LocalSet`: tokio's
//! nearest match to a single-threaded event loop running `!Send` tasks.
//!
//! Each run builds a fresh runtime; only `LocalSet::block_on` is timed. The
//! workload's body runs as a spawned local task, as aio's main coroutine
//! runs as a task under `run_until_complete`, so that both are woken through
//! their scheduler rather than one of them being polled directly by the
//! driver.

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::runtime::Runtime;
use tokio::task::LocalSet;

use crate::live_bytes::LiveBytes;
use crate::{
    BoxError, CANCELLED_TIMER_DELAY, Lcg, Measurement, PARKED_TIMER_DELAY, SPAWN_BATCH, TIMER_SPREAD,
    UDP_MESSAGE_SIZE, Workload, countdown, parked_task, pattern, poll_each_once, poll_once,
};

pub(crate) fn measure(workload: Workload, count: u64) -> Result<Measurement, BoxError> {
    if workload == Workload::RunOverhead {
        return run_overhead(count);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = LocalSet::new();
    match workload {
        Workload::CallSoonChain => call_soon_chain(&runtime, &local, count),
        Workload::Yield => yield_now(&runtime, &local, count),
        Workload::SpawnAwait => spawn_await(&runtime, &local, count),
        Workload::Timers => timers(&runtime, &local, count),
        Workload::Threadsafe => threadsafe(&runtime, &local, count),
        Workload::TaskBytes => task_bytes(&runtime, &local, count),
        Workload::TimerBytes => timer_bytes(&runtime, &local, count),
        Workload::TcpPingpong | Workload::TcpEcho | Workload::TcpEcho64k => {
            tcp(&runtime, &local, workload, count)
        }
        Workload::Subprocess | Workload::Subprocess16 => {
            crate::subprocess::tokio(&runtime, &local, workload, count)
        }
        Workload::RunOverhead => unreachable!("handled above"),
        Workload::TimerCancel => timer_cancel(&runtime, &local, count),
        Workload::TcpChurn => tcp_churn(&runtime, &local, count),
        Workload::UdpPingpong => udp_pingpong(&runtime, &local, count),
        Workload::IdleConnBytes => idle_conn_bytes(&runtime, &local, count),
    }
}

/// Times `local.block_on` of a local task running `main`.
fn run_timed<F>(runtime: &Runtime, local: &LocalSet, main: F) -> Result<(F::Output, Duration), BoxError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let start = Instant::now();
    let main = local.spawn_local(main);
    let output = local.block_on(runtime, main)?;
    Ok((output, start.elapsed()))
}

/// tokio has no callbacks, so the chain is of tasks: `links` local tasks,
/// each spawning the next; the last ticks the countdown the driver awaits.
fn call_soon_chain(runtime: &Runtime, local: &LocalSet, links: u64) -> Result<Measurement, BoxError> {
    fn link(remaining: u64) {
        if remaining <= 1 {
            countdown::tick();
            return;
        }
        // Detached: dropping a JoinHandle does not cancel the task.
        drop(tokio::task::spawn_local(async move { link(remaining - 1) }));
    }

    countdown::arm(1);
    let start = Instant::now();
    local.block_on(runtime, async move {
        drop(tokio::task::spawn_local(async move { link(links) }));
        countdown::finished().await;
    });
    Ok(Measurement::timed(start.elapsed(), links))
}

/// One task awaiting `tokio::task::yield_now`, `yields` times.
fn yield_now(runtime: &Runtime, local: &LocalSet, yields: u64) -> Result<Measurement, BoxError> {
    let ((), elapsed) = run_timed(runtime, local, async move {
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
    })?;
    Ok(Measurement::timed(elapsed, yields))
}

/// `tasks` trivial local tasks, spawned and awaited in batches.
fn spawn_await(runtime: &Runtime, local: &LocalSet, tasks: u64) -> Result<Measurement, BoxError> {
    let (sum, elapsed) = run_timed(runtime, local, async move {
        let mut batch = Vec::with_capacity(SPAWN_BATCH as usize);
        let mut sum = 0u64;
        let mut next = 0;
        while next < tasks {
            let end = tasks.min(next + SPAWN_BATCH);
            batch.extend((next..end).map(|i| tokio::task::spawn_local(async move { i })));
            for task in batch.drain(..) {
                sum += task.await?;
            }
            next = end;
        }
        Ok::<u64, tokio::task::JoinError>(sum)
    })?;
    std::hint::black_box(sum?);
    Ok(Measurement::timed(elapsed, tasks))
}

/// `timers` local tasks in `tokio::time::sleep` for pseudo-random delays up
/// to `TIMER_SPREAD`, all awaited.
fn timers(runtime: &Runtime, local: &LocalSet, timers: u64) -> Result<Measurement, BoxError> {
    let (result, elapsed) = run_timed(runtime, local, async move {
        let mut lcg = Lcg::new();
        let sleepers: Vec<_> = (0..timers)
            .map(|_| {
                let delay = lcg.delay_up_to(TIMER_SPREAD);
                tokio::task::spawn_local(async move { tokio::time::sleep(delay).await })
            })
            .collect();
        for sleeper in sleepers {
            sleeper.await?;
        }
        Ok::<(), tokio::task::JoinError>(())
    })?;
    result?;
    Ok(Measurement::timed(elapsed, timers))
}

/// `callbacks` posted from a std thread with `Handle::spawn`: tokio's way to
/// hand work to a current-thread runtime from outside, and like
/// `call_soon_threadsafe` a push onto a shared queue plus a wake-up of the
/// driver. Each posted task ticks the countdown on the runtime's thread.
fn threadsafe(runtime: &Runtime, local: &LocalSet, callbacks: u64) -> Result<Measurement, BoxError> {
    countdown::arm(callbacks);
    let remote = runtime.handle().clone();
    let start = Instant::now();
    let poster = std::thread::spawn(move || {
        for _ in 0..callbacks {
            drop(remote.spawn(async {
                countdown::tick();
            }));
        }
    });
    local.block_on(runtime, countdown::finished());
    let elapsed = start.elapsed();
    poster.join().map_err(|_| "the posting thread panicked")?;
    Ok(Measurement::timed(elapsed, callbacks))
}

/// Live bytes per local task parked on a future that never completes.
fn task_bytes(runtime: &Runtime, local: &LocalSet, tasks: u64) -> Result<Measurement, BoxError> {
    let (bytes_per_task, elapsed) = run_timed(runtime, local, async move {
        // One task through the same path first, so that whatever the runtime
        // allocates once, lazily, is not charged to the measured tasks.
        countdown::arm(1);
        let warm_up = tokio::task::spawn_local(parked_task());
        countdown::finished().await;

        let mut parked = Vec::with_capacity(tasks as usize);
        countdown::arm(tasks);
        let probe = LiveBytes::open();
        parked.extend((0..tasks).map(|_| tokio::task::spawn_local(parked_task())));
        countdown::finished().await;
        let bytes_per_task = probe.bytes_per(tasks);
        drop(probe);

        for task in parked.iter().chain([&warm_up]) {
            task.abort();
        }
        bytes_per_task
    })?;
    Ok(Measurement::weighed(elapsed, tasks, bytes_per_task))
}

/// Live bytes per `tokio::time::Sleep`, boxed and polled once so that it is
/// registered with the timer wheel.
fn timer_bytes(runtime: &Runtime, local: &LocalSet, timers: u64) -> Result<Measurement, BoxError> {
    let (bytes_per_timer, elapsed) = run_timed(runtime, local, async move {
        let mut warm_up = [Box::pin(tokio::time::sleep(PARKED_TIMER_DELAY))];
        poll_each_once(&mut warm_up).await;
        drop(warm_up);

        let mut lcg = Lcg::new();
        let mut sleeps = Vec::with_capacity(timers as usize);
        let probe = LiveBytes::open();
        sleeps.extend((0..timers).map(|_| {
            Box::pin(tokio::time::sleep(
                PARKED_TIMER_DELAY + lcg.delay_up_to(PARKED_TIMER_DELAY),
            ))
        }));
        poll_each_once(&mut sleeps).await;
        // One real wait, so that a runtime that registers timers lazily has
        // taken them all in before they are weighed.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let bytes_per_timer = probe.bytes_per(timers);
        drop(probe);
        bytes_per_timer
    })?;
    Ok(Measurement::weighed(elapsed, timers, bytes_per_timer))
}

/// The TCP workloads: `shape.connections` loopback connections made by
/// `tokio::net::TcpStream::connect` and `TcpListener::accept`, with
/// `set_nodelay(true)` on both ends (tokio leaves Nagle on; aio turns it
/// off), then a client and a server local task per connection, each doing
/// its share of `round_trips`. Only the round trips are timed, from the
/// first task spawned to the last one awaited.
fn tcp(
    runtime: &Runtime,
    local: &LocalSet,
    workload: Workload,
    round_trips: u64,
) -> Result<Measurement, BoxError> {
    let shape = workload.tcp_shape().ok_or("not a TCP workload")?;
    let (result, _) = run_timed(runtime, local, async move {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let mut connections = Vec::new();
        for _ in 0..shape.connections {
            let client = TcpStream::connect(addr).await?;
            let (server, _) = listener.accept().await?;
            client.set_nodelay(true)?;
            server.set_nodelay(true)?;
            connections.push((client, server));
        }

        // The buffers are made before the clock starts, as the floor's are.
        let buffers: Vec<_> = connections
            .iter()
            .map(|_| (shape.message(), vec![0; shape.message_size]))
            .collect();
        let each = shape.round_trips_each(round_trips);
        let start = Instant::now();
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for ((client, server), (client_buffer, server_buffer)) in connections.into_iter().zip(buffers) {
            clients.push(tokio::task::spawn_local(tcp_client(client, client_buffer, each)));
            servers.push(tokio::task::spawn_local(tcp_server(server, server_buffer, each)));
        }
        let mut echoes = Vec::new();
        for client in clients {
            echoes.push(client.await??);
        }
        for server in servers {
            server.await??;
        }
        let elapsed = start.elapsed();
        for echo in &echoes {
            shape.check_echo(echo)?;
        }
        Ok::<Duration, BoxError>(elapsed)
    })?;
    Ok(Measurement::timed(result?, round_trips))
}

/// Writes `buffer` (the message) and reads the echo back into it,
/// `round_trips` times; returns the buffer for checking.
async fn tcp_client(mut stream: TcpStream, mut buffer: Vec<u8>, round_trips: u64) -> io::Result<Vec<u8>> {
    for _ in 0..round_trips {
        stream.write_all(&buffer).await?;
        stream.read_exact(&mut buffer).await?;
    }
    Ok(buffer)
}

/// Reads a whole message into `buffer` and writes it back, `round_trips`
/// times.
async fn tcp_server(mut stream: TcpStream, mut buffer: Vec<u8>, round_trips: u64) -> io::Result<()> {
    for _ in 0..round_trips {
        stream.read_exact(&mut buffer).await?;
        stream.write_all(&buffer).await?;
    }
    Ok(())
}

/// What `#[tokio::main(flavor = "current_thread")]` does, `runs` times:
/// build a current-thread runtime (`enable_all`: the I/O and time drivers),
/// `block_on` an empty main, drop the runtime.
fn run_overhead(runs: u64) -> Result<Measurement, BoxError> {
    let start = Instant::now();
    for _ in 0..runs {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {});
    }
    Ok(Measurement::timed(start.elapsed(), runs))
}

/// tokio has no timer handles: a `sleep` an hour away, polled once (which
/// puts it in the timer wheel) and dropped (which takes it out), `timers`
/// times.
fn timer_cancel(runtime: &Runtime, local: &LocalSet, timers: u64) -> Result<Measurement, BoxError> {
    let ((), elapsed) = run_timed(runtime, local, async move {
        for _ in 0..timers {
            let sleep = std::pin::pin!(tokio::time::sleep(CANCELLED_TIMER_DELAY));
            poll_once(sleep).await;
        }
    })?;
    Ok(Measurement::timed(elapsed, timers))
}

/// `connections` loopback connections, one at a time: the main task
/// connects and reads until the server's close; a server task accepts each
/// connection and closes it at once.
fn tcp_churn(runtime: &Runtime, local: &LocalSet, connections: u64) -> Result<Measurement, BoxError> {
    let (result, _) = run_timed(runtime, local, async move {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let start = Instant::now();
        let server = tokio::task::spawn_local(async move {
            for _ in 0..connections {
                drop(listener.accept().await?);
            }
            Ok::<(), io::Error>(())
        });
        for _ in 0..connections {
            let mut client = TcpStream::connect(addr).await?;
            if client.read(&mut [0; 1]).await? != 0 {
                return Err("the server end sent data".into());
            }
        }
        server.await??;
        Ok::<Duration, BoxError>(start.elapsed())
    })?;
    Ok(Measurement::timed(result?, connections))
}

/// Two connected loopback UDP sockets, a client task sending 1 KiB and
/// waiting for the echo, a server task echoing, `round_trips` times.
fn udp_pingpong(runtime: &Runtime, local: &LocalSet, round_trips: u64) -> Result<Measurement, BoxError> {
    let (result, _) = run_timed(runtime, local, async move {
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        client.connect(server.local_addr()?).await?;
        server.connect(client.local_addr()?).await?;
        let start = Instant::now();
        let client = tokio::task::spawn_local(async move {
            let mut message = pattern(UDP_MESSAGE_SIZE);
            for _ in 0..round_trips {
                client.send(&message).await?;
                if client.recv(&mut message).await? != UDP_MESSAGE_SIZE {
                    return Err(io::Error::other("a datagram came back short"));
                }
            }
            Ok(message)
        });
        let server = tokio::task::spawn_local(async move {
            let mut buffer = vec![0; UDP_MESSAGE_SIZE];
            for _ in 0..round_trips {
                let received = server.recv(&mut buffer).await?;
                server.send(&buffer[..received]).await?;
            }
            Ok::<(), io::Error>(())
        });
        let message = client.await??;
        server.await??;
        let elapsed = start.elapsed();
        if message != pattern(UDP_MESSAGE_SIZE) {
            return Err("the echoed datagram came back changed".into());
        }
        Ok::<Duration, BoxError>(elapsed)
    })?;
    Ok(Measurement::timed(result?, round_trips))
}

/// Live bytes per connected loopback pair (both ends), idle: made by
/// `TcpStream::connect` and `TcpListener::accept` and kept open.
fn idle_conn_bytes(runtime: &Runtime, local: &LocalSet, connections: u64) -> Result<Measurement, BoxError> {
    let (result, elapsed) = run_timed(runtime, local, async move {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        // One pair through the same path first.
        let warm_up = (TcpStream::connect(addr).await?, listener.accept().await?);
        let mut pairs = Vec::with_capacity(connections as usize);
        let probe = LiveBytes::open();
        for _ in 0..connections {
            let client = TcpStream::connect(addr).await?;
            let (server, _) = listener.accept().await?;
            pairs.push((client, server));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        let bytes_per_pair = probe.bytes_per(connections);
        drop(probe);
        drop((pairs, warm_up));
        Ok::<i64, BoxError>(bytes_per_pair)
    })?;
    Ok(Measurement::weighed(elapsed, connections, result?))
}
