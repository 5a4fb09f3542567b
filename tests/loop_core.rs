//! The event loop on its own: scheduling, iterations, run/stop/close, tasks,
//! sleeping, threads, fd watching, debug mode and the exception handler.
//!
//! These are asyncio's `test_events.py` (`EventLoopTestsMixin`, `HandleTests`,
//! `TimerTests`) and `test_base_events.py` (`BaseEventLoopTests`) cases that
//! apply without sockets, subprocesses or signals, re-expressed for aio. Each
//! test makes its own loop with `aio::SelectorEventLoop::new()` and never
//! touches the global policy, so libtest may run them in parallel; whatever
//! needs process-global state lives in `main_thread.rs`.
//!
//! Every wait is bounded: loops run under a [`Watchdog`] timer that stops them
//! and fails the test, and waits on other threads use `recv_timeout`.

use std::cell::{Cell, RefCell};
use std::future::Future;
#[cfg(unix)]
use std::io::{Read, Write};
#[cfg(unix)]
use std::os::fd::AsRawFd;
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use aio::{ErrorKind, EventLoop};

/// How long any one wait may last before the test fails.
const WATCHDOG: Duration = Duration::from_secs(10);

/// Upper bound for "promptly": well below [`WATCHDOG`], far above any real latency.
const PROMPTLY: Duration = Duration::from_secs(5);

/// asyncio runs every timer due before `now + clock resolution`, so a timer may
/// fire up to one resolution early; lower bounds on elapsed time allow that.
const CLOCK_SLACK: Duration = Duration::from_millis(1);

fn new_loop() -> EventLoop {
    aio::SelectorEventLoop::new().expect("a new selector loop")
}

/// Stops the running loop; for callbacks, which must not capture the loop
/// they are queued on (that would be a reference cycle).
fn stop_running_loop() {
    aio::get_running_loop()
        .expect("a callback runs inside its loop")
        .stop();
}

/// A timer that stops the loop and remembers it did, should a test wait longer
/// than `limit`.
struct Watchdog {
    fired: Rc<Cell<bool>>,
    timer: aio::TimerHandle,
}

impl Watchdog {
    fn arm(event_loop: &EventLoop, limit: Duration) -> Watchdog {
        let fired = Rc::new(Cell::new(false));
        let flag = fired.clone();
        let timer = event_loop
            .call_later(limit, move || {
                flag.set(true);
                stop_running_loop();
            })
            .expect("arm the watchdog");
        Watchdog { fired, timer }
    }

    /// Cancels the timer; fails the test if it fired.
    fn disarm(self) {
        self.timer.cancel();
        assert!(!self.fired.get(), "the watchdog fired: the loop waited too long");
    }
}

/// `run_forever` under a watchdog.
fn run_forever_within(event_loop: &EventLoop, limit: Duration) {
    let watchdog = Watchdog::arm(event_loop, limit);
    event_loop.run_forever().expect("run_forever");
    watchdog.disarm();
}

/// `run_until_complete` under a watchdog.
fn run_until_complete_within<F>(event_loop: &EventLoop, limit: Duration, future: F) -> F::Output
where
    F: Future + 'static,
    F::Output: 'static,
{
    let watchdog = Watchdog::arm(event_loop, limit);
    let output = event_loop.run_until_complete(future);
    watchdog.disarm();
    output.expect("run_until_complete")
}

/// Runs exactly one iteration: asyncio's `test_utils.run_once`
/// (`call_soon(stop)` then `run_forever`).
fn run_once(event_loop: &EventLoop) {
    event_loop.call_soon(stop_running_loop).expect("call_soon(stop)");
    run_forever_within(event_loop, WATCHDOG);
}

/// Runs the loop until `done()` holds (asyncio's `test_utils.run_until`),
/// checking every millisecond, for at most [`WATCHDOG`].
fn run_until(event_loop: &EventLoop, done: impl Fn() -> bool + 'static) {
    run_until_complete_within(event_loop, WATCHDOG, async move {
        while !done() {
            aio::sleep(Duration::from_millis(1)).await;
        }
    });
}

/// Installs an exception handler that records each context's message.
fn record_exceptions(event_loop: &EventLoop) -> Rc<RefCell<Vec<String>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    event_loop.set_exception_handler(move |_, context| sink.borrow_mut().push(context.message().to_owned()));
    seen
}

/// Asserts that exactly one report was recorded and that it starts with
/// `prefix`; `case` names the case in the failure message.
fn assert_one_report(reports: &Rc<RefCell<Vec<String>>>, prefix: &str, case: &str) {
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{case}: {reports:?}");
    assert!(reports[0].starts_with(prefix), "{case}: {:?}", reports[0]);
}

/// A shared log of what callbacks did, in order.
fn journal() -> Rc<RefCell<Vec<&'static str>>> {
    Rc::new(RefCell::new(Vec::new()))
}

fn note(journal: &Rc<RefCell<Vec<&'static str>>>, entry: &'static str) -> impl FnOnce() + 'static {
    let journal = journal.clone();
    move || journal.borrow_mut().push(entry)
}

/// Sets a flag when dropped: tells whether a future was dropped.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// Counts how often the wrapped future is polled.
struct CountPolls<F> {
    inner: Pin<Box<F>>,
    polls: Rc<Cell<usize>>,
}

impl<F: Future> Future for CountPolls<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.set(self.polls.get() + 1);
        self.inner.as_mut().poll(cx)
    }
}

fn count_polls<F: Future>(future: F) -> (CountPolls<F>, Rc<Cell<usize>>) {
    let polls = Rc::new(Cell::new(0));
    let counted = CountPolls {
        inner: Box::pin(future),
        polls: polls.clone(),
    };
    (counted, polls)
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        String::from("<non-string panic>")
    }
}

/// Records log lines per thread, so parallel tests each see their own.
struct CapturingLogger {
    records: Mutex<Vec<(ThreadId, log::Level, String)>>,
}

static LOGGER: CapturingLogger = CapturingLogger {
    records: Mutex::new(Vec::new()),
};

impl log::Log for CapturingLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = (thread::current().id(), record.level(), record.args().to_string());
        self.records.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    fn flush(&self) {}
}

/// Routes `log` records to [`LOGGER`]; harmless to call more than once.
fn capture_logs() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

/// The records logged on the calling thread so far.
fn logged_here() -> Vec<(log::Level, String)> {
    let me = thread::current().id();
    LOGGER
        .records
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(thread, _, _)| *thread == me)
        .map(|(_, level, line)| (*level, line.clone()))
        .collect()
}

// ---------------------------------------------------------------------------
// Scheduling and iterations
// ---------------------------------------------------------------------------

#[test]
fn call_soon_runs_callbacks_in_fifo_order() {
    // test_events.py: EventLoopTestsMixin.test_call_soon
    // test_base_events.py: BaseEventLoopTests.test_call_soon
    let event_loop = new_loop();
    let log = journal();
    for entry in ["first", "second", "third"] {
        let handle = event_loop.call_soon(note(&log, entry)).unwrap();
        assert!(!handle.cancelled());
    }
    event_loop.call_soon(stop_running_loop).unwrap();
    run_forever_within(&event_loop, WATCHDOG);
    assert_eq!(*log.borrow(), ["first", "second", "third"]);
    event_loop.close().unwrap();
}

#[test]
fn call_later_runs_timers_in_deadline_order() {
    // test_events.py: EventLoopTestsMixin.test_call_later
    let event_loop = new_loop();
    let log = journal();
    let start = Instant::now();
    event_loop
        .call_later(Duration::from_millis(30), note(&log, "c"))
        .unwrap();
    event_loop
        .call_later(Duration::from_millis(10), note(&log, "a"))
        .unwrap();
    event_loop
        .call_later(Duration::from_millis(20), note(&log, "b"))
        .unwrap();
    let seen = log.clone();
    run_until(&event_loop, move || seen.borrow().len() == 3);
    assert_eq!(*log.borrow(), ["a", "b", "c"]);
    assert!(start.elapsed() + CLOCK_SLACK >= Duration::from_millis(30));
    event_loop.close().unwrap();
}

#[test]
fn call_at_fires_no_earlier_than_its_deadline() {
    // test_base_events.py: BaseEventLoopTests.test_time_and_call_at
    let event_loop = new_loop();
    let delay = Duration::from_millis(100);
    let when = event_loop.time() + delay;
    let timer = event_loop.call_at(when, stop_running_loop).unwrap();
    assert_eq!(timer.when(), when);
    let start = event_loop.time();
    run_forever_within(&event_loop, WATCHDOG);
    let elapsed = event_loop.time() - start;
    assert!(
        elapsed + CLOCK_SLACK >= delay,
        "fired after {elapsed:?}, expected {delay:?}"
    );
    event_loop.close().unwrap();
}

#[test]
fn timers_in_the_past_run_next_iteration_in_deadline_order() {
    // test_base_events.py: BaseEventLoopTests.test_call_later_negative_delays
    let event_loop = new_loop();
    let log = journal();
    let now = event_loop.time();
    let ago = |secs| {
        now.checked_sub(Duration::from_secs(secs))
            .expect("the monotonic clock is more than 2 s past its origin")
    };
    event_loop.call_at(ago(1), note(&log, "one second ago")).unwrap();
    event_loop.call_at(ago(2), note(&log, "two seconds ago")).unwrap();
    run_once(&event_loop);
    assert_eq!(*log.borrow(), ["two seconds ago", "one second ago"]);
    event_loop.close().unwrap();
}

#[test]
fn each_iteration_runs_only_the_callbacks_ready_when_it_began() {
    // test_base_events.py: BaseEventLoopTests.test_run_once, and the ntodo rule
    // of BaseEventLoop._run_once
    let event_loop = new_loop();
    let log = journal();
    let inner = log.clone();
    event_loop
        .call_soon(move || {
            inner.borrow_mut().push("outer");
            let event_loop = aio::get_running_loop().unwrap();
            event_loop.call_soon(note(&inner, "scheduled by outer")).unwrap();
        })
        .unwrap();
    run_once(&event_loop);
    assert_eq!(*log.borrow(), ["outer"]);
    run_once(&event_loop);
    assert_eq!(*log.borrow(), ["outer", "scheduled by outer"]);
    event_loop.close().unwrap();
}

#[test]
fn callbacks_scheduled_by_a_due_timer_wait_for_the_next_iteration() {
    // test_base_events.py: BaseEventLoopTests.test__run_once_schedule_handle
    let event_loop = new_loop();
    let log = journal();
    let inner = log.clone();
    let past = event_loop
        .time()
        .checked_sub(Duration::from_secs(1))
        .expect("the monotonic clock is more than 1 s past its origin");
    event_loop
        .call_at(past, move || {
            inner.borrow_mut().push("timer");
            let event_loop = aio::get_running_loop().unwrap();
            event_loop.call_soon(note(&inner, "scheduled by timer")).unwrap();
        })
        .unwrap();
    run_once(&event_loop);
    assert_eq!(*log.borrow(), ["timer"]);
    run_once(&event_loop);
    assert_eq!(*log.borrow(), ["timer", "scheduled by timer"]);
    event_loop.close().unwrap();
}

#[test]
fn stop_lets_the_rest_of_the_iteration_run() {
    // test_base_events.py: BaseEventLoopTests.test_run_once ("every callback
    // already scheduled will still run", BaseEventLoop.stop)
    let event_loop = new_loop();
    let log = journal();
    event_loop.call_soon(stop_running_loop).unwrap();
    event_loop.call_soon(note(&log, "queued after stop")).unwrap();
    run_forever_within(&event_loop, WATCHDOG);
    assert_eq!(*log.borrow(), ["queued after stop"]);
    assert!(!event_loop.is_running());
    event_loop.close().unwrap();
}

#[test]
fn stop_before_run_forever_runs_exactly_one_iteration() {
    // test_base_events.py: BaseEventLoopTests.test_run_forever_pre_stopped
    let event_loop = new_loop();
    let log = journal();
    let inner = log.clone();
    event_loop
        .call_soon(move || {
            inner.borrow_mut().push("ready");
            let event_loop = aio::get_running_loop().unwrap();
            event_loop.call_soon(note(&inner, "next iteration")).unwrap();
        })
        .unwrap();
    // A far timer: a pre-stopped loop must poll without blocking for it.
    let far = event_loop.call_later(Duration::from_secs(3600), || {}).unwrap();
    event_loop.stop();
    let start = Instant::now();
    run_forever_within(&event_loop, WATCHDOG);
    assert!(
        start.elapsed() < PROMPTLY,
        "a pre-stopped loop blocked in its poll"
    );
    assert_eq!(*log.borrow(), ["ready"]);
    run_once(&event_loop);
    assert_eq!(*log.borrow(), ["ready", "next iteration"]);
    far.cancel();
    event_loop.close().unwrap();
}

#[test]
fn cancelled_handle_does_not_run() {
    // test_base_events.py: BaseEventLoopTests.test__add_callback_cancelled_handle
    let event_loop = new_loop();
    let log = journal();
    let handle = event_loop.call_soon(note(&log, "cancelled")).unwrap();
    event_loop.call_soon(note(&log, "kept")).unwrap();
    handle.cancel();
    assert!(handle.cancelled());
    run_once(&event_loop);
    assert_eq!(*log.borrow(), ["kept"]);
    event_loop.close().unwrap();
}

#[test]
fn cancelled_timer_does_not_run_and_drops_its_callback() {
    // test_events.py: TimerTests.test_timer
    let event_loop = new_loop();
    let captured = Rc::new(());
    let held = captured.clone();
    let ran = Rc::new(Cell::new(false));
    let flag = ran.clone();
    let timer = event_loop
        .call_later(Duration::from_millis(10), move || {
            let _keep = &held;
            flag.set(true);
        })
        .unwrap();
    assert_eq!(Rc::strong_count(&captured), 2);
    timer.cancel();
    assert!(timer.cancelled());
    assert_eq!(
        Rc::strong_count(&captured),
        1,
        "cancel drops the callback and what it holds"
    );
    run_until_complete_within(&event_loop, WATCHDOG, aio::sleep(Duration::from_millis(50)));
    assert!(!ran.get());
    event_loop.close().unwrap();
}

#[test]
fn timer_handle_reports_its_deadline() {
    // test_events.py: TimerTests.test_when
    let event_loop = new_loop();
    let when = event_loop.time() + Duration::from_secs(60);
    let at = event_loop.call_at(when, || {}).unwrap();
    assert_eq!(at.when(), when);
    let delay = Duration::from_secs(30);
    let before = event_loop.time();
    let later = event_loop.call_later(delay, || {}).unwrap();
    let after = event_loop.time();
    assert!(before + delay <= later.when() && later.when() <= after + delay);
    event_loop.close().unwrap();
}

#[test]
fn tiny_sleeps_finish_without_spurious_wakeups() {
    // test_events.py: EventLoopTestsMixin.test_timeout_rounding (loosely: aio
    // has no iteration counter, so the task's polls are counted instead; the
    // ideal is one poll to start plus one per sleep)
    let event_loop = new_loop();
    let (waits, polls) = count_polls(async {
        for secs in [1e-2, 1e-4, 1e-6, 1e-8] {
            aio::sleep(Duration::from_secs_f64(secs)).await;
        }
        aio::sleep(Duration::from_nanos(1)).await;
    });
    let start = Instant::now();
    run_until_complete_within(&event_loop, WATCHDOG, waits);
    assert!(start.elapsed() < PROMPTLY);
    assert!(polls.get() <= 20, "{} polls for 5 sleeps", polls.get());
    event_loop.close().unwrap();
}

// ---------------------------------------------------------------------------
// run_until_complete, stop, close
// ---------------------------------------------------------------------------

#[test]
fn run_until_complete_returns_the_output() {
    // test_runners.py: RunTests.test_asyncio_run_return, at the loop level
    let event_loop = new_loop();
    let answer = run_until_complete_within(&event_loop, WATCHDOG, async {
        aio::sleep(Duration::ZERO).await;
        42
    });
    assert_eq!(answer, 42);
    event_loop.close().unwrap();
}

#[test]
fn run_until_complete_waits_for_the_sleep() {
    // test_events.py: EventLoopTestsMixin.test_run_until_complete
    let event_loop = new_loop();
    let delay = Duration::from_millis(100);
    let start = event_loop.time();
    run_until_complete_within(&event_loop, WATCHDOG, aio::sleep(delay));
    let elapsed = event_loop.time() - start;
    assert!(
        elapsed + CLOCK_SLACK >= delay,
        "slept {elapsed:?}, expected {delay:?}"
    );
    event_loop.close().unwrap();
}

#[test]
fn run_until_complete_inside_the_running_loop_is_refused() {
    // test_events.py: EventLoopTestsMixin.test_run_until_complete_nesting
    let event_loop = new_loop();
    let polled = Rc::new(Cell::new(false));
    let flag = polled.clone();
    let err = run_until_complete_within(&event_loop, WATCHDOG, async move {
        let event_loop = aio::get_running_loop().unwrap();
        assert!(event_loop.is_running());
        event_loop
            .run_until_complete(async move { flag.set(true) })
            .expect_err("a nested run_until_complete")
    });
    assert_eq!(err.kind(), ErrorKind::AlreadyRunning);
    assert_eq!(err.to_string(), "This event loop is already running");
    assert!(!polled.get(), "the refused future was polled");
    event_loop.close().unwrap();
}

#[test]
fn running_a_loop_while_another_runs_is_refused() {
    // test_base_events.py: RunningLoopTests.test_running_loop_within_a_loop
    let outer = new_loop();
    let inner = new_loop();
    let inner_in_task = inner.clone();
    let (forever, until) = run_until_complete_within(&outer, WATCHDOG, async move {
        let forever = inner_in_task
            .run_forever()
            .expect_err("run_forever inside another loop");
        let until = inner_in_task
            .run_until_complete(async {})
            .expect_err("run_until_complete inside another loop");
        (forever, until)
    });
    for err in [forever, until] {
        assert_eq!(err.kind(), ErrorKind::AlreadyRunning);
        assert_eq!(
            err.to_string(),
            "Cannot run the event loop while another loop is running"
        );
    }
    assert!(!inner.is_running());
    inner.close().unwrap();
    outer.close().unwrap();
}

#[test]
fn task_created_in_the_last_step_starts_before_run_until_complete_returns() {
    // base_events.py: run_until_complete stops the loop from a done callback,
    // which futures queue with call_soon, so a task the future created in its
    // last step runs its first step first. test_runners.py:
    // RunTests.test_asyncio_run_reports_hanging_tasks_errors depends on it.
    let event_loop = new_loop();
    let started = Rc::new(Cell::new(false));
    let flag = started.clone();
    let leftover = Rc::new(RefCell::new(None));
    let slot = leftover.clone();
    run_until_complete_within(&event_loop, WATCHDOG, async move {
        let task = aio::create_task(async move {
            flag.set(true);
            aio::sleep(Duration::from_secs(3600)).await;
        });
        *slot.borrow_mut() = Some(task);
    });
    assert!(
        started.get(),
        "the task had not started when run_until_complete returned"
    );
    leftover.borrow().as_ref().expect("the future ran").cancel();
    event_loop.close().unwrap();
}

#[test]
fn stop_before_the_future_completes_gives_stopped() {
    // test_events.py: EventLoopTestsMixin.test_run_until_complete_stopped
    let event_loop = new_loop();
    let watchdog = Watchdog::arm(&event_loop, WATCHDOG);
    let err = event_loop
        .run_until_complete(async {
            stop_running_loop();
            aio::sleep(Duration::from_millis(100)).await;
        })
        .expect_err("stop() before the future completed");
    watchdog.disarm();
    assert_eq!(err.kind(), ErrorKind::Stopped);
    assert_eq!(err.to_string(), "Event loop stopped before Future completed.");
    event_loop.close().unwrap();
}

#[test]
fn panic_out_of_run_until_complete_leaves_no_stale_stop() {
    // test_base_events.py: BaseEventLoopTests.test_run_forever_keyboard_interrupt
    // and test_run_until_complete_baseexception (a panic is Rust's unwinding
    // BaseException)
    let event_loop = new_loop();
    let reports = record_exceptions(&event_loop);
    let watchdog = Watchdog::arm(&event_loop, WATCHDOG);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        event_loop.run_until_complete(async {
            aio::sleep(Duration::ZERO).await;
            panic!("spam");
        })
    }));
    watchdog.disarm();
    let payload = outcome.expect_err("the panic propagates out of run_until_complete");
    assert_eq!(panic_text(&*payload), "spam");
    assert!(!event_loop.is_running());

    // A nested call_soon needs two iterations: a stale stop would end the
    // loop after the first.
    let called = Rc::new(Cell::new(false));
    let flag = called.clone();
    event_loop
        .call_soon(move || {
            let event_loop = aio::get_running_loop().unwrap();
            event_loop
                .call_soon(move || {
                    flag.set(true);
                    stop_running_loop();
                })
                .unwrap();
        })
        .unwrap();
    run_forever_within(&event_loop, WATCHDOG);
    assert!(called.get());
    event_loop.close().unwrap();
    assert!(reports.borrow().is_empty(), "reported: {:?}", reports.borrow());
}

#[test]
fn close_is_idempotent() {
    // test_base_events.py: BaseEventLoopTests.test_close
    let event_loop = new_loop();
    assert!(!event_loop.is_closed());
    event_loop.close().unwrap();
    assert!(event_loop.is_closed());
    event_loop.close().unwrap();
    assert!(event_loop.is_closed());
}

#[test]
fn close_while_running_is_refused() {
    // test_events.py: EventLoopTestsMixin.test_close_running_event_loop
    let event_loop = new_loop();
    let err = run_until_complete_within(&event_loop, WATCHDOG, async {
        aio::get_running_loop()
            .unwrap()
            .close()
            .expect_err("close inside the loop")
    });
    assert_eq!(err.kind(), ErrorKind::AlreadyRunning);
    assert_eq!(err.to_string(), "Cannot close a running event loop");
    assert!(!event_loop.is_closed());
    event_loop.close().unwrap();
}

fn assert_closed<T>(what: &str, result: Result<T, aio::Error>) {
    let Err(err) = result else {
        panic!("{what} succeeded on a closed loop");
    };
    assert_eq!(err.kind(), ErrorKind::Closed, "{what}: {err}");
    assert_eq!(err.to_string(), "Event loop is closed", "{what}");
}

#[test]
fn scheduling_on_a_closed_loop_gives_closed() {
    // test_events.py: EventLoopTestsMixin.test_close and test_add_fds_after_closing
    // test_base_events.py: BaseEventLoopTests.test_close and test_create_task_error_closes_coro
    let event_loop = new_loop();
    let threadsafe = event_loop.threadsafe();
    #[cfg(unix)]
    let (r, w) = UnixStream::pair().unwrap();
    event_loop.close().unwrap();

    assert_closed("run_forever", event_loop.run_forever());
    assert_closed("run_until_complete", event_loop.run_until_complete(async {}));
    assert_closed("call_soon", event_loop.call_soon(|| {}));
    assert_closed("call_later", event_loop.call_later(Duration::from_secs(1), || {}));
    assert_closed("call_at", event_loop.call_at(event_loop.time(), || {}));
    assert_closed(
        "call_soon_threadsafe (handle taken before close)",
        threadsafe.call_soon_threadsafe(|| {}),
    );
    assert_closed(
        "call_soon_threadsafe (handle taken after close)",
        event_loop.threadsafe().call_soon_threadsafe(|| {}),
    );
    // The contract's Unix-only methods.
    #[cfg(unix)]
    {
        assert_closed("add_reader", event_loop.add_reader(r.as_raw_fd(), || {}));
        assert_closed("add_writer", event_loop.add_writer(w.as_raw_fd(), || {}));
        assert_closed("add_signal_handler", event_loop.add_signal_handler(15, || {}));
    }

    // The refused future is dropped at once, never polled.
    let dropped = Rc::new(Cell::new(false));
    let polled = Rc::new(Cell::new(false));
    let guard = DropFlag(dropped.clone());
    let flag = polled.clone();
    let refused = event_loop.create_task(async move {
        let _guard = guard;
        flag.set(true);
    });
    assert!(dropped.get(), "create_task on a closed loop kept the future");
    assert_closed("create_task", refused);
    assert!(!polled.get());
}

#[test]
#[cfg(unix)]
fn removing_fd_watchers_after_close_returns_false() {
    // test_events.py: EventLoopTestsMixin.test_remove_fds_after_closing
    let event_loop = new_loop();
    let (r, w) = UnixStream::pair().unwrap();
    event_loop.add_reader(r.as_raw_fd(), || {}).unwrap();
    event_loop.add_writer(w.as_raw_fd(), || {}).unwrap();
    event_loop.close().unwrap();
    assert!(!event_loop.remove_reader(r.as_raw_fd()));
    assert!(!event_loop.remove_writer(w.as_raw_fd()));
}

// ---------------------------------------------------------------------------
// The exception handler
// ---------------------------------------------------------------------------

#[test]
fn panicking_callback_goes_to_the_exception_handler_and_the_loop_goes_on() {
    // test_events.py: HandleTests.test_callback_with_exception
    // test_base_events.py: BaseEventLoopTests.test_set_exc_handler_custom
    let event_loop = new_loop();
    let reports = record_exceptions(&event_loop);
    let log = journal();
    event_loop.call_soon(|| panic!("callback failure")).unwrap();
    event_loop.call_soon(note(&log, "after the panic")).unwrap();
    run_once(&event_loop);
    assert_eq!(*log.borrow(), ["after the panic"]);
    assert_one_report(&reports, "Exception in callback", "");
    assert_eq!(run_until_complete_within(&event_loop, WATCHDOG, async { 7 }), 7);
    event_loop.close().unwrap();
}

#[test]
fn panicking_threadsafe_callback_is_reported_and_the_rest_of_its_batch_runs() {
    // The callbacks another thread posts run as one batch; a panic in the
    // middle of it is reported under the callback's name and the ones after
    // it still run, in order, in normal and in debug mode.
    for debug in [false, true] {
        let event_loop = new_loop();
        event_loop.set_debug(debug);
        let reports = record_exceptions(&event_loop);
        let results = Arc::new(Mutex::new(Vec::new()));
        let threadsafe = event_loop.threadsafe();
        let posted = results.clone();
        thread::spawn(move || {
            let push = |word: &'static str| {
                let results = posted.clone();
                move || results.lock().unwrap().push(word)
            };
            threadsafe.call_soon_threadsafe(push("first")).unwrap();
            threadsafe
                .call_soon_threadsafe(|| panic!("threadsafe failure"))
                .unwrap();
            threadsafe.call_soon_threadsafe(push("after the panic")).unwrap();
            threadsafe.call_soon_threadsafe(stop_running_loop).unwrap();
        })
        .join()
        .unwrap();
        run_forever_within(&event_loop, WATCHDOG);
        assert_eq!(
            *results.lock().unwrap(),
            ["first", "after the panic"],
            "debug {debug}"
        );
        assert_one_report(
            &reports,
            "Exception in callback a call_soon_threadsafe callback",
            &format!("debug {debug}"),
        );
        event_loop.close().unwrap();
    }
}

#[test]
fn sleeps_and_callbacks_due_together_keep_their_deadline_order() {
    // Two sleeping tasks and a `call_later` callback between their
    // deadlines, all due in the same iteration (the loop is held up past
    // the last): as in asyncio (checked against CPython 3.13), the callback
    // runs in that iteration, and in the next the first sleeper resumes,
    // then the callback's `call_soon`, then the second sleeper.
    let event_loop = new_loop();
    let log = journal();
    let main_log = log.clone();
    run_until_complete_within(&event_loop, WATCHDOG, async move {
        let log = main_log;
        let sleeper = |name: &'static str, delay: u64| {
            let log = log.clone();
            aio::create_task(async move {
                aio::sleep(Duration::from_millis(delay)).await;
                log.borrow_mut().push(name);
            })
        };
        let first = sleeper("first sleeper", 10);
        let event_loop = aio::get_running_loop().unwrap();
        let callback_log = log.clone();
        let inner = event_loop.clone();
        event_loop
            .call_later(Duration::from_millis(20), move || {
                callback_log.borrow_mut().push("callback");
                inner.call_soon(note(&callback_log, "its call_soon")).unwrap();
            })
            .unwrap();
        let second = sleeper("second sleeper", 30);
        // The sleepers' first steps register their timers.
        aio::sleep(Duration::ZERO).await;
        std::thread::sleep(Duration::from_millis(60));
        first.await.unwrap();
        second.await.unwrap();
        aio::sleep(Duration::ZERO).await;
    });
    assert_eq!(
        *log.borrow(),
        ["callback", "first sleeper", "its call_soon", "second sleeper"]
    );
    event_loop.close().unwrap();
}

/// A waker that panics when woken.
struct PanickingWaker;

impl std::task::Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("waker failure");
    }
}

#[test]
fn a_panicking_waker_among_due_sleeps_is_reported_and_the_others_wake() {
    // Three sleeps due together, the middle one polled with a waker that
    // panics: the panic goes to the exception handler as the timer's, and
    // the tasks of the other two still resume, in normal and debug mode.
    for debug in [false, true] {
        let event_loop = new_loop();
        event_loop.set_debug(debug);
        let reports = record_exceptions(&event_loop);
        let log = journal();
        let main_log = log.clone();
        run_until_complete_within(&event_loop, WATCHDOG, async move {
            let log = main_log;
            let sleeper = |name: &'static str| {
                let log = log.clone();
                aio::create_task(async move {
                    aio::sleep(Duration::from_millis(5)).await;
                    log.borrow_mut().push(name);
                })
            };
            let first = sleeper("first");
            let mut odd = Box::pin(aio::sleep(Duration::from_millis(5)));
            let waker = std::task::Waker::from(Arc::new(PanickingWaker));
            assert!(
                odd.as_mut()
                    .poll(&mut std::task::Context::from_waker(&waker))
                    .is_pending()
            );
            let last = sleeper("last");
            aio::sleep(Duration::ZERO).await;
            std::thread::sleep(Duration::from_millis(20));
            first.await.unwrap();
            last.await.unwrap();
            drop(odd);
        });
        assert_eq!(*log.borrow(), ["first", "last"], "debug {debug}");
        assert_one_report(
            &reports,
            "Exception in callback a timer's waker",
            &format!("debug {debug}"),
        );
        event_loop.close().unwrap();
    }
}

#[test]
fn panicking_timer_callback_goes_to_the_exception_handler() {
    // test_base_events.py: BaseEventLoopTests.test_default_exc_handler_callback
    // (the call_later half)
    let event_loop = new_loop();
    let reports = record_exceptions(&event_loop);
    event_loop
        .call_later(Duration::from_millis(1), || panic!("timer failure"))
        .unwrap();
    let seen = reports.clone();
    run_until(&event_loop, move || !seen.borrow().is_empty());
    assert_one_report(&reports, "Exception in callback", "");
    event_loop.close().unwrap();
}

#[test]
fn panicking_exception_handler_does_not_take_the_loop_down() {
    // test_base_events.py: BaseEventLoopTests.test_set_exc_handler_broken
    let event_loop = new_loop();
    let calls = Rc::new(Cell::new(0));
    let count = calls.clone();
    event_loop.set_exception_handler(move |_, _| {
        count.set(count.get() + 1);
        panic!("the handler itself fails");
    });
    let log = journal();
    event_loop.call_soon(|| panic!("callback failure")).unwrap();
    event_loop.call_soon(note(&log, "after both panics")).unwrap();
    run_once(&event_loop);
    assert_eq!(calls.get(), 1);
    assert_eq!(*log.borrow(), ["after both panics"]);
    assert_eq!(run_until_complete_within(&event_loop, WATCHDOG, async { 7 }), 7);
    event_loop.close().unwrap();
}

#[test]
fn call_exception_handler_passes_the_loop_and_the_context() {
    // test_base_events.py: BaseEventLoopTests.test_set_exc_handler_custom
    let event_loop = new_loop();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    let expected = event_loop.clone();
    event_loop.set_exception_handler(move |handler_loop, context| {
        sink.borrow_mut()
            .push((*handler_loop == expected, context.message().to_owned()));
    });
    event_loop.call_exception_handler(aio::ExceptionContext::new("custom report"));
    assert_eq!(*seen.borrow(), [(true, String::from("custom report"))]);
    event_loop.close().unwrap();
}

#[test]
fn default_handler_logs_a_panicking_callback() {
    // test_base_events.py: BaseEventLoopTests.test_default_exc_handler_callback
    capture_logs();
    let event_loop = new_loop();
    event_loop.call_soon(|| panic!("logged failure")).unwrap();
    run_once(&event_loop);
    let errors: Vec<String> = logged_here()
        .into_iter()
        .filter(|(level, _)| *level == log::Level::Error)
        .map(|(_, line)| line)
        .collect();
    assert!(
        errors
            .iter()
            .any(|line| line.starts_with("Exception in callback")),
        "error records: {errors:?}"
    );
    event_loop.close().unwrap();
}

#[test]
fn broken_custom_handler_is_reported_by_the_default_handler() {
    // test_base_events.py: BaseEventLoopTests.test_set_exc_handler_broken
    capture_logs();
    let event_loop = new_loop();
    event_loop.set_exception_handler(|_, _| panic!("broken handler"));
    event_loop.call_soon(|| panic!("callback failure")).unwrap();
    run_once(&event_loop);
    let errors: Vec<String> = logged_here()
        .into_iter()
        .filter(|(level, _)| *level == log::Level::Error)
        .map(|(_, line)| line)
        .collect();
    assert!(
        errors
            .iter()
            .any(|line| line.contains("Unhandled error in exception handler")),
        "error records: {errors:?}"
    );
    event_loop.close().unwrap();
}

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

#[test]
fn awaited_task_gives_its_output() {
    // test_base_events.py: BaseEventLoopTests.test_create_task
    let event_loop = new_loop();
    let task = event_loop
        .create_task(async {
            aio::sleep(Duration::ZERO).await;
            5
        })
        .unwrap();
    let output = run_until_complete_within(&event_loop, WATCHDOG, task);
    assert_eq!(output.unwrap(), 5);
    event_loop.close().unwrap();
}

#[test]
fn create_task_on_the_running_loop() {
    // test_base_events.py: BaseEventLoopTests.test_create_task (the free
    // function, as asyncio.create_task)
    let event_loop = new_loop();
    let output = run_until_complete_within(&event_loop, WATCHDOG, async {
        let task = aio::create_task(async { "from the running loop" });
        task.await
    });
    assert_eq!(output.unwrap(), "from the running loop");
    event_loop.close().unwrap();
}

#[test]
fn create_task_outside_a_running_loop_panics() {
    // test_events.py: GetEventLoopTestsMixin.test_get_event_loop_returns_running_loop
    // (asyncio.create_task outside a loop raises "no running event loop")
    let outcome = catch_unwind(|| drop(aio::create_task(async {})));
    let payload = outcome.expect_err("create_task outside a loop");
    assert!(panic_text(&*payload).contains("no running event loop"));
}

#[test]
fn a_sleep_past_the_clocks_end_waits_until_cancelled() {
    // `Instant + Duration::MAX` overflows: the deadline saturates (a
    // century ahead) instead of panicking, and the sleep stays pending.
    let event_loop = new_loop();
    let task = event_loop
        .create_task(async { aio::sleep(Duration::MAX).await })
        .unwrap();
    let (pending, result) = run_until_complete_within(&event_loop, WATCHDOG, async move {
        for _ in 0..3 {
            aio::sleep(Duration::ZERO).await;
        }
        let pending = !task.done();
        task.cancel();
        (pending, task.await)
    });
    assert!(pending, "a sleep of Duration::MAX ended");
    assert!(result.expect_err("a cancelled sleep").is_cancelled());
    event_loop.close().unwrap();
}

#[test]
fn cancelling_a_sleeping_task_wakes_it_promptly() {
    // test_tasks.py: BaseTaskTests.test_task_cancel_sleeping_task and
    // test_events.py: EventLoopTestsMixin.test_prompt_cancellation
    let event_loop = new_loop();
    let unwound = Rc::new(Cell::new(false));
    let guard = DropFlag(unwound.clone());
    let mut task = event_loop
        .create_task(async move {
            let _guard = guard;
            aio::sleep(Duration::from_secs(3600)).await;
            "woke up"
        })
        .unwrap();
    let start = Instant::now();
    let (accepted, result, task) = run_until_complete_within(&event_loop, WATCHDOG, async move {
        aio::sleep(Duration::from_millis(10)).await;
        let accepted = task.cancel();
        let result = (&mut task).await;
        (accepted, result, task)
    });
    assert!(
        start.elapsed() < PROMPTLY,
        "cancellation took {:?}",
        start.elapsed()
    );
    assert!(accepted, "cancel() on a pending task returns true");
    let err = result.expect_err("a cancelled task");
    assert!(err.is_cancelled(), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(task.cancelled());
    assert!(task.done());
    assert!(unwound.get(), "the cancelled task's future was not dropped");
    assert!(!task.cancel(), "cancel() on a done task returns false");
    event_loop.close().unwrap();
}

#[test]
fn cancel_on_a_finished_task_returns_false() {
    // test_tasks.py: BaseTaskTests.test_cancel (the last assertion) and
    // test_cancel_at_end
    let event_loop = new_loop();
    let task = event_loop.create_task(async { 1 }).unwrap();
    run_until_complete_within(&event_loop, WATCHDOG, aio::sleep(Duration::from_millis(5)));
    assert!(task.done());
    assert!(!task.cancel());
    assert!(!task.cancelled());
    event_loop.close().unwrap();
}

#[test]
fn panicked_task_gives_panicked_when_awaited() {
    // test_base_events.py: BaseEventLoopTests.test_default_exc_handler_coro
    // (the awaited side: the exception is retrieved, nothing is reported)
    let event_loop = new_loop();
    let reports = record_exceptions(&event_loop);
    let task = event_loop
        .create_task(async {
            aio::sleep(Duration::ZERO).await;
            panic!("task failure");
        })
        .unwrap();
    let result: Result<(), aio::Error> = run_until_complete_within(&event_loop, WATCHDOG, task);
    let err = result.expect_err("a panicked task");
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert!(!err.is_cancelled());
    run_once(&event_loop);
    assert!(reports.borrow().is_empty(), "reported: {:?}", reports.borrow());
    event_loop.close().unwrap();
}

#[test]
fn detached_panicking_task_reaches_the_exception_handler() {
    // test_base_events.py: BaseEventLoopTests.test_default_exc_handler_coro
    let event_loop = new_loop();
    let reports = record_exceptions(&event_loop);
    drop(
        event_loop
            .create_task(async { panic!("nobody awaits this") })
            .unwrap(),
    );
    let seen = reports.clone();
    run_until(&event_loop, move || !seen.borrow().is_empty());
    assert_eq!(reports.borrow().len(), 1, "{:?}", reports.borrow());
    assert_eq!(run_until_complete_within(&event_loop, WATCHDOG, async { 3 }), 3);
    event_loop.close().unwrap();
}

#[test]
fn panicked_task_dropped_unawaited_reaches_the_exception_handler() {
    // test_base_events.py: BaseEventLoopTests.test_default_exc_handler_coro
    // ("exception was never retrieved" once the task is garbage)
    let event_loop = new_loop();
    let reports = record_exceptions(&event_loop);
    let task = event_loop
        .create_task(async { panic!("never retrieved") })
        .unwrap();
    let watched = Rc::new(task);
    let probe = watched.clone();
    run_until(&event_loop, move || probe.done());
    // Dropped outside the running loop, as asyncio's test drops its future:
    // the report still goes to the task's own loop.
    drop(watched);
    run_once(&event_loop);
    assert_eq!(
        reports.borrow().len(),
        1,
        "the loop's exception handler got {:?}",
        reports.borrow()
    );
    event_loop.close().unwrap();
}

#[test]
fn default_handler_logs_a_never_retrieved_task_panic() {
    // test_base_events.py: BaseEventLoopTests.test_default_exc_handler_coro
    capture_logs();
    let event_loop = new_loop();
    let task = Rc::new(
        event_loop
            .create_task(async { panic!("logged, never retrieved") })
            .unwrap(),
    );
    let probe = task.clone();
    run_until(&event_loop, move || probe.done());
    drop(task);
    run_once(&event_loop);
    let errors: Vec<String> = logged_here()
        .into_iter()
        .filter(|(level, _)| *level == log::Level::Error)
        .map(|(_, line)| line)
        .collect();
    assert!(
        errors
            .iter()
            .any(|line| line.contains("exception was never retrieved")),
        "error records: {errors:?}"
    );
    event_loop.close().unwrap();
}

#[test]
fn dropping_a_task_handle_does_not_cancel_the_task() {
    // asyncio keeps a task running when its last user reference goes
    // (BaseEventLoop keeps it in all_tasks); API.md: "dropping it does not cancel"
    let event_loop = new_loop();
    let finished = Rc::new(Cell::new(false));
    let flag = finished.clone();
    drop(
        event_loop
            .create_task(async move {
                aio::sleep(Duration::from_millis(20)).await;
                flag.set(true);
            })
            .unwrap(),
    );
    let seen = finished.clone();
    run_until(&event_loop, move || seen.get());
    assert!(finished.get());
    event_loop.close().unwrap();
}

// ---------------------------------------------------------------------------
// Sleeping
// ---------------------------------------------------------------------------

#[test]
fn sleep_zero_yields_exactly_once() {
    // test_tasks.py: SleepTests.test_sleep_zero
    let event_loop = new_loop();
    let (zero, polls) = count_polls(aio::sleep(Duration::ZERO));
    run_until_complete_within(&event_loop, WATCHDOG, zero);
    assert_eq!(polls.get(), 2, "sleep(ZERO) is pending once, then ready");

    // A callback queued before the sleep has run when it returns.
    let ran = run_until_complete_within(&event_loop, WATCHDOG, async {
        let ran = Rc::new(Cell::new(false));
        let flag = ran.clone();
        aio::get_running_loop()
            .unwrap()
            .call_soon(move || flag.set(true))
            .unwrap();
        assert!(!ran.get());
        aio::sleep(Duration::ZERO).await;
        ran.get()
    });
    assert!(ran, "sleep(ZERO) returned before the queued callback ran");

    let log = Rc::new(RefCell::new(Vec::new()));
    let worker = |name: &'static str| {
        let log = log.clone();
        async move {
            for round in 0..3 {
                log.borrow_mut().push(format!("{name}{round}"));
                aio::sleep(Duration::ZERO).await;
            }
        }
    };
    let a = event_loop.create_task(worker("a")).unwrap();
    let b = event_loop.create_task(worker("b")).unwrap();
    run_until_complete_within(&event_loop, WATCHDOG, async move {
        a.await.unwrap();
        b.await.unwrap();
    });
    assert_eq!(*log.borrow(), ["a0", "b0", "a1", "b1", "a2", "b2"]);
    event_loop.close().unwrap();
}

#[test]
fn sleep_lasts_at_least_its_duration() {
    // test_tasks.py: BaseTaskTests.test_sleep; test_events.py: EventLoopTestsMixin.test_run_until_complete
    let event_loop = new_loop();
    let delay = Duration::from_millis(50);
    let elapsed = run_until_complete_within(&event_loop, WATCHDOG, async move {
        let start = Instant::now();
        aio::sleep(delay).await;
        start.elapsed()
    });
    assert!(elapsed + CLOCK_SLACK >= delay, "slept {elapsed:?}");
    assert!(elapsed < PROMPTLY, "slept {elapsed:?}");
    event_loop.close().unwrap();
}

// ---------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------

#[test]
fn call_soon_threadsafe_keeps_fifo_with_a_later_call_soon() {
    // test_events.py: EventLoopTestsMixin.test_call_soon_threadsafe
    let event_loop = new_loop();
    let results = Arc::new(Mutex::new(Vec::new()));
    let record = |results: &Arc<Mutex<Vec<&'static str>>>, word: &'static str| {
        let results = results.clone();
        move || {
            let mut results = results.lock().unwrap();
            results.push(word);
            if results.len() >= 2 {
                stop_running_loop();
            }
        }
    };
    let threadsafe = event_loop.threadsafe();
    let hello = record(&results, "hello");
    let (queued, was_queued) = mpsc::channel();
    let thread = thread::spawn(move || {
        threadsafe.call_soon_threadsafe(hello).unwrap();
        queued.send(()).unwrap();
    });
    was_queued
        .recv_timeout(WATCHDOG)
        .expect("the other thread queued its callback");
    event_loop.call_soon(record(&results, "world")).unwrap();
    run_forever_within(&event_loop, WATCHDOG);
    thread.join().unwrap();
    assert_eq!(*results.lock().unwrap(), ["hello", "world"]);
    event_loop.close().unwrap();
}

#[test]
fn another_thread_wakes_a_blocked_loop_before_and_after_its_first_socket() {
    // On Linux a loop with no fd blocks on a futex and makes its epoll with
    // the first registered fd; a wake-up must reach it in both states, also
    // when it comes while the loop is blocked.
    let event_loop = new_loop();
    let mut socket = None;
    for registered in [false, true] {
        if registered {
            socket = Some(run_until_complete_within(&event_loop, WATCHDOG, async {
                aio::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .expect("a UDP socket")
            }));
        }
        let threadsafe = event_loop.threadsafe();
        let (blocked, loop_blocked) = mpsc::channel();
        event_loop.call_soon(move || blocked.send(()).unwrap()).unwrap();
        let waker = thread::spawn(move || {
            loop_blocked.recv_timeout(WATCHDOG).expect("the loop ran");
            // The loop has nothing to do but the watchdog's timer: give it
            // the time to block before the wake-up comes.
            thread::sleep(Duration::from_millis(50));
            threadsafe.call_soon_threadsafe(stop_running_loop).unwrap();
        });
        let started = Instant::now();
        run_forever_within(&event_loop, WATCHDOG);
        assert!(
            started.elapsed() < PROMPTLY,
            "the wake-up reached the loop (registered: {registered})"
        );
        waker.join().unwrap();
    }
    drop(socket);
    event_loop.close().unwrap();
}

#[test]
fn call_soon_threadsafe_from_the_loop_thread_keeps_fifo() {
    // test_events.py: EventLoopTestsMixin.test_call_soon_threadsafe_same_thread
    let event_loop = new_loop();
    let results = Arc::new(Mutex::new(Vec::new()));
    let sink = results.clone();
    event_loop
        .threadsafe()
        .call_soon_threadsafe(move || sink.lock().unwrap().push("hello"))
        .unwrap();
    let sink = results.clone();
    event_loop
        .call_soon(move || {
            sink.lock().unwrap().push("world");
            stop_running_loop();
        })
        .unwrap();
    run_forever_within(&event_loop, WATCHDOG);
    assert_eq!(*results.lock().unwrap(), ["hello", "world"]);
    event_loop.close().unwrap();
}

#[test]
fn call_soon_threadsafe_wakes_a_loop_blocked_in_a_long_poll() {
    // test_events.py: EventLoopTestsMixin.test_call_soon_threadsafe ("wakes
    // the loop"); the only other wake-up is the 10 s watchdog
    let event_loop = new_loop();
    let threadsafe = event_loop.threadsafe();
    let thread = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        threadsafe.call_soon_threadsafe(stop_running_loop).unwrap();
    });
    let start = Instant::now();
    run_forever_within(&event_loop, WATCHDOG);
    assert!(start.elapsed() < PROMPTLY, "woke after {:?}", start.elapsed());
    thread.join().unwrap();
    event_loop.close().unwrap();
}

#[test]
fn threadsafe_stop_from_another_thread_wakes_the_loop() {
    // test_runners.py: RunnerTests.test_interrupt_* rely on waking a loop
    // blocked in select() from outside (call_soon_threadsafe(lambda: None))
    let event_loop = new_loop();
    let threadsafe = event_loop.threadsafe();
    let thread = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        threadsafe.stop();
    });
    let start = Instant::now();
    run_forever_within(&event_loop, WATCHDOG);
    assert!(start.elapsed() < PROMPTLY, "stopped after {:?}", start.elapsed());
    thread.join().unwrap();
    event_loop.close().unwrap();
}

#[test]
fn to_thread_runs_on_another_thread_and_returns_its_value() {
    // test_events.py: EventLoopTestsMixin.test_run_in_executor
    let event_loop = new_loop();
    let (value, worker) = run_until_complete_within(&event_loop, WATCHDOG, async {
        aio::to_thread(|| ("yo", thread::current().id()))
            .await
            .expect("to_thread")
    });
    assert_eq!(value, "yo");
    assert_ne!(worker, thread::current().id());
    event_loop.close().unwrap();
}

#[test]
fn to_thread_panic_comes_back_as_panicked() {
    // test_events.py: EventLoopTestsMixin.test_run_in_executor (the failing
    // function's exception is set on the future)
    let event_loop = new_loop();
    let result = run_until_complete_within(&event_loop, WATCHDOG, async {
        aio::to_thread(|| -> u8 { panic!("worker failure") }).await
    });
    assert_eq!(
        result.expect_err("a panicking function").kind(),
        ErrorKind::Panicked
    );
    event_loop.close().unwrap();
}

// ---------------------------------------------------------------------------
// Watching file descriptors
// ---------------------------------------------------------------------------

#[test]
#[cfg(unix)]
fn reader_callback_fires_on_readable_data() {
    // test_events.py: EventLoopTestsMixin.test_reader_callback
    let event_loop = new_loop();
    let (r, mut w) = UnixStream::pair().unwrap();
    r.set_nonblocking(true).unwrap();
    let fd = r.as_raw_fd();
    let bytes_read = Rc::new(RefCell::new(Vec::new()));
    let removed_at_eof = Rc::new(Cell::new(None));
    {
        let bytes_read = bytes_read.clone();
        let removed_at_eof = removed_at_eof.clone();
        let mut r = r;
        event_loop
            .add_reader(fd, move || {
                let mut buf = [0; 1024];
                match r.read(&mut buf) {
                    Ok(0) => {
                        let event_loop = aio::get_running_loop().unwrap();
                        removed_at_eof.set(Some(event_loop.remove_reader(fd)));
                    }
                    Ok(n) => bytes_read.borrow_mut().extend_from_slice(&buf[..n]),
                    // Spurious readiness is possible; the next event will do.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("read: {e}"),
                }
            })
            .unwrap();
    }
    w.write_all(b"abc").unwrap();
    let seen = bytes_read.clone();
    run_until(&event_loop, move || seen.borrow().len() >= 3);
    w.write_all(b"def").unwrap();
    let seen = bytes_read.clone();
    run_until(&event_loop, move || seen.borrow().len() >= 6);
    assert_eq!(*bytes_read.borrow(), b"abcdef");
    drop(w);
    let eof = removed_at_eof.clone();
    run_until(&event_loop, move || eof.get().is_some());
    assert_eq!(
        removed_at_eof.get(),
        Some(true),
        "remove_reader from the callback"
    );
    assert!(!event_loop.remove_reader(fd));
    event_loop.close().unwrap();
}

#[test]
#[cfg(unix)]
fn writer_callback_fires_when_writable() {
    // test_events.py: EventLoopTestsMixin.test_writer_callback
    let event_loop = new_loop();
    let (mut r, w) = UnixStream::pair().unwrap();
    w.set_nonblocking(true).unwrap();
    let fd = w.as_raw_fd();
    let data = [b'x'; 1024];
    let writer = Rc::new(w);
    {
        let writer = writer.clone();
        event_loop
            .add_writer(fd, move || {
                (&*writer).write_all(&data).unwrap();
                stop_running_loop();
            })
            .unwrap();
    }
    run_forever_within(&event_loop, WATCHDOG);
    assert!(event_loop.remove_writer(fd));
    assert!(!event_loop.remove_writer(fd));
    r.set_nonblocking(true).unwrap();
    let mut received = vec![0; data.len() * 2];
    let n = r.read(&mut received).unwrap();
    assert_eq!(&received[..n], &data[..], "the writer ran more than once");
    event_loop.close().unwrap();
}

#[test]
#[cfg(unix)]
fn io_callback_runs_once_per_event_across_stop_and_restart() {
    // test_base_events.py: BaseEventLoopTests.test_single_selecter_event_callback_after_stopping
    let event_loop = new_loop();
    let (r, mut w) = UnixStream::pair().unwrap();
    r.set_nonblocking(true).unwrap();
    let fd = r.as_raw_fd();
    let calls = Rc::new(Cell::new(0));
    {
        let calls = calls.clone();
        let mut r = r;
        event_loop
            .add_reader(fd, move || {
                calls.set(calls.get() + 1);
                let mut buf = [0; 16];
                let _ = r.read(&mut buf);
            })
            .unwrap();
    }
    w.write_all(b"x").unwrap();
    run_once(&event_loop);
    run_once(&event_loop);
    assert_eq!(calls.get(), 1);
    assert!(event_loop.remove_reader(fd));
    event_loop.close().unwrap();
}

// ---------------------------------------------------------------------------
// Debug mode, identity, thread rules
// ---------------------------------------------------------------------------

#[test]
fn set_debug_is_reflected_by_get_debug() {
    // test_base_events.py: BaseEventLoopTests.test_set_debug
    let event_loop = new_loop();
    event_loop.set_debug(true);
    assert!(event_loop.get_debug());
    event_loop.set_debug(false);
    assert!(!event_loop.get_debug());
    event_loop.close().unwrap();
}

#[test]
fn slow_callbacks_are_logged_in_debug_mode_only() {
    // test_base_events.py: BaseEventLoopTests.test_log_slow_callbacks
    // (asyncio warns "Executing <Handle ...> took 0.150 seconds" when a
    // callback takes longer than slow_callback_duration, 0.1 s by default)
    capture_logs();
    let event_loop = new_loop();
    let slow = || thread::sleep(Duration::from_millis(150));
    let slow_warnings = || {
        logged_here()
            .into_iter()
            .filter(|(level, line)| *level == log::Level::Warn && line.contains("Executing"))
            .count()
    };
    event_loop.set_debug(false);
    event_loop.call_soon(slow).unwrap();
    run_once(&event_loop);
    assert_eq!(slow_warnings(), 0, "warned outside debug mode");
    event_loop.set_debug(true);
    event_loop.call_soon(slow).unwrap();
    run_once(&event_loop);
    assert_eq!(slow_warnings(), 1, "records: {:?}", logged_here());
    event_loop.close().unwrap();
}

#[test]
fn event_loop_equality_is_identity() {
    // asyncio compares loops with `is` (test_events.py:
    // GetEventLoopTestsMixin.test_get_event_loop_returns_running_loop)
    let one = new_loop();
    let other = new_loop();
    assert_eq!(one, one.clone());
    assert_ne!(one, other);
    let running = run_until_complete_within(&one, WATCHDOG, async { aio::get_running_loop().unwrap() });
    assert_eq!(running, one);
    one.close().unwrap();
    other.close().unwrap();
}

#[test]
fn debug_output_describes_the_loop() {
    // test_base_events.py: BaseEventLoopTests.test_repr-like check: a loop has
    // a readable representation, open or closed
    let event_loop = new_loop();
    let open = format!("{event_loop:?}");
    assert!(!open.trim().is_empty());
    event_loop.close().unwrap();
    let closed = format!("{event_loop:?}");
    assert!(!closed.trim().is_empty());
}

/// Implemented for every `T`, and a second time for `T: Send`, so that naming
/// `<T as AmbiguousIfSend<_>>::some_item` compiles only for a `!Send` `T`.
trait AmbiguousIfSend<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
#[allow(dead_code)]
struct SendMarker;
impl<T: ?Sized + Send> AmbiguousIfSend<SendMarker> for T {}

#[test]
fn loop_handles_cannot_cross_threads_but_the_threadsafe_face_can() {
    // test_base_events.py: BaseEventLoopTests.test_check_thread. asyncio raises
    // "Non-thread-safe operation invoked on an event loop other than the
    // current one" in debug mode; aio rejects the same mistake at compile
    // time, so this test fails by not compiling.
    <EventLoop as AmbiguousIfSend<_>>::some_item();
    <aio::Task<()> as AmbiguousIfSend<_>>::some_item();
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<aio::ThreadsafeLoop>();
    assert_send_sync::<aio::Error>();
}
