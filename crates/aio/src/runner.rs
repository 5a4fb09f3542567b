//! [`run`] and [`Runner`]: the entry point of an aio program (asyncio's
//! `runners.py`).
//!
//! A file of its own because the runner is the one place that strings the
//! layers together: the policy makes the loop, the runner sets it current
//! once, runs the main task, and tears everything down in asyncio's order.

use std::any::type_name;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use aio_events::{Error, ErrorKind, EventLoop, ExceptionContext, TaskRef, try_get_running_loop};

/// How long `close` waits for the default executor (asyncio's
/// `THREAD_JOIN_TIMEOUT`).
pub const THREAD_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The message of the `Interrupted` error: Ctrl-C arrives as SIGINT on
/// Unix, as a console control event on Windows.
#[cfg(not(windows))]
const INTERRUPTED: &str = "interrupted by Ctrl-C (SIGINT)";
/// The message of the `Interrupted` error: Ctrl-C arrives as SIGINT on
/// Unix, as a console control event on Windows.
#[cfg(windows)]
const INTERRUPTED: &str = "interrupted by Ctrl-C (CTRL_C_EVENT)";

type LoopFactory = Box<dyn FnOnce() -> Result<EventLoop, Error>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Created,
    Initialized,
    Closed,
}

/// Runs futures on one loop it makes lazily, and closes it (asyncio's
/// `Runner`).
///
/// ```
/// let mut runner = aio::Runner::new();
/// assert_eq!(runner.run(async { 1 })?, 1);
/// assert_eq!(runner.run(async { 2 })?, 2); // the same loop
/// runner.close();
/// # Ok::<(), aio::Error>(())
/// ```
pub struct Runner {
    state: State,
    debug: Option<bool>,
    loop_factory: Option<LoopFactory>,
    event_loop: Option<EventLoop>,
    set_event_loop: bool,
}

impl Runner {
    /// A runner that has created nothing yet.
    pub fn new() -> Runner {
        Runner {
            state: State::Created,
            debug: None,
            loop_factory: None,
            event_loop: None,
            set_event_loop: false,
        }
    }

    /// Sets the loop's debug mode (unset: the loop's own default, which
    /// follows `AIO_DEBUG`).
    pub fn debug(mut self, enabled: bool) -> Runner {
        self.debug = Some(enabled);
        self
    }

    /// Makes the loop with `factory` instead of the policy. The factory's
    /// loop is not made current: that is the factory's business.
    pub fn loop_factory(mut self, factory: impl FnOnce() -> Result<EventLoop, Error> + 'static) -> Runner {
        self.loop_factory = Some(Box::new(factory));
        self
    }

    fn lazy_init(&mut self) -> Result<EventLoop, Error> {
        match self.state {
            State::Closed => return Err(Error::new(ErrorKind::RunnerClosed, "Runner is closed")),
            State::Initialized => {
                if let Some(event_loop) = &self.event_loop {
                    return Ok(event_loop.clone());
                }
            }
            State::Created => {}
        }
        let event_loop = match self.loop_factory.take() {
            Some(factory) => factory()?,
            None => {
                let event_loop = crate::new_event_loop()?;
                if !self.set_event_loop {
                    // Once only: setting it attaches the child watcher.
                    crate::set_event_loop(Some(event_loop.clone()))?;
                    self.set_event_loop = true;
                }
                event_loop
            }
        };
        if let Some(debug) = self.debug {
            event_loop.set_debug(debug);
        }
        self.event_loop = Some(event_loop.clone());
        self.state = State::Initialized;
        Ok(event_loop)
    }

    /// The runner's loop, made now if need be. `RunnerClosed` after `close`.
    pub fn get_loop(&mut self) -> Result<EventLoop, Error> {
        self.lazy_init()
    }

    /// Runs `main` to completion on the runner's loop and returns its output.
    ///
    /// Errors: `RunningLoop` when a loop already runs on this thread (checked
    /// before anything is made; `main` is dropped unpolled), `RunnerClosed`
    /// after `close`, `Stopped` when the loop was stopped before `main`
    /// finished. A panic in `main` propagates.
    pub fn run<F>(&mut self, main: F) -> Result<F::Output, Error>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if try_get_running_loop().is_some() {
            self.note_unpolled::<F>();
            return Err(Error::new(
                ErrorKind::RunningLoop,
                "Runner.run() cannot be called from a running event loop",
            ));
        }
        let event_loop = self.lazy_init()?;
        let task = event_loop.create_main_task(main)?;
        let ctrl_c = CtrlC::arm(&event_loop, &task);
        let result = catch_unwind(AssertUnwindSafe(|| event_loop.run_main_task(&task)));
        let interrupted = ctrl_c.disarm(&event_loop);
        match result {
            Err(payload) => resume_unwind(payload),
            Ok(Err(err)) if interrupted && err.is_cancelled() => {
                Err(Error::new(ErrorKind::Interrupted, INTERRUPTED))
            }
            Ok(result) => result,
        }
    }

    fn note_unpolled<F>(&self) {
        if self.debug.unwrap_or_else(aio_events::debug_from_env) {
            log::warn!(
                "the future {} given to run() was dropped without being polled",
                type_name::<F>()
            );
        }
    }

    /// Cancels the tasks still pending and lets them finish, shuts down the
    /// default executor, unsets the current loop if the runner set it, and
    /// closes the loop. Idempotent; afterwards the runner refuses to run.
    pub fn close(&mut self) {
        if self.state != State::Initialized {
            self.state = State::Closed;
            return;
        }
        self.state = State::Closed;
        let Some(event_loop) = self.event_loop.take() else {
            return;
        };
        cancel_all_tasks(&event_loop);
        if let Err(err) = event_loop.shutdown_default_executor(THREAD_JOIN_TIMEOUT) {
            log::warn!("shutting down the default executor failed: {err}");
        }
        if self.set_event_loop
            && let Err(err) = crate::set_event_loop(None)
        {
            log::warn!("unsetting the current event loop failed: {err}");
        }
        if let Err(err) = event_loop.close() {
            log::warn!("closing the event loop failed: {err}");
        }
    }
}

/// Ctrl-C while `run` runs (asyncio's `Runner._on_sigint`): in the main
/// thread, the first Ctrl-C cancels the main task and wakes the loop; a
/// second one, while the loop is still stuck, ends the process at once (from
/// the handler itself, so it works even if the loop never turns again).
///
/// On Unix, only while SIGINT has its default disposition: the handler is a
/// signal handler of the loop, the second SIGINT restores the default
/// disposition and re-raises, and afterwards SIGINT has its default
/// disposition back. On Windows, a console control handler
/// (`aio_windows::arm_ctrl_c`) that handles `CTRL_C_EVENT` and lets the
/// second one through to Windows' default handler; it is removed afterwards.
struct CtrlC {
    pressed: Option<std::rc::Rc<std::cell::Cell<bool>>>,
}

impl CtrlC {
    #[cfg(unix)]
    fn arm<T>(event_loop: &EventLoop, main: &aio_events::Task<T>) -> CtrlC {
        if !aio_base_policy::is_main_thread() || !aio_unix::sigint_is_default() {
            return CtrlC { pressed: None };
        }
        let pressed = std::rc::Rc::new(std::cell::Cell::new(false));
        let (flag, main) = (pressed.clone(), main.task_ref());
        let installed = event_loop.add_signal_handler(aio_unix::SIGINT, move || {
            flag.set(true);
            main.cancel();
        });
        match installed {
            Ok(()) => {
                aio_unix::arm_interrupt();
                CtrlC {
                    pressed: Some(pressed),
                }
            }
            // A loop without signal handlers: Ctrl-C keeps its default.
            Err(_) => CtrlC { pressed: None },
        }
    }

    #[cfg(windows)]
    fn arm<T>(event_loop: &EventLoop, main: &aio_events::Task<T>) -> CtrlC {
        if !aio_base_policy::is_main_thread() {
            return CtrlC { pressed: None };
        }
        let pressed = std::rc::Rc::new(std::cell::Cell::new(false));
        let (flag, main) = (pressed.clone(), main.task_ref());
        let installed = aio_windows::arm_ctrl_c(event_loop, move || {
            flag.set(true);
            main.cancel();
        });
        match installed {
            Ok(()) => CtrlC {
                pressed: Some(pressed),
            },
            // Windows refused the handler: Ctrl-C keeps its default.
            Err(err) => {
                log::warn!("Ctrl-C keeps its default effect: {err}");
                CtrlC { pressed: None }
            }
        }
    }

    #[cfg(not(any(unix, windows)))]
    fn arm<T>(_event_loop: &EventLoop, _main: &aio_events::Task<T>) -> CtrlC {
        CtrlC { pressed: None }
    }

    /// Restores SIGINT (removes the console control handler on Windows);
    /// `true` if a Ctrl-C came while armed.
    fn disarm(self, event_loop: &EventLoop) -> bool {
        let Some(pressed) = self.pressed else {
            return false;
        };
        #[cfg(unix)]
        {
            // Only if our handler is still the one installed: a handler the
            // user added meanwhile disarmed the rule and stays.
            if aio_unix::interrupt_armed() {
                aio_unix::disarm_interrupt();
                let _ = event_loop.remove_signal_handler(aio_unix::SIGINT);
            }
        }
        #[cfg(not(unix))]
        let _ = event_loop;
        #[cfg(windows)]
        aio_windows::disarm_ctrl_c();
        pressed.get()
    }
}

/// Cancels every pending task of `event_loop`, runs the loop until they are
/// all done, and reports those that panicked (asyncio's `_cancel_all_tasks`).
fn cancel_all_tasks(event_loop: &EventLoop) {
    let tasks = event_loop.all_tasks();
    if tasks.is_empty() {
        return;
    }
    for task in &tasks {
        task.cancel();
    }
    let waiting = AllDone(tasks.clone());
    if let Err(err) = event_loop.run_until_complete(waiting) {
        log::warn!("waiting for cancelled tasks failed: {err}");
    }
    for task in &tasks {
        // SAFETY: `all_tasks` gives the tasks of `event_loop`, whose thread
        // this is (an `EventLoop` is `!Send`).
        if let Some(panic) = unsafe { task.take_unretrieved_panic() } {
            event_loop.call_exception_handler(
                ExceptionContext::new("unhandled exception during aio.run() shutdown")
                    .with_exception(panic)
                    .with_task(task.name()),
            );
        }
    }
}

/// Ready once every task is done. Cancelled tasks end at their next step, so
/// yielding a few iterations is all it takes.
struct AllDone(Vec<TaskRef>);

impl Future for AllDone {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.iter().all(TaskRef::done) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl Default for Runner {
    fn default() -> Runner {
        Runner::new()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("state", &self.state)
            .field("debug", &self.debug)
            .field("event_loop", &self.event_loop)
            .finish()
    }
}

/// Runs `main` on a new loop and closes the loop (asyncio's `run`).
///
/// Equivalent to `Runner::new().run(main)` followed by `close()`: the loop is
/// made through the policy and set current once; after `main` the pending
/// tasks are cancelled, the executor shut down, the current loop unset and the
/// loop closed, also when `main` panics (the panic then propagates).
///
/// ```
/// let answer = aio::run(async { 6 * 7 })?;
/// assert_eq!(answer, 42);
/// # Ok::<(), aio::Error>(())
/// ```
pub fn run<F>(main: F) -> Result<F::Output, Error>
where
    F: Future + 'static,
    F::Output: 'static,
{
    if try_get_running_loop().is_some() {
        if aio_events::debug_from_env() {
            log::warn!(
                "the future {} given to run() was dropped without being polled",
                type_name::<F>()
            );
        }
        return Err(Error::new(
            ErrorKind::RunningLoop,
            "run() cannot be called from a running event loop",
        ));
    }
    let mut runner = Runner::new();
    let outcome = catch_unwind(AssertUnwindSafe(|| runner.run(main)));
    runner.close();
    match outcome {
        Ok(result) => result,
        Err(payload) => resume_unwind(payload),
    }
}
