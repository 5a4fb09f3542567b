//! The two SIGCHLD watchers, [`SafeChildWatcher`] and [`FastChildWatcher`]
//! (asyncio's `BaseChildWatcher` and its two subclasses).
//!
//! A file of its own because both share the delicate part: attaching to a
//! loop, which means owning the loop's SIGCHLD handler, and handing the loop
//! back when detached or closed, possibly from another thread.
//!
//! **Where the loop is kept.** A watcher is `Send + Sync` (the policy shares
//! it between threads) but an [`EventLoop`] is `!Send`. The watcher's shared
//! state holds only the loop's [`ThreadsafeLoop`] and the id of its thread;
//! the `EventLoop` itself sits in a thread-local map of the loop's thread,
//! keyed by watcher id (as `aio-base-policy` keeps its current loops). On
//! that thread, detaching takes it out and removes the SIGCHLD handler
//! directly; from any other thread, detaching posts a removal to the loop
//! with `call_soon_threadsafe`, which finds the loop in that same map. The
//! SIGCHLD closure itself holds no `EventLoop`: the loop owns the closure,
//! and a closure owning its loop would keep both alive for good.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, ThreadId};

use aio_events::unix::ChildWatcher;
use aio_events::{Error, ErrorKind, EventLoop, ExceptionContext, ThreadsafeLoop};
use rustix::io::Errno;
use rustix::process::{Signal, WaitOptions};

use crate::wait::{self, ChildCallback, Exited, Waited};

/// SIGCHLD's number.
const SIGCHLD: i32 = Signal::CHILD.as_raw();

/// How many exits of unknown children a [`FastChildWatcher`] keeps for a
/// registration that may still come.
const MAX_ZOMBIES: usize = 4096;

/// Watcher ids and attachment generations; never reused.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The loops of this thread that SIGCHLD watchers are attached to, by
    /// watcher id, with the attachment's generation.
    static ATTACHED_LOOPS: RefCell<HashMap<u64, (u64, EventLoop)>> = RefCell::new(HashMap::new());
}

/// Removes the SIGCHLD handler of attachment `generation` of watcher `id`,
/// if that attachment is still this thread's.
fn release_on_this_thread(id: u64, generation: u64) {
    // Taken out before the loop is called: removing the handler drops the
    // SIGCHLD closure, and with it maybe the last reference to a watcher
    // whose drop comes back here.
    let entry = ATTACHED_LOOPS
        .try_with(|loops| {
            let mut loops = loops.borrow_mut();
            match loops.get(&id) {
                Some((current, _)) if *current == generation => loops.remove(&id),
                _ => None,
            }
        })
        .ok()
        .flatten();
    if let Some((_, event_loop)) = entry {
        // A closed loop has dropped its handlers already: `Ok(false)`.
        if let Err(err) = event_loop.remove_signal_handler(SIGCHLD) {
            log::error!("cannot remove the child watcher's SIGCHLD handler from {event_loop:?}: {err}");
        }
    }
}

/// Whether attachment `generation` of watcher `id` is on this thread, to a
/// loop that is still open.
fn attached_loop_is_open(id: u64, generation: u64) -> bool {
    ATTACHED_LOOPS
        .try_with(|loops| {
            loops
                .borrow()
                .get(&id)
                .is_some_and(|(current, event_loop)| *current == generation && !event_loop.is_closed())
        })
        .unwrap_or(false)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `waitpid(pid, WNOHANG)` for each registered pid.
    Safe,
    /// `waitpid(-1, WNOHANG)` until nothing is left.
    Fast,
}

/// The loop a watcher is attached to, as other threads may see it.
struct Attached {
    threadsafe: ThreadsafeLoop,
    thread: ThreadId,
    generation: u64,
}

/// What a watcher's lock protects.
#[derive(Default)]
struct State {
    attached: Option<Attached>,
    callbacks: HashMap<u32, ChildCallback>,
    zombies: Zombies,
}

/// Exits of children nobody had registered yet (Fast only): pid →
/// returncode, oldest first, at most [`MAX_ZOMBIES`].
#[derive(Default)]
struct Zombies {
    by_pid: HashMap<u32, (i32, u64)>,
    /// Insertion order; entries whose sequence number no longer matches
    /// `by_pid` are stale and skipped.
    order: VecDeque<(u32, u64)>,
    next: u64,
}

impl Zombies {
    /// Keeps `returncode` for `pid`; gives back the oldest entry if that
    /// made one too many.
    fn insert(&mut self, pid: u32, returncode: i32) -> Option<(u32, i32)> {
        let seq = self.next;
        self.next += 1;
        self.by_pid.insert(pid, (returncode, seq));
        self.order.push_back((pid, seq));
        if self.order.len() > 2 * MAX_ZOMBIES {
            let by_pid = &self.by_pid;
            self.order
                .retain(|(pid, seq)| by_pid.get(pid).is_some_and(|(_, current)| current == seq));
        }
        if self.by_pid.len() <= MAX_ZOMBIES {
            return None;
        }
        while let Some((pid, seq)) = self.order.pop_front() {
            if self.by_pid.get(&pid).is_some_and(|(_, current)| *current == seq) {
                return self.by_pid.remove(&pid).map(|(returncode, _)| (pid, returncode));
            }
        }
        None
    }

    fn take(&mut self, pid: u32) -> Option<i32> {
        self.by_pid.remove(&pid).map(|(returncode, _)| returncode)
    }

    fn len(&self) -> usize {
        self.by_pid.len()
    }

    fn clear(&mut self) {
        self.by_pid.clear();
        self.order.clear();
    }
}

/// The part of a watcher its SIGCHLD closure shares.
struct Shared {
    id: u64,
    mode: Mode,
    state: Mutex<State>,
}

/// Children a reaping pass found exited, and where to report them.
struct Batch {
    threadsafe: Option<ThreadsafeLoop>,
    exited: Vec<Exited>,
    /// A `waitpid` failure other than "no such child", for the loop's
    /// exception handler.
    error: Option<Errno>,
}

impl Batch {
    /// Reports the exits, with no lock held.
    fn deliver(self) -> Option<Errno> {
        if let Some(threadsafe) = &self.threadsafe {
            wait::deliver(threadsafe, self.exited);
        }
        self.error
    }
}

impl Shared {
    fn new(mode: Mode) -> Arc<Shared> {
        Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            mode,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs under this lock (callbacks are delivered and
        // dropped after it is released), so a poisoned state is consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One reaping pass, under the lock: the lock is held across the
    /// `waitpid` calls (all non-blocking) so that a registration on another
    /// thread sees either the child's callback still waiting or its exit
    /// recorded, never a child reaped and not yet recorded.
    fn reap(&self, state: &mut State) -> Batch {
        let mut batch = Batch {
            threadsafe: state.attached.as_ref().map(|a| a.threadsafe.clone()),
            exited: Vec::new(),
            error: None,
        };
        match self.mode {
            Mode::Safe => {
                let pids: Vec<u32> = state.callbacks.keys().copied().collect();
                for pid in pids {
                    match reap_one(pid) {
                        Ok(Waited::Running) => {}
                        Ok(Waited::Exited(returncode)) => {
                            if let Some(callback) = state.callbacks.remove(&pid) {
                                batch.exited.push(Exited {
                                    pid,
                                    returncode,
                                    callback,
                                });
                            }
                        }
                        Err(errno) => batch.error = Some(errno),
                    }
                }
            }
            Mode::Fast => loop {
                // Signals coalesce: one SIGCHLD may stand for many exits.
                match rustix::process::wait(WaitOptions::NOHANG) {
                    Ok(None) | Err(Errno::CHILD) => break,
                    Err(Errno::INTR) => continue,
                    Err(errno) => {
                        batch.error = Some(errno);
                        break;
                    }
                    Ok(Some((raw, status))) => {
                        let pid = raw.as_raw_nonzero().get().unsigned_abs();
                        let returncode = wait::returncode(status);
                        if let Some(callback) = state.callbacks.remove(&pid) {
                            log::debug!("process {pid} exited with returncode {returncode}");
                            batch.exited.push(Exited {
                                pid,
                                returncode,
                                callback,
                            });
                        } else {
                            // It may not be registered yet.
                            log::debug!("unknown process {pid} exited with returncode {returncode}");
                            if let Some((old, code)) = state.zombies.insert(pid, returncode) {
                                log::warn!("Caught subprocess termination from unknown pid: {old} -> {code}");
                            }
                        }
                    }
                }
            },
        }
        batch
    }

    /// The SIGCHLD handler, on the attached loop's thread.
    fn on_sigchld(&self, generation: u64) {
        let batch = {
            let mut state = self.lock();
            if state.attached.as_ref().map(|a| a.generation) != Some(generation) {
                // A handler left from an attachment that has ended.
                return;
            }
            self.reap(&mut state)
        };
        if let Some(errno) = batch.deliver() {
            let context = ExceptionContext::new("Unknown exception in SIGCHLD handler")
                .with_exception(io::Error::from(errno).to_string());
            match aio_events::try_get_running_loop() {
                Some(event_loop) => event_loop.call_exception_handler(context),
                None => aio_events::default_exception_handler(&context),
            }
        }
    }

    fn attach(self: &Arc<Shared>, event_loop: Option<&EventLoop>) {
        let previous = {
            let mut state = self.lock();
            let previous = state.attached.take();
            if previous.is_some() && event_loop.is_none() && !state.callbacks.is_empty() {
                log::warn!("A loop is being detached from a child watcher with pending handlers");
            }
            previous
        };
        if let Some(previous) = previous {
            self.release(previous);
        }
        let Some(event_loop) = event_loop else {
            return;
        };

        let generation = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(self);
        if let Err(err) = event_loop.add_signal_handler(SIGCHLD, move || shared.on_sigchld(generation)) {
            log::error!(
                "cannot attach the child watcher to {event_loop:?}: add_signal_handler(SIGCHLD) failed: {err}"
            );
            return;
        }
        let replaced = ATTACHED_LOOPS.with(|loops| {
            loops
                .borrow_mut()
                .insert(self.id, (generation, event_loop.clone()))
        });
        drop(replaced);
        let batch = {
            let mut state = self.lock();
            state.attached = Some(Attached {
                threadsafe: event_loop.threadsafe(),
                thread: thread::current().id(),
                generation,
            });
            // Children may have exited while no loop listened.
            self.reap(&mut state)
        };
        if let Some(errno) = batch.deliver() {
            log::error!(
                "reaping children while attaching the child watcher failed: {}",
                io::Error::from(errno)
            );
        }
    }

    /// Gives `previous`'s loop its SIGCHLD disposition back.
    fn release(&self, previous: Attached) {
        let (id, generation) = (self.id, previous.generation);
        if previous.thread == thread::current().id() {
            release_on_this_thread(id, generation);
        } else if previous
            .threadsafe
            .call_soon_threadsafe(move || release_on_this_thread(id, generation))
            .is_err()
        {
            // Closed: the loop has dropped its handlers already. Its entry
            // in that thread's map goes when the thread ends.
        }
    }

    fn is_active(&self) -> bool {
        let state = self.lock();
        match &state.attached {
            None => false,
            Some(attached) if attached.thread == thread::current().id() => {
                attached_loop_is_open(self.id, attached.generation)
            }
            // Another thread's loop cannot be asked from here.
            Some(_) => true,
        }
    }

    fn add_child_handler(&self, pid: u32, callback: ChildCallback) -> Result<(), Error> {
        let raw = wait::checked_pid(pid)?;
        let mut state = self.lock();
        if state.attached.is_none() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "Cannot add child handler for pid {pid}, the child watcher does not have a loop \
                     attached (attach_loop, or set_event_loop in the main thread)"
                ),
            ));
        }
        let threadsafe = state.attached.as_ref().map(|a| a.threadsafe.clone());
        match self.mode {
            Mode::Safe => {
                let replaced = state.callbacks.insert(pid, callback);
                // The child may have exited already: its SIGCHLD came before
                // there was anything to wait for.
                let result = reap_one(pid);
                let exited = match result {
                    Ok(Waited::Exited(returncode)) => state.callbacks.remove(&pid).map(|callback| Exited {
                        pid,
                        returncode,
                        callback,
                    }),
                    _ => None,
                };
                drop(state);
                drop(replaced);
                let batch = Batch {
                    threadsafe,
                    exited: exited.into_iter().collect(),
                    error: None,
                };
                batch.deliver();
                match result {
                    Err(errno) => Err(wait::os_error(
                        errno,
                        format!("cannot check child process {pid}: waitpid failed"),
                    )),
                    Ok(_) => Ok(()),
                }
            }
            Mode::Fast => {
                let Some(recorded) = state.zombies.take(pid) else {
                    // Running, or its exit is still on its way as SIGCHLD.
                    let replaced = state.callbacks.insert(pid, callback);
                    drop(state);
                    drop(replaced);
                    return Ok(());
                };
                // Reaped before registration, unless the record is of an
                // earlier process of the same number: then a child with
                // this pid is alive (or just exited) now.
                let returncode = match rustix::process::waitpid(Some(raw), WaitOptions::NOHANG) {
                    Ok(None) => {
                        log::debug!(
                            "dropping a stale exit record of pid {pid}: a child of that pid is running"
                        );
                        let replaced = state.callbacks.insert(pid, callback);
                        drop(state);
                        drop(replaced);
                        return Ok(());
                    }
                    Ok(Some((_, status))) => wait::returncode(status),
                    Err(_) => recorded,
                };
                let removed = state.callbacks.remove(&pid);
                drop(state);
                drop(removed);
                let batch = Batch {
                    threadsafe,
                    exited: vec![Exited {
                        pid,
                        returncode,
                        callback,
                    }],
                    error: None,
                };
                batch.deliver();
                Ok(())
            }
        }
    }

    fn remove_child_handler(&self, pid: u32) -> bool {
        let removed = self.lock().callbacks.remove(&pid);
        removed.is_some()
    }

    fn close(self: &Arc<Shared>) {
        let (callbacks, zombies) = {
            let mut state = self.lock();
            let zombies = state.zombies.len();
            state.zombies.clear();
            (std::mem::take(&mut state.callbacks), zombies)
        };
        if zombies > 0 {
            log::debug!("closing a child watcher that kept the exits of {zombies} unknown pids");
        }
        drop(callbacks);
        self.attach(None);
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
        let state = self.lock();
        f.debug_struct(name)
            .field("attached", &state.attached.is_some())
            .field("children", &state.callbacks.len())
            .field("zombies", &state.zombies.len())
            .finish()
    }
}

/// `waitpid(pid, WNOHANG)` for a registered pid (Safe).
fn reap_one(pid: u32) -> Result<Waited, Errno> {
    match wait::checked_pid(pid) {
        Ok(raw) => wait::wait_nohang(pid, raw),
        // Registered pids were checked already.
        Err(_) => Ok(Waited::Running),
    }
}

/// Reaps children on SIGCHLD with a non-blocking `waitpid` for each
/// registered pid, and nothing else (asyncio's `SafeChildWatcher`).
///
/// [`attach_loop`](ChildWatcher::attach_loop) makes the loop's SIGCHLD
/// handler ([`EventLoop::add_signal_handler`]) reap this watcher's children;
/// callbacks are queued on that loop. `attach_loop(None)` and
/// [`close`](ChildWatcher::close) remove the handler again (restoring the
/// default disposition). The default policy attaches its watcher to every
/// loop set with `set_event_loop` in the main thread.
///
/// # Trade-offs
///
/// - **Never takes other code's children**: it waits only for the pids
///   registered with it, so `std::process::Child::wait` and other watchers
///   keep working.
/// - **O(n) per SIGCHLD**: every registered child is polled on every
///   SIGCHLD, which gets dear with many children at once.
/// - **Owns SIGCHLD**: it replaces any SIGCHLD handler of the process while
///   attached, and there should be one attached SIGCHLD watcher per process.
/// - **Needs an attached loop**: [`is_active`](ChildWatcher::is_active) is
///   `true` only while attached to a loop (that is not closed, as far as the
///   calling thread can tell), and `add_child_handler` is refused otherwise.
///   Callbacks run on the attached loop, whichever loop registered the
///   child; if it does not run, nothing is reported.
/// - **Children exited while detached** are caught when a loop is attached
///   again; a child someone else reaped is reported as 255, with a warning.
///
/// A child that exited before its registration is caught by the check
/// `add_child_handler` makes. Adding a pid again replaces its callback;
/// [`remove_child_handler`](ChildWatcher::remove_child_handler) drops it,
/// and the child is then left for others to wait for.
pub struct SafeChildWatcher {
    shared: Arc<Shared>,
}

impl SafeChildWatcher {
    /// A detached watcher; attach it to a loop to make it active.
    pub fn new() -> Self {
        SafeChildWatcher {
            shared: Shared::new(Mode::Safe),
        }
    }
}

/// Reaps every child on SIGCHLD with `waitpid(-1, WNOHANG)` (asyncio's
/// `FastChildWatcher`).
///
/// **It steals other code's children.** Every child of the process that
/// exits is reaped here, whether or not it was registered: a
/// `std::process::Child::wait` elsewhere in the program gets `ECHILD`
/// (an error) instead of its status, and another watcher never sees its
/// child exit. Use it only in a program whose every child goes through
/// this watcher.
///
/// # Trade-offs
///
/// - **O(1) per exit**, whatever the number of children, unlike
///   [`SafeChildWatcher`].
/// - **Steals** (above). And the reverse: a registered child that somebody
///   else reaps is never reported, because no exit is left to see.
/// - **Keeps unknown exits**: a child reaped before it was registered (a
///   short-lived child can exit between spawn and `add_child_handler`) has
///   its return code kept, pid → returncode, and delivered when it is
///   registered. At most 4096 are kept; beyond that the oldest is dropped
///   with asyncio's warning "Caught subprocess termination from unknown
///   pid". A record whose pid now belongs to a new, running child is
///   recognised and dropped.
/// - **Owns SIGCHLD and needs an attached loop**, as [`SafeChildWatcher`]:
///   [`is_active`](ChildWatcher::is_active) only while attached, callbacks
///   on the attached loop, `add_child_handler` refused when detached.
pub struct FastChildWatcher {
    shared: Arc<Shared>,
}

impl FastChildWatcher {
    /// A detached watcher; attach it to a loop to make it active.
    pub fn new() -> Self {
        FastChildWatcher {
            shared: Shared::new(Mode::Fast),
        }
    }
}

macro_rules! sigchld_watcher {
    ($name:ident) => {
        impl ChildWatcher for $name {
            fn add_child_handler(
                &self,
                pid: u32,
                callback: Box<dyn FnOnce(u32, i32) + Send>,
            ) -> Result<(), Error> {
                self.shared.add_child_handler(pid, callback)
            }

            fn remove_child_handler(&self, pid: u32) -> bool {
                self.shared.remove_child_handler(pid)
            }

            fn attach_loop(&self, event_loop: Option<&EventLoop>) {
                self.shared.attach(event_loop);
            }

            fn is_active(&self) -> bool {
                self.shared.is_active()
            }

            fn close(&self) {
                self.shared.close();
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::new()
            }
        }

        /// Dropping the watcher closes it: nothing could register with it
        /// any more, and the loop's SIGCHLD handler would otherwise keep it
        /// alive.
        impl Drop for $name {
            fn drop(&mut self) {
                self.shared.close();
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.shared.describe(f, stringify!($name))
            }
        }
    };
}

sigchld_watcher!(SafeChildWatcher);
sigchld_watcher!(FastChildWatcher);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zombies_keep_the_newest_and_drop_the_oldest() {
        let mut zombies = Zombies::default();
        for pid in 1..=MAX_ZOMBIES as u32 {
            assert_eq!(zombies.insert(pid, 7), None);
        }
        assert_eq!(zombies.insert(100_000, 9), Some((1, 7)));
        assert_eq!(zombies.take(2), Some(7));
        assert_eq!(zombies.insert(100_001, 3), None, "a slot was freed by take");
        assert_eq!(
            zombies.insert(100_002, 3),
            Some((3, 7)),
            "pid 2 is skipped: already taken"
        );
        assert_eq!(zombies.take(100_000), Some(9));
        assert_eq!(zombies.len(), MAX_ZOMBIES - 1);
    }

    #[test]
    fn zombie_order_stays_bounded() {
        let mut zombies = Zombies::default();
        for round in 0..10 * MAX_ZOMBIES as u32 {
            zombies.insert(round, 0);
            zombies.take(round);
        }
        assert_eq!(zombies.len(), 0);
        assert!(zombies.order.len() <= 2 * MAX_ZOMBIES + 1);
    }

    #[test]
    fn a_pid_recorded_twice_keeps_the_newer_code() {
        let mut zombies = Zombies::default();
        zombies.insert(5, 1);
        zombies.insert(5, 2);
        assert_eq!(zombies.take(5), Some(2));
        assert_eq!(zombies.take(5), None);
    }
}
