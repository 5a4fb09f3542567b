//! The OS selector of the loop: `polling`'s `Poller` for registrations, and
//! the wait for events, with the one wake-up channel other threads and
//! signals write to.
//!
//! A file of its own because the wait is where the loop meets the kernel,
//! and on Linux it takes a shorter road than `polling::Poller::wait`. That
//! call costs five system calls on epoll whatever the timeout: it arms (or
//! disarms) a timerfd and re-registers it, waits, then reads and re-arms its
//! oneshot notifier. A loop that polls every iteration, as asyncio's must,
//! pays that on every iteration. So on Linux and Android the loop still
//! registers every fd through `polling` (so keys, modes and the safety
//! contract stay polling's, whose epoll backend lets a socket close without
//! a delete first: `io.rs` uses that for sockets that are dropped), but it
//! waits with one `epoll_pwait` on the
//! poller's own epoll fd (`Poller` exposes it as `AsFd` for this), with the
//! timeout in the call (millisecond resolution, rounded up, as tokio's), and
//! it wakes through an eventfd of its own, registered level-triggered: one
//! `write` to wake, one `read` when the wake-up is seen, nothing when it is
//! not. `polling`'s own timerfd and notifier are never armed. Elsewhere
//! (kqueue, event ports, IOCP, poll) the loop calls `Poller::wait` and
//! `Poller::notify`.
//!
//! | platform | registration | wait | wake-up |
//! |---|---|---|---|
//! | Linux, Android | `polling` (epoll) | `epoll_pwait` on the poller's fd | own eventfd |
//! | other Unix | `polling` (kqueue, event ports, poll) | `Poller::wait` | `Poller::notify` |
//! | Windows | `polling` (IOCP + AFD) | `Poller::wait` | `Poller::notify` |
//!
//! **No fd, no poller (Linux, Android).** A loop that never watches an fd
//! (callbacks, timers, tasks, threads, signals) needs no epoll: it blocks on
//! a futex word of its own, which other threads and signal handlers wake.
//! The poller and the eventfd are made when the first fd is registered and
//! kept until the loop drops; from then on the loop waits in `epoll_pwait`.
//! So `aio::run` of a main that does no I/O makes no epoll, eventfd or
//! timerfd at all (asyncio's selector loop makes its epoll and self-pipe up
//! front; tokio makes an epoll and an eventfd).
//!
//! Who wakes whom, without a lost wake-up: a waker first publishes its work
//! (`remote_pending`, then `sleeping` swapped to `false` in `scheduler.rs`),
//! then reads which channel exists. The loop makes the poller only on its own
//! thread and never while it sleeps, and it reads `remote_pending` after
//! declaring itself asleep. A waker that saw no poller wakes the futex: if the
//! loop has meanwhile moved to epoll, it sees `remote_pending` before it
//! blocks. Both wake-ups are async-signal-safe (an atomic swap and one
//! system call), which is what signal handlers use (`SignalWake`).

use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use polling::Poller;

/// One readiness event, whatever the backend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyEvent {
    pub(crate) key: usize,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
}

/// Events gathered by one wait.
const EVENTS_PER_WAIT: usize = 1024;

/// The poller and the loop's wake-up channel.
#[derive(Debug)]
pub(crate) struct Selector {
    /// Made on first use on Linux and Android (see the module docs); at
    /// creation elsewhere.
    backend: OnceLock<Backend>,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    parker: linux::Parker,
}

/// The poller and, on Linux and Android, the eventfd the loop wakes through
/// once the poller exists.
#[derive(Debug)]
struct Backend {
    poller: Poller,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    wake: linux::WakeFd,
}

impl Backend {
    fn new() -> io::Result<Backend> {
        let poller = Poller::new()?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let wake = linux::WakeFd::new(&poller)?;
        Ok(Backend {
            poller,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            wake,
        })
    }
}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        let backend = OnceLock::new();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        backend
            .set(Backend::new()?)
            .unwrap_or_else(|_| unreachable!("a fresh OnceLock is empty"));
        Ok(Selector {
            backend,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            parker: linux::Parker::default(),
        })
    }

    /// The poller, made now if this is the first fd. Loop thread only, and
    /// never while the loop waits (see the module docs).
    pub(crate) fn poller(&self) -> io::Result<&Poller> {
        if let Some(backend) = self.backend.get() {
            return Ok(&backend.poller);
        }
        let backend = Backend::new()?;
        Ok(&self.backend.get_or_init(|| backend).poller)
    }

    /// The poller if it exists: what is registered with it must be deleted
    /// from it, and nothing is registered without it.
    pub(crate) fn existing_poller(&self) -> Option<&Poller> {
        self.backend.get().map(|backend| &backend.poller)
    }

    /// Wakes a wait in progress, or the next one. Safe from any thread, and
    /// async-signal-safe on Linux and Android (an atomic swap and one
    /// `write` or `futex` call).
    pub(crate) fn notify(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        match self.backend.get() {
            Some(backend) => backend.wake.notify(),
            None => self.parker.unpark(),
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        if let Some(backend) = self.backend.get() {
            // An error means the poller is gone with the loop.
            let _ = backend.poller.notify();
        }
    }

    /// Waits up to `timeout` (`None`: until something happens) and appends
    /// the events to `out`. Our own wake-up is consumed, not reported.
    pub(crate) fn wait(
        &self,
        out: &mut Vec<ReadyEvent>,
        scratch: &mut Scratch,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return match self.backend.get() {
            Some(backend) => linux::wait(backend, out, scratch, timeout),
            None => {
                self.parker.park(timeout);
                Ok(())
            }
        };
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let Some(backend) = self.backend.get() else {
                return Ok(());
            };
            scratch.events.clear();
            backend.poller.wait(&mut scratch.events, timeout)?;
            out.extend(scratch.events.iter().map(|event| ReadyEvent {
                key: event.key,
                readable: event.readable,
                writable: event.writable,
            }));
            Ok(())
        }
    }
}

/// The buffer one wait fills, kept between waits.
pub(crate) struct Scratch {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    events: Vec<rustix::event::epoll::Event>,
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    events: polling::Events,
}

impl Scratch {
    pub(crate) fn new() -> Scratch {
        Scratch {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            events: Vec::with_capacity(EVENTS_PER_WAIT),
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            events: polling::Events::with_capacity(
                std::num::NonZeroUsize::new(EVENTS_PER_WAIT).expect("not zero"),
            ),
        }
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scratch")
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux {
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use polling::{Event, PollMode, Poller};
    use rustix::event::epoll::{self, EventFlags};
    use rustix::event::{EventfdFlags, eventfd};
    use rustix::thread::futex;

    use super::{Backend, EVENTS_PER_WAIT, ReadyEvent, Scratch};

    /// The key of our eventfd in the poller; the keys of sources and
    /// callbacks stay below it, and `polling`'s notifier uses `usize::MAX`.
    const WAKE_KEY: usize = usize::MAX - 1;

    #[derive(Debug)]
    pub(super) struct WakeFd(OwnedFd);

    /// Not notified / notified: the futex word a loop without a poller
    /// blocks on.
    const EMPTY: u32 = 0;
    const NOTIFIED: u32 = 1;

    /// A one-token parker on a futex word: `unpark` leaves the token (and
    /// wakes a `park` in progress), `park` returns at once when it finds one.
    /// A token can outlive its reason (the loop woke by its timeout first):
    /// the next `park` then returns early once, and the loop simply turns.
    #[derive(Debug, Default)]
    pub(super) struct Parker {
        state: AtomicU32,
    }

    impl Parker {
        pub(super) fn park(&self, timeout: Option<Duration>) {
            if self.state.swap(EMPTY, Ordering::Acquire) == NOTIFIED {
                return;
            }
            let timeout = timeout.map(timespec);
            // EINTR (a signal, whose handler woke us anyway), EAGAIN (the
            // token came first) and ETIMEDOUT all mean: go and look.
            let _ = futex::wait(&self.state, futex::Flags::PRIVATE, EMPTY, timeout.as_ref());
            self.state.store(EMPTY, Ordering::Release);
        }

        pub(super) fn unpark(&self) {
            if self.state.swap(NOTIFIED, Ordering::Release) == EMPTY {
                let _ = futex::wake(&self.state, futex::Flags::PRIVATE, 1);
            }
        }
    }

    fn timespec(timeout: Duration) -> rustix::time::Timespec {
        rustix::time::Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: timeout.subsec_nanos().into(),
        }
    }

    impl WakeFd {
        pub(super) fn new(poller: &Poller) -> io::Result<WakeFd> {
            let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
            // SAFETY: the eventfd lives in the `Selector` beside the poller
            // and is dropped after it (field order), so it is never closed
            // while registered.
            unsafe { poller.add_with_mode(&fd, Event::readable(WAKE_KEY), PollMode::Level)? };
            Ok(WakeFd(fd))
        }

        pub(super) fn notify(&self) {
            // A full counter (2^64 - 2 pending wakes) still wakes the wait;
            // any other error means the loop is gone.
            let _ = rustix::io::write(&self.0, &1u64.to_ne_bytes());
        }

        fn clear(&self) {
            let mut buffer = [0u8; 8];
            let _ = rustix::io::read(&self.0, &mut buffer);
        }
    }

    pub(super) fn wait(
        selector: &Backend,
        out: &mut Vec<ReadyEvent>,
        scratch: &mut Scratch,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let timeout = timeout.map(timespec);
        scratch.events.clear();
        match epoll::wait(
            selector.poller.as_fd(),
            rustix::buffer::spare_capacity(&mut scratch.events),
            timeout.as_ref(),
        ) {
            Ok(_) => {}
            // A signal: its handler has already marked the loop woken;
            // return now so the loop turns promptly.
            Err(rustix::io::Errno::INTR) => return Ok(()),
            Err(err) => return Err(err.into()),
        }
        debug_assert!(scratch.events.len() <= EVENTS_PER_WAIT);
        let read = EventFlags::IN | EventFlags::RDHUP | EventFlags::HUP | EventFlags::ERR | EventFlags::PRI;
        let write = EventFlags::OUT | EventFlags::HUP | EventFlags::ERR;
        for event in scratch.events.iter() {
            let key = usize::try_from(event.data.u64()).unwrap_or(usize::MAX);
            if key == WAKE_KEY {
                selector.wake.clear();
                continue;
            }
            if key == usize::MAX {
                // `polling`'s own notifier: never notified by this loop.
                continue;
            }
            let flags = event.flags;
            out.push(ReadyEvent {
                key,
                readable: flags.intersects(read),
                writable: flags.intersects(write),
            });
        }
        Ok(())
    }
}
