//! aio's selector event loop: the platform-neutral core that the Unix and
//! Windows loops embed (asyncio's `base_events.py` and `selector_events.py`).
//!
//! **Place in the stack.** Below: `aio-events` (the traits it implements) and
//! `polling` (the OS poller). Above: `aio-unix` and `aio-windows`, which wrap
//! [`SelectorEventLoop`] with signals, child watchers and platform sockets,
//! and the facade `aio`, whose `SelectorEventLoop::new()` lands here through
//! them. Use this crate directly only to build a loop of your own on it.
//!
//! | platform | mechanism (through `polling`) |
//! |---|---|
//! | Linux, Android | epoll (registered through `polling`, waited on directly), own eventfd wake-up |
//! | macOS, iOS, FreeBSD, NetBSD, OpenBSD, DragonFly | kqueue, `EVFILT_USER` wake-up |
//! | illumos, Solaris | event ports |
//! | Windows | IOCP with AFD polling (no 512-socket cap) |
//! | other Unix | poll(2) |
//!
//! What is here: the ready queue and its thread-safe twin with coalesced
//! wake-ups, the [`TimerHeap`] with asyncio's
//! lazy cancellation (its entries kept in a wheel of sorted ~1 ms buckets
//! rather than one binary heap), the task set, level-triggered reader and writer
//! callbacks, and the default executor ([`ThreadPool`]).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! let event_loop = aio_selector::SelectorEventLoop::new()?;
//! let out = event_loop.run_until_complete(async {
//!     aio_events::sleep(Duration::from_millis(1)).await;
//!     "done"
//! })?;
//! assert_eq!(out, "done");
//! event_loop.close()?;
//! # Ok::<(), aio_events::Error>(())
//! ```

mod delegate;
mod executor;
mod io;
mod scheduler;
mod selector;
mod selector_loop;
mod timer_heap;
mod timer_wheel;

pub use executor::ThreadPool;
pub use selector_loop::{
    CLOCK_RESOLUTION, MAXIMUM_SELECT_TIMEOUT, SLOW_CALLBACK_DURATION, SelectorEventLoop, SignalWake,
};
pub use timer_heap::{Due, MIN_SCHEDULED_TIMER_HANDLES, TimerHeap};

#[doc(hidden)]
pub mod __private {
    pub use aio_events::{
        AbstractEventLoop, Error, EventLoop, ExceptionHandler, Handle, Interest, IoKey, RawSource, Scheduler,
        TaskRef, ThreadsafeLoop, TimerHandle, WakeTimer,
    };
}
