//! Readiness-based I/O on a loop's selector: what `aio::net`'s sockets (and
//! any source of your own) stand on.
//!
//! A file of its own because it is the contract between socket types and
//! loops: a socket registers its fd (socket on Windows) once, then tries each
//! operation and, on `WouldBlock`, clears the cached readiness and waits for
//! the selector to report the fd ready again. [`IoRegistration`] wraps the
//! loop's I/O methods into that loop ([`IoRegistration::poll_io`]).

use std::fmt;
use std::io;
use std::task::{Context, Poll};

use crate::{Error, EventLoop};

/// An OS I/O handle a selector can watch: a file descriptor on Unix, a
/// socket on Windows.
#[cfg(unix)]
pub type RawSource = std::os::fd::RawFd;
/// An OS I/O handle a selector can watch: a file descriptor on Unix, a
/// socket on Windows.
#[cfg(windows)]
pub type RawSource = std::os::windows::io::RawSocket;

/// A direction of readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Readable (or accepting, or at end of stream, or in error).
    Read,
    /// Writable (or connected, or in error).
    Write,
}

/// A loop's name for a registered source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IoKey(pub usize);

/// A source registered with a loop for readiness: deregistered on drop.
///
/// The source itself (the socket) must outlive the registration: drop the
/// registration first, then close the fd.
pub struct IoRegistration {
    event_loop: EventLoop,
    key: IoKey,
}

impl IoRegistration {
    /// Registers `raw` with `event_loop`'s selector.
    ///
    /// A selector may put off telling the OS until the first wait (aio's
    /// selector loop does, where the poller is edge-triggered): an fd the
    /// OS poller refuses (a regular file under epoll, say) then fails on
    /// that wait instead of here.
    pub fn new(event_loop: &EventLoop, raw: RawSource) -> Result<IoRegistration, Error> {
        if event_loop.is_closed() {
            return Err(Error::closed());
        }
        let key = event_loop.inner().io_register(raw)?;
        Ok(IoRegistration {
            event_loop: event_loop.clone(),
            key,
        })
    }

    /// Registers `raw` with the running loop.
    pub fn with_running_loop(raw: RawSource) -> io::Result<IoRegistration> {
        let event_loop = crate::get_running_loop().map_err(io::Error::other)?;
        IoRegistration::new(&event_loop, raw).map_err(into_io)
    }

    /// The loop the source is registered with.
    pub fn event_loop(&self) -> &EventLoop {
        &self.event_loop
    }

    /// Ready when the selector last reported `interest` and nobody has
    /// cleared it since; otherwise registers `cx`'s waker.
    pub fn poll_ready(&self, interest: Interest, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.event_loop
            .inner()
            .io_poll_ready(self.key, interest, cx)
            .map_err(into_io)
    }

    /// Forgets the cached readiness of `interest` (after a `WouldBlock`).
    pub fn clear_ready(&self, interest: Interest) {
        self.event_loop.inner().io_clear_ready(self.key, interest);
    }

    /// Runs `operation` until it does not block: tries it whenever the source
    /// is (believed) ready, and on `WouldBlock` clears the readiness and waits.
    pub fn poll_io<T>(
        &self,
        interest: Interest,
        cx: &mut Context<'_>,
        mut operation: impl FnMut() -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        let event_loop = self.event_loop.inner();
        if !event_loop.io_ready(self.key, interest) {
            std::task::ready!(self.poll_ready(interest, cx))?;
        }
        loop {
            match operation() {
                Err(err) if would_block(&err) => {
                    // Forget the readiness and wait, in one loop call.
                    std::task::ready!(event_loop.io_clear_and_poll_ready(self.key, interest, cx))
                        .map_err(into_io)?;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }

    /// Deregisters the source whose fd the caller closes right after: the
    /// loop may leave the deletion from its OS poller to the close (see
    /// [`AbstractEventLoop::io_deregister_closing`](crate::AbstractEventLoop::io_deregister_closing)).
    /// Dropping the registration instead always deletes it.
    pub fn deregister_closing(self) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the loop handle
        // is moved out exactly once and dropped here.
        let event_loop = unsafe { std::ptr::read(&this.event_loop) };
        event_loop.inner().io_deregister_closing(this.key);
    }

    /// Waits until `operation` does not block: the future form of
    /// [`poll_io`](IoRegistration::poll_io), one hand-written future (no
    /// `async` layers to dispatch through on every poll).
    pub fn io<T, F: FnMut() -> io::Result<T>>(&self, interest: Interest, operation: F) -> Io<'_, F> {
        Io {
            registration: self,
            interest,
            operation,
        }
    }
}

/// The future of [`IoRegistration::io`]: the operation's result once it
/// did not block.
pub struct Io<'a, F> {
    registration: &'a IoRegistration,
    interest: Interest,
    operation: F,
}

// The operation is a closure called in place, never pinned.
impl<F> Unpin for Io<'_, F> {}

impl<T, F: FnMut() -> io::Result<T>> std::future::Future for Io<'_, F> {
    type Output = io::Result<T>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let this = self.get_mut();
        this.registration.poll_io(this.interest, cx, &mut this.operation)
    }
}

impl<F> fmt::Debug for Io<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Io")
            .field("interest", &self.interest)
            .finish_non_exhaustive()
    }
}

/// Whether `err` is `WouldBlock`; on Linux and Android by its errno first
/// (`EAGAIN`), which costs less than decoding its kind.
#[inline]
fn would_block(err: &io::Error) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if err.raw_os_error() == Some(EAGAIN) {
        return true;
    }
    err.kind() == io::ErrorKind::WouldBlock
}

/// `EAGAIN` (also `EWOULDBLOCK`) on Linux and Android, on every architecture
/// Rust builds for (only Alpha numbers it otherwise).
#[cfg(any(target_os = "linux", target_os = "android"))]
const EAGAIN: i32 = 11;

impl Drop for IoRegistration {
    fn drop(&mut self) {
        self.event_loop.inner().io_deregister(self.key);
    }
}

impl fmt::Debug for IoRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoRegistration").field("key", &self.key).finish()
    }
}

/// A loop error as an `io::Error` (sockets speak `io::Result`): the OS
/// error itself for kind `Io`, otherwise the loop error wrapped.
pub fn into_io(err: Error) -> io::Error {
    err.into_io()
}
