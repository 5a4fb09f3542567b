//! Windows-only behaviour: the two policies of `aio::windows` and their
//! loops, from CPython's `test_windows_events.py` (`WinPolicyTests`,
//! `ProactorMultithreading`, the `ProactorTests` that apply to a loop without
//! pipes yet), plus what the Windows selector does that asyncio's
//! `select()`-based one cannot (more than 512 sockets).
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
    use std::panic::catch_unwind;
    use std::process::ExitCode;
    use std::rc::Rc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, mpsc};
    use std::thread;
    use std::time::{Duration, Instant};

    use aio::windows::{
        ProactorEventLoop, WindowsProactorEventLoopPolicy, WindowsSelectorEventLoop,
        WindowsSelectorEventLoopPolicy,
    };
    use aio::{Error, ErrorKind, EventLoop, EventLoopPolicy};
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

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
    ];

    pub(super) fn main() -> ExitCode {
        // One line per panic, whatever RUST_BACKTRACE says; the case's
        // FAILED line repeats the message.
        std::panic::set_hook(Box::new(|info| eprintln!("    panicked: {info}")));
        let args = harness::Args::parse("--child", harness::LIBTEST_FLAGS_WITH_VALUES);
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
}
