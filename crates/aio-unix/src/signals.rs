//! Signal handlers on the Unix loop (`add_signal_handler`,
//! `remove_signal_handler`) and the process-wide Ctrl-C rule of `Runner`.
//!
//! A file of its own because it holds the crate's only async-signal-safe
//! code. asyncio's design: the C-level handler writes the signal's number to
//! a self-pipe and does nothing else; the loop watches the pipe's read end
//! like any reader and runs the Rust callbacks on its own thread.
//!
//! `sigaction` is called by hand (through `libc`) rather than through
//! `signal-hook-registry`, because asyncio's rules need exact dispositions:
//! removing a handler restores `SIG_DFL`, `Runner` arms Ctrl-C only while
//! SIGINT has its default disposition, and a second Ctrl-C restores the
//! default and re-raises. signal-hook-registry keeps its own handler
//! installed for good and cannot do either.
//!
//! **Two loops, one signal.** The pipe a signal is written to is
//! process-wide per signal: the loop that added a handler for it last
//! receives it. When that loop removes its handler (or closes), the signal
//! goes back to its default disposition, even if another loop had a handler
//! for it before.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

use aio_events::{AbstractEventLoop, Error, ErrorKind, ExceptionContext, panic_message};
use aio_selector::SelectorEventLoop;

/// SIGINT, the signal of Ctrl-C.
pub const SIGINT: i32 = libc::SIGINT;

/// One past the highest signal number.
#[cfg(any(target_os = "linux", target_os = "android"))]
const NSIG: usize = 65;
/// One past the highest signal number.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const NSIG: usize = 32;

/// Per signal, the write end of the pipe of the loop that receives it, or -1.
static WAKE_FDS: [AtomicI32; NSIG] = [const { AtomicI32::new(-1) }; NSIG];

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

/// The C-level handler. Async-signal-safe: atomics, `write`, `sigaction`,
/// `raise`, and errno saved and restored around them.
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
    if let Some(slot) = WAKE_FDS.get(index) {
        let fd = slot.load(Ordering::SeqCst);
        if fd >= 0 {
            let byte = signum as u8;
            // SAFETY: `write` is async-signal-safe; a full pipe drops the
            // byte, which is fine: one pending byte is enough to wake the loop
            // and signals of one kind coalesce anyway.
            unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
        }
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

/// The self-pipe, non-blocking and close-on-exec from the start where the
/// platform has `pipe2` (one system call instead of five).
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos"
))]
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `pipe2` succeeded, so both are fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The self-pipe, made non-blocking and close-on-exec after the fact where
/// there is no `pipe2` (macOS).
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos"
)))]
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe` writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `pipe` succeeded, so both are fresh descriptors we own.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&read, &write] {
        let raw = fd.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own, with integer arguments.
        let ok = unsafe {
            let flags = libc::fcntl(raw, libc::F_GETFL);
            flags >= 0
                && libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
                && libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) == 0
        };
        if !ok {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((read, write))
}

/// Shared, so that dispatch can call a handler while the handler adds or
/// removes handlers (its own included) without the map being borrowed.
type SignalCallback = Rc<RefCell<Box<dyn FnMut()>>>;

/// A loop's signal handlers and its self-pipe.
#[derive(Default)]
pub(crate) struct Signals {
    handlers: HashMap<i32, SignalCallback>,
    pipe: Option<(OwnedFd, OwnedFd)>,
}

/// The signal state a loop shares with its pipe's reader callback.
pub(crate) type SharedSignals = Rc<RefCell<Signals>>;

/// Reads the signal numbers off the pipe and runs their callbacks.
fn dispatch(signals: &SharedSignals) {
    let Some(read_fd) = signals.borrow().pipe.as_ref().map(|(read, _)| read.as_raw_fd()) else {
        return;
    };
    let mut buffer = [0u8; 64];
    let mut arrived = Vec::new();
    loop {
        // SAFETY: reading into a local buffer from our own non-blocking fd.
        let n = unsafe { libc::read(read_fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        let Ok(n) = usize::try_from(n) else {
            break;
        };
        if n == 0 {
            break;
        }
        // One call per delivery, in order, as asyncio's `_handle_signal`.
        arrived.extend_from_slice(&buffer[..n]);
    }
    for signum in arrived.into_iter().map(i32::from) {
        // The map is not borrowed while the handler runs: it may add or
        // remove handlers, its own included. A handler removed meanwhile
        // does not run.
        let Some(callback) = signals.borrow().handlers.get(&signum).cloned() else {
            continue;
        };
        // A handler that re-enters itself (it cannot, short of running the
        // loop inside a callback) is skipped rather than aliased.
        let Ok(mut callback) = callback.try_borrow_mut() else {
            continue;
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| (*callback)())) {
            let context = ExceptionContext::new(format!("Exception in signal handler for signal {signum}"))
                .with_exception(panic_message(&*payload));
            match aio_events::try_get_running_loop() {
                Some(event_loop) => event_loop.call_exception_handler(context),
                None => aio_events::default_exception_handler(&context),
            }
        }
    }
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
    if signals.borrow().pipe.is_none() {
        let (read, write) = pipe()?;
        let shared = Rc::downgrade(signals);
        core.add_source(
            read.as_raw_fd(),
            false,
            Box::new(move || {
                if let Some(signals) = shared.upgrade() {
                    dispatch(&signals);
                }
            }),
        )?;
        signals.borrow_mut().pipe = Some((read, write));
    }
    let write_fd = signals
        .borrow()
        .pipe
        .as_ref()
        .map_or(-1, |(_, write)| write.as_raw_fd());
    WAKE_FDS[index].store(write_fd, Ordering::SeqCst);
    if !set_disposition(signum, deliver as *const () as libc::sighandler_t) {
        let err = io::Error::last_os_error();
        WAKE_FDS[index].store(-1, Ordering::SeqCst);
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
    let write_fd = signals
        .borrow()
        .pipe
        .as_ref()
        .map_or(-1, |(_, write)| write.as_raw_fd());
    if WAKE_FDS[index]
        .compare_exchange(write_fd, -1, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
        && !set_disposition(signum, libc::SIG_DFL)
    {
        return Err(io::Error::last_os_error().into());
    }
    if signals.borrow().handlers.is_empty() {
        release_pipe(signals, core);
    }
    Ok(true)
}

/// Removes every handler (when the loop closes or drops).
pub(crate) fn remove_all(signals: &SharedSignals, core: &SelectorEventLoop) {
    let registered: Vec<i32> = signals.borrow().handlers.keys().copied().collect();
    for signum in registered {
        let _ = remove(signals, core, signum);
    }
    release_pipe(signals, core);
}

fn release_pipe(signals: &SharedSignals, core: &SelectorEventLoop) {
    let pipe = signals.borrow_mut().pipe.take();
    if let Some((read, _write)) = pipe {
        core.remove_source(read.as_raw_fd(), false);
    }
}
