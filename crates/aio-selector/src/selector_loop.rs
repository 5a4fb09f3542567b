//! [`SelectorEventLoop`]: the platform-neutral selector loop, asyncio's
//! `BaseEventLoop._run_once` on `polling`.
//!
//! A file of its own because it is the loop's control flow: one iteration
//! purges cancelled timers, polls for I/O (or skips the poll, see below),
//! moves due timers and cross-thread work to the ready queue, then runs
//! exactly the entries that were ready when the iteration began.
//!
//! **The poll-skip rule.** asyncio polls the selector once per iteration, with
//! a zero timeout when callbacks are ready. A zero-timeout poll can only
//! report registered fds and our own wake-up; when no fd is registered, the
//! wake-up's flag (`remote_pending`) says the same thing without a system
//! call. So an iteration with ready work and no registered fd makes no
//! system call at all; with fds registered, it polls as asyncio does.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use aio_events::{
    AbstractEventLoop, Error, EventLoop, ExceptionContext, ExceptionHandler, Handle, Interest, IoKey,
    Scheduler, TaskRef, ThreadsafeLoop, TimerHandle, WakeTimer, panic_message,
};
use slab::Slab;

use crate::executor::ThreadPool;
use crate::io::{Direction, IoRegistry, RawSource, ReadinessSources, SOURCE_KEY_BASE};
use crate::scheduler::{Ready, Remote, Shared};
use crate::selector::{ReadyEvent, Scratch, Selector};
use crate::timer_heap::{Due, TimerHeap};

/// The longest a poll blocks (asyncio's `MAXIMUM_SELECT_TIMEOUT`).
pub const MAXIMUM_SELECT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Timers due within this much of now fire in the current iteration
/// (asyncio's `_clock_resolution`). `Instant` counts nanoseconds on Unix and
/// 100 ns ticks on Windows.
#[cfg(not(windows))]
pub const CLOCK_RESOLUTION: Duration = Duration::from_nanos(1);
/// Timers due within this much of now fire in the current iteration
/// (asyncio's `_clock_resolution`). `Instant` counts 100 ns ticks on Windows.
#[cfg(windows)]
pub const CLOCK_RESOLUTION: Duration = Duration::from_nanos(100);

/// The name a `sleep`'s timer goes by in reports.
const TIMER_WAKER: &str = "a timer's waker";

/// Wake batches' vectors above this capacity are not kept for the next.
const KEPT_WAKE_CAPACITY: usize = 1024;

/// The name a `call_soon_threadsafe` callback goes by in reports.
const REMOTE_CALLBACK: &str = "a call_soon_threadsafe callback";

/// Callbacks slower than this are logged in debug mode
/// (asyncio's `slow_callback_duration`).
pub const SLOW_CALLBACK_DURATION: Duration = Duration::from_millis(100);

/// The selector event loop on `polling`: epoll on Linux and Android, kqueue
/// on the BSDs and macOS, IOCP (through AFD) on Windows.
pub struct SelectorEventLoop {
    shared: Arc<Shared>,
    timers: RefCell<TimerHeap>,
    /// The wakers that `Ready::Wakes` entries stand for, oldest first, and
    /// a spare vector for the next batch.
    wake_batches: RefCell<(VecDeque<Vec<Waker>>, Vec<Waker>)>,
    tasks: RefCell<Slab<TaskRef>>,
    io: RefCell<IoRegistry>,
    sources: RefCell<ReadinessSources>,
    events: RefCell<Vec<ReadyEvent>>,
    scratch: RefCell<Scratch>,
    running: Cell<bool>,
    stopping: Cell<bool>,
    closed: Cell<bool>,
    debug: Cell<bool>,
    exception_handler: RefCell<Option<ExceptionHandler>>,
    executor: RefCell<Option<ThreadPool>>,
    executor_shutdown: Cell<bool>,
    signal_hook: RefCell<Option<Rc<dyn Fn()>>>,
}

impl SelectorEventLoop {
    /// A new, open loop (not the current one of any policy), wrapped in an
    /// [`EventLoop`] handle.
    pub fn new() -> Result<EventLoop, Error> {
        Ok(EventLoop::new(SelectorEventLoop::create()?))
    }

    /// A new loop, unwrapped, for platform loops that embed it.
    pub fn create() -> Result<SelectorEventLoop, Error> {
        let selector = Selector::new()?;
        let sources = ReadinessSources::new();
        Ok(SelectorEventLoop {
            sources: RefCell::new(sources),
            shared: Arc::new(Shared::new(selector)),
            timers: RefCell::new(TimerHeap::new()),
            wake_batches: RefCell::new((VecDeque::new(), Vec::new())),
            tasks: RefCell::new(Slab::new()),
            io: RefCell::new(IoRegistry::default()),
            events: RefCell::new(Vec::with_capacity(64)),
            scratch: RefCell::new(Scratch::new()),
            running: Cell::new(false),
            stopping: Cell::new(false),
            closed: Cell::new(false),
            debug: Cell::new(aio_events::debug_from_env()),
            exception_handler: RefCell::new(None),
            executor: RefCell::new(None),
            executor_shutdown: Cell::new(false),
            signal_hook: RefCell::new(None),
        })
    }

    /// Watches `raw` in `direction` (the common part of `add_reader` and
    /// `add_writer`; on Windows, `raw` is a socket).
    pub fn add_source(
        &self,
        raw: RawSource,
        writable: bool,
        callback: Box<dyn FnMut()>,
    ) -> Result<(), Error> {
        if self.closed.get() {
            return Err(Error::closed());
        }
        let direction = if writable {
            Direction::Write
        } else {
            Direction::Read
        };
        let poller = self.shared.selector.poller()?;
        self.io
            .borrow_mut()
            .add(poller, raw, direction, callback)
            .map_err(Error::from)
    }

    /// Stops watching `raw` in one direction; `false` if it was not watched.
    pub fn remove_source(&self, raw: RawSource, writable: bool) -> bool {
        if self.closed.get() {
            return false;
        }
        let direction = if writable {
            Direction::Write
        } else {
            Direction::Read
        };
        let Some(poller) = self.shared.selector.existing_poller() else {
            return false;
        };
        self.io.borrow_mut().remove(poller, raw, direction)
    }

    /// A handle through which a signal handler (or any thread) wakes this
    /// loop so that it runs its signal hook ([`set_signal_hook`]) in the
    /// coming iteration.
    ///
    /// [`set_signal_hook`]: SelectorEventLoop::set_signal_hook
    pub fn signal_wake(&self) -> SignalWake {
        SignalWake {
            shared: self.shared.clone(),
        }
    }

    /// What the loop runs, on its own thread, after [`SignalWake::wake`]:
    /// the platform loop reads which signals arrived and runs their
    /// handlers. Several wakes before the loop turns run it once. `None`
    /// removes it.
    pub fn set_signal_hook(&self, hook: Option<Box<dyn Fn()>>) {
        *self.signal_hook.borrow_mut() = hook.map(Rc::from);
    }

    fn run_once(&self, this: &EventLoop) {
        let ready_now = self.stopping.get() || self.shared.ready_len() > 0 || self.shared.remote_pending();
        let timeout = {
            let mut timers = self.timers.borrow_mut();
            if !timers.is_empty() {
                timers.purge_cancelled();
            }
            if ready_now {
                Some(Duration::ZERO)
            } else {
                timers.next_deadline().map(|deadline| {
                    deadline
                        .saturating_duration_since(Instant::now())
                        .min(MAXIMUM_SELECT_TIMEOUT)
                })
            }
        };
        // The poll-skip rule (module docs): with no fd registered, a
        // zero-timeout poll could only report our own wake-up, whose flag
        // `remote_pending` is read below anyway.
        let watching = !self.io.borrow().is_empty() || !self.sources.borrow().is_empty();
        let polled = (timeout != Some(Duration::ZERO) || watching) && self.poll(timeout);
        if self.shared.remote_pending() {
            self.shared.drain_remote();
        }
        if polled {
            self.dispatch_io_events();
        }
        self.move_due_timers();
        let ntodo = self.shared.ready_len();
        for _ in 0..ntodo {
            let Some(entry) = self.shared.pop_local() else {
                break;
            };
            self.run_entry(entry, this);
        }
        self.shared.trim_ready();
    }

    /// Polls the OS; `true` when events may have been collected.
    fn poll(&self, timeout: Option<Duration>) -> bool {
        let mut timeout = timeout;
        if timeout != Some(Duration::ZERO) && self.shared.spin_for_remote(timeout) {
            timeout = Some(Duration::ZERO);
        }
        let blocking = timeout != Some(Duration::ZERO);
        if blocking {
            // Idle: the moment to give back what a burst of posts grew.
            self.shared.trim_remote();
        }
        let timeout = if blocking && !self.shared.enter_sleep() {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        let mut events = self.events.borrow_mut();
        events.clear();
        let result = self
            .shared
            .selector
            .wait(&mut events, &mut self.scratch.borrow_mut(), timeout);
        if blocking {
            self.shared.leave_sleep();
        }
        match result {
            Ok(()) => !events.is_empty(),
            Err(err) => {
                log::error!("polling for I/O failed: {err}");
                false
            }
        }
    }

    fn dispatch_io_events(&self) {
        let events = self.events.borrow();
        if events.is_empty() {
            return;
        }
        let io = self.io.borrow();
        for event in events.iter() {
            if event.key >= SOURCE_KEY_BASE {
                let wakers = self.sources.borrow_mut().on_event(
                    event.key - SOURCE_KEY_BASE,
                    event.readable,
                    event.writable,
                );
                // Our tasks' wakers only queue a step; no user code runs here.
                let [reader, writer] = wakers;
                if let Some(waker) = reader {
                    waker.wake();
                }
                if let Some(waker) = writer {
                    waker.wake();
                }
                continue;
            }
            let (reader, writer) = io.ready_callbacks(event.key, event.readable, event.writable);
            for callback in reader.into_iter().chain(writer) {
                self.shared.push_local(Ready::Io(callback));
            }
        }
    }

    fn move_due_timers(&self) {
        let mut timers = self.timers.borrow_mut();
        if timers.is_empty() {
            return;
        }
        let end = Instant::now() + CLOCK_RESOLUTION;
        // Consecutive wakes share one queue entry; a callback between them
        // keeps its place, so the order of the due timers is the order in
        // which they run.
        let mut batches = self.wake_batches.borrow_mut();
        let (queued, spare) = &mut *batches;
        let mut wakes = std::mem::take(spare);
        while let Some(due) = timers.pop_due(end) {
            match due {
                Due::Waker(waker) => wakes.push(waker),
                Due::Handle(handle) => {
                    if !wakes.is_empty() {
                        queued.push_back(std::mem::take(&mut wakes));
                        self.shared.push_local(Ready::Wakes);
                    }
                    self.shared.push_local(Ready::Callback(handle));
                }
            }
        }
        if wakes.is_empty() {
            *spare = wakes;
        } else {
            queued.push_back(wakes);
            self.shared.push_local(Ready::Wakes);
        }
        timers.trim();
    }

    /// Runs the oldest wake batch: each waker as its own entry would, a
    /// panicking one reported and the rest still woken.
    fn run_wakes(&self, this: &EventLoop) {
        let Some(mut wakes) = self.wake_batches.borrow_mut().0.pop_front() else {
            return;
        };
        let debug = self.debug.get();
        for waker in wakes.drain(..) {
            if debug {
                // Debug mode times each wake as an entry of its own.
                self.run_entry(Ready::Wake(waker), this);
            } else if let Err(payload) = catch_unwind(AssertUnwindSafe(|| waker.wake())) {
                self.report_panic(this, TIMER_WAKER, &*payload);
            }
        }
        // The emptied vector serves the next batch, unless a burst grew it.
        if wakes.capacity() <= KEPT_WAKE_CAPACITY {
            self.wake_batches.borrow_mut().1 = wakes;
        }
    }

    fn run_entry(&self, entry: Ready, this: &EventLoop) {
        if let Ready::Wakes = entry {
            self.run_wakes(this);
            return;
        }
        if let Ready::Batch = entry {
            // Each queued entry runs as if it had its own place in the
            // queue (its own panic report and slow-callback timing).
            let mut batch = self.shared.take_batch();
            for remote in batch.drain(..) {
                match remote {
                    // The common entry, run here rather than through the
                    // whole of `run_entry` (outside debug mode, which times
                    // each callback there).
                    Remote::Callback(callback) if !self.debug.get() => {
                        if let Err(payload) = catch_unwind(AssertUnwindSafe(callback)) {
                            self.report_panic(this, REMOTE_CALLBACK, &*payload);
                        }
                    }
                    remote => self.run_entry(remote.into_ready(), this),
                }
            }
            self.shared.recycle_batch(batch);
            return;
        }
        let started = self.debug.get().then(Instant::now);
        // Names are looked up only for a report (a panic, or debug mode's
        // slow-callback warning): an indirect call saved per entry.
        let debug = started.is_some();
        let name: &'static str = match entry {
            Ready::Callback(handle) => {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handle.run())) {
                    self.report_panic(this, handle.name(), &*payload);
                }
                if debug { handle.name() } else { "" }
            }
            Ready::LocalTask(key) => {
                let Some((raw, name)) = self
                    .tasks
                    .borrow()
                    .get(key)
                    .map(|t| (t.as_raw(), if debug { t.name() } else { "" }))
                else {
                    return;
                };
                // SAFETY: the task set keeps the task alive through the step:
                // entries leave it only here, after the step, or when the
                // loop closes, which it cannot while running.
                if unsafe { raw.run(this) } {
                    self.forget_task(key);
                }
                name
            }
            Ready::Task(task) => {
                let key = task.key();
                // Forgotten only if the set still holds this very task under
                // its key: a stray step must never drop another task.
                // SAFETY: only the task's own scheduler, this loop's, queues
                // its steps here, and the `!Send` loop runs on its thread.
                if unsafe { task.run(this) }
                    && self
                        .tasks
                        .borrow()
                        .get(key)
                        .is_some_and(|held| held.ptr_eq(&task))
                {
                    self.forget_task(key);
                }
                if debug { task.name() } else { "" }
            }
            Ready::Io(callback) => {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| callback.run())) {
                    self.report_panic(this, "an I/O callback", &*payload);
                }
                "an I/O callback"
            }
            Ready::Remote(callback) => {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(callback)) {
                    self.report_panic(this, REMOTE_CALLBACK, &*payload);
                }
                REMOTE_CALLBACK
            }
            Ready::Wake(waker) => {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| waker.wake())) {
                    self.report_panic(this, TIMER_WAKER, &*payload);
                }
                TIMER_WAKER
            }
            Ready::Signals => {
                // Cloned out, so the hook may replace or remove itself.
                let hook = self.signal_hook.borrow().clone();
                if let Some(hook) = hook
                    && let Err(payload) = catch_unwind(AssertUnwindSafe(|| hook()))
                {
                    self.report_panic(this, "the signal hook", &*payload);
                }
                "the signal hook"
            }
            Ready::Stop => {
                self.stopping.set(true);
                "stop"
            }
            Ready::Batch | Ready::Wakes => unreachable!("batches are run above"),
        };
        if let Some(started) = started {
            let took = started.elapsed();
            if took >= SLOW_CALLBACK_DURATION {
                log::warn!("Executing {name} took {:.3} seconds", took.as_secs_f64());
            }
        }
    }

    /// The waiting half of a readiness poll (`ReadinessSources::poll_ready`),
    /// forgetting the cached readiness first with `clear`.
    fn wait_source(
        &self,
        sources: &mut ReadinessSources,
        key: IoKey,
        read: bool,
        clear: bool,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        // A registered key means the poller exists.
        let Some(poller) = self.shared.selector.existing_poller() else {
            return Poll::Ready(Err(Error::closed()));
        };
        sources
            .poll_ready(poller, key.0, read, clear, cx)
            .map_err(Error::from)
    }

    /// Drops a finished task from the task set.
    fn forget_task(&self, key: usize) {
        let removed = self.tasks.borrow_mut().try_remove(key);
        if let Some(task) = removed {
            // SAFETY: the loop runs on its own thread (it is `!Send`).
            unsafe { task.release_on_loop_thread() };
        }
    }

    fn report_panic(&self, this: &EventLoop, name: &str, payload: &(dyn std::any::Any + Send)) {
        this.call_exception_handler(
            ExceptionContext::new(format!("Exception in callback {name}"))
                .with_exception(panic_message(payload))
                .with_handle(name),
        );
    }

    /// Everything `close` and `Drop` share: drop queued work, end pending
    /// tasks, release the poller's registrations and the executor.
    fn shut(&self, this: Option<&EventLoop>) {
        self.closed.set(true);
        self.shared.close();
        self.shared.clear_local();
        self.timers.borrow_mut().clear();
        // Wakers may wake tasks of this loop; they are dropped, not woken.
        self.wake_batches.borrow_mut().0.clear();
        let pending: Vec<TaskRef> = self.tasks.borrow_mut().drain().collect();
        for task in pending {
            // SAFETY: the task set holds this loop's tasks, and the `!Send`
            // loop closes on its own thread.
            unsafe { task.abandon(this) };
        }
        // Abandoned tasks may have woken others; drop those entries too.
        self.shared.clear_local();
        if let Some(poller) = self.shared.selector.existing_poller() {
            self.io.borrow_mut().clear(poller);
            self.sources.borrow_mut().clear(poller);
        }
        self.executor_shutdown.set(true);
        if let Some(mut executor) = self.executor.borrow_mut().take() {
            executor.shutdown_nowait();
        }
    }
}

/// The name of a pending wake in the timer heap.
fn wake_timer(slot: usize, seq: u64) -> WakeTimer {
    // Each pending wake takes at least 24 bytes of the slot table: the
    // process runs out of memory long before 2^32 of them.
    let slot = u32::try_from(slot).expect("fewer than 2^32 pending sleeps");
    WakeTimer::Key { slot, seq }
}

impl AbstractEventLoop for SelectorEventLoop {
    fn call_soon(&self, handle: Handle) -> Result<(), Error> {
        if self.closed.get() {
            return Err(Error::closed());
        }
        self.shared.push_local(Ready::Callback(handle));
        Ok(())
    }

    fn call_soon_if_open(&self, handle: Handle) -> Result<(), Error> {
        // `call_soon` checks already.
        self.call_soon(handle)
    }

    fn call_at(&self, when: Instant, handle: Handle) -> Result<TimerHandle, Error> {
        if self.closed.get() {
            return Err(Error::closed());
        }
        Ok(self.timers.borrow_mut().push(when, handle))
    }

    fn wake_at(&self, when: Instant, waker: &Waker) -> Result<WakeTimer, Error> {
        if self.closed.get() {
            return Err(Error::closed());
        }
        let (slot, seq) = self.timers.borrow_mut().push_wake(when, waker.clone());
        Ok(wake_timer(slot, seq))
    }

    fn wake_after(&self, delay: Duration, waker: &Waker) -> Result<WakeTimer, Error> {
        if self.closed.get() {
            return Err(Error::closed());
        }
        let now = Instant::now();
        let when = aio_events::deadline_after(now, delay);
        let (slot, seq) = self.timers.borrow_mut().push_wake_from(now, when, waker.clone());
        Ok(wake_timer(slot, seq))
    }

    fn wake_timer_fired(&self, timer: &WakeTimer) -> bool {
        match timer {
            WakeTimer::Key { slot, seq } => self.timers.borrow().wake_done(*slot as usize, *seq),
            WakeTimer::Handle(handle) => handle.handle().has_run(),
        }
    }

    fn rearm_wake_timer(&self, timer: &mut WakeTimer, waker: &Waker) -> Result<(), Error> {
        if let WakeTimer::Key { slot, seq } = timer {
            self.timers.borrow_mut().rearm_wake(*slot as usize, *seq, waker);
        }
        Ok(())
    }

    fn cancel_wake_timer(&self, timer: &WakeTimer) {
        match timer {
            WakeTimer::Key { slot, seq } => self.timers.borrow_mut().cancel_wake(*slot as usize, *seq),
            WakeTimer::Handle(handle) => handle.cancel(),
        }
    }

    fn run_forever(&self, this: &EventLoop) -> Result<(), Error> {
        struct Running<'a>(&'a SelectorEventLoop);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.running.set(false);
                self.0.stopping.set(false);
            }
        }
        self.running.set(true);
        let _running = Running(self);
        loop {
            self.run_once(this);
            if self.stopping.get() {
                break;
            }
        }
        Ok(())
    }

    fn stop(&self) {
        self.stopping.set(true);
    }

    fn close(&self, this: &EventLoop) -> Result<(), Error> {
        if self.closed.get() {
            return Ok(());
        }
        self.shut(Some(this));
        Ok(())
    }

    fn is_running(&self) -> bool {
        self.running.get()
    }

    fn is_closed(&self) -> bool {
        self.closed.get()
    }

    fn scheduler(&self) -> Arc<dyn Scheduler> {
        Shared::task_scheduler(&self.shared)
    }

    fn scheduler_if_open(&self) -> Result<Arc<dyn Scheduler>, Error> {
        if self.closed.get() {
            return Err(Error::closed());
        }
        Ok(Shared::task_scheduler(&self.shared))
    }

    fn spawn(&self, task: TaskRef) -> Result<(), Error> {
        if self.closed.get() {
            return Err(Error::closed());
        }
        let key = {
            let mut tasks = self.tasks.borrow_mut();
            let entry = tasks.vacant_entry();
            task.set_key(entry.key());
            entry.insert(task).key()
        };
        // New tasks start scheduled; their first step is queued here.
        self.shared.push_local(Ready::LocalTask(key));
        Ok(())
    }

    fn all_tasks(&self) -> Vec<TaskRef> {
        self.tasks
            .borrow()
            .iter()
            .filter(|(_, task)| !task.done())
            .map(|(_, task)| task.clone())
            .collect()
    }

    fn threadsafe(&self) -> ThreadsafeLoop {
        ThreadsafeLoop::new(self.shared.clone())
    }

    fn set_debug(&self, enabled: bool) {
        self.debug.set(enabled);
    }

    fn get_debug(&self) -> bool {
        self.debug.get()
    }

    fn set_exception_handler(&self, handler: Option<ExceptionHandler>) {
        *self.exception_handler.borrow_mut() = handler;
    }

    fn exception_handler(&self) -> Option<ExceptionHandler> {
        self.exception_handler.borrow().clone()
    }

    fn run_in_executor(&self, job: Box<dyn FnOnce() + Send>) -> Result<(), Error> {
        if self.closed.get() {
            return Err(Error::closed());
        }
        if self.executor_shutdown.get() {
            return Err(Error::new(
                aio_events::ErrorKind::Closed,
                "Executor shutdown has been called",
            ));
        }
        self.executor
            .borrow_mut()
            .get_or_insert_with(|| ThreadPool::new(ThreadPool::default_max_threads()))
            .submit(job)
    }

    fn shutdown_default_executor(&self, timeout: Duration) -> Result<(), Error> {
        self.executor_shutdown.set(true);
        let executor = self.executor.borrow_mut().take();
        if let Some(mut executor) = executor
            && !executor.shutdown(timeout)
        {
            log::warn!(
                "The executor did not finish joining its threads within {} seconds.",
                timeout.as_secs_f64()
            );
        }
        Ok(())
    }

    fn io_register(&self, raw: RawSource) -> Result<IoKey, Error> {
        if self.closed.get() {
            return Err(Error::closed());
        }
        let poller = self.shared.selector.poller()?;
        let key = self.sources.borrow_mut().register(poller, raw)?;
        Ok(IoKey(key))
    }

    fn io_poll_ready(&self, key: IoKey, interest: Interest, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let read = interest == Interest::Read;
        let mut sources = self.sources.borrow_mut();
        if sources.is_ready(key.0, read) {
            return Poll::Ready(Ok(()));
        }
        self.wait_source(&mut sources, key, read, false, cx)
    }

    fn io_ready(&self, key: IoKey, interest: Interest) -> bool {
        self.sources.borrow().is_ready(key.0, interest == Interest::Read)
    }

    fn io_clear_ready(&self, key: IoKey, interest: Interest) {
        self.sources
            .borrow_mut()
            .clear_ready(key.0, interest == Interest::Read);
    }

    fn io_clear_and_poll_ready(
        &self,
        key: IoKey,
        interest: Interest,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        let read = interest == Interest::Read;
        self.wait_source(&mut self.sources.borrow_mut(), key, read, true, cx)
    }

    fn io_deregister(&self, key: IoKey) {
        if let Some(poller) = self.shared.selector.existing_poller() {
            self.sources.borrow_mut().deregister(poller, key.0, false);
        }
    }

    fn io_deregister_closing(&self, key: IoKey) {
        if let Some(poller) = self.shared.selector.existing_poller() {
            self.sources.borrow_mut().deregister(poller, key.0, true);
        }
    }

    fn add_reader(&self, fd: RawSource, callback: Box<dyn FnMut()>) -> Result<(), Error> {
        self.add_source(fd, false, callback)
    }

    fn remove_reader(&self, fd: RawSource) -> bool {
        self.remove_source(fd, false)
    }

    fn add_writer(&self, fd: RawSource, callback: Box<dyn FnMut()>) -> Result<(), Error> {
        self.add_source(fd, true, callback)
    }

    fn remove_writer(&self, fd: RawSource) -> bool {
        self.remove_source(fd, true)
    }

    fn type_name(&self) -> &'static str {
        "SelectorEventLoop"
    }
}

/// Wakes a [`SelectorEventLoop`] from a signal handler: it marks the loop's
/// signal hook due and wakes the loop if it sleeps.
///
/// [`wake`](SignalWake::wake) is async-signal-safe on Linux and Android
/// (atomic stores and swaps, then one `write` to an eventfd or one `futex`
/// wake); elsewhere it ends in `polling`'s `Poller::notify` (kqueue's
/// `EVFILT_USER` trigger, a pipe write for poll), which takes no lock and
/// allocates nothing. It is `Send` and `Sync`, and keeps the loop's shared
/// part (not the loop) alive.
#[derive(Clone)]
pub struct SignalWake {
    shared: Arc<Shared>,
}

impl SignalWake {
    /// Marks the signal hook due and wakes the loop. Async-signal-safe (see
    /// the type's docs).
    pub fn wake(&self) {
        self.shared.signal();
    }
}

impl fmt::Debug for SignalWake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalWake").finish_non_exhaustive()
    }
}

impl Drop for SelectorEventLoop {
    fn drop(&mut self) {
        if !self.closed.get() {
            self.shut(None);
        }
        Shared::close_ref_pool(&self.shared);
    }
}

impl fmt::Debug for SelectorEventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectorEventLoop")
            .field("running", &self.running.get())
            .field("closed", &self.closed.get())
            .field("debug", &self.debug.get())
            .field("timers", &self.timers.borrow().len())
            .field("tasks", &self.tasks.borrow().len())
            .finish()
    }
}
