//! A child's exit as seen by the loop: the return code the watcher reports
//! (on Windows, the loop's wait on the process handle) and the tasks waiting
//! for it.
//!
//! A file of its own because it is the one piece shared with another thread:
//! the watcher's callback may run on the loop (pidfd and SIGCHLD watchers) or
//! be posted from a waiting thread, so the state sits behind an
//! `Arc<Mutex<..>>` and wakes its waiters through their `Waker`s.

use std::fmt;
use std::future::poll_fn;
#[cfg(unix)]
use std::os::unix::process::ExitStatusExt;
#[cfg(windows)]
use std::os::windows::process::ExitStatusExt;
use std::process::ExitStatus;
#[cfg(windows)]
use std::sync::Weak;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// What the watcher's callback fills in.
#[derive(Default)]
struct ExitState {
    returncode: Option<i32>,
    /// Tasks waiting for the exit; each appears once however often it polls.
    waiters: Vec<Waker>,
    /// Windows: the loop's wait on the process handle, with the handle. It
    /// lives as long as someone can ask for the exit (this state), or until
    /// the exit is reported; its callback holds only a `WeakExitHandle`,
    /// so nothing keeps itself alive.
    #[cfg(windows)]
    watch: Option<crate::windows::process::ProcessWatch>,
}

/// Stores `returncode` and wakes every waiter (and, on Windows, ends the
/// wait on the process handle, which has nothing left to report).
fn report(state: &Mutex<ExitState>, returncode: i32) {
    let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    state.returncode = Some(returncode);
    #[cfg(windows)]
    let watch = state.watch.take();
    let waiters = std::mem::take(&mut state.waiters);
    drop(state);
    // Dropped and woken outside the lock: a waker may run its task inline.
    #[cfg(windows)]
    drop(watch);
    for waiter in waiters {
        waiter.wake();
    }
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
    #[cfg(unix)]
    pub(crate) fn watcher_callback(&self) -> Box<dyn FnOnce(u32, i32) + Send> {
        let state = Arc::clone(&self.state);
        Box::new(move |_pid, returncode| report(&state, returncode))
    }

    /// A handle that does not keep the state alive: what the Windows wait
    /// on the process handle reports into.
    #[cfg(windows)]
    pub(crate) fn downgrade(&self) -> WeakExitHandle {
        WeakExitHandle(Arc::downgrade(&self.state))
    }

    /// Keeps the wait on the process handle for as long as the exit may be
    /// asked for (see `ExitState::watch`).
    #[cfg(windows)]
    pub(crate) fn set_watch(&self, watch: crate::windows::process::ProcessWatch) {
        self.lock().watch = Some(watch);
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

/// An [`ExitHandle`] that does not keep the exit's state alive.
#[cfg(windows)]
pub(crate) struct WeakExitHandle(Weak<Mutex<ExitState>>);

#[cfg(windows)]
impl WeakExitHandle {
    /// Stores `returncode` and wakes every waiter, if anyone can still ask.
    pub(crate) fn report(&self, returncode: i32) {
        if let Some(state) = self.0.upgrade() {
            report(&state, returncode);
        }
    }
}

/// std's `ExitStatus` for an asyncio return code: the wait status a
/// `waitpid` would have given (exit code in the second byte, or the signal
/// number in the low seven bits). 255 for "reaped elsewhere" reads as
/// exit code 255, as asyncio reports it.
#[cfg(unix)]
pub(crate) fn exit_status(returncode: i32) -> ExitStatus {
    if returncode >= 0 {
        ExitStatus::from_raw((returncode & 0xff) << 8)
    } else {
        ExitStatus::from_raw(returncode.wrapping_neg() & 0x7f)
    }
}

/// std's `ExitStatus` for a return code, which on Windows is the process's
/// exit code (`GetExitCodeProcess`, read as `i32` as std's `code()` does).
#[cfg(windows)]
pub(crate) fn exit_status(returncode: i32) -> ExitStatus {
    ExitStatus::from_raw(returncode as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(windows)]
    #[test]
    fn exit_codes_become_std_exit_statuses() {
        assert_eq!(exit_status(0).code(), Some(0));
        assert_eq!(exit_status(3).code(), Some(3));
        // An NTSTATUS exit (an access violation, 0xC0000005) stays whole.
        assert_eq!(
            exit_status(0xC000_0005_u32 as i32).code(),
            Some(0xC000_0005_u32 as i32)
        );
        assert!(exit_status(0).success());
        assert!(!exit_status(1).success());
    }

    #[cfg(windows)]
    #[test]
    fn a_report_wakes_every_waiter_once_and_only_while_someone_can_ask() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;

        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }

        let exit = ExitHandle::new(42);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        assert!(
            exit.poll_returncode(&mut Context::from_waker(&waker))
                .is_pending()
        );
        assert!(
            exit.poll_returncode(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let weak = exit.downgrade();
        weak.report(7);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(exit.returncode(), Some(7));
        assert_eq!(exit.try_status().and_then(|status| status.code()), Some(7));
        // Nobody left to ask: the report goes nowhere.
        drop(exit);
        weak.report(8);
    }

    #[cfg(unix)]
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

    #[cfg(unix)]
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
