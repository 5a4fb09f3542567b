//! The child watchers (`aio::unix::{PidfdChildWatcher, ThreadedChildWatcher,
//! SafeChildWatcher, FastChildWatcher}`) and the default policy's watcher
//! slot, with real children (`true`, `sh -c 'exit N'`, `sleep`, killed with
//! real signals) and a real loop: asyncio's `ChildWatcherTestsMixin` (run
//! against Safe and Fast), `PolicyTests` (`test_unix_events.py`) and
//! `GenericWatcherTests.test_create_subprocess_with_pidfd`
//! (`test_subprocess.py`), plus the same mixin's cases re-expressed for the
//! pidfd and threaded watchers, which asyncio only covers through its
//! subprocess suite. asyncio mocks `os.waitpid`; here the kernel answers.
//!
//! A `harness = false` binary because SIGCHLD dispositions and reaping are
//! process-global: a Fast watcher reaps every child of the process, and a
//! SIGCHLD handler of one case would see the children of another. So `main`
//! runs each case in a child process of this same binary (`--child NAME`),
//! one at a time, and kills it after 30 s. Within a case every wait is
//! bounded too (10 s), and "never reported" is checked by running the loop
//! for a while (a lower bound that only misses a late report, never invents
//! one).
//!
//! Output: one `case NAME ... ok` or `case NAME ... FAILED: WHY` line per
//! case (with the child's output after a failure), then `N passed, M
//! failed`; the exit status is non-zero when anything failed.
//!
//! Usage: `watchers [FILTER]` runs the cases whose name contains FILTER;
//! `--list` lists them. The command line, the child processes and the output
//! are `harness.rs`'s, shared with the other `harness = false` suites.
//!
//! Not ported: `test_sigchld_unknown_status` (a raw status the kernel never
//! produces: the fallback is kept in the code but cannot be provoked),
//! `test_sigchld_unhandled_exception` (a `waitpid` that fails with something
//! other than ECHILD cannot be provoked either; the nearest real case, a
//! callback that panics, is `*_panicking_callback`), and the
//! `DeprecationWarning`s (aio's watchers are not deprecated).

#[cfg(target_os = "linux")]
#[path = "harness.rs"]
mod harness;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("\n0 passed, 0 failed (the watcher tests use pidfds and /proc: Linux only)");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs::{self, File};
    use std::io;
    use std::process::{Command, ExitCode, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, PoisonError, mpsc};
    use std::thread::{self, ThreadId};
    use std::time::{Duration, Instant};

    use aio::unix::{
        ChildWatcher, FastChildWatcher, PidfdChildWatcher, SafeChildWatcher, ThreadedChildWatcher,
        can_use_pidfd,
    };
    use aio::{Error, ErrorKind, EventLoop};

    use crate::harness;

    /// How long a child case may run before it is killed and fails.
    const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

    /// How long a case waits for a report, an exit or a thread.
    const WAIT: Duration = Duration::from_secs(10);

    /// How long the loop runs to show that something is *not* reported.
    const QUIET: Duration = Duration::from_millis(300);

    const SIGCHLD: i32 = libc::SIGCHLD;

    struct Case {
        name: &'static str,
        run: fn(),
    }

    macro_rules! cases {
        ($($name:ident),* $(,)?) => {
            &[$(Case { name: stringify!($name), run: $name }),*]
        };
    }

    const CASES: &[Case] = cases![
        // PidfdChildWatcher
        pidfd_reports_exit_code,
        pidfd_two_children,
        pidfd_two_children_terminating_together,
        pidfd_child_exited_before_registration,
        pidfd_replace_handler,
        pidfd_remove_handler,
        pidfd_child_reaped_elsewhere,
        pidfd_unknown_pid,
        pidfd_refuses_bad_calls,
        pidfd_open_failure_is_an_error,
        pidfd_loop_in_a_non_main_thread,
        pidfd_close_is_a_no_op,
        pidfd_loop_closed_before_exit,
        pidfd_can_use_pidfd,
        // ThreadedChildWatcher
        threaded_reports_exit_code,
        threaded_two_children,
        threaded_child_reaped_elsewhere,
        threaded_replace_handler,
        threaded_remove_handler,
        threaded_close_joins_nothing,
        threaded_refuses_bad_calls,
        threaded_loop_in_a_non_main_thread,
        threaded_loop_closed_before_exit,
        // SafeChildWatcher
        safe_create_watcher,
        safe_sigchld,
        safe_sigchld_two_children,
        safe_sigchld_two_children_terminating_together,
        safe_sigchld_race_condition,
        safe_sigchld_replace_handler,
        safe_sigchld_remove_handler,
        safe_remove_child_handler,
        safe_sigchld_child_reaped_elsewhere,
        safe_set_loop,
        safe_set_loop_race_condition,
        safe_close,
        safe_refuses_registration_when_detached,
        safe_detach_from_another_thread,
        safe_inactive_once_its_loop_closes,
        safe_panicking_callback,
        // FastChildWatcher
        fast_create_watcher,
        fast_sigchld,
        fast_sigchld_two_children,
        fast_sigchld_two_children_terminating_together,
        fast_sigchld_race_condition,
        fast_sigchld_replace_handler,
        fast_sigchld_remove_handler,
        fast_remove_child_handler,
        fast_sigchld_child_reaped_elsewhere,
        fast_sigchld_unknown_pid_during_registration,
        fast_set_loop,
        fast_set_loop_race_condition,
        fast_close,
        fast_refuses_registration_when_detached,
        fast_panicking_callback,
        // UnixDefaultEventLoopPolicy
        policy_get_default_child_watcher,
        policy_get_child_watcher_after_set,
        policy_set_child_watcher_closes_the_previous_one,
        policy_set_child_watcher_none_brings_a_new_default,
        policy_get_child_watcher_thread,
        policy_child_watcher_replace_mainloop_existing,
        policy_watchers_serve_loops_in_non_main_threads,
    ];

    pub(crate) fn main() -> ExitCode {
        let args = harness::Args::parse("--child", harness::LIBTEST_FLAGS_WITH_VALUES);
        if let Some(name) = &args.child {
            std::panic::set_hook(Box::new(|info| eprintln!("panicked: {info}")));
            return harness::run_child_case(
                CASES,
                name,
                |case| case.name,
                |case| {
                    install_logger();
                    (case.run)()
                },
            );
        }
        if args.list {
            return harness::list(CASES.iter().map(|case| case.name));
        }
        let selected = harness::select(CASES, args.filter.as_deref(), |case| case.name);
        harness::run_cases(
            &selected,
            |case| case.name,
            |case| harness::run_child(case.name, CHILD_TIMEOUT, |_| {})?.verdict(),
        )
    }

    // -----------------------------------------------------------------------
    // Logs: the watchers warn through `log`; a case checks the words.
    // -----------------------------------------------------------------------

    static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            let line = format!("{} {}", record.level(), record.args());
            eprintln!("log: {line}");
            LOGS.lock().unwrap_or_else(PoisonError::into_inner).push(line);
        }
        fn flush(&self) {}
    }

    static LOGGER: Capture = Capture;

    fn install_logger() {
        log::set_logger(&LOGGER).expect("the only logger of this process");
        log::set_max_level(log::LevelFilter::Debug);
    }

    fn logged(text: &str) -> bool {
        LOGS.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|line| line.contains(text))
    }

    fn assert_logged(text: &str) {
        assert!(logged(text), "expected a log line containing {text:?}");
    }

    fn assert_warned_255(pid: u32) {
        assert_logged(&format!(
            "WARN Unknown child process pid {pid}, will report returncode 255"
        ));
    }

    // -----------------------------------------------------------------------
    // Children, reports, and running the loop
    // -----------------------------------------------------------------------

    fn spawn(program: &str, args: &[&str]) -> u32 {
        // `std::process::Child` does not wait on drop: the pid is the
        // watcher's (or the case's) to reap.
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {program}: {err}"))
            .id()
    }

    /// A child that exits with `code` at once.
    fn exiting(code: i32) -> u32 {
        spawn("sh", &["-c", &format!("exit {code}")])
    }

    /// A child that runs until it is killed (or for a minute).
    fn sleeping() -> u32 {
        spawn("sleep", &["60"])
    }

    fn kill(pid: u32, signum: i32) {
        // SAFETY: `kill` takes plain integers; the pid is a child of ours
        // that nobody has reaped, so it names no other process.
        let rc = unsafe { libc::kill(pid as libc::pid_t, signum) };
        assert_eq!(rc, 0, "kill({pid}, {signum}): {}", io::Error::last_os_error());
    }

    /// `waitid(P_PID, pid, WEXITED | WNOHANG | WNOWAIT)`: whether `pid` is
    /// an exited child that nobody has reaped; `None` if it is no child of
    /// ours (any more).
    fn exited_unreaped(pid: u32) -> Option<bool> {
        // SAFETY: zeroed is a valid `siginfo_t` out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid out-parameter; WNOWAIT leaves the child
        // as it is.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if rc != 0 {
            assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::ECHILD));
            return None;
        }
        // SAFETY: `waitid` filled `info` (or left it zeroed: no exit yet).
        Some(unsafe { info.si_pid() } == pid as libc::pid_t)
    }

    /// Waits (bounded) until `pid` has exited, without reaping it.
    fn wait_exited(pid: u32) {
        let deadline = Instant::now() + WAIT;
        while exited_unreaped(pid) != Some(true) {
            assert!(
                Instant::now() < deadline,
                "child {pid} did not exit within {WAIT:?}"
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Reaps `pid` here, as "other code" would: its asyncio return code.
    fn reap_here(pid: u32) -> i32 {
        wait_exited(pid);
        let mut status = 0;
        // SAFETY: `status` is a valid out-parameter; the child has exited,
        // so this does not block.
        let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        assert_eq!(
            rc,
            pid as libc::pid_t,
            "waitpid({pid}): {}",
            io::Error::last_os_error()
        );
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -libc::WTERMSIG(status)
        }
    }

    /// Asserts that `pid` has been reaped (it is no child of ours any more).
    fn assert_reaped(pid: u32) {
        assert_eq!(exited_unreaped(pid), None, "child {pid} was not reaped");
    }

    /// Waits (bounded) until `pid` has been reaped by somebody.
    fn wait_reaped(pid: u32) {
        let deadline = Instant::now() + WAIT;
        while exited_unreaped(pid).is_some() {
            assert!(
                Instant::now() < deadline,
                "child {pid} was not reaped within {WAIT:?}"
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Report {
        pid: u32,
        code: i32,
        thread: ThreadId,
    }

    /// What callbacks reported, and on which thread.
    #[derive(Clone, Default)]
    struct Reports(Arc<Mutex<Vec<Report>>>);

    impl Reports {
        fn callback(&self) -> Box<dyn FnOnce(u32, i32) + Send> {
            let reports = self.clone();
            Box::new(move |pid, code| {
                reports.lock().push(Report {
                    pid,
                    code,
                    thread: thread::current().id(),
                })
            })
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Report>> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }

        fn len(&self) -> usize {
            self.lock().len()
        }

        /// `(pid, code)` pairs, sorted by pid.
        fn codes(&self) -> Vec<(u32, i32)> {
            let mut codes: Vec<(u32, i32)> = self.lock().iter().map(|r| (r.pid, r.code)).collect();
            codes.sort_unstable();
            codes
        }

        fn assert_on(&self, thread: ThreadId) {
            for report in self.lock().iter() {
                assert_eq!(report.thread, thread, "{report:?} ran on another thread");
            }
        }
    }

    fn new_loop() -> EventLoop {
        aio::SelectorEventLoop::new().expect("a new loop")
    }

    /// Runs `event_loop` until `done` (checked every 2 ms), at most [`WAIT`].
    fn run_until(event_loop: &EventLoop, what: &str, mut done: impl FnMut() -> bool + 'static) {
        let finished = event_loop
            .run_until_complete(async move {
                let deadline = Instant::now() + WAIT;
                loop {
                    if done() {
                        return true;
                    }
                    if Instant::now() > deadline {
                        return false;
                    }
                    aio::sleep(Duration::from_millis(2)).await;
                }
            })
            .expect("run the loop");
        assert!(finished, "timed out after {WAIT:?} waiting for {what}");
    }

    /// Runs `event_loop` until `reports` holds `count` reports.
    fn run_until_reports(event_loop: &EventLoop, reports: &Reports, count: usize) {
        let watched = reports.clone();
        run_until(event_loop, &format!("{count} report(s)"), move || {
            watched.len() >= count
        });
    }

    /// Runs `event_loop` for `duration`.
    fn run_for(event_loop: &EventLoop, duration: Duration) {
        event_loop
            .run_until_complete(aio::sleep(duration))
            .expect("run the loop");
    }

    /// `watcher.add_child_handler(pid, callback)` called inside the running
    /// loop, as a subprocess transport calls it.
    fn register<W: ChildWatcher + ?Sized>(
        event_loop: &EventLoop,
        watcher: &Arc<W>,
        pid: u32,
        callback: Box<dyn FnOnce(u32, i32) + Send>,
    ) -> Result<(), Error> {
        let watcher = Arc::clone(watcher);
        event_loop
            .run_until_complete(async move { watcher.add_child_handler(pid, callback) })
            .expect("run the loop")
    }

    fn sigchld_disposition_is_default() -> bool {
        // SAFETY: zeroed is a valid out-parameter; a null new action only
        // reads the current one.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(SIGCHLD, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_DFL
        }
    }

    /// The names of this process's threads.
    fn thread_names() -> Vec<String> {
        let mut names = Vec::new();
        for entry in fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .flatten()
        {
            if let Ok(name) = fs::read_to_string(entry.path().join("comm")) {
                names.push(name.trim_end().to_owned());
            }
        }
        names
    }

    fn waitpid_threads(pid: u32) -> usize {
        let name = format!("waitpid-{pid}");
        thread_names().iter().filter(|n| **n == name).count()
    }

    /// How many pidfds this process holds.
    fn open_pidfds() -> usize {
        fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .flatten()
            .filter(|entry| {
                fs::read_link(entry.path()).is_ok_and(|target| target.to_string_lossy().contains("pidfd"))
            })
            .count()
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for {what}"
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    // -----------------------------------------------------------------------
    // PidfdChildWatcher
    // -----------------------------------------------------------------------

    fn pidfd_reports_exit_code() {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld, for the
        // pidfd watcher: one exit, reported once, on the loop's thread; the
        // pidfd is closed and the child reaped afterwards.
        let event_loop = new_loop();
        let watcher = Arc::new(PidfdChildWatcher::new());
        assert!(watcher.is_active());
        let reports = Reports::default();
        let pid = exiting(12);
        register(&event_loop, &watcher, pid, reports.callback()).expect("add_child_handler");
        run_until_reports(&event_loop, &reports, 1);
        run_for(&event_loop, QUIET);
        assert_eq!(reports.codes(), [(pid, 12)]);
        reports.assert_on(thread::current().id());
        assert_reaped(pid);
        assert_eq!(open_pidfds(), 0, "the pidfd was not closed");
        assert_eq!(waitpid_threads(pid), 0, "the pidfd watcher started a thread");
        event_loop.close().expect("close");
    }

    fn pidfd_two_children() {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_two_children:
        // a child killed by a signal is -signum, the other's exit code is
        // reported separately, later.
        let event_loop = new_loop();
        let watcher = Arc::new(PidfdChildWatcher::new());
        let (first, second) = (Reports::default(), Reports::default());
        let killed = sleeping();
        let exits = sleeping();
        register(&event_loop, &watcher, killed, first.callback()).expect("add 1");
        register(&event_loop, &watcher, exits, second.callback()).expect("add 2");
        run_for(&event_loop, QUIET);
        assert_eq!(first.len() + second.len(), 0, "reported while running");
        kill(killed, libc::SIGKILL);
        run_until_reports(&event_loop, &first, 1);
        assert_eq!(first.codes(), [(killed, -9)]);
        assert_eq!(second.len(), 0);
        kill(exits, libc::SIGTERM);
        run_until_reports(&event_loop, &second, 1);
        run_for(&event_loop, QUIET);
        assert_eq!(first.codes(), [(killed, -9)]);
        assert_eq!(second.codes(), [(exits, -15)]);
        assert_eq!(open_pidfds(), 0);
        event_loop.close().expect("close");
    }

    fn pidfd_two_children_terminating_together() {
        // test_unix_events.py:
        // ChildWatcherTestsMixin.test_sigchld_two_children_terminating_together:
        // both exits are seen in one pass.
        let event_loop = new_loop();
        let watcher = Arc::new(PidfdChildWatcher::new());
        let reports = Reports::default();
        let (a, b) = (sleeping(), sleeping());
        register(&event_loop, &watcher, a, reports.callback()).expect("add a");
        register(&event_loop, &watcher, b, reports.callback()).expect("add b");
        kill(a, libc::SIGKILL);
        kill(b, libc::SIGTERM);
        wait_exited(a);
        wait_exited(b);
        run_until_reports(&event_loop, &reports, 2);
        let mut expected = vec![(a, -9), (b, -15)];
        expected.sort_unstable();
        assert_eq!(reports.codes(), expected);
        event_loop.close().expect("close");
    }

    fn pidfd_child_exited_before_registration() {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_race_condition:
        // a child that exited before it was registered is still reported.
        let event_loop = new_loop();
        let watcher = Arc::new(PidfdChildWatcher::new());
        let reports = Reports::default();
        let pid = exiting(4);
        wait_exited(pid);
        register(&event_loop, &watcher, pid, reports.callback()).expect("add_child_handler");
        run_until_reports(&event_loop, &reports, 1);
        assert_eq!(reports.codes(), [(pid, 4)]);
        assert_reaped(pid);
        event_loop.close().expect("close");
    }

    fn pidfd_replace_handler() {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_replace_handler:
        // registering a pid again replaces its callback.
        let event_loop = new_loop();
        let watcher = Arc::new(PidfdChildWatcher::new());
        let (first, second) = (Reports::default(), Reports::default());
        let pid = sleeping();
        register(&event_loop, &watcher, pid, first.callback()).expect("add 1");
        register(&event_loop, &watcher, pid, second.callback()).expect("add 2");
        kill(pid, libc::SIGTERM);
        run_until_reports(&event_loop, &second, 1);
        run_for(&event_loop, QUIET);
        assert_eq!(second.codes(), [(pid, -15)]);
        assert_eq!(first.len(), 0, "the replaced callback ran");
        assert_reaped(pid);
        assert_eq!(
            open_pidfds(),
            0,
            "the replaced registration's pidfd is still open"
        );
        event_loop.close().expect("close");
    }

    fn pidfd_remove_handler() {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_remove_handler
        // and test_remove_child_handler: a removed handler never runs,
        // removing says whether there was one, and the watcher leaves the
        // child to whoever waits for it now.
        let event_loop = new_loop();
        let watcher = Arc::new(PidfdChildWatcher::new());
        let (removed, kept) = (Reports::default(), Reports::default());
        // Sleeping, so that neither exits while `register` runs the loop.
        let a = sleeping();
        let b = sleeping();
        register(&event_loop, &watcher, a, removed.callback()).expect("add a");
        register(&event_loop, &watcher, b, kept.callback()).expect("add b");
        assert!(watcher.remove_child_handler(a));
        assert!(!watcher.remove_child_handler(a));
        assert!(!watcher.remove_child_handler(a));
        kill(a, libc::SIGKILL);
        kill(b, libc::SIGTERM);
        wait_exited(a);
        run_until_reports(&event_loop, &kept, 1);
        run_for(&event_loop, QUIET);
        assert_eq!(removed.len(), 0, "a removed handler ran");
        assert_eq!(kept.codes(), [(b, -15)]);
        assert_eq!(reap_here(a), -9, "the child of a removed handler was reaped");
        assert_eq!(open_pidfds(), 0, "the removed registration's pidfd is still open");
        event_loop.close().expect("close");
    }

    fn pidfd_child_reaped_elsewhere() {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_child_reaped_elsewhere
        // (Safe's expectation, which asyncio's PidfdChildWatcher shares):
        // 255 with a warning, whether the child was reaped after its
        // registration or before it.
        let event_loop = new_loop();
        let watcher = Arc::new(PidfdChildWatcher::new());
        let reports = Reports::default();
        // Sleeping, so that it cannot exit while `register` runs the loop:
        // here it is killed and reaped while the loop does not run.
        let after = sleeping();
        register(&event_loop, &watcher, after, reports.callback()).expect("add after");
        kill(after, libc::SIGKILL);
        assert_eq!(reap_here(after), -9);
        let before = exiting(5);
        assert_eq!(reap_here(before), 5);
        register(&event_loop, &watcher, before, reports.callback()).expect("add before");
        run_until_reports(&event_loop, &reports, 2);
        let mut expected = vec![(after, 255), (before, 255)];
        expected.sort_unstable();
        assert_eq!(reports.codes(), expected);
        reports.assert_on(thread::current().id());
        assert_warned_255(after);
        assert_warned_255(before);
        assert_eq!(open_pidfds(), 0);
        event_loop.close().expect("close");
    }

    fn pidfd_unknown_pid() {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_unknown_pid_during_registration
        // (the "unknown pid" half): a live process that is no child of ours
        // (our parent, the harness) is reported at once as 255, not when it
        // exits.
        let event_loop = new_loop();
        let watcher = Arc::new(PidfdChildWatcher::new());
        let reports = Reports::default();
        // SAFETY: `getppid` has no preconditions.
        let parent = unsafe { libc::getppid() } as u32;
        register(&event_loop, &watcher, parent, reports.callback()).expect("add_child_handler");
        run_until_reports(&event_loop, &reports, 1);
        assert_eq!(reports.codes(), [(parent, 255)]);
        assert_warned_255(parent);
        assert_eq!(open_pidfds(), 0);
        event_loop.close().expect("close");
    }

    fn pidfd_refuses_bad_calls() {
        // asyncio's PidfdChildWatcher.add_child_handler calls
        // events.get_running_loop() (RuntimeError outside a loop) and
        // os.pidfd_open(pid) (ValueError/OSError for a bad pid).
        let watcher = Arc::new(PidfdChildWatcher::new());
        let pid = exiting(0);
        let reports = Reports::default();
        let err = watcher
            .add_child_handler(pid, reports.callback())
            .expect_err("outside a running loop");
        assert_eq!(err.kind(), ErrorKind::NoRunningLoop, "{err}");
        assert!(err.to_string().contains("no running event loop"), "{err}");
        let event_loop = new_loop();
        for bad in [0, u32::MAX, 1 << 31] {
            let err = register(&event_loop, &watcher, bad, reports.callback()).expect_err("a bad pid");
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
            assert!(err.to_string().contains(&format!("invalid pid {bad}")), "{err}");
        }
        assert!(!watcher.remove_child_handler(pid));
        run_for(&event_loop, QUIET);
        assert_eq!(reports.len(), 0);
        assert_eq!(reap_here(pid), 0, "a refused registration reaped the child");
        event_loop.close().expect("close");
    }

    fn pidfd_open_failure_is_an_error() {
        // Our own: a pidfd_open failure other than "no such process" is an
        // Io error that names it, and leaves nothing registered. Out of
        // descriptors is a real way to get one.
        let event_loop = new_loop();
        let watcher = Arc::new(PidfdChildWatcher::new());
        let reports = Reports::default();
        let pid = sleeping();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid out-parameter.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        let saved = limit;
        limit.rlim_cur = 256.min(saved.rlim_cur);
        // SAFETY: `limit` is initialised; lowering the soft limit is allowed.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
        let mut fillers = Vec::new();
        loop {
            match File::open("/dev/null") {
                Ok(file) => fillers.push(file),
                Err(err) if err.raw_os_error() == Some(libc::EMFILE) => break,
                Err(err) => panic!("open /dev/null: {err}"),
            }
        }
        let result = register(&event_loop, &watcher, pid, reports.callback());
        drop(fillers);
        // SAFETY: as above; raising back to the saved soft limit is allowed.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &saved) }, 0);
        let err = result.expect_err("pidfd_open with no descriptor left");
        assert_eq!(err.kind(), ErrorKind::Io, "{err}");
        assert!(err.to_string().contains("pidfd_open"), "{err}");
        assert!(err.to_string().contains(&pid.to_string()), "{err}");
        assert!(
            !watcher.remove_child_handler(pid),
            "a failed registration was kept"
        );
        kill(pid, libc::SIGKILL);
        assert_eq!(reap_here(pid), -9);
        run_for(&event_loop, QUIET);
        assert_eq!(reports.len(), 0);
        event_loop.close().expect("close");
    }

    fn pidfd_loop_in_a_non_main_thread() {
        // test_subprocess.py: GenericWatcherTests.test_create_subprocess_with_pidfd:
        // the pidfd watcher serves a loop running in another thread, and
        // reports there.
        let watcher = Arc::new(PidfdChildWatcher::new());
        let shared = Arc::clone(&watcher);
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let event_loop = new_loop();
            let reports = Reports::default();
            let pid = exiting(7);
            register(&event_loop, &shared, pid, reports.callback()).expect("add_child_handler");
            run_until_reports(&event_loop, &reports, 1);
            reports.assert_on(thread::current().id());
            event_loop.close().expect("close");
            let _ = sender.send((pid, reports.codes()));
        });
        let (pid, codes) = receiver.recv_timeout(WAIT * 2).expect("the thread's report");
        assert_eq!(codes, [(pid, 7)]);
        assert_reaped(pid);
    }

    fn pidfd_close_is_a_no_op() {
        // test_unix_events.py: ChildWatcherTestsMixin.test_close, as
        // asyncio's PidfdChildWatcher.close does it: nothing (children in
        // flight are still reported, the watcher stays usable).
        let event_loop = new_loop();
        let watcher = Arc::new(PidfdChildWatcher::new());
        let reports = Reports::default();
        let pid = sleeping();
        register(&event_loop, &watcher, pid, reports.callback()).expect("add 1");
        watcher.close();
        watcher.attach_loop(None);
        assert!(watcher.is_active());
        let later = exiting(3);
        register(&event_loop, &watcher, later, reports.callback()).expect("add 2");
        kill(pid, libc::SIGKILL);
        run_until_reports(&event_loop, &reports, 2);
        let mut expected = vec![(pid, -9), (later, 3)];
        expected.sort_unstable();
        assert_eq!(reports.codes(), expected);
        event_loop.close().expect("close");
    }

    fn pidfd_loop_closed_before_exit() {
        // Our own: when the loop closes before its child exits, the child is
        // still reaped (on a thread of the watcher's) and nothing is reported.
        let event_loop = new_loop();
        let watcher = Arc::new(PidfdChildWatcher::new());
        let reports = Reports::default();
        let pid = sleeping();
        register(&event_loop, &watcher, pid, reports.callback()).expect("add_child_handler");
        event_loop.close().expect("close");
        assert_logged(&format!("Loop that handles pid {pid} is closed"));
        kill(pid, libc::SIGKILL);
        wait_reaped(pid);
        assert_eq!(reports.len(), 0);
        wait_until("the pidfd to close", || open_pidfds() == 0);
        assert!(!watcher.remove_child_handler(pid));
    }

    fn pidfd_can_use_pidfd() {
        // test_unix_events.py: the skip condition of the pidfd tests,
        // unix_events.can_use_pidfd(): true on this kernel, and stable.
        assert!(can_use_pidfd(), "this machine's kernel has pidfd_open");
        assert!(can_use_pidfd());
        assert_eq!(open_pidfds(), 0, "the probe's pidfd leaked");
    }

    // -----------------------------------------------------------------------
    // ThreadedChildWatcher
    // -----------------------------------------------------------------------

    fn threaded_reports_exit_code() {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld, for the
        // threaded watcher: a thread named waitpid-PID waits, the callback
        // runs once on the loop's thread, and the thread ends.
        let event_loop = new_loop();
        let watcher = Arc::new(ThreadedChildWatcher::new());
        assert!(watcher.is_active());
        let reports = Reports::default();
        let pid = sleeping();
        register(&event_loop, &watcher, pid, reports.callback()).expect("add_child_handler");
        wait_until("the waitpid thread", || waitpid_threads(pid) == 1);
        run_for(&event_loop, QUIET);
        assert_eq!(reports.len(), 0, "reported while running");
        kill(pid, libc::SIGKILL);
        run_until_reports(&event_loop, &reports, 1);
        run_for(&event_loop, QUIET);
        assert_eq!(reports.codes(), [(pid, -9)]);
        reports.assert_on(thread::current().id());
        assert_reaped(pid);
        wait_until("the waitpid thread to end", || waitpid_threads(pid) == 0);
        event_loop.close().expect("close");
    }

    fn threaded_two_children() {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_two_children.
        let event_loop = new_loop();
        let watcher = Arc::new(ThreadedChildWatcher::new());
        let (first, second) = (Reports::default(), Reports::default());
        let killed = sleeping();
        let exits = exiting(108);
        register(&event_loop, &watcher, killed, first.callback()).expect("add 1");
        register(&event_loop, &watcher, exits, second.callback()).expect("add 2");
        run_until_reports(&event_loop, &second, 1);
        assert_eq!(second.codes(), [(exits, 108)]);
        assert_eq!(first.len(), 0);
        kill(killed, libc::SIGUSR1);
        run_until_reports(&event_loop, &first, 1);
        run_for(&event_loop, QUIET);
        assert_eq!(first.codes(), [(killed, -libc::SIGUSR1)]);
        assert_eq!(second.codes(), [(exits, 108)]);
        event_loop.close().expect("close");
    }

    fn threaded_child_reaped_elsewhere() {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_child_reaped_elsewhere
        // (Safe's expectation; asyncio's ThreadedChildWatcher has the same
        // ChildProcessError branch): 255 with a warning.
        let event_loop = new_loop();
        let watcher = Arc::new(ThreadedChildWatcher::new());
        let reports = Reports::default();
        let pid = exiting(4);
        assert_eq!(reap_here(pid), 4);
        register(&event_loop, &watcher, pid, reports.callback()).expect("add_child_handler");
        run_until_reports(&event_loop, &reports, 1);
        assert_eq!(reports.codes(), [(pid, 255)]);
        assert_warned_255(pid);
        event_loop.close().expect("close");
    }

    fn threaded_replace_handler() {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_replace_handler:
        // only the second callback runs, and one thread waits, not two.
        let event_loop = new_loop();
        let watcher = Arc::new(ThreadedChildWatcher::new());
        let (first, second) = (Reports::default(), Reports::default());
        let pid = sleeping();
        register(&event_loop, &watcher, pid, first.callback()).expect("add 1");
        register(&event_loop, &watcher, pid, second.callback()).expect("add 2");
        wait_until("the waitpid thread", || waitpid_threads(pid) >= 1);
        thread::sleep(Duration::from_millis(50));
        assert_eq!(waitpid_threads(pid), 1, "a second thread waits for the same pid");
        kill(pid, libc::SIGALRM);
        run_until_reports(&event_loop, &second, 1);
        run_for(&event_loop, QUIET);
        assert_eq!(second.codes(), [(pid, -libc::SIGALRM)]);
        assert_eq!(first.len(), 0, "the replaced callback ran");
        event_loop.close().expect("close");
    }

    fn threaded_remove_handler() {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_remove_handler
        // and test_remove_child_handler: the callback goes (true once, then
        // false), the waiting thread stays and still reaps the child.
        let event_loop = new_loop();
        let watcher = Arc::new(ThreadedChildWatcher::new());
        let (removed, kept) = (Reports::default(), Reports::default());
        let a = sleeping();
        let b = sleeping();
        register(&event_loop, &watcher, a, removed.callback()).expect("add a");
        register(&event_loop, &watcher, b, kept.callback()).expect("add b");
        assert!(watcher.remove_child_handler(a));
        assert!(!watcher.remove_child_handler(a));
        assert!(!watcher.remove_child_handler(a));
        kill(a, libc::SIGKILL);
        kill(b, libc::SIGKILL);
        run_until_reports(&event_loop, &kept, 1);
        run_for(&event_loop, QUIET);
        assert_eq!(removed.len(), 0, "a removed handler ran");
        assert_eq!(kept.codes(), [(b, -9)]);
        wait_reaped(a);
        event_loop.close().expect("close");
    }

    fn threaded_close_joins_nothing() {
        // test_unix_events.py: ChildWatcherTestsMixin.test_close, as
        // asyncio's ThreadedChildWatcher.close does it (`pass`): it returns
        // at once while a thread waits, and the child is still reported.
        let event_loop = new_loop();
        let watcher = Arc::new(ThreadedChildWatcher::new());
        let reports = Reports::default();
        let pid = sleeping();
        register(&event_loop, &watcher, pid, reports.callback()).expect("add_child_handler");
        wait_until("the waitpid thread", || waitpid_threads(pid) == 1);
        let start = Instant::now();
        watcher.close();
        assert!(start.elapsed() < Duration::from_secs(1), "close waited");
        assert!(watcher.is_active());
        kill(pid, libc::SIGKILL);
        run_until_reports(&event_loop, &reports, 1);
        assert_eq!(reports.codes(), [(pid, -9)]);
        event_loop.close().expect("close");
    }

    fn threaded_refuses_bad_calls() {
        // asyncio's ThreadedChildWatcher.add_child_handler calls
        // events.get_running_loop(): RuntimeError outside a running loop.
        let watcher = Arc::new(ThreadedChildWatcher::new());
        let reports = Reports::default();
        let pid = exiting(0);
        let err = watcher
            .add_child_handler(pid, reports.callback())
            .expect_err("outside a running loop");
        assert_eq!(err.kind(), ErrorKind::NoRunningLoop, "{err}");
        let event_loop = new_loop();
        let err = register(&event_loop, &watcher, 0, reports.callback()).expect_err("pid 0");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert_eq!(waitpid_threads(0), 0);
        assert_eq!(reap_here(pid), 0, "a refused registration reaped the child");
        event_loop.close().expect("close");
    }

    fn threaded_loop_in_a_non_main_thread() {
        // asyncio's docs for ThreadedChildWatcher: "It works reliably even
        // when the asyncio event loop is run in a non-main OS thread."
        let watcher = Arc::new(ThreadedChildWatcher::new());
        let shared = Arc::clone(&watcher);
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let event_loop = new_loop();
            let reports = Reports::default();
            let pid = exiting(9);
            register(&event_loop, &shared, pid, reports.callback()).expect("add_child_handler");
            run_until_reports(&event_loop, &reports, 1);
            reports.assert_on(thread::current().id());
            event_loop.close().expect("close");
            let _ = sender.send((pid, reports.codes()));
        });
        let (pid, codes) = receiver.recv_timeout(WAIT * 2).expect("the thread's report");
        assert_eq!(codes, [(pid, 9)]);
    }

    fn threaded_loop_closed_before_exit() {
        // asyncio's ThreadedChildWatcher._do_waitpid: "Loop %r that handles
        // pid %r is closed" is logged, and the child is reaped all the same.
        let event_loop = new_loop();
        let watcher = Arc::new(ThreadedChildWatcher::new());
        let reports = Reports::default();
        let pid = sleeping();
        register(&event_loop, &watcher, pid, reports.callback()).expect("add_child_handler");
        event_loop.close().expect("close");
        kill(pid, libc::SIGKILL);
        wait_reaped(pid);
        wait_until("the warning", || {
            logged(&format!("Loop that handles pid {pid} is closed"))
        });
        assert_eq!(reports.len(), 0);
    }

    // -----------------------------------------------------------------------
    // SafeChildWatcher and FastChildWatcher: asyncio's ChildWatcherTestsMixin
    // -----------------------------------------------------------------------

    /// The watcher under test, attached to a fresh loop.
    fn attached<W: ChildWatcher>(watcher: W) -> (EventLoop, Arc<W>) {
        let event_loop = new_loop();
        let watcher = Arc::new(watcher);
        watcher.attach_loop(Some(&event_loop));
        (event_loop, watcher)
    }

    fn create_watcher<W: ChildWatcher>(watcher: W) {
        // test_unix_events.py: ChildWatcherTestsMixin.test_create_watcher:
        // attach_loop installs a SIGCHLD handler on the loop.
        assert!(sigchld_disposition_is_default());
        let event_loop = new_loop();
        assert!(!watcher.is_active(), "active before attach");
        watcher.attach_loop(Some(&event_loop));
        assert!(watcher.is_active());
        assert!(
            !sigchld_disposition_is_default(),
            "no SIGCHLD handler after attach"
        );
        watcher.attach_loop(None);
        assert!(!watcher.is_active());
        assert!(
            sigchld_disposition_is_default(),
            "the SIGCHLD handler stayed after detach"
        );
        assert!(!event_loop.remove_signal_handler(SIGCHLD).expect("remove"));
        event_loop.close().expect("close");
    }

    fn sigchld<W: ChildWatcher>(watcher: W, steals: bool) {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld: one exit,
        // reported once; later SIGCHLDs do not report it again. And what the
        // watcher does with a child nobody registered: Safe leaves it alone,
        // Fast reaps it.
        let (event_loop, watcher) = attached(watcher);
        let reports = Reports::default();
        let pid = sleeping();
        watcher
            .add_child_handler(pid, reports.callback())
            .expect("add_child_handler");
        run_for(&event_loop, QUIET);
        assert_eq!(reports.len(), 0, "reported while running");
        kill(pid, libc::SIGTERM);
        run_until_reports(&event_loop, &reports, 1);
        assert_eq!(reports.codes(), [(pid, -15)]);
        reports.assert_on(thread::current().id());
        assert_reaped(pid);

        let stranger = exiting(13);
        wait_exited(stranger);
        run_for(&event_loop, QUIET);
        assert_eq!(reports.codes(), [(pid, -15)], "reported again");
        if steals {
            assert_reaped(stranger);
        } else {
            assert_eq!(
                reap_here(stranger),
                13,
                "the watcher reaped a child it was not given"
            );
        }
        watcher.close();
        event_loop.close().expect("close");
    }

    fn sigchld_two_children<W: ChildWatcher>(watcher: W) {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_two_children.
        let (event_loop, watcher) = attached(watcher);
        let (first, second) = (Reports::default(), Reports::default());
        let killed = sleeping();
        let exits = sleeping();
        watcher
            .add_child_handler(killed, first.callback())
            .expect("add 1");
        watcher
            .add_child_handler(exits, second.callback())
            .expect("add 2");
        run_for(&event_loop, QUIET);
        assert_eq!(first.len() + second.len(), 0);
        kill(killed, libc::SIGUSR1);
        run_until_reports(&event_loop, &first, 1);
        assert_eq!(first.codes(), [(killed, -libc::SIGUSR1)]);
        assert_eq!(second.len(), 0);
        run_for(&event_loop, QUIET);
        assert_eq!(second.len(), 0);
        kill(exits, libc::SIGKILL);
        run_until_reports(&event_loop, &second, 1);
        run_for(&event_loop, QUIET);
        assert_eq!(first.codes(), [(killed, -libc::SIGUSR1)]);
        assert_eq!(second.codes(), [(exits, -9)]);
        watcher.close();
        event_loop.close().expect("close");
    }

    fn sigchld_two_children_terminating_together<W: ChildWatcher>(watcher: W) {
        // test_unix_events.py:
        // ChildWatcherTestsMixin.test_sigchld_two_children_terminating_together:
        // both exits happen before the loop looks, so their SIGCHLDs may
        // coalesce; both are reported.
        let (event_loop, watcher) = attached(watcher);
        let (first, second) = (Reports::default(), Reports::default());
        let a = sleeping();
        let b = sleeping();
        watcher.add_child_handler(a, first.callback()).expect("add a");
        watcher.add_child_handler(b, second.callback()).expect("add b");
        kill(a, libc::SIGKILL);
        kill(b, libc::SIGTERM);
        wait_exited(a);
        wait_exited(b);
        let both = (first.clone(), second.clone());
        run_until(&event_loop, "both reports", move || {
            both.0.len() == 1 && both.1.len() == 1
        });
        assert_eq!(first.codes(), [(a, -9)]);
        assert_eq!(second.codes(), [(b, -15)]);
        watcher.close();
        event_loop.close().expect("close");
    }

    fn sigchld_race_condition<W: ChildWatcher>(watcher: W) {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_race_condition:
        // the child exits and its SIGCHLD is handled before it is
        // registered; the registration still reports it (Safe: by checking
        // at once; Fast: from the exits it kept).
        let (event_loop, watcher) = attached(watcher);
        let reports = Reports::default();
        let pid = exiting(4);
        wait_exited(pid);
        run_for(&event_loop, QUIET);
        watcher
            .add_child_handler(pid, reports.callback())
            .expect("add_child_handler");
        run_until_reports(&event_loop, &reports, 1);
        run_for(&event_loop, QUIET);
        assert_eq!(reports.codes(), [(pid, 4)]);
        assert_reaped(pid);
        watcher.close();
        event_loop.close().expect("close");
    }

    fn sigchld_replace_handler<W: ChildWatcher>(watcher: W) {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_replace_handler.
        let (event_loop, watcher) = attached(watcher);
        let (first, second) = (Reports::default(), Reports::default());
        let pid = sleeping();
        watcher.add_child_handler(pid, first.callback()).expect("add 1");
        watcher.add_child_handler(pid, second.callback()).expect("add 2");
        kill(pid, libc::SIGALRM);
        run_until_reports(&event_loop, &second, 1);
        run_for(&event_loop, QUIET);
        assert_eq!(second.codes(), [(pid, -libc::SIGALRM)]);
        assert_eq!(first.len(), 0, "the replaced callback ran");
        watcher.close();
        event_loop.close().expect("close");
    }

    fn sigchld_remove_handler<W: ChildWatcher>(watcher: W, steals: bool) {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_remove_handler:
        // a removed handler never runs. Safe then leaves the child alone;
        // Fast reaps it anyway.
        let (event_loop, watcher) = attached(watcher);
        let reports = Reports::default();
        let pid = sleeping();
        watcher
            .add_child_handler(pid, reports.callback())
            .expect("add_child_handler");
        assert!(watcher.remove_child_handler(pid));
        kill(pid, libc::SIGKILL);
        wait_exited(pid);
        run_for(&event_loop, QUIET);
        assert_eq!(reports.len(), 0, "a removed handler ran");
        if steals {
            assert_reaped(pid);
        } else {
            assert_eq!(reap_here(pid), -9);
        }
        watcher.close();
        event_loop.close().expect("close");
    }

    fn remove_child_handler<W: ChildWatcher>(watcher: W) {
        // test_unix_events.py: ChildWatcherTestsMixin.test_remove_child_handler:
        // true once, then false; only the handler left runs.
        let (event_loop, watcher) = attached(watcher);
        let (one, two, three) = (Reports::default(), Reports::default(), Reports::default());
        let pids = [sleeping(), sleeping(), sleeping()];
        watcher.add_child_handler(pids[0], one.callback()).expect("add 1");
        watcher.add_child_handler(pids[1], two.callback()).expect("add 2");
        watcher
            .add_child_handler(pids[2], three.callback())
            .expect("add 3");
        assert!(watcher.remove_child_handler(pids[0]));
        assert!(watcher.remove_child_handler(pids[1]));
        assert!(!watcher.remove_child_handler(pids[1]));
        assert!(!watcher.remove_child_handler(pids[1]));
        for pid in pids {
            kill(pid, libc::SIGKILL);
        }
        run_until_reports(&event_loop, &three, 1);
        run_for(&event_loop, QUIET);
        assert_eq!(one.len() + two.len(), 0, "a removed handler ran");
        assert_eq!(three.codes(), [(pids[2], -9)]);
        // Whatever the watcher left behind is reaped before the next case.
        for pid in &pids[..2] {
            if exited_unreaped(*pid).is_some() {
                reap_here(*pid);
            }
        }
        watcher.close();
        event_loop.close().expect("close");
    }

    fn sigchld_child_reaped_elsewhere<W: ChildWatcher>(watcher: W, reports_255: bool) {
        // test_unix_events.py: ChildWatcherTestsMixin.test_sigchld_child_reaped_elsewhere:
        // Safe reports 255 with a warning; Fast never reports ("here the
        // FastChildWatcher enters a deadlock").
        let (event_loop, watcher) = attached(watcher);
        let reports = Reports::default();
        let pid = sleeping();
        watcher
            .add_child_handler(pid, reports.callback())
            .expect("add_child_handler");
        kill(pid, libc::SIGKILL);
        assert_eq!(reap_here(pid), -9);
        if reports_255 {
            run_until_reports(&event_loop, &reports, 1);
            assert_eq!(reports.codes(), [(pid, 255)]);
            assert_warned_255(pid);
        } else {
            run_for(&event_loop, QUIET);
            assert_eq!(reports.len(), 0);
            assert!(
                watcher.remove_child_handler(pid),
                "Fast forgot the child it never saw exit"
            );
        }
        watcher.close();
        event_loop.close().expect("close");
    }

    fn set_loop<W: ChildWatcher>(watcher: W) {
        // test_unix_events.py: ChildWatcherTestsMixin.test_set_loop: attaching
        // a new loop moves the SIGCHLD handler there, and a child registered
        // before is reported on the new loop.
        let (old_loop, watcher) = attached(watcher);
        let reports = Reports::default();
        let pid = sleeping();
        watcher
            .add_child_handler(pid, reports.callback())
            .expect("add_child_handler");
        let new_loop = new_loop();
        watcher.attach_loop(Some(&new_loop));
        assert!(watcher.is_active());
        assert!(
            !old_loop.remove_signal_handler(SIGCHLD).expect("remove"),
            "the old loop kept its SIGCHLD handler"
        );
        assert!(
            !sigchld_disposition_is_default(),
            "the new loop has no SIGCHLD handler"
        );
        kill(pid, libc::SIGKILL);
        run_until_reports(&new_loop, &reports, 1);
        assert_eq!(reports.codes(), [(pid, -9)]);
        watcher.close();
        old_loop.close().expect("close");
        new_loop.close().expect("close");
    }

    fn set_loop_race_condition<W: ChildWatcher>(watcher: W) {
        // test_unix_events.py: ChildWatcherTestsMixin.test_set_loop_race_condition:
        // detaching with pending handlers warns; children that exit while
        // detached are reported when a loop is attached again; a child still
        // running then is reported when it exits.
        let (old_loop, watcher) = attached(watcher);
        let (one, two, three) = (Reports::default(), Reports::default(), Reports::default());
        let pids = [sleeping(), sleeping(), sleeping()];
        watcher.add_child_handler(pids[0], one.callback()).expect("add 1");
        watcher.add_child_handler(pids[1], two.callback()).expect("add 2");
        watcher
            .add_child_handler(pids[2], three.callback())
            .expect("add 3");
        watcher.attach_loop(None);
        assert_logged("A loop is being detached from a child watcher with pending handlers");
        assert!(!watcher.is_active());
        assert!(sigchld_disposition_is_default());
        kill(pids[0], libc::SIGKILL);
        kill(pids[1], libc::SIGTERM);
        wait_exited(pids[0]);
        wait_exited(pids[1]);
        run_for(&old_loop, QUIET);
        assert_eq!(one.len() + two.len() + three.len(), 0, "reported while detached");

        let new_loop = new_loop();
        watcher.attach_loop(Some(&new_loop));
        let both = (one.clone(), two.clone());
        run_until(&new_loop, "the exits seen while detached", move || {
            both.0.len() == 1 && both.1.len() == 1
        });
        assert_eq!(one.codes(), [(pids[0], -9)]);
        assert_eq!(two.codes(), [(pids[1], -15)]);
        assert_eq!(three.len(), 0);
        kill(pids[2], libc::SIGKILL);
        run_until_reports(&new_loop, &three, 1);
        run_for(&new_loop, QUIET);
        assert_eq!(three.codes(), [(pids[2], -9)]);
        assert_eq!(one.len() + two.len(), 2);
        watcher.close();
        old_loop.close().expect("close");
        new_loop.close().expect("close");
    }

    fn close<W: ChildWatcher>(watcher: W) {
        // test_unix_events.py: ChildWatcherTestsMixin.test_close: close
        // removes the SIGCHLD handler and forgets the callbacks (and, for
        // Fast, the kept exits).
        let (event_loop, watcher) = attached(watcher);
        let reports = Reports::default();
        let exited = exiting(9);
        wait_exited(exited);
        let running = sleeping();
        watcher
            .add_child_handler(running, reports.callback())
            .expect("add_child_handler");
        run_for(&event_loop, QUIET);
        watcher.close();
        assert!(!watcher.is_active());
        assert!(sigchld_disposition_is_default(), "close left the SIGCHLD handler");
        assert!(!watcher.remove_child_handler(running), "close kept a callback");
        assert!(!event_loop.remove_signal_handler(SIGCHLD).expect("remove"));
        let err = watcher
            .add_child_handler(exited, reports.callback())
            .expect_err("closed watchers are detached");
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        // Attached again, the watcher has no memory of either child.
        watcher.attach_loop(Some(&event_loop));
        kill(running, libc::SIGKILL);
        wait_exited(running);
        run_for(&event_loop, QUIET);
        assert_eq!(reports.len(), 0, "a callback survived close");
        watcher.close();
        for pid in [exited, running] {
            if exited_unreaped(pid).is_some() {
                reap_here(pid);
            }
        }
        event_loop.close().expect("close");
    }

    fn refuses_registration_when_detached<W: ChildWatcher>(watcher: W) {
        // asyncio 3.7's "Cannot add child handler, the child watcher does
        // not have a loop attached" (3.8+ checks is_active() before it
        // spawns instead): a detached watcher refuses, and reaps nothing.
        let reports = Reports::default();
        let pid = exiting(1);
        assert!(!watcher.is_active());
        let err = watcher
            .add_child_handler(pid, reports.callback())
            .expect_err("detached");
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("does not have a loop attached"), "{err}");
        assert!(!watcher.remove_child_handler(pid));
        assert_eq!(reap_here(pid), 1);
        let event_loop = new_loop();
        watcher.attach_loop(Some(&event_loop));
        let err = watcher
            .add_child_handler(0, reports.callback())
            .expect_err("pid 0");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        watcher.close();
        event_loop.close().expect("close");
    }

    fn panicking_callback<W: ChildWatcher>(watcher: W) {
        // Our own, in place of test_sigchld_unhandled_exception: a callback
        // that panics goes to the loop's exception handler, and the other
        // child of the same SIGCHLD is still reported.
        let (event_loop, watcher) = attached(watcher);
        let handled = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&handled);
        event_loop.set_exception_handler(move |_, context| {
            assert!(
                context.message().starts_with("Exception in callback"),
                "{context}"
            );
            seen.fetch_add(1, Ordering::SeqCst);
        });
        let reports = Reports::default();
        let a = sleeping();
        let b = sleeping();
        watcher
            .add_child_handler(a, Box::new(|_, _| panic!("a child watcher callback panics")))
            .expect("add a");
        watcher.add_child_handler(b, reports.callback()).expect("add b");
        kill(a, libc::SIGKILL);
        kill(b, libc::SIGKILL);
        wait_exited(a);
        wait_exited(b);
        let counted = Arc::clone(&handled);
        let watched = reports.clone();
        run_until(&event_loop, "the panic and the other report", move || {
            counted.load(Ordering::SeqCst) == 1 && watched.len() == 1
        });
        assert_eq!(reports.codes(), [(b, -9)]);
        watcher.close();
        event_loop.close().expect("close");
    }

    fn safe_create_watcher() {
        create_watcher(SafeChildWatcher::new());
    }
    fn safe_sigchld() {
        sigchld(SafeChildWatcher::new(), false);
    }
    fn safe_sigchld_two_children() {
        sigchld_two_children(SafeChildWatcher::new());
    }
    fn safe_sigchld_two_children_terminating_together() {
        sigchld_two_children_terminating_together(SafeChildWatcher::new());
    }
    fn safe_sigchld_race_condition() {
        sigchld_race_condition(SafeChildWatcher::new());
    }
    fn safe_sigchld_replace_handler() {
        sigchld_replace_handler(SafeChildWatcher::new());
    }
    fn safe_sigchld_remove_handler() {
        sigchld_remove_handler(SafeChildWatcher::new(), false);
    }
    fn safe_remove_child_handler() {
        remove_child_handler(SafeChildWatcher::new());
    }
    fn safe_sigchld_child_reaped_elsewhere() {
        sigchld_child_reaped_elsewhere(SafeChildWatcher::new(), true);
    }
    fn safe_set_loop() {
        set_loop(SafeChildWatcher::new());
    }
    fn safe_set_loop_race_condition() {
        set_loop_race_condition(SafeChildWatcher::new());
    }
    fn safe_close() {
        close(SafeChildWatcher::new());
    }
    fn safe_refuses_registration_when_detached() {
        refuses_registration_when_detached(SafeChildWatcher::new());
    }
    fn safe_panicking_callback() {
        panicking_callback(SafeChildWatcher::new());
    }

    fn safe_detach_from_another_thread() {
        // Our own (the watcher is Send + Sync, its loop is not): a watcher
        // attached to a loop in another thread is detached from here, and
        // that loop's SIGCHLD handler goes as the loop runs.
        let watcher = Arc::new(SafeChildWatcher::new());
        let shared = Arc::clone(&watcher);
        let (attached_tx, attached_rx) = mpsc::channel();
        let (closed_tx, closed_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        thread::spawn(move || {
            let event_loop = new_loop();
            shared.attach_loop(Some(&event_loop));
            drop(shared);
            let _ = attached_tx.send(());
            closed_rx
                .recv_timeout(WAIT)
                .expect("the main thread closes the watcher");
            run_until(
                &event_loop,
                "the SIGCHLD handler to go",
                sigchld_disposition_is_default,
            );
            let removed = event_loop.remove_signal_handler(SIGCHLD).expect("remove");
            event_loop.close().expect("close");
            let _ = done_tx.send(removed);
        });
        attached_rx.recv_timeout(WAIT).expect("the thread attaches");
        assert!(watcher.is_active(), "attached in another thread");
        assert!(!sigchld_disposition_is_default());
        watcher.close();
        assert!(!watcher.is_active());
        closed_tx.send(()).expect("the thread waits");
        let removed = done_rx.recv_timeout(WAIT * 2).expect("the thread's answer");
        assert!(!removed, "the handler was still on the loop");
    }

    fn safe_inactive_once_its_loop_closes() {
        // asyncio's BaseChildWatcher.is_active: "self._loop is not None and
        // self._loop.is_running()"; here: attached to a loop that is open.
        let (event_loop, watcher) = attached(SafeChildWatcher::new());
        assert!(watcher.is_active());
        event_loop.close().expect("close");
        assert!(!watcher.is_active(), "active on a closed loop");
        assert!(sigchld_disposition_is_default(), "a closed loop keeps no handler");
        watcher.close();
    }

    fn fast_create_watcher() {
        create_watcher(FastChildWatcher::new());
    }
    fn fast_sigchld() {
        sigchld(FastChildWatcher::new(), true);
    }
    fn fast_sigchld_two_children() {
        sigchld_two_children(FastChildWatcher::new());
    }
    fn fast_sigchld_two_children_terminating_together() {
        sigchld_two_children_terminating_together(FastChildWatcher::new());
    }
    fn fast_sigchld_race_condition() {
        sigchld_race_condition(FastChildWatcher::new());
    }
    fn fast_sigchld_replace_handler() {
        sigchld_replace_handler(FastChildWatcher::new());
    }
    fn fast_sigchld_remove_handler() {
        sigchld_remove_handler(FastChildWatcher::new(), true);
    }
    fn fast_remove_child_handler() {
        remove_child_handler(FastChildWatcher::new());
    }
    fn fast_sigchld_child_reaped_elsewhere() {
        sigchld_child_reaped_elsewhere(FastChildWatcher::new(), false);
    }
    fn fast_set_loop() {
        set_loop(FastChildWatcher::new());
    }
    fn fast_set_loop_race_condition() {
        set_loop_race_condition(FastChildWatcher::new());
    }
    fn fast_close() {
        close(FastChildWatcher::new());
    }
    fn fast_refuses_registration_when_detached() {
        refuses_registration_when_detached(FastChildWatcher::new());
    }
    fn fast_panicking_callback() {
        panicking_callback(FastChildWatcher::new());
    }

    fn fast_sigchld_unknown_pid_during_registration() {
        // test_unix_events.py:
        // ChildWatcherTestsMixin.test_sigchld_unknown_pid_during_registration:
        // a child reaped before its registration is delivered when it
        // registers; an unknown child's exit is kept (and stolen); a running
        // child is not reported.
        let (event_loop, watcher) = attached(FastChildWatcher::new());
        let (first, second) = (Reports::default(), Reports::default());
        let known = exiting(7);
        let unknown = exiting(17);
        let running = sleeping();
        wait_exited(known);
        wait_exited(unknown);
        run_until(&event_loop, "both exits to be reaped", move || {
            exited_unreaped(known).is_none() && exited_unreaped(unknown).is_none()
        });
        watcher
            .add_child_handler(known, first.callback())
            .expect("add known");
        watcher
            .add_child_handler(running, second.callback())
            .expect("add running");
        run_until_reports(&event_loop, &first, 1);
        run_for(&event_loop, QUIET);
        assert_eq!(first.codes(), [(known, 7)]);
        assert_eq!(second.len(), 0);
        assert!(
            format!("{watcher:?}").contains("zombies: 1"),
            "the unknown child's exit was not kept: {watcher:?}"
        );
        kill(running, libc::SIGKILL);
        run_until_reports(&event_loop, &second, 1);
        assert_eq!(second.codes(), [(running, -9)]);
        watcher.close();
        assert!(format!("{watcher:?}").contains("zombies: 0"), "{watcher:?}");
        event_loop.close().expect("close");
    }

    // -----------------------------------------------------------------------
    // UnixDefaultEventLoopPolicy: asyncio's PolicyTests
    // -----------------------------------------------------------------------

    /// A watcher that counts what is done to it.
    #[derive(Default)]
    struct Recording {
        closed: AtomicUsize,
        attached: Mutex<Vec<bool>>,
    }

    impl ChildWatcher for Recording {
        fn add_child_handler(&self, _: u32, _: Box<dyn FnOnce(u32, i32) + Send>) -> Result<(), Error> {
            Err(Error::new(ErrorKind::Unsupported, "a recording watcher"))
        }
        fn remove_child_handler(&self, _: u32) -> bool {
            false
        }
        fn attach_loop(&self, event_loop: Option<&EventLoop>) {
            self.attached
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(event_loop.is_some());
        }
        fn is_active(&self) -> bool {
            false
        }
        fn close(&self) {
            self.closed.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn policy_get_default_child_watcher() {
        // test_unix_events.py: PolicyTests.test_get_default_child_watcher:
        // the default is made on first use, the same one every time, and
        // here (pidfds work) it is the pidfd watcher: it watches a child
        // with a pidfd and no thread.
        let policy = aio::get_event_loop_policy();
        let watcher = policy.get_child_watcher().expect("a default watcher");
        let again = policy.get_child_watcher().expect("the default watcher");
        assert!(Arc::ptr_eq(&watcher, &again), "a second default watcher");
        assert!(watcher.is_active());

        let event_loop = new_loop();
        let reports = Reports::default();
        let pid = sleeping();
        register(&event_loop, &watcher, pid, reports.callback()).expect("add_child_handler");
        assert_eq!(open_pidfds(), 1, "the default watcher holds no pidfd");
        assert_eq!(waitpid_threads(pid), 0, "the default watcher started a thread");
        kill(pid, libc::SIGKILL);
        run_until_reports(&event_loop, &reports, 1);
        assert_eq!(reports.codes(), [(pid, -9)]);
        assert_eq!(open_pidfds(), 0);
        event_loop.close().expect("close");
    }

    fn policy_get_child_watcher_after_set() {
        // test_unix_events.py: PolicyTests.test_get_child_watcher_after_set.
        let policy = aio::get_event_loop_policy();
        let watcher: Arc<dyn ChildWatcher> = Arc::new(FastChildWatcher::new());
        policy.set_child_watcher(Some(Arc::clone(&watcher))).expect("set");
        let got = policy.get_child_watcher().expect("get");
        assert!(Arc::ptr_eq(&got, &watcher));
    }

    fn policy_set_child_watcher_closes_the_previous_one() {
        // asyncio's _UnixDefaultEventLoopPolicy.set_child_watcher: "if
        // self._watcher is not None: self._watcher.close()".
        let policy = aio::get_event_loop_policy();
        let recording = Arc::new(Recording::default());
        policy
            .set_child_watcher(Some(recording.clone() as Arc<dyn ChildWatcher>))
            .expect("set");
        assert_eq!(recording.closed.load(Ordering::SeqCst), 0);
        let event_loop = new_loop();
        let safe = Arc::new(SafeChildWatcher::new());
        safe.attach_loop(Some(&event_loop));
        policy
            .set_child_watcher(Some(safe.clone() as Arc<dyn ChildWatcher>))
            .expect("set");
        assert_eq!(
            recording.closed.load(Ordering::SeqCst),
            1,
            "the previous watcher was not closed"
        );
        assert!(safe.is_active());
        policy
            .set_child_watcher(Some(Arc::new(ThreadedChildWatcher::new())))
            .expect("set");
        assert!(!safe.is_active(), "the replaced Safe watcher is still attached");
        assert!(sigchld_disposition_is_default());
        assert_eq!(recording.closed.load(Ordering::SeqCst), 1, "closed twice");
        event_loop.close().expect("close");
    }

    fn policy_set_child_watcher_none_brings_a_new_default() {
        // asyncio: set_child_watcher(None) closes the watcher; the next
        // get_child_watcher() makes a new default.
        let policy = aio::get_event_loop_policy();
        let first = policy.get_child_watcher().expect("get");
        let recording = Arc::new(Recording::default());
        policy
            .set_child_watcher(Some(recording.clone() as Arc<dyn ChildWatcher>))
            .expect("set");
        policy.set_child_watcher(None).expect("set None");
        assert_eq!(recording.closed.load(Ordering::SeqCst), 1);
        let second = policy.get_child_watcher().expect("get");
        assert!(!Arc::ptr_eq(&first, &second), "the old default came back");
        assert!(second.is_active());
    }

    fn policy_get_child_watcher_thread() {
        // test_unix_events.py: PolicyTests.test_get_child_watcher_thread: a
        // loop set from a non-main thread is not attached to the watcher.
        let policy = aio::get_event_loop_policy();
        let recording = Arc::new(Recording::default());
        let safe = Arc::new(SafeChildWatcher::new());
        policy
            .set_child_watcher(Some(recording.clone() as Arc<dyn ChildWatcher>))
            .expect("set");
        let in_thread = Arc::clone(&policy);
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let event_loop = in_thread.new_event_loop().expect("new loop");
            in_thread.set_event_loop(Some(event_loop)).expect("set loop");
            let current = in_thread.get_event_loop().expect("the thread's loop");
            current.close().expect("close");
            in_thread.set_event_loop(None).expect("unset");
            let _ = sender.send(());
        });
        receiver.recv_timeout(WAIT).expect("the thread");
        let calls = recording
            .attached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert!(calls.is_empty(), "attached from a non-main thread: {calls:?}");

        // And with asyncio's own choice of watcher for this test, Safe:
        policy
            .set_child_watcher(Some(safe.clone() as Arc<dyn ChildWatcher>))
            .expect("set");
        let in_thread = Arc::clone(&policy);
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let event_loop = in_thread.new_event_loop().expect("new loop");
            in_thread
                .set_event_loop(Some(event_loop.clone()))
                .expect("set loop");
            let _ = sender.send(());
            in_thread.set_event_loop(None).expect("unset");
            event_loop.close().expect("close");
        });
        receiver.recv_timeout(WAIT).expect("the thread");
        assert!(!safe.is_active(), "attached from a non-main thread");
        assert!(sigchld_disposition_is_default());
    }

    fn policy_child_watcher_replace_mainloop_existing() {
        // test_unix_events.py: PolicyTests.test_child_watcher_replace_mainloop_existing:
        // set_event_loop in the main thread attaches the watcher to each new
        // loop, and set_event_loop(None) detaches it.
        let policy = aio::get_event_loop_policy();
        let event_loop = policy.new_event_loop().expect("new loop");
        policy.set_event_loop(Some(event_loop.clone())).expect("set");
        let watcher = Arc::new(SafeChildWatcher::new());
        policy
            .set_child_watcher(Some(watcher.clone() as Arc<dyn ChildWatcher>))
            .expect("set watcher");
        assert!(!watcher.is_active(), "set_child_watcher attached");
        watcher.attach_loop(Some(&event_loop));
        assert!(watcher.is_active());

        let new_loop = policy.new_event_loop().expect("new loop");
        policy.set_event_loop(Some(new_loop.clone())).expect("set new");
        assert!(watcher.is_active());
        assert!(
            !event_loop.remove_signal_handler(SIGCHLD).expect("remove"),
            "the old loop kept the SIGCHLD handler"
        );
        let reports = Reports::default();
        let pid = exiting(6);
        watcher
            .add_child_handler(pid, reports.callback())
            .expect("add_child_handler");
        run_until_reports(&new_loop, &reports, 1);
        assert_eq!(reports.codes(), [(pid, 6)]);

        policy.set_event_loop(None).expect("unset");
        assert!(!watcher.is_active());
        assert!(sigchld_disposition_is_default());
        event_loop.close().expect("close");
        new_loop.close().expect("close");

        // The Runner's set_event_loop goes the same way.
        let recording = Arc::new(Recording::default());
        policy
            .set_child_watcher(Some(recording.clone() as Arc<dyn ChildWatcher>))
            .expect("set");
        aio::run(async {}).expect("run");
        let calls = recording
            .attached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(
            calls,
            [true, false],
            "aio::run's set_event_loop(loop), set_event_loop(None)"
        );
    }

    fn policy_watchers_serve_loops_in_non_main_threads() {
        // test_subprocess.py: GenericWatcherTests.test_create_subprocess_with_pidfd
        // (a loop in another thread, through the policy's default watcher),
        // and the same with a ThreadedChildWatcher set in the policy.
        fn in_a_thread(code: i32) -> (u32, Vec<(u32, i32)>) {
            let (sender, receiver) = mpsc::channel();
            thread::spawn(move || {
                let result = aio::run(async move {
                    let watcher = aio::get_event_loop_policy()
                        .get_child_watcher()
                        .expect("the policy's watcher");
                    let reports = Reports::default();
                    let pid = exiting(code);
                    watcher
                        .add_child_handler(pid, reports.callback())
                        .expect("add_child_handler");
                    let deadline = Instant::now() + WAIT;
                    while reports.len() == 0 && Instant::now() < deadline {
                        aio::sleep(Duration::from_millis(2)).await;
                    }
                    reports.assert_on(thread::current().id());
                    (pid, reports.codes())
                });
                let _ = sender.send(result.expect("aio::run in a thread"));
            });
            receiver.recv_timeout(WAIT * 2).expect("the thread's report")
        }

        assert!(can_use_pidfd());
        let (pid, codes) = in_a_thread(21);
        assert_eq!(codes, [(pid, 21)], "the default (pidfd) watcher");
        assert_eq!(open_pidfds(), 0);

        aio::get_event_loop_policy()
            .set_child_watcher(Some(Arc::new(ThreadedChildWatcher::new())))
            .expect("set");
        let (pid, codes) = in_a_thread(22);
        assert_eq!(codes, [(pid, 22)], "the threaded watcher");
        wait_until("the waitpid thread to end", || waitpid_threads(pid) == 0);
    }
}
