//! Subprocesses (`aio::process`) under every child watcher: CPython 3.13's
//! `test_subprocess.py` (`SubprocessMixin`, run there once per watcher by
//! `SubprocessThreadedWatcherTests`, `SubprocessSafeWatcherTests`,
//! `SubprocessFastWatcherTests`, `SubprocessPidfdWatcherTests`, and
//! `GenericWatcherTests`), ported in our own words, plus the cases of the
//! subprocess issue: 1 MiB through pipes, a thousand spawns with no zombie
//! and no leaked descriptor, loops in other threads, the signal/exit race.
//!
//! A `harness = false` binary because the child watcher is process-global
//! (the policy's) and SIGCHLD and zombies are process-wide. The parent runs
//! one configuration per child process of this same binary
//! (`--config NAME`): `pidfd`, `threaded`, `safe`, `fast` (the watcher set
//! with `set_child_watcher` before the first `aio::run`) and `default`
//! (whatever the policy makes). The child runs the cases one by one, each in
//! an `aio::run` of its own in the main thread, each bounded by a timeout on
//! the loop and a watchdog thread, and prints one `case CONFIG/NAME ... ok`
//! or `... FAILED: WHY` line per case; the parent relays them, kills a
//! configuration that outlives its deadline, and ends with
//! `N passed, M failed`.
//!
//! Usage: `subprocess [FILTER]` runs the cases whose `CONFIG/NAME` contains
//! FILTER; `--list` lists them. The command line and the closing summary are
//! `harness.rs`'s, shared with the other `harness = false` suites.
//!
//! Not ported, because they test asyncio's machinery rather than behaviour
//! this API has: `SubprocessTransportTests` (mocked transports),
//! `test_pause_reading` (the stream reader's flow-control limit; our pipes
//! are read on demand, so nothing buffers beyond what the caller asks),
//! `test_cancel_make_subprocess_transport_exec` and `test_cancel_post_init`
//! (spawning is synchronous here: there is no half-made transport to
//! cancel), `test_close_kill_running` and `test_close_dont_kill_finished`
//! (there is no transport `close`; `kill_on_drop` is the nearest and is
//! tested), the text-mode refusals (`Command` has no text mode), and
//! `test_subprocess_protocol_events` (no protocols; `output` covers its
//! ordering of data, end of file and exit).

#[cfg(unix)]
#[path = "harness.rs"]
mod harness;

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    unix::main()
}

#[cfg(not(unix))]
fn main() {
    println!("\n0 passed, 0 failed (aio::process is Unix-only for now)");
}

#[cfg(unix)]
mod unix {
    use std::cell::Cell;
    use std::env;
    use std::fs;
    use std::future::{Future, poll_fn};
    use std::io::{self, BufRead, BufReader, Write as _};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::path::PathBuf;
    use std::pin::pin;
    use std::process::{ExitCode, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, PoisonError, mpsc};
    use std::task::Poll;
    use std::thread;
    use std::time::{Duration, Instant};

    use aio::process::{Child, Command};
    use aio::unix::ChildWatcher;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    use crate::harness::{self, panic_text};

    /// How long one case may take on its loop before it fails.
    const CASE_LIMIT: Duration = Duration::from_secs(60);

    /// The watchdog's bound on one case, past which the process exits: it
    /// only catches a case stuck outside its loop.
    const WATCHDOG_LIMIT: Duration = Duration::from_secs(90);

    /// How long one configuration (every case under one watcher) may run.
    const CONFIG_LIMIT: Duration = Duration::from_secs(600);

    /// 1 MiB, the size pushed through pipes.
    const MIB: usize = 1024 * 1024;

    // -----------------------------------------------------------------------
    // Configurations and cases
    // -----------------------------------------------------------------------

    /// Which child watcher a configuration installs.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Watcher {
        Pidfd,
        Threaded,
        Safe,
        Fast,
        /// None set: the policy makes its default lazily.
        Default,
        /// None set, in a process where a seccomp filter makes `pidfd_open`
        /// fail (as some sandboxes do): the default is then the threaded
        /// watcher, and `aio::process` signals by number after its `waitid`
        /// check.
        DefaultWithoutPidfd,
    }

    const CONFIGS: &[(&str, Watcher)] = &[
        ("pidfd", Watcher::Pidfd),
        ("threaded", Watcher::Threaded),
        ("safe", Watcher::Safe),
        ("fast", Watcher::Fast),
        ("default", Watcher::Default),
        ("no_pidfd", Watcher::DefaultWithoutPidfd),
    ];

    impl Watcher {
        fn make(self) -> Option<Arc<dyn ChildWatcher>> {
            match self {
                Watcher::Pidfd => Some(Arc::new(aio::unix::PidfdChildWatcher::new())),
                Watcher::Threaded => Some(Arc::new(aio::unix::ThreadedChildWatcher::new())),
                Watcher::Safe => Some(Arc::new(aio::unix::SafeChildWatcher::new())),
                Watcher::Fast => Some(Arc::new(aio::unix::FastChildWatcher::new())),
                Watcher::Default | Watcher::DefaultWithoutPidfd => None,
            }
        }

        /// What the configuration's process does first, before any thread
        /// exists (a seccomp filter covers the threads made after it).
        fn prepare_process(self) {
            if self == Watcher::DefaultWithoutPidfd {
                forbid_pidfd_open().expect("install the seccomp filter");
            }
        }

        /// Installs the watcher in the global policy (before any loop runs,
        /// so that `aio::run`'s `set_event_loop` attaches it).
        fn install(self) {
            if let Some(watcher) = self.make() {
                aio::get_event_loop_policy()
                    .set_child_watcher(Some(watcher))
                    .expect("the Unix policy takes a child watcher");
            }
        }

        /// Why the configuration cannot run here, if it cannot.
        fn unavailable(self) -> Option<&'static str> {
            match self {
                Watcher::Pidfd if !aio::unix::can_use_pidfd() => {
                    Some("pidfd_open does not work here (old kernel or seccomp)")
                }
                Watcher::DefaultWithoutPidfd if !aio::unix::can_use_pidfd() => {
                    Some("pidfds are unusable here anyway: the other configurations cover this one")
                }
                Watcher::DefaultWithoutPidfd if !SECCOMP_FILTER_WRITTEN => {
                    Some("the seccomp filter is written for Linux on x86_64 and aarch64 only")
                }
                _ => None,
            }
        }

        /// Whether a loop in a thread other than the main one can spawn:
        /// the pidfd and threaded watchers (and the default, which is one of
        /// them) need only the running loop; the SIGCHLD watchers need the
        /// main thread's loop, attached by the policy.
        fn serves_other_threads(self) -> bool {
            matches!(
                self,
                Watcher::Pidfd | Watcher::Threaded | Watcher::Default | Watcher::DefaultWithoutPidfd
            )
        }
    }

    /// Which configurations a case runs under.
    #[derive(Clone, Copy)]
    enum Under {
        Every,
        /// Loops in other threads: pidfd, threaded, default.
        OtherThreads,
        /// Only the SafeChildWatcher, which never reaps others' children and
        /// reports 255 for one reaped behind its back; and pidfd, which does
        /// the same (asyncio's `_do_wait` on ChildProcessError).
        ReapedElsewhere,
        /// Once: in the `default` configuration (the case replaces the
        /// policy's watcher or touches no watcher at all).
        Once,
        /// Only where the seccomp filter forbids pidfds.
        WithoutPidfd,
    }

    impl Under {
        fn includes(self, watcher: Watcher) -> bool {
            match self {
                Under::Every => true,
                Under::OtherThreads => watcher.serves_other_threads(),
                Under::ReapedElsewhere => matches!(watcher, Watcher::Safe | Watcher::Pidfd),
                Under::Once => watcher == Watcher::Default,
                Under::WithoutPidfd => watcher == Watcher::DefaultWithoutPidfd,
            }
        }
    }

    struct Case {
        name: &'static str,
        under: Under,
        run: fn(Watcher),
    }

    const fn case(name: &'static str, under: Under, run: fn(Watcher)) -> Case {
        Case { name, under, run }
    }

    /// The cases, in the order they run.
    const CASES: &[Case] = &[
        case("exit_codes", Under::Every, exit_codes),
        case("shell", Under::Every, shell),
        case("start_new_session", Under::Every, start_new_session),
        case("exec_with_path", Under::Every, exec_with_path),
        case(
            "returncode_is_none_while_running",
            Under::Every,
            returncode_is_none_while_running,
        ),
        case("kill_gives_minus_sigkill", Under::Every, kill_gives_minus_sigkill),
        case(
            "kill_shell_with_piped_stdout",
            Under::Every,
            kill_shell_with_piped_stdout,
        ),
        case(
            "terminate_gives_minus_sigterm",
            Under::Every,
            terminate_gives_minus_sigterm,
        ),
        case("send_signal_sighup", Under::Every, send_signal_sighup),
        case(
            "send_signal_after_exit_is_not_found",
            Under::Every,
            send_signal_after_exit_is_not_found,
        ),
        case(
            "send_signal_race_never_reports_255",
            Under::Every,
            send_signal_race_never_reports_255,
        ),
        case(
            "invalid_signal_number_is_refused",
            Under::Every,
            invalid_signal_number_is_refused,
        ),
        case(
            "signal_to_an_exited_unreported_child_is_not_found",
            Under::Every,
            signal_to_an_exited_unreported_child_is_not_found,
        ),
        case(
            "pidfds_are_forbidden_here",
            Under::WithoutPidfd,
            pidfds_are_forbidden_here,
        ),
        case(
            "reaped_elsewhere_reports_255",
            Under::ReapedElsewhere,
            reaped_elsewhere_reports_255,
        ),
        case("stdin_stdout", Under::Every, stdin_stdout),
        case("one_mib_through_cat", Under::Every, one_mib_through_cat),
        case("communicate", Under::Every, communicate),
        case("communicate_none_input", Under::Every, communicate_none_input),
        case(
            "communicate_one_mib_each_way",
            Under::Every,
            communicate_one_mib_each_way,
        ),
        case(
            "communicate_ignores_broken_pipe",
            Under::Every,
            communicate_ignores_broken_pipe,
        ),
        case("stdin_broken_pipe", Under::Every, stdin_broken_pipe),
        case("empty_input", Under::Every, empty_input),
        case("devnull_input", Under::Every, devnull_input),
        case("devnull_output", Under::Every, devnull_output),
        case("devnull_error", Under::Every, devnull_error),
        case("output", Under::Every, output),
        case("output_gives_no_stdin", Under::Every, output_gives_no_stdin),
        case("wait_closes_stdin", Under::Every, wait_closes_stdin),
        case(
            "read_stdout_after_process_exit",
            Under::Every,
            read_stdout_after_process_exit,
        ),
        case("env_exec", Under::Every, env_exec),
        case("env_shell", Under::Every, env_shell),
        case(
            "env_clear_remove_and_current_dir",
            Under::Every,
            env_clear_remove_and_current_dir,
        ),
        case("ten_concurrent_waits", Under::Every, ten_concurrent_waits),
        case(
            "communicate_stdout_concurrently",
            Under::Every,
            communicate_stdout_concurrently,
        ),
        case("cancel_process_wait", Under::Every, cancel_process_wait),
        case(
            "spawn_error_leaves_nothing",
            Under::Every,
            spawn_error_leaves_nothing,
        ),
        case("dropped_child_is_reaped", Under::Every, dropped_child_is_reaped),
        case(
            "kill_on_drop_kills_then_reaps",
            Under::Every,
            kill_on_drop_kills_then_reaps,
        ),
        case(
            "sequential_thousand_no_zombies_no_leaks",
            Under::Every,
            sequential_thousand_no_zombies_no_leaks,
        ),
        case(
            "concurrent_hundred_no_zombies_no_leaks",
            Under::Every,
            concurrent_hundred_no_zombies_no_leaks,
        ),
        case(
            "loop_in_another_thread",
            Under::OtherThreads,
            loop_in_another_thread,
        ),
        case(
            "spawn_outside_a_loop_fails",
            Under::Once,
            spawn_outside_a_loop_fails,
        ),
        case(
            "inactive_watcher_fails_before_spawn",
            Under::Once,
            inactive_watcher_fails_before_spawn,
        ),
    ];

    // -----------------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------------

    /// Runs `main` in `aio::run`, failing the case if it takes longer than
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

    /// Waits for `child`, bounded.
    async fn wait_code(child: &mut Child) -> i32 {
        let status = within(Duration::from_secs(30), "wait()", child.wait())
            .await
            .expect("wait");
        let returncode = child.returncode().expect("returncode after wait");
        // The status and the return code say the same thing.
        match status.signal() {
            Some(signum) => assert_eq!(returncode, -signum, "{status}"),
            None => assert_eq!(Some(returncode), status.code(), "{status}"),
        }
        returncode
    }

    fn sh(script: &str) -> Command {
        Command::shell(script)
    }

    /// Pids of this process's children that are zombies, from /proc.
    fn zombie_children() -> Vec<u32> {
        children_in_state(|state| state == 'Z')
    }

    /// Pids of this process's children in a state `wanted` accepts.
    fn children_in_state(wanted: impl Fn(char) -> bool) -> Vec<u32> {
        let me = std::process::id();
        let mut found = Vec::new();
        let Ok(entries) = fs::read_dir("/proc") else {
            return found;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            // A process may end between the listing and the read.
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces and
            // parentheses, so fields count from the last ')'.
            let Some(rest) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
                continue;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
            let ppid = fields.next().and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
            if ppid == me && wanted(state) {
                found.push(pid);
            }
        }
        found
    }

    /// Open descriptors of this process: each number with what it points to
    /// (`pipe:[inode]`, a path, ...), so a number reused for another file
    /// counts as another descriptor.
    fn open_fds() -> std::collections::BTreeSet<(i32, String)> {
        let Ok(dir) = fs::read_dir("/proc/self/fd") else {
            return Default::default();
        };
        dir.filter_map(|entry| {
            let fd: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            // The listing's own descriptor is gone by now: no target.
            let target = fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
            Some((fd, target.display().to_string()))
        })
        .collect()
    }

    /// Fails the case if a descriptor is open now that was not in `before`.
    /// Descriptors closed meanwhile (a watcher's thread from an earlier case
    /// ending, say) are no leak.
    fn assert_no_new_fds(before: &std::collections::BTreeSet<(i32, String)>, what: &str) {
        let leaked: Vec<_> = open_fds().difference(before).cloned().collect();
        assert!(leaked.is_empty(), "{what}: {leaked:?}");
    }

    /// Waits (on the loop) until no child of this process is a zombie, or
    /// fails after `limit` listing them.
    async fn until_no_zombies(limit: Duration) {
        let start = Instant::now();
        loop {
            let zombies = zombie_children();
            if zombies.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "zombie children after {limit:?}: {zombies:?}"
            );
            aio::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn read_line(stdout: &mut aio::process::ChildStdout) -> Vec<u8> {
        let mut line = Vec::new();
        let mut byte = [0u8];
        loop {
            let n = stdout.read(&mut byte).await.expect("read stdout");
            if n == 0 || byte[0] == b'\n' {
                return line;
            }
            line.push(byte[0]);
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    // -----------------------------------------------------------------------
    // Exit codes and signals
    // -----------------------------------------------------------------------

    /// Exit codes come back as asyncio's return codes and std's statuses.
    fn exit_codes(_: Watcher) {
        run(async {
            let mut child = sh("exit 3").spawn().expect("spawn");
            assert_eq!(wait_code(&mut child).await, 3);
            assert_eq!(child.try_wait().unwrap().and_then(|s| s.code()), Some(3));
            let mut ok = Command::new("true").spawn().expect("spawn true");
            assert_eq!(wait_code(&mut ok).await, 0);
            let mut fail = Command::new("false").spawn().expect("spawn false");
            assert_eq!(wait_code(&mut fail).await, 1);
            // Waiting again gives the same answer at once.
            assert_eq!(wait_code(&mut child).await, 3);
        });
    }

    // test_subprocess.py: SubprocessMixin.test_shell
    fn shell(_: Watcher) {
        run(async {
            let mut child = Command::shell("exit 7").spawn().expect("spawn");
            assert_eq!(wait_code(&mut child).await, 7);
        });
    }

    // test_subprocess.py: SubprocessMixin.test_start_new_session (a new
    // process group here: `CommandExt::process_group` through `as_std_mut`)
    fn start_new_session(_: Watcher) {
        run(async {
            let mut command = Command::shell("exit 8");
            command.as_std_mut().process_group(0);
            let mut child = command.spawn().expect("spawn");
            assert_eq!(wait_code(&mut child).await, 8);
        });
    }

    // test_subprocess.py: SubprocessMixin.test_create_subprocess_exec_with_path
    fn exec_with_path(_: Watcher) {
        run(async {
            let program = PathBuf::from("/bin/sh");
            let mut child = Command::new(&program)
                .args(["-c", "exit 0", PathBuf::from(".").to_str().unwrap()])
                .spawn()
                .expect("spawn");
            assert_eq!(wait_code(&mut child).await, 0);
        });
    }

    fn returncode_is_none_while_running(_: Watcher) {
        run(async {
            let mut child = Command::new("sleep").arg("60").spawn().expect("spawn");
            assert_eq!(child.returncode(), None);
            assert!(child.try_wait().unwrap().is_none());
            child.kill().expect("kill");
            assert_eq!(wait_code(&mut child).await, -libc::SIGKILL);
        });
    }

    // test_subprocess.py: SubprocessMixin.test_kill
    fn kill_gives_minus_sigkill(_: Watcher) {
        run(async {
            let mut child = Command::new("sleep").arg("60").spawn().expect("spawn");
            child.kill().expect("kill");
            assert_eq!(wait_code(&mut child).await, -9);
            let status = child.try_wait().unwrap().unwrap();
            assert_eq!((status.code(), status.signal()), (None, Some(9)));
        });
    }

    // test_subprocess.py: SubprocessMixin.test_kill_issue43884 (a shell
    // whose stdout is piped, killed while it runs a command)
    fn kill_shell_with_piped_stdout(_: Watcher) {
        run(async {
            let mut child = sh("sleep 1; sleep 1")
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            aio::sleep(Duration::from_millis(100)).await;
            child.kill().expect("kill");
            assert_eq!(wait_code(&mut child).await, -libc::SIGKILL);
        });
    }

    // test_subprocess.py: SubprocessMixin.test_terminate
    fn terminate_gives_minus_sigterm(_: Watcher) {
        run(async {
            let mut child = Command::new("sleep").arg("60").spawn().expect("spawn");
            child.terminate().expect("terminate");
            assert_eq!(wait_code(&mut child).await, -libc::SIGTERM);
        });
    }

    // test_subprocess.py: SubprocessMixin.test_send_signal (the child says
    // it is ready on its stdout, then gets SIGHUP)
    fn send_signal_sighup(_: Watcher) {
        run(async {
            let mut child = sh("echo sleeping; exec sleep 3600")
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut stdout = child.stdout.take().unwrap();
            let line = within(
                Duration::from_secs(10),
                "the child's line",
                read_line(&mut stdout),
            )
            .await;
            assert_eq!(line, b"sleeping");
            child.send_signal(libc::SIGHUP).expect("send_signal");
            assert_eq!(wait_code(&mut child).await, -libc::SIGHUP);
        });
    }

    /// After the exit is known, every signal is `NotFound` ("process has
    /// exited", asyncio's ProcessLookupError) and nothing is sent.
    fn send_signal_after_exit_is_not_found(_: Watcher) {
        run(async {
            let mut child = Command::new("true").spawn().expect("spawn");
            assert_eq!(wait_code(&mut child).await, 0);
            for result in [
                child.send_signal(libc::SIGUSR1),
                child.terminate(),
                child.kill(),
                child.send_signal(0),
            ] {
                let err = result.expect_err("a signal after exit");
                assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
                assert!(err.to_string().contains("process has exited"), "{err}");
            }
        });
    }

    // test_subprocess.py: SubprocessMixin.test_subprocess_send_signal_race
    // (gh-87744): signalling a child right as it exits must never reap it
    // behind the watcher's back, which would make the watcher report 255.
    fn send_signal_race_never_reports_255(_: Watcher) {
        run(async {
            for round in 0..10 {
                let mut child = Command::new("sleep").arg("0.1").spawn().expect("spawn");
                aio::sleep(Duration::from_millis(100)).await;
                match child.send_signal(libc::SIGUSR1) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => panic!("round {round}: send_signal: {err}"),
                }
                let code = wait_code(&mut child).await;
                assert_ne!(code, 255, "round {round}");
                assert!(code == 0 || code == -libc::SIGUSR1, "round {round}: {code}");
            }
        });
    }

    fn invalid_signal_number_is_refused(_: Watcher) {
        run(async {
            let mut child = Command::new("sleep").arg("60").spawn().expect("spawn");
            let err = child.send_signal(100_000).expect_err("signal 100000");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains("100000"), "{err}");
            // Signal 0 checks that the child is there.
            child.send_signal(0).expect("signal 0 to a running child");
            child.kill().expect("kill");
            assert_eq!(wait_code(&mut child).await, -9);
        });
    }

    /// A child that has exited but whose exit nobody has reported yet (the
    /// loop's thread is held in `waitid(WNOWAIT)` until the child is a
    /// zombie, so a SIGCHLD or pidfd watcher cannot have run; a threaded
    /// watcher may have reaped it already): `send_signal` is `NotFound`, sends
    /// nothing, and leaves the exit for the watcher, which reports the real
    /// code, not 255.
    fn signal_to_an_exited_unreported_child_is_not_found(_: Watcher) {
        run(async {
            for round in 0..5 {
                let mut child = Command::new("true").spawn().expect("spawn");
                // SAFETY: a zeroed siginfo_t is a valid value (plain integers
                // and unions of them); waitid writes into it during the call.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: the pointer is valid for writes for the call.
                let waited = unsafe {
                    libc::waitid(
                        libc::P_PID,
                        child.id() as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOWAIT,
                    )
                };
                // ECHILD: a threaded watcher collected it first.
                let err = io::Error::last_os_error();
                assert!(waited == 0 || err.raw_os_error() == Some(libc::ECHILD), "{err}");
                match child.send_signal(libc::SIGTERM) {
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    other => panic!("round {round}: a signal to an exited child gave {other:?}"),
                }
                assert_eq!(wait_code(&mut child).await, 0, "round {round}");
            }
        });
    }

    /// The `no_pidfd` configuration really has no pidfds (else it would
    /// test the pidfd path a second time).
    fn pidfds_are_forbidden_here(_: Watcher) {
        assert!(!aio::unix::can_use_pidfd(), "the seccomp filter did not take");
        run(async {
            let mut child = Command::new("sleep").arg("60").spawn().expect("spawn");
            assert!(format!("{child:?}").contains("pidfd: false"), "{child:?}");
            child.kill().expect("kill by number");
            assert_eq!(wait_code(&mut child).await, -9);
        });
    }

    /// A child reaped behind the watcher's back (here with `waitpid` on the
    /// loop's thread, before the watcher has a chance) reports 255, as
    /// asyncio's SafeChildWatcher and PidfdChildWatcher do.
    fn reaped_elsewhere_reports_255(_: Watcher) {
        run(async {
            let mut child = sh("sleep 0.1; exit 3").spawn().expect("spawn");
            let pid = child.id() as libc::pid_t;
            let mut status = 0;
            // SAFETY: waitpid writes one int through the pointer, which is
            // valid for the call.
            let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
            assert_eq!(reaped, pid, "{}", io::Error::last_os_error());
            assert_eq!(libc::WEXITSTATUS(status), 3);
            assert_eq!(wait_code(&mut child).await, 255);
            // Reaped, and reported: signals stay refused.
            let err = child.kill().expect_err("kill after exit");
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
        });
    }

    // -----------------------------------------------------------------------
    // Pipes
    // -----------------------------------------------------------------------

    // test_subprocess.py: SubprocessMixin.test_stdin_stdout
    fn stdin_stdout(_: Watcher) {
        run(async {
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"some data").await.expect("write");
            stdin.close().await.expect("close");
            // Closed: a further write is an error that says so.
            let err = stdin.write(b"more").await.expect_err("write after close");
            assert!(err.to_string().contains("closed"), "{err}");
            let mut data = Vec::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_end(&mut data)
                .await
                .expect("read");
            assert_eq!(data, b"some data");
            assert_eq!(wait_code(&mut child).await, 0);
        });
    }

    /// 1 MiB through `cat`, written by one task while another reads: more
    /// than the pipes hold, so both sides must make progress together.
    fn one_mib_through_cat(_: Watcher) {
        run(async {
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut stdin = child.stdin.take().unwrap();
            let mut stdout = child.stdout.take().unwrap();
            let writer = aio::create_task(async move {
                stdin.write_all(&pattern(MIB)).await?;
                stdin.close().await
            });
            let mut data = Vec::new();
            stdout.read_to_end(&mut data).await.expect("read");
            writer.await.expect("writer task").expect("write");
            assert_eq!(data.len(), MIB);
            assert!(data == pattern(MIB), "the bytes came back changed");
            assert_eq!(wait_code(&mut child).await, 0);
        });
    }

    // test_subprocess.py: SubprocessMixin.test_communicate
    fn communicate(_: Watcher) {
        run(async {
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let output = child.communicate(Some(b"some data")).await.expect("communicate");
            assert_eq!(output.stdout, b"some data");
            assert_eq!(output.stderr, b"");
            assert_eq!(output.status.code(), Some(0));
            assert_eq!(child.returncode(), Some(0));
            assert!(child.stdin.is_none() && child.stdout.is_none());
            // The stdin is gone now: more input is refused, and says why.
            let err = child
                .communicate(Some(b"more"))
                .await
                .expect_err("input without stdin");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains("stdin is not piped"), "{err}");
        });
    }

    // test_subprocess.py: SubprocessMixin.test_communicate_none_input
    fn communicate_none_input(_: Watcher) {
        run(async {
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let output = child.communicate(None).await.expect("communicate");
            assert_eq!(output.stdout, b"");
            assert_eq!(child.returncode(), Some(0));
        });
    }

    /// 1 MiB in, 1 MiB out on stdout and 1 MiB on stderr, at once: the
    /// child blocks on whichever pipe is full, so communicate must feed and
    /// drain all three together.
    fn communicate_one_mib_each_way(_: Watcher) {
        run(async {
            let mut child = sh("tee /dev/stderr")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            let input = pattern(MIB);
            let output = child.communicate(Some(&input)).await.expect("communicate");
            assert_eq!(output.stdout.len(), MIB);
            assert_eq!(output.stderr.len(), MIB);
            assert!(output.stdout == input, "stdout came back changed");
            assert!(output.stderr == input, "stderr came back changed");
            assert_eq!(output.status.code(), Some(0));
        });
    }

    // test_subprocess.py: SubprocessMixin.test_communicate_ignore_broken_pipe
    fn communicate_ignores_broken_pipe(_: Watcher) {
        run(async {
            let mut child = Command::new("true").stdin(Stdio::piped()).spawn().expect("spawn");
            let exit = child.exit_handle();
            within(Duration::from_secs(10), "the exit", exit.wait()).await;
            let output = child.communicate(Some(&pattern(MIB))).await.expect("communicate");
            assert_eq!(output.status.code(), Some(0));
        });
    }

    // test_subprocess.py: SubprocessMixin.test_stdin_broken_pipe (writing
    // more than the pipe holds to a child that has exited is BrokenPipe)
    fn stdin_broken_pipe(_: Watcher) {
        run(async {
            let mut child = Command::new("true").stdin(Stdio::piped()).spawn().expect("spawn");
            let mut stdin = child.stdin.take().unwrap();
            within(Duration::from_secs(10), "the exit", child.exit_handle().wait()).await;
            let err = stdin
                .write_all(&pattern(MIB))
                .await
                .expect_err("write to an exited child");
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

    // test_subprocess.py: SubprocessMixin.test_empty_input (and
    // test_stdin_not_inheritable: the parent's end of stdin is close-on-exec,
    // or the child would never see end of file)
    fn empty_input(_: Watcher) {
        run(async {
            let mut child = Command::new("wc")
                .arg("-c")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            let output = child.communicate(Some(b"")).await.expect("communicate");
            assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "0");
            assert_eq!(output.status.code(), Some(0));
        });
    }

    // test_subprocess.py: SubprocessMixin.test_devnull_input
    fn devnull_input(_: Watcher) {
        run(async {
            let mut child = Command::new("wc")
                .arg("-c")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            assert!(child.stdin.is_none());
            let output = child.communicate(None).await.expect("communicate");
            assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "0");
            assert_eq!(output.status.code(), Some(0));
        });
    }

    // test_subprocess.py: SubprocessMixin.test_devnull_output
    fn devnull_output(_: Watcher) {
        run(async {
            let mut child = Command::new("wc")
                .arg("-c")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            assert!(child.stdout.is_none());
            let output = child.communicate(Some(b"abc")).await.expect("communicate");
            assert_eq!(output.stdout, b"");
            assert_eq!(output.status.code(), Some(0));
        });
    }

    // test_subprocess.py: SubprocessMixin.test_devnull_error
    fn devnull_error(_: Watcher) {
        run(async {
            let mut child = sh("wc -c; echo oops >&2")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn");
            assert!(child.stderr.is_none());
            let output = child.communicate(Some(b"abc")).await.expect("communicate");
            assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "3");
            assert_eq!(output.stderr, b"");
            assert_eq!(output.status.code(), Some(0));
        });
    }

    /// `output` pipes stdout and stderr, and gives what both carried and the
    /// status.
    fn output(_: Watcher) {
        run(async {
            let output = sh("echo out; echo err >&2; exit 4")
                .output()
                .await
                .expect("output");
            assert_eq!(output.stdout, b"out\n");
            assert_eq!(output.stderr, b"err\n");
            assert_eq!(output.status.code(), Some(4));
        });
    }

    /// `output` gives the child an empty stdin (std's rule), so `cat` ends
    /// at once; a stream set on the builder is kept, and `spawn` on the same
    /// builder afterwards inherits again.
    fn output_gives_no_stdin(_: Watcher) {
        run(async {
            let mut cat = Command::new("cat");
            let output = within(Duration::from_secs(10), "cat's output", cat.output())
                .await
                .expect("output");
            assert_eq!(output.stdout, b"");
            assert_eq!(output.status.code(), Some(0));

            let mut echo = sh("echo hidden");
            echo.stdout(Stdio::null());
            let output = echo.output().await.expect("output");
            assert_eq!(output.stdout, b"");

            let mut child = cat.stdin(Stdio::null()).spawn().expect("spawn");
            assert!(child.stdout.is_none(), "spawn after output inherits stdout");
            assert_eq!(wait_code(&mut child).await, 0);
        });
    }

    /// `wait` closes stdin first (std's rule), so `cat` reading its input to
    /// the end finishes.
    fn wait_closes_stdin(_: Watcher) {
        run(async {
            let mut child = Command::new("cat").stdin(Stdio::piped()).spawn().expect("spawn");
            assert_eq!(wait_code(&mut child).await, 0);
            assert!(child.stdin.is_none());
        });
    }

    // test_subprocess.py: SubprocessMixin.test_read_stdout_after_process_exit
    // (256 KiB then exit 1, read slowly, with pauses between reads)
    fn read_stdout_after_process_exit(_: Watcher) {
        run(async {
            let mut child = sh("head -c 262144 /dev/zero; exit 1")
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut stdout = child.stdout.take().unwrap();
            let mut total = 0;
            let mut buf = vec![0; 65536];
            loop {
                let n = stdout.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                total += n;
                aio::sleep(Duration::from_millis(30)).await;
            }
            assert_eq!(total, 262_144);
            assert_eq!(wait_code(&mut child).await, 1);
        });
    }

    // test_subprocess.py: SubprocessMixin.test_create_subprocess_env_exec
    // (and check_stdout_output: a wait after communicate gives the same code)
    fn env_exec(_: Watcher) {
        run(async {
            let mut child = Command::new("printenv")
                .arg("FOO")
                .env("FOO", "baz")
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let output = child.communicate(None).await.expect("communicate");
            assert_eq!(output.stdout, b"baz\n");
            assert_eq!(child.returncode(), Some(0));
            let exit = child.exit_handle();
            let again = aio::create_task(async move { exit.wait().await });
            aio::sleep(Duration::ZERO).await;
            assert!(again.done(), "wait after exit completes at once");
            assert_eq!(again.await.unwrap().code(), Some(0));
        });
    }

    // test_subprocess.py: SubprocessMixin.test_create_subprocess_env_shell
    fn env_shell(_: Watcher) {
        run(async {
            let output = sh("printf %s \"$FOO\"")
                .env("FOO", "bar")
                .output()
                .await
                .expect("output");
            assert_eq!(output.stdout, b"bar");
        });
    }

    fn env_clear_remove_and_current_dir(_: Watcher) {
        run(async {
            let output = Command::new("/usr/bin/env")
                .env_clear()
                .env("ONLY", "1")
                .output()
                .await
                .expect("output");
            assert_eq!(output.stdout, b"ONLY=1\n");

            // Set, then removed: the child does not see it.
            let output = sh("printf %s \"${HOME-unset}\"")
                .env("HOME", "/somewhere")
                .env_remove("HOME")
                .output()
                .await
                .expect("output");
            assert_eq!(output.stdout, b"unset");

            let output = Command::new("pwd")
                .current_dir("/")
                .output()
                .await
                .expect("output");
            assert_eq!(output.stdout, b"/\n");
        });
    }

    // test_subprocess.py: SubprocessMixin.test_subprocess_concurrent_wait
    // (ten waits on one child: after it exited, and while it runs)
    fn ten_concurrent_waits(_: Watcher) {
        run(async {
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let output = child.communicate(Some(b"some data")).await.expect("communicate");
            assert_eq!(output.stdout, b"some data");
            let exit = child.exit_handle();
            let waits: Vec<_> = (0..10)
                .map(|_| {
                    let exit = exit.clone();
                    aio::create_task(async move { exit.wait().await })
                })
                .collect();
            for wait in waits {
                assert_eq!(wait.await.unwrap().code(), Some(0));
            }

            let mut running = Command::new("sleep").arg("0.2").spawn().expect("spawn");
            let exit = running.exit_handle();
            let waits: Vec<_> = (0..10)
                .map(|_| {
                    let exit = exit.clone();
                    aio::create_task(async move { exit.wait().await })
                })
                .collect();
            assert_eq!(wait_code(&mut running).await, 0);
            for wait in waits {
                let status = within(Duration::from_secs(10), "a concurrent wait", wait).await;
                assert_eq!(status.unwrap().code(), Some(0));
            }
        });
    }

    // test_subprocess.py: SubprocessMixin.test_subprocess_communicate_stdout
    // (gh-100133: ten children's outputs collected concurrently)
    fn communicate_stdout_concurrently(_: Watcher) {
        run(async {
            let tasks: Vec<_> = (0..10)
                .map(|i| {
                    aio::create_task(async move {
                        let mut child = Command::new("echo")
                            .arg(format!("foo{i}"))
                            .stdout(Stdio::piped())
                            .spawn()
                            .expect("spawn");
                        let output = child.communicate(None).await.expect("communicate");
                        String::from_utf8(output.stdout).unwrap().trim().to_owned()
                    })
                })
                .collect();
            for (i, task) in tasks.into_iter().enumerate() {
                assert_eq!(task.await.unwrap(), format!("foo{i}"));
            }
        });
    }

    // test_subprocess.py: SubprocessMixin.test_cancel_process_wait (a
    // cancelled wait leaves the child to be waited for again): a task
    // waiting on the exit is cancelled, and a `wait()` future is dropped
    // after it has registered its waker.
    fn cancel_process_wait(_: Watcher) {
        run(async {
            let mut child = Command::new("sleep").arg("60").spawn().expect("spawn");
            let exit = child.exit_handle();
            let task = aio::create_task(async move { exit.wait().await });
            aio::sleep(Duration::from_millis(10)).await;
            assert!(task.cancel());
            let err = task.await.expect_err("a cancelled task");
            assert!(err.is_cancelled(), "{err}");
            {
                let mut wait = pin!(child.wait());
                let polled = poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx).is_pending())).await;
                assert!(polled, "the child cannot have exited yet");
            }
            child.kill().expect("kill");
            assert_eq!(wait_code(&mut child).await, -9);
        });
    }

    // test_subprocess.py: SubprocessMixin.test_popen_error and
    // test_popen_error_with_stdin_pipe: a failed spawn leaves no process,
    // no pipe and no descriptor behind.
    fn spawn_error_leaves_nothing(_: Watcher) {
        run(async {
            // Warm up whatever the watcher makes on its first use.
            let mut warm = Command::new("true").spawn().expect("spawn");
            wait_code(&mut warm).await;
            let fds = open_fds();
            for _ in 0..10 {
                let err = Command::new("/nonexistent/program")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect_err("spawn of a missing program");
                assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
            }
            assert_no_new_fds(&fds, "descriptors leaked by failed spawns");
            assert_eq!(children_in_state(|_| true), Vec::<u32>::new());
        });
    }

    /// A `Child` dropped without `wait`, running or already exited, is
    /// still reaped: no zombie stays.
    fn dropped_child_is_reaped(_: Watcher) {
        run(async {
            let quick = Command::new("true").spawn().expect("spawn");
            let exit = quick.exit_handle();
            drop(quick);
            let slower = Command::new("sleep").arg("0.1").spawn().expect("spawn");
            let slower_exit = slower.exit_handle();
            drop(slower);
            let piped = sh("echo unread output")
                .stdout(Stdio::piped())
                .stdin(Stdio::piped())
                .spawn()
                .expect("spawn");
            drop(piped);
            within(Duration::from_secs(10), "the dropped child's exit", exit.wait()).await;
            within(
                Duration::from_secs(10),
                "the dropped child's exit",
                slower_exit.wait(),
            )
            .await;
            until_no_zombies(Duration::from_secs(10)).await;
        });
    }

    /// `kill_on_drop(true)`: dropping the running child kills it, and it is
    /// reaped.
    fn kill_on_drop_kills_then_reaps(_: Watcher) {
        run(async {
            let child = Command::new("sleep")
                .arg("60")
                .kill_on_drop(true)
                .spawn()
                .expect("spawn");
            let exit = child.exit_handle();
            drop(child);
            let status = within(Duration::from_secs(10), "the killed child's exit", exit.wait()).await;
            assert_eq!(status.signal(), Some(libc::SIGKILL));
            assert_eq!(exit.returncode(), Some(-9));
            until_no_zombies(Duration::from_secs(10)).await;

            // Dropped after its exit: nothing is sent.
            let mut done = Command::new("true").kill_on_drop(true).spawn().expect("spawn");
            assert_eq!(wait_code(&mut done).await, 0);
            drop(done);
        });
    }

    /// 1,000 spawns one after another: no zombie, and the same number of
    /// open descriptors after as before.
    fn sequential_thousand_no_zombies_no_leaks(_: Watcher) {
        run(async {
            let mut warm = Command::new("true").spawn().expect("spawn");
            wait_code(&mut warm).await;
            let fds = open_fds();
            for i in 0..1_000 {
                let mut child = Command::new("true").spawn().expect("spawn");
                let code = wait_code(&mut child).await;
                assert_eq!(code, 0, "spawn {i}");
            }
            assert_eq!(zombie_children(), Vec::<u32>::new(), "zombies");
            assert_no_new_fds(&fds, "descriptors left after 1,000 spawns");
        });
    }

    /// 100 children at once, each waited for by a task of its own.
    fn concurrent_hundred_no_zombies_no_leaks(_: Watcher) {
        run(async {
            let mut warm = Command::new("true").spawn().expect("spawn");
            wait_code(&mut warm).await;
            let fds = open_fds();
            let children: Vec<Child> = (0..100)
                .map(|_| Command::new("true").spawn().expect("spawn"))
                .collect();
            let tasks: Vec<_> = children
                .into_iter()
                .map(|mut child| aio::create_task(async move { child.wait().await.map(|s| s.code()) }))
                .collect();
            for task in tasks {
                let code = within(Duration::from_secs(30), "a concurrent child", task).await;
                assert_eq!(code.unwrap().unwrap(), Some(0));
            }
            assert_eq!(zombie_children(), Vec::<u32>::new(), "zombies");
            assert_no_new_fds(&fds, "descriptors left after 100 concurrent spawns");
        });
    }

    // test_subprocess.py: GenericWatcherTests.test_create_subprocess_with_pidfd
    // (a loop in another thread spawns, talks to and waits for a child)
    fn loop_in_another_thread(_: Watcher) {
        run(async {
            let (done, result) = mpsc::channel();
            let worker = thread::spawn(move || {
                let outcome = catch_unwind(|| {
                    aio::run(within(CASE_LIMIT, "the thread's loop", async {
                        let mut child = Command::new("cat")
                            .stdin(Stdio::piped())
                            .stdout(Stdio::piped())
                            .spawn()
                            .expect("spawn in another thread");
                        let output = child.communicate(Some(b"some data")).await.expect("communicate");
                        (child.returncode(), output.stdout)
                    }))
                });
                let _ = done.send(outcome.map_err(|_| ()));
            });
            // Wait on the main loop without blocking it.
            let start = Instant::now();
            let outcome = loop {
                match result.try_recv() {
                    Ok(outcome) => break outcome,
                    Err(mpsc::TryRecvError::Empty) if start.elapsed() < Duration::from_secs(30) => {
                        aio::sleep(Duration::from_millis(5)).await;
                    }
                    Err(err) => panic!("the thread's loop gave nothing within 30 s: {err}"),
                }
            };
            worker.join().expect("join the thread");
            let (returncode, stdout) = outcome.expect("the thread's case panicked").expect("aio::run");
            assert_eq!(returncode, Some(0));
            assert_eq!(stdout, b"some data");
        });
    }

    /// Outside a running loop nothing is spawned: the error says why.
    fn spawn_outside_a_loop_fails(_: Watcher) {
        let err = sh("exit 0").spawn().expect_err("spawn outside a loop");
        assert!(err.to_string().contains("no running event loop"), "{err}");
        assert_eq!(children_in_state(|_| true), Vec::<u32>::new());
    }

    /// A watcher that says it is inactive and records what it is asked.
    #[derive(Default)]
    struct InactiveWatcher {
        is_active_calls: AtomicUsize,
        add_calls: AtomicUsize,
    }

    impl ChildWatcher for InactiveWatcher {
        fn add_child_handler(
            &self,
            _pid: u32,
            _callback: Box<dyn FnOnce(u32, i32) + Send>,
        ) -> Result<(), aio::Error> {
            self.add_calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn remove_child_handler(&self, _pid: u32) -> bool {
            false
        }
        fn attach_loop(&self, _event_loop: Option<&aio::EventLoop>) {}
        fn is_active(&self) -> bool {
            self.is_active_calls.fetch_add(1, Ordering::SeqCst);
            false
        }
        fn close(&self) {}
    }

    // test_subprocess.py: GenericWatcherTests.test_create_subprocess_fails_with_inactive_watcher
    // (the check comes before the process exists: the script would leave a
    // file behind)
    fn inactive_watcher_fails_before_spawn(watcher: Watcher) {
        let inactive = Arc::new(InactiveWatcher::default());
        let policy = aio::get_event_loop_policy();
        policy
            .set_child_watcher(Some(Arc::clone(&inactive) as Arc<dyn ChildWatcher>))
            .expect("set_child_watcher");
        let marker = env::temp_dir().join(format!("aio-inactive-watcher-{}", std::process::id()));
        let _ = fs::remove_file(&marker);
        let script = format!("touch '{}'", marker.display());
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            run(async move {
                let err = sh(&script).spawn().expect_err("spawn under an inactive watcher");
                assert!(err.to_string().contains("not active"), "{err}");
                aio::sleep(Duration::from_millis(200)).await;
            })
        }));
        // Whatever happened, the suite's own watcher comes back.
        policy.set_child_watcher(None).expect("set_child_watcher(None)");
        watcher.install();
        if let Err(payload) = outcome {
            std::panic::resume_unwind(payload);
        }
        assert!(!marker.exists(), "the process was created anyway");
        assert_eq!(
            inactive.add_calls.load(Ordering::SeqCst),
            0,
            "add_child_handler was called"
        );
        assert!(
            inactive.is_active_calls.load(Ordering::SeqCst) >= 1,
            "is_active was not asked"
        );
        assert_eq!(children_in_state(|_| true), Vec::<u32>::new());
    }

    // -----------------------------------------------------------------------
    // A process without pidfds
    // -----------------------------------------------------------------------

    const SECCOMP_FILTER_WRITTEN: bool = cfg!(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ));

    /// Makes `pidfd_open` fail with ENOSYS in this process from now on, as a
    /// kernel before 5.3 or a sandbox would: a seccomp filter, inherited by
    /// the threads and children made afterwards. Call it before any thread
    /// exists.
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn forbid_pidfd_open() -> io::Result<()> {
        // The architecture the filter checks (linux/audit.h).
        #[cfg(target_arch = "x86_64")]
        const AUDIT_ARCH: u32 = 0xC000_003E;
        #[cfg(target_arch = "aarch64")]
        const AUDIT_ARCH: u32 = 0xC000_00B7;
        // Classic BPF opcodes (linux/filter.h) and seccomp_data offsets.
        const LOAD_WORD: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
        const JUMP_IF_EQUAL: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
        const RETURN: u16 = 0x06; // BPF_RET | BPF_K
        const SYSCALL_NR: u32 = 0;
        const ARCH: u32 = 4;
        let op = |code, k| libc::sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        };
        let jump = |k, jt, jf| libc::sock_filter {
            code: JUMP_IF_EQUAL,
            jt,
            jf,
            k,
        };
        let program = [
            op(LOAD_WORD, ARCH),
            jump(AUDIT_ARCH, 1, 0),
            op(RETURN, libc::SECCOMP_RET_ALLOW),
            op(LOAD_WORD, SYSCALL_NR),
            jump(libc::SYS_pidfd_open as u32, 0, 1),
            op(RETURN, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
            op(RETURN, libc::SECCOMP_RET_ALLOW),
        ];
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr().cast_mut(),
        };
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fprog` points at `program`, both alive for the call; the
        // kernel copies the filter.
        if unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    fn forbid_pidfd_open() -> io::Result<()> {
        Err(io::Error::other("no seccomp filter for this platform"))
    }

    // -----------------------------------------------------------------------
    // The harness
    // -----------------------------------------------------------------------

    /// The case the watchdog is watching, and since when.
    static CURRENT: Mutex<Option<(String, Instant)>> = Mutex::new(None);

    /// Where the last panic in this process happened, noted by the hook.
    static PANIC_PLACE: Mutex<Option<String>> = Mutex::new(None);

    thread_local! {
        /// Set while a case runs on this thread, so that only its panics are
        /// noted (a case's own threads report through it too).
        static IN_CASE: Cell<bool> = const { Cell::new(false) };
    }

    pub(crate) fn main() -> ExitCode {
        let args = harness::Args::parse("--config", &["--config"]);
        if let Some(name) = &args.child {
            return run_config(name, args.filter.as_deref());
        }
        if args.list {
            return harness::list(CONFIGS.iter().flat_map(|(config, watcher)| {
                CASES
                    .iter()
                    .filter(|case| case.under.includes(*watcher))
                    .map(move |case| format!("{config}/{}", case.name))
            }));
        }
        run_all(args.filter.as_deref())
    }

    fn selected(config: &str, watcher: Watcher, filter: Option<&str>) -> Vec<&'static Case> {
        CASES
            .iter()
            .filter(|case| case.under.includes(watcher))
            .filter(|case| filter.is_none_or(|filter| format!("{config}/{}", case.name).contains(filter)))
            .collect()
    }

    /// The parent: one child process per configuration, their lines relayed.
    fn run_all(filter: Option<&str>) -> ExitCode {
        let mut passed = 0;
        let mut failed = Vec::new();
        for (config, watcher) in CONFIGS {
            let cases = selected(config, *watcher, filter);
            if cases.is_empty() {
                continue;
            }
            if let Some(why) = watcher.unavailable() {
                println!("config {config}: {} cases skipped: {why}", cases.len());
                continue;
            }
            println!("\nconfig {config}: {} cases", cases.len());
            let mut command = harness::this_binary();
            command
                .arg("--config")
                .arg(config)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            if let Some(filter) = filter {
                command.arg(filter);
            }
            let mut child = command.spawn().expect("spawn the test binary");
            let stdout = child.stdout.take().expect("piped stdout");
            let (lines_tx, lines) = mpsc::channel();
            let reader = thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if lines_tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let start = Instant::now();
            let mut seen = 0;
            let status = loop {
                match lines.recv_timeout(Duration::from_millis(50)) {
                    Ok(line) => {
                        println!("{line}");
                        if line.starts_with("case ") {
                            seen += 1;
                            if line.ends_with(" ... ok") {
                                passed += 1;
                            } else {
                                failed.push(line.clone());
                            }
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        break child.wait().expect("wait for the configuration");
                    }
                }
                if start.elapsed() > CONFIG_LIMIT {
                    let _ = child.kill();
                    let _ = child.wait();
                    let line =
                        format!("case {config} ... FAILED: still running after {CONFIG_LIMIT:?}; killed");
                    println!("{line}");
                    failed.push(line);
                    break child.wait().expect("wait for the configuration");
                }
            };
            let _ = reader.join();
            if !status.success()
                && failed
                    .iter()
                    .all(|line| !line.starts_with(&format!("case {config}")))
            {
                let line =
                    format!("case {config} ... FAILED: the configuration's process ended with {status}");
                println!("{line}");
                failed.push(line);
            } else if seen < cases.len() && status.success() {
                let line = format!(
                    "case {config} ... FAILED: {seen} of {} cases reported",
                    cases.len()
                );
                println!("{line}");
                failed.push(line);
            }
        }
        harness::summary(passed, &failed)
    }

    /// A configuration's process: install the watcher, run the cases.
    fn run_config(config: &str, filter: Option<&str>) -> ExitCode {
        let Some((config, watcher)) = CONFIGS.iter().find(|(name, _)| *name == config) else {
            eprintln!("unknown configuration {config:?}");
            return ExitCode::from(2);
        };
        watcher.prepare_process();
        std::panic::set_hook(Box::new(|info| {
            let place = info.location().map(ToString::to_string).unwrap_or_default();
            let message = panic_text(info.payload());
            if IN_CASE.with(Cell::get) {
                *PANIC_PLACE.lock().unwrap_or_else(PoisonError::into_inner) = Some(place.clone());
            }
            eprintln!("panicked at {place}: {message}");
        }));
        start_watchdog();
        watcher.install();
        let mut all_ok = true;
        for case in selected(config, *watcher, filter) {
            let name = format!("{config}/{}", case.name);
            *CURRENT.lock().unwrap_or_else(PoisonError::into_inner) = Some((name.clone(), Instant::now()));
            IN_CASE.with(|flag| flag.set(true));
            let outcome = catch_unwind(|| (case.run)(*watcher));
            IN_CASE.with(|flag| flag.set(false));
            *CURRENT.lock().unwrap_or_else(PoisonError::into_inner) = None;
            match outcome {
                Ok(()) => println!("case {name} ... ok"),
                Err(payload) => {
                    all_ok = false;
                    let place = PANIC_PLACE
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take()
                        .unwrap_or_default();
                    println!("case {name} ... FAILED: {} (at {place})", panic_text(&*payload));
                }
            }
            let _ = io::stdout().flush();
        }
        if all_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// A thread that ends the process when a case runs past
    /// [`WATCHDOG_LIMIT`], after saying which.
    fn start_watchdog() {
        thread::spawn(|| {
            loop {
                thread::sleep(Duration::from_millis(200));
                let current = CURRENT.lock().unwrap_or_else(PoisonError::into_inner).clone();
                if let Some((name, since)) = current
                    && since.elapsed() > WATCHDOG_LIMIT
                {
                    println!("case {name} ... FAILED: watchdog: still running after {WATCHDOG_LIMIT:?}");
                    let _ = io::stdout().flush();
                    std::process::exit(3);
                }
            }
        });
    }
}
