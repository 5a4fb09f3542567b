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
//! contract stay polling's), but it waits with one `epoll_pwait` on the
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

use std::io;
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
    pub(crate) poller: Poller,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    wake: linux::WakeFd,
}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        let poller = Poller::new()?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let wake = linux::WakeFd::new(&poller)?;
        Ok(Selector {
            poller,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            wake,
        })
    }

    /// Wakes a wait in progress, or the next one. Safe from any thread.
    pub(crate) fn notify(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        self.wake.notify();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            // An error means the poller is gone with the loop.
            let _ = self.poller.notify();
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
        return linux::wait(self, out, scratch, timeout);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            scratch.events.clear();
            self.poller.wait(&mut scratch.events, timeout)?;
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
    use std::time::Duration;

    use polling::{Event, PollMode, Poller};
    use rustix::event::epoll::{self, EventFlags};
    use rustix::event::{EventfdFlags, eventfd};

    use super::{EVENTS_PER_WAIT, ReadyEvent, Scratch, Selector};

    /// The key of our eventfd in the poller; the keys of sources and
    /// callbacks stay below it, and `polling`'s notifier uses `usize::MAX`.
    const WAKE_KEY: usize = usize::MAX - 1;

    #[derive(Debug)]
    pub(super) struct WakeFd(OwnedFd);

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
        selector: &Selector,
        out: &mut Vec<ReadyEvent>,
        scratch: &mut Scratch,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let timeout = timeout.map(|timeout| rustix::time::Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: timeout.subsec_nanos().into(),
        });
        scratch.events.clear();
        match epoll::wait(
            selector.poller.as_fd(),
            rustix::buffer::spare_capacity(&mut scratch.events),
            timeout.as_ref(),
        ) {
            Ok(_) => {}
            // A signal: its handler wrote to its pipe, which the next wait
            // reports; return now so the loop turns promptly.
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
