//! Tasks: a future driven by a loop (asyncio's `Task`), the user's
//! [`Task<T>`] handle, the loop's type-erased [`TaskRef`], and the
//! [`Scheduler`] a task's waker pushes to.
//!
//! A file of its own because it holds the one piece of hand-made unsafe
//! plumbing of the runtime: a task is one block (header, then the future or
//! its output) with an atomic reference count, shared between the loop's task
//! set, the user's `Task<T>`, queued steps and wakers that may travel to
//! other threads. The header points to a static table of the future type's
//! functions, so every handle is a thin pointer and the waker's vtable is one
//! static table for all tasks. The block comes from the per-thread pool
//! (`pool.rs`), not from `malloc` each time.
//!
//! The threading rule that makes it sound: everything in a task except its
//! state word, its scheduler and its reference count is touched only on the
//! loop's thread (the loop is `!Send`, and so are `Task<T>` and the loop's
//! run path). Wakers may be cloned, woken and dropped anywhere; a wake from
//! another thread goes through the scheduler's thread-safe queue. The future
//! and the output are always dropped on the loop's thread: on completion, by
//! `Task<T>`'s drop, or by [`TaskRef::abandon`] when the loop closes, so when
//! a foreign thread drops the last reference only plain memory is freed.
//!
//! The atomics cost only when another thread may hold a reference: while the
//! count equals the references the loop's thread knows it holds (the one it
//! runs or lets go of, and the `Task<T>` handle if alive), no other thread
//! can reach the task or get a reference without this thread handing one out,
//! so a step clears and sets state bits, and the task set lets go of its
//! reference, with plain stores (`held_here_only`); a count of one frees the
//! block without a read-modify-write.

use std::alloc::Layout;
use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{self, AtomicU32, AtomicUsize, Ordering};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::event_loop::{WeakEventLoop, panic_message};
use crate::{Error, ErrorKind, EventLoop, ExceptionContext};

/// Where a task's wake-ups go: the loop's ready queue when woken on the loop's
/// thread, its thread-safe queue (plus a wake-up of the poll) otherwise.
///
/// Each method is called at most once per wake-up: the task's state word
/// already coalesces repeated wakes.
pub trait Scheduler: Send + Sync + 'static {
    /// Whether the caller runs on the loop's thread.
    fn is_local(&self) -> bool;
    /// Queues one step of the task the loop registered under `key` (see
    /// [`TaskRef::set_key`]). Called only on the loop's thread; costs no
    /// reference count, since the loop's task set owns the task.
    fn schedule_local(&self, key: usize);
    /// Queues one step of `task` from another thread.
    fn schedule_remote(&self, task: TaskRef);
    /// Called as a task that held this scheduler ends, on whichever thread
    /// lets go of it last. `true`: the scheduler has taken the task's strong
    /// reference back (to hand it to a later task, saving two atomic
    /// operations per task), so the task forgets its `Arc` instead of
    /// dropping it. The default keeps nothing.
    fn reclaim_task_ref(&self) -> bool {
        false
    }
}

const SCHEDULED: u32 = 1 << 0;
const COMPLETE: u32 = 1 << 2;
const CANCEL_REQUESTED: u32 = 1 << 3;
const CANCELLED: u32 = 1 << 4;
const PANICKED: u32 = 1 << 5;

enum Failure {
    Cancelled,
    Panicked(Box<dyn Any + Send>),
}

enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, Failure>),
    Consumed,
}

/// 64 bytes: `handle_alive` fills the padding after `state`.
#[repr(C)]
struct Header {
    refs: AtomicUsize,
    state: AtomicU32,
    // Loop-thread only, see the module docs (as is `join_waker`).
    handle_alive: Cell<bool>,
    vtable: &'static TaskVTable,
    /// Taken out in `destroy`, where the scheduler may reclaim it.
    scheduler: ManuallyDrop<Arc<dyn Scheduler>>,
    /// Written on the loop's thread; atomic (relaxed: a plain load or store
    /// on the targets aio builds for) so that [`TaskRef::key`], a safe
    /// method of a `Send` handle, cannot race with it.
    key: AtomicUsize,
    join_waker: UnsafeCell<Option<Waker>>,
}

/// The functions of one future type. Every one takes the task's header
/// pointer (the block's own pointer, with the provenance of the whole block).
struct TaskVTable {
    /// One step: poll, or end a cancelled task. `true` when the task is
    /// complete and no step of it is queued any more.
    run: unsafe fn(NonNull<Header>, &EventLoop) -> bool,
    /// Ends a pending task without running it (the loop is closing).
    abandon: unsafe fn(NonNull<Header>, Option<&EventLoop>),
    /// Moves the output, if finished, into `*out`, an
    /// `Option<Result<F::Output, Failure>>`.
    take_output: unsafe fn(NonNull<Header>, out: *mut ()),
    /// Drops an output nobody took, reporting an unretrieved panic.
    release_output: unsafe fn(NonNull<Header>, &WeakEventLoop),
    /// Takes the message of a panic stored for a `Task` nobody awaited.
    take_unretrieved_panic: unsafe fn(NonNull<Header>) -> Option<String>,
    /// Drops the block in place and frees it (the last reference is gone).
    destroy: unsafe fn(NonNull<Header>),
    name: fn() -> &'static str,
}

#[repr(C)]
struct TaskCell<F: Future> {
    header: Header,
    stage: UnsafeCell<Stage<F>>,
}

/// Shared access to a task's header.
///
/// # Safety
/// `task` points to a live task (the caller holds a reference).
unsafe fn header<'a>(task: NonNull<Header>) -> &'a Header {
    // SAFETY: per this function's contract.
    unsafe { task.as_ref() }
}

fn retain(task: NonNull<Header>) {
    // SAFETY: callers hold a reference, so the task is alive.
    let old = unsafe { header(task) }.refs.fetch_add(1, Ordering::Relaxed);
    if old > isize::MAX as usize {
        // As `Arc` does: a count this high means leaked clones; stop.
        std::process::abort();
    }
}

/// # Safety
/// The caller gives up one reference it holds.
unsafe fn release(task: NonNull<Header>) {
    // SAFETY: the caller holds a reference until here.
    let header = unsafe { header(task) };
    // A count of one is ours alone: nobody else can take or give back a
    // reference, so the block goes without a read-modify-write. The acquire
    // load pairs with the release of every earlier holder's decrement.
    if header.refs.load(Ordering::Acquire) == 1 || header.refs.fetch_sub(1, Ordering::Release) == 1 {
        atomic::fence(Ordering::Acquire);
        let destroy = header.vtable.destroy;
        // SAFETY: that was the last reference.
        unsafe { destroy(task) };
    }
}

/// Whether every reference to the task is held on the loop's thread: the
/// caller's one and the `Task<T>` handle's, if alive. No other thread can
/// then reach the state word or the count, nor get a reference without this
/// thread handing one out, so they may be updated with plain stores until
/// then. The acquire load pairs with every earlier holder's release.
///
/// # Safety
/// On the loop's thread; the caller holds a reference.
unsafe fn held_here_only(header: &Header) -> bool {
    header.refs.load(Ordering::Acquire) == 1 + usize::from(header.handle_alive.get())
}

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(clone_waker, wake_waker, wake_by_ref_waker, drop_waker);

unsafe fn clone_waker(ptr: *const ()) -> RawWaker {
    // SAFETY: `ptr` is a task header; the waker being cloned holds a count.
    retain(unsafe { NonNull::new_unchecked(ptr.cast_mut().cast()) });
    RawWaker::new(ptr, &WAKER_VTABLE)
}

unsafe fn wake_waker(ptr: *const ()) {
    // SAFETY: as above; this waker owns one count, released after the wake.
    let task = unsafe { NonNull::new_unchecked(ptr.cast_mut().cast::<Header>()) };
    // SAFETY: our count keeps the task (and its scheduler) alive meanwhile.
    unsafe { wake(task) };
    // SAFETY: the waker's own count.
    unsafe { release(task) };
}

unsafe fn wake_by_ref_waker(ptr: *const ()) {
    // SAFETY: the waker holds a count for the duration of the call.
    unsafe { wake(NonNull::new_unchecked(ptr.cast_mut().cast::<Header>())) };
}

unsafe fn drop_waker(ptr: *const ()) {
    // SAFETY: the waker owns one count, released here.
    unsafe { release(NonNull::new_unchecked(ptr.cast_mut().cast::<Header>())) };
}

/// Marks the task scheduled and queues a step, unless one is queued already
/// or the task is done.
///
/// # Safety
/// The caller holds a reference for the whole call: it keeps the task, and so
/// the scheduler it holds, alive while the scheduler runs.
unsafe fn wake(task: NonNull<Header>) {
    // SAFETY: per this function's contract.
    let header = unsafe { header(task) };
    let mut state = header.state.load(Ordering::Acquire);
    loop {
        if state & (SCHEDULED | COMPLETE) != 0 {
            return;
        }
        match header.state.compare_exchange_weak(
            state,
            state | SCHEDULED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => break,
            Err(actual) => state = actual,
        }
    }
    if header.scheduler.is_local() {
        header
            .scheduler
            .schedule_local(header.key.load(Ordering::Relaxed));
    } else {
        retain(task);
        header.scheduler.schedule_remote(TaskRef(task));
    }
}

/// Wakes the task who awaits this one. Loop thread only.
fn wake_joiner(header: &Header) {
    // SAFETY: loop thread (module docs); no other reference to the slot.
    if let Some(waker) = unsafe { (*header.join_waker.get()).take() } {
        waker.wake();
    }
}

impl<F: Future + 'static> TaskCell<F> {
    const VTABLE: TaskVTable = TaskVTable {
        run: Self::run,
        abandon: Self::abandon,
        take_output: Self::take_output,
        release_output: Self::release_output,
        take_unretrieved_panic: Self::take_unretrieved_panic,
        destroy: Self::destroy,
        name: std::any::type_name::<F>,
    };

    /// # Safety
    /// `task` is a live `TaskCell<F>`; loop thread; no other reference into
    /// the stage is alive.
    #[allow(
        clippy::mut_from_ref,
        reason = "the UnsafeCell is confined to the loop thread"
    )]
    unsafe fn stage<'a>(task: NonNull<Header>) -> &'a mut Stage<F> {
        // SAFETY: per this function's contract.
        unsafe { &mut *task.cast::<TaskCell<F>>().as_ref().stage.get() }
    }

    /// Drops the future where it lies (it is pinned: moving it first would
    /// break a future that borrows its own locals), catching a panic in its
    /// destructor, and leaves the stage `Consumed`.
    ///
    /// # Safety
    /// As for [`stage`](Self::stage).
    unsafe fn drop_future(task: NonNull<Header>) -> Result<(), Box<dyn Any + Send>> {
        // SAFETY: per this function's contract.
        let stage: *mut Stage<F> = unsafe { Self::stage(task) };
        // SAFETY: the stage is initialised; it is dropped once, here, in
        // place. After a panic part of it may be dropped already, so it is
        // overwritten below without being dropped again.
        let dropped = catch_unwind(AssertUnwindSafe(|| unsafe { std::ptr::drop_in_place(stage) }));
        // SAFETY: `stage` is valid for writes; its old value is gone.
        unsafe { stage.write(Stage::Consumed) };
        dropped
    }

    /// Stores the task's end and wakes whoever awaits it.
    ///
    /// # Safety
    /// As for [`stage`](Self::stage).
    unsafe fn finish(
        task: NonNull<Header>,
        event_loop: Option<&EventLoop>,
        result: Result<F::Output, Failure>,
    ) {
        // SAFETY: the caller holds a reference.
        let header = unsafe { header(task) };
        let flag = match &result {
            Ok(_) => 0,
            Err(Failure::Cancelled) => CANCELLED,
            Err(Failure::Panicked(_)) => PANICKED,
        };
        if header.handle_alive.get() {
            // SAFETY: per this function's contract.
            unsafe { *Self::stage(task) = Stage::Finished(result) };
        } else if let Err(Failure::Panicked(payload)) = result {
            let context = ExceptionContext::new("Task exception was never retrieved")
                .with_exception(panic_message(&*payload))
                .with_task(std::any::type_name::<F>());
            match event_loop {
                Some(event_loop) => event_loop.call_exception_handler(context),
                None => crate::event_loop::default_exception_handler(&context),
            }
        } else {
            drop(result);
        }
        // SAFETY: loop thread (the caller's contract), holding a reference.
        if unsafe { held_here_only(header) } {
            let state = header.state.load(Ordering::Relaxed);
            header.state.store(state | COMPLETE | flag, Ordering::Release);
        } else {
            header.state.fetch_or(COMPLETE | flag, Ordering::AcqRel);
        }
        wake_joiner(header);
    }

    fn no_step_queued(header: &Header) -> bool {
        header.state.load(Ordering::Acquire) & SCHEDULED == 0
    }

    unsafe fn run(task: NonNull<Header>, event_loop: &EventLoop) -> bool {
        // SAFETY: the loop runs a step while holding a reference, on its
        // thread (the vtable's contract).
        let header = unsafe { header(task) };
        // SAFETY: as above.
        let previous = if unsafe { held_here_only(header) } {
            let state = header.state.load(Ordering::Relaxed);
            header.state.store(state & !SCHEDULED, Ordering::Release);
            state
        } else {
            header.state.fetch_and(!SCHEDULED, Ordering::AcqRel)
        };
        if previous & COMPLETE != 0 {
            // A step queued before the task completed: now nothing refers to
            // the task's key any more.
            return true;
        }
        if previous & CANCEL_REQUESTED != 0 {
            // SAFETY: loop thread, no reference into the stage alive.
            let failure = match unsafe { Self::drop_future(task) } {
                Ok(()) => Failure::Cancelled,
                Err(payload) => Failure::Panicked(payload),
            };
            // SAFETY: as above.
            unsafe { Self::finish(task, Some(event_loop), Err(failure)) };
            return Self::no_step_queued(header);
        }
        // SAFETY: loop thread; this reference ends before the stage is
        // touched again (in `drop_future`/`finish` below).
        let Stage::Running(future) = (unsafe { Self::stage(task) }) else {
            return false;
        };
        // A borrowed waker: no reference-count traffic per poll. `task` is
        // the block's own pointer, with the provenance the waker needs.
        let raw = RawWaker::new(task.as_ptr().cast_const().cast(), &WAKER_VTABLE);
        // SAFETY: the vtable's functions uphold the `RawWaker` contract for a
        // live task header, and `ManuallyDrop` keeps this borrowed waker from
        // releasing a count it does not own.
        let waker = ManuallyDrop::new(unsafe { Waker::from_raw(raw) });
        let mut cx = Context::from_waker(&waker);
        // SAFETY: the future lives inside the task's block and is never moved
        // out until it is dropped in place by `drop_future`.
        let pinned = unsafe { Pin::new_unchecked(future) };
        let polled = catch_unwind(AssertUnwindSafe(|| pinned.poll(&mut cx)));
        let result = match polled {
            Ok(Poll::Pending) => return false,
            // SAFETY: loop thread; the poll's borrow has ended.
            Ok(Poll::Ready(output)) => match unsafe { Self::drop_future(task) } {
                Ok(()) => Ok(output),
                Err(payload) => Err(Failure::Panicked(payload)),
            },
            Err(payload) => {
                // The future may be half torn down: drop it now, ignoring a
                // second panic from its destructor.
                // SAFETY: as above.
                let _ = unsafe { Self::drop_future(task) };
                Err(Failure::Panicked(payload))
            }
        };
        // SAFETY: as above.
        unsafe { Self::finish(task, Some(event_loop), result) };
        Self::no_step_queued(header)
    }

    unsafe fn abandon(task: NonNull<Header>, event_loop: Option<&EventLoop>) {
        // SAFETY: the caller holds a reference, on the loop's thread.
        let header = unsafe { header(task) };
        if header.state.load(Ordering::Acquire) & COMPLETE != 0 {
            return;
        }
        if let Some(event_loop) = event_loop
            && event_loop.get_debug()
        {
            event_loop.call_exception_handler(
                ExceptionContext::new("Task was destroyed but it is pending!")
                    .with_task(std::any::type_name::<F>()),
            );
        }
        // SAFETY: loop thread, no reference into the stage alive.
        let failure = match unsafe { Self::drop_future(task) } {
            Ok(()) => Failure::Cancelled,
            Err(payload) => Failure::Panicked(payload),
        };
        // SAFETY: as above.
        unsafe { Self::finish(task, event_loop, Err(failure)) };
    }

    unsafe fn take_output(task: NonNull<Header>, out: *mut ()) {
        // SAFETY: the caller holds a reference, on the loop's thread.
        if unsafe { header(task) }.state.load(Ordering::Acquire) & COMPLETE == 0 {
            return;
        }
        // SAFETY: loop thread; `out` is an `Option<Result<F::Output,
        // Failure>>` (the `Task<F::Output>` that calls us made it).
        unsafe {
            if let Stage::Finished(result) = mem::replace(Self::stage(task), Stage::Consumed) {
                *out.cast::<Option<Result<F::Output, Failure>>>() = Some(result);
            }
        }
    }

    unsafe fn release_output(task: NonNull<Header>, event_loop: &WeakEventLoop) {
        // SAFETY: the caller (the `Task<T>` being dropped) holds a reference.
        unsafe { header(task) }.handle_alive.set(false);
        // SAFETY: loop thread (`Task<T>` is `!Send`).
        let stage = unsafe { Self::stage(task) };
        if !matches!(stage, Stage::Finished(_)) {
            return;
        }
        if let Stage::Finished(Err(Failure::Panicked(payload))) = mem::replace(stage, Stage::Consumed) {
            let context = ExceptionContext::new("Task exception was never retrieved")
                .with_exception(panic_message(&*payload))
                .with_task(std::any::type_name::<F>());
            match event_loop.upgrade().or_else(crate::running::try_get_running_loop) {
                Some(event_loop) => event_loop.call_exception_handler(context),
                None => crate::event_loop::default_exception_handler(&context),
            }
        }
    }

    unsafe fn take_unretrieved_panic(task: NonNull<Header>) -> Option<String> {
        // SAFETY: `TaskRef` methods run on the loop thread (module docs).
        let stage = unsafe { Self::stage(task) };
        if let Stage::Finished(Err(Failure::Panicked(payload))) = stage {
            let message = panic_message(&**payload);
            *stage = Stage::Consumed;
            Some(message)
        } else {
            None
        }
    }

    unsafe fn destroy(task: NonNull<Header>) {
        let cell = task.cast::<TaskCell<F>>();
        // SAFETY: the last reference is gone: nobody else can reach the block.
        // Its stage was consumed on the loop's thread (module docs), unless
        // the loop was leaked, in which case we are on that thread or never
        // get here. The scheduler is taken out once, here, and the header's
        // `ManuallyDrop` leaves it alone as the block drops.
        let scheduler = unsafe {
            let scheduler = ManuallyDrop::take(&mut (*cell.as_ptr()).header.scheduler);
            std::ptr::drop_in_place(cell.as_ptr());
            crate::pool::free(task.cast(), Layout::new::<TaskCell<F>>());
            scheduler
        };
        if scheduler.reclaim_task_ref() {
            // The scheduler holds this strong reference now.
            mem::forget(scheduler);
        }
    }
}

/// Makes a task for `future` that wakes through `scheduler`; the loop then
/// registers the returned [`TaskRef`] and schedules its first step.
pub(crate) fn new_task<F>(
    future: F,
    scheduler: Arc<dyn Scheduler>,
    event_loop: WeakEventLoop,
) -> (Task<F::Output>, TaskRef)
where
    F: Future + 'static,
    F::Output: 'static,
{
    let block = crate::pool::alloc(Layout::new::<TaskCell<F>>()).cast::<TaskCell<F>>();
    // SAFETY: fresh memory with room and alignment for a `TaskCell<F>`.
    unsafe {
        block.as_ptr().write(TaskCell {
            header: Header {
                refs: AtomicUsize::new(2),
                state: AtomicU32::new(SCHEDULED),
                handle_alive: Cell::new(true),
                vtable: &TaskCell::<F>::VTABLE,
                scheduler: ManuallyDrop::new(scheduler),
                key: AtomicUsize::new(usize::MAX),
                join_waker: UnsafeCell::new(None),
            },
            stage: UnsafeCell::new(Stage::Running(future)),
        });
    }
    let task = block.cast::<Header>();
    // The two references made above: the user's handle and the loop's.
    (
        Task {
            task,
            event_loop,
            _marker: PhantomData,
        },
        TaskRef(task),
    )
}

/// A task running on a loop; await it for its output.
///
/// Awaiting gives `Ok(output)`, or `Err` with [`Error::is_cancelled`] for a
/// cancelled task, or `Err` of kind `Panicked` for a task that panicked.
/// Dropping a `Task` does not cancel it: the task runs on, detached.
pub struct Task<T> {
    task: NonNull<Header>,
    /// The task's loop, to report an unretrieved panic to when the handle
    /// drops. Weak, so a handle kept inside the loop makes no cycle.
    event_loop: WeakEventLoop,
    /// `!Send`: the output is touched on the loop's thread only.
    _marker: PhantomData<(T, *const ())>,
}

impl<T> Task<T> {
    fn header(&self) -> &Header {
        // SAFETY: the handle holds a reference.
        unsafe { header(self.task) }
    }

    /// Requests cancellation: at its next step the task's future is dropped
    /// (unwinding whatever it awaits) and the task ends cancelled. Returns
    /// `false` if the task is done already.
    pub fn cancel(&self) -> bool {
        request_cancel(self.task)
    }

    /// Whether the task ended by cancellation.
    pub fn cancelled(&self) -> bool {
        self.header().state.load(Ordering::Acquire) & CANCELLED != 0
    }

    /// The loop's type-erased handle to this task (to cancel it from a
    /// callback, say).
    pub fn task_ref(&self) -> TaskRef {
        retain(self.task);
        TaskRef(self.task)
    }

    /// Whether the task is done: output ready, cancelled or panicked.
    pub fn done(&self) -> bool {
        self.header().state.load(Ordering::Acquire) & COMPLETE != 0
    }

    fn take_output(&self) -> Option<Result<T, Failure>> {
        let mut out: Option<Result<T, Failure>> = None;
        // SAFETY: we hold a reference, on the loop's thread, and `out` has
        // the type the task's `take_output` writes (`T` is its output).
        unsafe { (self.header().vtable.take_output)(self.task, (&raw mut out).cast()) };
        out
    }

    pub(crate) fn take_result_resuming_panic(&self) -> Result<T, Error> {
        match self.take_output() {
            Some(Ok(output)) => Ok(output),
            Some(Err(Failure::Cancelled)) => Err(Error::cancelled()),
            Some(Err(Failure::Panicked(payload))) => resume_unwind(payload),
            None => Err(Error::new(
                ErrorKind::Stopped,
                "Event loop stopped before Future completed.",
            )),
        }
    }
}

/// Marks `task` for cancellation and queues a step; `false` if it is done.
fn request_cancel(task: NonNull<Header>) -> bool {
    // SAFETY: callers hold a reference.
    let header = unsafe { header(task) };
    if header.state.load(Ordering::Acquire) & COMPLETE != 0 {
        return false;
    }
    header.state.fetch_or(CANCEL_REQUESTED, Ordering::AcqRel);
    // Cancellation must reach a task asleep on anything: queue a step.
    // SAFETY: the caller's reference keeps the task alive.
    unsafe { wake(task) };
    true
}

impl<T> Future for Task<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(result) = self.take_output() {
            return Poll::Ready(match result {
                Ok(output) => Ok(output),
                Err(Failure::Cancelled) => Err(Error::cancelled()),
                Err(Failure::Panicked(payload)) => Err(Error::new(
                    ErrorKind::Panicked,
                    format!("the task panicked: {}", panic_message(&*payload)),
                )),
            });
        }
        if self.done() {
            return Poll::Ready(Err(Error::new(
                ErrorKind::InvalidArgument,
                "the task's result was taken already",
            )));
        }
        // SAFETY: `Task<T>` is `!Send`, so this runs on the loop thread, the
        // only one touching the slot.
        let slot = unsafe { &mut *self.header().join_waker.get() };
        match slot {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        // SAFETY: we hold a reference, on the loop's thread; then we give it up.
        unsafe {
            (self.header().vtable.release_output)(self.task, &self.event_loop);
            release(self.task);
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = self.header();
        write!(
            f,
            "<Task {} {}>",
            describe_state(header.state.load(Ordering::Acquire)),
            (header.vtable.name)()
        )
    }
}

fn describe_state(state: u32) -> &'static str {
    if state & CANCELLED != 0 {
        "cancelled"
    } else if state & PANICKED != 0 {
        "panicked"
    } else if state & COMPLETE != 0 {
        "finished"
    } else {
        "pending"
    }
}

/// The loop's handle to a task, whatever its output type: what the task
/// set, remote steps and `all_tasks` hold. `Send`, so a wake from another
/// thread can queue it; the methods that touch the future or the output
/// ([`run`](TaskRef::run), [`abandon`](TaskRef::abandon),
/// [`take_unretrieved_panic`](TaskRef::take_unretrieved_panic)) are
/// `unsafe`, for the loop's thread only.
pub struct TaskRef(NonNull<Header>);

// SAFETY: other threads reach a task only through wakers and `TaskRef`s
// queued on the scheduler's thread-safe queue; they touch the state word and
// the reference count (atomics) and the scheduler (`Send + Sync`). Everything
// else is used on the loop's thread only, and the future and output are
// dropped there (module docs).
unsafe impl Send for TaskRef {}
// SAFETY: as for `Send` above.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    fn header(&self) -> &Header {
        // SAFETY: a `TaskRef` holds a reference.
        unsafe { header(self.0) }
    }

    fn state(&self) -> u32 {
        self.header().state.load(Ordering::Acquire)
    }

    /// Runs one step of the task on `event_loop`, its own loop. Returns
    /// `true` when the task is complete and no step of it is queued any
    /// more, so the loop can drop it from its task set.
    ///
    /// # Safety
    /// On the thread of the loop the task was created on, the only thread
    /// that may touch its future (a `TaskRef` is `Send`, so that wakes from
    /// other threads can queue it; running it elsewhere would poll a future
    /// that may not be `Send` on a second thread). Loops call this for the
    /// steps their scheduler queued.
    ///
    /// ```compile_fail
    /// # fn check(task: aio_events::TaskRef, event_loop: &aio_events::EventLoop) {
    /// task.run(event_loop); // needs `unsafe`: only the task's loop may run it
    /// # }
    /// ```
    pub unsafe fn run(&self, event_loop: &EventLoop) -> bool {
        // SAFETY: we hold a reference, and the caller runs on the task's
        // loop's thread.
        unsafe { (self.header().vtable.run)(self.0, event_loop) }
    }

    /// A pointer to the task that a loop can run through
    /// [`RawTaskPtr::run`] without touching the reference count.
    pub fn as_raw(&self) -> RawTaskPtr {
        RawTaskPtr(self.0)
    }

    /// Requests cancellation and queues a step; `false` if already done.
    pub fn cancel(&self) -> bool {
        request_cancel(self.0)
    }

    /// Queues a step of the task unless one is queued or the task is done.
    pub fn wake(&self) {
        // SAFETY: our reference keeps the task alive.
        unsafe { wake(self.0) };
    }

    /// Whether the task is done.
    pub fn done(&self) -> bool {
        self.state() & COMPLETE != 0
    }

    /// Whether the task ended by cancellation.
    pub fn cancelled(&self) -> bool {
        self.state() & CANCELLED != 0
    }

    /// Whether the task ended by a panic.
    pub fn panicked(&self) -> bool {
        self.state() & PANICKED != 0
    }

    /// The message of a panic nobody has retrieved yet (the `Task` handle is
    /// alive but was not awaited); takes it, so it is reported once.
    ///
    /// # Safety
    /// On the thread of the task's loop (the output it reads is that
    /// thread's).
    pub unsafe fn take_unretrieved_panic(&self) -> Option<String> {
        // SAFETY: we hold a reference; the caller is on the loop's thread.
        unsafe { (self.header().vtable.take_unretrieved_panic)(self.0) }
    }

    /// Ends a pending task without running it: drops its future. Loops call
    /// this for every pending task when they close; in debug mode it reports
    /// "Task was destroyed but it is pending!".
    ///
    /// # Safety
    /// As for [`run`](TaskRef::run): on the thread of the task's loop, where
    /// its future may be dropped.
    pub unsafe fn abandon(&self, event_loop: Option<&EventLoop>) {
        // SAFETY: we hold a reference; the caller is on the loop's thread.
        unsafe { (self.header().vtable.abandon)(self.0, event_loop) };
    }

    /// The loop's key for the task in its task set.
    pub fn key(&self) -> usize {
        self.header().key.load(Ordering::Relaxed)
    }

    /// Sets the loop's key for the task.
    pub fn set_key(&self, key: usize) {
        self.header().key.store(key, Ordering::Relaxed);
    }

    /// The future's type name.
    pub fn name(&self) -> &'static str {
        (self.header().vtable.name)()
    }

    /// Whether both refer to the same task.
    pub fn ptr_eq(&self, other: &TaskRef) -> bool {
        self.0 == other.0
    }

    /// Drops this reference as a loop lets go of a task leaving its set:
    /// with a plain store instead of an atomic read-modify-write when the
    /// only other reference is the task's `Task<T>` handle, held on this
    /// thread too.
    ///
    /// # Safety
    /// On the loop's thread (the task's own loop).
    pub unsafe fn release_on_loop_thread(self) {
        let this = ManuallyDrop::new(self);
        let header = this.header();
        // SAFETY: per this function's contract; `this` holds a reference.
        if header.handle_alive.get() && unsafe { held_here_only(header) } {
            // Ours and the handle's, and nobody else can get one: the handle
            // keeps the block.
            header.refs.store(1, Ordering::Release);
            return;
        }
        // SAFETY: we give up the reference we hold.
        unsafe { release(this.0) };
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> TaskRef {
        retain(self.0);
        TaskRef(self.0)
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        // SAFETY: we give up the reference we hold.
        unsafe { release(self.0) };
    }
}

/// A borrowed pointer to a task, for a loop's ready queue: see
/// [`TaskRef::as_raw`].
#[derive(Clone, Copy)]
pub struct RawTaskPtr(NonNull<Header>);

impl RawTaskPtr {
    /// Runs one step of the task, as [`TaskRef::run`].
    ///
    /// # Safety
    /// The `TaskRef` this pointer came from (or a clone of it) must stay
    /// alive until this call returns, held by the loop on its own thread
    /// (no other thread may use it meanwhile).
    pub unsafe fn run(self, event_loop: &EventLoop) -> bool {
        // SAFETY: the caller keeps a reference alive, so the task is.
        unsafe { (header(self.0).vtable.run)(self.0, event_loop) }
    }
}

impl fmt::Debug for RawTaskPtr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawTaskPtr")
    }
}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Task {} {}>", describe_state(self.state()), self.name())
    }
}
