//! The abstract layer of aio: what every event loop, policy and child watcher
//! implements, and the loop-independent parts asyncio keeps in `events.py`,
//! `futures.py` and `tasks.py`.
//!
//! **Place in the stack.** This is the bottom crate of the workspace and
//! depends on none of the others. Above it: the base thread-local policy
//! (`aio-base-policy`), the selector loop (`aio-selector`), the platform
//! loops and policies (`aio-unix`, `aio-windows`), the child watchers
//! (`aio-child-watchers`) and the facade `aio`. Users depend on the facade;
//! depend on this crate to write a loop, a policy or a child watcher of your
//! own.
//!
//! What is here:
//! - [`AbstractEventLoop`], the object-safe loop trait, and [`EventLoop`], the
//!   `!Send` handle users call (`call_soon`, `run_until_complete`, ...);
//! - [`EventLoopPolicy`] and the global policy (lazy, lock-protected);
//! - the running-loop registry (thread-local, blind to a forked child);
//! - [`Task`], [`sleep`], [`to_thread`], [`Handle`], [`TimerHandle`];
//! - [`Error`] and [`ErrorKind`];
//! - on Unix, the `unix::ChildWatcher` trait; on Windows, the
//!   `windows::HandleWait` of `AbstractEventLoop::wait_for_handle`.
//!
//! # Example: a loop of your own behind the `EventLoop` handle
//!
//! Loops implement [`AbstractEventLoop`]; this crate has none. With the facade:
//!
//! ```ignore
//! let event_loop: aio::EventLoop = aio::SelectorEventLoop::new()?;
//! let answer = event_loop.run_until_complete(async { 6 * 7 })?;
//! assert_eq!(answer, 42);
//! event_loop.close()?;
//! ```

mod error;
mod event_loop;
mod futures;
mod handle;
mod io;
mod policy;
mod pool;
mod running;
mod task;

#[cfg(unix)]
pub mod unix;
#[cfg(windows)]
pub mod windows;

pub use error::{Error, ErrorKind};
pub use event_loop::{
    AbstractEventLoop, EventLoop, ExceptionContext, ExceptionHandler, ThreadsafeLoop, ThreadsafeScheduler,
    WakeTimer, deadline_after, default_exception_handler, panic_message,
};
pub use futures::{Sleep, create_task, sleep, to_thread};
pub use handle::{Handle, TimerHandle};
pub use io::{Interest, Io, IoKey, IoRegistration, RawSource, into_io};
pub use policy::{
    EventLoopPolicy, get_event_loop, get_event_loop_policy, install_default_policy_factory, new_event_loop,
    set_event_loop, set_event_loop_policy,
};
pub use running::{get_running_loop, try_get_running_loop};
pub use task::{RawTaskPtr, Scheduler, Task, TaskRef};

/// Whether the `AIO_DEBUG` environment variable asks for debug mode (asyncio's
/// `PYTHONASYNCIODEBUG`): set, non-empty and not `0`. New loops start in
/// debug mode when it does.
pub fn debug_from_env() -> bool {
    std::env::var_os("AIO_DEBUG").is_some_and(|value| !value.is_empty() && value != "0")
}
