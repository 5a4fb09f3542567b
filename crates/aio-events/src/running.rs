//! The running-loop registry: which loop runs on this thread right now
//! (asyncio's `_get_running_loop`/`_set_running_loop`).
//!
//! A file of its own because it is process-global plumbing with one subtle
//! rule: the registry is thread-local and blind to a forked child. asyncio
//! compares the pid on every read; a `getpid` system call per read is too dear
//! for `sleep` and `create_task`, so on Unix a `pthread_atfork` child hook
//! bumps a fork generation and a read compares that instead.

use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{AbstractEventLoop, Error, EventLoop};

/// A registry entry: a strong reference to the loop as a raw pointer (its
/// `RunningGuard` gives it back), and the fork generation it was made in.
type Entry = (NonNull<dyn AbstractEventLoop>, usize);

thread_local! {
    /// No destructor (the guard owns the reference), so that a read is a
    /// plain thread-local access rather than a state check and a borrow.
    static RUNNING: Cell<Option<Entry>> = const { Cell::new(None) };
}

/// Bumped in every forked child, so a registry entry made before the fork no
/// longer matches.
static FORK_GENERATION: AtomicUsize = AtomicUsize::new(0);

/// Makes sure a forked child bumps the generation (once per process, as the
/// first loop starts running: an entry exists only after that).
#[cfg(unix)]
fn watch_forks() {
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
}

#[cfg(not(unix))]
fn watch_forks() {}

/// The running loop's pointer, if an entry of this process (not of the
/// parent of a fork) is there.
fn current() -> Option<NonNull<dyn AbstractEventLoop>> {
    match RUNNING.with(Cell::get) {
        Some((event_loop, generation)) if generation == FORK_GENERATION.load(Ordering::Relaxed) => {
            Some(event_loop)
        }
        _ => None,
    }
}

/// The loop running on this thread, or `None` (asyncio's `_get_running_loop`).
pub fn try_get_running_loop() -> Option<EventLoop> {
    // SAFETY: the entry's guard holds a strong reference while the entry is
    // there, and the entry is this thread's.
    current().map(|event_loop| unsafe { EventLoop::clone_raw(event_loop) })
}

/// The loop running on this thread; `NoRunningLoop` outside one.
pub fn get_running_loop() -> Result<EventLoop, Error> {
    try_get_running_loop().ok_or_else(Error::no_running_loop)
}

/// Whether a loop is running on this thread, without cloning it.
pub(crate) fn with_running_loop<R>(f: impl FnOnce(Option<&EventLoop>) -> R) -> R {
    match current() {
        Some(event_loop) => {
            // SAFETY: as in `try_get_running_loop`; `ManuallyDrop` keeps the
            // borrowed handle from giving back a reference it does not own.
            let event_loop = ManuallyDrop::new(unsafe { EventLoop::from_raw(event_loop) });
            f(Some(&event_loop))
        }
        None => f(None),
    }
}

/// Records `event_loop` as this thread's running loop until the guard drops.
/// Loops call this as they start running (asyncio's `_run_forever_setup`).
pub(crate) fn enter(event_loop: &EventLoop) -> RunningGuard {
    watch_forks();
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    let entry = (event_loop.clone().into_raw(), generation);
    let previous = RUNNING.with(|slot| slot.replace(Some(entry)));
    RunningGuard {
        entry: entry.0,
        previous,
    }
}

/// Restores the previous registry entry when the loop stops running, and
/// gives back the reference its own entry held.
pub(crate) struct RunningGuard {
    entry: NonNull<dyn AbstractEventLoop>,
    previous: Option<Entry>,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        RUNNING.with(|slot| slot.set(self.previous));
        // SAFETY: `enter` made `entry` with `into_raw`, and nothing reads it
        // from the registry any more.
        drop(unsafe { EventLoop::from_raw(self.entry) });
    }
}
