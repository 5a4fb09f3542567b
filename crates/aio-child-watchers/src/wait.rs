//! What every watcher shares: reading a child's exit with `waitpid`, turning
//! the status into asyncio's return code, and handing the result to a loop.
//!
//! A file of its own so that the four watchers agree on the numbers they
//! report (the exit code, `-signum` for a signal, 255 for a child someone
//! else reaped) and on the words they log.

use std::io;

use aio_events::{Error, ErrorKind, ThreadsafeLoop};
use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions, WaitStatus};

/// What a watcher keeps for a child until it exits.
pub(crate) type ChildCallback = Box<dyn FnOnce(u32, i32) + Send>;

/// asyncio's return code for a child that was reaped by somebody else.
pub(crate) const REAPED_ELSEWHERE: i32 = 255;

/// The pid as the kernel spells it; 0 and numbers past `i32::MAX` are no
/// child's pid.
pub(crate) fn checked_pid(pid: u32) -> Result<Pid, Error> {
    i32::try_from(pid).ok().and_then(Pid::from_raw).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid pid {pid}: a child process id is a positive 32-bit signed number"),
        )
    })
}

/// asyncio's `waitstatus_to_exitcode`: the exit code, or `-signum` for a
/// child killed by a signal. A status that is neither (it cannot be, for
/// a wait that asks only for exits) is passed through raw, as asyncio does.
pub(crate) fn returncode(status: WaitStatus) -> i32 {
    if let Some(code) = status.exit_status() {
        code
    } else if let Some(signum) = status.terminating_signal() {
        -signum
    } else {
        status.as_raw()
    }
}

/// The warning asyncio logs when a child it waits for is not (or no longer)
/// a child of this process.
pub(crate) fn warn_reaped_elsewhere(pid: u32) {
    log::warn!("Unknown child process pid {pid}, will report returncode {REAPED_ELSEWHERE}");
}

/// An OS error, with what the watcher was doing in the message.
pub(crate) fn os_error(errno: Errno, what: String) -> Error {
    let err = io::Error::from(errno);
    io::Error::new(err.kind(), format!("{what}: {err}")).into()
}

/// How a non-blocking wait for one pid ended.
pub(crate) enum Waited {
    /// The child is still running.
    Running,
    /// The child exited (or was reaped elsewhere: 255): its return code.
    Exited(i32),
}

/// `waitpid(pid, WNOHANG)`, retried on `EINTR`. `ECHILD` (not a child of
/// ours, or reaped elsewhere) is 255 with asyncio's warning.
pub(crate) fn wait_nohang(pid: u32, raw: Pid) -> Result<Waited, Errno> {
    loop {
        match rustix::process::waitpid(Some(raw), WaitOptions::NOHANG) {
            Ok(None) => return Ok(Waited::Running),
            Ok(Some((_, status))) => {
                let code = returncode(status);
                log::debug!("process {pid} exited with returncode {code}");
                return Ok(Waited::Exited(code));
            }
            Err(Errno::INTR) => continue,
            Err(Errno::CHILD) => {
                warn_reaped_elsewhere(pid);
                return Ok(Waited::Exited(REAPED_ELSEWHERE));
            }
            Err(errno) => return Err(errno),
        }
    }
}

/// `waitpid(pid, 0)`: blocks until the child exits, retried on `EINTR`.
/// Always gives a return code: 255 (with a log line) when the pid is no
/// child of ours or the wait failed otherwise.
pub(crate) fn wait_blocking(pid: u32, raw: Pid) -> i32 {
    loop {
        match rustix::process::waitpid(Some(raw), WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                let code = returncode(status);
                log::debug!("process {pid} exited with returncode {code}");
                return code;
            }
            // Without WNOHANG the kernel does not return before a child has
            // changed state; a spurious `None` is simply waited again.
            Ok(None) | Err(Errno::INTR) => continue,
            Err(Errno::CHILD) => {
                warn_reaped_elsewhere(pid);
                return REAPED_ELSEWHERE;
            }
            Err(errno) => {
                log::error!(
                    "waitpid({pid}) failed: {}; will report returncode {REAPED_ELSEWHERE}",
                    io::Error::from(errno)
                );
                return REAPED_ELSEWHERE;
            }
        }
    }
}

/// A child that exited, with the callback waiting for it.
pub(crate) struct Exited {
    pub(crate) pid: u32,
    pub(crate) returncode: i32,
    pub(crate) callback: ChildCallback,
}

/// Queues each callback on the loop (never runs it here: the caller may be a
/// thread of its own, and a callback that panics must not take the others
/// with it). Call with no lock of the watcher held: a refused callback is
/// dropped here, and dropping it runs the user's destructors.
pub(crate) fn deliver(threadsafe: &ThreadsafeLoop, exited: Vec<Exited>) {
    for Exited {
        pid,
        returncode,
        callback,
    } in exited
    {
        if threadsafe
            .call_soon_threadsafe(move || callback(pid, returncode))
            .is_err()
        {
            log::warn!("Loop that handles pid {pid} is closed: returncode {returncode} is not reported");
        }
    }
}
