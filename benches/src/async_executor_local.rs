//! The workloads on async-executor's `LocalExecutor`, driven by
//! `async_io::block_on` (smol's single-threaded setup), with `async_io::Timer`
//! for sleeping.
//!
//! Each run makes a fresh executor; only the `block_on` call is timed. The
//! workload's body runs as a spawned task, as aio's main coroutine runs as a
//! task under `run_until_complete`. The executor is shared through an `Rc`
//! because tasks that spawn tasks need to reach it.

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_executor::{Executor, LocalExecutor};
use async_io::{Async, Timer};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::live_bytes::LiveBytes;
use crate::{
    BoxError, CANCELLED_TIMER_DELAY, Lcg, Measurement, PARKED_TIMER_DELAY, SPAWN_BATCH, TIMER_SPREAD,
    UDP_MESSAGE_SIZE, Workload, countdown, parked_task, pattern, poll_each_once, poll_once,
};

type Local = Rc<LocalExecutor<'static>>;

pub(crate) fn measure(workload: Workload, count: u64) -> Result<Measurement, BoxError> {
    let executor: Local = Rc::new(LocalExecutor::new());
    let measurement = match workload {
        Workload::CallSoonChain => call_soon_chain(&executor, count),
        Workload::Yield => yield_now(&executor, count),
        Workload::SpawnAwait => spawn_await(&executor, count),
        Workload::Timers => timers(&executor, count),
        // A `LocalExecutor` cannot be reached from another thread at all.
        Workload::Threadsafe => threadsafe(count),
        Workload::TaskBytes => task_bytes(&executor, count),
        Workload::TimerBytes => timer_bytes(&executor, count),
        Workload::TcpPingpong | Workload::TcpEcho | Workload::TcpEcho64k => {
            return tcp(&executor, workload, count);
        }
        // `Runtime::supports` says no: smol's subprocesses are another crate.
        Workload::Subprocess | Workload::Subprocess16 => {
            return Err("async-executor has no subprocesses".into());
        }
        Workload::RunOverhead => run_overhead(count),
        Workload::TimerCancel => timer_cancel(&executor, count),
        Workload::TcpChurn => return tcp_churn(&executor, count),
        Workload::UdpPingpong => return udp_pingpong(&executor, count),
        Workload::IdleConnBytes => return idle_conn_bytes(&executor, count),
    };
    Ok(measurement)
}

/// Times `block_on(executor.run(task))` of a task running `main`.
fn run_timed<F>(executor: &Local, main: F) -> (F::Output, Duration)
where
    F: Future + 'static,
    F::Output: 'static,
{
    let start = Instant::now();
    let output = async_io::block_on(executor.run(executor.spawn(main)));
    (output, start.elapsed())
}

/// async-executor has no callbacks, so the chain is of tasks: `links`
/// detached tasks, each spawning the next; the last ticks the countdown the
/// driver awaits.
fn call_soon_chain(executor: &Local, links: u64) -> Measurement {
    fn link(executor: &Local, remaining: u64) {
        if remaining <= 1 {
            countdown::tick();
            return;
        }
        let next = Rc::clone(executor);
        executor.spawn(async move { link(&next, remaining - 1) }).detach();
    }

    countdown::arm(1);
    let first = Rc::clone(executor);
    let start = Instant::now();
    async_io::block_on(executor.run(async move {
        link(&first, links);
        countdown::finished().await;
    }));
    Measurement::timed(start.elapsed(), links)
}

/// One task awaiting `futures_lite::future::yield_now`, `yields` times.
fn yield_now(executor: &Local, yields: u64) -> Measurement {
    let ((), elapsed) = run_timed(executor, async move {
        for _ in 0..yields {
            futures_lite::future::yield_now().await;
        }
    });
    Measurement::timed(elapsed, yields)
}

/// `tasks` trivial tasks, spawned and awaited in batches.
fn spawn_await(executor: &Local, tasks: u64) -> Measurement {
    let spawner = Rc::clone(executor);
    let (sum, elapsed) = run_timed(executor, async move {
        let mut batch = Vec::with_capacity(SPAWN_BATCH as usize);
        let mut sum = 0u64;
        let mut next = 0;
        while next < tasks {
            let end = tasks.min(next + SPAWN_BATCH);
            batch.extend((next..end).map(|i| spawner.spawn(async move { i })));
            for task in batch.drain(..) {
                sum += task.await;
            }
            next = end;
        }
        sum
    });
    std::hint::black_box(sum);
    Measurement::timed(elapsed, tasks)
}

/// `timers` tasks awaiting `async_io::Timer::after` for pseudo-random delays
/// up to `TIMER_SPREAD`, all awaited.
fn timers(executor: &Local, timers: u64) -> Measurement {
    let spawner = Rc::clone(executor);
    let ((), elapsed) = run_timed(executor, async move {
        let mut lcg = Lcg::new();
        let sleepers: Vec<_> = (0..timers)
            .map(|_| {
                let delay = lcg.delay_up_to(TIMER_SPREAD);
                spawner.spawn(async move { Timer::after(delay).await })
            })
            .collect();
        for sleeper in sleepers {
            sleeper.await;
        }
    });
    Measurement::timed(elapsed, timers)
}

/// `callbacks` posted from a std thread by spawning onto a shared, `Arc`'d
/// `Executor` (the thread-safe sibling of `LocalExecutor`, run here by the
/// main thread alone): like `call_soon_threadsafe`, a push onto a shared
/// queue plus a wake-up of the thread that drives it. Each posted task ticks
/// the countdown on the driving thread.
fn threadsafe(callbacks: u64) -> Measurement {
    let executor = Arc::new(Executor::new());
    countdown::arm(callbacks);
    let remote = Arc::clone(&executor);
    let start = Instant::now();
    let poster = std::thread::spawn(move || {
        for _ in 0..callbacks {
            remote
                .spawn(async {
                    countdown::tick();
                })
                .detach();
        }
    });
    async_io::block_on(executor.run(countdown::finished()));
    let elapsed = start.elapsed();
    // The poster only spawns; it has nothing that could panic.
    poster.join().expect("the posting thread panicked");
    Measurement::timed(elapsed, callbacks)
}

/// Live bytes per task parked on a future that never completes.
fn task_bytes(executor: &Local, tasks: u64) -> Measurement {
    let spawner = Rc::clone(executor);
    let (bytes_per_task, elapsed) = run_timed(executor, async move {
        // One task through the same path first, so that whatever the executor
        // allocates once, lazily, is not charged to the measured tasks.
        countdown::arm(1);
        let warm_up = spawner.spawn(parked_task());
        countdown::finished().await;

        let mut parked = Vec::with_capacity(tasks as usize);
        countdown::arm(tasks);
        let probe = LiveBytes::open();
        parked.extend((0..tasks).map(|_| spawner.spawn(parked_task())));
        countdown::finished().await;
        let bytes_per_task = probe.bytes_per(tasks);
        drop(probe);

        // Dropping an async-executor task cancels it.
        drop(parked);
        drop(warm_up);
        bytes_per_task
    });
    Measurement::weighed(elapsed, tasks, bytes_per_task)
}

/// Live bytes per `async_io::Timer`, boxed and polled once so that it is
/// registered with the reactor.
fn timer_bytes(executor: &Local, timers: u64) -> Measurement {
    let (bytes_per_timer, elapsed) = run_timed(executor, async move {
        let mut warm_up = [Box::pin(Timer::after(PARKED_TIMER_DELAY))];
        poll_each_once(&mut warm_up).await;
        drop(warm_up);

        let mut lcg = Lcg::new();
        let mut sleeps = Vec::with_capacity(timers as usize);
        let probe = LiveBytes::open();
        sleeps.extend((0..timers).map(|_| {
            Box::pin(Timer::after(
                PARKED_TIMER_DELAY + lcg.delay_up_to(PARKED_TIMER_DELAY),
            ))
        }));
        poll_each_once(&mut sleeps).await;
        // One real wait: async-io queues new timers and moves them into its
        // timer map only when the reactor next runs, and they must be in
        // before they are weighed.
        Timer::after(Duration::from_millis(1)).await;
        let bytes_per_timer = probe.bytes_per(timers);
        drop(probe);
        bytes_per_timer
    });
    Measurement::weighed(elapsed, timers, bytes_per_timer)
}

/// The TCP workloads: `shape.connections` loopback connections made by
/// `Async::<TcpStream>::connect` and `Async::<TcpListener>::accept`, with
/// `set_nodelay(true)` on both ends (async-io leaves Nagle on; aio turns it
/// off), then a client and a server task per connection, each doing its
/// share of `round_trips`. Only the round trips are timed, from the first
/// task spawned to the last one awaited.
fn tcp(executor: &Local, workload: Workload, round_trips: u64) -> Result<Measurement, BoxError> {
    let shape = workload.tcp_shape().ok_or("not a TCP workload")?;
    let spawner = Rc::clone(executor);
    let (result, _) = run_timed(executor, async move {
        let listener = Async::<TcpListener>::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.get_ref().local_addr()?;
        let mut connections = Vec::new();
        for _ in 0..shape.connections {
            let client = Async::<TcpStream>::connect(addr).await?;
            let (server, _) = listener.accept().await?;
            client.get_ref().set_nodelay(true)?;
            server.get_ref().set_nodelay(true)?;
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
            clients.push(spawner.spawn(tcp_client(client, client_buffer, each)));
            servers.push(spawner.spawn(tcp_server(server, server_buffer, each)));
        }
        let mut echoes = Vec::new();
        for client in clients {
            echoes.push(client.await?);
        }
        for server in servers {
            server.await?;
        }
        let elapsed = start.elapsed();
        for echo in &echoes {
            shape.check_echo(echo)?;
        }
        Ok::<Duration, BoxError>(elapsed)
    });
    Ok(Measurement::timed(result?, round_trips))
}

/// Writes `buffer` (the message) and reads the echo back into it,
/// `round_trips` times; returns the buffer for checking.
async fn tcp_client(
    mut stream: Async<TcpStream>,
    mut buffer: Vec<u8>,
    round_trips: u64,
) -> io::Result<Vec<u8>> {
    for _ in 0..round_trips {
        stream.write_all(&buffer).await?;
        stream.read_exact(&mut buffer).await?;
    }
    Ok(buffer)
}

/// Reads a whole message into `buffer` and writes it back, `round_trips`
/// times.
async fn tcp_server(mut stream: Async<TcpStream>, mut buffer: Vec<u8>, round_trips: u64) -> io::Result<()> {
    for _ in 0..round_trips {
        stream.read_exact(&mut buffer).await?;
        stream.write_all(&buffer).await?;
    }
    Ok(())
}

/// smol's way to run a main, `runs` times: a fresh `LocalExecutor`,
/// `async_io::block_on(executor.run(main))` of an empty main, dropped.
/// async-io's reactor (its poller and timer map) is a process-wide
/// singleton made on first use, so no run makes or closes one.
fn run_overhead(runs: u64) -> Measurement {
    let start = Instant::now();
    for _ in 0..runs {
        let executor = LocalExecutor::new();
        async_io::block_on(executor.run(async {}));
    }
    Measurement::timed(start.elapsed(), runs)
}

/// async-io has no timer handles: a `Timer` an hour away, polled once
/// (which queues its registration with the reactor) and dropped (which
/// queues its removal), `timers` times.
fn timer_cancel(executor: &Local, timers: u64) -> Measurement {
    let ((), elapsed) = run_timed(executor, async move {
        for _ in 0..timers {
            let timer = std::pin::pin!(Timer::after(CANCELLED_TIMER_DELAY));
            poll_once(timer).await;
        }
    });
    Measurement::timed(elapsed, timers)
}

/// `connections` loopback connections, one at a time: the main task
/// connects and reads until the server's close; a server task accepts each
/// connection and closes it at once.
fn tcp_churn(executor: &Local, connections: u64) -> Result<Measurement, BoxError> {
    let spawner = Rc::clone(executor);
    let (result, _) = run_timed(executor, async move {
        let listener = Async::<TcpListener>::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.get_ref().local_addr()?;
        let start = Instant::now();
        let server = spawner.spawn(async move {
            for _ in 0..connections {
                drop(listener.accept().await?);
            }
            Ok::<(), io::Error>(())
        });
        for _ in 0..connections {
            let mut client = Async::<TcpStream>::connect(addr).await?;
            if client.read(&mut [0; 1]).await? != 0 {
                return Err("the server end sent data".into());
            }
        }
        server.await?;
        Ok::<Duration, BoxError>(start.elapsed())
    });
    Ok(Measurement::timed(result?, connections))
}

/// Two connected loopback UDP sockets, a client task sending 1 KiB and
/// waiting for the echo, a server task echoing, `round_trips` times.
fn udp_pingpong(executor: &Local, round_trips: u64) -> Result<Measurement, BoxError> {
    let spawner = Rc::clone(executor);
    let (result, _) = run_timed(executor, async move {
        let client = Async::<UdpSocket>::bind((Ipv4Addr::LOCALHOST, 0))?;
        let server = Async::<UdpSocket>::bind((Ipv4Addr::LOCALHOST, 0))?;
        client.get_ref().connect(server.get_ref().local_addr()?)?;
        server.get_ref().connect(client.get_ref().local_addr()?)?;
        let start = Instant::now();
        let client = spawner.spawn(async move {
            let mut message = pattern(UDP_MESSAGE_SIZE);
            for _ in 0..round_trips {
                client.send(&message).await?;
                if client.recv(&mut message).await? != UDP_MESSAGE_SIZE {
                    return Err(io::Error::other("a datagram came back short"));
                }
            }
            Ok(message)
        });
        let server = spawner.spawn(async move {
            let mut buffer = vec![0; UDP_MESSAGE_SIZE];
            for _ in 0..round_trips {
                let received = server.recv(&mut buffer).await?;
                server.send(&buffer[..received]).await?;
            }
            Ok::<(), io::Error>(())
        });
        let message = client.await?;
        server.await?;
        let elapsed = start.elapsed();
        if message != pattern(UDP_MESSAGE_SIZE) {
            return Err("the echoed datagram came back changed".into());
        }
        Ok::<Duration, BoxError>(elapsed)
    });
    Ok(Measurement::timed(result?, round_trips))
}

/// Live bytes per connected loopback pair (both ends), idle: made by
/// `Async::<TcpStream>::connect` and `Async::<TcpListener>::accept` and kept
/// open.
fn idle_conn_bytes(executor: &Local, connections: u64) -> Result<Measurement, BoxError> {
    let (result, elapsed) = run_timed(executor, async move {
        let listener = Async::<TcpListener>::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.get_ref().local_addr()?;
        // One pair through the same path first.
        let warm_up = (Async::<TcpStream>::connect(addr).await?, listener.accept().await?);
        let mut pairs = Vec::with_capacity(connections as usize);
        let probe = LiveBytes::open();
        for _ in 0..connections {
            let client = Async::<TcpStream>::connect(addr).await?;
            let (server, _) = listener.accept().await?;
            pairs.push((client, server));
        }
        Timer::after(Duration::from_millis(1)).await;
        let bytes_per_pair = probe.bytes_per(connections);
        drop(probe);
        drop((pairs, warm_up));
        Ok::<i64, BoxError>(bytes_per_pair)
    });
    Ok(Measurement::weighed(elapsed, connections, result?))
}
