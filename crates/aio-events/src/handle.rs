//! Scheduled callbacks: [`Handle`] for `call_soon`, [`TimerHandle`] for
//! `call_later`/`call_at` (asyncio's `events.Handle` and `events.TimerHandle`).
//!
//! A file of its own because loops of every platform store these in their
//! ready queues and timer heaps, the handle is the user's way to cancel, and
//! it is the hottest allocation of a callback-heavy program.
//!
//! One allocation per callback, from the per-thread pool (`pool.rs`): a
//! handle is a reference-counted block (a header, then the callback inline)
//! whose header points to a static table of the callback type's functions,
//! as `Rc<dyn _>` would, but whose memory is reused from free lists instead
//! of going through `malloc` and `free` each time. `Handle` is `!Send`, so
//! its count needs no atomics.

use std::alloc::Layout;
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::Instant;

const CANCELLED: u8 = 1;
const RAN: u8 = 2;
const SCHEDULED: u8 = 4;
/// The callback has been moved out (called) or dropped.
const TAKEN: u8 = 8;

#[repr(C)]
struct Header {
    refs: Cell<usize>,
    state: Cell<u8>,
    vtable: &'static VTable,
}

/// The functions of one callback type.
struct VTable {
    /// Moves the callback out of the block and calls it (`call`) or drops
    /// it. `false` when it was gone already.
    take: unsafe fn(NonNull<Header>, call: bool) -> bool,
    name: fn() -> &'static str,
    layout: Layout,
    /// `layout`'s size class in the pool.
    class: Option<usize>,
}

#[repr(C)]
struct Block<F> {
    header: Header,
    /// Initialised until the header's state has `TAKEN`.
    callback: UnsafeCell<MaybeUninit<F>>,
}

impl<F: FnOnce() + 'static> Block<F> {
    const VTABLE: VTable = VTable {
        take: Self::take,
        name: std::any::type_name::<F>,
        layout: Layout::new::<Block<F>>(),
        class: crate::pool::size_class(Layout::new::<Block<F>>()),
    };

    /// # Safety
    /// `header` points to a live `Block<F>`.
    unsafe fn take(header: NonNull<Header>, call: bool) -> bool {
        // SAFETY: per this function's contract.
        let block = unsafe { header.cast::<Block<F>>().as_ref() };
        let state = block.header.state.get();
        if state & TAKEN != 0 {
            return false;
        }
        block.header.state.set(state | TAKEN);
        // SAFETY: not `TAKEN` until the line above, so the callback is
        // initialised; `TAKEN` now keeps anyone from reading it again, even if
        // the callback re-enters this handle.
        let callback = unsafe { (*block.callback.get()).assume_init_read() };
        if call {
            callback();
        } else {
            drop(callback);
        }
        true
    }
}

/// A callback scheduled with `call_soon`; cancel it before it runs.
///
/// Clones refer to the same callback. The loop keeps one in its ready queue.
pub struct Handle(NonNull<Header>);

impl Handle {
    /// Wraps `callback` into a handle that a loop can queue. Loop
    /// implementations use this; users get handles from `call_soon`.
    pub fn new<F: FnOnce() + 'static>(callback: F) -> Handle {
        let vtable = &Block::<F>::VTABLE;
        let block = crate::pool::alloc_in(vtable.class, vtable.layout).cast::<Block<F>>();
        // SAFETY: `block` is fresh memory with room and alignment for a
        // `Block<F>` (its class or its exact layout).
        unsafe {
            block.as_ptr().write(Block {
                header: Header {
                    refs: Cell::new(1),
                    state: Cell::new(0),
                    vtable,
                },
                callback: UnsafeCell::new(MaybeUninit::new(callback)),
            });
        }
        Handle(block.cast())
    }

    /// The handle as a pointer aligned to at least 8 bytes, keeping its
    /// reference: for loop containers that pack it with other data in one
    /// word. Give it back with [`from_raw`](Handle::from_raw).
    pub fn into_raw(self) -> NonNull<()> {
        std::mem::ManuallyDrop::new(self).0.cast()
    }

    /// The handle [`into_raw`](Handle::into_raw) gave.
    ///
    /// # Safety
    /// `raw` came from `into_raw` and is given back once.
    pub unsafe fn from_raw(raw: NonNull<()>) -> Handle {
        Handle(raw.cast())
    }

    fn header(&self) -> &Header {
        // SAFETY: a `Handle` holds a reference count, so the block is alive.
        unsafe { self.0.as_ref() }
    }

    fn state(&self) -> &Cell<u8> {
        &self.header().state
    }

    /// Cancels the callback: it will not run, and it is dropped now (as
    /// asyncio drops a cancelled handle's callback and arguments).
    pub fn cancel(&self) {
        let state = self.state();
        state.set(state.get() | CANCELLED);
        // SAFETY: the block is alive (we hold a count) and holds a callback
        // of the vtable's type.
        unsafe { (self.header().vtable.take)(self.0, false) };
    }

    /// Whether [`cancel`](Handle::cancel) was called.
    pub fn cancelled(&self) -> bool {
        self.state().get() & CANCELLED != 0
    }

    /// Whether the callback has run.
    pub fn has_run(&self) -> bool {
        self.state().get() & RAN != 0
    }

    /// Runs the callback unless it was cancelled or has run already. A panic
    /// in the callback propagates: the loop catches it and reports it.
    pub fn run(&self) {
        let state = self.state();
        if state.get() & (CANCELLED | RAN) != 0 {
            return;
        }
        state.set(state.get() | RAN);
        // The callback may drop every other clone of this handle; ours keeps
        // the block alive until `take` returns.
        // SAFETY: the block is alive and holds a callback of the vtable's type.
        unsafe { (self.header().vtable.take)(self.0, true) };
    }

    /// The callback's type name, for messages ("Exception in callback NAME").
    pub fn name(&self) -> &'static str {
        (self.header().vtable.name)()
    }

    /// Whether two handles are the same callback.
    pub fn ptr_eq(&self, other: &Handle) -> bool {
        self.0 == other.0
    }

    /// Marks the handle as sitting in a timer heap (`true`) or taken out of it.
    /// Only a scheduled timer counts towards the heap's cancelled total.
    pub fn set_scheduled(&self, scheduled: bool) {
        let state = self.state();
        if scheduled {
            state.set(state.get() | SCHEDULED);
        } else {
            state.set(state.get() & !SCHEDULED);
        }
    }

    fn scheduled(&self) -> bool {
        self.state().get() & SCHEDULED != 0
    }
}

impl Clone for Handle {
    fn clone(&self) -> Handle {
        let refs = &self.header().refs;
        refs.set(refs.get() + 1);
        Handle(self.0)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let header = self.header();
        let refs = header.refs.get() - 1;
        header.refs.set(refs);
        if refs > 0 {
            return;
        }
        let vtable = header.vtable;
        // SAFETY: the last count: nobody else can reach the block. The
        // callback (if still there: not after it ran) is dropped, then the
        // memory is freed; a panic in the callback's destructor leaks the
        // block, nothing worse.
        unsafe {
            if header.state.get() & TAKEN == 0 {
                (vtable.take)(self.0, false);
            }
            crate::pool::free_in(self.0.cast(), vtable.class, vtable.layout);
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state().get();
        let status = if state & CANCELLED != 0 {
            "cancelled"
        } else if state & RAN != 0 {
            "ran"
        } else {
            "pending"
        };
        write!(f, "<Handle {} {}>", self.name(), status)
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
    fn pooled_and_large_callbacks_run_and_free() {
        // Small closures come from the pool; a 1 KiB one from the allocator.
        let count = Rc::new(Cell::new(0));
        for round in 0..3 {
            let handles: Vec<Handle> = (0..2000)
                .map(|i| {
                    let count = count.clone();
                    if i % 3 == 0 {
                        let big = [round as u8; 1024];
                        Handle::new(move || count.set(count.get() + usize::from(big[0] == round as u8)))
                    } else {
                        Handle::new(move || count.set(count.get() + 1))
                    }
                })
                .collect();
            let clones: Vec<Handle> = handles.iter().map(Handle::clone).collect();
            for handle in &handles {
                handle.run();
            }
            drop(handles);
            assert!(clones.iter().all(Handle::has_run));
        }
        assert_eq!(count.get(), 6000);
        assert_eq!(Rc::strong_count(&count), 1, "every callback was dropped");
    }

    #[test]
    fn a_callback_may_cancel_and_drop_its_own_handle() {
        let slot: Rc<std::cell::RefCell<Option<Handle>>> = Rc::default();
        let inner = slot.clone();
        let handle = Handle::new(move || {
            if let Some(me) = inner.borrow_mut().take() {
                me.cancel();
                drop(me);
            }
        });
        *slot.borrow_mut() = Some(handle.clone());
        handle.run();
        assert!(handle.has_run());
        assert!(handle.cancelled());
        assert!(slot.borrow().is_none());
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
