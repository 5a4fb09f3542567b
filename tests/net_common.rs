//! What the socket suites (`net_tcp.rs`, `net_udp_unix.rs`) share: one test
//! at a time, each on a loop of its own under a watchdog, with the process's
//! open-fd count checked before the loop is made and after it is closed.
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
pub fn open_fds() -> usize {
    #[cfg(target_os = "linux")]
    let dir = "/proc/self/fd";
    #[cfg(not(target_os = "linux"))]
    let dir = "/dev/fd";
    std::fs::read_dir(dir)
        .expect("the fd directory is readable")
        .count()
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

/// Runs `f` with SIGPIPE at its default disposition (terminate), so that a
/// write that raised it would kill the test instead of passing unnoticed:
/// Rust programs start with SIGPIPE ignored, which would hide a missing
/// `MSG_NOSIGNAL`.
pub fn with_sigpipe_default<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: SIG_DFL is a valid disposition for SIGPIPE.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let out = f();
    // SAFETY: SIG_IGN is a valid disposition; it is what Rust's runtime set.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    out
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
