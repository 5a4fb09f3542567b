//! UDP: [`UdpSocket`] (asyncio's `create_datagram_endpoint` and
//! `sock_sendto`/`sock_recvfrom`, as methods).
//!
//! A file of its own because datagrams have no stream traits: every send
//! and receive is a whole message, with an address.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use aio_events::{EventLoop, Interest};
use socket2::{Domain, Protocol, Type};

use crate::registered::{Registered, running_loop};
use crate::tcp::each_address;

/// A UDP socket registered with the loop it was bound in.
///
/// One task may receive while another sends; two tasks receiving at once
/// on one socket is not supported (the later one takes the wake-up).
pub struct UdpSocket {
    inner: Registered<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds a socket to the first address of `addr` that accepts the bind,
    /// registered with the running loop ("no running event loop" outside
    /// one).
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let event_loop = running_loop()?;
        each_address(addr, |addr| {
            let event_loop = &event_loop;
            async move { UdpSocket::bind_one(event_loop, addr) }
        })
        .await
    }

    fn bind_one(event_loop: &EventLoop, addr: SocketAddr) -> io::Result<UdpSocket> {
        let socket =
            crate::sys::nonblocking_socket(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.bind(&addr.into())?;
        let inner = Registered::new(event_loop, std::net::UdpSocket::from(socket))?;
        Ok(UdpSocket { inner })
    }

    /// Sends `buf` as one datagram to the first address of `addr`; the
    /// number of bytes sent.
    pub async fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to"))?;
        let io = self.inner.io();
        self.inner.run_io(Interest::Write, || io.send_to(buf, addr)).await
    }

    /// Receives one datagram into `buf` (the excess of a longer one is
    /// lost); its length and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let io = self.inner.io();
        self.inner.run_io(Interest::Read, || io.recv_from(buf)).await
    }

    /// Sets the default destination of [`send`](UdpSocket::send) and
    /// filters [`recv`](UdpSocket::recv) to datagrams from it.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        self.inner.io().connect(addr)
    }

    /// Sends `buf` to the connected address.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let io = self.inner.io();
        self.inner.run_io(Interest::Write, || io.send(buf)).await
    }

    /// Receives one datagram from the connected address.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let io = self.inner.io();
        self.inner.run_io(Interest::Read, || io.recv(buf)).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().local_addr()
    }

    /// The connected address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().peer_addr()
    }

    /// Deregisters the socket and hands back the std socket, in blocking
    /// mode again.
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        let socket = self.inner.into_inner();
        socket.set_nonblocking(false)?;
        Ok(socket)
    }
}

/// Adopts a std socket: makes it non-blocking and registers it with the
/// running loop ("no running event loop" outside one).
impl TryFrom<std::net::UdpSocket> for UdpSocket {
    type Error = io::Error;

    fn try_from(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        let inner = Registered::adopt(socket, |s| s.set_nonblocking(true))?;
        Ok(UdpSocket { inner })
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UdpSocket").field(&self.inner).finish()
    }
}

crate::registered::impl_as_raw!(UdpSocket);
