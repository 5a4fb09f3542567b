//! A child's exit as seen by the loop: the return code the watcher reports
//! and the tasks waiting for it.
//!
//! A file of its own because it is the one piece shared with another thread:
//! the watcher's callback may run on the loop (pidfd and SIGCHLD watchers) or
//! be posted from a waiting thread, so the state sits behind an
//! `Arc<Mutex<..>>` and wakes its waiters through their `Waker`s.

use std::fmt;
use std::future::poll_fn;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// What the watcher's callback fills in.
#[derive(Default)]
struct ExitState {
    returncode: Option<i32>,
    /// Tasks waiting for the exit; each appears once however often it polls.
    waiters: Vec<Waker>,
}

/// A shareable view of one child's exit: any number of tasks can wait for
/// it at once (asyncio lets several coroutines `await proc.wait()`), and it
/// outlives the [`Child`](crate::Child).
///
/// ```no_run
/// # async fn example(child: aio_process::Child) {
/// let exit = child.exit_handle();
/// let waiters: Vec<_> = (0..10)
///     .map(|_| {
///         let exit = exit.clone();
///         aio_events::create_task(async move { exit.wait().await })
///     })
///     .collect();
/// # }
/// ```
#[derive(Clone)]
pub struct ExitHandle {
    pid: u32,
    state: Arc<Mutex<ExitState>>,
}

impl ExitHandle {
    pub(crate) fn new(pid: u32) -> ExitHandle {
        ExitHandle {
            pid,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ExitState> {
        // The state is a number and a list of wakers, each written in one
        // step: a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The callback handed to the child watcher: stores the return code and
    /// wakes every waiter. It holds the state, not the `Child`, so a child
    /// dropped early is still reaped and reported into nothing.
    pub(crate) fn watcher_callback(&self) -> Box<dyn FnOnce(u32, i32) + Send> {
        let state = Arc::clone(&self.state);
        Box::new(move |_pid, returncode| {
            let waiters = {
                let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                state.returncode = Some(returncode);
                std::mem::take(&mut state.waiters)
            };
            // Woken outside the lock: a waker may run its task inline.
            for waiter in waiters {
                waiter.wake();
            }
        })
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// asyncio's `returncode`: `None` while the child runs (or until the
    /// watcher has reported it), then the exit code, `-signum` for a signal,
    /// or 255 when the child was reaped elsewhere.
    pub fn returncode(&self) -> Option<i32> {
        self.lock().returncode
    }

    /// Ready with the return code once the watcher has reported it.
    pub fn poll_returncode(&self, cx: &mut Context<'_>) -> Poll<i32> {
        let mut state = self.lock();
        if let Some(returncode) = state.returncode {
            return Poll::Ready(returncode);
        }
        if !state.waiters.iter().any(|waiter| waiter.will_wake(cx.waker())) {
            state.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Waits for the child's exit.
    pub async fn wait(&self) -> ExitStatus {
        exit_status(poll_fn(|cx| self.poll_returncode(cx)).await)
    }

    /// The exit status, if the watcher has reported it.
    pub fn try_status(&self) -> Option<ExitStatus> {
        self.returncode().map(exit_status)
    }
}

impl fmt::Debug for ExitHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExitHandle")
            .field("pid", &self.pid)
            .field("returncode", &self.returncode())
            .finish()
    }
}

/// std's `ExitStatus` for an asyncio return code: the wait status a
/// `waitpid` would have given (exit code in the second byte, or the signal
/// number in the low seven bits). 255 for "reaped elsewhere" reads as
/// exit code 255, as asyncio reports it.
pub(crate) fn exit_status(returncode: i32) -> ExitStatus {
    if returncode >= 0 {
        ExitStatus::from_raw((returncode & 0xff) << 8)
    } else {
        ExitStatus::from_raw(returncode.wrapping_neg() & 0x7f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_codes_become_std_exit_statuses() {
        assert_eq!(exit_status(0).code(), Some(0));
        assert_eq!(exit_status(3).code(), Some(3));
        assert_eq!(exit_status(255).code(), Some(255));
        assert_eq!(exit_status(-9).code(), None);
        assert_eq!(exit_status(-9).signal(), Some(9));
        assert_eq!(exit_status(-15).signal(), Some(15));
        assert!(exit_status(0).success());
    }

    #[test]
    fn the_callback_wakes_every_waiter_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;

        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }

        let exit = ExitHandle::new(42);
        let counts: Vec<Arc<Count>> = (0..3).map(|_| Arc::new(Count(AtomicUsize::new(0)))).collect();
        for count in &counts {
            let waker = Waker::from(Arc::clone(count));
            let mut cx = Context::from_waker(&waker);
            // Polled twice: registered once.
            assert!(exit.poll_returncode(&mut cx).is_pending());
            assert!(exit.poll_returncode(&mut cx).is_pending());
        }
        assert_eq!(exit.lock().waiters.len(), 3);
        (exit.watcher_callback())(42, -9);
        for count in &counts {
            assert_eq!(count.0.load(Ordering::SeqCst), 1);
        }
        assert_eq!(exit.returncode(), Some(-9));
        let waker = Waker::from(Arc::clone(&counts[0]));
        assert_eq!(
            exit.poll_returncode(&mut Context::from_waker(&waker)),
            Poll::Ready(-9)
        );
    }
}
