//! Which process a `Child` is, and how to signal it without ever hitting
//! another process that got the same number (CPython's gh-127049).
//!
//! A file of its own because it is the only place that talks to the kernel
//! about the child by number: every `cfg` for pidfds and every `unsafe`
//! signal call sits here.

use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::process::{Pid, WaitId, WaitIdOptions};

/// A child's pid, and on Linux a pidfd for it when the kernel gives one.
#[derive(Debug)]
pub(crate) struct ChildPid {
    pid: u32,
    #[cfg(target_os = "linux")]
    pidfd: Option<OwnedFd>,
}

impl ChildPid {
    /// Names the child `pid`, just spawned. On Linux it opens a pidfd: a
    /// zombie's number cannot be reused, so the pidfd names our child unless
    /// something that reaps every child (a FastChildWatcher on another
    /// thread) collected it in the microseconds since the spawn and the
    /// number was given out again; even then `send_signal`'s `waitid` on the
    /// pidfd finds no child of ours and sends nothing. Without pidfds (old
    /// kernel, seccomp) signals go by number, after the same check.
    pub(crate) fn open(pid: u32) -> ChildPid {
        ChildPid {
            pid,
            #[cfg(target_os = "linux")]
            pidfd: Pid::from_raw(pid as i32)
                .and_then(|pid| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether signals go through a pidfd.
    pub(crate) fn has_pidfd(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            self.pidfd.is_some()
        }
        #[cfg(not(target_os = "linux"))]
        {
            false
        }
    }

    /// Sends `signum` to the child, which the caller knows has not been
    /// reported as exited. `NotFound` when the child turns out to have
    /// exited.
    pub(crate) fn send_signal(&self, signum: i32) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(pidfd) = &self.pidfd {
            // An exit waiting to be collected (or collected by the watcher,
            // whose callback has not run yet) is "process has exited", as
            // without a pidfd. Kernels before 5.4 have no P_PIDFD (EINVAL):
            // the signal then tells, harmlessly, since the pidfd names our
            // child.
            match rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), exit_probe()) {
                Ok(None) | Err(rustix::io::Errno::INVAL) => {}
                Ok(Some(_)) | Err(rustix::io::Errno::CHILD) => return Err(exited()),
                Err(err) => return Err(err.into()),
            }
            // SAFETY: pidfd_send_signal reads its four arguments only: an fd
            // this struct owns (open for the call's duration), a signal
            // number the kernel validates, a null siginfo (allowed: the
            // kernel fills in a default one) and zero flags.
            let result = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    signum,
                    std::ptr::null::<libc::siginfo_t>(),
                    0u32,
                )
            };
            return signal_result(result as i32, signum);
        }
        self.kill_if_running(signum)
    }

    /// The fallback without a pidfd: signal only a child that `waitid` says
    /// is still running. `WNOWAIT` leaves a zombie for the watcher to reap.
    fn kill_if_running(&self, signum: i32) -> io::Result<()> {
        let pid = Pid::from_raw(self.pid as i32).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("invalid pid {}", self.pid))
        })?;
        match rustix::process::waitid(WaitId::Pid(pid), exit_probe()) {
            // Nothing to report: the child has not exited yet.
            Ok(None) => {}
            // An exit waits to be collected: the child is a zombie.
            Ok(Some(_)) => return Err(exited()),
            // Not our child any more: the watcher has reaped it and its
            // callback has not run yet, so the number may already be reused.
            Err(rustix::io::Errno::CHILD) => return Err(exited()),
            Err(err) => return Err(err.into()),
        }
        // SAFETY: kill(2) takes two integers and touches no memory of ours.
        let result = unsafe { libc::kill(self.pid as libc::pid_t, signum) };
        signal_result(result, signum)
    }
}

/// `waitid` options that ask whether the child has exited without waiting
/// and without collecting the exit: a zombie stays for the watcher.
fn exit_probe() -> WaitIdOptions {
    WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT
}

/// asyncio's `ProcessLookupError` for a child that has exited.
pub(crate) fn exited() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "process has exited")
}

/// The outcome of `kill` or `pidfd_send_signal` (0 or -1 with errno).
fn signal_result(result: i32, signum: i32) -> io::Result<()> {
    if result == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    Err(match err.raw_os_error() {
        Some(libc::ESRCH) => exited(),
        Some(libc::EINVAL) => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid signal number {signum}"),
        ),
        _ => err,
    })
}
