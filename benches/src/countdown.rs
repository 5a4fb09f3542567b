//! A countdown kept on the loop's thread: the workloads whose last event
//! happens in some callback or task (`call_soon_chain`, `threadsafe`,
//! `task_bytes`) tick it, and the driving future waits for zero.
//!
//! A file of its own because all three runtimes share it, and because it is
//! deliberately thread-local: every counted event runs on the thread that
//! drives the runtime, so counting costs a `Cell` update rather than an atomic
//! or a channel, and no runtime is charged for synchronisation the others do
//! not pay.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

thread_local! {
    static REMAINING: Cell<u64> = const { Cell::new(0) };
    static WAITER: Cell<Option<Waker>> = const { Cell::new(None) };
}

/// Starts a countdown of `events` on this thread, forgetting any earlier one.
pub fn arm(events: u64) {
    REMAINING.set(events);
    WAITER.set(None);
}

/// Counts one event; `true` when it was the last, after waking the task
/// waiting in [`finished`].
///
/// # Panics
/// When the countdown is already at zero: a workload ticked more often than
/// it armed for, which would make its figures meaningless.
pub fn tick() -> bool {
    let remaining = REMAINING.get();
    assert!(remaining > 0, "countdown ticked past zero");
    REMAINING.set(remaining - 1);
    if remaining > 1 {
        return false;
    }
    if let Some(waiter) = WAITER.take() {
        waiter.wake();
    }
    true
}

/// Completes once the countdown on this thread reaches zero.
pub fn finished() -> Finished {
    Finished {
        _not_send: std::marker::PhantomData,
    }
}

/// The future of [`finished`]. `!Send`: it reads the countdown of the
/// thread that polls it, so moving it elsewhere would watch the wrong count.
#[derive(Debug)]
pub struct Finished {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Future for Finished {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if REMAINING.get() == 0 {
            return Poll::Ready(());
        }
        WAITER.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_tick_reports_and_finishes() {
        arm(2);
        let mut finished = std::pin::pin!(finished());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(finished.as_mut().poll(&mut cx).is_pending());
        assert!(!tick());
        assert!(finished.as_mut().poll(&mut cx).is_pending());
        assert!(tick());
        assert!(finished.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    #[should_panic(expected = "countdown ticked past zero")]
    fn ticking_past_zero_panics() {
        arm(0);
        tick();
    }
}
