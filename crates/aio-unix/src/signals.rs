//! Signal handlers on the Unix loop (`add_signal_handler`,
//! `remove_signal_handler`) and the process-wide Ctrl-C rule of `Runner`.
//!
//! A file of its own because it holds the crate's only async-signal-safe
//! code. asyncio's design, with the loop's own wake-up in place of a
//! self-pipe: the C-level handler counts the delivery in the receiving
//! loop's table and wakes that loop ([`SignalWake`], an atomic swap and one
//! `write` or `futex` call); the loop then runs the Rust callbacks on its
//! own thread, one call per delivery it counted. A loop that handles signals
//! therefore needs no descriptor for them: `aio::run`, which handles Ctrl-C,
//! makes no pipe.
//!
//! `sigaction` is called by hand (through `libc`) rather than through
//! `signal-hook-registry`, because asyncio's rules need exact dispositions:
//! removing a handler restores `SIG_DFL`, `Runner` arms Ctrl-C only while
//! SIGINT has its default disposition, and a second Ctrl-C restores the
//! default and re-raises. signal-hook-registry keeps its own handler
//! installed for good and cannot do either.
//!
//! **Two loops, one signal.** The table a signal is counted in is
//! process-wide per signal: the loop that added a handler for it last
//! receives it. When that loop removes its handler (or closes), the signal
//! goes back to its default disposition, even if another loop had a handler
//! for it before.
//!
//! **Lifetime.** The per-signal slots hold an `Arc` of the receiving loop's
//! table as a raw pointer. A handler may be reading a slot on another thread
//! at the moment a loop empties it, so the loop counts handlers in flight
//! and waits (briefly: a handler is a few atomic operations and one system
//! call) for none to be before it lets go of the `Arc`.
//!
//! **Order.** Deliveries counted before the loop turns run in signal-number
//! order, each as many times as it arrived (the kernel itself delivers
//! pending standard signals lowest number first).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use aio_events::{AbstractEventLoop, Error, ErrorKind, ExceptionContext, panic_message};
use aio_selector::{SelectorEventLoop, SignalWake};

/// SIGINT, the signal of Ctrl-C.
pub const SIGINT: i32 = libc::SIGINT;

/// One past the highest signal number.
#[cfg(any(target_os = "linux", target_os = "android"))]
const NSIG: usize = 65;
/// One past the highest signal number.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const NSIG: usize = 32;

/// Per signal, the table of the loop that receives it (an `Arc` turned
/// into a raw pointer), or null.
static TARGETS: [AtomicPtr<Target>; NSIG] = [const { AtomicPtr::new(std::ptr::null_mut()) }; NSIG];

/// C-level handlers between reading a slot of `TARGETS` and done with it.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// A loop's deliveries not yet handled, and how to wake it.
struct Target {
    counts: [AtomicU32; NSIG],
    wake: SignalWake,
}

/// Whether the Ctrl-C rule of `Runner` is armed, and how many SIGINTs came
/// since it was.
static INTERRUPT_ARMED: AtomicBool = AtomicBool::new(false);
static INTERRUPTS: AtomicU32 = AtomicU32::new(0);

#[cfg(any(target_os = "linux", target_os = "android"))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: always valid for the calling thread.
    unsafe { libc::__errno_location() }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: always valid for the calling thread.
    unsafe { libc::__error() }
}

/// The C-level handler. Async-signal-safe: atomics, the loop's wake-up
/// (`write` or `futex`), `sigaction`, `raise`, and errno saved and restored
/// around them.
extern "C" fn deliver(signum: libc::c_int) {
    let errno = errno_location();
    // SAFETY: errno is this thread's; reading it is signal-safe.
    let saved = unsafe { *errno };
    let Ok(index) = usize::try_from(signum) else {
        return;
    };
    if signum == SIGINT
        && INTERRUPT_ARMED.load(Ordering::SeqCst)
        && INTERRUPTS.fetch_add(1, Ordering::SeqCst) >= 1
    {
        // A second Ctrl-C while the loop is stuck: end the process as the
        // default disposition would.
        set_disposition(SIGINT, libc::SIG_DFL);
        // SAFETY: `raise` is async-signal-safe.
        unsafe { libc::raise(SIGINT) };
        return;
    }
    if let Some(slot) = TARGETS.get(index) {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        let target = slot.load(Ordering::SeqCst);
        // SAFETY: a non-null slot holds a live `Arc<Target>`: whoever
        // empties it waits for `IN_FLIGHT` to be zero before dropping the
        // `Arc` (`release`), and we counted ourselves in first.
        if let Some(target) = unsafe { target.as_ref() } {
            target.counts[index].fetch_add(1, Ordering::SeqCst);
            target.wake.wake();
        }
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
    // SAFETY: as above.
    unsafe { *errno = saved };
}

fn set_disposition(signum: i32, handler: libc::sighandler_t) -> bool {
    // SAFETY: a zeroed `sigaction` is a valid "no flags, empty mask" value.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `action` is initialised; `sigemptyset` only writes the mask.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: installing a handler is what `sigaction` is for; `deliver`
    // is async-signal-safe, and SIG_DFL/SIG_IGN are always valid.
    unsafe { libc::sigaction(signum, &action, std::ptr::null_mut()) == 0 }
}

fn current_disposition(signum: i32) -> Option<libc::sighandler_t> {
    // SAFETY: zeroed is a valid out-parameter value.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one.
    let rc = unsafe { libc::sigaction(signum, std::ptr::null(), &mut old) };
    (rc == 0).then_some(old.sa_sigaction)
}

/// Whether SIGINT has its default disposition (nobody installed a handler or
/// ignores it): the condition for `Runner` to handle Ctrl-C.
pub fn sigint_is_default() -> bool {
    current_disposition(SIGINT) == Some(libc::SIG_DFL)
}

/// Arms the Ctrl-C rule: from now on a second SIGINT restores the default
/// disposition and re-raises, ending the process even if the loop is stuck.
pub fn arm_interrupt() {
    INTERRUPTS.store(0, Ordering::SeqCst);
    INTERRUPT_ARMED.store(true, Ordering::SeqCst);
}

/// Whether the Ctrl-C rule is armed: `Runner` armed it and no handler of
/// the user's own has replaced its SIGINT handler since.
pub fn interrupt_armed() -> bool {
    INTERRUPT_ARMED.load(Ordering::SeqCst)
}

/// Disarms the Ctrl-C rule.
pub fn disarm_interrupt() {
    INTERRUPT_ARMED.store(false, Ordering::SeqCst);
    INTERRUPTS.store(0, Ordering::SeqCst);
}

/// asyncio's `_check_signal`: the number must be one of the platform's
/// valid signals (`signal.valid_signals()`: what `sigfillset` fills, which
/// on Linux leaves out the C library's reserved 32 and 33).
fn check_signal(signum: i32) -> Result<usize, Error> {
    let invalid = || {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid signal number {signum}"),
        )
    };
    let index = usize::try_from(signum)
        .ok()
        .filter(|index| (1..NSIG).contains(index))
        .ok_or_else(invalid)?;
    // SAFETY: a zeroed `sigset_t` is a valid out-parameter for `sigfillset`,
    // and `sigismember` only reads the set.
    let valid = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set) == 0 && libc::sigismember(&set, signum) == 1
    };
    if valid { Ok(index) } else { Err(invalid()) }
}

/// Shared, so that dispatch can call a handler while the handler adds or
/// removes handlers (its own included) without the map being borrowed.
type SignalCallback = Rc<RefCell<Box<dyn FnMut()>>>;

/// A loop's signal handlers and its table of deliveries.
#[derive(Default)]
pub(crate) struct Signals {
    handlers: HashMap<i32, SignalCallback>,
    /// Made with the first handler, dropped with the last.
    target: Option<Arc<Target>>,
}

/// The signal state a loop shares with its signal hook.
pub(crate) type SharedSignals = Rc<RefCell<Signals>>;

/// Runs the callbacks of the deliveries counted since the last time.
fn dispatch(signals: &SharedSignals) {
    let Some(target) = signals.borrow().target.clone() else {
        return;
    };
    for (index, count) in target.counts.iter().enumerate() {
        let arrived = count.swap(0, Ordering::SeqCst);
        let signum = i32::try_from(index).expect("NSIG fits in i32");
        // One call per delivery, as asyncio's `_handle_signal`.
        for _ in 0..arrived {
            // The map is not borrowed while the handler runs: it may add or
            // remove handlers, its own included. A handler removed meanwhile
            // does not run.
            let Some(callback) = signals.borrow().handlers.get(&signum).cloned() else {
                break;
            };
            // A handler that re-enters itself (it cannot, short of running
            // the loop inside a callback) is skipped rather than aliased.
            let Ok(mut callback) = callback.try_borrow_mut() else {
                continue;
            };
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| (*callback)())) {
                let context =
                    ExceptionContext::new(format!("Exception in signal handler for signal {signum}"))
                        .with_exception(panic_message(&*payload));
                match aio_events::try_get_running_loop() {
                    Some(event_loop) => event_loop.call_exception_handler(context),
                    None => aio_events::default_exception_handler(&context),
                }
            }
        }
    }
}

/// Points signal `index`'s slot at `target` (or empties it) and lets go of
/// what it held before, once no C-level handler can still be reading it.
fn replace_target(index: usize, target: Option<&Arc<Target>>) {
    let new = target.map_or(std::ptr::null_mut(), |target| {
        Arc::into_raw(target.clone()).cast_mut()
    });
    let old = TARGETS[index].swap(new, Ordering::SeqCst);
    release(old);
}

/// Empties signal `index`'s slot if it holds `target`; `true` if it did.
fn clear_target(index: usize, target: &Arc<Target>) -> bool {
    let ours = Arc::as_ptr(target).cast_mut();
    let cleared = TARGETS[index]
        .compare_exchange(ours, std::ptr::null_mut(), Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    if cleared {
        release(ours);
    }
    cleared
}

/// Drops the slot's reference `old` (null: nothing) after every C-level
/// handler that may have read it has finished.
fn release(old: *mut Target) {
    if old.is_null() {
        return;
    }
    while IN_FLIGHT.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
    // SAFETY: `old` came from `Arc::into_raw` when it was stored in a slot;
    // the slot no longer holds it, and no handler is still reading it.
    drop(unsafe { Arc::from_raw(old.cast_const()) });
}

/// `add_signal_handler` with asyncio's rules and texts.
pub(crate) fn add(
    signals: &SharedSignals,
    core: &SelectorEventLoop,
    signum: i32,
    callback: Box<dyn FnMut()>,
) -> Result<(), Error> {
    // asyncio checks the number first, then whether the loop is closed.
    let index = check_signal(signum)?;
    if core.is_closed() {
        return Err(Error::closed());
    }
    if signum == libc::SIGKILL || signum == libc::SIGSTOP {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("sig {signum} cannot be caught"),
        ));
    }
    let target = signals.borrow().target.clone();
    let target = match target {
        Some(target) => target,
        None => {
            let target = Arc::new(Target {
                counts: [const { AtomicU32::new(0) }; NSIG],
                wake: core.signal_wake(),
            });
            let shared = Rc::downgrade(signals);
            core.set_signal_hook(Some(Box::new(move || {
                if let Some(signals) = shared.upgrade() {
                    dispatch(&signals);
                }
            })));
            signals.borrow_mut().target = Some(target.clone());
            target
        }
    };
    replace_target(index, Some(&target));
    if !set_disposition(signum, deliver as *const () as libc::sighandler_t) {
        let err = io::Error::last_os_error();
        clear_target(index, &target);
        if signals.borrow().handlers.is_empty() {
            release_target(signals, core);
        }
        return Err(if err.raw_os_error() == Some(libc::EINVAL) {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("sig {signum} cannot be caught"),
            )
        } else {
            err.into()
        });
    }
    if signum == SIGINT {
        // A handler of the user's own replaces `Runner`'s Ctrl-C rule.
        disarm_interrupt();
    }
    let previous = signals
        .borrow_mut()
        .handlers
        .insert(signum, Rc::new(RefCell::new(callback)));
    drop(previous);
    Ok(())
}

/// `remove_signal_handler`: `Ok(false)` when no handler was registered;
/// otherwise the default disposition comes back.
pub(crate) fn remove(signals: &SharedSignals, core: &SelectorEventLoop, signum: i32) -> Result<bool, Error> {
    let index = check_signal(signum)?;
    let Some(callback) = signals.borrow_mut().handlers.remove(&signum) else {
        return Ok(false);
    };
    drop(callback);
    let target = signals.borrow().target.clone();
    let mut result = Ok(true);
    if let Some(target) = &target {
        target.counts[index].store(0, Ordering::SeqCst);
        if clear_target(index, target) && !set_disposition(signum, libc::SIG_DFL) {
            result = Err(io::Error::last_os_error().into());
        }
    }
    if signals.borrow().handlers.is_empty() {
        release_target(signals, core);
    }
    result
}

/// Removes every handler (when the loop closes or drops).
pub(crate) fn remove_all(signals: &SharedSignals, core: &SelectorEventLoop) {
    let registered: Vec<i32> = signals.borrow().handlers.keys().copied().collect();
    for signum in registered {
        let _ = remove(signals, core, signum);
    }
    release_target(signals, core);
}

/// Forgets the table once no handler is left (its slots are empty by then).
fn release_target(signals: &SharedSignals, core: &SelectorEventLoop) {
    let target = signals.borrow_mut().target.take();
    if target.is_some() {
        core.set_signal_hook(None);
    }
}
