//! Unix domain sockets: [`UnixListener`] and [`UnixStream`] (asyncio's
//! `create_unix_server` and `create_unix_connection`, as Rust streams).
//!
//! A file of its own because it exists only on Unix; its types are
//! re-exported beside the TCP ones, as `aio::net::UnixStream`.

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use aio_events::Interest;
use socket2::{Domain, SockAddr, SockRef, Type};

use crate::accept;
use crate::registered::{Registered, running_loop};
use crate::sys;

/// How long a connect waits before trying again when the listener's
/// backlog is full: Linux then refuses a non-blocking connect with `EAGAIN`
/// and queues nothing, and no readiness event says when room frees up.
const BACKLOG_FULL_RETRY: Duration = Duration::from_millis(10);

/// A Unix stream socket listening at a path, registered with the loop it
/// was bound in.
///
/// The socket file stays after the listener is dropped, as with std's
/// listener: remove it to bind the path again.
pub struct UnixListener {
    inner: Registered<std::os::unix::net::UnixListener>,
}

impl UnixListener {
    /// Binds a listener to `path`, registered with the running loop ("no
    /// running event loop" outside one).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let event_loop = running_loop()?;
        let listener = std::os::unix::net::UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let inner = Registered::new(&event_loop, listener)?;
        Ok(UnixListener { inner })
    }

    /// Waits for a connection and accepts it, registered with this
    /// listener's loop. Running out of descriptors pauses accepting for a
    /// second after a report to the exception handler, as
    /// [`TcpListener::accept`](crate::TcpListener::accept) does.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, addr) = accept::accept(&self.inner, |listener| {
            let (stream, addr) = listener.accept()?;
            stream.set_nonblocking(true)?;
            Ok((stream, addr))
        })
        .await?;
        let stream = UnixStream {
            inner: Registered::new(self.inner.event_loop(), stream)?,
        };
        Ok((stream, addr))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().local_addr()
    }

    /// Deregisters the listener and hands back the std listener, in
    /// blocking mode again.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        let listener = self.inner.into_inner();
        listener.set_nonblocking(false)?;
        Ok(listener)
    }
}

/// Adopts a std listener: makes it non-blocking and registers it with the
/// running loop ("no running event loop" outside one).
impl TryFrom<std::os::unix::net::UnixListener> for UnixListener {
    type Error = io::Error;

    fn try_from(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        let inner = Registered::adopt(listener, |l| l.set_nonblocking(true))?;
        Ok(UnixListener { inner })
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UnixListener").field(&self.inner).finish()
    }
}

/// A Unix stream connection registered with its loop: `futures_io`
/// streams as [`TcpStream`](crate::TcpStream), with `poll_close` a write
/// shutdown.
pub struct UnixStream {
    inner: Registered<std::os::unix::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the listener at `path` without blocking the loop; the
    /// stream is registered with the running loop ("no running event loop"
    /// outside one). Dropping the future mid-connect closes the socket.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let event_loop = running_loop()?;
        let addr = SockAddr::unix(path)?;
        let socket = crate::sys::nonblocking_socket(Domain::UNIX, Type::STREAM, None)?;
        let stream = UnixStream {
            inner: Registered::new(&event_loop, std::os::unix::net::UnixStream::from(socket))?,
        };
        loop {
            match SockRef::from(stream.inner.io()).connect(&addr) {
                Ok(()) => return Ok(stream),
                Err(err) if sys::connect_in_progress(&err) => {
                    stream
                        .inner
                        .run_io(Interest::Write, || {
                            sys::connect_result(SockRef::from(stream.inner.io()))
                        })
                        .await?;
                    return Ok(stream);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    aio_events::sleep(BACKLOG_FULL_RETRY).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// A connected pair of streams (`socketpair`), both registered with the
    /// running loop ("no running event loop" outside one).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let event_loop = running_loop()?;
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        a.set_nonblocking(true)?;
        b.set_nonblocking(true)?;
        let a = UnixStream {
            inner: Registered::new(&event_loop, a)?,
        };
        let b = UnixStream {
            inner: Registered::new(&event_loop, b)?,
        };
        Ok((a, b))
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().local_addr()
    }

    /// Shuts down the read half, the write half or both, at once.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.io().shutdown(how)
    }

    /// Deregisters the stream and hands back the std stream, in blocking
    /// mode again.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        let stream = self.inner.into_inner();
        stream.set_nonblocking(false)?;
        Ok(stream)
    }
}

/// Adopts a std stream: makes it non-blocking and registers it with the
/// running loop ("no running event loop" outside one).
impl TryFrom<std::os::unix::net::UnixStream> for UnixStream {
    type Error = io::Error;

    fn try_from(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        let inner = Registered::adopt(stream, |s| s.set_nonblocking(true))?;
        Ok(UnixStream { inner })
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UnixStream").field(&self.inner).finish()
    }
}

crate::stream::impl_async_stream!(UnixStream);
crate::registered::impl_as_raw!(UnixListener, UnixStream);
