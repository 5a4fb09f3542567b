//! aio's sockets: TCP, UDP and Unix domain sockets on the selector's
//! readiness API, with `futures-io` streams (asyncio's socket paths of
//! `selector_events.py`).
//!
//! **Place in the stack.** Below: `aio-events`, whose
//! [`IoRegistration`](aio_events::IoRegistration)
//! registers a socket with its loop's selector once and turns "would block"
//! into waiting for readiness; `socket2` for the options std cannot set
//! before a socket connects or listens. Above: the facade, which re-exports
//! this crate as `aio::net`. Depend on the facade; this crate knows no loop,
//! only the `EventLoop` handle, so it works on any loop that implements
//! readiness I/O.
//!
//! What is here:
//! - [`TcpListener`] and [`TcpStream`]: non-blocking connect, `TCP_NODELAY`
//!   on by default and `SO_REUSEADDR` on Unix listeners (both as asyncio),
//!   listeners that survive running out of descriptors;
//! - [`UdpSocket`];
//! - on Unix, [`UnixListener`] and [`UnixStream`] (with [`UnixStream::pair`]);
//! - [`SockExt`]: asyncio's `loop.sock_recv`, `sock_sendall`, `sock_accept`
//!   and `sock_connect` on std sockets, for ported code.
//!
//! Streams implement [`futures_io::AsyncRead`] and
//! [`futures_io::AsyncWrite`] (also on `&TcpStream`, so a reader task and a
//! writer task can share one stream); `poll_close` shuts the write half
//! down. Peer resets, half-closes and writes to a closed peer are
//! `io::Error`s, never panics or SIGPIPE.
//!
//! **Loops and ownership.** A socket registers with the running loop when it
//! is made (outside a running loop: the error "no running event loop") and
//! belongs to that loop. Each socket owns its descriptor: dropping it, or a
//! future that holds it (a task cancelled mid-read or mid-connect), first
//! deregisters it from the selector, then closes it.
//!
//! **Names.** `bind`, `connect` and `send_to` take `std::net::ToSocketAddrs`
//! and resolve it on the loop's thread, as std does: an IP address costs
//! nothing, a host name blocks the loop for the resolver's lookup (asyncio
//! resolves in the executor; the contract's `impl ToSocketAddrs` is neither
//! `Send` nor `'static`, so it cannot move to another thread). Every
//! resolved address is tried in turn; the last error is returned.
//!
//! # Example
//!
//! ```
//! use futures_lite::{AsyncReadExt, AsyncWriteExt};
//!
//! let event_loop = aio_selector::SelectorEventLoop::new()?;
//! event_loop.run_until_complete(async {
//!     let listener = aio_net::TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     let server = aio_events::create_task(async move {
//!         let (mut stream, _peer) = listener.accept().await?;
//!         let mut buf = [0; 5];
//!         stream.read_exact(&mut buf).await?;
//!         stream.write_all(&buf).await
//!     });
//!     let mut client = aio_net::TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     let mut echo = [0; 5];
//!     client.read_exact(&mut echo).await?;
//!     assert_eq!(&echo, b"hello");
//!     server.await.map_err(aio_events::into_io)?
//! })??;
//! event_loop.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Platforms
//!
//! | platform | readiness (through the loop's selector) | sockets |
//! |---|---|---|
//! | Linux, Android | epoll, edge-triggered | `accept4(SOCK_NONBLOCK)`, sends with `MSG_NOSIGNAL` |
//! | FreeBSD, NetBSD, OpenBSD, DragonFly, illumos | kqueue or event ports | sends with `MSG_NOSIGNAL` |
//! | macOS, iOS | kqueue, edge-triggered (`EV_CLEAR`) | `SO_NOSIGPIPE` on every socket |
//! | Windows | IOCP with AFD, oneshot and re-armed per wait | no Unix sockets; `SockExt` registers per call |

// The Unix sockets the docs link to exist only on Unix.
#![cfg_attr(not(unix), allow(rustdoc::broken_intra_doc_links))]

mod accept;
mod registered;
mod sock_ext;
mod stream;
mod sys;
mod tcp;
mod udp;
#[cfg(unix)]
mod unix;

pub use accept::OUT_OF_RESOURCES;
pub use sock_ext::SockExt;
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
#[cfg(unix)]
pub use unix::{UnixListener, UnixStream};
