//! The event-driven floors of `tcp_churn` and `udp_pingpong` (the `floor`
//! and `floor-epoll` columns): the loop of the TCP floors (`floor.rs`, and
//! its [`Waiter`]) running the programs the runtimes run, as a perfect
//! readiness-based runtime would run them.
//!
//! As in the TCP floors, every socket is non-blocking and registered once,
//! edge-triggered where the poller has an edge mode (elsewhere oneshot,
//! re-armed for the one direction awaited); each endpoint is a small state
//! machine that tries its operation first and gives way only on
//! `WouldBlock`; the loop waits only when every endpoint has given way, and
//! then steps the endpoints the poller reported, in its order; nothing is
//! allocated per operation. The endpoints first run in the order the
//! runtimes' tasks do. One difference: an endpoint is stepped only for the
//! readiness it waits for (as a runtime wakes a task awaiting a read only
//! when the socket is readable). Every datagram sent later makes its sender
//! writable again (the kernel frees the buffer), which says nothing to a
//! UDP socket waiting to receive; stepping it anyway would make it read
//! whatever the other end sent earlier in the same batch, saving a wait by
//! luck of ordering, not something a runtime does. (The TCP floors step on
//! any report, as before: TCP reports a socket writable again only after a
//! write found its buffer full, so under strace their runs show no
//! writable-only report but the first of each socket.)
//!
//! `tcp_churn` (`aio_loop::tcp_churn`): a server task accepts each
//! connection and drops it at once; the main task, one connection at a
//! time, connects, reads until the server's close, and drops its end. Here:
//!
//! - the *connector* (the main task, first to run: it creates the server
//!   task and goes on) makes a non-blocking socket (one `socket` call with
//!   `SOCK_NONBLOCK`, as tokio and aio do), `connect`s (`EINPROGRESS`),
//!   registers the socket and gives way. Reported writable, it asks the
//!   socket whether the connect succeeded (`getsockopt(SO_ERROR)`, as
//!   connect(2) prescribes and every runtime does: `connect(..).await` must
//!   answer that before the program reads), then reads until the end of
//!   the stream (`recvfrom`, which may say `EAGAIN` first), closes its end,
//!   and connects the next;
//! - the *acceptor* (the server task) owns the non-blocking listener,
//!   registered once: `accept4` and `close` of the accepted socket until
//!   `accept4` says `EAGAIN` or every connection has been taken. The
//!   accepted socket does no I/O, so it is never registered;
//! - with epoll by hand a socket is not deregistered before its close:
//!   closing a socket's only descriptor takes it out of the epoll set
//!   (epoll(7)). With `polling` it is (`epoll_ctl(DEL)`), as `polling`'s
//!   contract asks.
//!
//! On loopback the handshake is over when `connect` returns, so the
//! listener is ready before the new socket is registered, and a wait
//! reports the acceptor first: it accepts and closes, and the connector
//! then finds its connect done and the end of the stream at once. A
//! connection costs `socket`, `connect`, `epoll_ctl(ADD)`, one wait,
//! `getsockopt`, `recvfrom`, two `accept4` (the second `EAGAIN`) and two
//! `close`s: ten system calls on epoll by hand (fifteen through `polling`:
//! its four around the wait, and the `DEL`).
//!
//! `udp_pingpong` (`aio_loop::udp_pingpong`): two connected loopback UDP
//! sockets, a client (`send` 1 KiB, `recv` the echo) and a server (`recv`,
//! `send` back what came), the client first. A round trip costs two
//! `sendto`, two `recvfrom` with data, two that would block and two waits:
//! eight system calls on epoll by hand (sixteen through `polling`).
//!
//! The `floor-blocking` column (`floor::blocking`) runs the same programs in
//! program order with blocking sockets: no poller, no `EAGAIN`, no wait,
//! which no event loop can match; it stays as a reference.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use crate::floor::{Backend, EVENTS_PER_WAIT, Interest, Waiter, Watch};
use crate::{BoxError, Measurement, UDP_MESSAGE_SIZE, pattern};

/// The poller key of `tcp_churn`'s acceptor.
const ACCEPTOR: usize = 0;
/// The poller key of `tcp_churn`'s connector, whichever socket it is on.
const CONNECTOR: usize = 1;

/// The server task of `tcp_churn`: accepts each connection and closes it.
#[derive(Debug)]
struct Acceptor {
    listener: TcpListener,
    accepts_left: u64,
}

impl Acceptor {
    fn done(&self) -> bool {
        self.accepts_left == 0
    }

    /// The readiness the acceptor waits for.
    fn interest(&self) -> Interest {
        if self.done() {
            Interest::Nothing
        } else {
            Interest::Readable
        }
    }

    /// Steps the acceptor and, if it gave way, re-arms its registration
    /// (where the poller is oneshot).
    fn run(&mut self, waiter: &Waiter) -> io::Result<()> {
        self.step()?;
        if !self.done() {
            waiter.rearm(ACCEPTOR, self.listener.as_fd(), self.interest())?;
        }
        Ok(())
    }

    /// Accepts and closes connections until `accept` would block or every
    /// connection has been taken.
    fn step(&mut self) -> io::Result<()> {
        while !self.done() {
            match self.listener.accept() {
                Ok((accepted, _)) => {
                    // Never registered: closing it is all there is to do.
                    drop(accepted);
                    self.accepts_left -= 1;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

/// Where the connector is with its current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connecting {
    /// No socket: the next step connects one.
    Idle,
    /// `connect` said `EINPROGRESS`: the next step, once the poller reports
    /// the socket, asks it how the connect ended.
    InProgress,
    /// Connected: reading until the server's close.
    Reading,
    Done,
}

/// The main task of `tcp_churn`: connects, reads to the end of the stream,
/// closes, one connection at a time.
#[derive(Debug)]
struct Connector {
    addr: SocketAddrV4,
    /// The current connection's socket, registered under [`CONNECTOR`].
    stream: Option<TcpStream>,
    phase: Connecting,
    connects_left: u64,
}

impl Connector {
    fn done(&self) -> bool {
        self.phase == Connecting::Done
    }

    /// The readiness the connector waits for.
    fn interest(&self) -> Interest {
        match self.phase {
            Connecting::InProgress => Interest::Writable,
            Connecting::Reading => Interest::Readable,
            Connecting::Idle | Connecting::Done => Interest::Nothing,
        }
    }

    /// Steps the connector and, if it gave way, re-arms its registration
    /// (where the poller is oneshot).
    fn run(&mut self, waiter: &Waiter) -> io::Result<()> {
        self.step(waiter)?;
        if let Some(stream) = &self.stream {
            waiter.rearm(CONNECTOR, stream.as_fd(), self.interest())?;
        }
        Ok(())
    }

    /// Makes all the progress the sockets allow: returns once an operation
    /// would block or every connection is over. Stepped in
    /// [`Connecting::InProgress`] only when the poller has reported the
    /// socket writable (or in error): the connect is over.
    fn step(&mut self, waiter: &Waiter) -> io::Result<()> {
        loop {
            match self.phase {
                Connecting::Done => return Ok(()),
                Connecting::Idle if self.connects_left == 0 => self.phase = Connecting::Done,
                Connecting::Idle => {
                    let socket = nonblocking_stream_socket()?;
                    self.phase = match rustix::net::connect(&socket, &self.addr) {
                        Ok(()) => Connecting::Reading,
                        // An interrupted connect goes on in the background,
                        // as one in progress.
                        Err(rustix::io::Errno::INPROGRESS | rustix::io::Errno::INTR) => {
                            Connecting::InProgress
                        }
                        Err(err) => return Err(err.into()),
                    };
                    let interest = self.interest();
                    let stream = self.stream.insert(TcpStream::from(socket));
                    // SAFETY: the stream is released below before it is
                    // closed, or else (an early return) the waiter is
                    // dropped first, being declared after the connector in
                    // `tcp_churn`.
                    unsafe { waiter.register(CONNECTOR, stream.as_fd(), interest, Watch::Both)? };
                    if self.phase == Connecting::InProgress {
                        return Ok(());
                    }
                }
                Connecting::InProgress => {
                    let stream = self.stream.as_ref().expect("a connect in progress has a socket");
                    if let Some(err) = stream.take_error()? {
                        return Err(err);
                    }
                    self.phase = Connecting::Reading;
                }
                Connecting::Reading => {
                    let mut stream = self.stream.as_ref().expect("a connected connector has a socket");
                    match stream.read(&mut [0; 1]) {
                        Ok(0) => {
                            waiter.release(stream.as_fd())?;
                            self.stream = None;
                            self.connects_left -= 1;
                            self.phase = Connecting::Idle;
                        }
                        Ok(_) => return Err(io::Error::other("the server end sent data")),
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                        Err(err) => return Err(err),
                    }
                }
            }
        }
    }
}

/// A TCP socket for IPv4, non-blocking and close-on-exec from the start:
/// one `socket` call where the flags exist (as tokio and aio make theirs).
fn nonblocking_stream_socket() -> io::Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketType};
    #[cfg(not(any(
        target_vendor = "apple",
        target_os = "aix",
        target_os = "haiku",
        target_os = "nto"
    )))]
    {
        use rustix::net::SocketFlags;
        Ok(rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?)
    }
    #[cfg(any(
        target_vendor = "apple",
        target_os = "aix",
        target_os = "haiku",
        target_os = "nto"
    ))]
    {
        let socket = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)?;
        rustix::io::ioctl_fionbio(&socket, true)?;
        Ok(socket)
    }
}

/// `connections` loopback connections, one at a time: the connector
/// connects and reads until the acceptor's close; the acceptor accepts each
/// and closes it at once. Timed from the first connect to the last close,
/// as in the runtimes (the listener is made and registered before).
pub(crate) fn tcp_churn(backend: Backend, connections: u64) -> Result<Measurement, BoxError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    listener.set_nonblocking(true)?;
    let SocketAddr::V4(addr) = listener.local_addr()? else {
        return Err("the IPv4 listener has a non-IPv4 address".into());
    };
    let mut acceptor = Acceptor {
        listener,
        accepts_left: connections,
    };
    let mut connector = Connector {
        addr,
        stream: None,
        phase: Connecting::Idle,
        connects_left: connections,
    };

    // Declared after the endpoints, so dropped before them: an early return
    // closes the poller before any socket it watches.
    let mut waiter = Waiter::new(backend)?;
    // SAFETY: the listener is deregistered below before it is closed, or
    // else (an early return) the waiter is dropped first.
    unsafe {
        waiter.register(
            ACCEPTOR,
            acceptor.listener.as_fd(),
            Interest::Readable,
            Watch::Reading,
        )?
    };

    let mut ready = Vec::with_capacity(EVENTS_PER_WAIT);
    let start = Instant::now();
    // The main task runs first: it creates the server task and connects.
    connector.run(&waiter)?;
    acceptor.run(&waiter)?;
    while !(acceptor.done() && connector.done()) {
        ready.clear();
        waiter.wait_ready(&mut ready)?;
        for report in &ready {
            match report.key {
                ACCEPTOR if report.answers(acceptor.interest()) => acceptor.run(&waiter)?,
                CONNECTOR if report.answers(connector.interest()) => connector.run(&waiter)?,
                _ => {}
            }
        }
    }
    let elapsed = start.elapsed();

    waiter.deregister(acceptor.listener.as_fd())?;
    Ok(Measurement::timed(elapsed, connections))
}

/// The poller key of `udp_pingpong`'s client socket (and its index in the
/// endpoints).
const CLIENT: usize = 0;
/// The poller key of `udp_pingpong`'s server socket.
const SERVER: usize = 1;

/// Which end of the UDP pair an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Sends the message, receives the echo, repeats.
    Client,
    /// Receives a datagram, sends it back, repeats.
    Server,
}

/// What a UDP endpoint is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Sending,
    Receiving,
    Done,
}

/// One of `udp_pingpong`'s connected sockets and where it is in its round
/// trips.
#[derive(Debug)]
struct UdpEnd {
    socket: UdpSocket,
    role: Role,
    phase: Phase,
    /// The datagram, sent from and received into in place.
    buffer: Vec<u8>,
    /// Bytes of `buffer` to send: the whole message for the client, what
    /// came for the server.
    length: usize,
    round_trips_left: u64,
}

impl UdpEnd {
    fn new(socket: UdpSocket, role: Role, round_trips: u64) -> io::Result<UdpEnd> {
        socket.set_nonblocking(true)?;
        let buffer = match role {
            Role::Client => pattern(UDP_MESSAGE_SIZE),
            Role::Server => vec![0; UDP_MESSAGE_SIZE],
        };
        let mut end = UdpEnd {
            socket,
            role,
            phase: Phase::Done,
            length: buffer.len(),
            buffer,
            round_trips_left: round_trips,
        };
        end.phase = end.first_phase();
        Ok(end)
    }

    /// Where each round trip starts, or `Done` once there is none left.
    fn first_phase(&self) -> Phase {
        match self.role {
            _ if self.round_trips_left == 0 => Phase::Done,
            Role::Client => Phase::Sending,
            Role::Server => Phase::Receiving,
        }
    }

    /// The readiness the endpoint waits for.
    fn interest(&self) -> Interest {
        match self.phase {
            Phase::Sending => Interest::Writable,
            Phase::Receiving => Interest::Readable,
            Phase::Done => Interest::Nothing,
        }
    }

    /// Steps the endpoint and, if it gave way, re-arms its registration
    /// (where the poller is oneshot) under `key`.
    fn run(&mut self, key: usize, waiter: &Waiter) -> io::Result<()> {
        self.step()?;
        if self.phase != Phase::Done {
            waiter.rearm(key, self.socket.as_fd(), self.interest())?;
        }
        Ok(())
    }

    /// Makes all the progress the socket allows: returns once an operation
    /// would block or the endpoint is done.
    fn step(&mut self) -> io::Result<()> {
        loop {
            let result = match self.phase {
                Phase::Done => return Ok(()),
                Phase::Sending => self.socket.send(&self.buffer[..self.length]),
                Phase::Receiving => self.socket.recv(&mut self.buffer),
            };
            match result {
                Ok(n) => self.went_through(n)?,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// A datagram of `n` bytes went out or came in: on to the next phase.
    fn went_through(&mut self, n: usize) -> io::Result<()> {
        let round_trip_done = match (self.role, self.phase) {
            (_, Phase::Sending) if n != self.length => {
                return Err(io::Error::other("a datagram went out short"));
            }
            (Role::Client, Phase::Receiving) if n != UDP_MESSAGE_SIZE => {
                return Err(io::Error::other("a datagram came back short"));
            }
            (Role::Client, Phase::Sending) => {
                self.phase = Phase::Receiving;
                false
            }
            (Role::Server, Phase::Receiving) => {
                self.length = n;
                self.phase = Phase::Sending;
                false
            }
            (Role::Client, Phase::Receiving) | (Role::Server, Phase::Sending) => true,
            (_, Phase::Done) => false,
        };
        if round_trip_done {
            self.round_trips_left -= 1;
            self.phase = self.first_phase();
        }
        Ok(())
    }
}

/// Two connected loopback UDP sockets, the client sending 1 KiB and
/// waiting for the echo, the server echoing, `round_trips` times. Timed
/// from the client's first send, as in the runtimes (the sockets are made,
/// connected and registered before).
pub(crate) fn udp_pingpong(backend: Backend, round_trips: u64) -> Result<Measurement, BoxError> {
    let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    client.connect(server.local_addr()?)?;
    server.connect(client.local_addr()?)?;
    let mut ends = [
        UdpEnd::new(client, Role::Client, round_trips)?,
        UdpEnd::new(server, Role::Server, round_trips)?,
    ];

    // Declared after `ends`, so dropped before them: an early return closes
    // the poller before any socket it watches.
    let mut waiter = Waiter::new(backend)?;
    for (key, end) in ends.iter().enumerate() {
        // SAFETY: every socket is deregistered below before it is closed,
        // or else (an early return) the waiter is dropped first.
        unsafe { waiter.register(key, end.socket.as_fd(), end.interest(), Watch::Reading)? };
    }

    let mut ready = Vec::with_capacity(EVENTS_PER_WAIT);
    let start = Instant::now();
    // The client task is created first, so runs first.
    for key in [CLIENT, SERVER] {
        ends[key].run(key, &waiter)?;
    }
    while ends.iter().any(|end| end.phase != Phase::Done) {
        ready.clear();
        waiter.wait_ready(&mut ready)?;
        for report in &ready {
            let end = &mut ends[report.key];
            // Not on a report of the other direction: every datagram sent
            // later makes its sender writable again (the kernel frees its
            // buffer), which says nothing to a socket waiting to receive.
            if report.answers(end.interest()) {
                end.run(report.key, &waiter)?;
            }
        }
    }
    let elapsed = start.elapsed();

    for end in &ends {
        waiter.deregister(end.socket.as_fd())?;
    }
    if ends[CLIENT].buffer != pattern(UDP_MESSAGE_SIZE) {
        return Err("the echoed datagram came back changed".into());
    }
    Ok(Measurement::timed(elapsed, round_trips))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends() -> impl Iterator<Item = Backend> {
        [Backend::Polling, Backend::Epoll]
            .into_iter()
            .filter(|backend| crate::floor::supports(*backend, crate::Workload::TcpChurn))
    }

    #[test]
    fn churn_makes_and_closes_every_connection() {
        for backend in backends() {
            for connections in [0, 1, 50] {
                let measurement = tcp_churn(backend, connections).unwrap();
                assert_eq!(measurement.ops, connections, "{backend:?}");
            }
        }
    }

    #[test]
    fn udp_echoes_every_datagram() {
        for backend in backends() {
            for round_trips in [0, 1, 50] {
                let measurement = udp_pingpong(backend, round_trips).unwrap();
                assert_eq!(measurement.ops, round_trips, "{backend:?}");
            }
        }
    }
}
