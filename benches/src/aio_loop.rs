//! The workloads on aio's selector loop, written as an asyncio program would
//! write them: callbacks through `call_soon`, coroutines through
//! `run_until_complete`, tasks through `aio::create_task`.
//!
//! Each run makes a fresh `SelectorEventLoop` and closes it afterwards; only
//! the `run_forever` or `run_until_complete` call is timed.

use std::time::{Duration, Instant};

use aio::EventLoop;

use crate::live_bytes::LiveBytes;
use crate::{
    BoxError, Lcg, Measurement, PARKED_TIMER_DELAY, SPAWN_BATCH, TIMER_SPREAD, Workload, countdown,
    parked_task, poll_each_once,
};

pub(crate) fn measure(workload: Workload, count: u64) -> Result<Measurement, BoxError> {
    let event_loop = aio::SelectorEventLoop::new()?;
    let measurement = match workload {
        Workload::CallSoonChain => call_soon_chain(&event_loop, count),
        Workload::Yield => yield_now(&event_loop, count),
        Workload::SpawnAwait => spawn_await(&event_loop, count),
        Workload::Timers => timers(&event_loop, count),
        Workload::Threadsafe => threadsafe(&event_loop, count),
        Workload::TaskBytes => task_bytes(&event_loop, count),
        Workload::TimerBytes => timer_bytes(&event_loop, count),
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
