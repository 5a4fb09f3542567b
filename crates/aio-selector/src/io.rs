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

#[cfg(unix)]
pub use std::os::fd::RawFd as RawSource;
#[cfg(windows)]
pub use std::os::windows::io::RawSocket as RawSource;

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
