//! asyncio's loop-level socket helpers (`loop.sock_recv`, `sock_sendall`,
//! `sock_accept`, `sock_connect`) on std sockets, for code ported from
//! asyncio: [`SockExt`], implemented for [`EventLoop`].
//!
//! A file of its own because these helpers take sockets the loop does not
//! own: like asyncio's, each call watches the socket only while it waits
//! (`add_reader`/`add_writer` and their removal) and forgets it when it
//! returns or is dropped.

use std::future::Future;
use std::io::{self, Read};
use std::net::{SocketAddr, ToSocketAddrs};

use aio_events::{EventLoop, Interest};
use socket2::{Domain, Protocol, SockRef, Type};

use crate::sys;
use crate::tcp::each_address;

/// asyncio's `loop.sock_*` helpers on std's TCP sockets.
///
/// Each helper puts the socket in non-blocking mode (asyncio requires the
/// caller to), tries the operation at once, and only when it would block
/// watches the socket until it is ready. Sockets from `sock_accept` and
/// `sock_connect` are non-blocking. The futures are not `Send`, as the loop
/// is not. Two helpers may wait on one socket in the two directions at once
/// (a `sock_recv` beside a `sock_sendall`); a second one in the same
/// direction replaces the first one's callback, which is then not woken
/// again, as in asyncio: do not do that.
///
/// ```
/// use aio_net::SockExt;
///
/// let event_loop = aio_selector::SelectorEventLoop::new()?;
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let inner = event_loop.clone();
/// let echoed = event_loop.run_until_complete(async move {
///     let client = inner.sock_connect(addr).await?;
///     let (server, _) = inner.sock_accept(&listener).await?;
///     inner.sock_sendall(&client, b"ping").await?;
///     let mut buf = [0; 4];
///     let n = inner.sock_recv(&server, &mut buf).await?;
///     std::io::Result::Ok(buf[..n].to_vec())
/// })??;
/// assert_eq!(echoed, b"ping");
/// event_loop.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait SockExt {
    /// Reads what is available into `buf`, waiting until something is;
    /// `Ok(0)` at end of stream (asyncio's `sock_recv`).
    fn sock_recv(
        &self,
        sock: &std::net::TcpStream,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<usize>>;

    /// Writes all of `data`, waiting whenever the send buffer is full
    /// (asyncio's `sock_sendall`). Dropped part-way, some prefix of `data`
    /// has been sent.
    fn sock_sendall(&self, sock: &std::net::TcpStream, data: &[u8]) -> impl Future<Output = io::Result<()>>;

    /// Accepts a connection, waiting for one; the stream is non-blocking
    /// (asyncio's `sock_accept`).
    fn sock_accept(
        &self,
        listener: &std::net::TcpListener,
    ) -> impl Future<Output = io::Result<(std::net::TcpStream, SocketAddr)>>;

    /// Connects a new non-blocking TCP socket to the first address of
    /// `addr` that accepts (asyncio's `sock_connect`, which takes the socket
    /// to connect; here the helper makes it, so a dropped future closes it).
    fn sock_connect(&self, addr: impl ToSocketAddrs)
    -> impl Future<Output = io::Result<std::net::TcpStream>>;
}

impl SockExt for EventLoop {
    async fn sock_recv(&self, sock: &std::net::TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        sock.set_nonblocking(true)?;
        until_ready(self, raw_source(sock), Interest::Read, || (&*sock).read(buf)).await
    }

    async fn sock_sendall(&self, sock: &std::net::TcpStream, mut data: &[u8]) -> io::Result<()> {
        sock.set_nonblocking(true)?;
        while !data.is_empty() {
            let sent = until_ready(self, raw_source(sock), Interest::Write, || {
                sys::send(SockRef::from(sock), data)
            })
            .await?;
            data = &data[sent..];
        }
        Ok(())
    }

    async fn sock_accept(
        &self,
        listener: &std::net::TcpListener,
    ) -> io::Result<(std::net::TcpStream, SocketAddr)> {
        listener.set_nonblocking(true)?;
        let (stream, addr) =
            until_ready(self, raw_source(listener), Interest::Read, || listener.accept()).await?;
        stream.set_nonblocking(true)?;
        Ok((stream, addr))
    }

    async fn sock_connect(&self, addr: impl ToSocketAddrs) -> io::Result<std::net::TcpStream> {
        each_address(addr, |addr| async move {
            let socket =
                crate::sys::nonblocking_socket(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            match socket.connect(&addr.into()) {
                Ok(()) => return Ok(socket.into()),
                Err(err) if sys::connect_in_progress(&err) => {}
                Err(err) => return Err(err),
            }
            let stream = std::net::TcpStream::from(socket);
            // As asyncio's `sock_connect`: the outcome is read once the
            // socket turns writable, not before.
            let mut watch = watch::FdWatch::new(self, raw_source(&stream), Interest::Write)?;
            watch.ready().await;
            until_ready_with(self, raw_source(&stream), Interest::Write, Some(watch), || {
                sys::connect_result(SockRef::from(&stream))
            })
            .await?;
            Ok(stream)
        })
        .await
    }
}

#[cfg(unix)]
fn raw_source(sock: &impl std::os::fd::AsRawFd) -> aio_events::RawSource {
    sock.as_raw_fd()
}

#[cfg(windows)]
fn raw_source(sock: &impl std::os::windows::io::AsRawSocket) -> aio_events::RawSource {
    sock.as_raw_socket()
}

/// Runs `operation` until it does not block, watching `source` in between
/// with a reader or writer callback of the loop (level-triggered, as
/// asyncio's), removed when this returns or is dropped.
async fn until_ready<T>(
    event_loop: &EventLoop,
    source: aio_events::RawSource,
    interest: Interest,
    operation: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    until_ready_with(event_loop, source, interest, None, operation).await
}

/// [`until_ready`] with the watch already made (by a caller that waited
/// once before its first try).
async fn until_ready_with<T>(
    event_loop: &EventLoop,
    source: aio_events::RawSource,
    interest: Interest,
    mut watch: Option<watch::FdWatch>,
    mut operation: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    loop {
        match operation() {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
        let watch = match &mut watch {
            Some(watch) => watch,
            None => watch.insert(watch::FdWatch::new(event_loop, source, interest)?),
        };
        watch.ready().await;
    }
}

mod watch {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    use std::io;
    use std::rc::Rc;
    use std::task::{Poll, Waker};

    use aio_events::{EventLoop, Interest, RawSource};

    #[derive(Default)]
    struct Readiness {
        fired: Cell<bool>,
        waker: RefCell<Option<Waker>>,
    }

    /// Which watch owns the callback of a (loop, fd, direction).
    type Slot = (usize, RawSource, bool);

    thread_local! {
        /// The watch whose callback is installed, per slot. A second helper
        /// on the same fd and direction replaces the first one's callback
        /// (as asyncio's `add_reader` does); the first, dropped later, must
        /// then not remove the second's. asyncio checks the same thing with
        /// `handle.cancelled()` in `_sock_read_done`. Loops are `!Send`, so
        /// a thread's table covers every loop a watch can belong to.
        static OWNERS: RefCell<HashMap<Slot, u64>> = RefCell::new(HashMap::new());
        static NEXT_ID: Cell<u64> = const { Cell::new(0) };
    }

    /// A reader or writer callback of the loop that wakes one waiting task:
    /// asyncio's `add_reader(fd, callback)` of `sock_recv`, removed on drop
    /// (asyncio's `remove_reader` in the future's done callback).
    ///
    /// It holds a handle of the loop rather than a borrow: its destructor
    /// then reads nothing that lives elsewhere in the future it is part of.
    pub(super) struct FdWatch {
        event_loop: EventLoop,
        fd: RawSource,
        interest: Interest,
        id: u64,
        readiness: Rc<Readiness>,
    }

    impl FdWatch {
        pub(super) fn new(event_loop: &EventLoop, fd: RawSource, interest: Interest) -> io::Result<FdWatch> {
            let readiness = Rc::new(Readiness::default());
            let on_ready = {
                let readiness = readiness.clone();
                move || {
                    readiness.fired.set(true);
                    if let Some(waker) = readiness.waker.borrow_mut().take() {
                        waker.wake();
                    }
                }
            };
            match interest {
                Interest::Read => event_loop.add_reader(fd, on_ready),
                Interest::Write => event_loop.add_writer(fd, on_ready),
            }
            .map_err(aio_events::into_io)?;
            let id = NEXT_ID.with(|next| next.replace(next.get() + 1));
            let watch = FdWatch {
                event_loop: event_loop.clone(),
                fd,
                interest,
                id,
                readiness,
            };
            OWNERS.with(|owners| owners.borrow_mut().insert(watch.slot(), id));
            Ok(watch)
        }

        fn slot(&self) -> Slot {
            let loop_id = std::ptr::from_ref(self.event_loop.inner()).cast::<()>() as usize;
            (loop_id, self.fd, self.interest == Interest::Read)
        }

        /// Waits for the next call of the callback since the last wait.
        pub(super) async fn ready(&mut self) {
            std::future::poll_fn(|cx| {
                if self.readiness.fired.replace(false) {
                    return Poll::Ready(());
                }
                *self.readiness.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
        }
    }

    impl Drop for FdWatch {
        fn drop(&mut self) {
            let slot = self.slot();
            // At thread exit the table may be gone before a loop kept in a
            // thread-local drops its tasks: then nobody can have replaced
            // the callback since, so it is ours.
            let still_ours = OWNERS
                .try_with(|owners| {
                    let mut owners = owners.borrow_mut();
                    let ours = owners.get(&slot) == Some(&self.id);
                    if ours {
                        owners.remove(&slot);
                    }
                    ours
                })
                .unwrap_or(true);
            if !still_ours {
                return;
            }
            match self.interest {
                Interest::Read => self.event_loop.remove_reader(self.fd),
                Interest::Write => self.event_loop.remove_writer(self.fd),
            };
        }
    }
}
