//! What the `harness = false` suites (`main_thread.rs`, `signals.rs`,
//! `watchers.rs`, `subprocess.rs`) share: their command line (`--child NAME`
//! or `--config NAME`, `--list`, a name filter), running a case in a child
//! process of the test binary under a time limit and collecting its output,
//! the `case NAME ... ok` / `case NAME ... FAILED: WHY` lines, and the closing
//! `N passed, M failed` with its exit status.
//!
//! A file of its own, included by `#[path]`, because each suite is a test
//! binary of its own and a test target cannot import another. The time
//! limits and the case tables stay in the suites.

// Each suite uses part of this file.
#![allow(dead_code)]

use std::any::Any;
use std::env;
use std::fmt::Display;
use std::io::{self, Read, Write};
#[cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// libtest flags that take a value as the next argument, which is then not
/// a filter.
pub const LIBTEST_FLAGS_WITH_VALUES: &[&str] = &[
    "--test-threads",
    "--skip",
    "--format",
    "--color",
    "--logfile",
    "-Z",
];

/// The command line of a suite.
pub struct Args {
    /// NAME of `CHILD_FLAG NAME` (empty when NAME is missing): this process
    /// is a child that runs that case or configuration.
    pub child: Option<String>,
    /// `--list`: list the cases.
    pub list: bool,
    /// The first argument that is neither a flag nor a flag's value: only
    /// the cases whose name contains it run.
    pub filter: Option<String>,
}

impl Args {
    /// Parses this process's arguments. `child_flag` is the flag a parent
    /// passes to its child (`--child`); `flags_with_values` are the flags
    /// whose next argument is no filter. Other flags cargo or a runner may
    /// pass (`--nocapture`, `--quiet`, ...) are ignored.
    pub fn parse(child_flag: &str, flags_with_values: &[&str]) -> Args {
        let args: Vec<String> = env::args().skip(1).collect();
        let child = args
            .iter()
            .position(|arg| arg == child_flag)
            .map(|at| args.get(at + 1).cloned().unwrap_or_default());
        let filter = args
            .iter()
            .enumerate()
            .find(|(at, arg)| {
                !arg.starts_with('-') && (*at == 0 || !flags_with_values.contains(&args[at - 1].as_str()))
            })
            .map(|(_, arg)| arg.clone());
        Args {
            child,
            list: args.iter().any(|arg| arg == "--list"),
            filter,
        }
    }
}

/// The cases whose name contains `filter` (every case without one), in
/// table order.
pub fn select<'c, C>(cases: &'c [C], filter: Option<&str>, name: impl Fn(&C) -> &str) -> Vec<&'c C> {
    cases
        .iter()
        .filter(|case| filter.is_none_or(|filter| name(case).contains(filter)))
        .collect()
}

/// `--list`: one `NAME: test` line per case, as libtest lists its tests.
pub fn list<N: Display>(names: impl IntoIterator<Item = N>) -> ExitCode {
    for name in names {
        println!("{name}: test");
    }
    ExitCode::SUCCESS
}

/// The child's side of `--child NAME`: runs the case of `cases` called
/// `name` with `run`. A failing case panics, and a panic out of `main` exits
/// with 101; an unknown name exits with 2.
pub fn run_child_case<C>(
    cases: &[C],
    name: &str,
    case_name: impl Fn(&C) -> &str,
    run: impl FnOnce(&C),
) -> ExitCode {
    let Some(case) = cases.iter().find(|case| case_name(case) == name) else {
        eprintln!("unknown case {name:?}");
        return ExitCode::from(2);
    };
    run(case);
    ExitCode::SUCCESS
}

/// Why a case failed: the rest of its FAILED line, and what is shown under
/// it.
pub struct Failure {
    pub reason: String,
    pub output: String,
}

/// Runs the selected cases one by one with `run`, printing `case NAME ... ok`
/// or `case NAME ... FAILED: WHY` for each (with the further lines of WHY and
/// the failure's output under it, as `    | ` lines), then the summary.
pub fn run_cases<C>(
    selected: &[&C],
    name: impl Fn(&C) -> &str,
    mut run: impl FnMut(&C) -> Result<(), Failure>,
) -> ExitCode {
    println!("\nrunning {} cases", selected.len());
    let mut failed = Vec::new();
    for case in selected {
        let name = name(case);
        print!("case {name} ... ");
        let _ = io::stdout().flush();
        match run(case) {
            Ok(()) => println!("ok"),
            Err(failure) => {
                let mut lines = failure.reason.lines();
                println!("FAILED: {}", lines.next().unwrap_or_default());
                for line in lines.chain(failure.output.lines()) {
                    println!("    | {line}");
                }
                failed.push(name);
            }
        }
    }
    summary(selected.len() - failed.len(), &failed)
}

/// The end of a run: the failed cases under `failures:`, then
/// `N passed, M failed`; the exit status is non-zero when anything failed.
pub fn summary(passed: usize, failed: &[impl Display]) -> ExitCode {
    if !failed.is_empty() {
        println!("\nfailures:");
        for name in failed {
            println!("    {name}");
        }
    }
    println!("\n{passed} passed, {} failed", failed.len());
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The message of a panic.
pub fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        String::from("<non-string panic>")
    }
}

/// This test binary as a command, with `AIO_DEBUG` removed from its
/// environment and no stdin.
pub fn this_binary() -> Command {
    let exe = env::current_exe().expect("the path of this test binary");
    let mut command = Command::new(exe);
    command.env_remove("AIO_DEBUG").stdin(Stdio::null());
    command
}

/// What a child case did.
pub struct ChildRun {
    pub status: ExitStatus,
    pub elapsed: Duration,
    /// Its stdout and its stderr, each under a `--- stdout` or `--- stderr`
    /// line.
    pub output: String,
}

impl ChildRun {
    /// Fails unless the child exited successfully, with its output.
    pub fn assert_success(&self, case: &str) {
        assert!(
            self.status.success(),
            "child case {case} ended with {} after {:?}; its output:\n{}",
            self.status,
            self.elapsed,
            self.output
        );
    }

    /// `Ok` when the child exited successfully, otherwise how it ended.
    #[cfg(unix)]
    pub fn verdict(self) -> Result<(), Failure> {
        if self.status.success() {
            return Ok(());
        }
        Err(Failure {
            reason: format!(
                "the child {} after {:?}",
                describe_exit(self.status),
                self.elapsed
            ),
            output: self.output,
        })
    }
}

/// Runs this binary as `--child NAME` (after `configure` has had its say on
/// the command) and collects its output. A child still running after `limit`
/// is killed: the error says so, with what it had printed.
pub fn run_child(
    name: &str,
    limit: Duration,
    configure: impl FnOnce(&mut Command),
) -> Result<ChildRun, Failure> {
    let mut command = this_binary();
    command
        .arg("--child")
        .arg(name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    configure(&mut command);
    let start = Instant::now();
    let mut child = command.spawn().expect("spawn the test binary as a child");
    // Drained on threads of their own, so a chatty child never blocks on a
    // full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let output = format!(
        "--- stdout\n{}--- stderr\n{}",
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default()
    );
    match status {
        Some(status) => Ok(ChildRun {
            status,
            elapsed,
            output,
        }),
        None => Err(Failure {
            reason: format!("the child did not finish within {limit:?} and was killed"),
            output,
        }),
    }
}

/// How a child ended, in words.
#[cfg(unix)]
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(101), _) => String::from("panicked (exit code 101)"),
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signum)) => format!("was killed by signal {signum}"),
        (None, None) => format!("ended with {status}"),
    }
}

/// Sends `signum` to this process, as `kill(getpid(), signum)`.
#[cfg(unix)]
pub fn send_to_self(signum: i32) {
    // SAFETY: kill(2) with our own pid and a signal number touches no memory
    // of ours.
    let rc = unsafe { libc::kill(libc::getpid(), signum) };
    assert_eq!(rc, 0, "kill(getpid(), {signum}): {}", io::Error::last_os_error());
}
