//! Signal handlers on the loop, `add_signal_handler` and
//! `remove_signal_handler`: asyncio's `SelectorEventLoopSignalTests`
//! (`test_unix_events.py`) and `test_add_signal_handler`,
//! `test_signal_handling_while_selecting` and `test_signal_handling_args`
//! (`test_events.py`), with real signals sent by `kill(getpid(), …)` and
//! `setitimer` instead of asyncio's mocked `signal` module.
//!
//! A `harness = false` binary of its own because signal dispositions are
//! process-global: libtest would run cases in parallel threads that see each
//! other's handlers. Here `main` runs the cases one by one. The few that can
//! only refuse (and so must leave every disposition as it was, which the
//! harness checks) run in this process; every case that installs a handler
//! runs in a child process of this same binary (`--child NAME`), so nothing
//! it leaves behind reaches the next case and a signal that kills the child
//! fails only that case. The parent kills a child after 20 s.
//!
//! Output: one `case NAME ... ok` or `case NAME ... FAILED: WHY` line per
//! case (with the child's output after a failure), then `N passed, M failed`;
//! the exit status is non-zero when anything failed.
//!
//! Usage: `signals [FILTER]` runs the cases whose name contains FILTER;
//! `--list` lists them. The command line, the child processes and the output
//! are `harness.rs`'s, shared with the other `harness = false` suites.
//!
//! Not ported, because Rust's types rule them out: `test_check_signal`'s
//! `TypeError` for a signal given as a string, and
//! `test_add_signal_handler_coroutine_error` (the callback is an
//! `FnMut()`, which returns nothing, so an `async` function does not fit).
//! Nor are the mocked failures of `signal.set_wakeup_fd` and `signal.signal`
//! (`test_add_signal_handler_setup_error`,
//! `test_add_signal_handler_install_error*`,
//! `test_remove_signal_handler_error*`): no real call can be made to fail
//! that way on demand. The one real `sigaction` refusal, the numbers the C
//! library keeps for itself, is `reserved_signal_numbers_are_invalid`.

#[cfg(unix)]
#[path = "harness.rs"]
mod harness;

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    unix::main()
}

#[cfg(not(unix))]
fn main() {
    println!("\n0 passed, 0 failed (signal handlers exist on Unix only)");
}

#[cfg(unix)]
mod unix {
    use std::cell::{Cell, RefCell};
    use std::io;
    use std::panic::catch_unwind;
    use std::process::ExitCode;
    use std::rc::Rc;
    use std::sync::{Mutex, PoisonError, mpsc};
    use std::thread::{self, JoinHandle, ThreadId};
    use std::time::{Duration, Instant};

    use aio::{Error, ErrorKind, EventLoop, ExceptionContext};

    use crate::harness::{self, Failure, panic_text, send_to_self};

    /// How long a child case may run before it is killed and fails.
    const CHILD_TIMEOUT: Duration = Duration::from_secs(20);

    /// How long a case waits for a handler, a thread or a message.
    const WAIT: Duration = Duration::from_secs(10);

    /// The timer a loop has pending while it waits for a signal: the signal
    /// must end the wait long before it. Only its order of magnitude matters.
    const LONG_TIMER: Duration = Duration::from_secs(10);

    /// The bound a woken poll must meet: generous, it only catches a loop
    /// that slept until [`LONG_TIMER`].
    const WAKE_BOUND: Duration = Duration::from_secs(5);

    /// One past the highest signal number (Python's `signal.NSIG`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn nsig() -> i32 {
        libc::SIGRTMAX() + 1
    }

    /// One past the highest signal number (Python's `signal.NSIG`).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn nsig() -> i32 {
        32
    }

    /// Where a case runs.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Place {
        /// In the harness process; the harness checks that every disposition
        /// is the same afterwards.
        Here,
        /// In a child process of this binary.
        Child,
    }

    struct Case {
        name: &'static str,
        place: Place,
        run: fn(),
    }

    const fn here(name: &'static str, run: fn()) -> Case {
        Case {
            name,
            place: Place::Here,
            run,
        }
    }

    const fn child(name: &'static str, run: fn()) -> Case {
        Case {
            name,
            place: Place::Child,
            run,
        }
    }

    /// The cases, in the order they run.
    const CASES: &[Case] = &[
        // Refusals: nothing is installed, so they run in this process.
        here(
            "invalid_signal_numbers_are_refused",
            invalid_signal_numbers_are_refused,
        ),
        here(
            "sigkill_and_sigstop_cannot_be_caught",
            sigkill_and_sigstop_cannot_be_caught,
        ),
        #[cfg(target_os = "linux")]
        here(
            "reserved_signal_numbers_are_invalid",
            reserved_signal_numbers_are_invalid,
        ),
        here("closed_loop_refuses_add", closed_loop_refuses_add),
        here(
            "closed_loop_checks_the_signal_number_first",
            closed_loop_checks_the_signal_number_first,
        ),
        // Handlers installed and signals delivered: one child process each.
        child(
            "handler_runs_on_the_loop_when_the_signal_arrives",
            handler_runs_on_the_loop_when_the_signal_arrives,
        ),
        child(
            "sigalrm_during_a_long_poll_wakes_the_loop",
            sigalrm_during_a_long_poll_wakes_the_loop,
        ),
        child(
            "signal_taken_by_another_thread_wakes_the_loop",
            signal_taken_by_another_thread_wakes_the_loop,
        ),
        child(
            "handler_receives_its_captured_arguments",
            handler_receives_its_captured_arguments,
        ),
        child("second_add_replaces_the_first", second_add_replaces_the_first),
        child(
            "remove_returns_true_then_false_and_restores_the_default",
            remove_returns_true_then_false_and_restores_the_default,
        ),
        child(
            "signal_arriving_after_its_handler_was_removed_is_dropped",
            signal_arriving_after_its_handler_was_removed_is_dropped,
        ),
        child("close_removes_every_handler", close_removes_every_handler),
        child(
            "dropping_an_open_loop_removes_its_handlers",
            dropping_an_open_loop_removes_its_handlers,
        ),
        child(
            "close_of_a_running_loop_keeps_the_handlers",
            close_of_a_running_loop_keeps_the_handlers,
        ),
        child(
            "panicking_handler_goes_to_the_exception_handler",
            panicking_handler_goes_to_the_exception_handler,
        ),
        child("handler_removes_itself", handler_removes_itself),
        child("handler_replaces_itself", handler_replaces_itself),
        child(
            "handler_removing_the_last_other_handler_keeps_its_own",
            handler_removing_the_last_other_handler_keeps_its_own,
        ),
        child(
            "each_delivery_runs_the_handler_once",
            each_delivery_runs_the_handler_once,
        ),
        child(
            "two_loops_in_two_threads_each_get_their_signal",
            two_loops_in_two_threads_each_get_their_signal,
        ),
        child(
            "two_loops_one_signal_the_last_to_add_receives_it",
            two_loops_one_signal_the_last_to_add_receives_it,
        ),
        child(
            "two_loops_one_signal_the_receiver_removing_restores_the_default",
            two_loops_one_signal_the_receiver_removing_restores_the_default,
        ),
        child(
            "loop_in_a_non_main_thread_receives_signals",
            loop_in_a_non_main_thread_receives_signals,
        ),
        child(
            "sigint_handler_added_inside_run_receives_every_sigint",
            sigint_handler_added_inside_run_receives_every_sigint,
        ),
    ];

    pub(crate) fn main() -> ExitCode {
        let args = harness::Args::parse("--child", harness::LIBTEST_FLAGS_WITH_VALUES);
        if let Some(name) = &args.child {
            // One line per panic, whatever RUST_BACKTRACE says; the parent
            // shows it under the case's FAILED line.
            std::panic::set_hook(Box::new(|info| eprintln!("panicked: {info}")));
            return harness::run_child_case(CASES, name, |case| case.name, |case| (case.run)());
        }
        if args.list {
            return harness::list(CASES.iter().map(|case| case.name));
        }
        let selected = harness::select(CASES, args.filter.as_deref(), |case| case.name);

        // Here the harness reports a panic itself, on the case's line, with
        // the place the hook noted.
        std::panic::set_hook(Box::new(|info| {
            let place = info.location().map(ToString::to_string);
            *PANIC_PLACE.lock().unwrap_or_else(PoisonError::into_inner) = place;
        }));
        harness::run_cases(
            &selected,
            |case| case.name,
            |case| match case.place {
                Place::Here => run_here(case),
                Place::Child => harness::run_child(case.name, CHILD_TIMEOUT, |_| {})?.verdict(),
            },
        )
    }

    // -----------------------------------------------------------------------
    // Running a case in this process
    // -----------------------------------------------------------------------

    /// Where the last panic in this process happened (`file:line:column`),
    /// noted by the harness's panic hook.
    static PANIC_PLACE: Mutex<Option<String>> = Mutex::new(None);

    /// Runs `case` in this process and checks that it left every disposition
    /// as it found it.
    fn run_here(case: &Case) -> Result<(), Failure> {
        let before = all_dispositions();
        if let Err(payload) = catch_unwind(case.run) {
            let place = PANIC_PLACE
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .unwrap_or_default();
            return Err(Failure {
                reason: panic_text(&*payload),
                output: format!("(panicked at {place})"),
            });
        }
        let after = all_dispositions();
        let changed: Vec<String> = before
            .iter()
            .zip(&after)
            .filter(|(old, new)| old != new)
            .map(|((signum, old), (_, new))| {
                format!(
                    "signal {signum}: {} became {}",
                    describe_opt(*old),
                    describe_opt(*new)
                )
            })
            .collect();
        if changed.is_empty() {
            Ok(())
        } else {
            Err(Failure {
                reason: format!("the case changed dispositions: {}", changed.join("; ")),
                output: String::new(),
            })
        }
    }

    // -----------------------------------------------------------------------
    // Helpers: loops
    // -----------------------------------------------------------------------

    fn new_loop() -> EventLoop {
        aio::SelectorEventLoop::new().expect("a new selector loop")
    }

    /// Runs `event_loop` for `span`, or less if something stops it.
    fn run_for(event_loop: &EventLoop, span: Duration) {
        let stopper = event_loop.clone();
        event_loop
            .call_later(span, move || stopper.stop())
            .expect("schedule the stop");
        event_loop.run_forever().expect("run_forever");
    }

    /// Runs `event_loop` in short slices until `done()` holds; fails after
    /// [`WAIT`] (asyncio's `test_utils.run_until`).
    fn run_until(event_loop: &EventLoop, what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < WAIT,
                "timed out after {WAIT:?} waiting for {what}"
            );
            run_for(event_loop, Duration::from_millis(10));
        }
    }

    /// A counter a handler bumps.
    #[derive(Clone, Default)]
    struct Calls(Rc<Cell<u32>>);

    impl Calls {
        fn bump(&self) {
            self.0.set(self.0.get() + 1);
        }

        fn get(&self) -> u32 {
            self.0.get()
        }
    }

    fn assert_error<T: std::fmt::Debug>(result: Result<T, Error>, kind: ErrorKind, message: &str) {
        match result {
            Ok(value) => panic!("expected {kind:?} ({message:?}), got Ok({value:?})"),
            Err(err) => {
                assert_eq!(err.kind(), kind, "wrong kind for {err:?}");
                assert_eq!(err.to_string(), message);
            }
        }
    }

    /// Waits at most [`WAIT`] for a thread, then re-raises its panic.
    fn join_within<T>(handle: JoinHandle<T>, what: &str) -> T {
        let start = Instant::now();
        while !handle.is_finished() {
            assert!(start.elapsed() < WAIT, "{what} did not finish within {WAIT:?}");
            thread::sleep(Duration::from_millis(5));
        }
        match handle.join() {
            Ok(value) => value,
            Err(payload) => panic!("{what} failed: {}", panic_text(&*payload)),
        }
    }

    // -----------------------------------------------------------------------
    // Helpers: signals
    // -----------------------------------------------------------------------

    /// The current action of `signum`, or `None` where `sigaction` refuses
    /// the number.
    fn action(signum: i32) -> Option<libc::sigaction> {
        // SAFETY: an all-zero `sigaction` is a valid out-parameter.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a null new action makes `sigaction` only read the current
        // one into `old`, which is ours and writable.
        let rc = unsafe { libc::sigaction(signum, std::ptr::null(), &mut old) };
        (rc == 0).then_some(old)
    }

    fn disposition(signum: i32) -> libc::sighandler_t {
        action(signum)
            .unwrap_or_else(|| panic!("sigaction({signum}): {}", io::Error::last_os_error()))
            .sa_sigaction
    }

    /// Every signal's disposition, for the harness's before/after check.
    fn all_dispositions() -> Vec<(i32, Option<libc::sighandler_t>)> {
        (1..nsig())
            .map(|signum| (signum, action(signum).map(|action| action.sa_sigaction)))
            .collect()
    }

    fn describe(handler: libc::sighandler_t) -> String {
        match handler {
            libc::SIG_DFL => String::from("SIG_DFL"),
            libc::SIG_IGN => String::from("SIG_IGN"),
            handler => format!("a handler at {handler:#x}"),
        }
    }

    fn describe_opt(handler: Option<libc::sighandler_t>) -> String {
        handler.map_or_else(|| String::from("(refused by sigaction)"), describe)
    }

    fn assert_default(signum: i32, when: &str) {
        let current = disposition(signum);
        assert!(
            current == libc::SIG_DFL,
            "signal {signum} {when}: expected SIG_DFL, found {}",
            describe(current)
        );
    }

    /// Asserts that a handler function of the loop is installed for `signum`,
    /// with `SA_RESTART` (asyncio calls `signal.siginterrupt(sig, False)`).
    fn assert_caught(signum: i32, when: &str) {
        let current = action(signum).expect("sigaction");
        assert!(
            current.sa_sigaction != libc::SIG_DFL && current.sa_sigaction != libc::SIG_IGN,
            "signal {signum} {when}: expected a handler, found {}",
            describe(current.sa_sigaction)
        );
        assert!(
            current.sa_flags & libc::SA_RESTART != 0,
            "signal {signum} {when}: the handler lacks SA_RESTART"
        );
    }

    fn set_disposition(signum: i32, handler: libc::sighandler_t) {
        // SAFETY: an all-zero `sigaction` is "no flags, empty mask".
        let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
        new.sa_sigaction = handler;
        // SAFETY: only SIG_DFL and SIG_IGN are passed, so no code of ours
        // runs in signal context.
        let rc = unsafe { libc::sigaction(signum, &new, std::ptr::null_mut()) };
        assert_eq!(rc, 0, "sigaction({signum}): {}", io::Error::last_os_error());
    }

    /// Sends one SIGALRM to this process after `delay` (`setitimer`, as
    /// test_events.py does).
    fn alarm_after(delay: Duration) {
        let value = libc::timeval {
            tv_sec: libc::time_t::try_from(delay.as_secs()).expect("a short delay"),
            tv_usec: libc::suseconds_t::from(delay.subsec_micros().cast_signed()),
        };
        let timer = libc::itimerval {
            it_interval: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            it_value: value,
        };
        // SAFETY: `timer` is a valid itimerval; the old value is not asked for.
        let rc = unsafe { libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) };
        assert_eq!(rc, 0, "setitimer: {}", io::Error::last_os_error());
    }

    /// Blocks (`true`) or unblocks `signum` in the calling thread.
    fn block_in_this_thread(signum: i32, block: bool) {
        // SAFETY: an all-zero sigset_t is a valid value for sigemptyset to
        // initialise.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is ours; the calls only write it and this thread's mask.
        let rc = unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signum);
            let how = if block { libc::SIG_BLOCK } else { libc::SIG_UNBLOCK };
            libc::pthread_sigmask(how, &set, std::ptr::null_mut())
        };
        assert_eq!(rc, 0, "pthread_sigmask");
    }

    // -----------------------------------------------------------------------
    // Refusals (in this process)
    // -----------------------------------------------------------------------

    fn invalid_signal_numbers_are_refused() {
        // test_events.py: EventLoopTestsMixin.test_add_signal_handler (the
        // error half); test_unix_events.py: test_check_signal
        let event_loop = new_loop();
        let nsig = nsig();
        for signum in [0, -1, nsig, nsig + 1, 1000, i32::MAX, i32::MIN] {
            let message = format!("invalid signal number {signum}");
            assert_error(
                event_loop.add_signal_handler(signum, || {}),
                ErrorKind::InvalidArgument,
                &message,
            );
            assert_error(
                event_loop.remove_signal_handler(signum),
                ErrorKind::InvalidArgument,
                &message,
            );
        }
        event_loop.close().unwrap();
    }

    fn sigkill_and_sigstop_cannot_be_caught() {
        // test_events.py: EventLoopTestsMixin.test_add_signal_handler
        // (RuntimeError for SIGKILL, remove gives False)
        let event_loop = new_loop();
        for signum in [libc::SIGKILL, libc::SIGSTOP] {
            assert_error(
                event_loop.add_signal_handler(signum, || {}),
                ErrorKind::InvalidArgument,
                &format!("sig {signum} cannot be caught"),
            );
            // asyncio: "Removing SIGKILL doesn't raise, since we don't call
            // signal()".
            assert!(!event_loop.remove_signal_handler(signum).unwrap());
        }
        event_loop.close().unwrap();
    }

    #[cfg(target_os = "linux")]
    fn reserved_signal_numbers_are_invalid() {
        // test_unix_events.py: test_check_signal. asyncio checks
        // `sig in signal.valid_signals()`, which leaves out the numbers
        // between SIGSYS and SIGRTMIN that the C library keeps for its
        // threads (32 and 33 with glibc): "invalid signal number 32" on add
        // and on remove, as for any other invalid number.
        let event_loop = new_loop();
        for signum in libc::SIGSYS + 1..libc::SIGRTMIN() {
            let message = format!("invalid signal number {signum}");
            assert_error(
                event_loop.add_signal_handler(signum, || {}),
                ErrorKind::InvalidArgument,
                &message,
            );
            assert_error(
                event_loop.remove_signal_handler(signum),
                ErrorKind::InvalidArgument,
                &message,
            );
        }
        event_loop.close().unwrap();
    }

    fn closed_loop_refuses_add() {
        // base_events.py `_check_closed` in unix_events.py's add_signal_handler
        let event_loop = new_loop();
        event_loop.close().unwrap();
        let calls = Calls::default();
        let handler = calls.clone();
        assert_error(
            event_loop.add_signal_handler(libc::SIGUSR1, move || handler.bump()),
            ErrorKind::Closed,
            "Event loop is closed",
        );
        // asyncio's remove_signal_handler does not check for a closed loop:
        // nothing is registered, so it says False.
        assert!(!event_loop.remove_signal_handler(libc::SIGUSR1).unwrap());
        assert_eq!(calls.get(), 0);
    }

    fn closed_loop_checks_the_signal_number_first() {
        // unix_events.py add_signal_handler: `self._check_signal(sig)` comes
        // before `self._check_closed()`, so a bad number on a closed loop is
        // still "invalid signal number 0". SIGKILL is a valid number, so it
        // gets as far as the closed check.
        let event_loop = new_loop();
        event_loop.close().unwrap();
        assert_error(
            event_loop.add_signal_handler(0, || {}),
            ErrorKind::InvalidArgument,
            "invalid signal number 0",
        );
        assert_error(
            event_loop.remove_signal_handler(0),
            ErrorKind::InvalidArgument,
            "invalid signal number 0",
        );
        assert_error(
            event_loop.add_signal_handler(libc::SIGKILL, || {}),
            ErrorKind::Closed,
            "Event loop is closed",
        );
    }

    // -----------------------------------------------------------------------
    // Delivery (child processes)
    // -----------------------------------------------------------------------

    fn handler_runs_on_the_loop_when_the_signal_arrives() {
        // test_events.py: EventLoopTestsMixin.test_add_signal_handler (the
        // delivery half, with SIGINT as there); test_unix_events.py:
        // test_add_signal_handler, test_remove_signal_handler_2
        let event_loop = new_loop();
        let calls = Calls::default();
        let ran_on: Rc<Cell<Option<ThreadId>>> = Rc::default();
        let saw_running_loop: Rc<Cell<Option<bool>>> = Rc::default();
        let (counter, thread_slot, loop_slot) = (calls.clone(), ran_on.clone(), saw_running_loop.clone());
        let expected_loop = event_loop.clone();
        event_loop
            .add_signal_handler(libc::SIGINT, move || {
                counter.bump();
                thread_slot.set(Some(thread::current().id()));
                loop_slot.set(Some(
                    aio::get_running_loop().is_ok_and(|running| running == expected_loop),
                ));
            })
            .unwrap();
        assert_caught(libc::SIGINT, "after add_signal_handler");

        send_to_self(libc::SIGINT);
        // The C-level handler only writes to the pipe: the callback waits for
        // the loop.
        assert_eq!(calls.get(), 0, "the callback ran outside the loop");
        run_until(&event_loop, "the SIGINT handler", || calls.get() > 0);
        run_for(&event_loop, Duration::from_millis(50));
        assert_eq!(calls.get(), 1, "one SIGINT, one call");
        assert_eq!(
            ran_on.get(),
            Some(thread::current().id()),
            "not on the loop's thread"
        );
        assert_eq!(
            saw_running_loop.get(),
            Some(true),
            "the handler did not see its loop running"
        );

        // Removing it restores the default disposition; removing again says
        // false.
        assert!(event_loop.remove_signal_handler(libc::SIGINT).unwrap());
        assert_default(libc::SIGINT, "after remove_signal_handler");
        assert!(!event_loop.remove_signal_handler(libc::SIGINT).unwrap());
        event_loop.close().unwrap();
    }

    fn sigalrm_during_a_long_poll_wakes_the_loop() {
        // test_events.py: EventLoopTestsMixin.test_signal_handling_while_selecting.
        // This process has one thread, so the kernel delivers SIGALRM to the
        // loop's thread while it is blocked in its poll: the poll must come
        // back (EINTR or the pipe) and the handler run at once, not when the
        // 10 s timer is due.
        let event_loop = new_loop();
        let calls = Calls::default();
        let counter = calls.clone();
        let stopper = event_loop.clone();
        event_loop
            .add_signal_handler(libc::SIGALRM, move || {
                counter.bump();
                stopper.stop();
            })
            .unwrap();
        let bound = {
            let stopper = event_loop.clone();
            event_loop.call_later(LONG_TIMER, move || stopper.stop()).unwrap()
        };
        let start = Instant::now();
        alarm_after(Duration::from_millis(100));
        event_loop.run_forever().unwrap();
        let elapsed = start.elapsed();
        assert_eq!(
            calls.get(),
            1,
            "the loop stopped after {elapsed:?} without the handler"
        );
        assert!(
            elapsed < WAKE_BOUND,
            "the handler ran only after {elapsed:?}: SIGALRM did not wake the poll"
        );
        assert!(
            elapsed >= Duration::from_millis(50),
            "the handler ran after {elapsed:?}, before the alarm was due"
        );
        bound.cancel();
        event_loop.close().unwrap();
        assert_default(libc::SIGALRM, "after close");
    }

    fn signal_taken_by_another_thread_wakes_the_loop() {
        // The other path of test_signal_handling_while_selecting: the
        // loop's thread blocks SIGUSR1, so the kernel runs the C-level
        // handler on the sending thread; only the byte it writes to the pipe
        // can wake the loop's poll.
        let event_loop = new_loop();
        let calls = Calls::default();
        let counter = calls.clone();
        let stopper = event_loop.clone();
        event_loop
            .add_signal_handler(libc::SIGUSR1, move || {
                counter.bump();
                stopper.stop();
            })
            .unwrap();
        block_in_this_thread(libc::SIGUSR1, true);
        let sender = thread::spawn(|| {
            block_in_this_thread(libc::SIGUSR1, false);
            thread::sleep(Duration::from_millis(200));
            send_to_self(libc::SIGUSR1);
        });
        let bound = {
            let stopper = event_loop.clone();
            event_loop.call_later(LONG_TIMER, move || stopper.stop()).unwrap()
        };
        let start = Instant::now();
        event_loop.run_forever().unwrap();
        let elapsed = start.elapsed();
        join_within(sender, "the sending thread");
        assert_eq!(
            calls.get(),
            1,
            "the loop stopped after {elapsed:?} without the handler"
        );
        assert!(
            elapsed < WAKE_BOUND,
            "the handler ran only after {elapsed:?}: the pipe did not wake the poll"
        );
        assert!(
            elapsed >= Duration::from_millis(100),
            "the handler ran after {elapsed:?}, before the signal was sent"
        );
        bound.cancel();
        event_loop.close().unwrap();
        block_in_this_thread(libc::SIGUSR1, false);
    }

    fn handler_receives_its_captured_arguments() {
        // test_events.py: EventLoopTestsMixin.test_signal_handling_args. A Rust
        // callback takes its arguments by capture instead of `*args`.
        let event_loop = new_loop();
        let received: Rc<RefCell<Vec<(i32, String)>>> = Rc::default();
        let some_args = (42, String::from("forty-two"));
        let sink = received.clone();
        let stopper = event_loop.clone();
        event_loop
            .add_signal_handler(libc::SIGALRM, move || {
                let (number, ref text) = some_args;
                sink.borrow_mut().push((number, text.clone()));
                stopper.stop();
            })
            .unwrap();
        let bound = {
            let stopper = event_loop.clone();
            event_loop.call_later(LONG_TIMER, move || stopper.stop()).unwrap()
        };
        alarm_after(Duration::from_millis(100));
        event_loop.run_forever().unwrap();
        assert_eq!(*received.borrow(), [(42, String::from("forty-two"))]);
        bound.cancel();
        event_loop.close().unwrap();
    }

    fn second_add_replaces_the_first() {
        // unix_events.py add_signal_handler: `self._signal_handlers[sig] =
        // handle` replaces whatever was there.
        let event_loop = new_loop();
        let (first, second) = (Calls::default(), Calls::default());
        let first_alive = Rc::new(());
        {
            let (counter, alive) = (first.clone(), first_alive.clone());
            event_loop
                .add_signal_handler(libc::SIGUSR1, move || {
                    let _ = &alive;
                    counter.bump();
                })
                .unwrap();
        }
        let counter = second.clone();
        event_loop
            .add_signal_handler(libc::SIGUSR1, move || counter.bump())
            .unwrap();
        assert_eq!(
            Rc::strong_count(&first_alive),
            1,
            "the replaced callback was not dropped"
        );
        assert_caught(libc::SIGUSR1, "after the second add");

        send_to_self(libc::SIGUSR1);
        run_until(&event_loop, "the second handler", || second.get() > 0);
        run_for(&event_loop, Duration::from_millis(50));
        assert_eq!((first.get(), second.get()), (0, 1));
        assert!(event_loop.remove_signal_handler(libc::SIGUSR1).unwrap());
        assert!(!event_loop.remove_signal_handler(libc::SIGUSR1).unwrap());
        event_loop.close().unwrap();
    }

    fn remove_returns_true_then_false_and_restores_the_default() {
        // test_unix_events.py: test_remove_signal_handler (the disposition
        // after remove is SIG_DFL, even when it was SIG_IGN before add)
        let event_loop = new_loop();
        set_disposition(libc::SIGUSR2, libc::SIG_IGN);
        let alive = Rc::new(());
        let held = alive.clone();
        event_loop
            .add_signal_handler(libc::SIGUSR2, move || {
                let _ = &held;
            })
            .unwrap();
        assert_caught(libc::SIGUSR2, "after add_signal_handler");
        assert!(event_loop.remove_signal_handler(libc::SIGUSR2).unwrap());
        assert_eq!(
            Rc::strong_count(&alive),
            1,
            "the removed callback was not dropped"
        );
        assert_default(libc::SIGUSR2, "after remove_signal_handler");
        assert!(!event_loop.remove_signal_handler(libc::SIGUSR2).unwrap());
        assert_default(libc::SIGUSR2, "after the second remove_signal_handler");

        // After remove the loop hears nothing of the signal. SIGWINCH's
        // default action is to ignore it, so sending it is harmless.
        let calls = Calls::default();
        let counter = calls.clone();
        event_loop
            .add_signal_handler(libc::SIGWINCH, move || counter.bump())
            .unwrap();
        assert!(event_loop.remove_signal_handler(libc::SIGWINCH).unwrap());
        assert_default(libc::SIGWINCH, "after remove_signal_handler");
        send_to_self(libc::SIGWINCH);
        run_for(&event_loop, Duration::from_millis(100));
        assert_eq!(calls.get(), 0, "a removed handler ran");
        event_loop.close().unwrap();
    }

    fn signal_arriving_after_its_handler_was_removed_is_dropped() {
        // test_unix_events.py: test_handle_signal_no_handler,
        // test_handle_signal_cancelled_handler. SIGUSR1 reaches the pipe, then
        // its handler is removed before the loop reads the pipe (the SIGUSR2
        // handler keeps the pipe open): the byte is read and ignored.
        let event_loop = new_loop();
        let reports: Rc<RefCell<Vec<String>>> = Rc::default();
        let sink = reports.clone();
        event_loop.set_exception_handler(move |_, context| sink.borrow_mut().push(context.to_string()));
        let (usr1, usr2) = (Calls::default(), Calls::default());
        let counter = usr1.clone();
        event_loop
            .add_signal_handler(libc::SIGUSR1, move || counter.bump())
            .unwrap();
        let counter = usr2.clone();
        event_loop
            .add_signal_handler(libc::SIGUSR2, move || counter.bump())
            .unwrap();

        send_to_self(libc::SIGUSR1);
        assert!(event_loop.remove_signal_handler(libc::SIGUSR1).unwrap());
        run_for(&event_loop, Duration::from_millis(100));
        assert_eq!(usr1.get(), 0, "the removed handler ran");
        assert!(reports.borrow().is_empty(), "reported: {:?}", reports.borrow());

        send_to_self(libc::SIGUSR2);
        run_until(&event_loop, "the SIGUSR2 handler", || usr2.get() > 0);
        assert_eq!(usr1.get(), 0);
        event_loop.close().unwrap();
    }

    fn close_removes_every_handler() {
        // test_unix_events.py: test_close (SIGHUP and SIGCHLD there)
        let event_loop = new_loop();
        let signals = [libc::SIGHUP, libc::SIGCHLD, libc::SIGUSR1, libc::SIGUSR2];
        let alive = Rc::new(());
        for signum in signals {
            let held = alive.clone();
            event_loop
                .add_signal_handler(signum, move || {
                    let _ = &held;
                })
                .unwrap();
            assert_caught(signum, "after add_signal_handler");
        }
        event_loop.close().unwrap();
        assert_eq!(Rc::strong_count(&alive), 1, "close kept some callbacks alive");
        for signum in signals {
            assert_default(signum, "after close");
            assert!(!event_loop.remove_signal_handler(signum).unwrap());
        }
        assert_error(
            event_loop.add_signal_handler(libc::SIGUSR1, || {}),
            ErrorKind::Closed,
            "Event loop is closed",
        );
    }

    fn dropping_an_open_loop_removes_its_handlers() {
        // No asyncio counterpart (a garbage-collected loop warns and keeps
        // its handlers until close): dropping the last handle of an open aio
        // loop removes them, so no signal is left writing to a closed pipe.
        let event_loop = new_loop();
        event_loop.add_signal_handler(libc::SIGUSR1, || {}).unwrap();
        event_loop.add_signal_handler(libc::SIGHUP, || {}).unwrap();
        drop(event_loop);
        assert_default(libc::SIGUSR1, "after the loop was dropped");
        assert_default(libc::SIGHUP, "after the loop was dropped");
    }

    fn close_of_a_running_loop_keeps_the_handlers() {
        // unix_events.py close(): `super().close()` raises "Cannot close a
        // running event loop" before any handler is removed.
        let event_loop = new_loop();
        let calls = Calls::default();
        let counter = calls.clone();
        event_loop
            .add_signal_handler(libc::SIGUSR1, move || counter.bump())
            .unwrap();
        let outcome: Rc<RefCell<Option<Result<(), Error>>>> = Rc::default();
        {
            let (slot, inner) = (outcome.clone(), event_loop.clone());
            event_loop
                .call_soon(move || *slot.borrow_mut() = Some(inner.close()))
                .unwrap();
        }
        run_for(&event_loop, Duration::from_millis(20));
        let result = outcome.borrow_mut().take().expect("the callback ran");
        assert_error(
            result,
            ErrorKind::AlreadyRunning,
            "Cannot close a running event loop",
        );
        assert_caught(libc::SIGUSR1, "after a refused close");
        send_to_self(libc::SIGUSR1);
        run_until(&event_loop, "the SIGUSR1 handler", || calls.get() > 0);
        event_loop.close().unwrap();
        assert_default(libc::SIGUSR1, "after close");
    }

    fn panicking_handler_goes_to_the_exception_handler() {
        // base_events.py: a signal handler is a Handle, so an exception in it
        // goes to call_exception_handler and the loop goes on; the handler
        // stays installed.
        let event_loop = new_loop();
        let reports: Rc<RefCell<Vec<ExceptionContext>>> = Rc::default();
        let sink = reports.clone();
        let own_loop = Rc::new(Cell::new(true));
        let same = own_loop.clone();
        event_loop.set_exception_handler(move |handler_loop, context| {
            // Compared with the running loop rather than a captured clone,
            // which would keep the loop alive through its own handler.
            let running = aio::get_running_loop().is_ok_and(|running| running == *handler_loop);
            same.set(same.get() && running);
            sink.borrow_mut().push(context.clone());
        });
        let calls = Calls::default();
        let counter = calls.clone();
        event_loop
            .add_signal_handler(libc::SIGUSR1, move || {
                counter.bump();
                if counter.get() == 1 {
                    panic!("the signal handler gives up");
                }
            })
            .unwrap();

        send_to_self(libc::SIGUSR1);
        run_until(&event_loop, "the exception handler", || {
            !reports.borrow().is_empty()
        });
        {
            let reports = reports.borrow();
            let (message, exception) = (reports[0].message(), reports[0].exception());
            println!("exception handler got: {message:?}, exception {exception:?}");
            assert!(!message.is_empty());
            assert!(
                exception.is_some_and(|text| text.contains("the signal handler gives up")),
                "the panic's message is missing: {exception:?}"
            );
        }
        assert!(own_loop.get(), "the exception handler was given another loop");
        // The loop goes on: callbacks run, and the handler is still there.
        let later = Calls::default();
        let counter = later.clone();
        event_loop.call_soon(move || counter.bump()).unwrap();
        run_until(&event_loop, "a callback after the panic", || later.get() > 0);
        assert_caught(libc::SIGUSR1, "after the handler panicked");
        send_to_self(libc::SIGUSR1);
        run_until(&event_loop, "the second call of the handler", || calls.get() == 2);
        assert_eq!(reports.borrow().len(), 1, "{:?}", reports.borrow());
        event_loop.close().unwrap();
    }

    fn handler_removes_itself() {
        // asyncio runs the handler as a Handle after `_handle_signal`, so
        // `remove_signal_handler(sig)` from inside it returns True and
        // restores SIG_DFL; the handler is gone for good.
        let event_loop = new_loop();
        let outcome: Rc<RefCell<Option<Result<bool, String>>>> = Rc::default();
        let inside: Rc<Cell<Option<libc::sighandler_t>>> = Rc::default();
        let calls = Calls::default();
        let (slot, seen, counter) = (outcome.clone(), inside.clone(), calls.clone());
        event_loop
            .add_signal_handler(libc::SIGUSR1, move || {
                counter.bump();
                let running = aio::get_running_loop().expect("the handler runs on a running loop");
                *slot.borrow_mut() = Some(
                    running
                        .remove_signal_handler(libc::SIGUSR1)
                        .map_err(|e| e.to_string()),
                );
                seen.set(Some(disposition(libc::SIGUSR1)));
            })
            .unwrap();
        send_to_self(libc::SIGUSR1);
        run_until(&event_loop, "the SIGUSR1 handler", || outcome.borrow().is_some());
        run_for(&event_loop, Duration::from_millis(20));
        let from_inside = outcome.borrow_mut().take();
        let during = inside.get().map(describe);
        let after = describe(disposition(libc::SIGUSR1));
        let removed_again = event_loop
            .remove_signal_handler(libc::SIGUSR1)
            .map_err(|e| e.to_string());
        println!(
            "remove from inside the handler: {from_inside:?}; disposition right after it: {during:?}; \
             after the handler returned: {after}; remove afterwards: {removed_again:?}"
        );
        assert_eq!(
            from_inside,
            Some(Ok(true)),
            "remove_signal_handler from inside the handler"
        );
        assert_eq!(
            during.as_deref(),
            Some("SIG_DFL"),
            "the disposition right after the handler removed itself"
        );
        assert_eq!(after, "SIG_DFL", "the disposition after the handler returned");
        assert_eq!(
            removed_again,
            Ok(false),
            "the handler came back after removing itself"
        );
        assert_eq!(calls.get(), 1);
        event_loop.close().unwrap();
    }

    fn handler_replaces_itself() {
        // A handler may call add_signal_handler for its own signal: the new
        // callback takes over from the next signal on.
        let event_loop = new_loop();
        let (first, second) = (Calls::default(), Calls::default());
        let (counter, next) = (first.clone(), second.clone());
        event_loop
            .add_signal_handler(libc::SIGUSR1, move || {
                counter.bump();
                let next = next.clone();
                aio::get_running_loop()
                    .expect("the handler runs on a running loop")
                    .add_signal_handler(libc::SIGUSR1, move || next.bump())
                    .expect("re-adding from inside the handler");
            })
            .unwrap();
        send_to_self(libc::SIGUSR1);
        run_until(&event_loop, "the first handler", || first.get() > 0);
        send_to_self(libc::SIGUSR1);
        run_until(&event_loop, "the replacing handler", || second.get() > 0);
        run_for(&event_loop, Duration::from_millis(20));
        assert_eq!((first.get(), second.get()), (1, 1));
        event_loop.close().unwrap();
    }

    fn handler_removing_the_last_other_handler_keeps_its_own() {
        // The SIGUSR1 handler removes the loop's only other handler
        // (SIGUSR2). SIGUSR1's handler is still registered, so the loop must
        // keep hearing SIGUSR1.
        let event_loop = new_loop();
        let outcome: Rc<RefCell<Option<Result<bool, String>>>> = Rc::default();
        let usr1 = Calls::default();
        let (slot, counter) = (outcome.clone(), usr1.clone());
        event_loop
            .add_signal_handler(libc::SIGUSR1, move || {
                counter.bump();
                if counter.get() == 1 {
                    let running = aio::get_running_loop().expect("the handler runs on a running loop");
                    *slot.borrow_mut() = Some(
                        running
                            .remove_signal_handler(libc::SIGUSR2)
                            .map_err(|e| e.to_string()),
                    );
                }
            })
            .unwrap();
        event_loop.add_signal_handler(libc::SIGUSR2, || {}).unwrap();

        send_to_self(libc::SIGUSR1);
        run_until(&event_loop, "the first SIGUSR1", || usr1.get() == 1);
        assert_eq!(
            outcome.borrow_mut().take(),
            Some(Ok(true)),
            "removing SIGUSR2's handler"
        );
        assert_default(libc::SIGUSR2, "after its handler was removed");
        assert_caught(libc::SIGUSR1, "while its handler is registered");

        println!("the SIGUSR1 handler removed SIGUSR2's; sending SIGUSR1 again");
        send_to_self(libc::SIGUSR1);
        run_until(&event_loop, "the second SIGUSR1", || usr1.get() == 2);
        assert!(event_loop.remove_signal_handler(libc::SIGUSR1).unwrap());
        event_loop.close().unwrap();
    }

    fn each_delivery_runs_the_handler_once() {
        // unix_events.py `_process_self_data` calls `_handle_signal` for every
        // byte the wakeup fd received, so two SIGUSR1 deliveries before the
        // loop runs give two calls (CPython 3.13 prints 2 for this sequence).
        // kill() to this single-threaded process delivers each signal before
        // it returns, so the two are not merged by the kernel.
        let event_loop = new_loop();
        let calls = Calls::default();
        let counter = calls.clone();
        event_loop
            .add_signal_handler(libc::SIGUSR1, move || counter.bump())
            .unwrap();
        send_to_self(libc::SIGUSR1);
        thread::sleep(Duration::from_millis(20));
        send_to_self(libc::SIGUSR1);
        run_until(&event_loop, "the SIGUSR1 handler", || calls.get() > 0);
        run_for(&event_loop, Duration::from_millis(100));
        assert_eq!(calls.get(), 2, "two deliveries, calls");
        event_loop.close().unwrap();
    }

    /// Runs a loop with a handler for `signum` on a new thread: tells `ready`
    /// once the handler is in, runs until it was called, and returns the
    /// thread's id and the id of the thread the handler ran on.
    fn loop_thread(signum: i32, ready: mpsc::Sender<()>) -> JoinHandle<(ThreadId, ThreadId)> {
        thread::spawn(move || {
            let event_loop = new_loop();
            let ran_on: Rc<Cell<Option<ThreadId>>> = Rc::default();
            let slot = ran_on.clone();
            event_loop
                .add_signal_handler(signum, move || slot.set(Some(thread::current().id())))
                .unwrap();
            ready.send(()).expect("the main thread waits");
            run_until(&event_loop, "the handler", || ran_on.get().is_some());
            event_loop.close().unwrap();
            assert_default(signum, "after the thread's loop closed");
            (
                thread::current().id(),
                ran_on.get().expect("checked by run_until"),
            )
        })
    }

    fn two_loops_in_two_threads_each_get_their_signal() {
        // Unlike asyncio (main thread only), any thread's loop may add
        // handlers; two loops with different signals do not disturb each
        // other.
        let (ready, is_ready) = mpsc::channel();
        let usr1 = loop_thread(libc::SIGUSR1, ready.clone());
        let usr2 = loop_thread(libc::SIGUSR2, ready);
        for _ in 0..2 {
            is_ready
                .recv_timeout(WAIT)
                .expect("both loop threads added their handler");
        }
        send_to_self(libc::SIGUSR1);
        send_to_self(libc::SIGUSR2);
        for (handle, what) in [
            (usr1, "the SIGUSR1 loop thread"),
            (usr2, "the SIGUSR2 loop thread"),
        ] {
            let (own, handler) = join_within(handle, what);
            assert_eq!(handler, own, "{what}: the handler ran on another thread");
            assert_ne!(own, thread::current().id());
        }
    }

    fn two_loops_one_signal_the_last_to_add_receives_it() {
        // Two loops, one signal (documented in aio-unix's signals.rs, and
        // asyncio's rule too, since `signal.set_wakeup_fd` is process-wide):
        // the loop that added a handler last receives the signal; the other
        // keeps its registration but hears nothing. When the loop that does
        // not receive it removes its handler, the receiver is unaffected.
        let (first, second) = (new_loop(), new_loop());
        let (first_calls, second_calls) = (Calls::default(), Calls::default());
        let counter = first_calls.clone();
        first
            .add_signal_handler(libc::SIGUSR1, move || counter.bump())
            .unwrap();
        let counter = second_calls.clone();
        second
            .add_signal_handler(libc::SIGUSR1, move || counter.bump())
            .unwrap();

        send_to_self(libc::SIGUSR1);
        run_until(&second, "the second loop's handler", || second_calls.get() == 1);
        run_for(&first, Duration::from_millis(100));
        assert_eq!(
            first_calls.get(),
            0,
            "the first loop heard a signal the second took over"
        );

        assert!(first.remove_signal_handler(libc::SIGUSR1).unwrap());
        assert_caught(libc::SIGUSR1, "after the non-receiving loop removed its handler");
        send_to_self(libc::SIGUSR1);
        run_until(&second, "the second loop's handler again", || {
            second_calls.get() == 2
        });

        assert!(second.remove_signal_handler(libc::SIGUSR1).unwrap());
        assert_default(libc::SIGUSR1, "after both loops removed their handlers");
        first.close().unwrap();
        second.close().unwrap();
    }

    fn two_loops_one_signal_the_receiver_removing_restores_the_default() {
        // The other half of the rule (signals.rs): when the receiving loop
        // removes its handler, the signal goes back to SIG_DFL even though the
        // first loop still has a handler registered; the first loop hears
        // nothing more, and its remove still says true. (asyncio does the
        // same: remove_signal_handler always calls `signal(sig, SIG_DFL)`.)
        // SIGWINCH's default action is to ignore it, so it can be sent after.
        let (first, second) = (new_loop(), new_loop());
        let (first_calls, second_calls) = (Calls::default(), Calls::default());
        let counter = first_calls.clone();
        first
            .add_signal_handler(libc::SIGWINCH, move || counter.bump())
            .unwrap();
        let counter = second_calls.clone();
        second
            .add_signal_handler(libc::SIGWINCH, move || counter.bump())
            .unwrap();

        assert!(second.remove_signal_handler(libc::SIGWINCH).unwrap());
        assert_default(libc::SIGWINCH, "after the receiving loop removed its handler");
        send_to_self(libc::SIGWINCH);
        run_for(&first, Duration::from_millis(100));
        run_for(&second, Duration::from_millis(20));
        assert_eq!((first_calls.get(), second_calls.get()), (0, 0));

        assert!(first.remove_signal_handler(libc::SIGWINCH).unwrap());
        assert_default(libc::SIGWINCH, "after both removed their handlers");
        first.close().unwrap();
        second.close().unwrap();
    }

    fn loop_in_a_non_main_thread_receives_signals() {
        // asyncio refuses add_signal_handler outside the main thread
        // (set_wakeup_fd raises); aio allows a loop in any thread.
        let (ready, is_ready) = mpsc::channel();
        let worker = loop_thread(libc::SIGUSR1, ready);
        is_ready
            .recv_timeout(WAIT)
            .expect("the loop thread added its handler");
        assert_caught(libc::SIGUSR1, "after the thread's loop added its handler");
        send_to_self(libc::SIGUSR1);
        let (own, handler) = join_within(worker, "the loop thread");
        assert_eq!(handler, own, "the handler ran on another thread than its loop's");
        assert_ne!(own, thread::current().id());
        assert_default(libc::SIGUSR1, "after the thread's loop closed");
    }

    fn sigint_handler_added_inside_run_receives_every_sigint() {
        // asyncio.run installs its Ctrl-C handler with signal.signal; a
        // loop.add_signal_handler(SIGINT, ...) inside main replaces it, so
        // every SIGINT goes to the user's callback, none cancels main or ends
        // the process (CPython 3.13: two SIGINTs, two calls, run returns), and
        // SIGINT has its default disposition after run.
        set_disposition(libc::SIGINT, libc::SIG_DFL);
        let result = aio::run(async {
            let calls = Calls::default();
            let counter = calls.clone();
            aio::get_running_loop()
                .expect("inside run")
                .add_signal_handler(libc::SIGINT, move || counter.bump())
                .expect("add a SIGINT handler inside run");
            for expected in 1..=3 {
                println!("sending SIGINT number {expected}");
                send_to_self(libc::SIGINT);
                let start = Instant::now();
                while calls.get() < expected {
                    assert!(
                        start.elapsed() < WAIT,
                        "SIGINT number {expected} never reached the handler"
                    );
                    aio::sleep(Duration::from_millis(10)).await;
                }
            }
            calls.get()
        });
        assert_eq!(result.expect("run returns normally"), 3);
        assert_default(libc::SIGINT, "after run");
    }
}
