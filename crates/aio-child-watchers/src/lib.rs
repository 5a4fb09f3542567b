//! aio's child watchers: what reaps subprocesses and reports their exit to
//! the loop (asyncio's `PidfdChildWatcher`, `ThreadedChildWatcher`,
//! `SafeChildWatcher` and `FastChildWatcher`).
//!
//! **Place in the stack.** Below: `aio-events` (the `ChildWatcher` trait and
//! the `EventLoop` handle a watcher attaches to). Above: `aio-unix`, whose
//! `UnixDefaultEventLoopPolicy` hands a watcher to subprocesses, and the
//! facade's `aio::unix` module.
//!
//! This crate holds its place in the crate graph now; the watchers arrive with
//! the subprocess work. Until then the Unix policy has no built-in default
//! watcher, and `set_child_watcher` takes a user's own.
#![cfg(unix)]

pub use aio_events::unix::ChildWatcher;
