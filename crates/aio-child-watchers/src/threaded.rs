//! [`ThreadedChildWatcher`]: one thread per child, blocked in `waitpid`
//! (asyncio's `ThreadedChildWatcher`).
//!
//! A file of its own because it is the one watcher that works wherever
//! `waitpid` does, whatever the kernel, the sandbox or the loop's thread: the
//! default policy's fallback when pidfds are unusable.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use aio_events::unix::ChildWatcher;
use aio_events::{Error, ErrorKind, EventLoop, ThreadsafeLoop};
use rustix::process::Pid;

use crate::wait::{self, ChildCallback, Exited};

/// Starts a thread per child that blocks in `waitpid(pid, 0)`, then posts
/// the callback to the loop that registered the child with
/// `call_soon_threadsafe` (asyncio's `ThreadedChildWatcher`, the default of
/// 3.8–3.11, and of 3.12–3.13 where pidfds are unusable).
///
/// `add_child_handler` must be called while a loop runs on the calling
/// thread: that loop gets the callback. The thread is named `waitpid-PID`.
///
/// # Trade-offs
///
/// - **Works everywhere**: any Unix, any kernel, any seccomp profile, loops
///   in any thread. No signal handler, no reaping of other code's children.
/// - **O(1) per exit, but a thread per running child**: thread creation
///   costs tens of microseconds and each thread reserves a stack, so a
///   program running thousands of children at once pays for thousands of
///   threads.
/// - **Threads cannot be called back.** A thread blocked in `waitpid`
///   always reaps its child in the end:
///   [`remove_child_handler`](ChildWatcher::remove_child_handler) drops the
///   callback, not the wait; [`close`](ChildWatcher::close) joins and stops
///   nothing (the threads are daemon-like, as asyncio's); a loop closed
///   before its child exits gets no callback (a warning is logged), but the
///   child is still reaped.
/// - **The pid is waited for by number**, as asyncio does: should another
///   piece of code reap the child first, the thread gets `ECHILD` and
///   reports 255 with a warning.
///
/// Adding a handler for a pid that already has a waiting thread replaces the
/// callback (and the loop it goes to) without starting a second thread.
/// [`attach_loop`](ChildWatcher::attach_loop) is a no-op and
/// [`is_active`](ChildWatcher::is_active) is always `true`.
pub struct ThreadedChildWatcher {
    waiters: Arc<Waiters>,
}

/// The children with a waiting thread, by pid.
#[derive(Default)]
struct Waiters {
    entries: Mutex<HashMap<u32, Waiter>>,
}

/// What a waiting thread reports to: the callback (`None` once removed) and
/// the loop that registered it.
struct Waiter {
    callback: Option<ChildCallback>,
    threadsafe: ThreadsafeLoop,
}

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, HashMap<u32, Waiter>> {
        // Plain data, and no code of ours panics while holding the lock.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ThreadedChildWatcher {
    /// A watcher; it starts no thread until a child is added.
    pub fn new() -> Self {
        ThreadedChildWatcher {
            waiters: Arc::new(Waiters::default()),
        }
    }
}

impl Default for ThreadedChildWatcher {
    fn default() -> Self {
        ThreadedChildWatcher::new()
    }
}

impl fmt::Debug for ThreadedChildWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadedChildWatcher")
            .field("waiting_threads", &self.waiters.lock().len())
            .finish()
    }
}

/// The body of a `waitpid-PID` thread.
fn wait_in_thread(waiters: &Waiters, pid: u32, raw: Pid) {
    let returncode = wait::wait_blocking(pid, raw);
    let waiter = waiters.lock().remove(&pid);
    if let Some(Waiter {
        callback: Some(callback),
        threadsafe,
    }) = waiter
    {
        wait::deliver(
            &threadsafe,
            vec![Exited {
                pid,
                returncode,
                callback,
            }],
        );
    }
}

impl ChildWatcher for ThreadedChildWatcher {
    fn add_child_handler(&self, pid: u32, callback: Box<dyn FnOnce(u32, i32) + Send>) -> Result<(), Error> {
        let raw = wait::checked_pid(pid)?;
        let threadsafe = aio_events::try_get_running_loop()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NoRunningLoop,
                    format!(
                        "no running event loop: ThreadedChildWatcher reports child {pid} to the loop \
                         running on this thread; call add_child_handler from inside it"
                    ),
                )
            })?
            .threadsafe();
        {
            let mut waiters = self.waiters.lock();
            if let Some(waiter) = waiters.get_mut(&pid) {
                // A thread already waits for this pid: it reports to the new
                // callback and loop.
                let replaced = waiter.callback.replace(callback);
                waiter.threadsafe = threadsafe;
                drop(waiters);
                drop(replaced);
                return Ok(());
            }
            waiters.insert(
                pid,
                Waiter {
                    callback: Some(callback),
                    threadsafe,
                },
            );
        }
        let waiters = Arc::clone(&self.waiters);
        let spawned = thread::Builder::new()
            .name(format!("waitpid-{pid}"))
            .spawn(move || wait_in_thread(&waiters, pid, raw));
        if let Err(err) = spawned {
            let removed = self.waiters.lock().remove(&pid);
            drop(removed);
            return Err(io::Error::new(
                err.kind(),
                format!("cannot start the thread that waits for child process {pid}: {err}"),
            )
            .into());
        }
        Ok(())
    }

    fn remove_child_handler(&self, pid: u32) -> bool {
        // The thread goes on waiting (it cannot be interrupted) and reaps the
        // child; only the callback goes.
        let removed = self
            .waiters
            .lock()
            .get_mut(&pid)
            .and_then(|waiter| waiter.callback.take());
        removed.is_some()
    }

    fn attach_loop(&self, _event_loop: Option<&EventLoop>) {
        // Each child reports to the loop that registered it.
    }

    fn is_active(&self) -> bool {
        true
    }

    fn close(&self) {
        // The waiting threads end when their children do; asyncio's `close`
        // joins nothing either.
    }
}
