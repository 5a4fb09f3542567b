//! TCP: [`TcpListener`] and [`TcpStream`] (asyncio's `create_server`,
//! `create_connection` and `_SelectorSocketTransport`, as Rust streams).
//!
//! A file of its own because TCP is the one protocol here with a connect
//! that completes later, `TCP_NODELAY`, and listeners that must survive
//! running out of descriptors.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use aio_events::{EventLoop, Interest};
use socket2::{Domain, Protocol, SockRef, Type};

use crate::accept;
use crate::registered::{Registered, running_loop};
use crate::sys;

/// Resolves `addr` (on the calling thread, with the system resolver, as
/// `std::net` does: pass an IP address to be sure nothing blocks) and runs
/// `attempt` on each address in turn until one succeeds; otherwise the last
/// error, as asyncio's `create_connection` tries every `getaddrinfo` entry.
pub(crate) async fn each_address<T, F: Future<Output = io::Result<T>>>(
    addr: impl ToSocketAddrs,
    mut attempt: impl FnMut(SocketAddr) -> F,
) -> io::Result<T> {
    let mut last_err = None;
    for addr in addr.to_socket_addrs()? {
        match attempt(addr).await {
            Ok(done) => return Ok(done),
            Err(err) => last_err = Some(err),
        }
    }
    Err(last_err
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any address")))
}

/// A TCP socket listening for connections, registered with the loop it was
/// bound in.
///
/// Bound with `SO_REUSEADDR` on Unix (as asyncio's `create_server`), so a
/// restarted server can bind while old connections linger in `TIME_WAIT`.
/// Not on Windows, where the option would let another process steal the
/// port.
pub struct TcpListener {
    inner: Registered<std::net::TcpListener>,
}

impl TcpListener {
    /// Binds a listener to the first address of `addr` that accepts the
    /// bind, registered with the running loop.
    ///
    /// Errors: "no running event loop" outside a running loop; the bind's
    /// own error (`AddrInUse`, ...) for the last address tried.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let event_loop = running_loop()?;
        each_address(addr, |addr| {
            let event_loop = &event_loop;
            async move { TcpListener::bind_one(event_loop, addr) }
        })
        .await
    }

    fn bind_one(event_loop: &EventLoop, addr: SocketAddr) -> io::Result<TcpListener> {
        let socket = sys::nonblocking_socket(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        #[cfg(unix)]
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(sys::LISTEN_BACKLOG)?;
        if sys::ACCEPT_INHERITS_NODELAY {
            socket.set_tcp_nodelay(true)?;
        }
        let inner = Registered::new(event_loop, std::net::TcpListener::from(socket))?;
        Ok(TcpListener { inner })
    }

    /// Waits for a connection and accepts it: a non-blocking [`TcpStream`]
    /// with `TCP_NODELAY` on, registered with this listener's loop, and the
    /// peer's address.
    ///
    /// When the process runs out of descriptors (`EMFILE`, `ENFILE`,
    /// `ENOBUFS`, `ENOMEM`), the error goes to the loop's exception handler
    /// ("socket.accept() out of system resource"), accepting pauses for one
    /// second, then resumes: the caller just sees a slower accept, as
    /// asyncio's servers do. Connections reset while queued are skipped.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = accept::accept(&self.inner, accept_nonblocking).await?;
        // asyncio sets TCP_NODELAY on every TCP transport. Where accepted
        // sockets inherit it, the listener has it and no call is needed.
        // Elsewhere a connection reset while it waited in the backlog may
        // refuse the option; its first read reports the reset, so the error
        // is not the accept's.
        if !sys::ACCEPT_INHERITS_NODELAY {
            let _ = stream.set_nodelay(true);
        }
        let stream = TcpStream {
            inner: Registered::new(self.inner.event_loop(), stream)?,
        };
        Ok((stream, addr))
    }

    /// The address the listener is bound to (with the port the OS chose for
    /// port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().local_addr()
    }

    /// Deregisters the listener and hands back the std listener, in
    /// blocking mode again.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        let listener = self.inner.into_inner();
        listener.set_nonblocking(false)?;
        Ok(listener)
    }
}

/// `accept` that hands back a non-blocking stream: one `accept4` where the
/// OS has it, `accept` and `ioctl` elsewhere.
fn accept_nonblocking(listener: &std::net::TcpListener) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let (socket, addr) = SockRef::from(listener).accept4(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)?;
        let addr = addr.as_socket().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "accept gave a non-IP address on a TCP listener",
            )
        })?;
        Ok((socket.into(), addr))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let (stream, addr) = listener.accept()?;
        stream.set_nonblocking(true)?;
        Ok((stream, addr))
    }
}

/// Adopts a std listener: makes it non-blocking (and, where accepted sockets
/// inherit it, turns `TCP_NODELAY` on for the connections it will accept)
/// and registers it with the running loop ("no running event loop" outside
/// one).
impl TryFrom<std::net::TcpListener> for TcpListener {
    type Error = io::Error;

    fn try_from(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        let inner = Registered::adopt(listener, |l| {
            l.set_nonblocking(true)?;
            if sys::ACCEPT_INHERITS_NODELAY {
                SockRef::from(l).set_tcp_nodelay(true)?;
            }
            Ok(())
        })?;
        Ok(TcpListener { inner })
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TcpListener").field(&self.inner).finish()
    }
}

/// A TCP connection registered with its loop: `futures_io::AsyncRead` and
/// `AsyncWrite`, on the stream and on `&TcpStream` (so one task can read
/// while another writes).
///
/// `TCP_NODELAY` is on from the start, as in asyncio's transports: small
/// writes leave at once instead of waiting for the peer's ACK.
/// [`AsyncWrite::poll_close`](futures_io::AsyncWrite::poll_close) shuts the
/// write half down (asyncio's `write_eof`); dropping the stream closes it.
///
/// Peer resets, writes to a closed peer and the like come back as
/// `io::Error`s (`ConnectionReset`, `BrokenPipe`); writes never raise
/// SIGPIPE.
pub struct TcpStream {
    inner: Registered<std::net::TcpStream>,
}

impl TcpStream {
    /// Connects to the first address of `addr` that accepts, without
    /// blocking the loop; the stream is registered with the running loop.
    ///
    /// Dropping the future mid-connect closes the socket. Errors: "no
    /// running event loop" outside a running loop; the connect's own error
    /// (`ConnectionRefused`, ...) for the last address tried.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let event_loop = running_loop()?;
        each_address(addr, |addr| TcpStream::connect_one(&event_loop, addr)).await
    }

    async fn connect_one(event_loop: &EventLoop, addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = sys::nonblocking_socket(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_tcp_nodelay(true)?;
        let stream = TcpStream {
            inner: Registered::new(event_loop, std::net::TcpStream::from(socket))?,
        };
        match SockRef::from(stream.inner.io()).connect(&addr.into()) {
            Ok(()) => return Ok(stream),
            Err(err) if sys::connect_in_progress(&err) => {}
            Err(err) => return Err(err),
        }
        // As asyncio's `sock_connect` (and mio, and libuv): wait until the
        // socket turns writable, then read the outcome. Asking at once costs
        // two system calls for nothing whenever the handshake takes a round
        // trip; only on loopback might the connect be done already.
        stream.inner.clear_ready(Interest::Write);
        stream
            .inner
            .run_io(Interest::Write, || {
                sys::connect_result(SockRef::from(stream.inner.io()))
            })
            .await?;
        Ok(stream)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().local_addr()
    }

    /// Turns `TCP_NODELAY` on or off (on by default).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.io().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is on.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.io().nodelay()
    }

    /// Sets `SO_LINGER`. `Some(Duration::ZERO)` makes closing the stream
    /// reset the connection instead of ending it gracefully.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        SockRef::from(self.inner.io()).set_linger(linger)
    }

    /// The `SO_LINGER` setting.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        SockRef::from(self.inner.io()).linger()
    }

    /// Shuts down the read half, the write half or both, at once.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.io().shutdown(how)
    }

    /// Deregisters the stream and hands back the std stream, in blocking
    /// mode again.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        let stream = self.inner.into_inner();
        stream.set_nonblocking(false)?;
        Ok(stream)
    }
}

/// Adopts a std stream: makes it non-blocking, turns `TCP_NODELAY` on (as
/// every aio stream has it) and registers it with the running loop ("no
/// running event loop" outside one).
impl TryFrom<std::net::TcpStream> for TcpStream {
    type Error = io::Error;

    fn try_from(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        let inner = Registered::adopt(stream, |s| {
            s.set_nonblocking(true)?;
            s.set_nodelay(true)
        })?;
        Ok(TcpStream { inner })
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TcpStream").field(&self.inner).finish()
    }
}

crate::stream::impl_async_stream!(TcpStream);
crate::registered::impl_as_raw!(TcpListener, TcpStream);
