//! aio on Windows: the selector loop on IOCP and the two policies of
//! asyncio's `windows_events.py`.
//!
//! **Place in the stack.** Below: `aio-selector` (the loop core, which on
//! Windows rides on IOCP with AFD polling through `polling`, so without
//! `select()`'s 512-socket cap), `aio-base-policy` and `aio-events`. Above:
//! the facade `aio`, whose `DefaultEventLoopPolicy` on Windows is
//! [`WindowsSelectorEventLoopPolicy`].
//!
//! | type | sockets, timers, wake-ups | handles (process exits, overlapped pipe I/O) |
//! |---|---|---|
//! | [`WindowsSelectorEventLoop`] | IOCP + AFD through `polling`, level and oneshot modes (no edge mode on Windows) | not offered: `wait_for_handle` answers `Unsupported`, so `aio::process` refuses to spawn (asyncio's `NotImplementedError`) |
//! | [`ProactorEventLoop`] | the same core | `RegisterWaitForSingleObject` on the thread pool, posting to the loop (its IOCP) when the handle is signalled |
//!
//! Neither loop handles signals: `add_signal_handler` and
//! `remove_signal_handler` answer `Unsupported`, as asyncio's raise
//! `NotImplementedError` on Windows. Ctrl-C still ends `aio::run`'s main
//! task: the runner arms a console control handler ([`arm_ctrl_c`]).
//!
//! # Example
//!
//! ```ignore
//! let event_loop = aio_windows::WindowsSelectorEventLoop::new()?;
//! assert_eq!(event_loop.run_until_complete(async { 1 + 1 })?, 2);
//! event_loop.close()?;
//! ```
// The crate is empty elsewhere, but its docs still render: their links name
// Windows-only items.
#![cfg_attr(not(windows), allow(rustdoc::broken_intra_doc_links))]
#![cfg(windows)]

mod ctrl_c;
mod handle_wait;

use std::fmt;

use aio_base_policy::BaseDefaultEventLoopPolicy;
use aio_events::{Error, EventLoop, EventLoopPolicy};
use aio_selector::SelectorEventLoop;

pub use ctrl_c::{arm_ctrl_c, disarm_ctrl_c};

/// The Windows selector loop.
pub struct WindowsSelectorEventLoop {
    core: SelectorEventLoop,
}

impl WindowsSelectorEventLoop {
    /// A new, open loop wrapped in an [`EventLoop`] handle.
    pub fn new() -> Result<EventLoop, Error> {
        Ok(EventLoop::new(WindowsSelectorEventLoop {
            core: SelectorEventLoop::create()?,
        }))
    }
}

aio_selector::delegate_event_loop!(WindowsSelectorEventLoop, core, {
    fn close(&self, this: &EventLoop) -> Result<(), Error> {
        self.core.close(this)
    }

    fn type_name(&self) -> &'static str {
        "WindowsSelectorEventLoop"
    }
});

impl fmt::Debug for WindowsSelectorEventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WindowsSelectorEventLoop")
            .field(&self.core)
            .finish()
    }
}

/// The proactor loop of asyncio's Windows default: the IOCP selector core
/// (callbacks, timers, tasks, sockets), plus what asyncio's proactor adds
/// beyond its selector loop: waits for handles
/// ([`AbstractEventLoop::wait_for_handle`](aio_events::AbstractEventLoop::wait_for_handle)),
/// so subprocesses (`aio::process`: process handles for their exits,
/// overlapped pipes for their standard streams). The selector loop refuses
/// those with `Unsupported`, as asyncio's raises `NotImplementedError`.
///
/// A wait is a `RegisterWaitForSingleObject` of the Windows thread pool that
/// posts the callback to the loop when the handle is signalled (module
/// `handle_wait`), as asyncio's `RegisterWaitWithQueue` posts to its IOCP.
pub struct ProactorEventLoop {
    core: SelectorEventLoop,
}

impl ProactorEventLoop {
    /// A new, open loop wrapped in an [`EventLoop`] handle.
    pub fn new() -> Result<EventLoop, Error> {
        Ok(EventLoop::new(ProactorEventLoop {
            core: SelectorEventLoop::create()?,
        }))
    }
}

aio_selector::delegate_event_loop!(ProactorEventLoop, core, {
    fn close(&self, this: &EventLoop) -> Result<(), Error> {
        self.core.close(this)
    }

    fn type_name(&self) -> &'static str {
        "ProactorEventLoop"
    }

    fn wait_for_handle(
        &self,
        handle: std::os::windows::io::RawHandle,
        callback: Box<dyn FnOnce() + Send>,
    ) -> Result<aio_events::windows::HandleWait, Error> {
        if self.core.is_closed() {
            return Err(Error::closed());
        }
        handle_wait::wait_for_handle(self.core.threadsafe(), handle, callback)
    }

    fn supports_wait_for_handle(&self) -> bool {
        true
    }
});

impl fmt::Debug for ProactorEventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ProactorEventLoop").field(&self.core).finish()
    }
}

macro_rules! windows_policy {
    ($(#[$doc:meta])* $name:ident, $factory:path) => {
        $(#[$doc])*
        pub struct $name {
            base: BaseDefaultEventLoopPolicy,
        }

        impl $name {
            /// A policy with no loop yet.
            pub fn new() -> Self {
                $name {
                    base: BaseDefaultEventLoopPolicy::new($factory),
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::new()
            }
        }

        impl EventLoopPolicy for $name {
            fn get_event_loop(&self) -> Result<EventLoop, Error> {
                self.base.get_event_loop()
            }
            fn set_event_loop(&self, event_loop: Option<EventLoop>) -> Result<(), Error> {
                self.base.set_event_loop(event_loop)
            }
            fn new_event_loop(&self) -> Result<EventLoop, Error> {
                self.base.new_event_loop()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("base", &self.base).finish()
            }
        }
    };
}

windows_policy!(
    /// The selector policy: makes [`WindowsSelectorEventLoop`]s. aio's
    /// default on Windows, since the selector already rides on IOCP.
    WindowsSelectorEventLoopPolicy,
    WindowsSelectorEventLoop::new
);

windows_policy!(
    /// The proactor policy: makes [`ProactorEventLoop`]s (asyncio's default
    /// on Windows since 3.8).
    WindowsProactorEventLoopPolicy,
    ProactorEventLoop::new
);
