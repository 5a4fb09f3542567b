//! Subprocesses on Windows (`aio::process` on the `ProactorEventLoop`):
//! CPython 3.13's `test_subprocess.py` (`SubprocessMixin`, which asyncio runs
//! on Windows as `SubprocessProactorTests`) and the `wait_for_handle` cases of
//! `test_windows_events.py` (`ProactorTests`), ported in our own words, plus
//! the cases of the Windows issue: 1 MiB each way through `communicate`, a
//! hundred spawns with no handle leaked, a spawn on the selector loop
//! refused before any process exists, dropping a `Child` or a pipe with an
//! operation in flight.
//!
//! A `harness = false` binary, as `windows.rs`: the cases set the global
//! policy and run `aio::run` in the main thread, one at a time (the handle
//! count is process-wide), each bounded by a timeout on its loop and a
//! watchdog thread. Its children are this same binary, run as
//! `--act WHAT ...` (exit with a code, echo stdin, print, sleep, ...), so
//! the cases need no program of the system but `cmd.exe` for
//! `Command::shell`. Elsewhere than Windows it has nothing to run and says
//! so. `cargo xtask wine` runs it under Wine.
//!
//! Not ported: the cases `windows_process` cannot express or that test
//! asyncio's machinery (`SubprocessTransportTests`, protocols, text mode,
//! `test_pause_reading`, the transport cancellations; see `subprocess.rs`),
//! the Unix-only ones (`test_send_signal` with SIGHUP, `start_new_session`,
//! `/dev/stdin`, the child watchers), and `test_kill_issue43884`, which
//! needs `CTRL_BREAK_EVENT`, which `send_signal` refuses on Windows.
//!
//! Usage: `windows_process [FILTER]` runs the cases whose name contains
//! FILTER; `--list` lists them.

use std::process::ExitCode;

#[cfg(not(windows))]
fn main() -> ExitCode {
    println!("windows_process: Windows-only cases, nothing to run on this platform");
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
    use std::ffi::c_void;
    use std::future::{Future, poll_fn};
    use std::io::{self, Read, Write};
    use std::panic::catch_unwind;
    use std::pin::{Pin, pin};
    use std::process::{ExitCode, Stdio};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, PoisonError, mpsc};
    use std::task::Poll;
    use std::thread;
    use std::time::{Duration, Instant};

    use aio::process::{Child, Command};
    use aio::windows::{
        ProactorEventLoop, WindowsProactorEventLoopPolicy, WindowsSelectorEventLoop,
        WindowsSelectorEventLoopPolicy,
    };
    use aio::{ErrorKind, EventLoop};
    use futures_lite::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

    use crate::harness;

    /// How long one case may take on its loop before it fails.
    const CASE_LIMIT: Duration = Duration::from_secs(60);

    /// The watchdog's bound on one case, past which the process exits: it
    /// only catches a case stuck outside its loop.
    const WATCHDOG_LIMIT: Duration = Duration::from_secs(120);

    /// 1 MiB, the size pushed through pipes.
    const MIB: usize = 1024 * 1024;

    type Case = (&'static str, fn());

    const CASES: &[Case] = &[
        // test_subprocess.py: SubprocessMixin, as SubprocessProactorTests
        ("exit_codes", exit_codes),
        ("shell", shell),
        ("shell_output", shell_output),
        ("stdin_stdout", stdin_stdout),
        ("communicate", communicate),
        ("communicate_none_input", communicate_none_input),
        ("communicate_one_mib_each_way", communicate_one_mib_each_way),
        ("communicate_ignores_broken_pipe", communicate_ignores_broken_pipe),
        ("stdin_broken_pipe", stdin_broken_pipe),
        ("empty_input", empty_input),
        ("devnull_input_output_error", devnull_input_output_error),
        ("output", output),
        ("output_gives_no_stdin", output_gives_no_stdin),
        ("wait_closes_stdin", wait_closes_stdin),
        ("read_stdout_after_process_exit", read_stdout_after_process_exit),
        ("env_exec_and_current_dir", env_exec_and_current_dir),
        ("exec_with_path", exec_with_path),
        ("kill_sleeping_child", kill_sleeping_child),
        ("terminate_gives_exit_code_1", terminate_gives_exit_code_1),
        ("send_signal_numbers", send_signal_numbers),
        (
            "send_signal_after_exit_is_not_found",
            send_signal_after_exit_is_not_found,
        ),
        (
            "returncode_is_none_while_running",
            returncode_is_none_while_running,
        ),
        ("ten_concurrent_waits", ten_concurrent_waits),
        ("cancel_process_wait", cancel_process_wait),
        ("spawn_error_leaves_nothing", spawn_error_leaves_nothing),
        // The Windows issue
        (
            "hundred_sequential_spawns_leak_no_handle",
            hundred_sequential_spawns_leak_no_handle,
        ),
        (
            "spawn_on_the_selector_loop_is_unsupported_and_starts_nothing",
            spawn_on_the_selector_loop_is_unsupported_and_starts_nothing,
        ),
        (
            "dropped_child_still_reports_its_exit",
            dropped_child_still_reports_its_exit,
        ),
        ("kill_on_drop_terminates", kill_on_drop_terminates),
        (
            "dropping_a_pipe_with_a_read_in_flight",
            dropping_a_pipe_with_a_read_in_flight,
        ),
        (
            "dropping_stdin_with_a_write_in_flight_delivers_it",
            dropping_stdin_with_a_write_in_flight_delivers_it,
        ),
        ("loop_in_another_thread", loop_in_another_thread),
        ("spawn_outside_a_loop_fails", spawn_outside_a_loop_fails),
        // test_windows_events.py: ProactorTests
        ("wait_for_handle", wait_for_handle),
        ("wait_for_handle_cancel", wait_for_handle_cancel),
        (
            "wait_for_handle_on_the_selector_loop_is_unsupported",
            wait_for_handle_on_the_selector_loop_is_unsupported,
        ),
        (
            "closing_the_loop_with_a_wait_pending",
            closing_the_loop_with_a_wait_pending,
        ),
    ];

    static CURRENT: Mutex<Option<(&'static str, Instant)>> = Mutex::new(None);

    pub(super) fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().collect();
        if args.get(1).map(String::as_str) == Some("--act") {
            return act(&args[2..]);
        }
        std::panic::set_hook(Box::new(|info| eprintln!("    panicked: {info}")));
        let args = harness::Args::parse("--child", harness::LIBTEST_FLAGS_WITH_VALUES);
        if args.list {
            return harness::list(CASES.iter().map(|(name, _)| name));
        }
        start_watchdog();
        let selected = harness::select(CASES, args.filter.as_deref(), |(name, _)| name);
        harness::run_cases(
            &selected,
            |(name, _)| name,
            |(name, case)| {
                *CURRENT.lock().unwrap_or_else(PoisonError::into_inner) = Some((*name, Instant::now()));
                aio::set_event_loop_policy(Some(Arc::new(WindowsProactorEventLoopPolicy::new())));
                let outcome = catch_unwind(case).map_err(|payload| harness::Failure {
                    reason: harness::panic_text(&*payload),
                    output: String::new(),
                });
                aio::set_event_loop_policy(None);
                *CURRENT.lock().unwrap_or_else(PoisonError::into_inner) = None;
                outcome
            },
        )
    }

    /// A thread that ends the process when a case runs past
    /// [`WATCHDOG_LIMIT`], after saying which.
    fn start_watchdog() {
        thread::spawn(|| {
            loop {
                thread::sleep(Duration::from_millis(200));
                let current = *CURRENT.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some((name, since)) = current
                    && since.elapsed() > WATCHDOG_LIMIT
                {
                    println!("FAILED: watchdog: case {name} still running after {WATCHDOG_LIMIT:?}");
                    let _ = io::stdout().flush();
                    std::process::exit(3);
                }
            }
        });
    }

    // -----------------------------------------------------------------------
    // The child side: this binary as `--act WHAT ...`
    // -----------------------------------------------------------------------

    /// What a child made by the cases does.
    fn act(args: &[String]) -> ExitCode {
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
        match arg(0) {
            // Exits with the code given.
            "exit" => ExitCode::from(arg(1).parse::<u8>().expect("an exit code")),
            // Exits with any 32-bit code (ExitProcess takes it as given).
            "exit_raw" => std::process::exit(arg(1).parse::<i32>().expect("an exit code")),
            // Copies stdin to stdout (and, with "both", to stderr too) to
            // the end, then exits with 0.
            "echo" => {
                let both = arg(1) == "both";
                let mut stdin = io::stdin().lock();
                let mut stdout = io::stdout().lock();
                let mut stderr = io::stderr().lock();
                let mut buf = vec![0; 32 * 1024];
                loop {
                    let n = stdin.read(&mut buf).expect("read stdin");
                    if n == 0 {
                        break;
                    }
                    stdout.write_all(&buf[..n]).expect("write stdout");
                    if both {
                        stderr.write_all(&buf[..n]).expect("write stderr");
                    }
                }
                stdout.flush().expect("flush stdout");
                ExitCode::SUCCESS
            }
            // Writes its arguments to stdout and stderr, exits with 0.
            "print" => {
                print!("{}", arg(1));
                eprint!("{}", arg(2));
                ExitCode::SUCCESS
            }
            // Prints the environment variable named, or "unset", then the
            // working directory.
            "env" => {
                let value = std::env::var(arg(1)).unwrap_or_else(|_| String::from("unset"));
                let dir = std::env::current_dir().expect("a working directory");
                print!("{value}|{}", dir.display());
                ExitCode::SUCCESS
            }
            // Sleeps that many milliseconds, then exits with 0.
            "sleep" => {
                thread::sleep(Duration::from_millis(arg(1).parse().expect("milliseconds")));
                ExitCode::SUCCESS
            }
            // Says "ready" on stdout, then sleeps for a minute without
            // reading anything.
            "hold" => {
                println!("ready");
                let _ = io::stdout().flush();
                thread::sleep(Duration::from_secs(60));
                ExitCode::SUCCESS
            }
            // Creates the file named, then exits: proof that it ran.
            "touch" => {
                std::fs::write(arg(1), b"ran").expect("write the marker file");
                ExitCode::SUCCESS
            }
            // Reads one byte of stdin then exits with 0 without reading the
            // rest.
            "read_one" => {
                let mut byte = [0];
                let _ = io::stdin().read(&mut byte);
                ExitCode::SUCCESS
            }
            other => {
                eprintln!("unknown act {other:?}");
                ExitCode::from(2)
            }
        }
    }

    /// This binary as a child that does `what`.
    fn me(what: &[&str]) -> Command {
        let mut command = Command::new(std::env::current_exe().expect("the test binary's path"));
        command.arg("--act").args(what);
        command
    }

    // -----------------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------------

    /// Runs `main` in `aio::run` under the policy the case set (the
    /// proactor's, unless the case chose), failing the case past
    /// [`CASE_LIMIT`].
    fn run<F>(main: F) -> F::Output
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        aio::run(within(CASE_LIMIT, "the case", main)).expect("aio::run failed")
    }

    /// Awaits `future`, panicking with `what` if it takes longer than
    /// `limit`: every wait of this suite is bounded.
    async fn within<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
        let mut future = pin!(future);
        let mut timer = pin!(aio::sleep(limit));
        poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(output);
            }
            if timer.as_mut().poll(cx).is_ready() {
                panic!("{what} did not finish within {limit:?}");
            }
            Poll::Pending
        })
        .await
    }

    /// Waits for `child`, bounded; checks the status and the return code
    /// agree, and gives the code.
    async fn wait_code(child: &mut Child) -> i32 {
        let status = within(Duration::from_secs(30), "wait()", child.wait())
            .await
            .expect("wait");
        let returncode = child.returncode().expect("returncode after wait");
        assert_eq!(status.code(), Some(returncode), "{status}");
        returncode
    }

    /// `len` bytes of a pattern that a shifted or dropped chunk breaks.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// The number of open handles of this process. Windows' own count
    /// (`GetProcessHandleCount`) answers 0 under Wine 8, so this walks the
    /// handle table, as `net_common.rs` does for sockets.
    fn open_handles() -> usize {
        #[link(name = "kernel32")]
        unsafe extern "system" {
            fn GetHandleInformation(handle: *mut c_void, flags: *mut u32) -> i32;
        }
        /// Handle values are multiples of 4, handed out lowest first; past
        /// this many free values in a row, the table has no more handles.
        const GAP: usize = 1024;
        let mut open = 0;
        let mut free_in_a_row = 0;
        let mut value = 4usize;
        while free_in_a_row < GAP {
            let mut flags = 0u32;
            // SAFETY: asking about a handle value that may not be open is
            // what this call is for; `flags` is a valid place for the answer.
            if unsafe { GetHandleInformation(value as *mut c_void, &mut flags) } != 0 {
                open += 1;
                free_in_a_row = 0;
            } else {
                free_in_a_row += 1;
            }
            value += 4;
        }
        open
    }

    /// Polls `open_handles` until it is at most `at_most` (handles closed
    /// by another thread, or by Wine's server, may take a moment), for up
    /// to five seconds; gives the last count.
    fn handles_settle_to(at_most: usize) -> usize {
        let started = Instant::now();
        loop {
            let now = open_handles();
            if now <= at_most || started.elapsed() > Duration::from_secs(5) {
                return now;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Windows events by hand (the test crate has no Win32 bindings of its
    /// own for them): a manual-reset event, set or not.
    struct Event(*mut c_void);

    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn CreateEventW(
            attributes: *const c_void,
            manual: i32,
            initial: i32,
            name: *const u16,
        ) -> *mut c_void;
        fn SetEvent(event: *mut c_void) -> i32;
        fn CloseHandle(handle: *mut c_void) -> i32;
    }

    impl Event {
        fn new() -> Event {
            // SAFETY: no attributes and no name; a manual-reset event, not set.
            let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
            assert!(!event.is_null(), "CreateEventW: {}", io::Error::last_os_error());
            Event(event)
        }

        fn set(&self) {
            // SAFETY: the event is open while `self` lives.
            assert_ne!(unsafe { SetEvent(self.0) }, 0);
        }

        fn raw(&self) -> std::os::windows::io::RawHandle {
            self.0
        }
    }

    impl Drop for Event {
        fn drop(&mut self) {
            // SAFETY: made by CreateEventW, closed once, here.
            unsafe { CloseHandle(self.0) };
        }
    }

    // SAFETY: an event handle may be set and closed from any thread.
    unsafe impl Send for Event {}
    // SAFETY: as above; `set` takes `&self` and the kernel serialises it.
    unsafe impl Sync for Event {}

    // -----------------------------------------------------------------------
    // test_subprocess.py: SubprocessMixin
    // -----------------------------------------------------------------------

    fn exit_codes() {
        // The exit code is the return code; a status agrees.
        run(async {
            for code in [0, 3, 255] {
                let mut child = me(&["exit", &code.to_string()]).spawn().expect("spawn");
                assert_eq!(wait_code(&mut child).await, code);
            }
            // NTSTATUS-sized exit codes come back whole, as std's `code()`.
            let code = 0xC000_0005_u32 as i32;
            let mut child = me(&["exit_raw", &code.to_string()]).spawn().expect("spawn");
            assert_eq!(wait_code(&mut child).await, code);
        });
    }

    fn shell() {
        // test_shell: cmd.exe /c "exit 7"
        run(async {
            let mut child = Command::shell("exit 7").spawn().expect("spawn");
            assert_eq!(wait_code(&mut child).await, 7);
        });
    }

    fn shell_output() {
        // The command line reaches cmd.exe as it is.
        run(async {
            let output = Command::shell("echo hello").output().await.expect("output");
            assert!(output.status.success(), "{output:?}");
            assert_eq!(String::from_utf8_lossy(&output.stdout).trim_end(), "hello");
        });
    }

    fn stdin_stdout() {
        // test_stdin_stdout: write, close stdin, read stdout to its end.
        run(async {
            let mut child = me(&["echo"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut stdin = child.stdin.take().expect("piped stdin");
            stdin.write_all(b"some data").await.expect("write");
            stdin.close().await.expect("close");
            let mut stdout = child.stdout.take().expect("piped stdout");
            let mut data = Vec::new();
            stdout.read_to_end(&mut data).await.expect("read");
            assert_eq!(data, b"some data");
            assert_eq!(wait_code(&mut child).await, 0);
        });
    }

    fn communicate() {
        // test_communicate
        run(async {
            let mut child = me(&["echo"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let output = child.communicate(Some(b"some data")).await.expect("communicate");
            assert_eq!(output.stdout, b"some data");
            assert!(output.stderr.is_empty());
            assert_eq!(child.returncode(), Some(0));
        });
    }

    fn communicate_none_input() {
        // test_communicate_none_input: stdin is closed at once.
        run(async {
            let mut child = me(&["echo"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let output = child.communicate(None).await.expect("communicate");
            assert!(output.stdout.is_empty());
            assert_eq!(child.returncode(), Some(0));
        });
    }

    fn communicate_one_mib_each_way() {
        // 1 MiB in, 1 MiB out on stdout and again on stderr: the child
        // writes both while it reads, so all three pipes must move at once.
        run(async {
            let data = pattern(MIB);
            let mut child = me(&["echo", "both"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            let output = child.communicate(Some(&data)).await.expect("communicate");
            assert_eq!(output.stdout.len(), MIB);
            assert!(output.stdout == data, "stdout differs from the input");
            assert!(output.stderr == data, "stderr differs from the input");
            assert!(output.status.success());
        });
    }

    fn communicate_ignores_broken_pipe() {
        // test_communicate_ignore_broken_pipe: the child exits without
        // reading; 1 MiB more than fills the pipe.
        run(async {
            let mut child = me(&["exit", "0"]).stdin(Stdio::piped()).spawn().expect("spawn");
            let output = child.communicate(Some(&pattern(MIB))).await.expect("communicate");
            assert!(output.status.success());
        });
    }

    fn stdin_broken_pipe() {
        // test_stdin_broken_pipe: writing more than the pipe holds to a
        // child that read one byte and exited ends in BrokenPipe (on a
        // write or on the flush of the last one).
        run(async {
            let mut child = me(&["read_one"]).stdin(Stdio::piped()).spawn().expect("spawn");
            let mut stdin = child.stdin.take().expect("piped stdin");
            let data = pattern(MIB);
            let written = async {
                stdin.write_all(&data).await?;
                stdin.flush().await
            };
            let err = within(Duration::from_secs(30), "the write", written)
                .await
                .expect_err("the child stopped reading after one byte");
            assert!(
                matches!(
                    err.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ),
                "{err:?}"
            );
            assert_eq!(wait_code(&mut child).await, 0);
        });
    }

    fn empty_input() {
        // test_empty_input
        run(async {
            let mut child = me(&["echo"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let output = child.communicate(Some(b"")).await.expect("communicate");
            assert!(output.stdout.is_empty());
            assert_eq!(child.returncode(), Some(0));
        });
    }

    fn devnull_input_output_error() {
        // test_devnull_input, test_devnull_output, test_devnull_error
        run(async {
            let mut child = me(&["echo"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn");
            assert!(child.stdin.is_none() && child.stdout.is_none() && child.stderr.is_none());
            let output = child.communicate(None).await.expect("communicate");
            assert!(output.stdout.is_empty() && output.stderr.is_empty());
            assert_eq!(child.returncode(), Some(0));
        });
    }

    fn output() {
        // std's output(): stdout and stderr piped, read to their ends.
        run(async {
            let output = me(&["print", "to stdout", "to stderr"])
                .output()
                .await
                .expect("output");
            assert!(output.status.success());
            assert_eq!(output.stdout, b"to stdout");
            assert_eq!(output.stderr, b"to stderr");
        });
    }

    fn output_gives_no_stdin() {
        // output() gives the child no stdin: a child reading it ends at once.
        run(async {
            let output = me(&["echo"]).output().await.expect("output");
            assert!(output.status.success());
            assert!(output.stdout.is_empty());
        });
    }

    fn wait_closes_stdin() {
        // wait() closes stdin first (std's rule), so a child reading to the
        // end of its input can finish.
        run(async {
            let mut child = me(&["echo"]).stdin(Stdio::piped()).spawn().expect("spawn");
            assert_eq!(wait_code(&mut child).await, 0);
        });
    }

    fn read_stdout_after_process_exit() {
        // test_read_stdout_after_process_exit: the output waits in the pipe
        // after the exit.
        run(async {
            let mut child = me(&["print", "after the exit", ""])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            assert_eq!(wait_code(&mut child).await, 0);
            let mut data = Vec::new();
            child
                .stdout
                .take()
                .expect("piped stdout")
                .read_to_end(&mut data)
                .await
                .expect("read");
            assert_eq!(data, b"after the exit");
        });
    }

    fn env_exec_and_current_dir() {
        // test_create_subprocess_env_exec, plus env_remove and current_dir.
        run(async {
            let dir = std::env::temp_dir();
            let output = me(&["env", "AIO_WINDOWS_TEST"])
                .env("AIO_WINDOWS_TEST", "set by the test")
                .current_dir(&dir)
                .output()
                .await
                .expect("output");
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            let (value, cwd) = text.split_once('|').expect("value|dir");
            assert_eq!(value, "set by the test");
            assert_eq!(
                std::fs::canonicalize(cwd).expect("the child's dir"),
                std::fs::canonicalize(&dir).expect("the temp dir")
            );
            let output = me(&["env", "AIO_WINDOWS_TEST"])
                .env("AIO_WINDOWS_TEST", "x")
                .env_remove("AIO_WINDOWS_TEST")
                .output()
                .await
                .expect("output");
            assert!(output.stdout.starts_with(b"unset|"), "{output:?}");
        });
    }

    fn exec_with_path() {
        // test_create_subprocess_exec_with_path: a Path as the program.
        run(async {
            let exe = std::env::current_exe().expect("the test binary's path");
            let mut child = Command::new(exe.as_path())
                .args(["--act", "exit", "4"])
                .spawn()
                .expect("spawn");
            assert_eq!(wait_code(&mut child).await, 4);
        });
    }

    fn kill_sleeping_child() {
        // test_kill: on Windows kill is TerminateProcess; wait returns at
        // once with exit code 1 (asyncio checks only that it is an int).
        run(async {
            let mut child = me(&["sleep", "60000"]).spawn().expect("spawn");
            aio::sleep(Duration::from_millis(100)).await;
            let started = Instant::now();
            child.kill().expect("kill");
            assert_eq!(wait_code(&mut child).await, 1);
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{:?}",
                started.elapsed()
            );
        });
    }

    fn terminate_gives_exit_code_1() {
        // test_terminate
        run(async {
            let mut child = me(&["sleep", "60000"]).spawn().expect("spawn");
            child.terminate().expect("terminate");
            assert_eq!(wait_code(&mut child).await, 1);
        });
    }

    fn send_signal_numbers() {
        // SIGTERM and SIGKILL terminate; the console events and other
        // numbers are refused with a message, and the child goes on.
        run(async {
            let mut child = me(&["sleep", "60000"]).spawn().expect("spawn");
            for (signum, names) in [
                (0, "CTRL_C_EVENT"),
                (1, "CTRL_BREAK_EVENT"),
                (2, "only SIGTERM"),
                (1234, "only SIGTERM"),
            ] {
                let err = child.send_signal(signum).expect_err("refused");
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
                assert!(err.to_string().contains(names), "{err}");
            }
            aio::sleep(Duration::from_millis(50)).await;
            assert_eq!(child.try_wait().expect("try_wait"), None, "still running");
            child.send_signal(15).expect("SIGTERM");
            assert_eq!(wait_code(&mut child).await, 1);
            let mut child = me(&["sleep", "60000"]).spawn().expect("spawn");
            child.send_signal(9).expect("SIGKILL");
            assert_eq!(wait_code(&mut child).await, 1);
        });
    }

    fn send_signal_after_exit_is_not_found() {
        // asyncio's ProcessLookupError once the child has exited, whether
        // the loop has reported it yet or not.
        run(async {
            let mut child = me(&["exit", "0"]).spawn().expect("spawn");
            assert_eq!(wait_code(&mut child).await, 0);
            for result in [child.send_signal(15), child.terminate(), child.kill()] {
                let err = result.expect_err("the child has exited");
                assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
                assert_eq!(err.to_string(), "process has exited");
            }
            // Exited, but not reported: the loop has not run since.
            let mut child = me(&["exit", "0"]).spawn().expect("spawn");
            thread::sleep(Duration::from_millis(1500));
            if child.returncode().is_none() {
                let err = child.kill().expect_err("the child has exited");
                assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
            }
            assert_eq!(wait_code(&mut child).await, 0);
        });
    }

    fn returncode_is_none_while_running() {
        run(async {
            let mut child = me(&["sleep", "300"]).spawn().expect("spawn");
            assert_eq!(child.returncode(), None);
            assert_eq!(child.try_wait().expect("try_wait"), None);
            assert_eq!(wait_code(&mut child).await, 0);
            assert_eq!(
                child.try_wait().expect("try_wait").and_then(|s| s.code()),
                Some(0)
            );
            assert!(child.id() > 0);
        });
    }

    fn ten_concurrent_waits() {
        // test_subprocess_concurrent_wait, with ten waiters.
        run(async {
            let mut child = me(&["sleep", "300"]).spawn().expect("spawn");
            let waiters: Vec<_> = (0..10)
                .map(|_| {
                    let exit = child.exit_handle();
                    aio::create_task(async move { exit.wait().await.code() })
                })
                .collect();
            for waiter in waiters {
                assert_eq!(waiter.await.expect("waiter"), Some(0));
            }
            assert_eq!(wait_code(&mut child).await, 0);
        });
    }

    fn cancel_process_wait() {
        // test_cancel_process_wait: a cancelled wait leaves the child
        // running and waitable.
        run(async {
            let mut child = me(&["sleep", "500"]).spawn().expect("spawn");
            {
                let exit = child.exit_handle();
                let task = aio::create_task(async move { exit.wait().await });
                aio::sleep(Duration::from_millis(50)).await;
                task.cancel();
                assert!(task.await.expect_err("cancelled").is_cancelled());
            }
            assert_eq!(child.returncode(), None);
            assert_eq!(wait_code(&mut child).await, 0);
        });
    }

    fn spawn_error_leaves_nothing() {
        // test_popen_error: a program that does not exist fails the spawn
        // with NotFound and leaves no handle behind.
        run(async {
            let _ = Command::new("no-such-program-aio").spawn();
            let before = open_handles();
            for _ in 0..10 {
                let err = Command::new("no-such-program-aio")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect_err("no such program");
                assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
            }
            let after = handles_settle_to(before);
            assert!(after <= before, "handles before {before}, after {after}");
        });
    }

    // -----------------------------------------------------------------------
    // The Windows issue
    // -----------------------------------------------------------------------

    fn hundred_sequential_spawns_leak_no_handle() {
        // Each spawn opens a process handle, pipe handles and an event per
        // pipe; every one must be closed once the child is done with. A
        // warm-up lets the thread pool make its wait threads first.
        async fn one(i: usize) {
            let text = format!("child {i}");
            let mut child = me(&["echo"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            let output = child
                .communicate(Some(text.as_bytes()))
                .await
                .expect("communicate");
            assert_eq!(output.stdout, text.as_bytes());
            assert_eq!(child.returncode(), Some(0));
        }
        run(async {
            for i in 0..5 {
                one(i).await;
            }
            let before = open_handles();
            // The count sees a child's handles: its process, three pipes and
            // their events.
            let mut alive = me(&["echo"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            let with_child = open_handles();
            assert!(
                with_child >= before + 7,
                "handles before {before}, with a child {with_child}"
            );
            alive.communicate(None).await.expect("communicate");
            drop(alive);
            for i in 0..100 {
                one(i).await;
            }
            // A leak of one handle per spawn would show as 100.
            let after = handles_settle_to(before + 5);
            assert!(
                after <= before + 5,
                "handles before {before}, after 100 spawns {after}"
            );
        });
    }

    fn spawn_on_the_selector_loop_is_unsupported_and_starts_nothing() {
        // asyncio's Windows selector loop raises NotImplementedError for
        // subprocesses; aio's refuses with Unsupported before CreateProcess:
        // the child would have written a marker file.
        aio::set_event_loop_policy(Some(Arc::new(WindowsSelectorEventLoopPolicy::new())));
        let marker = std::env::temp_dir().join(format!("aio-selector-spawn-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let marker_arg = marker.to_string_lossy().into_owned();
        let before = open_handles();
        let answers = run(async move {
            let running = aio::get_running_loop().expect("a running loop");
            assert!(
                running.downcast_ref::<WindowsSelectorEventLoop>().is_some(),
                "{running:?}"
            );
            let spawned = me(&["touch", &marker_arg]).stdout(Stdio::piped()).spawn();
            let output = me(&["touch", &marker_arg]).output().await;
            [spawned.map(drop), output.map(drop)]
        });
        for answer in answers {
            let err = answer.expect_err("the selector loop cannot spawn");
            assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
            let message = err.to_string();
            assert!(
                message.contains("ProactorEventLoop") && message.contains("WindowsProactorEventLoopPolicy"),
                "{message}"
            );
            assert!(message.contains("WindowsSelectorEventLoop"), "{message}");
        }
        thread::sleep(Duration::from_millis(500));
        assert!(!marker.exists(), "a child ran: {}", marker.display());
        let after = handles_settle_to(before);
        assert!(after <= before, "handles before {before}, after {after}");
    }

    fn dropped_child_still_reports_its_exit() {
        // Dropping a Child without wait: its ExitHandle still learns the
        // exit; with neither left, the wait is simply dropped and its
        // handles closed.
        run(async {
            let child = me(&["sleep", "300"])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let exit = child.exit_handle();
            drop(child);
            let status = within(Duration::from_secs(30), "the exit", exit.wait()).await;
            assert_eq!(status.code(), Some(0));
            assert_eq!(exit.returncode(), Some(0));

            for _ in 0..3 {
                me(&["exit", "0"])
                    .spawn()
                    .expect("spawn")
                    .wait()
                    .await
                    .expect("wait");
            }
            let before = open_handles();
            for _ in 0..10 {
                drop(
                    me(&["sleep", "200"])
                        .stdout(Stdio::piped())
                        .spawn()
                        .expect("spawn"),
                );
            }
            // The children finish on their own; nothing of theirs stays.
            aio::sleep(Duration::from_millis(1500)).await;
            let after = handles_settle_to(before + 2);
            assert!(after <= before + 2, "handles before {before}, after {after}");
        });
    }

    fn kill_on_drop_terminates() {
        // kill_on_drop: the dropped child is terminated (exit code 1).
        run(async {
            let child = me(&["sleep", "60000"]).kill_on_drop(true).spawn().expect("spawn");
            let exit = child.exit_handle();
            let started = Instant::now();
            drop(child);
            let status = within(Duration::from_secs(20), "the exit", exit.wait()).await;
            assert_eq!(status.code(), Some(1));
            assert!(started.elapsed() < Duration::from_secs(20));
        });
    }

    fn dropping_a_pipe_with_a_read_in_flight() {
        // A read polled once (in flight in the kernel, the loop waiting for
        // its event), then the pipe dropped: the read is cancelled, its
        // memory outlives it, and nothing leaks. Many times over, so a
        // use-after-free would have its chances.
        run(async {
            let mut warm = me(&["hold"])
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn");
            let mut line = [0; 6];
            warm.stdout
                .as_mut()
                .expect("piped")
                .read_exact(&mut line)
                .await
                .expect("ready");
            drop(warm);
            let before = open_handles();
            for _ in 0..20 {
                let mut child = me(&["hold"]).stdout(Stdio::piped()).spawn().expect("spawn");
                let mut stdout = child.stdout.take().expect("piped stdout");
                let mut ready = [0; 6];
                stdout.read_exact(&mut ready).await.expect("the child says ready");
                assert_eq!(&ready, b"ready\n");
                // Nothing more comes: the read stays in flight.
                let mut buf = vec![0; 4096];
                {
                    let mut read = pin!(stdout.read(&mut buf));
                    poll_fn(|cx| {
                        assert!(read.as_mut().poll(cx).is_pending(), "the child wrote more");
                        Poll::Ready(())
                    })
                    .await;
                }
                drop(stdout);
                // The loop goes on; the callback of the dropped wait (if it
                // was queued) finds nothing to run.
                aio::sleep(Duration::from_millis(10)).await;
                child.kill().expect("kill");
                assert_eq!(wait_code(&mut child).await, 1);
            }
            let after = handles_settle_to(before + 2);
            assert!(after <= before + 2, "handles before {before}, after {after}");
        });
    }

    fn dropping_stdin_with_a_write_in_flight_delivers_it() {
        // A write taken while the pipe was full, still in flight when stdin
        // is dropped: it is not cancelled; it reaches the child, which then
        // sees the end of its input (as a Unix pipe would deliver it).
        run(async {
            let data = pattern(MIB);
            let mut child = me(&["echo"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut stdin = child.stdin.take().expect("piped stdin");
            let mut stdout = child.stdout.take().expect("piped stdout");
            // The child echoes while we write: read concurrently.
            let reader = aio::create_task(async move {
                let mut out = Vec::new();
                stdout.read_to_end(&mut out).await.map(|_| out)
            });
            // Written without a final flush: the last chunk may be in flight.
            let mut offset = 0;
            while offset < data.len() {
                offset += stdin.write(&data[offset..]).await.expect("write");
            }
            drop(stdin);
            let out = within(Duration::from_secs(30), "the echo", reader)
                .await
                .expect("reader task")
                .expect("read");
            assert_eq!(out.len(), data.len());
            assert!(out == data, "the echo differs from what was written");
            assert_eq!(wait_code(&mut child).await, 0);
        });
        // A write in flight to a child that never reads: the orphan waits
        // for it until the child is killed, then lets go of everything.
        let before = open_handles();
        run(async {
            let mut child = me(&["hold"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut stdout = child.stdout.take().expect("piped stdout");
            let mut ready = [0; 6];
            stdout.read_exact(&mut ready).await.expect("ready");
            let mut stdin = child.stdin.take().expect("piped stdin");
            // 64 KiB fill the pipe; a write after that is taken but stays in
            // flight, and the one after it waits.
            let chunk = pattern(64 * 1024);
            let mut waiting = false;
            for _ in 0..4 {
                match poll_fn(|cx| Poll::Ready(Pin::new(&mut stdin).poll_write(cx, &chunk))).await {
                    Poll::Ready(Ok(taken)) => assert_eq!(taken, chunk.len()),
                    Poll::Ready(Err(err)) => panic!("write: {err}"),
                    Poll::Pending => {
                        waiting = true;
                        break;
                    }
                }
            }
            assert!(
                waiting,
                "a write should be in flight to a child that does not read"
            );
            drop(stdin);
            child.kill().expect("kill");
            assert_eq!(wait_code(&mut child).await, 1);
        });
        let after = handles_settle_to(before + 2);
        assert!(after <= before + 2, "handles before {before}, after {after}");
    }

    fn loop_in_another_thread() {
        // A proactor loop in a thread that is not main spawns and waits.
        let (report, outcome) = mpsc::channel();
        let worker = thread::spawn(move || {
            let event_loop = ProactorEventLoop::new().expect("a proactor loop");
            let result = event_loop.run_until_complete(async {
                let output = me(&["print", "from a thread", ""]).output().await?;
                let mut child = me(&["exit", "6"]).spawn()?;
                let code = child.wait().await?.code();
                io::Result::Ok((output.stdout, code))
            });
            event_loop.close().expect("close");
            let _ = report.send(result.expect("run").map_err(|err| err.to_string()));
        });
        let result = outcome.recv_timeout(CASE_LIMIT).expect("the thread reported");
        worker.join().expect("the thread");
        let (stdout, code) = result.expect("the thread's spawns");
        assert_eq!(stdout, b"from a thread");
        assert_eq!(code, Some(6));
    }

    fn spawn_outside_a_loop_fails() {
        let err = me(&["exit", "0"]).spawn().expect_err("no running loop");
        assert!(err.to_string().contains("no running event loop"), "{err}");
    }

    // -----------------------------------------------------------------------
    // test_windows_events.py: ProactorTests
    // -----------------------------------------------------------------------

    /// A loop of `make`, and a wait it runs `f` in.
    fn on_loop<T: 'static>(
        make: fn() -> Result<EventLoop, aio::Error>,
        f: impl Future<Output = T> + 'static,
    ) -> T {
        let event_loop = make().expect("a loop");
        let out = event_loop
            .run_until_complete(within(CASE_LIMIT, "the case", f))
            .expect("run");
        event_loop.close().expect("close");
        out
    }

    fn wait_for_handle() {
        // test_wait_for_handle: a wait for an event that is not set does not
        // call back; once set, the callback runs on the loop's thread.
        on_loop(ProactorEventLoop::new, async {
            let event = Arc::new(Event::new());
            let mut fired = false;
            let (tx, rx) = mpsc::channel::<thread::ThreadId>();
            let event_loop = aio::get_running_loop().expect("running");
            let wait = aio::windows::wait_for_handle(&event_loop, event.raw(), move || {
                let _ = tx.send(thread::current().id());
            })
            .expect("the proactor waits for handles");
            let started = Instant::now();
            aio::sleep(Duration::from_millis(500)).await;
            assert!(rx.try_recv().is_err(), "called back for an event not set");
            let setter = {
                let event = Arc::clone(&event);
                thread::spawn(move || event.set())
            };
            setter.join().expect("set");
            let deadline = Instant::now() + Duration::from_secs(10);
            while !fired && Instant::now() < deadline {
                if let Ok(thread) = rx.try_recv() {
                    assert_eq!(
                        thread,
                        thread::current().id(),
                        "the callback runs on the loop's thread"
                    );
                    fired = true;
                }
                aio::sleep(Duration::from_millis(5)).await;
            }
            assert!(fired, "no callback after the event was set");
            assert!(started.elapsed() >= Duration::from_millis(500));
            // Dropping a wait that has called back is fine (asyncio issue #195).
            drop(wait);
            // An event already set: called back at once.
            let (tx, rx) = mpsc::channel::<()>();
            let _wait = aio::windows::wait_for_handle(&event_loop, event.raw(), move || {
                let _ = tx.send(());
            })
            .expect("wait");
            let deadline = Instant::now() + Duration::from_secs(10);
            while rx.try_recv().is_err() {
                assert!(Instant::now() < deadline, "no callback for a set event");
                aio::sleep(Duration::from_millis(5)).await;
            }
        });
    }

    fn wait_for_handle_cancel() {
        // test_wait_for_handle_cancel: a dropped wait never calls back,
        // and its callback is dropped by the drop; dropping twice over (a
        // second wait on the same handle) is fine.
        on_loop(ProactorEventLoop::new, async {
            let event = Event::new();
            let event_loop = aio::get_running_loop().expect("running");
            let called = Arc::new(AtomicBool::new(false));
            let owned = Arc::new(());
            let wait = {
                let called = Arc::clone(&called);
                let owned = Arc::clone(&owned);
                aio::windows::wait_for_handle(&event_loop, event.raw(), move || {
                    let _keep = owned;
                    called.store(true, Ordering::SeqCst);
                })
                .expect("wait")
            };
            let other =
                aio::windows::wait_for_handle(&event_loop, event.raw(), || {}).expect("a second wait");
            assert_eq!(Arc::strong_count(&owned), 2);
            drop(wait);
            assert_eq!(Arc::strong_count(&owned), 1, "the drop dropped the callback");
            drop(other);
            event.set();
            aio::sleep(Duration::from_millis(200)).await;
            assert!(!called.load(Ordering::SeqCst), "a cancelled wait called back");
            // Set, then dropped before the loop ran the callback: it never
            // runs either.
            let counted = Arc::new(AtomicUsize::new(0));
            let wait = {
                let counted = Arc::clone(&counted);
                aio::windows::wait_for_handle(&event_loop, event.raw(), move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                })
                .expect("wait")
            };
            thread::sleep(Duration::from_millis(200));
            drop(wait);
            aio::sleep(Duration::from_millis(100)).await;
            assert_eq!(counted.load(Ordering::SeqCst), 0);
        });
    }

    fn wait_for_handle_on_the_selector_loop_is_unsupported() {
        on_loop(WindowsSelectorEventLoop::new, async {
            let event = Event::new();
            let event_loop = aio::get_running_loop().expect("running");
            assert!(!event_loop.inner().supports_wait_for_handle());
            let err = aio::windows::wait_for_handle(&event_loop, event.raw(), || {})
                .expect_err("the selector loop does not wait for handles");
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
            assert!(err.to_string().contains("ProactorEventLoop"), "{err}");
        });
    }

    fn closing_the_loop_with_a_wait_pending() {
        // A wait outliving its loop: when the handle is signalled the
        // callback cannot be posted and does not run; dropping the wait
        // afterwards is fine.
        let event = Event::new();
        let called = Arc::new(AtomicBool::new(false));
        let event_loop = ProactorEventLoop::new().expect("a loop");
        let wait = {
            let called = Arc::clone(&called);
            aio::windows::wait_for_handle(&event_loop, event.raw(), move || {
                called.store(true, Ordering::SeqCst)
            })
            .expect("wait")
        };
        event_loop.close().expect("close");
        let err = aio::windows::wait_for_handle(&event_loop, event.raw(), || {}).expect_err("closed");
        assert_eq!(err.kind(), ErrorKind::Closed);
        event.set();
        thread::sleep(Duration::from_millis(200));
        drop(wait);
        assert!(!called.load(Ordering::SeqCst));
    }
}
