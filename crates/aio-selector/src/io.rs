//! I/O readiness callbacks: the fds (sockets on Windows) the loop watches for
//! `add_reader`/`add_writer`, registered with `polling` in level mode.
//!
//! A file of its own because it owns the mapping from the poller's event keys
//! to callbacks. Keys are slab indices; events are dispatched right after the
//! poll returns and before any callback runs, so a key cannot be reused
//! between an event and its dispatch.
//!
//! Level mode, because asyncio's readers are level-triggered (a reader that
//! leaves data unread is called again next iteration) and because `polling`
//! offers no edge mode on Windows.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::rc::Rc;

use polling::{Event, PollMode, Poller};
use slab::Slab;

pub use aio_events::RawSource;

/// A reader or writer callback; cancelled when removed or replaced, so an
/// entry already in the ready queue does not run.
pub(crate) struct IoCallback {
    cancelled: Cell<bool>,
    callback: RefCell<Box<dyn FnMut()>>,
}

impl IoCallback {
    fn new(callback: Box<dyn FnMut()>) -> Rc<IoCallback> {
        Rc::new(IoCallback {
            cancelled: Cell::new(false),
            callback: RefCell::new(callback),
        })
    }

    fn cancel(&self) {
        self.cancelled.set(true);
    }

    pub(crate) fn run(&self) {
        if self.cancelled.get() {
            return;
        }
        // A callback that re-enters itself is refused rather than aliased.
        if let Ok(mut callback) = self.callback.try_borrow_mut() {
            callback();
        }
    }
}

struct Source {
    raw: RawSource,
    reader: Option<Rc<IoCallback>>,
    writer: Option<Rc<IoCallback>>,
}

impl Source {
    fn interest(&self, key: usize) -> Event {
        Event::new(key, self.reader.is_some(), self.writer.is_some())
    }
}

/// Which direction a callback watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

#[derive(Default)]
pub(crate) struct IoRegistry {
    sources: Slab<Source>,
    by_raw: HashMap<RawSource, usize>,
}

#[cfg(unix)]
fn borrow(raw: RawSource) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: the caller of `add_reader`/`add_writer` promises the fd stays
    // open while registered (asyncio's contract too); the borrow is used only
    // for the duration of one poller call.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) }
}

#[cfg(windows)]
fn borrow(raw: RawSource) -> std::os::windows::io::BorrowedSocket<'static> {
    // SAFETY: as on Unix: the socket stays open while registered.
    unsafe { std::os::windows::io::BorrowedSocket::borrow_raw(raw) }
}

impl IoRegistry {
    pub(crate) fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Watches `raw` in `direction`, replacing (and cancelling) a callback
    /// already there.
    pub(crate) fn add(
        &mut self,
        poller: &Poller,
        raw: RawSource,
        direction: Direction,
        callback: Box<dyn FnMut()>,
    ) -> io::Result<()> {
        let callback = IoCallback::new(callback);
        if let Some(&key) = self.by_raw.get(&raw) {
            let source = &mut self.sources[key];
            let slot = match direction {
                Direction::Read => &mut source.reader,
                Direction::Write => &mut source.writer,
            };
            let previous = slot.replace(callback);
            let interest = source.interest(key);
            if let Err(err) = poller.modify_with_mode(borrow(raw), interest, PollMode::Level) {
                // Put things back as they were.
                let source = &mut self.sources[key];
                let slot = match direction {
                    Direction::Read => &mut source.reader,
                    Direction::Write => &mut source.writer,
                };
                *slot = previous;
                return Err(err);
            }
            if let Some(previous) = previous {
                previous.cancel();
            }
            return Ok(());
        }
        let entry = self.sources.vacant_entry();
        let key = entry.key();
        let source = Source {
            raw,
            reader: (direction == Direction::Read).then(|| callback.clone()),
            writer: (direction == Direction::Write).then_some(callback),
        };
        let interest = source.interest(key);
        // SAFETY: `polling` requires the source to be deleted from the poller
        // before it is closed; `remove` and the loop's `close` delete it, and
        // the user promises to remove it before closing the fd.
        #[cfg(unix)]
        unsafe {
            poller.add_with_mode(raw, interest, PollMode::Level)?
        };
        // SAFETY: as above, for a socket.
        #[cfg(windows)]
        unsafe {
            poller.add_with_mode(raw, interest, PollMode::Level)?
        };
        entry.insert(source);
        self.by_raw.insert(raw, key);
        Ok(())
    }

    /// Stops watching `raw` in `direction`; `false` if it was not watched.
    pub(crate) fn remove(&mut self, poller: &Poller, raw: RawSource, direction: Direction) -> bool {
        let Some(&key) = self.by_raw.get(&raw) else {
            return false;
        };
        let source = &mut self.sources[key];
        let slot = match direction {
            Direction::Read => &mut source.reader,
            Direction::Write => &mut source.writer,
        };
        let Some(callback) = slot.take() else {
            return false;
        };
        callback.cancel();
        if source.reader.is_none() && source.writer.is_none() {
            // The fd may be closed already; the kernel then forgot it.
            let _ = poller.delete(borrow(raw));
            self.sources.remove(key);
            self.by_raw.remove(&raw);
        } else {
            let interest = source.interest(key);
            let _ = poller.modify_with_mode(borrow(raw), interest, PollMode::Level);
        }
        true
    }

    /// The callbacks an event of `key` makes ready.
    pub(crate) fn ready_callbacks(
        &self,
        key: usize,
        readable: bool,
        writable: bool,
    ) -> (Option<Rc<IoCallback>>, Option<Rc<IoCallback>>) {
        match self.sources.get(key) {
            Some(source) => (
                source.reader.clone().filter(|_| readable),
                source.writer.clone().filter(|_| writable),
            ),
            None => (None, None),
        }
    }

    /// Deletes every source from the poller and cancels every callback.
    pub(crate) fn clear(&mut self, poller: &Poller) {
        for source in self.sources.drain() {
            let _ = poller.delete(borrow(source.raw));
            for callback in source.reader.into_iter().chain(source.writer) {
                callback.cancel();
            }
        }
        self.by_raw.clear();
    }
}

impl fmt::Debug for IoRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoRegistry")
            .field("sources", &self.sources.len())
            .finish()
    }
}

/// Poller keys at or above this name readiness sources; below, callbacks.
pub(crate) const SOURCE_KEY_BASE: usize = 1 << (usize::BITS - 2);

const READ_READY: u8 = 1;
const WRITE_READY: u8 = 2;

/// A source registered for readiness-based I/O (`aio::net`'s sockets).
struct ReadinessSource {
    raw: RawSource,
    /// The directions the poller watches, none until it knows the source: in edge mode a source is added only
    /// when someone first has to wait on it, so a socket that never blocks
    /// (an accepted connection closed at once, say) costs the poller no
    /// `epoll_ctl` to add and none to delete. A first wait to read watches
    /// reading only (as libuv does): a socket whose writes never block then
    /// never hears of its send buffer draining (an `EPOLLOUT` edge per
    /// message sent otherwise, each an event to collect and dispatch). The
    /// first wait to write watches both. (An enum, not bits: its niche
    /// keeps the slab's entries at 40 bytes.)
    watched: Watched,
    ready: u8,
    read_waker: Option<std::task::Waker>,
    write_waker: Option<std::task::Waker>,
}

/// The directions the poller watches a readiness source in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watched {
    /// Not added to the poller yet (edge mode, before the first wait).
    Nothing,
    Reading,
    Both,
}

impl Watched {
    fn covers(self, read: bool) -> bool {
        match self {
            Watched::Nothing => false,
            Watched::Reading => read,
            Watched::Both => true,
        }
    }
}

/// The readiness sources of a loop.
///
/// Where the poller has an edge mode (epoll, kqueue), a source is registered
/// once for both directions, edge-triggered: an event sets the cached
/// readiness, an operation that would block clears it, and no system call
/// re-arms anything. It is added to the poller on its first wait, not at
/// registration: until then its readiness is assumed, and adding an fd in
/// edge mode reports the readiness it already has (epoll's `ep_insert` and
/// kqueue's `EV_ADD` both check it), so no edge between the `WouldBlock`
/// and the add is lost. IOCP (Windows) has no edge mode: there a source is
/// registered oneshot and re-armed for the directions someone waits on.
pub(crate) struct ReadinessSources {
    sources: Slab<ReadinessSource>,
    edge: bool,
}

impl ReadinessSources {
    /// No sources yet; whether they go edge-triggered is the poller's to
    /// say when the first one registers (the poller may not exist yet).
    pub(crate) fn new() -> ReadinessSources {
        ReadinessSources {
            sources: Slab::new(),
            edge: false,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    pub(crate) fn register(&mut self, poller: &Poller, raw: RawSource) -> io::Result<usize> {
        if self.sources.is_empty() {
            self.edge = poller.supports_edge();
        }
        let entry = self.sources.vacant_entry();
        let key = entry.key();
        // Optimistic in both modes: try the operation first; the first
        // `WouldBlock` clears the bit and the next event sets it again.
        let ready = READ_READY | WRITE_READY;
        if !self.edge {
            add(poller, raw, Event::none(SOURCE_KEY_BASE + key), PollMode::Oneshot)?;
        }
        entry.insert(ReadinessSource {
            raw,
            watched: if self.edge {
                Watched::Nothing
            } else {
                Watched::Both
            },
            ready,
            read_waker: None,
            write_waker: None,
        });
        Ok(key)
    }

    /// Whether the readiness of `read` (or write) is cached for `key`: the
    /// whole of a ready poll, kept small so that it inlines.
    #[inline]
    pub(crate) fn is_ready(&self, key: usize, read: bool) -> bool {
        let bit = if read { READ_READY } else { WRITE_READY };
        self.sources
            .get(key)
            .is_some_and(|source| source.ready & bit != 0)
    }

    /// The rest of a poll, after [`is_ready`](ReadinessSources::is_ready)
    /// said no (or for an unknown key): adds the source to the poller on its
    /// first wait, keeps the waker, re-arms a oneshot source. With `clear`,
    /// the cached readiness is forgotten first (the operation just reported
    /// `WouldBlock`), so the poll waits.
    #[inline(never)]
    pub(crate) fn poll_ready(
        &mut self,
        poller: &Poller,
        key: usize,
        read: bool,
        clear: bool,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let Some(source) = self.sources.get_mut(key) else {
            return std::task::Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the source is not registered with this loop (it was closed)",
            )));
        };
        let bit = if read { READ_READY } else { WRITE_READY };
        if clear {
            source.ready &= !bit;
        } else if source.ready & bit != 0 {
            return std::task::Poll::Ready(Ok(()));
        }
        if !source.watched.covers(read) {
            // Edge mode, a first wait in this direction: the add (or the
            // change) reports any readiness the source already has in the
            // next poll, so no edge since the `WouldBlock` is lost.
            let watched = if read { Watched::Reading } else { Watched::Both };
            let interest = Event::new(SOURCE_KEY_BASE + key, true, watched == Watched::Both);
            let done = if source.watched != Watched::Nothing {
                poller.modify_with_mode(borrow(source.raw), interest, PollMode::Edge)
            } else {
                match add(poller, source.raw, interest, PollMode::Edge) {
                    // The registration a closed socket left behind (see
                    // `deregister`), its open file back under the same
                    // number: take it over.
                    Err(err) if CLOSE_LEAVES_THE_POLLER && err.kind() == io::ErrorKind::AlreadyExists => {
                        poller.modify_with_mode(borrow(source.raw), interest, PollMode::Edge)
                    }
                    added => added,
                }
            };
            if let Err(err) = done {
                return std::task::Poll::Ready(Err(err));
            }
            source.watched = watched;
        }
        let slot = if read {
            &mut source.read_waker
        } else {
            &mut source.write_waker
        };
        match slot {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        if !self.edge {
            let interest = Event::new(
                SOURCE_KEY_BASE + key,
                source.read_waker.is_some(),
                source.write_waker.is_some(),
            );
            if let Err(err) = poller.modify_with_mode(borrow(source.raw), interest, PollMode::Oneshot) {
                return std::task::Poll::Ready(Err(err));
            }
        }
        std::task::Poll::Pending
    }

    pub(crate) fn clear_ready(&mut self, key: usize, read: bool) {
        if let Some(source) = self.sources.get_mut(key) {
            source.ready &= !if read { READ_READY } else { WRITE_READY };
        }
    }

    /// Records an event and hands back the wakers to wake.
    pub(crate) fn on_event(
        &mut self,
        key: usize,
        readable: bool,
        writable: bool,
    ) -> [Option<std::task::Waker>; 2] {
        let Some(source) = self.sources.get_mut(key) else {
            return [None, None];
        };
        let mut woken = [None, None];
        if readable {
            source.ready |= READ_READY;
            woken[0] = source.read_waker.take();
        }
        if writable {
            source.ready |= WRITE_READY;
            woken[1] = source.write_waker.take();
        }
        if !self.edge {
            // Oneshot: any event disarmed the source in both directions. A
            // waiter in the direction the event did not report is woken too:
            // its poll finds its direction still not ready and re-arms it
            // (`poll_ready` registers the interest of every waker it keeps).
            // Otherwise a writer waiting beside a reader that got its data
            // and went away would never hear of room again.
            if woken[0].is_none() {
                woken[0] = source.read_waker.take();
            }
            if woken[1].is_none() {
                woken[1] = source.write_waker.take();
            }
        }
        woken
    }

    /// Forgets a source. `closing`: its owner closes the fd right after,
    /// and on Linux the close takes it out of the epoll (the kernel drops
    /// an fd's registration when the last descriptor of its open file
    /// closes), so no `epoll_ctl` is spent on it.
    ///
    /// Should the open file outlive the close (a descriptor duplicated, or
    /// inherited by a child between its fork and its exec), the epoll keeps
    /// reporting it under this key until that last descriptor closes too. A
    /// later source given the same key then hears of readiness that is not
    /// its own: harmless, as every operation is tried and a `WouldBlock`
    /// just clears the readiness and waits again. Should that file come back
    /// under its old number (`dup2`) and be registered anew, the first wait
    /// finds the old registration (`EEXIST`) and takes it over.
    pub(crate) fn deregister(&mut self, poller: &Poller, key: usize, closing: bool) {
        if let Some(source) = self.sources.try_remove(key)
            && source.watched != Watched::Nothing
            && !(closing && CLOSE_LEAVES_THE_POLLER && self.edge)
        {
            let _ = poller.delete(borrow(source.raw));
        }
    }

    pub(crate) fn clear(&mut self, poller: &Poller) {
        for source in self.sources.drain() {
            if source.watched != Watched::Nothing {
                let _ = poller.delete(borrow(source.raw));
            }
        }
    }
}

/// Whether closing an fd takes it out of the poller by itself: epoll's
/// (the only backend `polling` uses on Linux and Android).
const CLOSE_LEAVES_THE_POLLER: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// Adds `raw` to the poller.
fn add(poller: &Poller, raw: RawSource, interest: Event, mode: PollMode) -> io::Result<()> {
    // SAFETY: `Poller::add_with_mode` asks that the source be deleted before
    // it is closed. It is (`deregister`, or the loop's close), except for a
    // socket closing right after its deregistration on Linux and Android
    // (`CLOSE_LEAVES_THE_POLLER`), whose backend is epoll: there polling's
    // own `epoll::Poller::add` documents that the condition does not apply
    // (the kernel forgets a closed file; polling keeps no state per fd).
    unsafe { poller.add_with_mode(raw, interest, mode) }
}

impl fmt::Debug for ReadinessSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadinessSources")
            .field("sources", &self.sources.len())
            .field("edge", &self.edge)
            .finish()
    }
}

// The slab's vacant entries hide in a niche of the source (`watched`'s): an
// idle connection pays no tag word per socket.
const _: () =
    assert!(std::mem::size_of::<Option<ReadinessSource>>() == std::mem::size_of::<ReadinessSource>());
