//! UDP (`aio::net::UdpSocket`) and Unix domain streams
//! (`aio::net::UnixListener`, `UnixStream`) over real sockets.
//!
//! Ported cases name their CPython 3.13 test in a comment:
//! `test_events.py` (`EventLoopTestsMixin`'s datagram and Unix server
//! cases) and `test_sock_lowlevel.py` (`test_recvfrom`,
//! `test_unix_sock_client_ops`, the datagram cases), re-expressed with
//! methods and Rust streams.
//!
//! Every test runs through `net_common::run`: one at a time, on its own
//! loop under a watchdog, and with the open-fd count back to its start.

#[path = "net_common.rs"]
mod net_common;

use std::io;
use std::time::Duration;

use aio::net::UdpSocket;

use net_common::{WATCHDOG, join, run};

// test_sock_lowlevel.py: BaseSockTestsMixin.test_recvfrom (4 KiB to an echo
// server and back, from the server's address) and test_events.py:
// EventLoopTestsMixin.test_create_datagram_endpoint (the server answers
// "resp:" + data to the sender).
#[test]
fn udp_send_to_and_recv_from() {
    run(WATCHDOG, || async {
        let server = UdpSocket::bind("127.0.0.1:0").await?;
        let server_addr = server.local_addr()?;
        let echo = aio::create_task(async move {
            let mut buf = [0; 8192];
            let (n, from) = server.recv_from(&mut buf).await?;
            let mut reply = b"resp:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            server.send_to(&reply, from).await?;
            io::Result::Ok(n)
        });
        let client = UdpSocket::bind("127.0.0.1:0").await?;
        let data = vec![1u8; 4096];
        assert_eq!(client.send_to(&data, server_addr).await?, 4096);
        let mut buf = [0; 8192];
        let (n, from) = client.recv_from(&mut buf).await?;
        assert_eq!(from, server_addr);
        assert_eq!(n, 4096 + 5);
        assert_eq!(&buf[..5], b"resp:");
        assert_eq!(&buf[5..n], &data[..]);
        assert_eq!(join(echo).await?, 4096);
        Ok(())
    });
}

// The receiver waits before anything is sent: readiness, not luck.
#[test]
fn udp_recv_waits_for_a_datagram() {
    run(WATCHDOG, || async {
        let receiver = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = receiver.local_addr()?;
        let waiting = aio::create_task(async move {
            let mut buf = [0; 64];
            let (n, from) = receiver.recv_from(&mut buf).await?;
            io::Result::Ok((buf[..n].to_vec(), from))
        });
        aio::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.done(), "nothing was sent yet");
        let sender = UdpSocket::bind("127.0.0.1:0").await?;
        sender.send_to(b"late", addr).await?;
        let (data, from) = join(waiting).await?;
        assert_eq!(data, b"late");
        assert_eq!(from, sender.local_addr()?);
        Ok(())
    });
}

#[test]
fn udp_connect_send_recv() {
    run(WATCHDOG, || async {
        let a = UdpSocket::bind("127.0.0.1:0").await?;
        let b = UdpSocket::bind("127.0.0.1:0").await?;
        a.connect(b.local_addr()?).await?;
        b.connect(a.local_addr()?).await?;
        assert_eq!(a.peer_addr()?, b.local_addr()?);
        a.send(b"one").await?;
        b.send(b"two").await?;
        let mut buf = [0; 16];
        let n = b.recv(&mut buf).await?;
        assert_eq!(&buf[..n], b"one");
        let n = a.recv(&mut buf).await?;
        assert_eq!(&buf[..n], b"two");
        Ok(())
    });
}

// test_sock_lowlevel.py:
// test_datagram_send_to_non_listening_address_recvfrom (a connected UDP
// socket that sends where nobody listens hears ICMP port unreachable as
// ECONNREFUSED on its next receive).
#[cfg(target_os = "linux")]
#[test]
fn udp_send_to_nobody_is_refused() {
    run(WATCHDOG, || async {
        let nobody = {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0")?;
            probe.local_addr()?
        };
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        socket.connect(nobody).await?;
        socket.send(b"hello?").await?;
        let err = socket.recv(&mut [0; 16]).await.expect_err("the port is closed");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        Ok(())
    });
}

#[test]
fn udp_conversions_from_and_to_std() {
    run(WATCHDOG, || async {
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let addr = std_socket.local_addr()?;
        let socket = UdpSocket::try_from(std_socket)?;
        let sender = UdpSocket::bind("127.0.0.1:0").await?;
        sender.send_to(b"adopted", addr).await?;
        let mut buf = [0; 16];
        let (n, _) = socket.recv_from(&mut buf).await?;
        assert_eq!(&buf[..n], b"adopted");
        let std_socket = socket.into_std()?;
        sender.send_to(b"blocking", addr).await?;
        std_socket.set_read_timeout(Some(WATCHDOG))?;
        let (n, _) = std_socket.recv_from(&mut buf)?;
        assert_eq!(&buf[..n], b"blocking");
        Ok(())
    });
}

#[cfg(unix)]
mod unix {
    use std::io;
    use std::net::Shutdown;
    use std::path::PathBuf;
    use std::time::Duration;

    use aio::net::{UnixListener, UnixStream};
    use futures_lite::future::try_zip;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    use crate::net_common::{WATCHDOG, join, open_fds, pattern, run, serial, with_sigpipe_default};

    /// A socket path no other test or process uses, removed on drop.
    struct SocketPath(PathBuf);

    impl SocketPath {
        fn new(name: &str) -> SocketPath {
            let path = std::env::temp_dir().join(format!("aio-net-{}-{name}.sock", std::process::id()));
            let _ = std::fs::remove_file(&path);
            SocketPath(path)
        }
    }

    impl Drop for SocketPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    // test_events.py: EventLoopTestsMixin.test_create_unix_server and
    // test_create_unix_connection; test_sock_lowlevel.py:
    // test_unix_sock_client_ops (connect, send, read the answer).
    #[test]
    fn unix_listener_and_stream_echo() {
        let path = SocketPath::new("echo");
        let listen_at = path.0.clone();
        run(WATCHDOG, move || async move {
            let listener = UnixListener::bind(&listen_at)?;
            assert_eq!(listener.local_addr()?.as_pathname(), Some(listen_at.as_path()));
            let server = aio::create_task(async move {
                let (stream, _peer) = listener.accept().await?;
                futures_lite::io::copy(&stream, &mut &stream).await?;
                (&stream).close().await
            });
            let client = UnixStream::connect(&listen_at).await?;
            assert_eq!(client.peer_addr()?.as_pathname(), Some(listen_at.as_path()));
            let data = pattern(1 << 20);
            let send = async {
                (&client).write_all(&data).await?;
                (&client).close().await
            };
            let receive = async {
                let mut echo = Vec::new();
                (&client).read_to_end(&mut echo).await?;
                Ok(echo)
            };
            let ((), echo) = try_zip(send, receive).await?;
            assert!(echo == data, "the echo differs");
            join(server).await
        });
    }

    #[test]
    fn unix_pair_half_close() {
        run(WATCHDOG, || async {
            let (mut a, mut b) = UnixStream::pair()?;
            a.write_all(b"ping").await?;
            a.close().await?;
            let mut got = Vec::new();
            b.read_to_end(&mut got).await?;
            assert_eq!(got, b"ping");
            b.write_all(b"pong").await?;
            drop(b);
            let mut reply = Vec::new();
            a.read_to_end(&mut reply).await?;
            assert_eq!(reply, b"pong");
            Ok(())
        });
    }

    #[test]
    fn unix_write_to_closed_peer_is_broken_pipe() {
        with_sigpipe_default(|| {
            run(WATCHDOG, || async {
                let (a, b) = UnixStream::pair()?;
                drop(b);
                let err = (&a)
                    .write_all(b"into the void")
                    .await
                    .expect_err("the peer is closed");
                assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
                Ok(())
            });
        });
    }

    #[test]
    fn unix_connect_errors() {
        let stale = SocketPath::new("stale");
        let missing = SocketPath::new("missing");
        let (stale_path, missing_path) = (stale.0.clone(), missing.0.clone());
        run(WATCHDOG, move || async move {
            let err = UnixStream::connect(&missing_path)
                .await
                .expect_err("no such file");
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
            // A socket file whose listener is gone.
            drop(std::os::unix::net::UnixListener::bind(&stale_path)?);
            let err = UnixStream::connect(&stale_path)
                .await
                .expect_err("nobody listens");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
            Ok(())
        });
    }

    #[test]
    fn unix_cancelled_read_closes_the_socket() {
        run(WATCHDOG, || async {
            let (a, mut b) = UnixStream::pair()?;
            let before = open_fds();
            let reader = aio::create_task(async move { (&a).read(&mut [0; 16]).await });
            aio::sleep(Duration::from_millis(50)).await;
            assert!(!reader.done());
            reader.cancel();
            assert!(reader.await.expect_err("cancelled").is_cancelled());
            assert_eq!(open_fds(), before - 1);
            assert_eq!(b.read(&mut [0; 16]).await?, 0, "the peer sees the close");
            Ok(())
        });
    }

    #[test]
    fn unix_conversions_from_and_to_std() {
        let path = SocketPath::new("convert");
        let listen_at = path.0.clone();
        run(WATCHDOG, move || async move {
            let listener = UnixListener::try_from(std::os::unix::net::UnixListener::bind(&listen_at)?)?;
            let client = UnixStream::try_from(std::os::unix::net::UnixStream::connect(&listen_at)?)?;
            let (server_side, _) = listener.accept().await?;
            (&client).write_all(b"hi").await?;
            let mut std_server = server_side.into_std()?;
            let mut buf = [0; 2];
            std::io::Read::read_exact(&mut std_server, &mut buf)?;
            assert_eq!(&buf, b"hi");
            std_server.shutdown(Shutdown::Both)?;
            assert_eq!((&client).read(&mut [0; 4]).await?, 0);
            let std_listener = listener.into_std()?;
            assert_eq!(
                std_listener.local_addr()?.as_pathname(),
                Some(listen_at.as_path())
            );
            Ok(())
        });
    }

    #[test]
    fn unix_sockets_need_a_running_loop() {
        let _turn = serial();
        let err = UnixStream::pair().expect_err("no loop runs here");
        assert_eq!(err.to_string(), "no running event loop");
        let path = SocketPath::new("no-loop");
        let err = UnixListener::bind(&path.0).expect_err("no loop runs here");
        assert_eq!(err.to_string(), "no running event loop");
        assert!(!path.0.exists(), "nothing was bound");
    }
}
