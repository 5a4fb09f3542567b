//! The base thread-local event-loop policy (asyncio's
//! `BaseDefaultEventLoopPolicy`).
//!
//! **Place in the stack.** Below: `aio-events` (the `EventLoopPolicy` trait).
//! Above: the platform policies of `aio-unix` and `aio-windows`, which are
//! this policy with their loop factory (and, on Unix, a child watcher), and
//! the facade `aio`, which re-exports it. Use it to make a policy around a
//! loop factory of your own.
//!
//! The rules, asyncio's (3.12–3.13):
//! - each policy instance keeps one current loop per thread;
//! - `get_event_loop` makes a loop (and sets it through `set_event_loop`) only
//!   in the main thread, and only if `set_event_loop` was never called in that
//!   thread for this policy, not even with `None`;
//! - otherwise an empty slot is `NoCurrentLoop`:
//!   "There is no current event loop in thread 'NAME'."
//!
//! The main thread is the thread Rust's runtime named `main`.
//!
//! # Example
//!
//! ```ignore
//! use std::sync::Arc;
//! let policy = aio::BaseDefaultEventLoopPolicy::new(|| aio::SelectorEventLoop::new());
//! aio::set_event_loop_policy(Some(Arc::new(policy)));
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use aio_events::{Error, ErrorKind, EventLoop, EventLoopPolicy};

type LoopFactory = Box<dyn Fn() -> Result<EventLoop, Error> + Send + Sync>;

#[derive(Default)]
struct Slot {
    event_loop: Option<EventLoop>,
    set_called: bool,
}

thread_local! {
    /// This thread's slot of every policy instance, by instance id.
    static SLOTS: RefCell<HashMap<usize, Slot>> = RefCell::new(HashMap::new());
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// The thread-local policy: one current loop per thread, per instance.
pub struct BaseDefaultEventLoopPolicy {
    id: usize,
    loop_factory: LoopFactory,
}

/// Whether the calling thread is the main thread (named `main` by Rust's
/// runtime).
pub fn is_main_thread() -> bool {
    thread::current().name() == Some("main")
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

impl BaseDefaultEventLoopPolicy {
    /// A policy whose `new_event_loop` calls `loop_factory`.
    pub fn new(loop_factory: impl Fn() -> Result<EventLoop, Error> + Send + Sync + 'static) -> Self {
        BaseDefaultEventLoopPolicy {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            loop_factory: Box::new(loop_factory),
        }
    }

    fn with_slot<R>(&self, f: impl FnOnce(&mut Slot) -> R) -> R {
        SLOTS.with(|slots| f(slots.borrow_mut().entry(self.id).or_default()))
    }

    /// `get_event_loop`, making a missing main-thread loop through
    /// `set_event_loop` (so a wrapping policy can pass its own, which attaches
    /// a child watcher, as asyncio's subclasses do).
    pub fn get_event_loop_via(
        &self,
        set_event_loop: &dyn Fn(Option<EventLoop>) -> Result<(), Error>,
    ) -> Result<EventLoop, Error> {
        let (current, may_create) =
            self.with_slot(|slot| (slot.event_loop.clone(), !slot.set_called && is_main_thread()));
        if let Some(event_loop) = current {
            return Ok(event_loop);
        }
        if may_create {
            set_event_loop(Some(self.new_event_loop()?))?;
            if let Some(event_loop) = self.with_slot(|slot| slot.event_loop.clone()) {
                return Ok(event_loop);
            }
        }
        Err(Error::new(
            ErrorKind::NoCurrentLoop,
            format!("There is no current event loop in thread '{}'.", thread_name()),
        ))
    }
}

impl EventLoopPolicy for BaseDefaultEventLoopPolicy {
    fn get_event_loop(&self) -> Result<EventLoop, Error> {
        self.get_event_loop_via(&|event_loop| self.set_event_loop(event_loop))
    }

    fn set_event_loop(&self, event_loop: Option<EventLoop>) -> Result<(), Error> {
        let previous = self.with_slot(|slot| {
            slot.set_called = true;
            std::mem::replace(&mut slot.event_loop, event_loop)
        });
        // Dropped outside the slot borrow: a loop's drop may run user code.
        drop(previous);
        Ok(())
    }

    fn new_event_loop(&self) -> Result<EventLoop, Error> {
        (self.loop_factory)()
    }
}

impl Drop for BaseDefaultEventLoopPolicy {
    fn drop(&mut self) {
        // This thread's slot goes with the policy; other threads drop theirs
        // when they exit.
        let slot = SLOTS
            .try_with(|slots| slots.borrow_mut().remove(&self.id))
            .ok()
            .flatten();
        drop(slot);
    }
}

impl fmt::Debug for BaseDefaultEventLoopPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BaseDefaultEventLoopPolicy")
            .field("id", &self.id)
            .finish()
    }
}
