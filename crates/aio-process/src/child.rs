//! [`Child`]: a running subprocess, its pipes, its exit and its signals
//! (asyncio's `Process` and the parts of `BaseSubprocessTransport` it
//! reaches).
//!
//! A file of its own because it holds the rules of a child's life once it
//! exists: who may signal it, when, and what dropping it does.

use std::fmt;
use std::io;
use std::process::{ExitStatus, Output};

// `Process`: the OS's hold on the child, through which it is signalled: its
// pid (and pidfd) on Unix, its process handle on Windows.
#[cfg(unix)]
use crate::child_pid::ChildPid as Process;
#[cfg(unix)]
use crate::child_pid::exited;
use crate::communicate::exchange;
use crate::exit::ExitHandle;
use crate::pipe::{ChildStderr, ChildStdin, ChildStdout};
#[cfg(windows)]
use crate::windows::process::{ChildHandle as Process, SIGKILL, SIGTERM, exited};
#[cfg(unix)]
use libc::{SIGKILL, SIGTERM};

/// A spawned subprocess, reaped by the policy's child watcher (on Windows,
/// waited for through its process handle by the loop).
///
/// Made by [`Command::spawn`](crate::Command::spawn). The pipes asked for
/// with `Stdio::piped()` are in the public fields; take them out to use them
/// from other tasks. Dropping a `Child` does not wait for the process, but it
/// is reaped all the same (and killed first with
/// [`kill_on_drop`](crate::Command::kill_on_drop)).
pub struct Child {
    /// The child's stdin, when piped.
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, when piped.
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, when piped.
    pub stderr: Option<ChildStderr>,
    process: Process,
    exit: ExitHandle,
    kill_on_drop: bool,
}

impl Child {
    pub(crate) fn new(process: Process, exit: ExitHandle, kill_on_drop: bool) -> Child {
        Child {
            stdin: None,
            stdout: None,
            stderr: None,
            process,
            exit,
            kill_on_drop,
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.process.pid()
    }

    /// asyncio's `returncode`: `None` until the watcher reports the exit,
    /// then the exit code, `-signum` when a signal killed the child, or 255
    /// when someone else reaped it. On Windows: the exit code
    /// (`GetExitCodeProcess`, as `i32`), 1 after `terminate` or `kill`, once
    /// the loop has seen the process handle signalled.
    pub fn returncode(&self) -> Option<i32> {
        self.exit.returncode()
    }

    /// A handle on this child's exit that can be cloned and awaited by many
    /// tasks at once, and outlives the `Child`.
    pub fn exit_handle(&self) -> ExitHandle {
        self.exit.clone()
    }

    /// Closes the child's stdin (as std's `wait` does, so a child reading
    /// its input to the end can finish), then waits for the watcher to
    /// report its exit.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        Ok(self.exit.wait().await)
    }

    /// The exit status if the watcher has reported it, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        Ok(self.exit.try_status())
    }

    /// Sends the signal `signum` to the child.
    ///
    /// An error of kind `NotFound` ("process has exited", asyncio's
    /// `ProcessLookupError`) once the child has exited: the signal is never
    /// sent to a number that may have been given to another process (see the
    /// crate docs for how). `InvalidInput` for a number the kernel does not
    /// know.
    ///
    /// On Windows, which has no signals, SIGTERM (15) and SIGKILL (9) end
    /// the child with `TerminateProcess` (exit code 1, as asyncio's
    /// `terminate`); any other number is `InvalidInput`, the console control
    /// events asyncio accepts (`CTRL_C_EVENT`, `CTRL_BREAK_EVENT`) included.
    pub fn send_signal(&mut self, signum: i32) -> io::Result<()> {
        if self.returncode().is_some() {
            return Err(exited());
        }
        self.process.send_signal(signum)
    }

    /// Sends SIGTERM ([`send_signal`](Child::send_signal)); on Windows,
    /// `TerminateProcess`, as asyncio's `terminate` there.
    pub fn terminate(&mut self) -> io::Result<()> {
        self.send_signal(SIGTERM)
    }

    /// Sends SIGKILL ([`send_signal`](Child::send_signal)); on Windows,
    /// `TerminateProcess`, as asyncio's `kill` there.
    pub fn kill(&mut self) -> io::Result<()> {
        self.send_signal(SIGKILL)
    }

    /// Writes `input` (if any) to the child's stdin and closes it, while
    /// reading its stdout and stderr to their ends, all at once so that no
    /// pipe fills up while another is waited on; then waits for the exit.
    ///
    /// The pipes are taken out of the `Child` (and closed). A stream that is
    /// not piped gives an empty vector. A child that exits without reading
    /// all of `input` is not an error (as asyncio). Input for a child whose
    /// stdin is not piped is an `InvalidInput` error, and nothing is done
    /// (asyncio drops such input silently).
    pub async fn communicate(&mut self, input: Option<&[u8]>) -> io::Result<Output> {
        if let Some(input) = input
            && !input.is_empty()
            && self.stdin.is_none()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "communicate was given {} bytes of input, but the child's stdin is not piped \
                     (spawn it with stdin(Stdio::piped()))",
                    input.len()
                ),
            ));
        }
        let stdin = self.stdin.take().and_then(ChildStdin::into_pipe);
        let stdout = self.stdout.take().map(ChildStdout::into_pipe);
        let stderr = self.stderr.take().map(ChildStderr::into_pipe);
        let (stdout, stderr) = exchange(stdin, input.unwrap_or_default(), stdout, stderr).await?;
        let status = self.wait().await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // The watcher keeps the exit callback, so the child is reaped
        // whether or not it is killed here.
        if self.kill_on_drop {
            // Already exited, or gone: nothing to kill.
            let _ = self.kill();
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Child");
        d.field("pid", &self.id()).field("returncode", &self.returncode());
        #[cfg(unix)]
        d.field("pidfd", &self.process.has_pidfd());
        d.field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}
