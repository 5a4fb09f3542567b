//! The loop's default executor: a bounded pool of threads for blocking work
//! (asyncio's `ThreadPoolExecutor` behind `run_in_executor(None, ...)`).
//!
//! A file of its own because it is the loop's only owner of OS threads. The
//! pool grows lazily up to `min(32, cores + 4)` threads (the bound
//! `ThreadPoolExecutor` uses), keeps them until shutdown, and on shutdown
//! lets queued jobs finish before the threads exit.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use aio_events::{Error, ErrorKind, panic_message};

type Job = Box<dyn FnOnce() + Send>;

struct PoolState {
    jobs: VecDeque<Job>,
    idle: usize,
    spawned: usize,
    shutdown: bool,
}

struct PoolShared {
    state: Mutex<PoolState>,
    work: Condvar,
}

impl PoolShared {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Jobs run outside the lock, so a poisoned lock means a panic in our
        // own bookkeeping, which leaves the state consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A bounded thread pool that runs jobs in FIFO order.
pub struct ThreadPool {
    shared: Arc<PoolShared>,
    threads: Vec<JoinHandle<()>>,
    max_threads: usize,
}

impl ThreadPool {
    /// A pool of at most `max_threads` threads (at least one); none start yet.
    pub fn new(max_threads: usize) -> ThreadPool {
        ThreadPool {
            shared: Arc::new(PoolShared {
                state: Mutex::new(PoolState {
                    jobs: VecDeque::new(),
                    idle: 0,
                    spawned: 0,
                    shutdown: false,
                }),
                work: Condvar::new(),
            }),
            threads: Vec::new(),
            max_threads: max_threads.max(1),
        }
    }

    /// `ThreadPoolExecutor`'s default bound: `min(32, cores + 4)`.
    pub fn default_max_threads() -> usize {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        (cores + 4).min(32)
    }

    /// Queues `job`, starting a thread if none is idle and the bound allows.
    pub fn submit(&mut self, job: Job) -> Result<(), Error> {
        let spawn = {
            let mut state = self.shared.lock();
            if state.shutdown {
                return Err(Error::new(ErrorKind::Closed, "Executor shutdown has been called"));
            }
            state.jobs.push_back(job);
            let spawn = state.idle < state.jobs.len() && state.spawned < self.max_threads;
            if spawn {
                state.spawned += 1;
            }
            spawn
        };
        if spawn {
            let shared = self.shared.clone();
            let name = format!("aio-executor-{}", self.threads.len());
            match thread::Builder::new().name(name).spawn(move || worker(&shared)) {
                Ok(handle) => self.threads.push(handle),
                Err(err) => {
                    self.shared.lock().spawned -= 1;
                    // The job stays queued for a running thread, if any.
                    if self.threads.is_empty() {
                        return Err(err.into());
                    }
                }
            }
        }
        self.shared.work.notify_one();
        Ok(())
    }

    /// Refuses new jobs, lets queued ones finish, and waits up to `timeout`
    /// for the threads to exit. Returns `false` if some did not in time.
    pub fn shutdown(&mut self, timeout: Duration) -> bool {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
        let deadline = Instant::now() + timeout;
        let mut pending = std::mem::take(&mut self.threads);
        while !pending.is_empty() {
            let (finished, running): (Vec<_>, Vec<_>) = pending.into_iter().partition(|t| t.is_finished());
            for handle in finished {
                let _ = handle.join();
            }
            pending = running;
            if pending.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                // The threads go on detached; they exit after their job.
                return false;
            }
            thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Refuses new jobs and lets the threads exit after the queued ones,
    /// without waiting for them.
    pub fn shutdown_nowait(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
        self.threads.clear();
    }
}

fn worker(shared: &PoolShared) {
    loop {
        let job = {
            let mut state = shared.lock();
            loop {
                if let Some(job) = state.jobs.pop_front() {
                    break job;
                }
                if state.shutdown {
                    return;
                }
                state.idle += 1;
                state = shared
                    .work
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                state.idle -= 1;
            }
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(job)) {
            log::error!(
                "a job of the default executor panicked: {}",
                panic_message(&*payload)
            );
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shutdown_nowait();
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("ThreadPool")
            .field("threads", &state.spawned)
            .field("idle", &state.idle)
            .field("queued", &state.jobs.len())
            .field("max_threads", &self.max_threads)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn runs_jobs_on_other_threads_and_drains_on_shutdown() {
        let mut pool = ThreadPool::new(2);
        let (tx, rx) = mpsc::channel();
        for i in 0..10 {
            let tx = tx.clone();
            pool.submit(Box::new(move || {
                thread::sleep(Duration::from_millis(2));
                tx.send((i, thread::current().id())).unwrap();
            }))
            .unwrap();
        }
        assert!(pool.shutdown(Duration::from_secs(30)), "threads joined");
        let results: Vec<_> = rx.try_iter().collect();
        assert_eq!(results.len(), 10, "queued jobs finish before shutdown returns");
        assert!(results.iter().all(|(_, id)| *id != thread::current().id()));
        let err = pool.submit(Box::new(|| {})).unwrap_err();
        assert_eq!(err.to_string(), "Executor shutdown has been called");
    }

    #[test]
    fn a_panicking_job_does_not_kill_the_pool() {
        let mut pool = ThreadPool::new(1);
        pool.submit(Box::new(|| panic!("boom"))).unwrap();
        let (tx, rx) = mpsc::channel();
        pool.submit(Box::new(move || tx.send(7).unwrap())).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), 7);
        assert!(pool.shutdown(Duration::from_secs(30)));
    }
}
