//! What the socket suites (`net_tcp.rs`, `net_udp_unix.rs`) share: one test
//! at a time, each on a loop of its own under a watchdog, with the process's
//! open-fd count (open-socket count on Windows) checked before the loop is
//! made and after it is closed.
//!
//! A file of its own, included by `#[path]`, because both suites need the
//! same harness and a test target cannot import another.

#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How long one test's loop may run before the watchdog stops it.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// The fd count is process-wide, so tests of one binary take turns.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes this binary's turn for a test that opens descriptors outside
/// [`run`].
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The number of open file descriptors of this process.
#[cfg(unix)]
pub fn open_fds() -> usize {
    #[cfg(target_os = "linux")]
    let dir = "/proc/self/fd";
    #[cfg(not(target_os = "linux"))]
    let dir = "/dev/fd";
    std::fs::read_dir(dir)
        .expect("the fd directory is readable")
        .count()
}

/// The number of open sockets of this process. Windows' own count of
/// handles would also see the thread handles libtest makes for the tests
/// waiting beside this one (and Wine 8 answers it with 0), so this walks the
/// handle table instead and counts the handles that are sockets.
#[cfg(windows)]
pub fn open_fds() -> usize {
    use std::ffi::c_void;

    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn GetHandleInformation(handle: *mut c_void, flags: *mut u32) -> i32;
    }
    #[link(name = "ws2_32")]
    unsafe extern "system" {
        fn getsockopt(socket: usize, level: i32, name: i32, value: *mut u8, len: *mut i32) -> i32;
    }
    const SOL_SOCKET: i32 = 0xffff;
    const SO_TYPE: i32 = 0x1008;
    /// Handle values are multiples of 4, handed out lowest first; past this
    /// many free values in a row, the table has no more handles.
    const GAP: usize = 1024;

    // Winsock keeps a handle of its own from the first socket on: start it
    // before the first count, so that no test is charged with it.
    static WINSOCK: std::sync::Once = std::sync::Once::new();
    WINSOCK.call_once(|| drop(std::net::UdpSocket::bind("127.0.0.1:0")));

    let mut sockets = 0;
    let mut free_in_a_row = 0;
    let mut value = 4usize;
    while free_in_a_row < GAP {
        let mut flags = 0u32;
        // SAFETY: asking about a handle value that may not be open is what
        // this call is for; `flags` is a valid place for the answer.
        let open = unsafe { GetHandleInformation(value as *mut c_void, &mut flags) } != 0;
        if open {
            free_in_a_row = 0;
            let mut kind = 0i32;
            let mut len = std::mem::size_of::<i32>() as i32;
            // SAFETY: `kind` and `len` are valid for the option's 4 bytes; a
            // handle that is no socket makes the call fail with WSAENOTSOCK.
            let rc = unsafe { getsockopt(value, SOL_SOCKET, SO_TYPE, (&raw mut kind).cast(), &mut len) };
            if rc == 0 {
                sockets += 1;
            }
        } else {
            free_in_a_row += 1;
        }
        value += 4;
    }
    sockets
}

/// Whether this binary runs under Wine: never on Unix.
#[cfg(unix)]
pub fn under_wine() -> bool {
    false
}

/// Whether this Windows binary runs under Wine, whose ntdll exports
/// `wine_get_version`, and whose sockets differ from Windows' in places the
/// tests name.
#[cfg(windows)]
pub fn under_wine() -> bool {
    use std::ffi::c_void;

    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn GetModuleHandleA(name: *const u8) -> *mut c_void;
        fn GetProcAddress(module: *mut c_void, name: *const u8) -> *mut c_void;
    }
    // SAFETY: both names are NUL-terminated; ntdll is loaded in every
    // process, and a missing export is a null pointer, not an error.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        !ntdll.is_null() && !GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_null()
    }
}

/// Runs `test` to completion on a new selector loop, which a watchdog stops
/// after `limit`; closes the loop; fails if the test failed, timed out, or
/// left a descriptor open.
pub fn run<F, Fut>(limit: Duration, test: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = io::Result<()>> + 'static,
{
    let _turn = serial();
    let before = open_fds();
    let outcome = {
        let event_loop = aio::SelectorEventLoop::new().expect("a new selector loop");
        let watchdog = event_loop
            .call_later(limit, || {
                aio::get_running_loop()
                    .expect("a callback runs inside its loop")
                    .stop()
            })
            .expect("arm the watchdog");
        let outcome = event_loop.run_until_complete(test());
        watchdog.cancel();
        event_loop.close().expect("close the loop");
        outcome
    };
    match outcome {
        Err(err) => panic!("the test did not finish within {limit:?}: {err}"),
        Ok(Err(err)) => panic!("the test failed: {err} ({err:?})"),
        Ok(Ok(())) => {}
    }
    assert_eq!(
        open_fds(),
        before,
        "open descriptors before the loop was made and after it was closed"
    );
}

/// Raises the soft `RLIMIT_NOFILE` to at least `want` (up to the hard
/// limit) and says what it is now.
#[cfg(unix)]
pub fn raise_fd_limit(want: u64) -> u64 {
    // SAFETY: a zeroed rlimit is a valid out-parameter.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a valid rlimit to write to.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0, "getrlimit: {}", io::Error::last_os_error());
    if (limit.rlim_cur as u64) < want {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is initialised; raising the soft limit up to the
        // hard one needs no privilege.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
        assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
    }
    limit.rlim_cur as u64
}

/// Windows has no descriptor limit to raise: handles are limited only by
/// memory (about 16 million per process).
#[cfg(windows)]
pub fn raise_fd_limit(want: u64) -> u64 {
    want
}

/// Runs `f` with SIGPIPE at its default disposition (terminate), so that a
/// write that raised it would kill the test instead of passing unnoticed:
/// Rust programs start with SIGPIPE ignored, which would hide a missing
/// `MSG_NOSIGNAL`.
#[cfg(unix)]
pub fn with_sigpipe_default<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: SIG_DFL is a valid disposition for SIGPIPE.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let out = f();
    // SAFETY: SIG_IGN is a valid disposition; it is what Rust's runtime set.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    out
}

/// Windows has no SIGPIPE: a write to a closed peer is only an error.
#[cfg(windows)]
pub fn with_sigpipe_default<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// `len` bytes of a pattern that a shifted or dropped chunk breaks.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// An error as the `io::Error` a test returns.
pub fn fail(message: impl Into<String>) -> io::Error {
    io::Error::other(message.into())
}

/// A task's outcome as an `io::Result`.
pub async fn join<T>(task: aio::Task<io::Result<T>>) -> io::Result<T> {
    task.await.map_err(io::Error::other)?
}
