//! aio on Windows: the selector loop on IOCP and the two policies of
//! asyncio's `windows_events.py`.
//!
//! **Place in the stack.** Below: `aio-selector` (the loop core, which on
//! Windows rides on IOCP with AFD polling through `polling`, so without
//! `select()`'s 512-socket cap), `aio-base-policy` and `aio-events`. Above:
//! the facade `aio`, whose `DefaultEventLoopPolicy` on Windows is
//! [`WindowsSelectorEventLoopPolicy`].
//!
//! | type | mechanism |
//! |---|---|
//! | [`WindowsSelectorEventLoop`] | IOCP + AFD through `polling`, level and oneshot modes (no edge mode on Windows) |
//! | [`ProactorEventLoop`] | the same core today; IOCP completions for pipes and process handles come with the Windows issue |
//!
//! # Example
//!
//! ```ignore
//! let event_loop = aio_windows::WindowsSelectorEventLoop::new()?;
//! assert_eq!(event_loop.run_until_complete(async { 1 + 1 })?, 2);
//! event_loop.close()?;
//! ```
#![cfg(windows)]

use std::fmt;

use aio_base_policy::BaseDefaultEventLoopPolicy;
use aio_events::{Error, EventLoop, EventLoopPolicy};
use aio_selector::SelectorEventLoop;

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

/// The proactor loop of asyncio's Windows default. Today it is the IOCP
/// selector core under another name; the completion-based extras (pipes,
/// process handles) arrive with the Windows issue.
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
