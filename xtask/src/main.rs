//! `cargo xtask`: the repository's tasks as a plain Rust binary, so that they
//! need nothing but cargo and run the same on every machine (the alias is in
//! `.cargo/config.toml`).
//!
//! - `cargo xtask ci`: the checks CI runs, in order, stopping at the first
//!   failure (see `ci.rs`).
//! - `cargo xtask bench [--quick] [--strace] [WORKLOAD...]`: aio against its
//!   peers, one process per run, reported as medians and ratios (see
//!   `bench.rs`); `--strace` adds system calls per operation (`strace.rs`).
//! - `cargo xtask wine`: the Windows test suites under Wine, installing and
//!   setting up what they need first (see `wine.rs`).
//!
//! This file holds the command-line dispatch and the process helpers both
//! tasks use.

mod bench;
mod ci;
mod strace;
mod wine;

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci                             fmt, clippy, tests, Windows clippy, docs and Miri, stopping at the first failure
  bench [--quick] [--strace] [WORKLOAD...]
                                 aio against tokio, async-executor, asyncio, uvloop and the
                                 floors; writes target/bench/report.md and ratios.svg;
                                 --strace adds syscalls per operation
  wine                           installs Wine and mingw if missing, makes the prefix and the
                                 ProcessPrng shim, runs the Windows test suites under Wine
  help                           this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") if args.len() == 1 => ci::run(),
        Some("ci") => Err(TaskError::usage("`ci` takes no arguments")),
        Some("wine") if args.len() == 1 => wine::run(),
        Some("wine") => Err(TaskError::usage("`wine` takes no arguments")),
        Some("bench") => bench::Options::parse(&args[1..]).and_then(|options| bench::run(&options)),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(TaskError::usage(format!("unknown command `{other}`"))),
        None => Err(TaskError::usage("no command given")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(TaskError::Usage(message)) => {
            eprintln!("xtask: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(TaskError::Failed(message)) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Why a task stopped.
#[derive(Debug)]
pub(crate) enum TaskError {
    /// The command line was wrong; the usage text follows the message.
    Usage(String),
    /// A step failed; the message says which and why.
    Failed(String),
}

impl TaskError {
    pub(crate) fn usage(message: impl Into<String>) -> TaskError {
        TaskError::Usage(message.into())
    }

    pub(crate) fn failed(message: impl Into<String>) -> TaskError {
        TaskError::Failed(message.into())
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Usage(message) | TaskError::Failed(message) => f.write_str(message),
        }
    }
}

/// The workspace root: the parent of this crate's directory. Tasks run their
/// commands there, so `cargo xtask` works from any directory of the checkout.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // xtask/ always sits directly under the root.
    manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir)
}

/// A `cargo` command run from the workspace root, by the cargo that is
/// running xtask when there is one (so the pinned toolchain is used).
pub(crate) fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(args).current_dir(workspace_root());
    command
}

/// The command as a person would type it: `cargo` rather than the full path
/// of the toolchain's cargo.
pub(crate) fn display_command(command: &Command) -> String {
    let program = command.get_program();
    let program = if std::env::var_os("CARGO").as_deref() == Some(program) {
        "cargo".into()
    } else {
        program.to_string_lossy()
    };
    let mut shown = program.into_owned();
    for arg in command.get_args() {
        shown.push(' ');
        shown.push_str(&arg.to_string_lossy());
    }
    shown
}

/// Prints `command`, runs it with the terminal as its stdin, stdout and
/// stderr, and fails with `what` unless it exits successfully.
pub(crate) fn run_echoed(command: &mut Command) -> Result<(), TaskError> {
    let shown = display_command(command);
    println!("$ {shown}");
    let status = command
        .status()
        .map_err(|error| TaskError::failed(format!("could not start `{shown}`: {error}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(TaskError::failed(format!("`{shown}` failed ({status})")))
    }
}
