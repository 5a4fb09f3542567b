//! A child on Windows: its process handle ([`ChildHandle`]), how it is
//! ended (`TerminateProcess`, asyncio's `terminate` and `kill` there), and
//! how its exit reaches its [`ExitHandle`]: the loop waits for the process
//! handle to be signalled ([`watch_exit`]), as asyncio's proactor does with
//! `wait_for_handle` in `windows_events.py`.
//!
//! A file of its own because it is the Windows counterpart of
//! `child_pid.rs`: the only place that talks to the kernel about the child.
//! Windows has no zombies and no pid reuse while a handle is open: the handle
//! names the process for as long as we hold it, so nothing here races.

use std::io;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::sync::Arc;

use aio_events::EventLoop;
use aio_events::windows::HandleWait;
use windows_sys::Win32::Foundation::{HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::Threading::{GetExitCodeProcess, TerminateProcess, WaitForSingleObject};

use crate::exit::ExitHandle;

/// The signal numbers `send_signal` accepts on Windows (those of Unix):
/// both end the process.
pub(crate) const SIGTERM: i32 = 15;
pub(crate) const SIGKILL: i32 = 9;

/// asyncio's `signal.CTRL_C_EVENT` and `signal.CTRL_BREAK_EVENT`, named in
/// the error that refuses them.
const CTRL_C_EVENT: i32 = 0;
const CTRL_BREAK_EVENT: i32 = 1;

/// The exit code a terminated child gets (asyncio's `Popen.terminate` on
/// Windows: `TerminateProcess(handle, 1)`).
const TERMINATED: u32 = 1;

/// A child's pid and its process handle (which std opens with every right).
#[derive(Debug)]
pub(crate) struct ChildHandle {
    pid: u32,
    process: Arc<OwnedHandle>,
}

impl ChildHandle {
    /// Takes the process handle out of `child` (std closes the main
    /// thread's handle, which nothing here needs). Take the pipes out first.
    pub(crate) fn new(pid: u32, child: std::process::Child) -> ChildHandle {
        ChildHandle {
            pid,
            process: Arc::new(OwnedHandle::from(child)),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// `send_signal` on Windows: SIGTERM and SIGKILL terminate the child;
    /// nothing else is sent.
    pub(crate) fn send_signal(&self, signum: i32) -> io::Result<()> {
        match signum {
            SIGTERM | SIGKILL => self.terminate(),
            CTRL_C_EVENT | CTRL_BREAK_EVENT => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "signal {signum} ({}) is not sent on Windows: a console control event \
                     reaches a whole console process group, which may include this process; \
                     use terminate or kill (SIGTERM 15, SIGKILL 9), which call TerminateProcess",
                    if signum == CTRL_C_EVENT {
                        "CTRL_C_EVENT"
                    } else {
                        "CTRL_BREAK_EVENT"
                    }
                ),
            )),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "signal {signum} is not supported on Windows: only SIGTERM (15) and SIGKILL \
                     (9), which both end the child with TerminateProcess (exit code 1)"
                ),
            )),
        }
    }

    /// `TerminateProcess(handle, 1)`. A child that has exited already is
    /// `NotFound` ("process has exited"), as on Unix, whether seen before
    /// the call or through its refusal (`ERROR_ACCESS_DENIED` on Windows).
    fn terminate(&self) -> io::Result<()> {
        if has_exited(&self.process) {
            return Err(exited());
        }
        // SAFETY: the handle is open (owned by `self.process`) and was opened
        // by CreateProcess with PROCESS_ALL_ACCESS, which includes
        // PROCESS_TERMINATE.
        if unsafe { TerminateProcess(raw(&self.process), TERMINATED) } != 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if has_exited(&self.process) {
            return Err(exited());
        }
        Err(err)
    }
}

/// asyncio's `ProcessLookupError` for a child that has exited.
pub(crate) fn exited() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "process has exited")
}

/// Refuses, with `Unsupported`, a loop that cannot wait for the process
/// handle, before anything is started.
pub(crate) fn check_loop(event_loop: &EventLoop) -> io::Result<()> {
    if event_loop.inner().supports_wait_for_handle() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "cannot spawn a subprocess: the running loop ({}) cannot wait for process handles; \
             on Windows subprocesses need the ProactorEventLoop \
             (set aio::windows::WindowsProactorEventLoopPolicy), as in asyncio",
            event_loop.inner().type_name()
        ),
    ))
}

/// The loop's wait for a process handle, and the handle it waits on. The
/// wait is declared first, so it is cancelled before the handle can close.
pub(crate) struct ProcessWatch {
    _wait: HandleWait,
    _process: Arc<OwnedHandle>,
}

/// Asks `event_loop` to report `child`'s exit into `exit` when its process
/// handle is signalled. The wait lives in `exit`'s state and reports through
/// a weak handle, so a child nobody can ask about any more (its `Child` and
/// every `ExitHandle` dropped) is simply no longer waited for.
pub(crate) fn watch_exit(event_loop: &EventLoop, child: &ChildHandle, exit: &ExitHandle) -> io::Result<()> {
    let report_to = exit.downgrade();
    let process = Arc::clone(&child.process);
    let wait = aio_events::windows::wait_for_handle(event_loop, child.process.as_raw_handle(), move || {
        report_to.report(exit_code(&process));
    })
    .map_err(aio_events::into_io)?;
    exit.set_watch(ProcessWatch {
        _wait: wait,
        _process: Arc::clone(&child.process),
    });
    Ok(())
}

/// The exit code of a process whose handle is signalled, as `i32` (std's
/// `ExitStatus::code` reads it so too).
fn exit_code(process: &OwnedHandle) -> i32 {
    let mut code = 0u32;
    // SAFETY: the handle is open (borrowed for the call) and `code` is a
    // valid place for the answer.
    if unsafe { GetExitCodeProcess(raw(process), &mut code) } == 0 {
        // Cannot happen for a handle with PROCESS_QUERY_INFORMATION;
        // asyncio's "reaped elsewhere" code says "unknown" the same way.
        return 255;
    }
    code as i32
}

/// Whether the process has exited (its handle is signalled).
fn has_exited(process: &OwnedHandle) -> bool {
    // SAFETY: the handle is open; a zero timeout only asks.
    unsafe { WaitForSingleObject(raw(process), 0) == WAIT_OBJECT_0 }
}

fn raw(handle: &OwnedHandle) -> HANDLE {
    handle.as_raw_handle() as HANDLE
}
