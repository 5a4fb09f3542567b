//! aio on Unix: the Unix selector loop and [`UnixDefaultEventLoopPolicy`]
//! (asyncio's `unix_events.py`).
//!
//! **Place in the stack.** Below: `aio-selector` (the loop core it embeds),
//! `aio-base-policy` (the thread-local policy it builds on), `aio-child-watchers`
//! and `aio-events`. Above: the facade `aio`, whose `DefaultEventLoopPolicy`
//! and `SelectorEventLoop` are this crate's on Unix.
//!
//! | platform | loop mechanism |
//! |---|---|
//! | Linux, Android | epoll (through `polling`) |
//! | macOS, iOS, BSDs | kqueue (through `polling`) |
//! | illumos, Solaris | event ports (through `polling`) |
//!
//! # Example
//!
//! ```
//! let event_loop = aio_unix::UnixSelectorEventLoop::new()?;
//! assert_eq!(event_loop.run_until_complete(async { 1 + 1 })?, 2);
//! event_loop.close()?;
//! # Ok::<(), aio_events::Error>(())
//! ```
// The crate is empty elsewhere, but its docs still render: their links name
// Unix-only items.
#![cfg_attr(not(unix), allow(rustdoc::broken_intra_doc_links))]
#![cfg(unix)]

mod signals;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use aio_base_policy::{BaseDefaultEventLoopPolicy, is_main_thread};
use aio_child_watchers::{PidfdChildWatcher, ThreadedChildWatcher, can_use_pidfd};
use aio_events::unix::ChildWatcher;
use aio_events::{AbstractEventLoop, Error, EventLoop, EventLoopPolicy};
use aio_selector::SelectorEventLoop;

pub use signals::{SIGINT, arm_interrupt, disarm_interrupt, interrupt_armed, sigint_is_default};

/// The Unix selector loop: the selector core plus signal handlers.
pub struct UnixSelectorEventLoop {
    core: SelectorEventLoop,
    signals: signals::SharedSignals,
}

impl UnixSelectorEventLoop {
    /// A new, open loop wrapped in an [`EventLoop`] handle.
    pub fn new() -> Result<EventLoop, Error> {
        // A program that makes its loop by hand, never touching the facade's
        // policy functions, still gets this platform's default policy when a
        // layer asks the global policy (for the child watcher, say).
        aio_events::install_default_policy_factory(default_policy);
        Ok(EventLoop::new(UnixSelectorEventLoop {
            core: SelectorEventLoop::create()?,
            signals: signals::SharedSignals::default(),
        }))
    }

    /// The selector core.
    pub fn core(&self) -> &SelectorEventLoop {
        &self.core
    }
}

aio_selector::delegate_event_loop!(UnixSelectorEventLoop, core, {
    fn close(&self, this: &EventLoop) -> Result<(), Error> {
        if !self.core.is_closed() {
            signals::remove_all(&self.signals, &self.core);
        }
        self.core.close(this)
    }

    fn add_signal_handler(&self, signum: i32, callback: Box<dyn FnMut()>) -> Result<(), Error> {
        signals::add(&self.signals, &self.core, signum, callback)
    }

    fn remove_signal_handler(&self, signum: i32) -> Result<bool, Error> {
        // After `close` no handler is left, so this validates and says false.
        signals::remove(&self.signals, &self.core, signum)
    }

    fn type_name(&self) -> &'static str {
        "UnixSelectorEventLoop"
    }
});

impl Drop for UnixSelectorEventLoop {
    fn drop(&mut self) {
        if !self.core.is_closed() {
            signals::remove_all(&self.signals, &self.core);
        }
    }
}

impl fmt::Debug for UnixSelectorEventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UnixSelectorEventLoop").field(&self.core).finish()
    }
}

/// The default policy on Unix: the base thread-local policy making
/// [`UnixSelectorEventLoop`]s, plus the child watcher subprocesses use.
///
/// `set_event_loop` in the main thread attaches the child watcher to the new
/// loop, as asyncio 3.8–3.13 do. `set_child_watcher` closes the watcher it
/// replaces; `get_child_watcher` makes the default watcher on first use.
pub struct UnixDefaultEventLoopPolicy {
    base: BaseDefaultEventLoopPolicy,
    watcher: Mutex<Option<Arc<dyn ChildWatcher>>>,
}

/// The factory of the global default policy on Unix.
fn default_policy() -> Arc<dyn EventLoopPolicy> {
    Arc::new(UnixDefaultEventLoopPolicy::new())
}

impl UnixDefaultEventLoopPolicy {
    /// A policy with no loop and no child watcher yet.
    pub fn new() -> Self {
        UnixDefaultEventLoopPolicy {
            base: BaseDefaultEventLoopPolicy::new(UnixSelectorEventLoop::new),
            watcher: Mutex::new(None),
        }
    }

    fn watcher(&self) -> MutexGuard<'_, Option<Arc<dyn ChildWatcher>>> {
        // Holds an `Arc` only; a panic elsewhere cannot leave it half-written.
        self.watcher
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for UnixDefaultEventLoopPolicy {
    fn default() -> Self {
        UnixDefaultEventLoopPolicy::new()
    }
}

impl EventLoopPolicy for UnixDefaultEventLoopPolicy {
    fn get_event_loop(&self) -> Result<EventLoop, Error> {
        self.base
            .get_event_loop_via(&|event_loop| self.set_event_loop(event_loop))
    }

    fn set_event_loop(&self, event_loop: Option<EventLoop>) -> Result<(), Error> {
        self.base.set_event_loop(event_loop.clone())?;
        let watcher = self.watcher().clone();
        if let Some(watcher) = watcher
            && is_main_thread()
        {
            watcher.attach_loop(event_loop.as_ref());
        }
        Ok(())
    }

    fn new_event_loop(&self) -> Result<EventLoop, Error> {
        self.base.new_event_loop()
    }

    /// The watcher set with `set_child_watcher`, else the default, made on
    /// first use and kept: a `PidfdChildWatcher` where pidfds work
    /// (`can_use_pidfd`), a `ThreadedChildWatcher` otherwise (asyncio
    /// 3.12–3.13). Neither needs attaching to a loop.
    fn get_child_watcher(&self) -> Result<Arc<dyn ChildWatcher>, Error> {
        let mut slot = self.watcher();
        let watcher = slot.get_or_insert_with(|| {
            if can_use_pidfd() {
                Arc::new(PidfdChildWatcher::new())
            } else {
                Arc::new(ThreadedChildWatcher::new())
            }
        });
        Ok(Arc::clone(watcher))
    }

    fn set_child_watcher(&self, watcher: Option<Arc<dyn ChildWatcher>>) -> Result<(), Error> {
        let previous = std::mem::replace(&mut *self.watcher(), watcher);
        if let Some(previous) = previous {
            previous.close();
        }
        Ok(())
    }
}

impl fmt::Debug for UnixDefaultEventLoopPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDefaultEventLoopPolicy")
            .field("base", &self.base)
            .field("has_child_watcher", &self.watcher().is_some())
            .finish()
    }
}
