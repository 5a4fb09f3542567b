//! Scheduled callbacks: [`Handle`] for `call_soon`, [`TimerHandle`] for
//! `call_later`/`call_at` (asyncio's `events.Handle` and `events.TimerHandle`).
//!
//! A file of its own because loops of every platform store these in their
//! ready queues and timer heaps, and the handle is the user's way to cancel.
//! One allocation per callback: the callback lives inline in the reference
//! counted cell, typed until it is erased behind `dyn RawHandle`.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::Instant;

const CANCELLED: u8 = 1;
const RAN: u8 = 2;
const SCHEDULED: u8 = 4;

trait RawHandle {
    fn state(&self) -> &Cell<u8>;
    /// Takes the callback out and calls it; `false` when there was none.
    fn take_and_call(&self) -> bool;
    /// Drops the callback without calling it.
    fn drop_callback(&self);
    fn name(&self) -> &'static str;
}

struct HandleCell<F> {
    state: Cell<u8>,
    callback: Cell<Option<F>>,
}

impl<F: FnOnce() + 'static> RawHandle for HandleCell<F> {
    fn state(&self) -> &Cell<u8> {
        &self.state
    }

    fn take_and_call(&self) -> bool {
        match self.callback.take() {
            Some(callback) => {
                callback();
                true
            }
            None => false,
        }
    }

    fn drop_callback(&self) {
        drop(self.callback.take());
    }

    fn name(&self) -> &'static str {
        std::any::type_name::<F>()
    }
}

/// A callback scheduled with `call_soon`; cancel it before it runs.
///
/// Clones refer to the same callback. The loop keeps one in its ready queue.
#[derive(Clone)]
pub struct Handle(Rc<dyn RawHandle>);

impl Handle {
    /// Wraps `callback` into a handle that a loop can queue. Loop
    /// implementations use this; users get handles from `call_soon`.
    pub fn new(callback: impl FnOnce() + 'static) -> Handle {
        Handle(Rc::new(HandleCell {
            state: Cell::new(0),
            callback: Cell::new(Some(callback)),
        }))
    }

    /// Cancels the callback: it will not run, and it is dropped now (as
    /// asyncio drops a cancelled handle's callback and arguments).
    pub fn cancel(&self) {
        let state = self.0.state();
        state.set(state.get() | CANCELLED);
        self.0.drop_callback();
    }

    /// Whether [`cancel`](Handle::cancel) was called.
    pub fn cancelled(&self) -> bool {
        self.0.state().get() & CANCELLED != 0
    }

    /// Whether the callback has run.
    pub fn has_run(&self) -> bool {
        self.0.state().get() & RAN != 0
    }

    /// Runs the callback unless it was cancelled or has run already. A panic
    /// in the callback propagates: the loop catches it and reports it.
    pub fn run(&self) {
        let state = self.0.state();
        if state.get() & (CANCELLED | RAN) != 0 {
            return;
        }
        state.set(state.get() | RAN);
        self.0.take_and_call();
    }

    /// The callback's type name, for messages ("Exception in callback NAME").
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Whether two handles are the same callback.
    pub fn ptr_eq(&self, other: &Handle) -> bool {
        std::ptr::addr_eq(Rc::as_ptr(&self.0), Rc::as_ptr(&other.0))
    }

    /// Marks the handle as sitting in a timer heap (`true`) or taken out of it.
    /// Only a scheduled timer counts towards the heap's cancelled total.
    pub fn set_scheduled(&self, scheduled: bool) {
        let state = self.0.state();
        if scheduled {
            state.set(state.get() | SCHEDULED);
        } else {
            state.set(state.get() & !SCHEDULED);
        }
    }

    fn scheduled(&self) -> bool {
        self.0.state().get() & SCHEDULED != 0
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.0.state().get();
        let status = if state & CANCELLED != 0 {
            "cancelled"
        } else if state & RAN != 0 {
            "ran"
        } else {
            "pending"
        };
        write!(f, "<Handle {} {}>", self.0.name(), status)
    }
}

/// A callback scheduled for a point in time with `call_later` or `call_at`.
#[derive(Clone)]
pub struct TimerHandle {
    handle: Handle,
    when: Instant,
    cancelled_count: Option<Rc<Cell<usize>>>,
}

impl TimerHandle {
    /// A timer handle for `handle`, due at `when`. `cancelled_count` is the
    /// owning heap's count of cancelled entries, bumped when a scheduled timer
    /// is cancelled (asyncio's `_timer_handle_cancelled`).
    pub fn new(handle: Handle, when: Instant, cancelled_count: Option<Rc<Cell<usize>>>) -> TimerHandle {
        TimerHandle {
            handle,
            when,
            cancelled_count,
        }
    }

    /// Cancels the timer; a no-op once it has run or was cancelled.
    pub fn cancel(&self) {
        if self.handle.cancelled() {
            return;
        }
        if self.handle.scheduled()
            && let Some(count) = &self.cancelled_count
        {
            count.set(count.get() + 1);
        }
        self.handle.cancel();
    }

    /// Whether [`cancel`](TimerHandle::cancel) was called.
    pub fn cancelled(&self) -> bool {
        self.handle.cancelled()
    }

    /// When the callback is due, on the loop's clock.
    pub fn when(&self) -> Instant {
        self.when
    }

    /// The callback's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("when", &self.when)
            .field("handle", &self.handle)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_drops_the_callback_and_run_skips_it() {
        let marker = Rc::new(());
        let held = marker.clone();
        let ran = Rc::new(Cell::new(false));
        let flag = ran.clone();
        let handle = Handle::new(move || {
            let _keep = &held;
            flag.set(true);
        });
        assert_eq!(Rc::strong_count(&marker), 2);
        handle.cancel();
        assert!(handle.cancelled());
        assert_eq!(Rc::strong_count(&marker), 1, "cancel drops the callback");
        handle.run();
        assert!(!ran.get());
    }

    #[test]
    fn run_happens_once() {
        let count = Rc::new(Cell::new(0));
        let c = count.clone();
        let handle = Handle::new(move || c.set(c.get() + 1));
        handle.run();
        handle.run();
        assert_eq!(count.get(), 1);
        assert!(handle.has_run());
    }

    #[test]
    fn timer_cancel_counts_only_while_scheduled() {
        let count = Rc::new(Cell::new(0));
        let now = Instant::now();
        let scheduled = TimerHandle::new(Handle::new(|| {}), now, Some(count.clone()));
        scheduled.handle().set_scheduled(true);
        scheduled.cancel();
        scheduled.cancel();
        assert_eq!(count.get(), 1, "a second cancel does not count");
        let popped = TimerHandle::new(Handle::new(|| {}), now, Some(count.clone()));
        popped.cancel();
        assert_eq!(count.get(), 1, "a timer outside the heap does not count");
        assert_eq!(scheduled.when(), now);
    }
}
