//! The workloads on aio's selector loop, written as an asyncio program would
//! write them: callbacks through `call_soon`, coroutines through
//! `run_until_complete`, tasks through `aio::create_task`.
//!
//! Each run makes a fresh `SelectorEventLoop` and closes it afterwards; only
//! the `run_forever` or `run_until_complete` call is timed (`run_overhead`
//! times `aio::run` itself, loops and all).

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use aio::EventLoop;
use aio::net::{TcpListener, TcpStream, UdpSocket};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::live_bytes::LiveBytes;
use crate::{
    BoxError, CANCELLED_TIMER_DELAY, Lcg, Measurement, PARKED_TIMER_DELAY, SPAWN_BATCH, TIMER_SPREAD,
    UDP_MESSAGE_SIZE, Workload, countdown, parked_task, pattern, poll_each_once,
};

pub(crate) fn measure(workload: Workload, count: u64) -> Result<Measurement, BoxError> {
    if workload == Workload::RunOverhead {
        return run_overhead(count);
    }
    let event_loop = aio::SelectorEventLoop::new()?;
    let measurement = match workload {
        Workload::CallSoonChain => call_soon_chain(&event_loop, count),
        Workload::Yield => yield_now(&event_loop, count),
        Workload::SpawnAwait => spawn_await(&event_loop, count),
        Workload::Timers => timers(&event_loop, count),
        Workload::Threadsafe => threadsafe(&event_loop, count),
        Workload::TaskBytes => task_bytes(&event_loop, count),
        Workload::TimerBytes => timer_bytes(&event_loop, count),
        Workload::TcpPingpong | Workload::TcpEcho | Workload::TcpEcho64k => tcp(&event_loop, workload, count),
        Workload::Subprocess | Workload::Subprocess16 => crate::subprocess::aio(&event_loop, workload, count),
        Workload::RunOverhead => unreachable!("handled above"),
        Workload::TimerCancel => timer_cancel(&event_loop, count),
        Workload::TcpChurn => tcp_churn(&event_loop, count),
        Workload::UdpPingpong => udp_pingpong(&event_loop, count),
        Workload::IdleConnBytes => idle_conn_bytes(&event_loop, count),
    };
    event_loop.close()?;
    measurement
}

/// Times `run_until_complete(main)`.
fn run_timed<F>(event_loop: &EventLoop, main: F) -> Result<(F::Output, Duration), BoxError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let start = Instant::now();
    let output = event_loop.run_until_complete(main)?;
    Ok((output, start.elapsed()))
}

/// `links` callbacks, each scheduling the next with `call_soon`; the last
/// stops the loop.
fn call_soon_chain(event_loop: &EventLoop, links: u64) -> Result<Measurement, BoxError> {
    fn link(event_loop: EventLoop, remaining: u64) {
        if remaining <= 1 {
            event_loop.stop();
            return;
        }
        let next = event_loop.clone();
        // The loop is running, so it is not closed and accepts callbacks.
        event_loop
            .call_soon(move || link(next, remaining - 1))
            .expect("the running loop refused a callback");
    }

    let first = event_loop.clone();
    let start = Instant::now();
    event_loop.call_soon(move || link(first, links))?;
    event_loop.run_forever()?;
    Ok(Measurement::timed(start.elapsed(), links))
}

/// One task awaiting `sleep(ZERO)`, asyncio's way to yield, `yields` times.
fn yield_now(event_loop: &EventLoop, yields: u64) -> Result<Measurement, BoxError> {
    let ((), elapsed) = run_timed(event_loop, async move {
        for _ in 0..yields {
            aio::sleep(Duration::ZERO).await;
        }
    })?;
    Ok(Measurement::timed(elapsed, yields))
}

/// `tasks` trivial tasks, created and awaited in batches.
fn spawn_await(event_loop: &EventLoop, tasks: u64) -> Result<Measurement, BoxError> {
    let (sum, elapsed) = run_timed(event_loop, async move {
        let mut batch = Vec::with_capacity(SPAWN_BATCH as usize);
        let mut sum = 0u64;
        let mut next = 0;
        while next < tasks {
            let end = tasks.min(next + SPAWN_BATCH);
            batch.extend((next..end).map(|i| aio::create_task(async move { i })));
            for task in batch.drain(..) {
                sum += task.await?;
            }
            next = end;
        }
        Ok::<u64, aio::Error>(sum)
    })?;
    std::hint::black_box(sum?);
    Ok(Measurement::timed(elapsed, tasks))
}

/// `timers` tasks sleeping pseudo-random delays up to `TIMER_SPREAD`, all
/// awaited.
fn timers(event_loop: &EventLoop, timers: u64) -> Result<Measurement, BoxError> {
    let (result, elapsed) = run_timed(event_loop, async move {
        let mut lcg = Lcg::new();
        let sleepers: Vec<_> = (0..timers)
            .map(|_| {
                let delay = lcg.delay_up_to(TIMER_SPREAD);
                aio::create_task(async move { aio::sleep(delay).await })
            })
            .collect();
        for sleeper in sleepers {
            sleeper.await?;
        }
        Ok::<(), aio::Error>(())
    })?;
    result?;
    Ok(Measurement::timed(elapsed, timers))
}

/// `callbacks` posted with `call_soon_threadsafe` from a std thread; each
/// ticks the countdown on the loop, and the last one stops the loop.
fn threadsafe(event_loop: &EventLoop, callbacks: u64) -> Result<Measurement, BoxError> {
    countdown::arm(callbacks);
    let remote = event_loop.threadsafe();
    let start = Instant::now();
    let poster = std::thread::spawn(move || {
        for _ in 0..callbacks {
            remote.call_soon_threadsafe(|| {
                if countdown::tick() {
                    // The callback runs inside `run_forever`, so there is a
                    // running loop to stop.
                    aio::get_running_loop()
                        .expect("a callback runs on a running loop")
                        .stop();
                }
            })?;
        }
        Ok::<(), aio::Error>(())
    });
    event_loop.run_forever()?;
    let elapsed = start.elapsed();
    poster.join().map_err(|_| "the posting thread panicked")??;
    Ok(Measurement::timed(elapsed, callbacks))
}

/// Live bytes per task parked on a future that never completes.
fn task_bytes(event_loop: &EventLoop, tasks: u64) -> Result<Measurement, BoxError> {
    let (bytes_per_task, elapsed) = run_timed(event_loop, async move {
        // One task through the same path first, so that whatever the loop
        // allocates once, lazily, is not charged to the measured tasks.
        countdown::arm(1);
        let warm_up = aio::create_task(parked_task());
        countdown::finished().await;

        let mut parked = Vec::with_capacity(tasks as usize);
        countdown::arm(tasks);
        let probe = LiveBytes::open();
        parked.extend((0..tasks).map(|_| aio::create_task(parked_task())));
        countdown::finished().await;
        let bytes_per_task = probe.bytes_per(tasks);
        drop(probe);

        // Cancel them, and yield once so that the cancellations run before
        // the loop is closed.
        for task in parked.iter().chain([&warm_up]) {
            task.cancel();
        }
        aio::sleep(Duration::ZERO).await;
        bytes_per_task
    })?;
    Ok(Measurement::weighed(elapsed, tasks, bytes_per_task))
}

/// Live bytes per `sleep` future, boxed and polled once so that its timer is
/// registered with the loop.
fn timer_bytes(event_loop: &EventLoop, timers: u64) -> Result<Measurement, BoxError> {
    let (bytes_per_timer, elapsed) = run_timed(event_loop, async move {
        let mut warm_up = [Box::pin(aio::sleep(PARKED_TIMER_DELAY))];
        poll_each_once(&mut warm_up).await;
        drop(warm_up);

        let mut lcg = Lcg::new();
        let mut sleeps = Vec::with_capacity(timers as usize);
        let probe = LiveBytes::open();
        sleeps.extend((0..timers).map(|_| {
            Box::pin(aio::sleep(
                PARKED_TIMER_DELAY + lcg.delay_up_to(PARKED_TIMER_DELAY),
            ))
        }));
        poll_each_once(&mut sleeps).await;
        // One real wait, so that a loop that registers timers lazily has
        // taken them all in before they are weighed.
        aio::sleep(Duration::from_millis(1)).await;
        let bytes_per_timer = probe.bytes_per(timers);
        drop(probe);
        bytes_per_timer
    })?;
    Ok(Measurement::weighed(elapsed, timers, bytes_per_timer))
}

/// The TCP workloads: `shape.connections` loopback connections made by
/// `TcpStream::connect` and `TcpListener::accept` (TCP_NODELAY on, aio's
/// default), then a client task and a server task per connection on this
/// loop, each doing its share of `round_trips`. Only the round trips are
/// timed, from the first task created to the last one awaited.
fn tcp(event_loop: &EventLoop, workload: Workload, round_trips: u64) -> Result<Measurement, BoxError> {
    let shape = workload.tcp_shape().ok_or("not a TCP workload")?;
    let (result, _) = run_timed(event_loop, async move {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let mut connections = Vec::new();
        for _ in 0..shape.connections {
            let client = TcpStream::connect(addr).await?;
            let (server, _) = listener.accept().await?;
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
            clients.push(aio::create_task(tcp_client(client, client_buffer, each)));
            servers.push(aio::create_task(tcp_server(server, server_buffer, each)));
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

/// `aio::run` of an empty main, `runs` times: a loop from the policy, made
/// current, run, its async generators and executor shut down, closed (as
/// `asyncio.run`).
fn run_overhead(runs: u64) -> Result<Measurement, BoxError> {
    let start = Instant::now();
    for _ in 0..runs {
        aio::run(async {})?;
    }
    Ok(Measurement::timed(start.elapsed(), runs))
}

/// `call_later` of a callback an hour away, then `cancel`, `timers` times
/// inside one coroutine.
fn timer_cancel(event_loop: &EventLoop, timers: u64) -> Result<Measurement, BoxError> {
    let (result, elapsed) = run_timed(event_loop, async move {
        let event_loop = aio::get_running_loop()?;
        for _ in 0..timers {
            event_loop
                .call_later(CANCELLED_TIMER_DELAY, || panic!("a cancelled timer fired"))?
                .cancel();
        }
        Ok::<(), aio::Error>(())
    })?;
    result?;
    Ok(Measurement::timed(elapsed, timers))
}

/// `connections` loopback connections, one at a time: the main task
/// connects and reads until the server's close; a server task accepts each
/// connection and closes it at once.
fn tcp_churn(event_loop: &EventLoop, connections: u64) -> Result<Measurement, BoxError> {
    let (result, _) = run_timed(event_loop, async move {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let start = Instant::now();
        let server = aio::create_task(async move {
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
fn udp_pingpong(event_loop: &EventLoop, round_trips: u64) -> Result<Measurement, BoxError> {
    let (result, _) = run_timed(event_loop, async move {
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        client.connect(server.local_addr()?).await?;
        server.connect(client.local_addr()?).await?;
        let start = Instant::now();
        let client = aio::create_task(async move {
            let mut message = pattern(UDP_MESSAGE_SIZE);
            for _ in 0..round_trips {
                client.send(&message).await?;
                if client.recv(&mut message).await? != UDP_MESSAGE_SIZE {
                    return Err(io::Error::other("a datagram came back short"));
                }
            }
            Ok(message)
        });
        let server = aio::create_task(async move {
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
fn idle_conn_bytes(event_loop: &EventLoop, connections: u64) -> Result<Measurement, BoxError> {
    let (result, elapsed) = run_timed(event_loop, async move {
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
        aio::sleep(Duration::from_millis(1)).await;
        let bytes_per_pair = probe.bytes_per(connections);
        drop(probe);
        drop((pairs, warm_up));
        Ok::<i64, BoxError>(bytes_per_pair)
    })?;
    Ok(Measurement::weighed(elapsed, connections, result?))
}
