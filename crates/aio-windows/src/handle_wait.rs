//! The proactor's waits for handles ([`ProactorEventLoop`](crate::ProactorEventLoop)'s
//! `wait_for_handle`): asyncio's `IocpProactor.wait_for_handle`, on
//! `RegisterWaitForSingleObject`.
//!
//! A file of its own because it is the one place where a thread the loop
//! does not own (a wait thread of the Windows thread pool) calls into the
//! loop, and its memory rules are this file.
//!
//! How a wait goes: `RegisterWaitForSingleObject` (`WT_EXECUTEONLYONCE`)
//! asks the thread pool to wait for the handle. When it is signalled, the
//! pool calls [`on_signalled`], which only posts a closure to the loop with
//! `call_soon_threadsafe` (a push and, if the loop sleeps, one completion
//! packet to its IOCP); on the loop's thread the closure takes the callback
//! and runs it. asyncio does the same with `RegisterWaitWithQueue`, which
//! posts to the proactor's IOCP. `polling`'s `add_waitable` rides on the same
//! call, but its events would come back through the selector's dispatch
//! (a key range and the poll-skip rule of `aio-selector` would have to know
//! of them), and it keys waits by raw handle, so one handle could not be
//! waited on twice; posting to the loop needs neither.
//!
//! Memory: the pool gets a plain pointer to the [`Registration`], counted by
//! nobody. The [`HandleWait`] owns the registration and, when dropped, first
//! unregisters with `UnregisterWaitEx(INVALID_HANDLE_VALUE)`, which returns
//! only once a running `on_signalled` has returned; only then does it let go
//! of the registration. So the pool's pointer is valid whenever the pool can
//! use it, and `on_signalled` never drops the last reference (the user's
//! callback, whatever it owns, is never dropped on the pool's thread).

use std::ffi::c_void;
use std::io;
use std::os::windows::io::RawHandle;
use std::sync::{Arc, Mutex, PoisonError};

use aio_events::windows::HandleWait;
use aio_events::{Error, ThreadsafeLoop};
use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::Threading::{
    INFINITE, RegisterWaitForSingleObject, UnregisterWaitEx, WT_EXECUTEONLYONCE,
};

type Callback = Box<dyn FnOnce() + Send>;

/// One wait: where to post, and the callback until it is taken (by the
/// loop to run it, or by the cancel to drop it).
struct Registration {
    threadsafe: ThreadsafeLoop,
    callback: Mutex<Option<Callback>>,
}

impl Registration {
    fn take_callback(&self) -> Option<Callback> {
        // The slot is one `Option`, written in one step: a panic elsewhere
        // cannot leave it half-written.
        self.callback
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// The thread pool's wait object, sent to whichever thread cancels.
struct WaitObject(HANDLE);

// SAFETY: a wait object is a kernel handle value, usable from any thread;
// `UnregisterWaitEx` is its only use.
unsafe impl Send for WaitObject {}

/// Registers the wait (see the module docs); `threadsafe` is the loop's.
pub(crate) fn wait_for_handle(
    threadsafe: ThreadsafeLoop,
    handle: RawHandle,
    callback: Callback,
) -> Result<HandleWait, Error> {
    let registration = Arc::new(Registration {
        threadsafe,
        callback: Mutex::new(Some(callback)),
    });
    let mut wait: HANDLE = std::ptr::null_mut();
    // SAFETY: `wait` is a valid place for the new wait object. The caller
    // keeps `handle` open until the `HandleWait` is dropped (the trait's
    // contract). The context pointer stays valid for as long as the pool may
    // call `on_signalled` with it: the `HandleWait` below holds the
    // registration and releases it only after the blocking unregister.
    let registered = unsafe {
        RegisterWaitForSingleObject(
            &mut wait,
            handle as HANDLE,
            Some(on_signalled),
            Arc::as_ptr(&registration).cast::<c_void>().cast_mut(),
            INFINITE,
            WT_EXECUTEONLYONCE,
        )
    };
    if registered == 0 {
        return Err(Error::from(io::Error::last_os_error()));
    }
    let wait = WaitObject(wait);
    Ok(HandleWait::new(move || {
        let wait = wait;
        // SAFETY: `wait` came from a successful registration and is
        // unregistered exactly once, here. INVALID_HANDLE_VALUE makes the
        // call wait for a running `on_signalled` to return. It is never
        // called from `on_signalled` itself (which drops nothing of ours),
        // so it cannot wait for itself.
        unsafe { UnregisterWaitEx(wait.0, INVALID_HANDLE_VALUE) };
        // Not started: it never will be. Dropped here, on the owner's thread.
        drop(registration.take_callback());
        drop(registration);
    }))
}

/// Called by a thread of the pool when the handle is signalled: posts the
/// callback to the loop. If the loop is closed, the post fails and the
/// callback stays in the registration, dropped when the `HandleWait` is.
unsafe extern "system" fn on_signalled(context: *mut c_void, _timed_out: bool) {
    let context = context.cast_const().cast::<Registration>();
    // SAFETY: `context` is the `Arc::as_ptr` of a registration that the
    // `HandleWait` keeps alive until this function has returned (module
    // docs); the count added here is the posted closure's own reference.
    let registration = unsafe {
        Arc::increment_strong_count(context);
        Arc::from_raw(context)
    };
    let threadsafe = registration.threadsafe.clone();
    // On failure (the loop is closed) the closure is dropped here, and with
    // it only this reference: the `HandleWait` still holds another.
    let _ = threadsafe.call_soon_threadsafe(move || {
        // Taken under the lock, run after it: the callback may drop its own
        // `HandleWait`, which takes the lock.
        let callback = registration.take_callback();
        if let Some(callback) = callback {
            callback();
        }
    });
}
