//! Event-loop policies and the process-global policy (asyncio's
//! `AbstractEventLoopPolicy` and the module functions of `events.py`).
//!
//! A file of its own because it is the one process-global, lock-protected
//! state of the abstract layer. The abstract layer does not know the
//! platform's default policy (it depends on no crate of ours); the facade
//! installs a factory for it with [`install_default_policy_factory`], as
//! asyncio's `events.py` imports `DefaultEventLoopPolicy` lazily.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

#[cfg(unix)]
use crate::unix::ChildWatcher;
use crate::{Error, ErrorKind, EventLoop};

/// A policy: where a thread's current loop comes from.
pub trait EventLoopPolicy: Send + Sync + 'static {
    /// The current loop of this thread in this policy's sense.
    fn get_event_loop(&self) -> Result<EventLoop, Error>;
    /// Sets (or clears, with `None`) the current loop of this thread.
    fn set_event_loop(&self, event_loop: Option<EventLoop>) -> Result<(), Error>;
    /// Makes a new loop (it does not become the current one).
    fn new_event_loop(&self) -> Result<EventLoop, Error>;
    /// The child watcher subprocesses use. Default: `Unsupported`.
    #[cfg(unix)]
    fn get_child_watcher(&self) -> Result<Arc<dyn ChildWatcher>, Error> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "this policy has no child watcher",
        ))
    }
    /// Replaces the child watcher. Default: `Unsupported`.
    #[cfg(unix)]
    fn set_child_watcher(&self, watcher: Option<Arc<dyn ChildWatcher>>) -> Result<(), Error> {
        let _ = watcher;
        Err(Error::new(
            ErrorKind::Unsupported,
            "this policy has no child watcher",
        ))
    }
}

static POLICY: Mutex<Option<Arc<dyn EventLoopPolicy>>> = Mutex::new(None);
static DEFAULT_FACTORY: OnceLock<fn() -> Arc<dyn EventLoopPolicy>> = OnceLock::new();

/// Tells the abstract layer how to make the platform's default policy. The
/// first call wins; the facade `aio` makes it before every policy function.
pub fn install_default_policy_factory(factory: fn() -> Arc<dyn EventLoopPolicy>) {
    let _ = DEFAULT_FACTORY.set(factory);
}

/// Stands in for the default policy when no factory was installed (only
/// possible when using this crate without the facade).
struct NoDefaultPolicy;

impl NoDefaultPolicy {
    fn error() -> Error {
        Error::new(
            ErrorKind::Unsupported,
            "no default event loop policy is installed: use the `aio` crate or call set_event_loop_policy",
        )
    }
}

impl EventLoopPolicy for NoDefaultPolicy {
    fn get_event_loop(&self) -> Result<EventLoop, Error> {
        Err(Self::error())
    }
    fn set_event_loop(&self, _event_loop: Option<EventLoop>) -> Result<(), Error> {
        Err(Self::error())
    }
    fn new_event_loop(&self) -> Result<EventLoop, Error> {
        Err(Self::error())
    }
}

fn policy_slot() -> std::sync::MutexGuard<'static, Option<Arc<dyn EventLoopPolicy>>> {
    // The slot holds an `Arc`; a panic elsewhere cannot leave it half-written.
    POLICY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The global policy; made lazily (the platform default), then the same `Arc`
/// on every call until [`set_event_loop_policy`].
pub fn get_event_loop_policy() -> Arc<dyn EventLoopPolicy> {
    let mut slot = policy_slot();
    slot.get_or_insert_with(|| match DEFAULT_FACTORY.get() {
        Some(factory) => factory(),
        None => Arc::new(NoDefaultPolicy),
    })
    .clone()
}

/// Replaces the global policy; `None` brings a fresh default on the next
/// [`get_event_loop_policy`].
pub fn set_event_loop_policy(policy: Option<Arc<dyn EventLoopPolicy>>) {
    *policy_slot() = policy;
}

/// The running loop if there is one, else the policy's current loop.
pub fn get_event_loop() -> Result<EventLoop, Error> {
    if let Some(running) = crate::running::try_get_running_loop() {
        return Ok(running);
    }
    get_event_loop_policy().get_event_loop()
}

/// `get_event_loop_policy().set_event_loop(event_loop)`.
pub fn set_event_loop(event_loop: Option<EventLoop>) -> Result<(), Error> {
    get_event_loop_policy().set_event_loop(event_loop)
}

/// `get_event_loop_policy().new_event_loop()`.
pub fn new_event_loop() -> Result<EventLoop, Error> {
    get_event_loop_policy().new_event_loop()
}

impl fmt::Debug for dyn EventLoopPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<EventLoopPolicy>")
    }
}
