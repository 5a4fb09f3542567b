//! `aio::run`, `Runner`, the global policy and the main-thread rules: asyncio's
//! `test_runners.py`, `PolicyTests` and `GetEventLoopTestsMixin`.
//!
//! A `harness = false` binary of its own because these cases share
//! process-global state (the global policy, the running-loop registry, the
//! SIGINT disposition) and the rule "only the main thread gets a loop on
//! demand": libtest would run them in parallel on threads that are not `main`.
//! Here `main` runs them one by one in the process's first thread, each
//! starting from a fresh default policy, prints one line per case and ends
//! with `N passed, M failed`, exiting non-zero when anything failed.
//!
//! Cases that need a process of their own (Ctrl-C, `fork`, the `AIO_DEBUG`
//! environment variable) run this same binary as a child with
//! `--child NAME`; the parent case checks the child's exit status.
//!
//! Usage: `main_thread [FILTER]` runs the cases whose name contains FILTER;
//! `--list` lists them. The command line, the child processes and the
//! closing summary are `harness.rs`'s, shared with the other `harness = false`
//! suites.

#[path = "harness.rs"]
mod harness;

use std::cell::{Cell, RefCell};
use std::io::Write;
#[cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
#[cfg(unix)]
use std::process::ExitStatus;
use std::process::{Command, ExitCode};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;
#[cfg(unix)]
use std::time::Instant;

use aio::{BaseDefaultEventLoopPolicy, Error, ErrorKind, EventLoop, EventLoopPolicy};

/// How long a child case may run before it is killed and the case fails.
const CHILD_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a wait on another thread may last.
const THREAD_TIMEOUT: Duration = Duration::from_secs(10);

type Case = (&'static str, fn());

/// Where `main` leaves something for the case to inspect after `run` returns.
type Slot<T> = Rc<RefCell<Option<T>>>;

/// The cases run in this process, in order.
const CASES: &[Case] = &[
    // test_runners.py
    ("run_returns_the_output_of_main", run_returns_the_output_of_main),
    (
        "run_propagates_a_panic_after_cleanup",
        run_propagates_a_panic_after_cleanup,
    ),
    (
        "run_from_a_running_loop_is_refused_before_anything_is_created",
        run_from_a_running_loop_is_refused_before_anything_is_created,
    ),
    ("run_cancels_leftover_tasks", run_cancels_leftover_tasks),
    (
        "run_reports_a_leftover_task_that_panics_while_cancelled",
        run_reports_a_leftover_task_that_panics_while_cancelled,
    ),
    (
        "run_reports_a_started_leftover_task_that_panics_while_cancelled",
        run_reports_a_started_leftover_task_that_panics_while_cancelled,
    ),
    ("run_calls_set_event_loop", run_calls_set_event_loop),
    (
        "runner_calls_set_event_loop_once_for_many_runs",
        runner_calls_set_event_loop_once_for_many_runs,
    ),
    (
        "loop_factory_is_called_once_and_its_loop_runs",
        loop_factory_is_called_once_and_its_loop_runs,
    ),
    (
        "runner_debug_sets_the_loop_debug_mode",
        runner_debug_sets_the_loop_debug_mode,
    ),
    (
        "closed_runner_refuses_everything",
        closed_runner_refuses_everything,
    ),
    (
        "dropping_a_runner_closes_its_loop",
        dropping_a_runner_closes_its_loop,
    ),
    (
        "get_event_loop_after_run_gives_no_current_loop",
        get_event_loop_after_run_gives_no_current_loop,
    ),
    #[cfg(target_os = "linux")]
    (
        "run_without_io_opens_no_descriptor",
        run_without_io_opens_no_descriptor,
    ),
    #[cfg(unix)]
    (
        "ctrl_c_while_waiting_cancels_main",
        ctrl_c_while_waiting_cancels_main,
    ),
    #[cfg(unix)]
    ("ctrl_c_while_busy_cancels_main", ctrl_c_while_busy_cancels_main),
    #[cfg(unix)]
    (
        "second_ctrl_c_interrupts_at_once",
        second_ctrl_c_interrupts_at_once,
    ),
    #[cfg(unix)]
    (
        "sigint_disposition_is_restored_after_run",
        sigint_disposition_is_restored_after_run,
    ),
    #[cfg(unix)]
    (
        "sigint_is_left_alone_when_the_user_ignores_it",
        sigint_is_left_alone_when_the_user_ignores_it,
    ),
    // test_events.py: PolicyTests
    #[cfg(unix)]
    (
        "policy_without_child_watcher_support",
        policy_without_child_watcher_support,
    ),
    (
        "get_event_loop_policy_returns_the_same_policy",
        get_event_loop_policy_returns_the_same_policy,
    ),
    ("set_event_loop_policy_then_get", set_event_loop_policy_then_get),
    (
        "default_policy_creates_a_loop_on_demand_in_the_main_thread",
        default_policy_creates_a_loop_on_demand_in_the_main_thread,
    ),
    (
        "set_event_loop_none_disables_auto_creation",
        set_event_loop_none_disables_auto_creation,
    ),
    (
        "other_threads_get_no_loop_on_demand",
        other_threads_get_no_loop_on_demand,
    ),
    (
        "new_event_loop_is_fresh_and_not_current",
        new_event_loop_is_fresh_and_not_current,
    ),
    (
        "set_event_loop_replaces_the_current_loop",
        set_event_loop_replaces_the_current_loop,
    ),
    (
        "policy_instances_keep_separate_loops",
        policy_instances_keep_separate_loops,
    ),
    // test_events.py: GetEventLoopTestsMixin
    (
        "get_event_loop_returns_the_running_loop_without_the_policy",
        get_event_loop_returns_the_running_loop_without_the_policy,
    ),
    (
        "get_event_loop_with_the_default_policy",
        get_event_loop_with_the_default_policy,
    ),
    #[cfg(unix)]
    (
        "forked_child_sees_no_running_loop",
        forked_child_sees_no_running_loop,
    ),
    // test_base_events.py
    (
        "aio_debug_env_makes_new_loops_debug",
        aio_debug_env_makes_new_loops_debug,
    ),
];

/// The cases that run only in a child process (`--child NAME`).
const CHILD_CASES: &[Case] = &[
    #[cfg(unix)]
    ("sigint-while-waiting", child_sigint_while_waiting),
    #[cfg(unix)]
    ("sigint-while-busy", child_sigint_while_busy),
    #[cfg(unix)]
    ("sigint-twice-while-blocked", child_sigint_twice_while_blocked),
    #[cfg(unix)]
    ("sigint-after-run", child_sigint_after_run),
    #[cfg(unix)]
    ("sigint-ignored-by-user", child_sigint_ignored_by_user),
    #[cfg(unix)]
    ("fork-in-running-loop", child_fork_in_running_loop),
    ("debug-env-on", child_debug_env_on),
    ("debug-env-off", child_debug_env_off),
];

fn main() -> ExitCode {
    // Several cases panic on purpose; one line per panic keeps the output
    // readable whatever RUST_BACKTRACE says.
    std::panic::set_hook(Box::new(|info| eprintln!("    panicked: {info}")));
    let args = harness::Args::parse("--child", harness::LIBTEST_FLAGS_WITH_VALUES);
    if let Some(name) = &args.child {
        return harness::run_child_case(CHILD_CASES, name, |(name, _)| name, |(_, case)| case());
    }
    if args.list {
        return harness::list(CASES.iter().map(|(name, _)| name));
    }
    let selected = harness::select(CASES, args.filter.as_deref(), |(name, _)| name);

    println!("\nrunning {} cases", selected.len());
    let mut failed = Vec::new();
    for (name, case) in &selected {
        aio::set_event_loop_policy(None);
        println!("case {name} ...");
        let _ = std::io::stdout().flush();
        match catch_unwind(case) {
            Ok(()) => println!("case {name} ... ok"),
            Err(payload) => {
                let text = harness::panic_text(&*payload);
                let first_line = text.lines().next().unwrap_or_default();
                println!("case {name} ... FAILED: {first_line}");
                failed.push(*name);
            }
        }
    }
    aio::set_event_loop_policy(None);
    harness::summary(selected.len() - failed.len(), &failed)
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn assert_error<T>(result: Result<T, Error>, kind: ErrorKind, message: &str) {
    let Err(err) = result else {
        panic!("expected {kind:?} ({message:?}), got Ok");
    };
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(err.to_string(), message);
}

/// Checks the kind only, where API.md quotes no message.
#[cfg(unix)]
fn assert_kind<T>(result: Result<T, Error>, kind: ErrorKind) {
    let Err(err) = result else {
        panic!("expected {kind:?}, got Ok");
    };
    assert_eq!(err.kind(), kind, "{err}");
}

/// Sets a flag when dropped: tells whether a future was dropped.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// Panics when dropped while armed: a task holding one fails if it is
/// cancelled (its future dropped) before it disarms it.
struct PanicOnDrop {
    armed: bool,
}

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if self.armed && !thread::panicking() {
            panic!("the leftover task failed while being cancelled");
        }
    }
}

/// A `BaseDefaultEventLoopPolicy` that counts the calls made to it, as
/// test_runners.py replaces `policy.set_event_loop` with a `Mock`.
struct CountingPolicy {
    inner: BaseDefaultEventLoopPolicy,
    /// One entry per `set_event_loop` call: whether it set a loop (`Some`).
    set_calls: Mutex<Vec<bool>>,
    new_calls: AtomicUsize,
}

impl CountingPolicy {
    fn install() -> Arc<CountingPolicy> {
        let policy = Arc::new(CountingPolicy {
            inner: BaseDefaultEventLoopPolicy::new(aio::SelectorEventLoop::new),
            set_calls: Mutex::new(Vec::new()),
            new_calls: AtomicUsize::new(0),
        });
        aio::set_event_loop_policy(Some(policy.clone()));
        policy
    }

    fn set_calls(&self) -> Vec<bool> {
        self.set_calls.lock().unwrap().clone()
    }

    fn new_calls(&self) -> usize {
        self.new_calls.load(Ordering::SeqCst)
    }
}

impl EventLoopPolicy for CountingPolicy {
    fn get_event_loop(&self) -> Result<EventLoop, Error> {
        self.inner.get_event_loop()
    }

    fn set_event_loop(&self, event_loop: Option<EventLoop>) -> Result<(), Error> {
        self.set_calls.lock().unwrap().push(event_loop.is_some());
        self.inner.set_event_loop(event_loop)
    }

    fn new_event_loop(&self) -> Result<EventLoop, Error> {
        self.new_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.new_event_loop()
    }
}

const POLICY_REFUSES: &str = "this test policy refuses get_event_loop";

/// A policy whose `get_event_loop` always fails, as test_events.py's
/// `GetEventLoopTestsMixin` uses to show the running loop wins.
struct RefusingPolicy {
    inner: BaseDefaultEventLoopPolicy,
}

impl EventLoopPolicy for RefusingPolicy {
    fn get_event_loop(&self) -> Result<EventLoop, Error> {
        Err(Error::new(ErrorKind::Unsupported, POLICY_REFUSES))
    }

    fn set_event_loop(&self, event_loop: Option<EventLoop>) -> Result<(), Error> {
        self.inner.set_event_loop(event_loop)
    }

    fn new_event_loop(&self) -> Result<EventLoop, Error> {
        self.inner.new_event_loop()
    }
}

/// Runs this binary as `--child CASE`, with `AIO_DEBUG` removed from its
/// environment unless `configure` sets it, and kills it after [`CHILD_TIMEOUT`].
fn run_child(case: &str, configure: impl FnOnce(&mut Command)) -> harness::ChildRun {
    harness::run_child(case, CHILD_TIMEOUT, configure)
        .unwrap_or_else(|_| panic!("child case {case} did not finish within {CHILD_TIMEOUT:?}"))
}

/// The few libc calls std does not wrap: signals and fork. std links libc, so
/// declaring them is enough.
#[cfg(unix)]
mod sys {
    use std::ffi::c_int;

    pub const SIGINT: c_int = 2;
    /// `SIG_DFL` and `SIG_IGN` as `sighandler_t` values.
    pub const SIG_DFL: usize = 0;
    pub const SIG_IGN: usize = 1;

    unsafe extern "C" {
        pub fn signal(signum: c_int, handler: usize) -> usize;
        pub fn fork() -> c_int;
        pub fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
        pub fn _exit(status: c_int) -> !;
    }
}

/// Sends SIGINT to this process, as a Ctrl-C in its terminal would.
#[cfg(unix)]
fn send_sigint_to_self() {
    harness::send_to_self(sys::SIGINT);
}

/// Sets the SIGINT disposition (`SIG_DFL` or `SIG_IGN`).
#[cfg(unix)]
fn set_sigint_disposition(disposition: usize) {
    // SAFETY: SIG_DFL and SIG_IGN are not function pointers, so no handler
    // code of ours can run in signal context.
    let previous = unsafe { sys::signal(sys::SIGINT, disposition) };
    assert_ne!(previous, usize::MAX, "signal(SIGINT) failed (SIG_ERR)");
}

// ---------------------------------------------------------------------------
// test_runners.py
// ---------------------------------------------------------------------------

fn run_returns_the_output_of_main() {
    // test_runners.py: RunTests.test_asyncio_run_return
    let output = aio::run(async {
        aio::sleep(Duration::ZERO).await;
        42
    });
    assert_eq!(output.unwrap(), 42);
}

/// The descriptors this process has open.
#[cfg(target_os = "linux")]
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .count()
}

#[cfg(target_os = "linux")]
fn run_without_io_opens_no_descriptor() {
    // A loop makes its epoll with its first fd, and signals (Ctrl-C, which
    // run handles here in the main thread) wake it without a pipe: a main
    // of timers, tasks and threads runs on no descriptor at all.
    let before = open_fds();
    let during = aio::run(async {
        aio::sleep(Duration::from_millis(1)).await;
        aio::create_task(async { aio::sleep(Duration::ZERO).await })
            .await
            .unwrap();
        aio::to_thread(|| ()).await.unwrap();
        open_fds()
    })
    .unwrap();
    assert_eq!(during, before, "descriptors while main ran");
    assert_eq!(open_fds(), before, "descriptors after run");
}

fn run_propagates_a_panic_after_cleanup() {
    // test_runners.py: RunTests.test_asyncio_run_raises (and asyncio.md §1.5:
    // the runner's cleanup runs before the exception leaves run)
    let seen: Slot<(EventLoop, aio::Task<()>)> = Rc::default();
    let slot = seen.clone();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        aio::run(async move {
            let event_loop = aio::get_running_loop().unwrap();
            let leftover = aio::create_task(aio::sleep(Duration::from_secs(3600)));
            *slot.borrow_mut() = Some((event_loop, leftover));
            aio::sleep(Duration::ZERO).await;
            panic!("spam");
        })
    }));
    let payload = outcome.expect_err("the panic in main propagates");
    assert_eq!(harness::panic_text(&*payload), "spam");
    let (event_loop, leftover) = seen.borrow_mut().take().expect("main ran");
    assert!(event_loop.is_closed(), "the loop was not closed");
    assert!(
        leftover.done() && leftover.cancelled(),
        "the leftover task: {leftover:?}"
    );
    assert_error(
        aio::get_event_loop(),
        ErrorKind::NoCurrentLoop,
        "There is no current event loop in thread 'main'.",
    );
}

fn run_from_a_running_loop_is_refused_before_anything_is_created() {
    // test_runners.py: RunTests.test_asyncio_run_from_running_loop and
    // RunnerTests.test_recursive_run (with a second runner: the same one
    // cannot be borrowed twice in Rust)
    let policy = CountingPolicy::install();
    let polled = Rc::new(Cell::new(false));
    let dropped = Rc::new(Cell::new(false));
    let (flag, guard) = (polled.clone(), DropFlag(dropped.clone()));
    let (from_run, from_runner) = aio::run(async move {
        let from_run = aio::run(async move {
            let _guard = guard;
            flag.set(true);
        });
        let from_runner = aio::Runner::new().run(async {});
        (from_run, from_runner)
    })
    .unwrap();
    assert_error(
        from_run,
        ErrorKind::RunningLoop,
        "run() cannot be called from a running event loop",
    );
    assert_error(
        from_runner,
        ErrorKind::RunningLoop,
        "Runner.run() cannot be called from a running event loop",
    );
    assert!(!polled.get(), "the refused main was polled");
    assert!(dropped.get(), "the refused main was not dropped");
    assert_eq!(policy.new_calls(), 1, "the refused runs created a loop");
    assert_eq!(policy.set_calls(), [true, false]);
}

fn run_cancels_leftover_tasks() {
    // test_runners.py: RunTests.test_asyncio_run_cancels_hanging_tasks
    let leftover: Slot<aio::Task<()>> = Rc::default();
    let slot = leftover.clone();
    let output = aio::run(async move {
        *slot.borrow_mut() = Some(aio::create_task(aio::sleep(Duration::from_millis(100))));
        123
    });
    assert_eq!(output.unwrap(), 123);
    let task = leftover.borrow_mut().take().expect("main ran");
    assert!(task.done(), "{task:?}");
    assert!(task.cancelled(), "{task:?}");
}

fn run_reports_a_leftover_task_that_panics_while_cancelled() {
    // test_runners.py: RunTests.test_asyncio_run_reports_hanging_tasks_errors
    check_leftover_panic_report(false);
}

fn run_reports_a_started_leftover_task_that_panics_while_cancelled() {
    // test_runners.py: RunTests.test_asyncio_run_reports_hanging_tasks_errors,
    // with main yielding once so the leftover task has surely started: this
    // checks the report alone, apart from when leftover tasks first run
    check_leftover_panic_report(true);
}

fn check_leftover_panic_report(yield_before_returning: bool) {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let started = Rc::new(Cell::new(false));
    let leftover: Slot<aio::Task<()>> = Rc::default();
    let (sink, flag, slot) = (reports.clone(), started.clone(), leftover.clone());
    let output = aio::run(async move {
        let event_loop = aio::get_running_loop().unwrap();
        event_loop
            .set_exception_handler(move |_, context| sink.borrow_mut().push(context.message().to_owned()));
        *slot.borrow_mut() = Some(aio::create_task(async move {
            flag.set(true);
            let mut guard = PanicOnDrop { armed: true };
            aio::sleep(Duration::from_millis(100)).await;
            guard.armed = false;
        }));
        if yield_before_returning {
            aio::sleep(Duration::ZERO).await;
        }
        123
    });
    assert_eq!(output.unwrap(), 123);
    let task = leftover.borrow_mut().take().expect("main ran");
    assert!(task.done(), "{task:?}");
    // asyncio runs the first step of a task created in main's last step
    // before run_until_complete returns: the callback that stops the loop is
    // itself queued behind it with call_soon.
    assert!(
        started.get(),
        "the leftover task never started, so nothing could fail while it was cancelled"
    );
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "reports: {reports:?}");
    // asyncio: "unhandled exception during asyncio.run() shutdown".
    assert!(reports[0].contains("shutdown"), "{:?}", reports[0]);
}

fn run_calls_set_event_loop() {
    // test_runners.py: RunTests.test_asyncio_run_set_event_loop
    let policy = CountingPolicy::install();
    aio::run(async { aio::sleep(Duration::ZERO).await }).unwrap();
    assert_eq!(policy.new_calls(), 1);
    assert_eq!(
        policy.set_calls(),
        [true, false],
        "set the loop, then unset it on close"
    );
}

fn runner_calls_set_event_loop_once_for_many_runs() {
    // test_runners.py: RunnerTests.test_set_event_loop_called_once
    let policy = CountingPolicy::install();
    let mut runner = aio::Runner::new();
    assert_eq!(policy.new_calls(), 0, "Runner::new creates nothing");
    assert_eq!(runner.run(async { 1 }).unwrap(), 1);
    assert_eq!(runner.run(async { 2 }).unwrap(), 2);
    assert_eq!(policy.set_calls(), [true]);
    assert_eq!(policy.new_calls(), 1);
    runner.close();
    assert_eq!(policy.set_calls(), [true, false]);
}

fn loop_factory_is_called_once_and_its_loop_runs() {
    // test_runners.py: RunTests.test_asyncio_run_loop_factory,
    // test_loop_factory_default_event_loop and RunnerTests.test_custom_factory
    let policy = CountingPolicy::install();
    let calls = Rc::new(Cell::new(0));
    let made: Slot<EventLoop> = Rc::default();
    let (count, slot) = (calls.clone(), made.clone());
    let mut runner = aio::Runner::new().loop_factory(move || {
        count.set(count.get() + 1);
        let event_loop = aio::SelectorEventLoop::new()?;
        *slot.borrow_mut() = Some(event_loop.clone());
        Ok(event_loop)
    });
    assert_eq!(calls.get(), 0, "the factory is called lazily");
    let running = runner.run(async { aio::get_running_loop().unwrap() }).unwrap();
    let again = runner.run(async { aio::get_running_loop().unwrap() }).unwrap();
    let factory_loop = made.borrow().clone().expect("the factory ran");
    assert_eq!(calls.get(), 1);
    assert_eq!(running, factory_loop);
    assert_eq!(again, factory_loop);
    assert_eq!(runner.get_loop().unwrap(), factory_loop);
    assert_eq!(policy.new_calls(), 0, "the policy made a loop");
    assert!(policy.set_calls().is_empty(), "set_event_loop was called");
    runner.close();
    assert!(factory_loop.is_closed());
    assert!(
        policy.set_calls().is_empty(),
        "set_event_loop was called on close"
    );
}

fn runner_debug_sets_the_loop_debug_mode() {
    // test_runners.py: RunnerTests.test_debug, test_non_debug and
    // RunTests.test_asyncio_run_debug
    for enabled in [true, false] {
        let mut runner = aio::Runner::new().debug(enabled);
        assert_eq!(runner.get_loop().unwrap().get_debug(), enabled);
        let inside = runner
            .run(async { aio::get_running_loop().unwrap().get_debug() })
            .unwrap();
        assert_eq!(inside, enabled);
        runner.close();
    }
}

fn closed_runner_refuses_everything() {
    // test_runners.py: RunnerTests.test_run, test_explicit_close,
    // test_double_close and test_second_with_block_raises
    let mut runner = aio::Runner::default();
    let output = runner.run(async {
        aio::sleep(Duration::ZERO).await;
        "done"
    });
    assert_eq!(output.unwrap(), "done");
    let event_loop = runner.get_loop().unwrap();
    runner.close();
    assert!(event_loop.is_closed());
    assert_error(runner.get_loop(), ErrorKind::RunnerClosed, "Runner is closed");
    let polled = Rc::new(Cell::new(false));
    let flag = polled.clone();
    assert_error(
        runner.run(async move { flag.set(true) }),
        ErrorKind::RunnerClosed,
        "Runner is closed",
    );
    assert!(!polled.get(), "a closed runner ran main");
    runner.close();
    assert!(event_loop.is_closed());
    assert_error(runner.get_loop(), ErrorKind::RunnerClosed, "Runner is closed");
}

fn dropping_a_runner_closes_its_loop() {
    // test_runners.py: RunnerTests.test_run (leaving the `with` block closes
    // the runner; in Rust, dropping it does)
    let mut runner = aio::Runner::new();
    let event_loop = runner.get_loop().unwrap();
    drop(runner);
    assert!(event_loop.is_closed());
}

fn get_event_loop_after_run_gives_no_current_loop() {
    // asyncio.md §1.5: after asyncio.run, get_event_loop() in the main thread
    // raises "There is no current event loop in thread 'MainThread'."
    aio::run(async {}).unwrap();
    assert_error(
        aio::get_event_loop(),
        ErrorKind::NoCurrentLoop,
        "There is no current event loop in thread 'main'.",
    );
}

#[cfg(unix)]
fn ctrl_c_while_waiting_cancels_main() {
    // test_runners.py: RunnerTests.test_interrupt_wait
    run_child("sigint-while-waiting", |_| {}).assert_success("sigint-while-waiting");
}

#[cfg(unix)]
fn ctrl_c_while_busy_cancels_main() {
    // test_runners.py: RunnerTests.test_interrupt_call_soon
    run_child("sigint-while-busy", |_| {}).assert_success("sigint-while-busy");
}

#[cfg(unix)]
fn second_ctrl_c_interrupts_at_once() {
    // asyncio.md §1.2 (_on_sigint): a second Ctrl-C raises KeyboardInterrupt
    // at once, for a main task that never yields. The child blocks for 10 s;
    // it must end well before that, and not successfully.
    let run = run_child("sigint-twice-while-blocked", |_| {});
    assert!(
        !run.status.success() && run.elapsed < Duration::from_secs(8),
        "the child ended with {} after {:?}; its output:\n{}",
        run.status,
        run.elapsed,
        run.output
    );
}

#[cfg(unix)]
fn sigint_disposition_is_restored_after_run() {
    // test_runners.py: RunnerTests (Runner.run's finally: restore
    // default_int_handler if ours is still installed)
    let run = run_child("sigint-after-run", |_| {});
    assert_eq!(
        run.status.signal(),
        Some(sys::SIGINT),
        "a SIGINT after run() must kill the process; the child ended with {}; its output:\n{}",
        run.status,
        run.output
    );
}

#[cfg(unix)]
fn sigint_is_left_alone_when_the_user_ignores_it() {
    // asyncio.md §1.2 step 4: Runner.run installs its SIGINT handler only
    // while the default one is in place
    run_child("sigint-ignored-by-user", |_| {}).assert_success("sigint-ignored-by-user");
}

#[cfg(unix)]
fn child_sigint_while_waiting() {
    // Start from the default disposition, whatever the test's parent left.
    set_sigint_disposition(sys::SIG_DFL);
    let mut runner = aio::Runner::new();
    let event_loop = runner.get_loop().unwrap();
    event_loop
        .call_later(Duration::from_millis(100), send_sigint_to_self)
        .unwrap();
    let unwound = Rc::new(Cell::new(false));
    let guard = DropFlag(unwound.clone());
    let result = runner.run(async move {
        let _guard = guard;
        aio::sleep(Duration::from_secs(15)).await;
        "slept through Ctrl-C"
    });
    assert_kind(result, ErrorKind::Interrupted);
    assert!(unwound.get(), "the main task was not cancelled");
    runner.close();
}

#[cfg(unix)]
fn child_sigint_while_busy() {
    set_sigint_disposition(sys::SIG_DFL);
    let mut runner = aio::Runner::new();
    let event_loop = runner.get_loop().unwrap();
    event_loop
        .call_later(Duration::from_millis(100), send_sigint_to_self)
        .unwrap();
    let result = runner.run(async {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            aio::sleep(Duration::ZERO).await;
        }
        "spun through Ctrl-C"
    });
    assert_kind(result, ErrorKind::Interrupted);
    runner.close();
}

#[cfg(unix)]
fn child_sigint_twice_while_blocked() {
    set_sigint_disposition(sys::SIG_DFL);
    let sender = thread::spawn(|| {
        thread::sleep(Duration::from_millis(300));
        send_sigint_to_self();
        thread::sleep(Duration::from_millis(200));
        send_sigint_to_self();
    });
    let result = aio::run(async {
        // A main task that never yields: only the signal handler can end it.
        thread::sleep(Duration::from_secs(10));
    });
    sender.join().unwrap();
    println!("main finished after two SIGINTs: {result:?}");
}

#[cfg(unix)]
fn child_sigint_after_run() {
    set_sigint_disposition(sys::SIG_DFL);
    aio::run(async { aio::sleep(Duration::ZERO).await }).unwrap();
    send_sigint_to_self();
    thread::sleep(Duration::from_secs(5));
    println!("survived a SIGINT after run()");
}

#[cfg(unix)]
fn child_sigint_ignored_by_user() {
    set_sigint_disposition(sys::SIG_IGN);
    let output = aio::run(async {
        aio::get_running_loop()
            .unwrap()
            .call_later(Duration::from_millis(50), send_sigint_to_self)
            .unwrap();
        aio::sleep(Duration::from_millis(300)).await;
        7
    });
    assert_eq!(output.unwrap(), 7, "run() reacted to an ignored SIGINT");
    // Still ignored afterwards: this must not kill the process.
    send_sigint_to_self();
    thread::sleep(Duration::from_millis(100));
}

// ---------------------------------------------------------------------------
// test_events.py: PolicyTests
// ---------------------------------------------------------------------------

#[cfg(unix)]
fn policy_without_child_watcher_support() {
    // test_events.py: PolicyTests.test_event_loop_policy (the abstract
    // policy's get_child_watcher/set_child_watcher raise NotImplementedError)
    struct Minimal;
    impl EventLoopPolicy for Minimal {
        fn get_event_loop(&self) -> Result<EventLoop, Error> {
            Err(Error::new(ErrorKind::Unsupported, "minimal"))
        }
        fn set_event_loop(&self, _: Option<EventLoop>) -> Result<(), Error> {
            Err(Error::new(ErrorKind::Unsupported, "minimal"))
        }
        fn new_event_loop(&self) -> Result<EventLoop, Error> {
            Err(Error::new(ErrorKind::Unsupported, "minimal"))
        }
    }
    let policy = Minimal;
    let Err(err) = policy.get_child_watcher() else {
        panic!("a policy without watchers returned one");
    };
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    let err = policy.set_child_watcher(None).expect_err("set_child_watcher");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}

fn get_event_loop_policy_returns_the_same_policy() {
    // test_events.py: PolicyTests.test_get_event_loop_policy
    let first = aio::get_event_loop_policy();
    let second = aio::get_event_loop_policy();
    assert!(Arc::ptr_eq(&first, &second));
}

fn set_event_loop_policy_then_get() {
    // test_events.py: PolicyTests.test_set_event_loop_policy
    let old = aio::get_event_loop_policy();
    let custom: Arc<dyn EventLoopPolicy> = Arc::new(aio::DefaultEventLoopPolicy::new());
    aio::set_event_loop_policy(Some(custom.clone()));
    let current = aio::get_event_loop_policy();
    assert!(Arc::ptr_eq(&current, &custom));
    assert!(!Arc::ptr_eq(&current, &old));

    // None brings a fresh default, made on the next get.
    aio::set_event_loop_policy(None);
    let fresh = aio::get_event_loop_policy();
    assert!(!Arc::ptr_eq(&fresh, &custom));
    assert!(
        !Arc::ptr_eq(&fresh, &old),
        "the old default came back instead of a fresh one"
    );
    assert!(Arc::ptr_eq(&fresh, &aio::get_event_loop_policy()));
}

fn default_policy_creates_a_loop_on_demand_in_the_main_thread() {
    // test_events.py: PolicyTests.test_get_event_loop
    let event_loop = aio::get_event_loop().expect("a loop made on demand in the main thread");
    assert_eq!(
        aio::get_event_loop().unwrap(),
        event_loop,
        "a second call gives the same loop"
    );
    assert!(!event_loop.is_running() && !event_loop.is_closed());
    event_loop.close().unwrap();

    // The same, on a policy instance of our own.
    let policy = aio::DefaultEventLoopPolicy::new();
    let own = policy.get_event_loop().expect("a loop made on demand");
    assert_eq!(policy.get_event_loop().unwrap(), own);
    assert_ne!(own, event_loop);
    own.close().unwrap();
}

fn set_event_loop_none_disables_auto_creation() {
    // test_events.py: PolicyTests.test_get_event_loop_after_set_none
    aio::set_event_loop(None).unwrap();
    assert_error(
        aio::get_event_loop(),
        ErrorKind::NoCurrentLoop,
        "There is no current event loop in thread 'main'.",
    );
    let policy = aio::DefaultEventLoopPolicy::new();
    policy.set_event_loop(None).unwrap();
    assert_error(
        policy.get_event_loop(),
        ErrorKind::NoCurrentLoop,
        "There is no current event loop in thread 'main'.",
    );
}

fn other_threads_get_no_loop_on_demand() {
    // test_events.py: PolicyTests.test_get_event_loop_thread
    let (report, outcome) = mpsc::channel();
    let probe = thread::Builder::new()
        .name(String::from("policy-probe"))
        .spawn(move || {
            let describe = |result: Result<EventLoop, Error>| match result {
                Ok(event_loop) => {
                    let _ = event_loop.close();
                    Ok(())
                }
                Err(err) => Err((err.kind(), err.to_string())),
            };
            let global = describe(aio::get_event_loop());
            let own = describe(aio::DefaultEventLoopPolicy::new().get_event_loop());
            report.send((global, own)).unwrap();
        })
        .unwrap();
    let (global, own) = outcome
        .recv_timeout(THREAD_TIMEOUT)
        .expect("the probe thread reported");
    probe.join().unwrap();
    let expected = Err((
        ErrorKind::NoCurrentLoop,
        String::from("There is no current event loop in thread 'policy-probe'."),
    ));
    assert_eq!(global, expected, "aio::get_event_loop in another thread");
    assert_eq!(own, expected, "a policy instance in another thread");
}

fn new_event_loop_is_fresh_and_not_current() {
    // test_events.py: PolicyTests.test_new_event_loop
    let current = aio::get_event_loop().unwrap();
    let fresh = aio::new_event_loop().unwrap();
    assert_ne!(fresh, current);
    assert_eq!(
        aio::get_event_loop().unwrap(),
        current,
        "new_event_loop changed the current loop"
    );
    assert!(!fresh.is_closed());
    fresh.close().unwrap();
    current.close().unwrap();
}

fn set_event_loop_replaces_the_current_loop() {
    // test_events.py: PolicyTests.test_set_event_loop
    let policy = aio::DefaultEventLoopPolicy::new();
    let old = policy.new_event_loop().unwrap();
    policy.set_event_loop(Some(old.clone())).unwrap();
    assert_eq!(policy.get_event_loop().unwrap(), old);
    let new = policy.new_event_loop().unwrap();
    policy.set_event_loop(Some(new.clone())).unwrap();
    assert_eq!(policy.get_event_loop().unwrap(), new);
    assert_ne!(policy.get_event_loop().unwrap(), old);
    new.close().unwrap();
    old.close().unwrap();
}

fn policy_instances_keep_separate_loops() {
    // API.md: BaseDefaultEventLoopPolicy keeps one current loop per thread,
    // separately for each policy instance (asyncio's per-instance _Local)
    let first = BaseDefaultEventLoopPolicy::new(aio::SelectorEventLoop::new);
    let second = BaseDefaultEventLoopPolicy::new(aio::SelectorEventLoop::new);
    let one = first.new_event_loop().unwrap();
    let two = second.new_event_loop().unwrap();
    first.set_event_loop(Some(one.clone())).unwrap();
    second.set_event_loop(Some(two.clone())).unwrap();
    assert_eq!(first.get_event_loop().unwrap(), one);
    assert_eq!(second.get_event_loop().unwrap(), two);

    // set_event_loop on one instance does not disable creation on another.
    first.set_event_loop(None).unwrap();
    assert_error(
        first.get_event_loop(),
        ErrorKind::NoCurrentLoop,
        "There is no current event loop in thread 'main'.",
    );
    let third = BaseDefaultEventLoopPolicy::new(aio::SelectorEventLoop::new);
    let made = third
        .get_event_loop()
        .expect("a fresh instance makes a loop in main");
    assert_ne!(made, one);
    assert_ne!(made, two);
    for event_loop in [one, two, made] {
        event_loop.close().unwrap();
    }
}

// ---------------------------------------------------------------------------
// test_events.py: GetEventLoopTestsMixin
// ---------------------------------------------------------------------------

fn get_event_loop_returns_the_running_loop_without_the_policy() {
    // test_events.py: GetEventLoopTestsMixin.test_get_event_loop_returns_running_loop
    aio::set_event_loop_policy(Some(Arc::new(RefusingPolicy {
        inner: BaseDefaultEventLoopPolicy::new(aio::SelectorEventLoop::new),
    })));
    let event_loop = aio::new_event_loop().unwrap();
    assert_error(aio::get_event_loop(), ErrorKind::Unsupported, POLICY_REFUSES);
    aio::set_event_loop(None).unwrap();
    assert_error(aio::get_event_loop(), ErrorKind::Unsupported, POLICY_REFUSES);
    assert_error(
        aio::get_running_loop(),
        ErrorKind::NoRunningLoop,
        "no running event loop",
    );

    let expected = event_loop.clone();
    event_loop
        .run_until_complete(async move {
            assert_eq!(aio::get_event_loop().unwrap(), expected);
            assert_eq!(aio::get_running_loop().unwrap(), expected);
        })
        .unwrap();

    aio::set_event_loop(Some(event_loop.clone())).unwrap();
    assert_error(aio::get_event_loop(), ErrorKind::Unsupported, POLICY_REFUSES);
    aio::set_event_loop(None).unwrap();
    event_loop.close().unwrap();
    assert_error(
        aio::get_running_loop(),
        ErrorKind::NoRunningLoop,
        "no running event loop",
    );
}

fn get_event_loop_with_the_default_policy() {
    // test_events.py: GetEventLoopTestsMixin.test_get_event_loop_returns_running_loop2
    let event_loop = aio::new_event_loop().unwrap();
    let made = aio::get_event_loop().expect("made on demand");
    assert_ne!(made, event_loop);
    aio::set_event_loop(None).unwrap();
    assert_error(
        aio::get_event_loop(),
        ErrorKind::NoCurrentLoop,
        "There is no current event loop in thread 'main'.",
    );
    assert_error(
        aio::get_running_loop(),
        ErrorKind::NoRunningLoop,
        "no running event loop",
    );

    let expected = event_loop.clone();
    event_loop
        .run_until_complete(async move {
            assert_eq!(aio::get_event_loop().unwrap(), expected);
            assert_eq!(aio::get_running_loop().unwrap(), expected);
        })
        .unwrap();

    aio::set_event_loop(Some(event_loop.clone())).unwrap();
    assert_eq!(aio::get_event_loop().unwrap(), event_loop);
    aio::set_event_loop(None).unwrap();
    assert_error(
        aio::get_event_loop(),
        ErrorKind::NoCurrentLoop,
        "There is no current event loop in thread 'main'.",
    );
    made.close().unwrap();
    event_loop.close().unwrap();
    assert_error(
        aio::get_running_loop(),
        ErrorKind::NoRunningLoop,
        "no running event loop",
    );
}

#[cfg(unix)]
fn forked_child_sees_no_running_loop() {
    // asyncio.md §2.4 (bpo-29703; test_events.py:
    // GetEventLoopTestsMixin.test_get_event_loop_new_process): a child forked
    // inside a running loop does not see its parent's running loop.
    run_child("fork-in-running-loop", |_| {}).assert_success("fork-in-running-loop");
}

#[cfg(unix)]
fn child_fork_in_running_loop() {
    let event_loop = aio::SelectorEventLoop::new().unwrap();
    let (before, status, after) = event_loop
        .run_until_complete(async {
            let before = aio::get_running_loop().is_ok();
            // SAFETY: this process has one thread (a fresh child of the test
            // binary running one case), so fork has no other thread's locks
            // to copy; the forked child only reads the registry and _exits.
            let pid = unsafe { sys::fork() };
            if pid == 0 {
                let code = match aio::get_running_loop() {
                    Err(err) if err.kind() == ErrorKind::NoRunningLoop => 0,
                    Err(_) => 2,
                    Ok(_) => 1,
                };
                // SAFETY: _exit ends the forked child at once, without
                // unwinding into or running the destructors of the parent's
                // state it copied.
                unsafe { sys::_exit(code) };
            }
            assert!(pid > 0, "fork failed");
            let mut status = 0;
            // SAFETY: waits for our own child; `status` is a valid out-pointer.
            let reaped = unsafe { sys::waitpid(pid, &mut status, 0) };
            assert_eq!(reaped, pid, "waitpid failed");
            (
                before,
                ExitStatus::from_raw(status),
                aio::get_running_loop().is_ok(),
            )
        })
        .unwrap();
    assert!(before && after, "the parent must see its running loop");
    assert_eq!(
        status.code(),
        Some(0),
        "the forked child ({status}): 1 = it saw the parent's running loop, 2 = a wrong error kind"
    );
    event_loop.close().unwrap();
}

// ---------------------------------------------------------------------------
// test_base_events.py
// ---------------------------------------------------------------------------

fn aio_debug_env_makes_new_loops_debug() {
    // test_base_events.py: BaseEventLoopTests.test_env_var_debug
    // (PYTHONASYNCIODEBUG is AIO_DEBUG here) and test_runners.py:
    // RunTests.test_asyncio_run_debug (debug=None follows the global mode)
    run_child("debug-env-on", |c| {
        c.env("AIO_DEBUG", "1");
    })
    .assert_success("debug-env-on with AIO_DEBUG=1");
    run_child("debug-env-off", |c| {
        c.env("AIO_DEBUG", "");
    })
    .assert_success("debug-env-off with AIO_DEBUG empty");
    run_child("debug-env-off", |_| {}).assert_success("debug-env-off without AIO_DEBUG");
}

fn check_debug_defaults(expected: bool) {
    let event_loop = aio::SelectorEventLoop::new().unwrap();
    assert_eq!(event_loop.get_debug(), expected, "SelectorEventLoop::new");
    event_loop.close().unwrap();
    let event_loop = aio::new_event_loop().unwrap();
    assert_eq!(event_loop.get_debug(), expected, "aio::new_event_loop");
    event_loop.close().unwrap();
    let inside = aio::run(async { aio::get_running_loop().unwrap().get_debug() }).unwrap();
    assert_eq!(inside, expected, "aio::run");
    let mut runner = aio::Runner::new();
    assert_eq!(
        runner.get_loop().unwrap().get_debug(),
        expected,
        "Runner without debug()"
    );
    runner.close();
    let mut runner = aio::Runner::new().debug(!expected);
    assert_eq!(
        runner.get_loop().unwrap().get_debug(),
        !expected,
        "Runner::debug overrides"
    );
    runner.close();
}

fn child_debug_env_on() {
    check_debug_defaults(true);
}

fn child_debug_env_off() {
    check_debug_defaults(false);
}
