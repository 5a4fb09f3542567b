//! aio's child watchers: what reaps subprocesses and reports their exit to
//! the loop (asyncio's `PidfdChildWatcher`, `ThreadedChildWatcher`,
//! `SafeChildWatcher` and `FastChildWatcher`, 3.12–3.13).
//!
//! **Place in the stack.** Below: `aio-events` (the [`ChildWatcher`] trait
//! and the [`EventLoop`](aio_events::EventLoop) a watcher reports to) and
//! `rustix` for the system calls. Above: `aio-unix`, whose
//! `UnixDefaultEventLoopPolicy` makes the default watcher lazily
//! ([`PidfdChildWatcher`] when [`can_use_pidfd`], else
//! [`ThreadedChildWatcher`]) and hands it to subprocesses, and the facade's
//! `aio::unix` module, where users find these types. Depend on the facade.
//!
//! Every watcher reports `(pid, returncode)` with asyncio's return codes:
//! the exit code, `-signum` for a child killed by a signal, and 255 (with
//! the warning "Unknown child process pid N, will report returncode 255"
//! through `log`) for a child that somebody else reaped. Callbacks run on a
//! loop, never inside a signal handler and never under a watcher's lock.
//!
//! | watcher | mechanism | threads | signals | loops | cost per child | takes others' children |
//! |---|---|---|---|---|---|---|
//! | [`PidfdChildWatcher`] | `pidfd_open`, polled by the running loop | none | none | any thread | one fd | no |
//! | [`ThreadedChildWatcher`] | blocking `waitpid(pid)` on a thread | one per child | none | any thread | one thread | no |
//! | [`SafeChildWatcher`] | SIGCHLD, then `waitpid(pid, WNOHANG)` per registered child | none | SIGCHLD | the attached loop | O(n) per SIGCHLD | no |
//! | [`FastChildWatcher`] | SIGCHLD, then `waitpid(-1, WNOHANG)` | none | SIGCHLD | the attached loop | O(1) | **yes** |
//!
//! | platform | pidfd | threaded | SIGCHLD watchers |
//! |---|---|---|---|
//! | Linux 5.3+ (unless seccomp forbids `pidfd_open`) | yes (the default) | yes | yes |
//! | other Linux, Android, macOS, BSDs, illumos | no | yes (the default) | yes |
//!
//! # Example
//!
//! The default policy picks a watcher for you; asking for one explicitly:
//!
//! ```ignore
//! use std::sync::Arc;
//! use aio::unix::{ChildWatcher, PidfdChildWatcher, ThreadedChildWatcher, can_use_pidfd};
//!
//! let watcher: Arc<dyn ChildWatcher> = if can_use_pidfd() {
//!     Arc::new(PidfdChildWatcher::new())
//! } else {
//!     Arc::new(ThreadedChildWatcher::new())
//! };
//! aio::get_event_loop_policy().set_child_watcher(Some(watcher.clone()))?;
//! aio::run(async move {
//!     let child = std::process::Command::new("true").spawn().unwrap();
//!     let (sender, receiver) = std::sync::mpsc::channel();
//!     watcher.add_child_handler(child.id(), Box::new(move |_pid, code| sender.send(code).unwrap()))?;
//!     while receiver.try_recv().is_err() {
//!         aio::sleep(std::time::Duration::from_millis(1)).await;
//!     }
//!     Ok::<(), aio::Error>(())
//! })??;
//! # Ok::<(), aio::Error>(())
//! ```
// The crate is empty elsewhere, but its docs still render: their links name
// Unix-only items.
#![cfg_attr(not(unix), allow(rustdoc::broken_intra_doc_links))]
#![cfg(unix)]

mod pidfd;
mod sigchld;
mod threaded;
mod wait;

pub use aio_events::unix::ChildWatcher;
pub use pidfd::{PidfdChildWatcher, can_use_pidfd};
pub use sigchld::{FastChildWatcher, SafeChildWatcher};
pub use threaded::ThreadedChildWatcher;
