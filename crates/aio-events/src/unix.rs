//! The Unix-only part of the abstract layer: the [`ChildWatcher`] trait
//! (asyncio's `AbstractChildWatcher`).
//!
//! A file of its own so that Unix-only API sits in one `unix` module, as the
//! facade exposes it.

use crate::{Error, EventLoop};

/// Watches child processes and reports their exit to a callback
/// (asyncio's `AbstractChildWatcher`, 3.8–3.13).
///
/// The callback gets `(pid, returncode)`: the exit code, `-signum` for a
/// child killed by a signal, 255 when the child was reaped elsewhere.
pub trait ChildWatcher: Send + Sync + 'static {
    /// Calls `callback` once `pid` exits. Replaces an existing handler.
    fn add_child_handler(&self, pid: u32, callback: Box<dyn FnOnce(u32, i32) + Send>) -> Result<(), Error>;
    /// Stops watching `pid`; `false` if it was not watched.
    fn remove_child_handler(&self, pid: u32) -> bool;
    /// Attaches the watcher to `event_loop` (or detaches it with `None`).
    fn attach_loop(&self, event_loop: Option<&EventLoop>);
    /// Whether the watcher can watch children now.
    fn is_active(&self) -> bool;
    /// Releases the watcher's resources.
    fn close(&self);
}
