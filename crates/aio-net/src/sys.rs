//! The few facts about sockets that differ between operating systems: which
//! errors mean "connect is under way" or "out of descriptors", and how a send
//! avoids SIGPIPE.
//!
//! A file of its own so that the socket types above stay free of `cfg`s and
//! every platform answer is in one place.

use std::io;
use std::time::Duration;

use socket2::SockRef;

/// How long a listener stops accepting after running out of descriptors
/// (asyncio's `constants.ACCEPT_RETRY_DELAY`).
pub(crate) const ACCEPT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The backlog of [`TcpListener`](crate::TcpListener)s: asyncio's default is
/// 100, but a burst of a thousand clients then sees dropped SYNs and
/// one-second retransmits; the kernel caps it at `somaxconn` anyway.
pub(crate) const LISTEN_BACKLOG: i32 = 1024;

/// Flags of every stream send. Where the OS has `MSG_NOSIGNAL`, a write to a
/// closed peer gives `EPIPE` instead of killing the process with SIGPIPE
/// (Rust binaries ignore SIGPIPE, but a library cannot count on it). Apple
/// systems have no such flag: there socket2 and std set `SO_NOSIGPIPE` on
/// every socket they create, and accepted sockets inherit it. Windows has no
/// SIGPIPE.
const SEND_FLAGS: i32 = cfg_select! {
    any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "illumos",
        target_os = "solaris",
    ) => { libc::MSG_NOSIGNAL }
    _ => { 0 }
};

/// Sends on a connected stream socket without raising SIGPIPE.
pub(crate) fn send(socket: SockRef<'_>, buf: &[u8]) -> io::Result<usize> {
    socket.send_with_flags(buf, SEND_FLAGS)
}

/// Vectored [`send`].
pub(crate) fn send_vectored(socket: SockRef<'_>, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    socket.send_vectored_with_flags(bufs, SEND_FLAGS)
}

/// Whether a non-blocking `connect` returned "started, not finished":
/// `EINPROGRESS` on Unix, `WSAEWOULDBLOCK` on Windows.
pub(crate) fn connect_in_progress(err: &io::Error) -> bool {
    #[cfg(unix)]
    {
        err.raw_os_error() == Some(libc::EINPROGRESS)
    }
    #[cfg(windows)]
    {
        err.kind() == io::ErrorKind::WouldBlock
    }
}

/// Whether `accept` failed for want of descriptors or memory (asyncio's
/// `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`): the pending connection stays
/// queued and accepting later may succeed.
pub(crate) fn out_of_resources(err: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            err.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
    }
    #[cfg(windows)]
    {
        // WSAEMFILE and WSAENOBUFS (winsock2.h); Windows has no ENFILE or
        // ENOMEM for sockets.
        const WSAEMFILE: i32 = 10024;
        const WSAENOBUFS: i32 = 10055;
        matches!(err.raw_os_error(), Some(WSAEMFILE | WSAENOBUFS))
    }
}

/// Whether `accept` failed because the connection died while queued: asyncio
/// ignores it and waits for the next one.
pub(crate) fn accept_aborted(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::ConnectionAborted
}

/// The outcome of a non-blocking `connect` once the socket turned writable:
/// `WouldBlock` while it is still under way (a spurious readiness), the
/// connect's own error when it failed.
///
/// One system call when the connect succeeded: a connected socket has a
/// peer. Only a socket without one is asked for its pending error, to tell
/// a failed connect from one still under way.
pub(crate) fn connect_result(socket: SockRef<'_>) -> io::Result<()> {
    match socket.peer_addr() {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotConnected => match socket.take_error()? {
            Some(err) => Err(err),
            None => Err(io::ErrorKind::WouldBlock.into()),
        },
        Err(err) => Err(err),
    }
}

/// Whether a socket `accept` returns inherits `TCP_NODELAY` from its
/// listener, so that turning it on once on the listener covers every
/// connection: Linux copies the option into each accepted socket. Elsewhere
/// each accepted socket gets its own `setsockopt`.
pub(crate) const ACCEPT_INHERITS_NODELAY: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// A new non-blocking socket: non-blocking from the start where the OS takes
/// `SOCK_NONBLOCK` (one system call instead of three), made so afterwards
/// elsewhere.
pub(crate) fn nonblocking_socket(
    domain: socket2::Domain,
    ty: socket2::Type,
    protocol: Option<socket2::Protocol>,
) -> io::Result<socket2::Socket> {
    cfg_select! {
        any(
            target_os = "android",
            target_os = "dragonfly",
            target_os = "freebsd",
            target_os = "fuchsia",
            target_os = "illumos",
            target_os = "linux",
            target_os = "netbsd",
            target_os = "openbsd",
        ) => {
            socket2::Socket::new(domain, ty.nonblocking(), protocol)
        }
        _ => {
            let socket = socket2::Socket::new(domain, ty, protocol)?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        }
    }
}
