//! The `floor` runtimes: the least work the OS allows for a workload, written
//! by hand with no runtime at all, so that the report can say how much of a
//! runtime's time is the kernel's and how much is the runtime's own.
//!
//! For the I/O workloads (the TCP ones here, `tcp_churn` and `udp_pingpong`
//! in `floor_churn_udp.rs`) the floor is a single-threaded loop doing what
//! an ideal readiness-based runtime would do and nothing else. It waits in
//! one of two ways, two columns of the report:
//!
//! - `floor`: through `polling`'s `Poller::wait`: the floor for a runtime
//!   that waits with `polling`, including what `polling` does on every wait
//!   besides `epoll_wait` (on Linux, 3.11 arms its timerfd, re-adds it,
//!   reads its notifier eventfd and re-arms it: four more system calls per
//!   wait).
//! - `floor-epoll` (Linux): epoll(7) by hand, one `epoll_wait` per wait and
//!   nothing else: the least the kernel allows, and what mio (tokio's
//!   poller) and aio's Linux selector do.
//!
//! In both:
//!
//! - every socket is non-blocking and registered once, edge-triggered where
//!   the poller has an edge mode (elsewhere oneshot, re-armed for the one
//!   direction the endpoint waits on); edge-triggered, it is watched for
//!   reading only where its endpoint never waits to write (the UDP sockets
//!   and the listener of `floor_churn_udp.rs`: see [`Watch`]), both ways
//!   otherwise;
//! - each endpoint (here the client and the server end of every connection)
//!   is a small state machine over one preallocated buffer: write the
//!   message, read it back (client), or read a message, write it back
//!   (server);
//! - an endpoint tries its operation first and gives way only on
//!   `WouldBlock`; the loop waits in the poller only when every endpoint has
//!   given way, and then steps exactly the endpoints it reported;
//! - no futures, no wakers, no allocation per message.
//!
//! Client and server ends live in the same loop, in the same order (client
//! first) as the runtimes' tasks, so the floor makes the same system calls a
//! perfect runtime would make for the same program. The [`Waiter`] (either
//! poller) is shared with `floor_churn_udp.rs`.
//!
//! A third column, `floor-blocking`, is a reference for `tcp_churn` and
//! `udp_pingpong` only ([`blocking`]): plain blocking sockets in program
//! order, no poller at all (`connect`, `accept`, `close`, a `read` that sees
//! the server's close, `close`; or `send`, `recv`, `send`, `recv` per round
//! trip). One thing happens at a time, so nothing ever has to wait, no call
//! would block and none is retried: fewer system calls than any event loop
//! can make (half of `udp_pingpong`'s), so no runtime can approach it.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use polling::{Event, Events, PollMode, Poller};

use crate::{BoxError, Measurement, TcpShape, UDP_MESSAGE_SIZE, Workload, pattern};

/// How a floor waits for readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// Through `polling`.
    Polling,
    /// epoll(7) by hand (Linux and Android only).
    Epoll,
}

impl Backend {
    fn available(self) -> bool {
        match self {
            Backend::Polling => true,
            Backend::Epoll => cfg!(any(target_os = "linux", target_os = "android")),
        }
    }
}

/// Whether the floor has `workload`: the I/O workloads only.
pub(crate) fn supports(backend: Backend, workload: Workload) -> bool {
    backend.available()
        && (workload.tcp_shape().is_some() || matches!(workload, Workload::TcpChurn | Workload::UdpPingpong))
}

pub(crate) fn measure(backend: Backend, workload: Workload, count: u64) -> Result<Measurement, BoxError> {
    match (workload, workload.tcp_shape()) {
        _ if !backend.available() => Err(format!("the {backend:?} floor is not available here").into()),
        (_, Some(shape)) => tcp(backend, shape, count),
        (Workload::TcpChurn, None) => crate::floor_churn_udp::tcp_churn(backend, count),
        (Workload::UdpPingpong, None) => crate::floor_churn_udp::udp_pingpong(backend, count),
        _ => Err(format!("the {backend:?} floor has no `{workload}` workload").into()),
    }
}

/// The `floor-blocking` runtime, a reference for `tcp_churn` and
/// `udp_pingpong`: blocking sockets, in program order, on this thread.
pub(crate) fn blocking(workload: Workload, count: u64) -> Result<Measurement, BoxError> {
    match workload {
        Workload::TcpChurn => {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            let addr = listener.local_addr()?;
            let start = Instant::now();
            for _ in 0..count {
                // A loopback connect completes within the call; the
                // connection waits in the backlog until accepted.
                let mut client = TcpStream::connect(addr)?;
                drop(listener.accept()?);
                if client.read(&mut [0; 1])? != 0 {
                    return Err("the server end sent data".into());
                }
            }
            Ok(Measurement::timed(start.elapsed(), count))
        }
        Workload::UdpPingpong => {
            let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            client.connect(server.local_addr()?)?;
            server.connect(client.local_addr()?)?;
            let mut message = pattern(UDP_MESSAGE_SIZE);
            let mut echo = vec![0; UDP_MESSAGE_SIZE];
            let start = Instant::now();
            for _ in 0..count {
                client.send(&message)?;
                let received = server.recv(&mut echo)?;
                server.send(&echo[..received])?;
                let received = client.recv(&mut message)?;
                if received != UDP_MESSAGE_SIZE {
                    return Err("a datagram came back short".into());
                }
            }
            let elapsed = start.elapsed();
            if message != pattern(UDP_MESSAGE_SIZE) {
                return Err("the echoed datagram came back changed".into());
            }
            Ok(Measurement::timed(elapsed, count))
        }
        _ => Err(format!("the blocking floor has no `{workload}` workload").into()),
    }
}

/// Which end of a connection an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Writes the message, reads the echo, repeats.
    Client,
    /// Reads a message, writes it back, repeats.
    Server,
}

/// What an endpoint is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Writing,
    Reading,
    Done,
}

/// One end of a connection and where it is in its round trips.
#[derive(Debug)]
struct Endpoint {
    stream: TcpStream,
    role: Role,
    phase: Phase,
    /// The message, written from and read into in place.
    buffer: Vec<u8>,
    /// Bytes of `buffer` already written or read in this phase.
    offset: usize,
    round_trips_left: u64,
}

impl Endpoint {
    fn new(stream: TcpStream, role: Role, shape: TcpShape, round_trips: u64) -> Endpoint {
        let (phase, buffer) = match role {
            Role::Client => (Phase::Writing, shape.message()),
            Role::Server => (Phase::Reading, vec![0; shape.message_size]),
        };
        Endpoint {
            stream,
            role,
            phase,
            buffer,
            offset: 0,
            round_trips_left: round_trips,
        }
    }

    /// The readiness the endpoint waits for.
    fn interest(&self) -> Interest {
        match self.phase {
            Phase::Writing => Interest::Writable,
            Phase::Reading => Interest::Readable,
            Phase::Done => Interest::Nothing,
        }
    }

    /// Makes all the progress the socket allows: returns once an operation
    /// would block or the endpoint is done.
    fn step(&mut self) -> io::Result<()> {
        loop {
            let result = match self.phase {
                Phase::Done => return Ok(()),
                Phase::Writing => (&self.stream).write(&self.buffer[self.offset..]),
                Phase::Reading => (&self.stream).read(&mut self.buffer[self.offset..]),
            };
            match result {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection mid-workload",
                    ));
                }
                Ok(n) => {
                    self.offset += n;
                    if self.offset == self.buffer.len() {
                        self.offset = 0;
                        self.next_phase();
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// The whole message went through: on to the next phase.
    fn next_phase(&mut self) {
        let round_trip_done = matches!(
            (self.role, self.phase),
            (Role::Client, Phase::Reading) | (Role::Server, Phase::Writing)
        );
        if round_trip_done {
            self.round_trips_left -= 1;
        }
        self.phase = match self.phase {
            _ if self.round_trips_left == 0 => Phase::Done,
            Phase::Writing => Phase::Reading,
            Phase::Reading | Phase::Done => Phase::Writing,
        };
    }
}

/// `shape.connections` loopback connections, each doing its share of
/// `round_trips` message echoes; only the loop is timed, not the connects.
fn tcp(backend: Backend, shape: TcpShape, round_trips: u64) -> Result<Measurement, BoxError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    let each = shape.round_trips_each(round_trips);
    let mut endpoints = Vec::new();
    for _ in 0..shape.connections {
        // A loopback connect completes within the call; the connection
        // waits in the backlog until accepted.
        let client = TcpStream::connect(addr)?;
        let (server, _) = listener.accept()?;
        for (stream, role) in [(client, Role::Client), (server, Role::Server)] {
            // TCP_NODELAY as in every runtime's streams (aio's by default,
            // the peers' set by the workload).
            stream.set_nodelay(true)?;
            stream.set_nonblocking(true)?;
            endpoints.push(Endpoint::new(stream, role, shape, each));
        }
    }

    // Declared after `endpoints`, so dropped before them: an early return
    // closes the poller before any stream it watches.
    let mut waiter = Waiter::new(backend)?;
    for (key, endpoint) in endpoints.iter().enumerate() {
        // SAFETY: every stream is deregistered below before it is closed,
        // or else (an early return) the waiter is dropped first, being
        // declared after `endpoints`.
        unsafe { waiter.register(key, endpoint.stream.as_fd(), endpoint.interest(), Watch::Both)? };
    }

    let mut runnable: Vec<usize> = (0..endpoints.len()).collect();
    let mut done = 0;
    let start = Instant::now();
    loop {
        for &key in &runnable {
            let endpoint = &mut endpoints[key];
            if endpoint.phase == Phase::Done {
                continue;
            }
            endpoint.step()?;
            if endpoint.phase == Phase::Done {
                done += 1;
            } else {
                waiter.rearm(key, endpoint.stream.as_fd(), endpoint.interest())?;
            }
        }
        if done == endpoints.len() {
            break;
        }
        runnable.clear();
        waiter.wait(&mut runnable)?;
    }
    let elapsed = start.elapsed();

    for endpoint in &endpoints {
        waiter.deregister(endpoint.stream.as_fd())?;
        if endpoint.role == Role::Client {
            shape.check_echo(&endpoint.buffer)?;
        }
    }
    Ok(Measurement::timed(elapsed, round_trips))
}

/// The readiness an endpoint of a floor waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    Readable,
    Writable,
    /// The endpoint is done.
    Nothing,
}

/// The directions an edge-triggered registration watches for a source's
/// whole life: reading only for a source that never waits to write (a UDP
/// socket here, a listener), so that the poller does not report its send
/// buffer draining after every datagram; both otherwise. (A oneshot
/// registration is re-armed for the one direction awaited instead.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    Reading,
    Both,
}

impl Interest {
    /// As `polling` spells it, under the key `key`.
    fn event(self, key: usize) -> Event {
        match self {
            Interest::Readable => Event::readable(key),
            Interest::Writable => Event::writable(key),
            Interest::Nothing => Event::none(key),
        }
    }
}

/// One socket the poller reported, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ready {
    pub(crate) key: usize,
    /// Readable, or hung up, or in error.
    pub(crate) readable: bool,
    /// Writable, or hung up, or in error.
    pub(crate) writable: bool,
}

impl Ready {
    /// Whether the report is news to an endpoint waiting for `interest`.
    pub(crate) fn answers(self, interest: Interest) -> bool {
        match interest {
            Interest::Readable => self.readable,
            Interest::Writable => self.writable,
            Interest::Nothing => false,
        }
    }
}

/// The poller of a floor, holding its event buffer (allocated once); the
/// TCP floors and those of `tcp_churn` and `udp_pingpong`
/// (`floor_churn_udp.rs`) share it.
pub(crate) enum Waiter {
    Polling {
        poller: Poller,
        events: Events,
        mode: PollMode,
    },
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll {
        epoll: std::os::fd::OwnedFd,
        events: Vec<rustix::event::epoll::Event>,
    },
}

/// Events taken per wait: more than any workload has sockets.
pub(crate) const EVENTS_PER_WAIT: usize = 1024;

impl Waiter {
    pub(crate) fn new(backend: Backend) -> io::Result<Waiter> {
        match backend {
            Backend::Polling => {
                let poller = Poller::new()?;
                let mode = if poller.supports_edge() {
                    PollMode::Edge
                } else {
                    PollMode::Oneshot
                };
                let capacity = NonZeroUsize::new(EVENTS_PER_WAIT).expect("the constant is not zero");
                Ok(Waiter::Polling {
                    poller,
                    events: Events::with_capacity(capacity),
                    mode,
                })
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll => {
                use rustix::event::epoll;
                Ok(Waiter::Epoll {
                    epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
                    events: Vec::with_capacity(EVENTS_PER_WAIT),
                })
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            Backend::Epoll => Err(io::Error::new(io::ErrorKind::Unsupported, "epoll is Linux's")),
        }
    }

    /// Registers `source` under `key`, once: both directions,
    /// edge-triggered, where the poller can; elsewhere oneshot, for
    /// `interest`.
    ///
    /// # Safety
    ///
    /// `polling`'s contract: `source` is [`release`](Waiter::release)d (or
    /// [`deregister`](Waiter::deregister)ed) before it is closed, or else the
    /// waiter is dropped first (which closes the poller and every
    /// registration with it).
    pub(crate) unsafe fn register(
        &self,
        key: usize,
        source: BorrowedFd<'_>,
        interest: Interest,
        watch: Watch,
    ) -> io::Result<()> {
        match self {
            Waiter::Polling { poller, mode, .. } => {
                let interest = match mode {
                    PollMode::Edge => Event::new(key, true, watch == Watch::Both),
                    _ => interest.event(key),
                };
                // SAFETY: passed on to the caller (see above).
                unsafe { poller.add_with_mode(&source, interest, *mode) }
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Waiter::Epoll { epoll, .. } => {
                use rustix::event::epoll::{self as ep, EventData, EventFlags};
                let out = if watch == Watch::Both {
                    EventFlags::OUT
                } else {
                    EventFlags::empty()
                };
                ep::add(
                    epoll,
                    source,
                    EventData::new_u64(key as u64),
                    EventFlags::IN | out | EventFlags::ET,
                )?;
                Ok(())
            }
        }
    }

    /// After a step that blocked: a oneshot registration (only where the
    /// poller has no edge mode) is re-armed for `interest`, the direction
    /// now awaited.
    pub(crate) fn rearm(&self, key: usize, source: BorrowedFd<'_>, interest: Interest) -> io::Result<()> {
        match self {
            Waiter::Polling {
                poller,
                mode: mode @ PollMode::Oneshot,
                ..
            } => poller.modify_with_mode(source, interest.event(key), *mode),
            _ => Ok(()),
        }
    }

    /// Blocks until some socket is ready, and appends the keys of those
    /// that are to `runnable`, whichever way they are ready.
    pub(crate) fn wait(&mut self, runnable: &mut Vec<usize>) -> io::Result<()> {
        self.wait_with(|ready| runnable.push(ready.key))
    }

    /// Blocks until some socket is ready, and appends what the poller
    /// reported of those that are to `ready`.
    pub(crate) fn wait_ready(&mut self, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.wait_with(|one| ready.push(one))
    }

    /// Blocks until some socket is ready, and hands each report to `each`,
    /// in the poller's order.
    fn wait_with(&mut self, mut each: impl FnMut(Ready)) -> io::Result<()> {
        match self {
            Waiter::Polling { poller, events, .. } => {
                events.clear();
                poller.wait(events, None)?;
                for event in events.iter() {
                    each(Ready {
                        key: event.key,
                        readable: event.readable,
                        writable: event.writable,
                    });
                }
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Waiter::Epoll { epoll, events } => {
                use rustix::event::epoll::{self as ep, EventFlags};
                events.clear();
                loop {
                    match ep::wait(&*epoll, rustix::buffer::spare_capacity(events), None) {
                        Err(rustix::io::Errno::INTR) => continue,
                        other => other?,
                    };
                    break;
                }
                for event in events.iter() {
                    // What `polling` counts as readable and writable.
                    let flags = event.flags;
                    each(Ready {
                        key: event.data.u64() as usize,
                        readable: flags
                            .intersects(EventFlags::IN | EventFlags::HUP | EventFlags::ERR | EventFlags::PRI),
                        writable: flags.intersects(EventFlags::OUT | EventFlags::HUP | EventFlags::ERR),
                    });
                }
            }
        }
        Ok(())
    }

    /// Removes `source` from the poller.
    pub(crate) fn deregister(&self, source: BorrowedFd<'_>) -> io::Result<()> {
        match self {
            Waiter::Polling { poller, .. } => poller.delete(source),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Waiter::Epoll { epoll, .. } => {
                rustix::event::epoll::delete(epoll, source)?;
                Ok(())
            }
        }
    }

    /// Called just before `source`, registered, is closed: deregisters it
    /// where the poller asks for that (`polling`, whose contract is that a
    /// source is deleted before it is closed), and does nothing on epoll by
    /// hand, where closing a socket's only descriptor takes it out of the
    /// epoll set (epoll(7)): no system call a runtime could do without.
    pub(crate) fn release(&self, source: BorrowedFd<'_>) -> io::Result<()> {
        match self {
            Waiter::Polling { .. } => self.deregister(source),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Waiter::Epoll { .. } => Ok(()),
        }
    }
}
