//! The Windows-only part of the abstract layer: [`HandleWait`], the
//! registration [`AbstractEventLoop::wait_for_handle`](crate::AbstractEventLoop::wait_for_handle) gives back (asyncio's
//! `IocpProactor.wait_for_handle`), and [`wait_for_handle`], the checked way
//! to call it.
//!
//! A file of its own so that Windows-only API sits in one `windows` module,
//! as the Unix-only `ChildWatcher` sits in `unix`.

use std::fmt;
use std::os::windows::io::RawHandle;

use crate::{Error, ErrorKind, EventLoop};

/// A wait for a handle to be signalled, registered with a loop by
/// [`AbstractEventLoop::wait_for_handle`](crate::AbstractEventLoop::wait_for_handle).
/// Dropping it cancels the wait.
///
/// Once the drop returns, the callback has run or never will (it is dropped
/// by the drop, on the dropping thread), and the loop no longer watches the
/// handle, so the handle may then be closed. Dropping it from inside its own
/// callback is allowed.
///
/// A loop makes one with [`HandleWait::new`], giving what cancels the wait.
pub struct HandleWait {
    cancel: Option<Box<dyn FnOnce() + Send>>,
}

impl HandleWait {
    /// A registration that `cancel` ends: the loop's part of the contract
    /// above (after `cancel` returns, the callback does not run and the
    /// handle is no longer watched) is `cancel`'s to keep.
    pub fn new(cancel: impl FnOnce() + Send + 'static) -> HandleWait {
        HandleWait {
            cancel: Some(Box::new(cancel)),
        }
    }
}

impl Drop for HandleWait {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel();
        }
    }
}

impl fmt::Debug for HandleWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandleWait")
    }
}

/// Calls `callback` on `event_loop`'s thread once `handle` is signalled (see
/// [`AbstractEventLoop::wait_for_handle`](crate::AbstractEventLoop::wait_for_handle)), after checking that the loop is
/// open (`Closed` otherwise). Loops that do not wait for handles answer
/// `Unsupported`: on Windows only the `ProactorEventLoop` does.
pub fn wait_for_handle(
    event_loop: &EventLoop,
    handle: RawHandle,
    callback: impl FnOnce() + Send + 'static,
) -> Result<HandleWait, Error> {
    if event_loop.is_closed() {
        return Err(Error::closed());
    }
    event_loop.inner().wait_for_handle(handle, Box::new(callback))
}

/// What a loop without handle waits answers: on Windows, asyncio's selector
/// loop raises `NotImplementedError` for subprocesses, which need them.
pub(crate) fn handle_waits_unsupported(loop_type: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "{loop_type} cannot wait for handles: on Windows only the ProactorEventLoop \
             (WindowsProactorEventLoopPolicy) waits for process handles and pipes, \
             so subprocesses need it"
        ),
    )
}
