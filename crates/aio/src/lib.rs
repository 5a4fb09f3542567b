//! aio brings asyncio's architecture to Rust: [`run`] → the global event-loop
//! policy → a thread-local current loop → a platform selector loop on
//! `polling` → child watchers for subprocesses. Each layer is a crate of its
//! own that a user can swap: their own policy, a loop factory, another child
//! watcher.
//!
//! **Place in the stack.** This is the facade: docs, re-exports, [`run`] and
//! [`Runner`], and the one `cfg` that picks the platform's
//! [`DefaultEventLoopPolicy`] and [`SelectorEventLoop`], as asyncio's
//! `__init__.py` picks `unix_events` or `windows_events`. Everything below it:
//! `aio-events` (traits, tasks, errors), `aio-base-policy`, `aio-selector`,
//! `aio-unix`/`aio-windows`, `aio-child-watchers`, `aio-net` (the
//! sockets of [`net`]) and `aio-process` (the subprocesses of [`process`]).
//!
//! ```no_run
//! use std::time::Duration;
//!
//! fn main() -> Result<(), aio::Error> {
//!     aio::run(async {
//!         println!("hello");
//!         aio::sleep(Duration::from_secs(1)).await;
//!         println!("world");
//!     })
//! }
//! ```
//!
//! | platform | `DefaultEventLoopPolicy` | `SelectorEventLoop` | OS mechanism |
//! |---|---|---|---|
//! | Linux, Android | `unix::UnixDefaultEventLoopPolicy` | `unix::UnixSelectorEventLoop` | epoll |
//! | macOS, BSDs | `unix::UnixDefaultEventLoopPolicy` | `unix::UnixSelectorEventLoop` | kqueue |
//! | Windows | `windows::WindowsSelectorEventLoopPolicy` | `windows::WindowsSelectorEventLoop` | IOCP (AFD) |
//!
//! **Threads.** asyncio's debug mode raises "Non-thread-safe operation invoked
//! on an event loop other than the current one" when a loop is touched from a
//! foreign thread. In aio that is a compile error: [`EventLoop`] is `!Send`
//! and `!Sync`. Reach a loop from another thread through
//! [`EventLoop::threadsafe`].
//!
//! **Debug mode** ([`EventLoop::set_debug`], [`Runner::debug`], or the
//! `AIO_DEBUG=1` environment variable as asyncio's `PYTHONASYNCIODEBUG`):
//! callbacks slower than 100 ms are logged, tasks destroyed while pending are
//! reported, and a future that `run` refused is noted as never polled. Logs
//! go through the `log` crate.

mod runner;

use std::sync::Arc;

pub use aio_base_policy::BaseDefaultEventLoopPolicy;
pub use aio_events::{
    AbstractEventLoop, Error, ErrorKind, EventLoop, EventLoopPolicy, ExceptionContext, Handle, Sleep, Task,
    TaskRef, ThreadsafeLoop, TimerHandle, create_task, get_running_loop, sleep, to_thread,
};
pub use runner::{Runner, THREAD_JOIN_TIMEOUT, run};

/// The default policy of this platform: `unix::UnixDefaultEventLoopPolicy`
/// on Unix, `windows::WindowsSelectorEventLoopPolicy` on Windows.
#[cfg(unix)]
pub type DefaultEventLoopPolicy = aio_unix::UnixDefaultEventLoopPolicy;
/// The default policy of this platform: `unix::UnixDefaultEventLoopPolicy`
/// on Unix, `windows::WindowsSelectorEventLoopPolicy` on Windows.
#[cfg(windows)]
pub type DefaultEventLoopPolicy = aio_windows::WindowsSelectorEventLoopPolicy;

/// The platform's selector loop; `SelectorEventLoop::new()` makes one.
#[cfg(unix)]
pub use aio_unix::UnixSelectorEventLoop as SelectorEventLoop;
/// The platform's selector loop; `SelectorEventLoop::new()` makes one.
#[cfg(windows)]
pub use aio_windows::WindowsSelectorEventLoop as SelectorEventLoop;

#[cfg(not(any(unix, windows)))]
compile_error!("aio supports Unix and Windows");

/// Sockets on the loop's selector: TCP, UDP and (on Unix) Unix domain
/// streams with `futures-io` traits, and asyncio's `sock_*` helpers
/// (`aio-net`).
pub mod net {
    pub use aio_net::*;
}

/// Subprocesses on the running loop: `Command`, `Child` with `futures-io`
/// pipes, `wait`, signals, `communicate` (`aio-process`). On Unix they are
/// reaped by the policy's child watcher; on Windows the loop waits for their
/// process handles, which only `windows::ProactorEventLoop` does (the
/// selector loop refuses with `Unsupported`, as asyncio's).
pub mod process {
    pub use aio_process::*;
}

/// Unix-only API: the Unix loop and policy, and child watchers.
#[cfg(unix)]
pub mod unix {
    pub use aio_child_watchers::{
        FastChildWatcher, PidfdChildWatcher, SafeChildWatcher, ThreadedChildWatcher, can_use_pidfd,
    };
    pub use aio_events::unix::ChildWatcher;
    pub use aio_unix::{UnixDefaultEventLoopPolicy, UnixSelectorEventLoop};
}

/// Windows-only API: the Windows loops and policies, and the registration
/// of a loop's wait for a handle (`AbstractEventLoop::wait_for_handle`).
#[cfg(windows)]
pub mod windows {
    pub use aio_events::windows::{HandleWait, wait_for_handle};
    pub use aio_windows::{
        ProactorEventLoop, WindowsProactorEventLoopPolicy, WindowsSelectorEventLoop,
        WindowsSelectorEventLoopPolicy,
    };
}

fn ensure_default_policy() {
    aio_events::install_default_policy_factory(|| Arc::new(DefaultEventLoopPolicy::new()));
}

/// The global policy: made lazily (a [`DefaultEventLoopPolicy`]), then the
/// same `Arc` on every call until [`set_event_loop_policy`].
pub fn get_event_loop_policy() -> Arc<dyn EventLoopPolicy> {
    ensure_default_policy();
    aio_events::get_event_loop_policy()
}

/// Replaces the global policy; `None` brings a fresh default next time.
pub fn set_event_loop_policy(policy: Option<Arc<dyn EventLoopPolicy>>) {
    ensure_default_policy();
    aio_events::set_event_loop_policy(policy);
}

/// The running loop if one runs on this thread, else the policy's current
/// loop (which the default policy makes on demand in the main thread only).
pub fn get_event_loop() -> Result<EventLoop, Error> {
    ensure_default_policy();
    aio_events::get_event_loop()
}

/// Sets (or, with `None`, clears) this thread's current loop in the policy.
pub fn set_event_loop(event_loop: Option<EventLoop>) -> Result<(), Error> {
    ensure_default_policy();
    aio_events::set_event_loop(event_loop)
}

/// A new loop from the policy (not made current).
pub fn new_event_loop() -> Result<EventLoop, Error> {
    ensure_default_policy();
    aio_events::new_event_loop()
}
