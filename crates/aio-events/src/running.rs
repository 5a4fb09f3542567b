//! The running-loop registry: which loop runs on this thread right now
//! (asyncio's `_get_running_loop`/`_set_running_loop`).
//!
//! A file of its own because it is process-global plumbing with one subtle
//! rule: the registry is thread-local and blind to a forked child. asyncio
//! compares the pid on every read; a `getpid` system call per read is too dear
//! for `sleep` and `create_task`, so on Unix a `pthread_atfork` child hook
//! bumps a fork generation and a read compares that instead.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Error, EventLoop};

thread_local! {
    static RUNNING: RefCell<Option<(EventLoop, usize)>> = const { RefCell::new(None) };
}

/// Bumped in every forked child, so a registry entry made before the fork no
/// longer matches.
static FORK_GENERATION: AtomicUsize = AtomicUsize::new(0);

#[cfg(unix)]
fn fork_generation() -> usize {
    use std::sync::Once;
    static HOOK: Once = Once::new();

    extern "C" fn in_child() {
        FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
    }

    unsafe extern "C" {
        fn pthread_atfork(
            prepare: Option<extern "C" fn()>,
            parent: Option<extern "C" fn()>,
            child: Option<extern "C" fn()>,
        ) -> std::ffi::c_int;
    }

    HOOK.call_once(|| {
        // SAFETY: `pthread_atfork` only records the three function pointers;
        // `in_child` is async-signal-safe (one relaxed atomic add) as a fork
        // child handler must be.
        let rc = unsafe { pthread_atfork(None, None, Some(in_child)) };
        if rc != 0 {
            log::warn!("pthread_atfork failed ({rc}): a forked child may see its parent's running loop");
        }
    });
    FORK_GENERATION.load(Ordering::Relaxed)
}

#[cfg(not(unix))]
fn fork_generation() -> usize {
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// The loop running on this thread, or `None` (asyncio's `_get_running_loop`).
pub fn try_get_running_loop() -> Option<EventLoop> {
    RUNNING.with(|slot| match &*slot.borrow() {
        Some((event_loop, generation)) if *generation == fork_generation() => Some(event_loop.clone()),
        _ => None,
    })
}

/// The loop running on this thread; `NoRunningLoop` outside one.
pub fn get_running_loop() -> Result<EventLoop, Error> {
    try_get_running_loop().ok_or_else(Error::no_running_loop)
}

/// Whether a loop is running on this thread, without cloning it.
pub(crate) fn with_running_loop<R>(f: impl FnOnce(Option<&EventLoop>) -> R) -> R {
    RUNNING.with(|slot| match &*slot.borrow() {
        Some((event_loop, generation)) if *generation == fork_generation() => f(Some(event_loop)),
        _ => f(None),
    })
}

/// Records `event_loop` as this thread's running loop until the guard drops.
/// Loops call this as they start running (asyncio's `_run_forever_setup`).
pub(crate) fn enter(event_loop: &EventLoop) -> RunningGuard {
    let generation = fork_generation();
    let previous = RUNNING.with(|slot| slot.replace(Some((event_loop.clone(), generation))));
    RunningGuard { previous }
}

/// Restores the previous registry entry when the loop stops running.
pub(crate) struct RunningGuard {
    previous: Option<(EventLoop, usize)>,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // The registry may already be gone while the thread exits.
        let _ = RUNNING.try_with(|slot| slot.replace(previous));
    }
}
