//! The loop trait every event loop implements ([`AbstractEventLoop`]), the
//! user's handle to a loop ([`EventLoop`]), its thread-safe face
//! ([`ThreadsafeLoop`]) and the exception-handler protocol.
//!
//! A file of its own because this is the seam between layers: policies and
//! the runner see only `EventLoop`; selector, proactor and user loops only
//! implement `AbstractEventLoop`. The generic, ergonomic methods live on
//! `EventLoop` and box their arguments once, so the trait stays object-safe.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::handle::{Handle, TimerHandle};
use crate::io::{Interest, IoKey, RawSource};
use crate::running;
use crate::task::{Scheduler, Task, TaskRef};
use crate::{Error, ErrorKind};

/// The exception handler a user installs: `(loop, context)`.
pub type ExceptionHandler = Rc<dyn Fn(&EventLoop, &ExceptionContext)>;

/// The object-safe trait behind [`EventLoop`] (asyncio's `AbstractEventLoop`).
///
/// Implement it to bring your own loop; wrap it with [`EventLoop::new`]. The
/// generic conveniences (closures, futures) are on `EventLoop`, which checks
/// what asyncio's `BaseEventLoop` checks in common (closed, running, nested
/// runs) before calling in here.
pub trait AbstractEventLoop: Any {
    /// Appends `handle` to the ready queue (FIFO). `Closed` once closed.
    fn call_soon(&self, handle: Handle) -> Result<(), Error>;
    /// [`call_soon`](AbstractEventLoop::call_soon) after the closed check
    /// `EventLoop` makes first, in one call (the default makes both).
    fn call_soon_if_open(&self, handle: Handle) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::closed());
        }
        self.call_soon(handle)
    }
    /// Schedules `handle` at `when`. `Closed` once closed.
    fn call_at(&self, when: Instant, handle: Handle) -> Result<TimerHandle, Error>;
    /// Wakes `waker` at `when`: the timer of [`sleep`](crate::sleep). The
    /// default goes through `call_at`; a loop can store the waker itself and
    /// save the callback's allocation.
    fn wake_at(&self, when: Instant, waker: &Waker) -> Result<WakeTimer, Error> {
        let waker = waker.clone();
        Ok(WakeTimer::Handle(Box::new(
            self.call_at(when, Handle::new(move || waker.wake()))?,
        )))
    }
    /// [`wake_at`](AbstractEventLoop::wake_at) `delay` from now on the
    /// loop's clock (a delay beyond the clock's range as good as never), in
    /// one call: what `sleep` asks.
    fn wake_after(&self, delay: Duration, waker: &Waker) -> Result<WakeTimer, Error> {
        self.wake_at(deadline_after(self.time(), delay), waker)
    }
    /// Whether the timer has fired (or is gone).
    fn wake_timer_fired(&self, timer: &WakeTimer) -> bool {
        match timer {
            WakeTimer::Handle(handle) => handle.handle().has_run(),
            WakeTimer::Key { .. } => true,
        }
    }
    /// Makes a pending timer wake `waker` instead of the one it was given.
    fn rearm_wake_timer(&self, timer: &mut WakeTimer, waker: &Waker) -> Result<(), Error> {
        if let WakeTimer::Handle(handle) = timer {
            handle.cancel();
            *timer = self.wake_at(handle.when(), waker)?;
        }
        Ok(())
    }
    /// Cancels a pending timer.
    fn cancel_wake_timer(&self, timer: &WakeTimer) {
        if let WakeTimer::Handle(handle) = timer {
            handle.cancel();
        }
    }
    /// The loop's clock.
    fn time(&self) -> Instant {
        Instant::now()
    }
    /// Runs iterations until `stop()`. `this` is the handle wrapping `self`;
    /// the caller has checked the loop is open and not running, and has
    /// registered it as this thread's running loop.
    fn run_forever(&self, this: &EventLoop) -> Result<(), Error>;
    /// Ends `run_forever` after the current iteration (or the next one, when
    /// not running).
    fn stop(&self);
    /// Closes the loop: drops what is queued, abandons pending tasks,
    /// releases OS resources. `this` is the handle wrapping `self`.
    fn close(&self, this: &EventLoop) -> Result<(), Error>;
    /// Whether `run_forever` is executing.
    fn is_running(&self) -> bool;
    /// Whether `close` was called.
    fn is_closed(&self) -> bool;
    /// The scheduler that new tasks push their wake-ups to.
    fn scheduler(&self) -> Arc<dyn Scheduler>;
    /// [`scheduler`](AbstractEventLoop::scheduler) for a task about to be
    /// made, or `Closed` once closed: what `create_task` asks first, in one
    /// call.
    fn scheduler_if_open(&self) -> Result<Arc<dyn Scheduler>, Error> {
        if self.is_closed() {
            return Err(Error::closed());
        }
        Ok(self.scheduler())
    }
    /// Registers a new task in the loop's task set and schedules its first step.
    fn spawn(&self, task: TaskRef) -> Result<(), Error>;
    /// The tasks not yet done (asyncio's `all_tasks`).
    fn all_tasks(&self) -> Vec<TaskRef>;
    /// The thread-safe face of the loop.
    fn threadsafe(&self) -> ThreadsafeLoop;
    /// Turns debug mode on or off.
    fn set_debug(&self, enabled: bool);
    /// Whether debug mode is on.
    fn get_debug(&self) -> bool;
    /// Installs (or, with `None`, removes) the exception handler.
    fn set_exception_handler(&self, handler: Option<ExceptionHandler>);
    /// The installed exception handler, if any.
    fn exception_handler(&self) -> Option<ExceptionHandler>;
    /// Runs `job` on the loop's default executor (a bounded thread pool).
    fn run_in_executor(&self, job: Box<dyn FnOnce() + Send>) -> Result<(), Error>;
    /// Waits for the default executor's threads to finish their queued jobs,
    /// at most `timeout`; later `run_in_executor` calls fail.
    fn shutdown_default_executor(&self, timeout: Duration) -> Result<(), Error>;
    /// Registers `raw` for readiness-based I/O (see [`IoRegistration`](crate::IoRegistration)).
    fn io_register(&self, raw: RawSource) -> Result<IoKey, Error> {
        let _ = raw;
        Err(Error::unsupported("readiness-based I/O"))
    }
    /// Ready when `interest` was reported and not cleared since; otherwise
    /// keeps `cx`'s waker to wake when it is.
    fn io_poll_ready(&self, key: IoKey, interest: Interest, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let _ = (key, interest, cx);
        Poll::Ready(Err(Error::unsupported("readiness-based I/O")))
    }
    /// Whether `interest` was reported and not cleared since: the answer of
    /// a ready [`io_poll_ready`](AbstractEventLoop::io_poll_ready) without
    /// its waker or its `Result`, for the common case of a source that is
    /// ready. `false` (the default) sends every poll the long way.
    fn io_ready(&self, key: IoKey, interest: Interest) -> bool {
        let _ = (key, interest);
        false
    }
    /// Forgets the cached readiness of `interest` (after a `WouldBlock`).
    fn io_clear_ready(&self, key: IoKey, interest: Interest) {
        let _ = (key, interest);
    }
    /// [`io_clear_ready`](AbstractEventLoop::io_clear_ready) then
    /// [`io_poll_ready`](AbstractEventLoop::io_poll_ready), for an operation
    /// that just reported `WouldBlock`: one loop call where the loop can make
    /// it one (the default makes the two).
    fn io_clear_and_poll_ready(
        &self,
        key: IoKey,
        interest: Interest,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        self.io_clear_ready(key, interest);
        self.io_poll_ready(key, interest, cx)
    }
    /// Stops watching a registered source; its pending wakers are dropped.
    fn io_deregister(&self, key: IoKey) {
        let _ = key;
    }
    /// [`io_deregister`](AbstractEventLoop::io_deregister) for a source
    /// whose fd its owner closes right after: a selector whose OS poller
    /// forgets a closed fd by itself (epoll does, once no other descriptor
    /// shares the open file) may leave the deletion to the close.
    fn io_deregister_closing(&self, key: IoKey) {
        self.io_deregister(key);
    }
    /// Calls `callback` whenever `fd` is readable.
    fn add_reader(&self, fd: RawSource, callback: Box<dyn FnMut()>) -> Result<(), Error> {
        let _ = (fd, callback);
        Err(Error::unsupported("add_reader"))
    }
    /// Stops watching `fd` for reading; `false` if it was not watched.
    fn remove_reader(&self, fd: RawSource) -> bool {
        let _ = fd;
        false
    }
    /// Calls `callback` whenever `fd` is writable.
    fn add_writer(&self, fd: RawSource, callback: Box<dyn FnMut()>) -> Result<(), Error> {
        let _ = (fd, callback);
        Err(Error::unsupported("add_writer"))
    }
    /// Stops watching `fd` for writing; `false` if it was not watched.
    fn remove_writer(&self, fd: RawSource) -> bool {
        let _ = fd;
        false
    }
    /// Calls `callback` on the loop whenever signal `signum` arrives. The
    /// default answers `Unsupported` (on Windows, saying that signals are not
    /// supported there, as asyncio's loops raise `NotImplementedError`).
    fn add_signal_handler(&self, signum: i32, callback: Box<dyn FnMut()>) -> Result<(), Error> {
        let _ = (signum, callback);
        Err(signals_unsupported("add_signal_handler"))
    }
    /// Removes the handler of `signum`; `Ok(false)` if there was none. The
    /// default answers `Unsupported`, as `add_signal_handler`'s.
    fn remove_signal_handler(&self, signum: i32) -> Result<bool, Error> {
        let _ = signum;
        Err(signals_unsupported("remove_signal_handler"))
    }
    /// Calls `callback` on the loop's thread, at most once, when the
    /// waitable `handle` is signalled (a process when it exits, an event when
    /// it is set): asyncio's `IocpProactor.wait_for_handle`, which its
    /// subprocesses and pipes stand on. Dropping the returned
    /// [`HandleWait`](crate::windows::HandleWait) cancels the wait (see its
    /// contract); `handle` must stay open until then. If the loop is closed
    /// when the handle is signalled, `callback` does not run.
    ///
    /// The default answers `Unsupported` (as asyncio's Windows selector loop
    /// raises `NotImplementedError` for subprocesses): on Windows only the
    /// `ProactorEventLoop` waits for handles.
    #[cfg(windows)]
    fn wait_for_handle(
        &self,
        handle: std::os::windows::io::RawHandle,
        callback: Box<dyn FnOnce() + Send>,
    ) -> Result<crate::windows::HandleWait, Error> {
        let _ = (handle, callback);
        Err(crate::windows::handle_waits_unsupported(self.type_name()))
    }
    /// Whether [`wait_for_handle`](AbstractEventLoop::wait_for_handle) is
    /// offered, asked before starting what would need it (a subprocess), so
    /// that nothing is started on a loop that could not wait for it.
    #[cfg(windows)]
    fn supports_wait_for_handle(&self) -> bool {
        false
    }
    /// A short name of the loop's type, for `Debug`.
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// The answer of a loop without signal handling to `method`. On Windows no
/// loop has any (asyncio's `add_signal_handler` raises `NotImplementedError`
/// there), and the message says so.
fn signals_unsupported(method: &str) -> Error {
    if cfg!(windows) {
        Error::new(
            ErrorKind::Unsupported,
            format!("{method}: signals are not supported by the event loop on Windows"),
        )
    } else {
        Error::unsupported(method)
    }
}

/// `now + delay` for a timer, or a century from `now` where that overflows
/// the clock: a delay that long is as good as never (what `sleep` and
/// [`AbstractEventLoop::wake_after`] schedule).
pub fn deadline_after(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// A timer that wakes a waker, made by [`AbstractEventLoop::wake_at`].
#[derive(Debug, Clone)]
pub enum WakeTimer {
    /// A `call_at` callback that wakes the waker (the default). Boxed, so
    /// the loops that use `Key` keep `sleep` small.
    Handle(Box<TimerHandle>),
    /// An entry of the loop's own: `slot` in its table, `seq` to tell a
    /// reused slot apart.
    Key {
        /// The slot of the loop's table (32 bits, so that the whole timer
        /// is 16 bytes and a waiting `sleep` 32).
        slot: u32,
        /// The entry's unique sequence number.
        seq: u64,
    },
}

/// A handle to an event loop: cheap to clone, `!Send`, compared by identity.
///
/// asyncio raises "Non-thread-safe operation invoked on an event loop other
/// than the current one" in debug mode when a loop is touched from another
/// thread. In aio that mistake does not compile: `EventLoop` is neither
/// `Send` nor `Sync`. Use [`EventLoop::threadsafe`] to reach a loop from
/// another thread.
#[derive(Clone)]
pub struct EventLoop(Rc<dyn AbstractEventLoop>);

impl EventLoop {
    /// Wraps a loop implementation.
    pub fn new(inner: impl AbstractEventLoop) -> EventLoop {
        EventLoop(Rc::new(inner))
    }

    /// Wraps a shared loop implementation.
    pub fn from_rc(inner: Rc<dyn AbstractEventLoop>) -> EventLoop {
        EventLoop(inner)
    }

    /// The handle as a raw pointer that keeps its strong reference, for the
    /// running-loop registry; [`from_raw`](EventLoop::from_raw) gives it
    /// back.
    pub(crate) fn into_raw(self) -> std::ptr::NonNull<dyn AbstractEventLoop> {
        let raw = Rc::into_raw(self.0).cast_mut();
        // SAFETY: `Rc::into_raw` never returns null.
        unsafe { std::ptr::NonNull::new_unchecked(raw) }
    }

    /// The handle [`into_raw`](EventLoop::into_raw) made.
    ///
    /// # Safety
    /// `raw` came from `into_raw`; the reference it keeps is taken over.
    pub(crate) unsafe fn from_raw(raw: std::ptr::NonNull<dyn AbstractEventLoop>) -> EventLoop {
        // SAFETY: per this function's contract.
        EventLoop(unsafe { Rc::from_raw(raw.as_ptr()) })
    }

    /// A new handle to the loop behind `raw`, which keeps its reference.
    ///
    /// # Safety
    /// `raw` came from `into_raw` and its reference has not been given back.
    pub(crate) unsafe fn clone_raw(raw: std::ptr::NonNull<dyn AbstractEventLoop>) -> EventLoop {
        // SAFETY: per this function's contract, the count is at least one.
        unsafe {
            Rc::increment_strong_count(raw.as_ptr());
            EventLoop::from_raw(raw)
        }
    }

    /// The implementation behind the handle.
    pub fn inner(&self) -> &dyn AbstractEventLoop {
        &*self.0
    }

    /// The implementation, if it is a `T`.
    pub fn downcast_ref<T: AbstractEventLoop>(&self) -> Option<&T> {
        (&*self.0 as &dyn Any).downcast_ref::<T>()
    }

    /// Schedules `callback` for the next iteration, after those already queued.
    pub fn call_soon(&self, callback: impl FnOnce() + 'static) -> Result<Handle, Error> {
        let handle = Handle::new(callback);
        self.0.call_soon_if_open(handle.clone())?;
        Ok(handle)
    }

    /// Schedules `callback` to run after `delay`.
    pub fn call_later(
        &self,
        delay: Duration,
        callback: impl FnOnce() + 'static,
    ) -> Result<TimerHandle, Error> {
        let when = self.0.time().checked_add(delay).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("delay {delay:?} overflows the loop's clock"),
            )
        })?;
        self.call_at(when, callback)
    }

    /// Schedules `callback` to run at `when` on the loop's clock; a `when` in
    /// the past runs on the next iteration, in deadline order.
    pub fn call_at(&self, when: Instant, callback: impl FnOnce() + 'static) -> Result<TimerHandle, Error> {
        if self.0.is_closed() {
            return Err(Error::closed());
        }
        self.0.call_at(when, Handle::new(callback))
    }

    /// The loop's clock (monotonic).
    pub fn time(&self) -> Instant {
        self.0.time()
    }

    fn check_runnable(&self) -> Result<(), Error> {
        if self.0.is_closed() {
            return Err(Error::closed());
        }
        if self.0.is_running() {
            return Err(Error::new(
                ErrorKind::AlreadyRunning,
                "This event loop is already running",
            ));
        }
        if running::with_running_loop(|running| running.is_some()) {
            return Err(Error::new(
                ErrorKind::AlreadyRunning,
                "Cannot run the event loop while another loop is running",
            ));
        }
        Ok(())
    }

    /// Runs the loop until [`stop`](EventLoop::stop) is called.
    pub fn run_forever(&self) -> Result<(), Error> {
        self.check_runnable()?;
        let _running = running::enter(self);
        self.0.run_forever(self)
    }

    /// Runs the loop until `future` completes, and returns its output.
    ///
    /// Errors: `Closed`; `AlreadyRunning` when this loop or another runs on
    /// this thread (the future is dropped unpolled); `Stopped` when `stop()`
    /// ended the loop first (the task stays scheduled); `Cancelled` when the
    /// task was cancelled. A panic in `future` propagates to the caller.
    pub fn run_until_complete<F>(&self, future: F) -> Result<F::Output, Error>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.check_runnable()?;
        let task = self.create_main_task(future)?;
        self.run_main_task(&task)
    }

    /// The task `run_until_complete` runs `future` in: once it is done,
    /// however it ends, it stops the loop (queued with `call_soon`, as
    /// asyncio's done callback). Runners use this with
    /// [`run_main_task`](EventLoop::run_main_task) to keep a handle on the
    /// main task (to cancel it on Ctrl-C, say).
    pub fn create_main_task<F>(&self, future: F) -> Result<Task<F::Output>, Error>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let stopper = StopOnDrop(self.clone());
        self.create_task(async move {
            let _stop_when_done = stopper;
            future.await
        })
    }

    /// Runs the loop until `task`, made by
    /// [`create_main_task`](EventLoop::create_main_task), is done, and
    /// returns its output; a panic in it propagates. Errors as
    /// [`run_until_complete`](EventLoop::run_until_complete).
    pub fn run_main_task<T>(&self, task: &Task<T>) -> Result<T, Error> {
        self.run_forever()?;
        if !task.done() {
            return Err(Error::new(
                ErrorKind::Stopped,
                "Event loop stopped before Future completed.",
            ));
        }
        task.take_result_resuming_panic()
    }

    /// Ends `run_forever` after the current iteration; called before
    /// `run_forever`, that call runs exactly one iteration.
    pub fn stop(&self) {
        self.0.stop();
    }

    /// Closes the loop. Idempotent; `AlreadyRunning` while running. Tasks
    /// still pending are dropped (with a "Task was destroyed but it is
    /// pending!" report in debug mode).
    pub fn close(&self) -> Result<(), Error> {
        if self.0.is_running() {
            return Err(Error::new(
                ErrorKind::AlreadyRunning,
                "Cannot close a running event loop",
            ));
        }
        self.0.close(self)
    }

    /// Whether the loop is running.
    pub fn is_running(&self) -> bool {
        self.0.is_running()
    }

    /// Whether the loop is closed.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Wraps `future` in a task scheduled on this loop.
    pub fn create_task<F>(&self, future: F) -> Result<Task<F::Output>, Error>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let scheduler = self.0.scheduler_if_open()?;
        let (task, task_ref) = crate::task::new_task(future, scheduler, self.downgrade());
        self.0.spawn(task_ref)?;
        Ok(task)
    }

    /// The tasks of this loop that are not done yet.
    pub fn all_tasks(&self) -> Vec<TaskRef> {
        self.0.all_tasks()
    }

    /// The thread-safe face of the loop, to send to other threads.
    pub fn threadsafe(&self) -> ThreadsafeLoop {
        self.0.threadsafe()
    }

    /// Turns debug mode on or off.
    pub fn set_debug(&self, enabled: bool) {
        self.0.set_debug(enabled);
    }

    /// Whether debug mode is on.
    pub fn get_debug(&self) -> bool {
        self.0.get_debug()
    }

    /// Installs the handler that receives errors the loop cannot return to
    /// anyone: panics in callbacks and detached tasks, and the like.
    pub fn set_exception_handler(&self, handler: impl Fn(&EventLoop, &ExceptionContext) + 'static) {
        self.0.set_exception_handler(Some(Rc::new(handler)));
    }

    /// Restores the default exception handler (which logs through `log`).
    pub fn clear_exception_handler(&self) {
        self.0.set_exception_handler(None);
    }

    /// Hands `context` to the exception handler, or to the default one.
    ///
    /// A handler that panics is reported by the default handler ("Unhandled
    /// error in exception handler"); the panic goes no further.
    pub fn call_exception_handler(&self, context: ExceptionContext) {
        let Some(handler) = self.0.exception_handler() else {
            default_exception_handler(&context);
            return;
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handler(self, &context))) {
            let report = ExceptionContext::new("Unhandled error in exception handler")
                .with_exception(panic_message(&*payload))
                .with_context(context.message().to_owned());
            default_exception_handler(&report);
        }
    }

    /// Runs `job` on the default executor. Used by [`to_thread`](crate::to_thread).
    pub fn run_in_executor(&self, job: impl FnOnce() + Send + 'static) -> Result<(), Error> {
        if self.0.is_closed() {
            return Err(Error::closed());
        }
        self.0.run_in_executor(Box::new(job))
    }

    /// Lets the default executor finish its jobs (at most `timeout`) and
    /// refuses new ones.
    pub fn shutdown_default_executor(&self, timeout: Duration) -> Result<(), Error> {
        self.0.shutdown_default_executor(timeout)
    }

    /// Calls `callback` whenever `fd` is readable (level-triggered).
    ///
    /// The fd must stay open until [`remove_reader`](EventLoop::remove_reader).
    pub fn add_reader(&self, fd: RawSource, callback: impl FnMut() + 'static) -> Result<(), Error> {
        if self.0.is_closed() {
            return Err(Error::closed());
        }
        self.0.add_reader(fd, Box::new(callback))
    }

    /// Stops watching `fd` for reading; `false` if it was not watched or the
    /// loop is closed.
    pub fn remove_reader(&self, fd: RawSource) -> bool {
        !self.0.is_closed() && self.0.remove_reader(fd)
    }

    /// Calls `callback` whenever `fd` is writable (level-triggered).
    pub fn add_writer(&self, fd: RawSource, callback: impl FnMut() + 'static) -> Result<(), Error> {
        if self.0.is_closed() {
            return Err(Error::closed());
        }
        self.0.add_writer(fd, Box::new(callback))
    }

    /// Stops watching `fd` for writing; `false` if it was not watched or the
    /// loop is closed.
    pub fn remove_writer(&self, fd: RawSource) -> bool {
        !self.0.is_closed() && self.0.remove_writer(fd)
    }

    /// Calls `callback` on the loop whenever signal `signum` arrives.
    ///
    /// Errors, in asyncio's order: `InvalidArgument` ("invalid signal number
    /// N") for a number that is no signal, `Closed` on a closed loop,
    /// `InvalidArgument` ("sig N cannot be caught") for SIGKILL and SIGSTOP,
    /// `Unsupported` where the loop has no signal handling.
    ///
    /// On Windows, where asyncio's loops raise `NotImplementedError`, aio's
    /// loops answer `Unsupported` ("add_signal_handler: signals are not
    /// supported by the event loop on Windows") whatever the arguments, and
    /// the loop is unchanged. Ctrl-C still ends `aio::run`'s main task
    /// there, through a console control handler of the runner's.
    pub fn add_signal_handler(&self, signum: i32, callback: impl FnMut() + 'static) -> Result<(), Error> {
        self.0.add_signal_handler(signum, Box::new(callback))
    }

    /// Removes the handler of `signum`; `Ok(false)` when there was none.
    ///
    /// On Windows aio's loops answer `Unsupported`
    /// ("remove_signal_handler: signals are not supported by the event loop
    /// on Windows"), as `add_signal_handler` does.
    pub fn remove_signal_handler(&self, signum: i32) -> Result<bool, Error> {
        self.0.remove_signal_handler(signum)
    }
}

impl EventLoop {
    /// A handle that does not keep the loop alive.
    pub(crate) fn downgrade(&self) -> WeakEventLoop {
        WeakEventLoop(Rc::downgrade(&self.0))
    }
}

/// A weak [`EventLoop`]: upgrades while the loop is alive.
#[derive(Clone)]
pub(crate) struct WeakEventLoop(std::rc::Weak<dyn AbstractEventLoop>);

impl WeakEventLoop {
    pub(crate) fn upgrade(&self) -> Option<EventLoop> {
        self.0.upgrade().map(EventLoop)
    }
}

impl PartialEq for EventLoop {
    fn eq(&self, other: &EventLoop) -> bool {
        std::ptr::addr_eq(Rc::as_ptr(&self.0), Rc::as_ptr(&other.0))
    }
}

impl Eq for EventLoop {}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<{} running={} closed={} debug={}>",
            self.0.type_name(),
            self.0.is_running(),
            self.0.is_closed(),
            self.0.get_debug()
        )
    }
}

/// Stops its loop once the wrapped future is dropped: `run_until_complete`
/// wraps the future with it, so the loop stops however the task ends (output,
/// panic, cancellation), as asyncio's `_run_until_complete_cb`. Like that
/// done callback, the stop is queued with `call_soon`, so steps the future
/// queued in its last step (a task it created, say) still run first.
struct StopOnDrop(EventLoop);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let event_loop = self.0.clone();
        // On a closed loop there is nothing left to stop.
        let _ = self.0.call_soon(move || event_loop.stop());
    }
}

/// What a loop's thread-safe face must do: take callbacks and stop requests
/// from any thread, and wake the loop if it sleeps.
pub trait ThreadsafeScheduler: Send + Sync + 'static {
    /// Queues `callback` for the loop's next iteration and wakes the loop.
    fn call_soon_threadsafe(&self, callback: Box<dyn FnOnce() + Send>) -> Result<(), Error>;
    /// Asks the loop to stop after its current iteration.
    fn stop(&self);
}

/// A loop's thread-safe face: `Send + Sync`, cheap to clone.
#[derive(Clone)]
pub struct ThreadsafeLoop(Arc<dyn ThreadsafeScheduler>);

impl ThreadsafeLoop {
    /// Wraps a loop's thread-safe scheduler.
    pub fn new(inner: Arc<dyn ThreadsafeScheduler>) -> ThreadsafeLoop {
        ThreadsafeLoop(inner)
    }

    /// Schedules `callback` on the loop from any thread, waking the loop if it
    /// is blocked in its poll. `Closed` once the loop is closed.
    pub fn call_soon_threadsafe(&self, callback: impl FnOnce() + Send + 'static) -> Result<(), Error> {
        self.0.call_soon_threadsafe(Box::new(callback))
    }

    /// Stops the loop after its current iteration, from any thread.
    pub fn stop(&self) {
        self.0.stop();
    }
}

impl fmt::Debug for ThreadsafeLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ThreadsafeLoop")
    }
}

/// What the exception handler receives (asyncio's context dict).
#[derive(Debug, Clone, Default)]
pub struct ExceptionContext {
    message: String,
    exception: Option<String>,
    handle: Option<String>,
    task: Option<String>,
    context: Option<String>,
}

impl ExceptionContext {
    /// A context with `message` and nothing else.
    pub fn new(message: impl Into<String>) -> Self {
        ExceptionContext {
            message: message.into(),
            ..ExceptionContext::default()
        }
    }

    /// The message ("Exception in callback ...").
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Adds the error: for a panic, its message.
    pub fn with_exception(mut self, exception: impl Into<String>) -> Self {
        self.exception = Some(exception.into());
        self
    }

    /// Adds the callback that failed.
    pub fn with_handle(mut self, handle: impl Into<String>) -> Self {
        self.handle = Some(handle.into());
        self
    }

    /// Adds the task that failed.
    pub fn with_task(mut self, task: impl Into<String>) -> Self {
        self.task = Some(task.into());
        self
    }

    /// Adds the context whose handling failed.
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// The error, for a panic its message.
    pub fn exception(&self) -> Option<&str> {
        self.exception.as_deref()
    }

    /// The callback that failed.
    pub fn handle(&self) -> Option<&str> {
        self.handle.as_deref()
    }

    /// The task that failed.
    pub fn task(&self) -> Option<&str> {
        self.task.as_deref()
    }

    /// The message of the context whose handling failed.
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }
}

impl fmt::Display for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for (key, value) in [
            ("context", &self.context),
            ("exception", &self.exception),
            ("handle", &self.handle),
            ("task", &self.task),
        ] {
            if let Some(value) = value {
                write!(f, "\n{key}: {value}")?;
            }
        }
        Ok(())
    }
}

/// asyncio's `default_exception_handler`: logs the context at error level.
pub fn default_exception_handler(context: &ExceptionContext) {
    log::error!("{context}");
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_past_the_clocks_end_is_a_century_ahead() {
        let now = Instant::now();
        assert_eq!(
            deadline_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let far = deadline_after(now, Duration::MAX);
        assert_eq!(far - now, Duration::from_secs(100 * 365 * 24 * 3600));
    }
}
