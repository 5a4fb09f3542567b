//! TCP on the loop (`aio::net::TcpListener`, `TcpStream`, and the loop-level
//! `SockExt` helpers) over real loopback sockets.
//!
//! Ported cases name their CPython 3.13 test in a comment: the socket cases
//! of `test_events.py` (`EventLoopTestsMixin`) and of `test_sock_lowlevel.py`
//! (`BaseSockTestsMixin`), re-expressed with Rust streams; asyncio's
//! protocols and transports become `AsyncRead`/`AsyncWrite`. The others are
//! the issue's own cases: big echoes, a thousand connections, resets,
//! half-closes, writes to a closed peer, cancellation mid-read and
//! mid-connect.
//!
//! Every test runs through `net_common::run`: one at a time, on its own
//! loop under a watchdog, and with the open-fd count back to its start.

#[path = "net_common.rs"]
mod net_common;

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use aio::net::{SockExt, TcpListener, TcpStream};
use futures_lite::future::try_zip;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use net_common::{
    WATCHDOG, fail, join, open_fds, pattern, raise_fd_limit, run, serial, under_wine, with_sigpipe_default,
};

/// A listener on 127.0.0.1 and a task that echoes every connection until
/// its end of stream, then shuts its write half. `open` counts the
/// connections the server holds.
async fn echo_server() -> io::Result<(SocketAddr, aio::Task<()>, Rc<Cell<usize>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let open = Rc::new(Cell::new(0));
    let counter = open.clone();
    let server = aio::create_task(async move {
        while let Ok((stream, _peer)) = listener.accept().await {
            counter.set(counter.get() + 1);
            let counter = counter.clone();
            aio::create_task(async move {
                let _ = futures_lite::io::copy(&stream, &mut &stream).await;
                let _ = (&stream).close().await;
                counter.set(counter.get() - 1);
            });
        }
    });
    Ok((addr, server, open))
}

/// Sends `len` bytes through the echo server while reading the echo, and
/// checks every byte arrives, in order.
async fn echo_bytes(len: usize) -> io::Result<()> {
    let (addr, server, _open) = echo_server().await?;
    let stream = TcpStream::connect(addr).await?;
    let data = pattern(len);
    let send = async {
        let mut writer = &stream;
        writer.write_all(&data).await?;
        writer.close().await
    };
    let receive = async {
        let mut reader = &stream;
        let mut buf = vec![0; 256 * 1024];
        let mut received = 0;
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                return Ok(received);
            }
            if buf[..n] != data[received..received + n] {
                return Err(fail(format!(
                    "the echo differs in bytes {received}..{}",
                    received + n
                )));
            }
            received += n;
        }
    };
    let ((), received) = try_zip(send, receive).await?;
    assert_eq!(received, len, "echoed bytes");
    server.cancel();
    Ok(())
}

// test_sock_lowlevel.py: BaseSockTestsMixin.test_huge_content (a megabyte
// through a server, checked in order), with streams instead of sock_*.
#[test]
fn echo_1_mib() {
    run(WATCHDOG, || echo_bytes(1 << 20));
}

#[test]
fn echo_64_mib() {
    run(WATCHDOG, || echo_bytes(64 << 20));
}

#[test]
fn thousand_concurrent_connections() {
    const CLIENTS: usize = 1_000;
    // Each connection costs two descriptors here (client and server side).
    let limit = raise_fd_limit(2 * CLIENTS as u64 + 100);
    assert!(
        limit >= 2 * CLIENTS as u64 + 100,
        "RLIMIT_NOFILE's hard limit {limit} is too low for {CLIENTS} loopback connections"
    );
    run(WATCHDOG, || async {
        let (addr, server, open) = echo_server().await?;
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                aio::create_task(async move {
                    let mut stream = TcpStream::connect(addr).await?;
                    let message = format!("client {i:04} says hello");
                    stream.write_all(message.as_bytes()).await?;
                    let mut echo = vec![0; message.len()];
                    stream.read_exact(&mut echo).await?;
                    if echo != message.as_bytes() {
                        return Err(fail(format!(
                            "client {i} got {:?}",
                            String::from_utf8_lossy(&echo)
                        )));
                    }
                    // Kept open: all connections must be alive at once.
                    Ok(stream)
                })
            })
            .collect();
        let mut streams = Vec::with_capacity(CLIENTS);
        for client in clients {
            streams.push(join(client).await?);
        }
        assert_eq!(open.get(), CLIENTS, "connections the server holds at once");
        drop(streams);
        while open.get() > 0 {
            aio::sleep(Duration::from_millis(1)).await;
        }
        server.cancel();
        Ok(())
    });
}

#[test]
fn peer_reset_is_connection_reset() {
    run(WATCHDOG, || async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (server_side, _) = listener.accept().await?;
        // SO_LINGER 0: closing sends RST instead of FIN.
        server_side.set_linger(Some(Duration::ZERO))?;
        assert_eq!(server_side.linger()?, Some(Duration::ZERO));
        drop(server_side);
        let mut buf = [0; 16];
        match (&client).read(&mut buf).await {
            // Wine 8 reports the reset to recv as an end of stream (a
            // blocking std socket sees the same there); Windows and Unix
            // report ECONNRESET/WSAECONNRESET.
            Ok(0) if under_wine() => {}
            read => {
                let err = read.expect_err("a read after the peer's reset fails");
                assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
            }
        }
        // Writing after the reset is an error as well, not a panic.
        let err = (&client)
            .write_all(b"anyone there?")
            .await
            .expect_err("a write after the peer's reset fails");
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{err}"
        );
        // Closing a reset stream is not an error: the connection is gone.
        (&client).close().await?;
        Ok(())
    });
}

#[test]
fn half_close_peer_reads_eof_and_can_still_write() {
    run(WATCHDOG, || async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        let (mut server_side, _) = listener.accept().await?;
        client.write_all(b"ping").await?;
        // poll_close is a write shutdown (asyncio's write_eof).
        client.close().await?;
        let mut request = Vec::new();
        server_side.read_to_end(&mut request).await?;
        assert_eq!(request, b"ping");
        // The half-closed client still reads what the server writes back.
        server_side.write_all(b"pong").await?;
        drop(server_side);
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await?;
        assert_eq!(reply, b"pong");
        // End of stream stays end of stream.
        assert_eq!(client.read(&mut [0; 8]).await?, 0);
        Ok(())
    });
}

#[test]
fn write_to_closed_peer_is_an_error_not_sigpipe() {
    with_sigpipe_default(|| {
        run(WATCHDOG, || async {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let client = TcpStream::connect(listener.local_addr()?).await?;
            let (server_side, _) = listener.accept().await?;
            drop(server_side);
            // The first writes may still be accepted by the kernel; the
            // peer answers them with a reset, after which writes fail.
            let chunk = [b'x'; 1024];
            for _ in 0..200 {
                match (&client).write_all(&chunk).await {
                    Ok(()) => aio::sleep(Duration::from_millis(5)).await,
                    Err(err) => {
                        assert!(
                            matches!(
                                err.kind(),
                                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                            ),
                            "{err}"
                        );
                        return Ok(());
                    }
                }
            }
            Err(fail("writes to a closed peer kept succeeding"))
        });
    });
}

#[test]
fn cancelled_read_closes_the_socket() {
    run(WATCHDOG, || async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (mut server_side, _) = listener.accept().await?;
        let before = open_fds();
        let reader = aio::create_task(async move {
            let mut buf = [0; 16];
            (&client).read(&mut buf).await
        });
        aio::sleep(Duration::from_millis(50)).await;
        assert!(!reader.done(), "nothing was sent, so the read waits");
        assert!(reader.cancel());
        let err = reader.await.expect_err("a cancelled task");
        assert!(err.is_cancelled(), "{err}");
        assert_eq!(open_fds(), before - 1, "the stream the task owned is closed");
        // The peer sees the close.
        assert_eq!(server_side.read(&mut [0; 16]).await?, 0);
        Ok(())
    });
}

#[test]
fn cancelled_connect_closes_the_socket() {
    run(WATCHDOG, || async {
        // A listener with a backlog of 0 that never accepts: Linux completes
        // one handshake into the backlog and drops the other SYNs, so
        // those connects stay under way.
        let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        full.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        full.listen(0)?;
        let addr = full
            .local_addr()?
            .as_socket()
            .ok_or_else(|| fail("an IPv4 address"))?;
        // The loop makes its poller (an epoll and an eventfd) with its first
        // registered fd: a listener of its own makes it before the count.
        let _poller_made = TcpListener::bind("127.0.0.1:0").await?;
        let before = open_fds();
        let connects: Vec<_> = (0..4)
            .map(|_| aio::create_task(TcpStream::connect(addr)))
            .collect();
        aio::sleep(Duration::from_millis(300)).await;
        let pending = connects.iter().filter(|task| !task.done()).count();
        assert!(
            pending >= 1,
            "some connect should still wait for the full backlog"
        );
        for task in &connects {
            task.cancel();
        }
        let mut cancelled = 0;
        for task in connects {
            match task.await {
                Err(err) if err.is_cancelled() => cancelled += 1,
                Err(err) => return Err(io::Error::other(err)),
                Ok(stream) => drop(stream?),
            }
        }
        assert_eq!(cancelled, pending);
        assert_eq!(open_fds(), before, "every socket of the connects is closed");
        Ok(())
    });
}

// test_sock_lowlevel.py: BaseSockTestsMixin.test_sock_client_fail (a
// connect to a port nobody listens on is refused).
#[test]
fn connect_refused() {
    run(WATCHDOG, || async {
        let addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?
        };
        let err = TcpStream::connect(addr).await.expect_err("nobody listens there");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        Ok(())
    });
}

// test_events.py: EventLoopTestsMixin.test_create_server (a client connects
// and sends; the server sees the bytes and both addresses).
#[test]
fn server_accepts_and_reads() {
    run(WATCHDOG, || async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
        assert_ne!(addr.port(), 0, "port 0 picks a free port");
        // A blocking std client: connect completes in the kernel's backlog.
        let mut client = std::net::TcpStream::connect(addr)?;
        client.write_all(b"xxx")?;
        let (mut stream, peer) = listener.accept().await?;
        assert_eq!(peer, client.local_addr()?);
        assert_eq!(stream.peer_addr()?, client.local_addr()?);
        assert_eq!(stream.local_addr()?, addr);
        let mut buf = [0; 3];
        stream.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"xxx");
        // Closing the server side: the client reads end of stream.
        drop(stream);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest)?;
        assert!(rest.is_empty());
        Ok(())
    });
}

// test_events.py: EventLoopTestsMixin.test_create_server_addr_in_use.
#[test]
fn bind_address_in_use() {
    run(WATCHDOG, || async {
        let first = TcpListener::bind("127.0.0.1:0").await?;
        let err = TcpListener::bind(first.local_addr()?)
            .await
            .expect_err("the port is taken by a listener");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        Ok(())
    });
}

// test_events.py: EventLoopTestsMixin.test_server_close (after the listener
// is closed, connects are refused).
#[test]
fn closed_listener_refuses_connections() {
    run(WATCHDOG, || async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let client = TcpStream::connect(addr).await?;
        (&client).write_all(b"xxx").await?;
        drop(client);
        drop(listener);
        let err = TcpStream::connect(addr)
            .await
            .expect_err("the listener is closed");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        Ok(())
    });
}

// SO_REUSEADDR on Unix listeners (asyncio's create_server sets it): a port
// with a connection in TIME_WAIT can be bound again at once.
#[test]
fn listener_rebinds_a_port_in_time_wait() {
    run(WATCHDOG, || async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let client = TcpStream::connect(addr).await?;
        let (server_side, _) = listener.accept().await?;
        // The server side closes first, so its end enters TIME_WAIT.
        drop(server_side);
        assert_eq!((&client).read(&mut [0; 1]).await?, 0);
        drop(client);
        drop(listener);
        let again = TcpListener::bind(addr).await?;
        assert_eq!(again.local_addr()?, addr);
        Ok(())
    });
}

#[test]
fn nodelay_on_by_default_and_settable() {
    run(WATCHDOG, || async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (server_side, _) = listener.accept().await?;
        assert!(client.nodelay()?, "connected streams start with TCP_NODELAY");
        assert!(server_side.nodelay()?, "accepted streams start with TCP_NODELAY");
        client.set_nodelay(false)?;
        assert!(!client.nodelay()?);
        Ok(())
    });
}

/// The inode of the socket `fd` names (`/proc/self/fd/N` links to
/// `socket:[inode]`).
#[cfg(target_os = "linux")]
fn socket_inode(fd: std::os::fd::RawFd) -> io::Result<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))?;
    let link = link.to_string_lossy();
    link.strip_prefix("socket:[")
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|number| number.parse().ok())
        .ok_or_else(|| fail(format!("fd {fd} is not a socket: {link}")))
}

/// Whether any epoll instance of this process watches the socket with
/// `inode`.
#[cfg(target_os = "linux")]
fn watched_by_an_epoll(inode: u64) -> io::Result<bool> {
    Ok(epoll_events_of(inode)?.is_some())
}

/// The events an epoll instance of this process watches the socket with
/// `inode` for, if any, read from `/proc/self/fdinfo` (each watched file is
/// a `tfd:` line with its event mask and its inode in hex).
#[cfg(target_os = "linux")]
fn epoll_events_of(inode: u64) -> io::Result<Option<u32>> {
    let wanted = format!(" ino:{inode:x} ");
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let is_epoll = std::fs::read_link(entry.path())
            .map(|target| target.to_string_lossy() == "anon_inode:[eventpoll]")
            .unwrap_or(false);
        if !is_epoll {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            entry.file_name().to_string_lossy()
        ))?;
        let line = info
            .lines()
            .find(|line| line.starts_with("tfd:") && line.contains(&wanted));
        if let Some(line) = line {
            let events = line
                .split_whitespace()
                .skip_while(|word| *word != "events:")
                .nth(1)
                .and_then(|mask| u32::from_str_radix(mask, 16).ok())
                .ok_or_else(|| fail(format!("no event mask in {line:?}")))?;
            return Ok(Some(events));
        }
    }
    Ok(None)
}

/// A socket joins the loop's epoll only when a task first has to wait on it
/// (an accepted connection closed at once costs no `epoll_ctl`), still hears
/// of data that arrives after that first wait, and leaves the epoll when
/// dropped.
#[cfg(target_os = "linux")]
#[test]
fn a_socket_joins_the_poller_at_its_first_wait() {
    use std::os::fd::AsRawFd;
    run(WATCHDOG, || async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (server_side, _) = listener.accept().await?;
        let inode = socket_inode(server_side.as_raw_fd())?;
        assert!(
            !watched_by_an_epoll(inode)?,
            "an accepted socket nobody waited on is not in the epoll"
        );
        let reader = aio::create_task(async move {
            let mut buf = [0; 5];
            (&server_side).read_exact(&mut buf).await?;
            Ok::<_, io::Error>((server_side, buf))
        });
        // Let the reader find nothing to read and wait.
        for _ in 0..3 {
            aio::sleep(Duration::ZERO).await;
        }
        assert!(
            watched_by_an_epoll(inode)?,
            "a socket a task waits on is in the epoll"
        );
        (&client).write_all(b"hello").await?;
        let (server_side, buf) = join(reader).await?;
        assert_eq!(&buf, b"hello");
        drop(server_side);
        assert!(
            !watched_by_an_epoll(inode)?,
            "a dropped socket has left the epoll"
        );
        Ok(())
    });
}

/// A socket that waits to read is watched for reading only (its writes
/// never blocked, so the epoll need not report its send buffer draining);
/// the first write that blocks adds writing, and the writer hears of room.
#[cfg(target_os = "linux")]
#[test]
fn a_socket_is_watched_for_writing_once_a_write_blocks() {
    use std::os::fd::AsRawFd;
    const EPOLLIN: u32 = 0x1;
    const EPOLLOUT: u32 = 0x4;
    const BULK: usize = 8 << 20;
    run(WATCHDOG, || async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (server_side, _) = listener.accept().await?;
        let server_side = Rc::new(server_side);
        let inode = socket_inode(server_side.as_raw_fd())?;
        let reader = aio::create_task({
            let server_side = server_side.clone();
            async move {
                let mut byte = [0; 1];
                (&*server_side).read_exact(&mut byte).await?;
                Ok::<_, io::Error>(byte)
            }
        });
        aio::sleep(Duration::ZERO).await;
        let events =
            epoll_events_of(inode)?.ok_or_else(|| fail("the reader's socket is not in the epoll"))?;
        assert_eq!(
            events & (EPOLLIN | EPOLLOUT),
            EPOLLIN,
            "waiting to read watches reading only: {events:#x}"
        );
        // More than the socket buffers hold, with nobody reading: the
        // write blocks and waits for room.
        let writer = aio::create_task({
            let server_side = server_side.clone();
            async move { (&*server_side).write_all(&pattern(BULK)).await }
        });
        for _ in 0..3 {
            aio::sleep(Duration::ZERO).await;
        }
        assert!(!writer.done(), "8 MiB fit in the socket buffers");
        let events = epoll_events_of(inode)?.ok_or_else(|| fail("the socket left the epoll"))?;
        assert_eq!(
            events & (EPOLLIN | EPOLLOUT),
            EPOLLIN | EPOLLOUT,
            "a blocked write watches writing too: {events:#x}"
        );
        let mut received = vec![0; BULK];
        (&client).read_exact(&mut received).await?;
        join(writer).await?;
        assert!(received == pattern(BULK), "the bulk arrived changed");
        (&client).write_all(b"x").await?;
        assert_eq!(&join(reader).await?, b"x");
        Ok(())
    });
}

/// A connection on `listener` whose server side has waited on the loop once
/// (so it is in the epoll) and then been dropped while a duplicate of its
/// descriptor keeps the open file alive: the client, the duplicate, and the
/// number the dropped socket had.
#[cfg(target_os = "linux")]
async fn closed_after_a_wait_with_a_duplicate(
    listener: &TcpListener,
) -> io::Result<(TcpStream, std::os::fd::OwnedFd, std::os::fd::RawFd)> {
    use std::os::fd::{AsFd, AsRawFd};
    let client = TcpStream::connect(listener.local_addr()?).await?;
    let (server_side, _) = listener.accept().await?;
    let waiting = aio::create_task(async move {
        let mut byte = [0; 1];
        (&server_side).read_exact(&mut byte).await?;
        Ok::<_, io::Error>(server_side)
    });
    aio::sleep(Duration::ZERO).await;
    (&client).write_all(b"x").await?;
    let server_side = join(waiting).await?;
    let number = server_side.as_raw_fd();
    let duplicate = server_side.as_fd().try_clone_to_owned()?;
    drop(server_side);
    Ok((client, duplicate, number))
}

/// A dropped socket whose open file lives on (here through a duplicated
/// descriptor) may stay in the epoll under its old key after the close: the
/// next socket registered takes that key, hears readiness that is not its
/// own, and still reads exactly its own bytes, waiting when it has none.
#[cfg(target_os = "linux")]
#[test]
fn a_closed_socket_whose_file_lives_on_does_not_confuse_the_next() {
    use std::os::fd::AsRawFd;
    run(WATCHDOG, || async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (old_client, duplicate, _) = closed_after_a_wait_with_a_duplicate(&listener).await?;
        let inode = socket_inode(duplicate.as_raw_fd())?;
        assert!(
            watched_by_an_epoll(inode)?,
            "the open file lives on through the duplicate, and so does its registration"
        );

        // The next socket registered, the new client, takes the freed key.
        let new_client = TcpStream::connect(addr).await?;
        let (new_server, _) = listener.accept().await?;
        let reader = aio::create_task(async move {
            let mut buf = [0; 3];
            (&new_client).read_exact(&mut buf).await?;
            Ok::<_, io::Error>(buf)
        });
        // Readiness of the old file, reported under the old key, while the
        // new reader has nothing to read.
        for _ in 0..3 {
            (&old_client).write_all(b"noise").await?;
            aio::sleep(Duration::from_millis(5)).await;
        }
        assert!(!reader.done(), "the reader waits: nothing was sent to it yet");
        (&new_server).write_all(b"new").await?;
        assert_eq!(&join(reader).await?, b"new");
        drop(duplicate);
        assert!(
            !watched_by_an_epoll(inode)?,
            "closing the last descriptor ends the registration"
        );
        Ok(())
    });
}

/// The registration a closed socket leaves behind (its open file living on
/// in a duplicate) does not stand in the way when that file comes back
/// under its old descriptor number (`dup2`) and is adopted again: the first
/// wait takes the old registration over instead of failing with `EEXIST`.
#[cfg(target_os = "linux")]
#[test]
fn a_file_back_under_its_old_number_registers_again() {
    use std::os::fd::{AsRawFd, FromRawFd};
    run(WATCHDOG, || async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let (client, duplicate, number) = closed_after_a_wait_with_a_duplicate(&listener).await?;
        // SAFETY: `number` is free (its socket was just closed); `dup2`
        // makes it name the duplicate's file again.
        if unsafe { libc::dup2(duplicate.as_raw_fd(), number) } != number {
            return Err(io::Error::last_os_error());
        }
        drop(duplicate);
        // SAFETY: `dup2` gave us `number`; it is owned once, here.
        let again = TcpStream::try_from(unsafe { std::net::TcpStream::from_raw_fd(number) })?;
        let reader = aio::create_task(async move {
            let mut buf = [0; 5];
            (&again).read_exact(&mut buf).await?;
            Ok::<_, io::Error>((again, buf))
        });
        aio::sleep(Duration::from_millis(5)).await;
        (&client).write_all(b"again").await?;
        let (again, buf) = join(reader).await?;
        assert_eq!(&buf, b"again");
        drop(again);
        Ok(())
    });
}

#[test]
fn conversions_from_and_to_std() {
    run(WATCHDOG, || async {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = std_listener.local_addr()?;
        let listener = TcpListener::try_from(std_listener)?;
        let std_client = std::net::TcpStream::connect(addr)?;
        let client = TcpStream::try_from(std_client)?;
        assert!(client.nodelay()?, "adopted streams get TCP_NODELAY as well");
        let (server_side, _) = listener.accept().await?;
        assert!(
            server_side.nodelay()?,
            "connections an adopted listener accepts get TCP_NODELAY"
        );
        (&client).write_all(b"through aio").await?;
        // Back to std: blocking again, and still connected.
        let mut std_server = server_side.into_std()?;
        let mut buf = [0; 11];
        std_server.read_exact(&mut buf)?;
        assert_eq!(&buf, b"through aio");
        std_server.write_all(b"and back")?;
        std_server.shutdown(Shutdown::Write)?;
        let mut reply = Vec::new();
        (&client).read_to_end(&mut reply).await?;
        assert_eq!(reply, b"and back");
        let std_listener = listener.into_std()?;
        assert_eq!(std_listener.local_addr()?, addr);
        Ok(())
    });
}

#[test]
fn sockets_need_a_running_loop() {
    let _turn = serial();
    let std_stream = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect")
    };
    let err = TcpStream::try_from(std_stream).expect_err("no loop runs here");
    assert_eq!(err.to_string(), "no running event loop");
    let err =
        futures_lite::future::block_on(TcpListener::bind("127.0.0.1:0")).expect_err("no loop runs here");
    assert_eq!(err.to_string(), "no running event loop");
    let err =
        futures_lite::future::block_on(TcpStream::connect("127.0.0.1:9")).expect_err("no loop runs here");
    assert_eq!(err.to_string(), "no running event loop");
}

// test_sock_lowlevel.py: BaseSockTestsMixin.test_cancel_sock_accept, with
// the listener's own accept: an accept given up after 0.1 s, then the
// listener closed: connects are refused.
#[test]
fn cancelled_accept_then_closed_listener() {
    run(WATCHDOG, || async {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").await?);
        let addr = listener.local_addr()?;
        let accepting = listener.clone();
        let accept = aio::create_task(async move { accepting.accept().await.map(|_| ()) });
        aio::sleep(Duration::from_millis(100)).await;
        assert!(!accept.done());
        accept.cancel();
        assert!(accept.await.expect_err("cancelled").is_cancelled());
        drop(listener);
        let err = TcpStream::connect(addr).await.expect_err("closed listener");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        Ok(())
    });
}

// test_sock_lowlevel.py: BaseSockTestsMixin.test_sock_client_ops
// (sock_connect, sock_sendall, sock_recv against a server).
#[test]
fn sock_client_ops() {
    run(WATCHDOG, || async {
        let event_loop = aio::get_running_loop().map_err(io::Error::other)?;
        let (addr, server, _open) = echo_server().await?;
        let sock = event_loop.sock_connect(addr).await?;
        event_loop.sock_sendall(&sock, b"GET / HTTP/1.0\r\n\r\n").await?;
        let mut buf = [0; 1024];
        let mut got = 0;
        while got < 18 {
            let n = event_loop.sock_recv(&sock, &mut buf[got..]).await?;
            assert!(n > 0, "the echo ended early");
            got += n;
        }
        assert_eq!(&buf[..got], b"GET / HTTP/1.0\r\n\r\n");
        sock.shutdown(Shutdown::Write)?;
        assert_eq!(event_loop.sock_recv(&sock, &mut buf).await?, 0);
        server.cancel();
        Ok(())
    });
}

// test_sock_lowlevel.py: BaseSockTestsMixin.test_sock_accept (the accepted
// socket is non-blocking; addresses match both ways).
#[test]
fn sock_accept() {
    run(WATCHDOG, || async {
        let event_loop = aio::get_running_loop().map_err(io::Error::other)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let client = std::net::TcpStream::connect(listener.local_addr()?)?;
        let (mut conn, addr) = event_loop.sock_accept(&listener).await?;
        let err = conn
            .read(&mut [0; 1])
            .expect_err("nothing to read, and the socket must not block");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(addr, client.local_addr()?);
        assert_eq!(client.peer_addr()?, listener.local_addr()?);
        Ok(())
    });
}

// test_sock_lowlevel.py: BaseSockTestsMixin.test_huge_content (a megabyte
// sent with sock_sendall in a task while sock_recv reads the echo).
#[test]
fn sock_huge_content() {
    run(WATCHDOG, || async {
        const SIZE: usize = 1_000_000;
        let event_loop = aio::get_running_loop().map_err(io::Error::other)?;
        let (addr, server, _open) = echo_server().await?;
        let sock = Rc::new(event_loop.sock_connect(addr).await?);
        let data = Rc::new(pattern(SIZE));
        let sender = {
            let (event_loop, sock, data) = (event_loop.clone(), sock.clone(), data.clone());
            aio::create_task(async move {
                event_loop.sock_sendall(&sock, &data).await?;
                sock.shutdown(Shutdown::Write)
            })
        };
        let mut buf = vec![0; SIZE];
        let mut received = 0;
        loop {
            let n = event_loop.sock_recv(&sock, &mut buf).await?;
            if n == 0 {
                break;
            }
            assert_eq!(buf[..n], data[received..received + n]);
            received += n;
        }
        assert_eq!(received, SIZE);
        join(sender).await?;
        server.cancel();
        Ok(())
    });
}

// test_sock_lowlevel.py: BaseSockTestsMixin.test_sock_client_racing
// (_basetest_sock_recv_racing: a sock_recv cancelled while it waits leaves
// nothing behind, and the next one gets the data).
#[test]
fn sock_recv_cancelled_then_recv_again() {
    run(WATCHDOG, || async {
        let event_loop = aio::get_running_loop().map_err(io::Error::other)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let sock = Rc::new(event_loop.sock_connect(listener.local_addr()?).await?);
        let (peer, _) = event_loop.sock_accept(&listener).await?;
        let waiting = {
            let (event_loop, sock) = (event_loop.clone(), sock.clone());
            aio::create_task(async move {
                let mut buf = [0; 1024];
                event_loop.sock_recv(&sock, &mut buf).await
            })
        };
        aio::sleep(Duration::ZERO).await;
        waiting.cancel();
        let sender = {
            let event_loop = event_loop.clone();
            aio::create_task(async move { event_loop.sock_sendall(&peer, b"GET / HTTP/1.0\r\n\r\n").await })
        };
        let mut buf = [0; 1024];
        let n = event_loop.sock_recv(&sock, &mut buf).await?;
        assert!(buf[..n].starts_with(b"GET"), "{:?}", &buf[..n]);
        join(sender).await?;
        assert!(waiting.await.expect_err("cancelled").is_cancelled());
        Ok(())
    });
}

// test_sock_lowlevel.py: BaseSockTestsMixin.test_sock_client_racing
// (_basetest_sock_send_racing: a sock_sendall cancelled while the send
// buffer is full, then another sock_sendall: the peer gets the second).
#[test]
fn sock_sendall_cancelled_then_sendall_again() {
    run(WATCHDOG, || async {
        let event_loop = aio::get_running_loop().map_err(io::Error::other)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let sock = Rc::new(event_loop.sock_connect(listener.local_addr()?).await?);
        socket2::SockRef::from(&*sock).set_send_buffer_size(1024)?;
        let (server, _) = event_loop.sock_accept(&listener).await?;
        // Fill the send buffer until even 4 bytes would block.
        let mut size = 8192;
        while size >= 4 {
            loop {
                match (&*sock).write(&vec![b' '; size]) {
                    Ok(_) => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) => return Err(err),
                }
            }
            size /= 2;
        }
        let blocked = {
            let (event_loop, sock) = (event_loop.clone(), sock.clone());
            aio::create_task(async move { event_loop.sock_sendall(&sock, b"hello").await })
        };
        aio::sleep(Duration::ZERO).await;
        blocked.cancel();
        let receiver = {
            let event_loop = event_loop.clone();
            aio::create_task(async move {
                let mut all = Vec::new();
                let mut buf = vec![0; 8192];
                loop {
                    let n = event_loop.sock_recv(&server, &mut buf).await?;
                    if n == 0 {
                        return io::Result::Ok(all);
                    }
                    all.extend(buf[..n].iter().filter(|&&b| b != b' '));
                }
            })
        };
        event_loop.sock_sendall(&sock, b"world").await?;
        sock.shutdown(Shutdown::Write)?;
        let data = join(receiver).await?;
        assert!(data.ends_with(b"world"), "{:?}", String::from_utf8_lossy(&data));
        let _ = blocked.await;
        Ok(())
    });
}

// test_sock_lowlevel.py: BaseSockTestsMixin.test_sock_client_connect_racing
// (a sock_connect cancelled right after it started; a later one succeeds)
// and test_sock_client_fail (a refused sock_connect).
#[test]
fn sock_connect_cancelled_then_refused_then_ok() {
    run(WATCHDOG, || async {
        let event_loop = aio::get_running_loop().map_err(io::Error::other)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let racing = {
            let event_loop = event_loop.clone();
            aio::create_task(async move { event_loop.sock_connect(addr).await.map(drop) })
        };
        aio::sleep(Duration::ZERO).await;
        racing.cancel();
        let _ = racing.await;
        let conn = event_loop.sock_connect(addr).await?;
        assert_eq!(conn.peer_addr()?, addr);
        drop(conn);
        drop(listener);
        let err = event_loop.sock_connect(addr).await.expect_err("closed listener");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        Ok(())
    });
}

// Streams are split by reference: one task reads while another writes, and
// the reader is woken by data that arrives while the writer waits.
#[test]
fn reader_and_writer_tasks_share_a_stream() {
    run(WATCHDOG, || async {
        let (addr, server, _open) = echo_server().await?;
        let stream = Rc::new(TcpStream::connect(addr).await?);
        let started = Instant::now();
        let reader = {
            let stream = stream.clone();
            aio::create_task(async move {
                let mut all = Vec::new();
                (&*stream).read_to_end(&mut all).await?;
                io::Result::Ok(all)
            })
        };
        let writer = {
            let stream = stream.clone();
            aio::create_task(async move {
                for i in 0..100u8 {
                    (&*stream).write_all(&[i; 100]).await?;
                    aio::sleep(Duration::from_micros(100)).await;
                }
                (&*stream).close().await
            })
        };
        join(writer).await?;
        let all = join(reader).await?;
        assert_eq!(all.len(), 10_000);
        assert!(
            all.chunks(100)
                .enumerate()
                .all(|(i, c)| c.iter().all(|&b| b as usize == i))
        );
        assert!(started.elapsed() < WATCHDOG);
        server.cancel();
        Ok(())
    });
}

// A writer waits for room while a reader waits for data, on one stream; the
// reader gets its byte and ends. The writer must still be woken when the
// peer drains: where the selector registers a source oneshot (IOCP), the
// read event disarmed both directions, and nobody re-armed the write one.
#[test]
fn a_waiting_writer_is_woken_after_the_reader_beside_it_ends() {
    const LEN: usize = 32 << 20;
    run(Duration::from_secs(20), || async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = Rc::new(TcpStream::connect(listener.local_addr()?).await?);
        let (server, _) = listener.accept().await?;
        let writer = {
            let client = client.clone();
            // More than loopback's send and receive buffers hold, so the
            // writer waits until the server reads.
            aio::create_task(async move { (&*client).write_all(&pattern(LEN)).await })
        };
        let reader = {
            let client = client.clone();
            aio::create_task(async move { (&*client).read(&mut [0; 16]).await })
        };
        aio::sleep(Duration::from_millis(50)).await;
        (&server).write_all(b"!").await?;
        assert_eq!(join(reader).await?, 1, "the reader got the byte");
        let mut buf = vec![0; 1 << 20];
        let mut drained = 0;
        while drained < LEN {
            match (&server).read(&mut buf).await? {
                0 => return Err(fail(format!("end of stream after {drained} bytes"))),
                n => drained += n,
            }
        }
        join(writer).await
    });
}
