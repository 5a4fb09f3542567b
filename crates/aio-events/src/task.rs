//! Tasks: a future driven by a loop (asyncio's `Task`), the user's
//! [`Task<T>`] handle, the loop's type-erased [`TaskRef`], and the
//! [`Scheduler`] a task's waker pushes to.
//!
//! A file of its own because it holds the one piece of hand-made unsafe
//! plumbing in this crate: a single allocation per task (state word, future or
//! output, join waker) shared between the loop, the user's handle and wakers
//! that may travel to other threads.
//!
//! The threading rule that makes it sound: everything in a task except its
//! state word, its scheduler and its reference count is touched only on the
//! loop's thread (the loop is `!Send`, and so are `Task<T>` and the loop's
//! run path). Wakers may be cloned, woken and dropped anywhere; a wake from
//! another thread goes through the scheduler's thread-safe queue. The future
//! and the output are always dropped on the loop's thread: on completion, by
//! `Task<T>`'s drop, or by [`TaskRef::abandon`] when the loop closes, so when
//! a foreign thread drops the last waker only plain memory is freed.

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::event_loop::WeakEventLoop;
use crate::event_loop::panic_message;
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

struct TaskCell<F: Future> {
    state: AtomicU32,
    scheduler: Arc<dyn Scheduler>,
    // Loop-thread only, see the module docs.
    key: Cell<usize>,
    handle_alive: Cell<bool>,
    stage: UnsafeCell<Stage<F>>,
    join_waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: other threads reach a `TaskCell` only through wakers and `TaskRef`s
// queued on the scheduler's thread-safe queue; they touch `state` (atomic),
// `scheduler` (`Send + Sync`) and the `Arc` count. The `Cell`/`UnsafeCell`
// fields are used only on the loop's thread, and the future and output are
// dropped there before the cell can be freed elsewhere (module docs).
unsafe impl<F: Future> Send for TaskCell<F> {}
// SAFETY: as for `Send` above.
unsafe impl<F: Future> Sync for TaskCell<F> {}

/// The loop-facing, type-erased side of a task.
trait RawTask: Send + Sync {
    /// `this` is `self` as the data pointer of its `Arc` (from
    /// `Arc::as_ptr`), which wakers need: a pointer derived from `&self`
    /// would not cover the `Arc`'s counts.
    fn run(&self, this: *const (), event_loop: &EventLoop) -> bool;
    fn wake_arc(self: Arc<Self>);
    fn cancel(&self) -> bool;
    fn state(&self) -> u32;
    fn abandon(&self, event_loop: Option<&EventLoop>);
    fn take_unretrieved_panic(&self) -> Option<String>;
    fn key(&self) -> &Cell<usize>;
    fn name(&self) -> &'static str;
}

/// The output side of a task, typed by its output.
trait JoinTarget<T> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, Failure>>;
    fn take_output(&self) -> Option<Result<T, Failure>>;
    fn cancel(self: Arc<Self>) -> bool;
    fn to_task_ref(self: Arc<Self>) -> TaskRef;
    fn state(&self) -> u32;
    fn release_handle(&self, event_loop: Option<EventLoop>);
    fn name(&self) -> &'static str;
}

impl<F: Future + 'static> TaskCell<F> {
    const VTABLE: RawWakerVTable = RawWakerVTable::new(
        Self::clone_waker,
        Self::wake_waker,
        Self::wake_by_ref_waker,
        Self::drop_waker,
    );

    unsafe fn clone_waker(ptr: *const ()) -> RawWaker {
        // SAFETY: `ptr` came from `Arc::into_raw`/`Arc::as_ptr` of a live
        // `Arc<Self>` (the waker being cloned holds a count).
        unsafe { Arc::increment_strong_count(ptr.cast::<Self>()) };
        RawWaker::new(ptr, &Self::VTABLE)
    }

    unsafe fn wake_waker(ptr: *const ()) {
        // SAFETY: the waker owns one strong count, which `from_raw` takes over.
        let task = unsafe { Arc::from_raw(ptr.cast::<Self>()) };
        // Schedule a clone while our count keeps the task (and with it the
        // scheduler) alive; ours is released after.
        task.wake_by_ref();
    }

    unsafe fn wake_by_ref_waker(ptr: *const ()) {
        // SAFETY: the waker holds a strong count for the duration of the call;
        // `ManuallyDrop` keeps us from releasing it.
        let task = ManuallyDrop::new(unsafe { Arc::from_raw(ptr.cast::<Self>()) });
        task.wake_by_ref();
    }

    unsafe fn drop_waker(ptr: *const ()) {
        // SAFETY: the waker owns one strong count, released here.
        unsafe { Arc::decrement_strong_count(ptr.cast::<Self>()) };
    }

    /// Marks the task scheduled and hands a new reference to the scheduler,
    /// unless it is scheduled already or done.
    ///
    /// The caller's reference keeps the task, and so the scheduler it holds,
    /// alive for the whole call: the scheduler may drop the reference it is
    /// given (a closed loop does) without pulling itself from under its feet.
    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state & (SCHEDULED | COMPLETE) != 0 {
                return;
            }
            match self.state.compare_exchange_weak(
                state,
                state | SCHEDULED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => state = actual,
            }
        }
        if self.scheduler.is_local() {
            self.scheduler.schedule_local(self.key.get());
        } else {
            self.scheduler
                .schedule_remote(TaskRef(Arc::clone(self) as Arc<dyn RawTask>));
        }
    }

    /// Whether no step of the task is queued: the loop may then forget the
    /// task's key, which a queued local step would still name.
    fn no_step_queued(&self) -> bool {
        self.state.load(Ordering::Acquire) & SCHEDULED == 0
    }

    /// # Safety
    /// Loop thread only, with no other reference into the stage alive.
    #[allow(
        clippy::mut_from_ref,
        reason = "the UnsafeCell is confined to the loop thread"
    )]
    unsafe fn stage(&self) -> &mut Stage<F> {
        // SAFETY: the caller is on the loop thread, which is the only one
        // touching `stage`, and holds no other reference into it.
        unsafe { &mut *self.stage.get() }
    }

    /// Stores the task's end and wakes whoever awaits it. Loop thread only.
    fn finish(&self, event_loop: Option<&EventLoop>, result: Result<F::Output, Failure>) {
        let flag = match &result {
            Ok(_) => 0,
            Err(Failure::Cancelled) => CANCELLED,
            Err(Failure::Panicked(_)) => PANICKED,
        };
        if self.handle_alive.get() {
            // SAFETY: loop thread (we are in `run` or `abandon`).
            unsafe { *self.stage() = Stage::Finished(result) };
        } else if let Err(Failure::Panicked(payload)) = result {
            let context = ExceptionContext::new("Task exception was never retrieved")
                .with_exception(panic_message(&*payload))
                .with_task(self.name());
            match event_loop {
                Some(event_loop) => event_loop.call_exception_handler(context),
                None => crate::event_loop::default_exception_handler(&context),
            }
        } else {
            drop(result);
        }
        self.state.fetch_or(COMPLETE | flag, Ordering::AcqRel);
        // SAFETY: loop thread.
        if let Some(waker) = unsafe { (*self.join_waker.get()).take() } {
            waker.wake();
        }
    }

    /// Drops the future, catching a panic in its destructor.
    fn drop_future(&self) -> Result<(), Box<dyn Any + Send>> {
        // SAFETY: loop thread (callers are `run` and `abandon`).
        let old = mem::replace(unsafe { self.stage() }, Stage::Consumed);
        catch_unwind(AssertUnwindSafe(move || drop(old)))
    }

    fn name(&self) -> &'static str {
        std::any::type_name::<F>()
    }
}

impl<F: Future + 'static> RawTask for TaskCell<F> {
    fn wake_arc(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn run(&self, this: *const (), event_loop: &EventLoop) -> bool {
        let previous = self.state.fetch_and(!SCHEDULED, Ordering::AcqRel);
        if previous & COMPLETE != 0 {
            // A step queued before the task completed: now nothing refers to
            // the task's key any more.
            return true;
        }
        if previous & CANCEL_REQUESTED != 0 {
            let failure = match self.drop_future() {
                Ok(()) => Failure::Cancelled,
                Err(payload) => Failure::Panicked(payload),
            };
            self.finish(Some(event_loop), Err(failure));
            return self.no_step_queued();
        }
        // SAFETY: loop thread; the reference ends before anything else
        // touches the stage.
        let Stage::Running(future) = (unsafe { self.stage() }) else {
            return false;
        };
        // A borrowed waker: no reference-count traffic per poll. `this` is
        // the `Arc`'s data pointer, with the provenance wakers need.
        let raw = RawWaker::new(this, &Self::VTABLE);
        // SAFETY: the vtable's functions uphold the `RawWaker` contract for a
        // pointer from a live `Arc<Self>`, and `ManuallyDrop` keeps this
        // borrowed waker from releasing a count it does not own.
        let waker = ManuallyDrop::new(unsafe { Waker::from_raw(raw) });
        let mut cx = Context::from_waker(&waker);
        // SAFETY: the future lives inside the `Arc` allocation and is never
        // moved out until it is dropped in place by `drop_future`/`finish`.
        let pinned = unsafe { Pin::new_unchecked(future) };
        let polled = catch_unwind(AssertUnwindSafe(|| pinned.poll(&mut cx)));
        match polled {
            Ok(Poll::Pending) => false,
            Ok(Poll::Ready(output)) => {
                let dropped = self.drop_future();
                let result = match dropped {
                    Ok(()) => Ok(output),
                    Err(payload) => Err(Failure::Panicked(payload)),
                };
                self.finish(Some(event_loop), result);
                self.no_step_queued()
            }
            Err(payload) => {
                // The future may be half torn down: drop it now, ignoring a
                // second panic from its destructor.
                let _ = self.drop_future();
                self.finish(Some(event_loop), Err(Failure::Panicked(payload)));
                self.no_step_queued()
            }
        }
    }

    fn cancel(&self) -> bool {
        let state = self.state.load(Ordering::Acquire);
        if state & COMPLETE != 0 {
            return false;
        }
        self.state.fetch_or(CANCEL_REQUESTED, Ordering::AcqRel);
        true
    }

    fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }

    fn abandon(&self, event_loop: Option<&EventLoop>) {
        if self.state.load(Ordering::Acquire) & COMPLETE != 0 {
            return;
        }
        if let Some(event_loop) = event_loop
            && event_loop.get_debug()
        {
            event_loop.call_exception_handler(
                ExceptionContext::new("Task was destroyed but it is pending!").with_task(self.name()),
            );
        }
        let failure = match self.drop_future() {
            Ok(()) => Failure::Cancelled,
            Err(payload) => Failure::Panicked(payload),
        };
        self.finish(event_loop, Err(failure));
    }

    fn take_unretrieved_panic(&self) -> Option<String> {
        // SAFETY: `TaskRef` methods run on the loop thread (module docs).
        let stage = unsafe { self.stage() };
        if let Stage::Finished(Err(Failure::Panicked(payload))) = stage {
            let message = panic_message(&**payload);
            *stage = Stage::Consumed;
            Some(message)
        } else {
            None
        }
    }

    fn key(&self) -> &Cell<usize> {
        &self.key
    }

    fn name(&self) -> &'static str {
        TaskCell::name(self)
    }
}

impl<F: Future + 'static> JoinTarget<F::Output> for TaskCell<F> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, Failure>> {
        if let Some(result) = self.take_output() {
            return Poll::Ready(result);
        }
        // SAFETY: `Task<T>` is `!Send`, so this runs on the loop thread.
        let slot = unsafe { &mut *self.join_waker.get() };
        match slot {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn take_output(&self) -> Option<Result<F::Output, Failure>> {
        if self.state.load(Ordering::Acquire) & COMPLETE == 0 {
            return None;
        }
        // SAFETY: loop thread (`Task<T>` is `!Send`).
        match mem::replace(unsafe { self.stage() }, Stage::Consumed) {
            Stage::Finished(result) => Some(result),
            _ => None,
        }
    }

    fn cancel(self: Arc<Self>) -> bool {
        let requested = RawTask::cancel(&*self);
        if requested {
            // Cancellation must reach a task asleep on anything: queue a step.
            self.wake_by_ref();
        }
        requested
    }

    fn to_task_ref(self: Arc<Self>) -> TaskRef {
        TaskRef(self)
    }

    fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }

    fn release_handle(&self, event_loop: Option<EventLoop>) {
        self.handle_alive.set(false);
        // SAFETY: loop thread (`Task<T>` is `!Send`).
        let stage = unsafe { self.stage() };
        if let Stage::Finished(_) = stage {
            let unretrieved = mem::replace(stage, Stage::Consumed);
            if let Stage::Finished(Err(Failure::Panicked(payload))) = unretrieved {
                let context = ExceptionContext::new("Task exception was never retrieved")
                    .with_exception(panic_message(&*payload))
                    .with_task(self.name());
                match event_loop.or_else(crate::running::try_get_running_loop) {
                    Some(event_loop) => event_loop.call_exception_handler(context),
                    None => crate::event_loop::default_exception_handler(&context),
                }
            }
        }
    }

    fn name(&self) -> &'static str {
        TaskCell::name(self)
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
    let cell = Arc::new(TaskCell {
        state: AtomicU32::new(SCHEDULED),
        scheduler,
        key: Cell::new(usize::MAX),
        handle_alive: Cell::new(true),
        stage: UnsafeCell::new(Stage::Running(future)),
        join_waker: UnsafeCell::new(None),
    });
    let task = Task {
        raw: cell.clone(),
        event_loop,
        _not_send: PhantomData,
    };
    (task, TaskRef(cell))
}

/// A task running on a loop; await it for its output.
///
/// Awaiting gives `Ok(output)`, or `Err` with [`Error::is_cancelled`] for a
/// cancelled task, or `Err` of kind `Panicked` for a task that panicked.
/// Dropping a `Task` does not cancel it: the task runs on, detached.
pub struct Task<T> {
    raw: Arc<dyn JoinTarget<T>>,
    /// The task's loop, to report an unretrieved panic to when the handle
    /// drops. Weak, so a handle kept inside the loop makes no cycle.
    event_loop: WeakEventLoop,
    _not_send: PhantomData<*const ()>,
}

impl<T> Task<T> {
    /// Requests cancellation: at its next step the task's future is dropped
    /// (unwinding whatever it awaits) and the task ends cancelled. Returns
    /// `false` if the task is done already.
    pub fn cancel(&self) -> bool {
        Arc::clone(&self.raw).cancel()
    }

    /// Whether the task ended by cancellation.
    pub fn cancelled(&self) -> bool {
        self.raw.state() & CANCELLED != 0
    }

    /// The loop's type-erased handle to this task (to cancel it from a
    /// callback, say).
    pub fn task_ref(&self) -> TaskRef {
        Arc::clone(&self.raw).to_task_ref()
    }

    /// Whether the task is done: output ready, cancelled or panicked.
    pub fn done(&self) -> bool {
        self.raw.state() & COMPLETE != 0
    }

    pub(crate) fn take_result_resuming_panic(&self) -> Result<T, Error> {
        match self.raw.take_output() {
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

impl<T> Future for Task<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.raw.poll_join(cx).map(|result| match result {
            Ok(output) => Ok(output),
            Err(Failure::Cancelled) => Err(Error::cancelled()),
            Err(Failure::Panicked(payload)) => Err(Error::new(
                ErrorKind::Panicked,
                format!("the task panicked: {}", panic_message(&*payload)),
            )),
        })
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.raw.release_handle(self.event_loop.upgrade());
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<Task {} {}>",
            describe_state(self.raw.state()),
            self.raw.name()
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

/// The loop's handle to a task, whatever its output type: what the ready
/// queue, the task set and `all_tasks` hold. `Send`, so a wake from another
/// thread can queue it; its methods other than [`wake`](TaskRef::wake) are
/// for the loop's thread.
#[derive(Clone)]
pub struct TaskRef(Arc<dyn RawTask>);

impl TaskRef {
    /// Runs one step of the task on `event_loop`, its own loop. Returns
    /// `true` when the task is complete and no step of it is queued any
    /// more, so the loop can drop it from its task set.
    pub fn run(&self, event_loop: &EventLoop) -> bool {
        self.0.run(Arc::as_ptr(&self.0).cast::<()>(), event_loop)
    }

    /// A pointer to the task that a loop can run through
    /// [`RawTaskPtr::run`] without touching the reference count.
    pub fn as_raw(&self) -> RawTaskPtr {
        RawTaskPtr(Arc::as_ptr(&self.0))
    }

    /// Requests cancellation and queues a step; `false` if already done.
    pub fn cancel(&self) -> bool {
        let requested = self.0.cancel();
        if requested {
            self.wake();
        }
        requested
    }

    /// Queues a step of the task unless one is queued or the task is done.
    pub fn wake(&self) {
        if self.0.state() & (SCHEDULED | COMPLETE) == 0 {
            Arc::clone(&self.0).wake_arc();
        }
    }

    /// Whether the task is done.
    pub fn done(&self) -> bool {
        self.0.state() & COMPLETE != 0
    }

    /// Whether the task ended by cancellation.
    pub fn cancelled(&self) -> bool {
        self.0.state() & CANCELLED != 0
    }

    /// Whether the task ended by a panic.
    pub fn panicked(&self) -> bool {
        self.0.state() & PANICKED != 0
    }

    /// The message of a panic nobody has retrieved yet (the `Task` handle is
    /// alive but was not awaited); takes it, so it is reported once.
    pub fn take_unretrieved_panic(&self) -> Option<String> {
        self.0.take_unretrieved_panic()
    }

    /// Ends a pending task without running it: drops its future. Loops call
    /// this for every pending task when they close; in debug mode it reports
    /// "Task was destroyed but it is pending!".
    pub fn abandon(&self, event_loop: Option<&EventLoop>) {
        self.0.abandon(event_loop);
    }

    /// The loop's key for the task in its task set.
    pub fn key(&self) -> usize {
        self.0.key().get()
    }

    /// Sets the loop's key for the task.
    pub fn set_key(&self, key: usize) {
        self.0.key().set(key);
    }

    /// The future's type name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

/// A borrowed pointer to a task, for a loop's ready queue: see
/// [`TaskRef::as_raw`].
#[derive(Clone, Copy)]
pub struct RawTaskPtr(*const dyn RawTask);

impl RawTaskPtr {
    /// Runs one step of the task, as [`TaskRef::run`].
    ///
    /// # Safety
    /// The `TaskRef` this pointer came from (or a clone of it) must stay
    /// alive until this call returns.
    pub unsafe fn run(self, event_loop: &EventLoop) -> bool {
        // SAFETY: the caller keeps a reference alive, so the task is; the
        // pointer came from `Arc::as_ptr`, as `run` requires.
        unsafe { &*self.0 }.run(self.0.cast::<()>(), event_loop)
    }
}

impl fmt::Debug for RawTaskPtr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawTaskPtr")
    }
}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Task {} {}>", describe_state(self.0.state()), self.0.name())
    }
}
