//! Ctrl-C for `Runner` on Windows: a console control handler that, while
//! armed, turns the first Ctrl-C into a callback on the loop (asyncio's
//! `Runner._on_sigint`, which on Windows the C runtime reaches through the
//! same console machinery).
//!
//! A file of its own because it holds the crate's only code that runs on a
//! thread the loop does not own. Windows calls a console control handler on
//! a thread it creates in the process for each event, so the handler may
//! touch only what is `Send`: it posts a callback with
//! [`ThreadsafeLoop::call_soon_threadsafe`], which also wakes the loop if it
//! is blocked in its IOCP wait. The runner's own callback (which cancels the
//! main task, a `!Send` handle) stays on the loop's thread, in a
//! thread-local slot that the posted callback takes.
//!
//! The rules, as on Unix (`aio-unix`'s `signals.rs`):
//!
//! - Only `CTRL_C_EVENT` is handled. Ctrl-Break (`CTRL_BREAK_EVENT`), the
//!   console closing, logoff and shutdown fall through to the next handler,
//!   in the end Windows' default, which ends the process: asyncio handles
//!   only SIGINT, which is Ctrl-C (the C runtime maps Ctrl-Break to
//!   SIGBREAK, which asyncio leaves alone).
//! - The first Ctrl-C while armed is ours: the handler returns `TRUE` so the
//!   process lives on, and the loop runs the runner's callback.
//! - A second Ctrl-C while still armed (the loop is stuck and never ran the
//!   callback, or the main task is slow to end) is not ours: the handler
//!   returns `FALSE`, so the default handler ends the process, as asyncio's
//!   second Ctrl-C raises `KeyboardInterrupt` at once.
//! - Disarmed, the handler is removed from the process's list, so Ctrl-C has
//!   whatever effect it had before.
//!
//! **Lock order.** Windows (and Wine) call the handlers while holding the
//! console's handler-list lock, which `SetConsoleCtrlHandler` takes too. So
//! `SetConsoleCtrlHandler` is never called while [`ARMED`] is held: the
//! handler takes `ARMED` under the console lock, and the loop's thread must
//! not wait for the console lock under `ARMED`.

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use aio_events::{Error, EventLoop, ThreadsafeLoop};
use windows_sys::Win32::Foundation::{FALSE, TRUE};
use windows_sys::Win32::System::Console::{CTRL_C_EVENT, SetConsoleCtrlHandler};
use windows_sys::core::BOOL;

/// What the handler needs while armed. Process-wide: one console, one
/// Ctrl-C.
struct Armed {
    /// The loop to post the callback to.
    threadsafe: ThreadsafeLoop,
    /// Which arming this is, so a callback posted for an earlier one that
    /// the loop runs late does nothing.
    generation: u64,
    /// How many Ctrl-Cs came since arming.
    presses: u32,
}

/// The armed state, or `None`: read by the handler on Windows' thread.
static ARMED: Mutex<Option<Armed>> = Mutex::new(None);

/// Numbers the armings.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The runner's callback for the first Ctrl-C, with the arming it belongs
/// to.
struct OnCtrlC {
    generation: u64,
    callback: Box<dyn FnOnce()>,
}

thread_local! {
    /// The callback of the arming made on this thread (the loop's).
    static ON_CTRL_C: RefCell<Option<OnCtrlC>> = const { RefCell::new(None) };
}

fn armed() -> MutexGuard<'static, Option<Armed>> {
    // The state is plain data written in one assignment; a panic elsewhere
    // cannot leave it half-written.
    ARMED.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Arms Ctrl-C: installs the console control handler, so that the first
/// Ctrl-C runs `on_ctrl_c` on `event_loop` (posted thread-safely, so it runs
/// and wakes the loop even while the loop waits for I/O) and a second one
/// ends the process as Windows' default handler does.
///
/// Call it on the thread that runs `event_loop`: `on_ctrl_c` is kept in that
/// thread, and runs only there. Arming again replaces the previous arming.
/// Errors: `Io` when Windows refuses the handler; Ctrl-C then keeps its
/// default.
pub fn arm_ctrl_c(event_loop: &EventLoop, on_ctrl_c: impl FnOnce() + 'static) -> Result<(), Error> {
    let generation = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    ON_CTRL_C.with(|slot| {
        *slot.borrow_mut() = Some(OnCtrlC {
            generation,
            callback: Box::new(on_ctrl_c),
        })
    });
    let previous = armed().replace(Armed {
        threadsafe: event_loop.threadsafe(),
        generation,
        presses: 0,
    });
    if previous.is_some() {
        // Installed already: a second copy in the list would leave one behind
        // on disarming.
        return Ok(());
    }
    // SAFETY: `on_console_event` has the signature of a `PHANDLER_ROUTINE`
    // and is a plain function, valid for the life of the process.
    if unsafe { SetConsoleCtrlHandler(Some(on_console_event), TRUE) } == FALSE {
        let error = io::Error::last_os_error();
        armed().take();
        ON_CTRL_C.with(|slot| slot.borrow_mut().take());
        return Err(Error::from(error));
    }
    Ok(())
}

/// Disarms Ctrl-C: removes the console control handler, so Ctrl-C has its
/// previous effect again, and forgets the callback. Idempotent.
pub fn disarm_ctrl_c() {
    let was_armed = armed().is_some();
    if was_armed {
        // Removed first, outside `ARMED` (the module's lock order); a
        // Ctrl-C arriving meanwhile still finds the state and is handled.
        // SAFETY: removing a handler routine touches no memory of ours.
        let removed = unsafe { SetConsoleCtrlHandler(Some(on_console_event), FALSE) };
        if removed == FALSE {
            log::warn!(
                "removing the Ctrl-C handler failed: {}",
                io::Error::last_os_error()
            );
        }
        armed().take();
    }
    ON_CTRL_C.with(|slot| slot.borrow_mut().take());
}

/// The console control handler, run by Windows on a thread of its own for
/// each event.
///
/// It cannot unwind into Windows' code (a panic here aborts the process),
/// so it avoids what panics: the lock ignores poisoning, and
/// `call_soon_threadsafe` returns its errors rather than panicking.
unsafe extern "system" fn on_console_event(ctrl_type: u32) -> BOOL {
    if ctrl_type != CTRL_C_EVENT {
        return FALSE;
    }
    let (threadsafe, generation) = {
        let mut armed = armed();
        let Some(state) = armed.as_mut() else {
            return FALSE;
        };
        state.presses = state.presses.saturating_add(1);
        if state.presses > 1 {
            // The second Ctrl-C: the default handler ends the process.
            return FALSE;
        }
        (state.threadsafe.clone(), state.generation)
    };
    match threadsafe.call_soon_threadsafe(move || run_on_ctrl_c(generation)) {
        Ok(()) => TRUE,
        // The loop is closed: nobody would run the callback, so Ctrl-C has
        // its default effect.
        Err(_) => FALSE,
    }
}

/// On the loop's thread: runs the runner's callback if it belongs to
/// `generation` (it was not disarmed, nor re-armed, since the Ctrl-C).
fn run_on_ctrl_c(generation: u64) {
    let callback = ON_CTRL_C.with(|slot| {
        let mut slot = slot.borrow_mut();
        match slot.take() {
            Some(armed) if armed.generation == generation => Some(armed.callback),
            other => {
                *slot = other;
                None
            }
        }
    });
    if let Some(callback) = callback {
        callback();
    }
}
