//! Windows-only behaviour: the two policies of `aio::windows` and their
//! loops, from CPython's `test_windows_events.py` (`WinPolicyTests`,
//! `ProactorMultithreading`, `ProactorLoopCtrlC`, the `ProactorTests` that
//! apply to a loop without pipes yet), plus what the Windows selector does
//! that asyncio's `select()`-based one cannot (more than 512 sockets), and
//! the `Unsupported` answers of the signal API.
//!
//! Ctrl-C cases run this binary as a child (`--child NAME`) with a console of
//! its own, and press Ctrl-C there with `GenerateConsoleCtrlEvent`: the event
//! reaches every process of a console, and the end of some cases is the
//! process's own (Windows' default handler ends it).
//!
//! A `harness = false` binary, as `main_thread.rs`, because its cases set the
//! global policy and rely on the main thread's on-demand loop: `main` runs
//! them one by one in the process's first thread, each from a fresh default
//! policy. Elsewhere than Windows it has nothing to run and says so (a
//! `harness = false` target needs its `main` on every platform, so the file
//! is not `#![cfg(windows)]` as a whole; everything but `main` is).
//! `cargo xtask wine` runs it under Wine.
//!
//! Usage: `windows [FILTER]` runs the cases whose name contains FILTER;
//! `--list` lists them (the command line and the report are `harness.rs`'s,
//! shared with the other `harness = false` suites).

use std::process::ExitCode;

#[cfg(not(windows))]
fn main() -> ExitCode {
    println!("windows: Windows-only cases, nothing to run on this platform");
    ExitCode::SUCCESS
}

#[cfg(windows)]
fn main() -> ExitCode {
    cases::main()
}

#[cfg(windows)]
#[path = "harness.rs"]
mod harness;

#[cfg(windows)]
mod cases {
    use std::cell::{Cell, RefCell};
    use std::io;
    use std::os::windows::process::CommandExt;
    use std::panic::catch_unwind;
    use std::process::ExitCode;
    use std::rc::Rc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::{Arc, mpsc};
    use std::thread::{self, JoinHandle};
    use std::time::{Duration, Instant};

    use aio::windows::{
        ProactorEventLoop, WindowsProactorEventLoopPolicy, WindowsSelectorEventLoop,
        WindowsSelectorEventLoopPolicy,
    };
    use aio::{Error, ErrorKind, EventLoop, EventLoopPolicy};
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use windows_sys::Win32::Foundation::STATUS_CONTROL_C_EXIT;
    use windows_sys::Win32::System::Console::{CTRL_C_EVENT, GenerateConsoleCtrlEvent};
    use windows_sys::Win32::System::Threading::CREATE_NO_WINDOW;

    use crate::harness;

    /// How long a wait on another thread, or a loop run, may last before
    /// the case fails instead of hanging.
    const TIMEOUT: Duration = Duration::from_secs(20);

    type Case = (&'static str, fn());

    const CASES: &[Case] = &[
        // test_windows_events.py: WinPolicyTests
        (
            "selector_policy_runs_main_on_a_selector_loop",
            selector_policy_runs_main_on_a_selector_loop,
        ),
        (
            "proactor_policy_runs_main_on_a_proactor_loop",
            proactor_policy_runs_main_on_a_proactor_loop,
        ),
        (
            "default_policy_is_the_selector_policy",
            default_policy_is_the_selector_policy,
        ),
        (
            "each_policy_makes_its_loop_on_demand_in_the_main_thread_only",
            each_policy_makes_its_loop_on_demand_in_the_main_thread_only,
        ),
        // test_windows_events.py: ProactorMultithreading
        (
            "proactor_loop_runs_in_a_thread_that_is_not_main",
            proactor_loop_runs_in_a_thread_that_is_not_main,
        ),
        // test_windows_events.py: ProactorTests
        (
            "closed_proactor_loop_refuses_work",
            closed_proactor_loop_refuses_work,
        ),
        (
            "another_thread_wakes_a_loop_blocked_in_its_wait",
            another_thread_wakes_a_loop_blocked_in_its_wait,
        ),
        ("tcp_echo_on_the_proactor_loop", tcp_echo_on_the_proactor_loop),
        // asyncio's Windows selector is select(): 512 sockets at most.
        (
            "selector_loop_waits_on_more_than_512_sockets",
            selector_loop_waits_on_more_than_512_sockets,
        ),
        // test_windows_events.py: ProactorLoopCtrlC, and test_runners.py's
        // Ctrl-C cases on Windows's console events (each in a child process)
        (
            "ctrl_c_cancels_main_on_the_selector_loop",
            ctrl_c_cancels_main_on_the_selector_loop,
        ),
        (
            "ctrl_c_cancels_main_on_the_proactor_loop",
            ctrl_c_cancels_main_on_the_proactor_loop,
        ),
        (
            "ctrl_c_ends_aio_run_while_main_is_busy",
            ctrl_c_ends_aio_run_while_main_is_busy,
        ),
        (
            "runner_arms_ctrl_c_afresh_for_each_run",
            runner_arms_ctrl_c_afresh_for_each_run,
        ),
        (
            "ctrl_c_too_late_for_a_run_spares_the_next",
            ctrl_c_too_late_for_a_run_spares_the_next,
        ),
        ("second_ctrl_c_ends_the_process", second_ctrl_c_ends_the_process),
        (
            "ctrl_c_after_run_has_its_default_effect",
            ctrl_c_after_run_has_its_default_effect,
        ),
        (
            "ctrl_c_is_left_alone_outside_the_main_thread",
            ctrl_c_is_left_alone_outside_the_main_thread,
        ),
        // test_windows_events.py: ProactorTests
        (
            "loop_restarts_while_another_thread_calls_in",
            loop_restarts_while_another_thread_calls_in,
        ),
        (
            "loop_restarts_with_an_executor_job_pending",
            loop_restarts_with_an_executor_job_pending,
        ),
        ("read_ends_when_the_peer_closes", read_ends_when_the_peer_closes),
        // asyncio's loops raise NotImplementedError for signals on Windows.
        (
            "signal_handlers_are_unsupported_on_both_windows_loops",
            signal_handlers_are_unsupported_on_both_windows_loops,
        ),
    ];

    /// The cases that run only in a child process (`--child NAME`), started
    /// by `run_child` with a console of its own.
    const CHILD_CASES: &[Case] = &[
        (
            "ctrl-c-while-waiting-selector",
            child_ctrl_c_while_waiting_selector,
        ),
        (
            "ctrl-c-while-waiting-proactor",
            child_ctrl_c_while_waiting_proactor,
        ),
        ("ctrl-c-while-busy", child_ctrl_c_while_busy),
        ("ctrl-c-in-each-run", child_ctrl_c_in_each_run),
        ("ctrl-c-too-late-for-a-run", child_ctrl_c_too_late_for_a_run),
        ("ctrl-c-twice-while-blocked", child_ctrl_c_twice_while_blocked),
        ("ctrl-c-after-run", child_ctrl_c_after_run),
        (
            "ctrl-c-outside-the-main-thread",
            child_ctrl_c_outside_the_main_thread,
        ),
    ];

    pub(super) fn main() -> ExitCode {
        // One line per panic, whatever RUST_BACKTRACE says; the case's
        // FAILED line repeats the message.
        std::panic::set_hook(Box::new(|info| eprintln!("    panicked: {info}")));
        let args = harness::Args::parse("--child", harness::LIBTEST_FLAGS_WITH_VALUES);
        if let Some(name) = &args.child {
            return harness::run_child_case(
                CHILD_CASES,
                name,
                |(name, _)| name,
                |(name, case)| {
                    case();
                    println!("{CHILD_FINISHED} {name}");
                },
            );
        }
        if args.list {
            return harness::list(CASES.iter().map(|(name, _)| name));
        }
        let selected = harness::select(CASES, args.filter.as_deref(), |(name, _)| name);
        let status = harness::run_cases(
            &selected,
            |(name, _)| name,
            |(_, case)| {
                aio::set_event_loop_policy(None);
                catch_unwind(case).map_err(|payload| harness::Failure {
                    reason: harness::panic_text(&*payload),
                    output: String::new(),
                })
            },
        );
        aio::set_event_loop_policy(None);
        status
    }

    fn is_selector(event_loop: &EventLoop) -> bool {
        event_loop.downcast_ref::<WindowsSelectorEventLoop>().is_some()
    }

    fn is_proactor(event_loop: &EventLoop) -> bool {
        event_loop.downcast_ref::<ProactorEventLoop>().is_some()
    }

    fn assert_error<T>(result: Result<T, Error>, kind: ErrorKind, message: &str) {
        let Err(err) = result else {
            panic!("expected {kind:?} ({message:?}), got Ok");
        };
        assert_eq!(err.kind(), kind, "{err}");
        assert_eq!(err.to_string(), message);
    }

    /// Runs `main` with `aio::run` under `policy` and returns what `check`
    /// says of the loop it ran on.
    fn run_under(policy: Arc<dyn EventLoopPolicy>, check: fn(&EventLoop) -> bool) -> bool {
        aio::set_event_loop_policy(Some(policy));
        let on_the_right_loop = aio::run(async move {
            let running = aio::get_running_loop().expect("main runs in a loop");
            check(&running)
        })
        .expect("aio::run");
        aio::set_event_loop_policy(None);
        on_the_right_loop
    }

    fn selector_policy_runs_main_on_a_selector_loop() {
        // test_windows_events.py: WinPolicyTests.test_selector_win_policy
        assert!(run_under(
            Arc::new(WindowsSelectorEventLoopPolicy::new()),
            is_selector
        ));
    }

    fn proactor_policy_runs_main_on_a_proactor_loop() {
        // test_windows_events.py: WinPolicyTests.test_proactor_win_policy
        assert!(run_under(
            Arc::new(WindowsProactorEventLoopPolicy::new()),
            is_proactor
        ));
    }

    fn default_policy_is_the_selector_policy() {
        // asyncio's default on Windows is the proactor policy; aio's is the
        // selector policy, since its selector already rides on IOCP (the
        // issue's decision). The alias is the type itself...
        let policy: WindowsSelectorEventLoopPolicy = aio::DefaultEventLoopPolicy::new();
        let event_loop = policy.new_event_loop().unwrap();
        assert!(is_selector(&event_loop), "{event_loop:?}");
        event_loop.close().unwrap();
        // ... the global default makes selector loops ...
        let event_loop = aio::new_event_loop().unwrap();
        assert!(is_selector(&event_loop), "{event_loop:?}");
        event_loop.close().unwrap();
        let current = aio::get_event_loop().expect("the main thread's loop on demand");
        assert!(is_selector(&current), "{current:?}");
        aio::set_event_loop(None).unwrap();
        current.close().unwrap();
        // ... and so do aio::run and the facade's SelectorEventLoop.
        assert!(aio::run(async { is_selector(&aio::get_running_loop().unwrap()) }).unwrap());
        let event_loop = aio::SelectorEventLoop::new().unwrap();
        assert!(is_selector(&event_loop), "{event_loop:?}");
        event_loop.close().unwrap();
    }

    fn each_policy_makes_its_loop_on_demand_in_the_main_thread_only() {
        // Both policies stand on the base thread-local policy: a loop on
        // demand in the main thread, the same one every time; none in
        // another thread.
        fn check(policy: Arc<dyn EventLoopPolicy>, is_right: fn(&EventLoop) -> bool) {
            let event_loop = policy
                .get_event_loop()
                .expect("a loop on demand in the main thread");
            assert!(is_right(&event_loop), "{event_loop:?}");
            assert_eq!(
                policy.get_event_loop().unwrap(),
                event_loop,
                "the same loop again"
            );
            let other_thread = {
                let policy = policy.clone();
                thread::Builder::new()
                    .name(String::from("windows-probe"))
                    .spawn(move || {
                        policy
                            .get_event_loop()
                            .map(|_| ())
                            .map_err(|err| (err.kind(), err.to_string()))
                    })
                    .unwrap()
            };
            assert_eq!(
                other_thread.join().unwrap(),
                Err((
                    ErrorKind::NoCurrentLoop,
                    String::from("There is no current event loop in thread 'windows-probe'.")
                ))
            );
            policy.set_event_loop(None).unwrap();
            event_loop.close().unwrap();
        }
        check(Arc::new(WindowsSelectorEventLoopPolicy::new()), is_selector);
        check(Arc::new(WindowsProactorEventLoopPolicy::new()), is_proactor);
    }

    fn proactor_loop_runs_in_a_thread_that_is_not_main() {
        // test_windows_events.py:
        // ProactorMultithreading.test_run_from_nonmain_thread (a proactor
        // loop made, run and closed in a thread that is not main; asyncio
        // checks that close() there does not touch the main thread's wake-up
        // fd). Both Windows loops, with a timer, a task and a cross-thread
        // callback.
        fn in_a_thread(make: fn() -> Result<EventLoop, Error>) -> Result<u32, String> {
            let (report, outcome) = mpsc::channel();
            let worker = thread::spawn(move || {
                let result = (|| {
                    let event_loop = make()?;
                    let threadsafe = event_loop.threadsafe();
                    let value = event_loop.run_until_complete(async move {
                        aio::sleep(Duration::from_millis(10)).await;
                        let from_callback = Arc::new(AtomicU32::new(0));
                        let sender = from_callback.clone();
                        threadsafe.call_soon_threadsafe(move || sender.store(40, Ordering::SeqCst))?;
                        let started = Instant::now();
                        while from_callback.load(Ordering::SeqCst) == 0 && started.elapsed() < TIMEOUT {
                            aio::sleep(Duration::from_millis(1)).await;
                        }
                        let task = aio::create_task(async { 2 });
                        Ok::<u32, Error>(from_callback.load(Ordering::SeqCst) + task.await?)
                    })??;
                    event_loop.close()?;
                    Ok::<u32, Error>(value)
                })();
                let _ = report.send(result.map_err(|err| err.to_string()));
            });
            let result = outcome.recv_timeout(TIMEOUT).expect("the loop's thread reported");
            worker.join().unwrap();
            result
        }
        assert_eq!(in_a_thread(ProactorEventLoop::new), Ok(42));
        assert_eq!(in_a_thread(WindowsSelectorEventLoop::new), Ok(42));
    }

    fn closed_proactor_loop_refuses_work() {
        // test_windows_events.py: ProactorTests.test_close (closing twice is
        // fine; a closed loop runs nothing).
        let event_loop = ProactorEventLoop::new().unwrap();
        event_loop.close().unwrap();
        event_loop.close().expect("closing again is not an error");
        assert!(event_loop.is_closed());
        assert_error(
            event_loop.call_soon(|| {}),
            ErrorKind::Closed,
            "Event loop is closed",
        );
        assert_error(
            event_loop.run_forever(),
            ErrorKind::Closed,
            "Event loop is closed",
        );
        assert_error(
            event_loop.run_until_complete(async {}),
            ErrorKind::Closed,
            "Event loop is closed",
        );
    }

    fn another_thread_wakes_a_loop_blocked_in_its_wait() {
        // test_windows_events.py: ProactorTests.test_loop_self_reading (the
        // loop's own wake-up keeps working). With nothing scheduled, the loop
        // blocks in the IOCP wait with no timeout; only the notification of
        // call_soon_threadsafe can end it.
        for make in [ProactorEventLoop::new, WindowsSelectorEventLoop::new] {
            let event_loop = make().unwrap();
            let threadsafe = event_loop.threadsafe();
            let started = Instant::now();
            let waker = thread::spawn(move || {
                thread::sleep(Duration::from_millis(100));
                threadsafe.stop();
            });
            // A watchdog that fails the case instead of hanging it: its
            // thread stops the loop too, but only after TIMEOUT.
            let watchdog = event_loop.threadsafe();
            let (cancel, cancelled) = mpsc::channel::<()>();
            let watchdog = thread::spawn(move || {
                if cancelled.recv_timeout(TIMEOUT).is_err() {
                    watchdog.stop();
                }
            });
            event_loop.run_forever().unwrap();
            let waited = started.elapsed();
            let _ = cancel.send(());
            watchdog.join().unwrap();
            waker.join().unwrap();
            assert!(waited >= Duration::from_millis(100), "woken early: {waited:?}");
            assert!(waited < TIMEOUT, "not woken by the other thread: {waited:?}");
            event_loop.close().unwrap();
        }
    }

    fn tcp_echo_on_the_proactor_loop() {
        // The proactor loop offers the selector's sockets too.
        let event_loop = ProactorEventLoop::new().unwrap();
        let echoed = event_loop
            .run_until_complete(async {
                let listener = aio::net::TcpListener::bind("127.0.0.1:0").await?;
                let client = aio::net::TcpStream::connect(listener.local_addr()?).await?;
                let (server, _) = listener.accept().await?;
                let echo = aio::create_task(async move {
                    let mut buf = [0; 64];
                    let n = (&server).read(&mut buf).await?;
                    (&server).write_all(&buf[..n]).await?;
                    std::io::Result::Ok(())
                });
                (&client).write_all(b"over IOCP").await?;
                let mut buf = [0; 9];
                (&client).read_exact(&mut buf).await?;
                echo.await.map_err(std::io::Error::other)??;
                std::io::Result::Ok(buf)
            })
            .unwrap()
            .unwrap();
        assert_eq!(&echoed, b"over IOCP");
        event_loop.close().unwrap();
    }

    fn selector_loop_waits_on_more_than_512_sockets() {
        // asyncio's Windows SelectorEventLoop is select()-based and refuses
        // more than 512 sockets; aio's waits through IOCP. 600 connections,
        // each with a read pending on both ends at once, then every client
        // is answered.
        const CONNECTIONS: usize = 600;
        let event_loop = WindowsSelectorEventLoop::new().unwrap();
        let answered = event_loop
            .run_until_complete(async {
                let listener = aio::net::TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                let mut pairs = Vec::with_capacity(CONNECTIONS);
                for _ in 0..CONNECTIONS {
                    let client = aio::net::TcpStream::connect(addr).await?;
                    let (server, _) = listener.accept().await?;
                    pairs.push((Rc::new(client), Rc::new(server)));
                }
                let readers: Vec<_> = pairs
                    .iter()
                    .map(|(client, _)| {
                        let client = client.clone();
                        aio::create_task(async move {
                            let mut byte = [0];
                            (&*client).read_exact(&mut byte).await?;
                            std::io::Result::Ok(byte[0])
                        })
                    })
                    .collect();
                // Every reader is now waiting in the selector.
                aio::sleep(Duration::from_millis(20)).await;
                for (i, (_, server)) in pairs.iter().enumerate() {
                    (&**server).write_all(&[(i % 251) as u8]).await?;
                }
                let mut answered = 0;
                for (i, reader) in readers.into_iter().enumerate() {
                    let byte = reader.await.map_err(std::io::Error::other)??;
                    assert_eq!(byte, (i % 251) as u8, "connection {i}");
                    answered += 1;
                }
                std::io::Result::Ok(answered)
            })
            .unwrap()
            .unwrap();
        assert_eq!(answered, CONNECTIONS);
        event_loop.close().unwrap();
    }

    // -----------------------------------------------------------------------
    // Ctrl-C (test_windows_events.py: ProactorLoopCtrlC; test_runners.py)
    // -----------------------------------------------------------------------

    /// How long a child case may run before it is killed and the case fails.
    const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

    /// The message of `run`'s `Interrupted` error on Windows.
    const INTERRUPTED: &str = "interrupted by Ctrl-C (CTRL_C_EVENT)";

    /// What a child prints only if it outlives a Ctrl-C that should have
    /// ended it.
    const SURVIVED: &str = "survived the Ctrl-C";

    /// What a child prints, before its case's name, when the case returned.
    /// A child's exit status alone cannot tell: under Wine 8 a process that
    /// Windows' default Ctrl-C handler ended exits with 0.
    const CHILD_FINISHED: &str = "child case finished:";

    /// Runs this binary as `--child NAME` with a console of its own and no
    /// window (`CREATE_NO_WINDOW`): `GenerateConsoleCtrlEvent` reaches every
    /// process of the caller's console, so the child's Ctrl-C must reach no
    /// one else (not this process, not cargo). It is also what makes Ctrl-C
    /// testable under Wine: there the test binaries have no console (their
    /// output is a pipe) and `GenerateConsoleCtrlEvent` fails with
    /// `ERROR_INVALID_ACCESS`, while a child made with `CREATE_NO_WINDOW`
    /// gets a headless console where the event is delivered.
    fn run_child(name: &str) -> harness::ChildRun {
        harness::run_child(name, CHILD_TIMEOUT, |command| {
            command.creation_flags(CREATE_NO_WINDOW);
        })
        .unwrap_or_else(|failure| panic!("child case {name}: {}\n{}", failure.reason, failure.output))
    }

    /// Runs the child case `name` and asserts that it ran to its end and
    /// exited successfully (not ended by a Ctrl-C on the way).
    fn assert_child_finishes(name: &str) {
        let run = run_child(name);
        run.assert_success(name);
        assert!(
            run.output.contains(&format!("{CHILD_FINISHED} {name}\n")),
            "child case {name} did not run to its end (ended by Ctrl-C?) after {:?}; its output:\n{}",
            run.elapsed,
            run.output
        );
    }

    /// Asserts that the child ended the way Windows' default Ctrl-C handler
    /// ends a process: early (well before `within`), without printing
    /// [`SURVIVED`], and with `STATUS_CONTROL_C_EXIT`, or 0 under Wine 8,
    /// whose default handler calls `ExitProcess(0)` (later Wines exit with
    /// `STATUS_CONTROL_C_EXIT` too).
    fn assert_ended_by_ctrl_c(run: &harness::ChildRun, name: &str, within: Duration) {
        let code = run.status.code();
        assert!(
            run.elapsed < within
                && !run.output.contains(SURVIVED)
                && (code == Some(STATUS_CONTROL_C_EXIT) || code == Some(0)),
            "child case {name} was not ended by Ctrl-C: it ended with {} after {:?}; its output:\n{}",
            run.status,
            run.elapsed,
            run.output
        );
    }

    /// Presses Ctrl-C: sends `CTRL_C_EVENT` to every process of this
    /// process's console, which is this process alone (see `run_child`). The
    /// event arrives on a thread Windows makes in the process, a moment
    /// later. If Windows refuses, the child exits with 3: a panic here, on a
    /// loop callback or a helper thread, would not end the case.
    fn press_ctrl_c() {
        // SAFETY: takes no pointers; process group 0 is the caller's console.
        let sent = unsafe { GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0) };
        if sent == 0 {
            eprintln!(
                "GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0) failed: {}",
                io::Error::last_os_error()
            );
            std::process::exit(3);
        }
    }

    /// Presses Ctrl-C from a thread of its own after `delay`.
    fn press_ctrl_c_after(delay: Duration) -> JoinHandle<()> {
        thread::spawn(move || {
            thread::sleep(delay);
            press_ctrl_c();
        })
    }

    /// Sets a flag when dropped: tells whether a future was dropped.
    struct DropFlag(Rc<Cell<bool>>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    fn ctrl_c_cancels_main_on_the_selector_loop() {
        // test_windows_events.py: ProactorLoopCtrlC.test_ctrl_c (on both
        // Windows loops); test_runners.py: RunnerTests.test_interrupt_wait
        assert_child_finishes("ctrl-c-while-waiting-selector");
    }

    fn ctrl_c_cancels_main_on_the_proactor_loop() {
        assert_child_finishes("ctrl-c-while-waiting-proactor");
    }

    fn ctrl_c_ends_aio_run_while_main_is_busy() {
        // test_runners.py: RunnerTests.test_interrupt_call_soon
        assert_child_finishes("ctrl-c-while-busy");
    }

    fn runner_arms_ctrl_c_afresh_for_each_run() {
        // asyncio's Runner resets its interrupt count in every run(), so a
        // Ctrl-C in a later run is a first one again.
        assert_child_finishes("ctrl-c-in-each-run");
    }

    fn ctrl_c_too_late_for_a_run_spares_the_next() {
        // A Ctrl-C whose callback the loop has not run when run() returns
        // belongs to that run: it must not cancel the next run's main when
        // the loop gets to it.
        assert_child_finishes("ctrl-c-too-late-for-a-run");
    }

    fn second_ctrl_c_ends_the_process() {
        // runners.py's _on_sigint: a second Ctrl-C raises KeyboardInterrupt
        // at once, for a main task that never yields. The child's main blocks
        // for 10 s; the second Ctrl-C must end the process well before.
        let run = run_child("ctrl-c-twice-while-blocked");
        assert_ended_by_ctrl_c(&run, "ctrl-c-twice-while-blocked", Duration::from_secs(8));
    }

    fn ctrl_c_after_run_has_its_default_effect() {
        // test_runners.py: Runner.run's finally (the handler is removed): a
        // run without Ctrl-C returns main's output, and a Ctrl-C after it
        // ends the process as if aio had never been there.
        let run = run_child("ctrl-c-after-run");
        assert!(
            run.output.contains("run returned 7"),
            "the run before the Ctrl-C did not return main's output; the child's output:\n{}",
            run.output
        );
        assert_ended_by_ctrl_c(&run, "ctrl-c-after-run", Duration::from_secs(5));
    }

    fn ctrl_c_is_left_alone_outside_the_main_thread() {
        // runners.py: Runner.run installs its handler only in the main
        // thread; a run in another thread leaves Ctrl-C its default effect.
        let run = run_child("ctrl-c-outside-the-main-thread");
        assert_ended_by_ctrl_c(&run, "ctrl-c-outside-the-main-thread", Duration::from_secs(5));
    }

    fn child_ctrl_c_while_waiting_selector() {
        child_ctrl_c_while_waiting(WindowsSelectorEventLoop::new, is_selector);
    }

    fn child_ctrl_c_while_waiting_proactor() {
        child_ctrl_c_while_waiting(ProactorEventLoop::new, is_proactor);
    }

    /// A Runner on the loop `make` makes runs a main that waits forever; a
    /// Ctrl-C ends it: `run` gives `Interrupted`, the main future was dropped
    /// (cancelled), and the runner closes its loop cleanly.
    fn child_ctrl_c_while_waiting(make: fn() -> Result<EventLoop, Error>, is_right: fn(&EventLoop) -> bool) {
        let mut runner = aio::Runner::new().loop_factory(make);
        let event_loop = runner.get_loop().unwrap();
        assert!(is_right(&event_loop), "{event_loop:?}");
        // As CPython's test_ctrl_c: the thread that presses Ctrl-C starts
        // only once the loop runs. With nothing else to do, the loop then
        // blocks in its IOCP wait with no timeout: only the handler's
        // call_soon_threadsafe can wake it.
        let presser: Rc<RefCell<Option<JoinHandle<()>>>> = Rc::default();
        let slot = presser.clone();
        event_loop
            .call_soon(move || *slot.borrow_mut() = Some(press_ctrl_c_after(Duration::from_millis(100))))
            .unwrap();
        let unwound = Rc::new(Cell::new(false));
        let guard = DropFlag(unwound.clone());
        let started = Instant::now();
        let result = runner.run(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        let waited = started.elapsed();
        assert_error(result, ErrorKind::Interrupted, INTERRUPTED);
        assert!(unwound.get(), "the main task was not cancelled");
        assert!(waited < TIMEOUT, "Ctrl-C took {waited:?} to end run");
        presser
            .borrow_mut()
            .take()
            .expect("the loop started the thread that presses Ctrl-C")
            .join()
            .unwrap();
        assert!(!event_loop.is_closed(), "run must not close the loop");
        runner.close();
        assert!(event_loop.is_closed(), "close did not close the loop");
        assert_error(runner.run(async {}), ErrorKind::RunnerClosed, "Runner is closed");
    }

    fn child_ctrl_c_while_busy() {
        // A main that never waits, only yields: the Ctrl-C's callback is
        // run between two of its steps.
        let result = aio::run(async {
            let event_loop = aio::get_running_loop().unwrap();
            event_loop
                .call_later(Duration::from_millis(100), press_ctrl_c)
                .unwrap();
            let started = Instant::now();
            while started.elapsed() < TIMEOUT {
                aio::sleep(Duration::ZERO).await;
            }
            "spun through Ctrl-C"
        });
        assert_error(result, ErrorKind::Interrupted, INTERRUPTED);
        // aio::run closed its loop and unset it, as after any run.
        assert_error(
            aio::get_event_loop(),
            ErrorKind::NoCurrentLoop,
            "There is no current event loop in thread 'main'.",
        );
    }

    fn child_ctrl_c_in_each_run() {
        let mut runner = aio::Runner::new();
        for round in 1..=2 {
            // The second round's Ctrl-C is the process's second: it must be
            // a first one for this run, not the one that ends the process.
            let presser = press_ctrl_c_after(Duration::from_millis(100));
            let result = runner.run(std::future::pending::<()>());
            presser.join().unwrap();
            let Err(err) = result else {
                panic!("round {round}: run ended without Ctrl-C");
            };
            assert_eq!(err.kind(), ErrorKind::Interrupted, "round {round}: {err}");
            // Nothing of that Ctrl-C is left to cancel the next main.
            let output = runner
                .run(async {
                    aio::sleep(Duration::from_millis(50)).await;
                    7
                })
                .unwrap();
            assert_eq!(output, 7, "round {round}");
        }
        runner.close();
    }

    fn child_ctrl_c_too_late_for_a_run() {
        let mut runner = aio::Runner::new();
        let output = runner.run(async {
            // Queued before the stop that main's end queues, so it runs in
            // the loop's last iteration, after the iteration took the
            // cross-thread callbacks: the Ctrl-C's callback, posted while
            // this one blocks, waits in the queue until the next run.
            aio::get_running_loop()
                .unwrap()
                .call_soon(|| {
                    press_ctrl_c();
                    thread::sleep(Duration::from_millis(300));
                })
                .unwrap();
            1
        });
        assert_eq!(output.unwrap(), 1, "main had finished when Ctrl-C came");
        let output = runner.run(async {
            aio::sleep(Duration::from_millis(50)).await;
            2
        });
        assert_eq!(output.unwrap(), 2, "the last run's Ctrl-C cancelled this one");
        runner.close();
    }

    fn child_ctrl_c_twice_while_blocked() {
        let presser = thread::spawn(|| {
            thread::sleep(Duration::from_millis(300));
            press_ctrl_c();
            thread::sleep(Duration::from_millis(300));
            press_ctrl_c();
        });
        let result = aio::run(async {
            // A main task that never yields: the loop never runs the first
            // Ctrl-C's callback, so only the second can end the process.
            thread::sleep(Duration::from_secs(10));
        });
        presser.join().unwrap();
        println!("{SURVIVED}: main finished after two Ctrl-Cs: {result:?}");
    }

    fn child_ctrl_c_after_run() {
        let output = aio::run(async {
            aio::sleep(Duration::from_millis(10)).await;
            7
        });
        println!("run returned {}", output.unwrap());
        press_ctrl_c();
        thread::sleep(Duration::from_secs(5));
        println!("{SURVIVED} after run()");
    }

    fn child_ctrl_c_outside_the_main_thread() {
        let worker = thread::Builder::new()
            .name(String::from("not-main"))
            .spawn(|| {
                aio::run(async {
                    aio::get_running_loop()
                        .unwrap()
                        .call_later(Duration::from_millis(100), press_ctrl_c)
                        .unwrap();
                    aio::sleep(Duration::from_secs(5)).await;
                })
                .map_err(|err| err.to_string())
            })
            .unwrap();
        let result = worker.join().unwrap();
        println!("{SURVIVED} in a thread that is not main: {result:?}");
    }

    // -----------------------------------------------------------------------
    // test_windows_events.py: ProactorTests (restarts, end of stream)
    // -----------------------------------------------------------------------

    /// Collects what reaches `event_loop`'s exception handler.
    fn collect_exceptions(event_loop: &EventLoop) -> Rc<RefCell<Vec<String>>> {
        let reports = Rc::new(RefCell::new(Vec::new()));
        let sink = reports.clone();
        event_loop.set_exception_handler(move |_, context| sink.borrow_mut().push(context.to_string()));
        reports
    }

    fn loop_restarts_while_another_thread_calls_in() {
        // test_windows_events.py: ProactorTests.test_loop_restart (stop and
        // run_forever in a loop while another thread calls
        // call_soon_threadsafe every 10 ms; CPython fished for 10 s, here
        // one second per loop). Every callback sent arrives, and nothing
        // reaches the exception handler.
        for make in [ProactorEventLoop::new, WindowsSelectorEventLoop::new] {
            let event_loop = make().unwrap();
            let reports = collect_exceptions(&event_loop);
            let stop = Arc::new(AtomicBool::new(false));
            let received = Arc::new(AtomicU32::new(0));
            let sender: Rc<RefCell<Option<JoinHandle<u32>>>> = Rc::default();
            let (slot, threadsafe) = (sender.clone(), event_loop.threadsafe());
            let (stop_flag, counter) = (stop.clone(), received.clone());
            // Started once the loop runs, as CPython's thread.
            event_loop
                .call_soon(move || {
                    *slot.borrow_mut() = Some(thread::spawn(move || {
                        let mut sent = 0;
                        while !stop_flag.load(Ordering::SeqCst) {
                            let counter = counter.clone();
                            threadsafe
                                .call_soon_threadsafe(move || {
                                    counter.fetch_add(1, Ordering::SeqCst);
                                })
                                .expect("the loop is open");
                            sent += 1;
                            thread::sleep(Duration::from_millis(10));
                        }
                        sent
                    }));
                })
                .unwrap();
            let started = Instant::now();
            let mut restarts = 0;
            while started.elapsed() < Duration::from_secs(1) {
                event_loop.stop();
                event_loop.run_forever().unwrap();
                restarts += 1;
            }
            stop.store(true, Ordering::SeqCst);
            let sent = sender
                .borrow_mut()
                .take()
                .expect("the loop started the sender")
                .join()
                .unwrap();
            // The callbacks sent since the last turn run on the next one.
            event_loop.stop();
            event_loop.run_forever().unwrap();
            assert_eq!(received.load(Ordering::SeqCst), sent, "after {restarts} restarts");
            assert!(sent > 10, "only {sent} callbacks sent in a second");
            assert_eq!(*reports.borrow(), Vec::<String>::new());
            event_loop.close().unwrap();
        }
    }

    fn loop_restarts_with_an_executor_job_pending() {
        // test_windows_events.py: ProactorTests.test_read_self_pipe_restart
        // (bpo-39010: restarting the loop while the executor's job wakes it
        // from another thread, then closing, reported spurious errors).
        for make in [ProactorEventLoop::new, WindowsSelectorEventLoop::new] {
            let event_loop = make().unwrap();
            let reports = collect_exceptions(&event_loop);
            let job = event_loop.create_task(aio::to_thread(|| 5)).unwrap();
            event_loop.stop();
            event_loop.run_forever().unwrap();
            event_loop.stop();
            event_loop.run_forever().unwrap();
            let output = event_loop.run_until_complete(async move { job.await? }).unwrap();
            assert_eq!(output.unwrap(), 5);
            event_loop.shutdown_default_executor(TIMEOUT).unwrap();
            event_loop.close().unwrap();
            assert_eq!(*reports.borrow(), Vec::<String>::new());
        }
    }

    fn read_ends_when_the_peer_closes() {
        // test_windows_events.py: ProactorTests.test_close (a sock_recv
        // pending on one end of a connected pair ends with b'' once the
        // other end is closed), on both Windows loops.
        for make in [ProactorEventLoop::new, WindowsSelectorEventLoop::new] {
            let event_loop = make().unwrap();
            let read = event_loop
                .run_until_complete(async {
                    let listener = aio::net::TcpListener::bind("127.0.0.1:0").await?;
                    let client = aio::net::TcpStream::connect(listener.local_addr()?).await?;
                    let (server, _) = listener.accept().await?;
                    let reader = aio::create_task(async move {
                        let mut buf = [0; 100];
                        (&client).read(&mut buf).await
                    });
                    // The read is pending before the peer goes.
                    aio::sleep(Duration::from_millis(20)).await;
                    assert!(!reader.done(), "the read ended before the peer closed");
                    drop(server);
                    reader.await.map_err(io::Error::other)?
                })
                .unwrap();
            assert_eq!(read.unwrap(), 0, "{event_loop:?}");
            event_loop.close().unwrap();
        }
    }

    // -----------------------------------------------------------------------
    // Signals: Unsupported on Windows
    // -----------------------------------------------------------------------

    fn signal_handlers_are_unsupported_on_both_windows_loops() {
        // asyncio on Windows: add_signal_handler and remove_signal_handler
        // raise NotImplementedError (AbstractEventLoop's). aio's Windows
        // loops answer Unsupported, whatever the signal number (valid on
        // Unix or not), open, running or closed, and the loop goes on.
        const ADD: &str = "add_signal_handler: signals are not supported by the event loop on Windows";
        const REMOVE: &str = "remove_signal_handler: signals are not supported by the event loop on Windows";
        fn check(event_loop: &EventLoop, called: &Rc<Cell<bool>>) {
            for signum in [2, 15, 0, -1, 1000] {
                let flag = called.clone();
                assert_error(
                    event_loop.add_signal_handler(signum, move || flag.set(true)),
                    ErrorKind::Unsupported,
                    ADD,
                );
                assert_error(
                    event_loop.remove_signal_handler(signum),
                    ErrorKind::Unsupported,
                    REMOVE,
                );
            }
        }
        for (make, is_right) in [
            (
                WindowsSelectorEventLoop::new as fn() -> Result<EventLoop, Error>,
                is_selector as fn(&EventLoop) -> bool,
            ),
            (ProactorEventLoop::new, is_proactor),
        ] {
            let event_loop = make().unwrap();
            assert!(is_right(&event_loop), "{event_loop:?}");
            let called = Rc::new(Cell::new(false));
            check(&event_loop, &called);
            // From inside the running loop too; the loop then goes on.
            let inside = called.clone();
            let output = event_loop
                .run_until_complete(async move {
                    check(&aio::get_running_loop().unwrap(), &inside);
                    aio::sleep(Duration::from_millis(5)).await;
                    42
                })
                .unwrap();
            assert_eq!(output, 42);
            assert!(!called.get(), "a refused handler was called");
            event_loop.close().unwrap();
            check(&event_loop, &called);
        }
        // The loop aio::run makes through the default policy answers alike.
        let called = Rc::new(Cell::new(false));
        let inside = called.clone();
        let output = aio::run(async move {
            check(&aio::get_running_loop().unwrap(), &inside);
            7
        });
        assert_eq!(output.unwrap(), 7);
    }
}
