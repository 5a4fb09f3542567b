//! A socket and its registration with the loop's selector, kept together so
//! that they are released in the one safe order.
//!
//! A file of its own because every socket type of this crate is a
//! [`Registered`] of a std socket: its `Drop` is the whole argument for "the
//! selector forgets the fd before the fd closes", and it is made once, here.

use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::task::{Context, Poll};

use aio_events::{EventLoop, Interest, Io, IoRegistration, RawSource};

/// A socket the selector can watch: its raw fd (socket on Windows).
pub(crate) trait Source {
    fn raw_source(&self) -> RawSource;
}

macro_rules! impl_source {
    ($($ty:ty),* $(,)?) => {$(
        impl Source for $ty {
            #[cfg(unix)]
            fn raw_source(&self) -> RawSource {
                std::os::fd::AsRawFd::as_raw_fd(self)
            }
            #[cfg(windows)]
            fn raw_source(&self) -> RawSource {
                std::os::windows::io::AsRawSocket::as_raw_socket(self)
            }
        }
    )*};
}

impl_source!(std::net::TcpListener, std::net::TcpStream, std::net::UdpSocket);
#[cfg(unix)]
impl_source!(std::os::unix::net::UnixListener, std::os::unix::net::UnixStream);

/// Implements `AsFd`/`AsRawFd` (Unix) or `AsSocket`/`AsRawSocket` (Windows)
/// for socket types whose field `inner` is a [`Registered`], so users can set
/// options of their own (through socket2's `SockRef`, say).
macro_rules! impl_as_raw {
    ($($ty:ty),* $(,)?) => {$(
        #[cfg(unix)]
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(self.inner.io())
            }
        }
        #[cfg(unix)]
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(self.inner.io())
            }
        }
        #[cfg(windows)]
        impl std::os::windows::io::AsSocket for $ty {
            fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
                std::os::windows::io::AsSocket::as_socket(self.inner.io())
            }
        }
        #[cfg(windows)]
        impl std::os::windows::io::AsRawSocket for $ty {
            fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
                std::os::windows::io::AsRawSocket::as_raw_socket(self.inner.io())
            }
        }
    )*};
}
pub(crate) use impl_as_raw;

/// The running loop, or the `io::Error` "no running event loop".
pub(crate) fn running_loop() -> io::Result<EventLoop> {
    aio_events::get_running_loop().map_err(aio_events::into_io)
}

/// A non-blocking socket registered with one loop.
///
/// Dropped, it deregisters first and closes second: the selector forgets
/// the fd while it is still open (a closed fd number may already name
/// another file), told that the close follows, so that on Linux the close
/// itself takes the fd out of the epoll. `into_inner` deregisters fully,
/// as the fd lives on.
pub(crate) struct Registered<S: Source> {
    registration: ManuallyDrop<IoRegistration>,
    io: S,
}

impl<S: Source> Registered<S> {
    /// Registers `io` (already non-blocking) with `event_loop`. On error `io`
    /// is dropped, so closed.
    pub(crate) fn new(event_loop: &EventLoop, io: S) -> io::Result<Registered<S>> {
        let registration = IoRegistration::new(event_loop, io.raw_source()).map_err(aio_events::into_io)?;
        Ok(Registered {
            registration: ManuallyDrop::new(registration),
            io,
        })
    }

    /// Registers `io` with the running loop, after making it non-blocking
    /// with `set_nonblocking`.
    pub(crate) fn adopt(
        io: S,
        set_nonblocking: impl FnOnce(&S) -> io::Result<()>,
    ) -> io::Result<Registered<S>> {
        let event_loop = running_loop()?;
        set_nonblocking(&io)?;
        Registered::new(&event_loop, io)
    }

    pub(crate) fn io(&self) -> &S {
        &self.io
    }

    pub(crate) fn event_loop(&self) -> &EventLoop {
        self.registration.event_loop()
    }

    /// Runs `operation` until it does not block (see
    /// [`IoRegistration::poll_io`]).
    /// Forgets the cached readiness of `interest`: the next operation waits
    /// for the selector to report it.
    pub(crate) fn clear_ready(&self, interest: Interest) {
        self.registration.clear_ready(interest);
    }

    pub(crate) fn poll_io<T>(
        &self,
        interest: Interest,
        cx: &mut Context<'_>,
        operation: impl FnMut() -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        self.registration.poll_io(interest, cx, operation)
    }

    /// The future form of [`poll_io`](Registered::poll_io): waits until
    /// `operation` does not block.
    pub(crate) fn run_io<T, F: FnMut() -> io::Result<T>>(
        &self,
        interest: Interest,
        operation: F,
    ) -> Io<'_, F> {
        self.registration.io(interest, operation)
    }

    /// Deregisters, then hands back the socket (still open, still
    /// non-blocking).
    pub(crate) fn into_inner(self) -> S {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so each field is moved out once:
        // the registration dropped (deleted from the poller) while the
        // socket is still open, the socket handed back.
        unsafe {
            drop(ManuallyDrop::take(&mut this.registration));
            std::ptr::read(&this.io)
        }
    }
}

impl<S: Source> Drop for Registered<S> {
    fn drop(&mut self) {
        // SAFETY: the registration is taken once, here; `io` drops (closes)
        // after this body.
        unsafe { ManuallyDrop::take(&mut self.registration) }.deregister_closing();
    }
}

impl<S: Source + fmt::Debug> fmt::Debug for Registered<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.fmt(f)
    }
}
