//! The free-standing coroutines of asyncio: [`sleep`], [`to_thread`] and
//! [`create_task`] on the running loop.
//!
//! A file of its own because these reach the loop through the running-loop
//! registry rather than through a handle.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use crate::event_loop::panic_message;
use crate::running::get_running_loop;
use crate::task::Task;
use crate::{Error, ErrorKind, EventLoop, WakeTimer};

/// Wraps `future` in a task on the running loop (asyncio's `create_task`).
///
/// # Panics
/// "no running event loop" outside a running loop, or when the running loop
/// is closed (which cannot be while it runs).
pub fn create_task<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    // Borrowed from the registry: no reference count moves. Creating a task
    // runs no user code, so nothing can re-enter the registry meanwhile.
    crate::running::with_running_loop(|event_loop| {
        event_loop
            .expect("no running event loop")
            .create_task(future)
            .expect("the running loop refused a task")
    })
}

/// Waits `delay` on the running loop; `sleep(Duration::ZERO)` yields once,
/// letting every other ready callback and task run.
///
/// The timer is registered at the first poll and cancelled if the future is
/// dropped first.
///
/// # Panics
/// When polled outside a running loop: "no running event loop".
pub fn sleep(delay: Duration) -> Sleep {
    Sleep {
        state: SleepState::Start { delay },
    }
}

/// The future of [`sleep`]: 32 bytes on 64-bit targets, the loop's handle and
/// the timer's key (the delay is needed only until the timer is registered,
/// so it lives in the first state).
pub struct Sleep {
    state: SleepState,
}

enum SleepState {
    Start { delay: Duration },
    Yielded,
    Waiting { event_loop: EventLoop, timer: WakeTimer },
    Done,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        match &mut this.state {
            SleepState::Done => Poll::Ready(()),
            SleepState::Yielded => {
                this.state = SleepState::Done;
                Poll::Ready(())
            }
            SleepState::Start { delay } if delay.is_zero() => {
                this.state = SleepState::Yielded;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            SleepState::Start { delay } => {
                let event_loop = get_running_loop().expect("no running event loop");
                let timer = event_loop
                    .inner()
                    .wake_after(*delay, cx.waker())
                    .expect("the running loop refused a timer");
                this.state = SleepState::Waiting { event_loop, timer };
                Poll::Pending
            }
            SleepState::Waiting { event_loop, timer } => {
                if event_loop.inner().wake_timer_fired(timer) {
                    this.state = SleepState::Done;
                    return Poll::Ready(());
                }
                event_loop
                    .inner()
                    .rearm_wake_timer(timer, cx.waker())
                    .expect("the running loop refused a timer");
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let SleepState::Waiting { event_loop, timer } = &self.state {
            event_loop.inner().cancel_wake_timer(timer);
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            SleepState::Start { .. } => "not started",
            SleepState::Yielded => "yielded",
            SleepState::Waiting { .. } => "waiting",
            SleepState::Done => "done",
        };
        let mut f = f.debug_struct("Sleep");
        if let SleepState::Start { delay } = &self.state {
            f.field("delay", delay);
        }
        f.field("state", &state).finish()
    }
}

struct Oneshot<T> {
    value: Option<thread::Result<T>>,
    waker: Option<Waker>,
    sender_gone: bool,
}

struct OneshotSender<T>(Arc<Mutex<Oneshot<T>>>);

impl<T> OneshotSender<T> {
    fn send(self, value: thread::Result<T>) {
        let waker = {
            let mut slot = lock(&self.0);
            slot.value = Some(value);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for OneshotSender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = lock(&self.0);
            slot.sender_gone = true;
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves plain data behind; go on.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct OneshotReceiver<T>(Arc<Mutex<Oneshot<T>>>);

impl<T> Future for OneshotReceiver<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = lock(&self.0);
        match slot.value.take() {
            Some(Ok(value)) => Poll::Ready(Ok(value)),
            Some(Err(payload)) => Poll::Ready(Err(Error::new(
                ErrorKind::Panicked,
                format!(
                    "the function given to to_thread panicked: {}",
                    panic_message(&*payload)
                ),
            ))),
            None if slot.sender_gone => Poll::Ready(Err(Error::new(
                ErrorKind::Cancelled,
                "the executor shut down before running the function",
            ))),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Runs `f` on the running loop's default executor (a bounded thread pool)
/// and waits for its result (asyncio's `to_thread`).
///
/// A panic in `f` comes back as `Err` of kind `Panicked`; outside a running
/// loop the error is `NoRunningLoop`.
pub async fn to_thread<T, F>(f: F) -> Result<T, Error>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let event_loop = get_running_loop()?;
    let shared = Arc::new(Mutex::new(Oneshot {
        value: None,
        waker: None,
        sender_gone: false,
    }));
    let sender = OneshotSender(shared.clone());
    event_loop.run_in_executor(move || {
        let result = catch_unwind(AssertUnwindSafe(f));
        sender.send(result);
    })?;
    OneshotReceiver(shared).await
}

#[cfg(all(test, target_pointer_width = "64"))]
mod size_tests {
    #[test]
    fn a_sleep_is_32_bytes() {
        // The loop's handle (a fat `Rc`, 16) and the timer (16: its tag in
        // the padding beside a 32-bit slot) in the waiting state; every
        // other state fits in the timer's niche.
        assert_eq!(std::mem::size_of::<super::Sleep>(), 32);
    }
}
