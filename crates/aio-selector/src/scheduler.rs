//! The ready queue and its thread-safe twin: where callbacks, task steps and
//! cross-thread requests wait for the next iteration, and how a sleeping
//! loop is woken.
//!
//! A file of its own because this is the part of the loop that other threads
//! touch, so it carries the loop's only atomics and its one `unsafe` rule:
//! the local ready queue lives in the shared (`Arc`) part so that a task's
//! waker can reach it without a thread-local lookup, but it is touched only on
//! the loop's own thread, which every access checks or is guaranteed by the
//! `!Send` loop.
//!
//! Wake-ups are coalesced: a remote caller writes the wake-up channel only
//! if the loop is blocked in its poll and no other caller has woken it since
//! (`sleeping` is swapped to `false` by the first one).

use std::cell::{Cell, UnsafeCell};
use std::collections::VecDeque;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aio_events::{Error, Handle, Scheduler, TaskRef, ThreadsafeScheduler};
use crossbeam_utils::{Backoff, CachePadded};

use crate::io::IoCallback;
use crate::selector::Selector;

/// One entry of the ready queue.
pub(crate) enum Ready {
    Callback(Handle),
    /// A step of the task under this key of the loop's task set.
    LocalTask(usize),
    /// A step of a task woken from another thread.
    Task(TaskRef),
    Io(Rc<IoCallback>),
    Remote(Box<dyn FnOnce() + Send>),
    /// A `sleep`'s timer fired.
    Wake(std::task::Waker),
    /// The wakers of consecutive `sleep` timers that fired in one pass, in
    /// order (the loop's oldest wake batch).
    Wakes,
    /// A signal handler rang (`SignalWake`): run the loop's signal hook.
    Signals,
    /// What other threads queued by one drain, in order (`take_batch`).
    Batch,
    Stop,
}

/// What other threads can queue: 16 bytes, so that a burst of posted
/// callbacks copies and touches a third less memory than with a variant per
/// kind (24).
pub(crate) enum Remote {
    Callback(Box<dyn FnOnce() + Send>),
    /// A step of a task woken from another thread, or (`None`) a stop
    /// request: one variant for both leaves the callback's vtable pointer a
    /// niche to tell the two variants apart.
    TaskOrStop(Option<TaskRef>),
}

const _: () = assert!(std::mem::size_of::<Remote>() == 2 * std::mem::size_of::<usize>());

impl Remote {
    /// The ready-queue entry it stands for.
    pub(crate) fn into_ready(self) -> Ready {
        match self {
            Remote::Callback(callback) => Ready::Remote(callback),
            Remote::TaskOrStop(Some(task)) => Ready::Task(task),
            Remote::TaskOrStop(None) => Ready::Stop,
        }
    }
}

thread_local! {
    static THREAD_TOKEN: u8 = const { 0 };
}

/// A cheap identity of the calling thread: the address of a thread-local.
pub(crate) fn thread_token() -> usize {
    THREAD_TOKEN.with(|token| std::ptr::from_ref(token) as usize)
}

/// Polls of the cross-thread flag before a fed loop blocks (each a
/// `pause`: 64 take about 0.6 µs on this project's test machine).
const REMOTE_SPINS: usize = 64;

/// A fed loop gives its CPU away once before it blocks only when it would
/// block at least this long: a thread that then runs on that CPU for its
/// time slice cannot make a nearer timer late.
const YIELD_BEFORE_BLOCKING_MIN: Duration = Duration::from_millis(5);

/// Ready-queue capacity never given back (entries of 32 bytes: 32 KiB).
const KEPT_READY_CAPACITY: usize = 1024;

/// Capacity the cross-thread vectors keep past an idle moment (entries of
/// 16 bytes: 16 KiB).
const KEPT_REMOTE_CAPACITY: usize = 1024;

pub(crate) struct Shared {
    owner: usize,
    ready: UnsafeCell<VecDeque<Ready>>,
    /// What other threads queued, behind `remote_locked`: a spin lock, since
    /// it is held for one `push` or one swap (std's `Mutex` costs a second
    /// atomic read-modify-write to unlock, and poison bookkeeping).
    remote: UnsafeCell<Vec<Remote>>,
    remote_locked: CachePadded<AtomicBool>,
    /// The vector swapped in for `remote` at the next drain (owner thread
    /// only, like `ready`).
    spare: UnsafeCell<Vec<Remote>>,
    /// The capacity `remote` had when the last drain swapped it in, or 0
    /// once `trim_remote` freed it (posters grow it only with entries, which
    /// a drain takes before the loop idles): whether `trim_remote` has a
    /// large vector under the lock to free. Owner thread only.
    remote_capacity: Cell<usize>,
    /// The drained batches that `Ready::Batch` entries stand for, oldest
    /// first (owner thread only).
    batches: UnsafeCell<VecDeque<Vec<Remote>>>,
    remote_pending: CachePadded<AtomicBool>,
    /// Set by a signal handler through `SignalWake`, beside `remote_pending`.
    signal_pending: AtomicBool,
    sleeping: CachePadded<AtomicBool>,
    /// Whether the last drain found entries: another thread is feeding the
    /// loop, so a short spin before sleeping may spare it a wake-up (owner
    /// thread only).
    fed: Cell<bool>,
    closed: AtomicBool,
    /// Strong references to this `Shared` that ended tasks gave back, for new
    /// tasks to take (`task_scheduler`, `reclaim_task_ref`): a task then
    /// costs no atomic operation on the `Arc`'s count. Owner thread only;
    /// returned to the count when the loop drops (`close_ref_pool`).
    spare_refs: Cell<usize>,
    /// Whether the loop still takes references back.
    ref_pool_open: Cell<bool>,
    pub(crate) selector: Selector,
}

// SAFETY: `remote` is reached only through `lock_remote`'s guard, under
// the spin lock (acquire on lock, release on unlock), and holds `Send`
// entries only. `ready`, `spare`, `batches`, `spare_refs` and
// `ref_pool_open` are the other fields that are not `Sync`; they are accessed
// only on the owner thread (through `ready_mut`, `spare_mut` and
// `batches_mut`; checked with `thread_token` in
// `schedule` and `reclaim_task_ref`, guaranteed by the `!Send` loop
// elsewhere). `spare` holds `Send` entries only, and none between drains.
// The entries it may hold that are not `Send` (`Handle`, `Rc<IoCallback>`)
// are pushed and dropped on the owner thread; `Drop` below forgets them
// rather than dropping them on a foreign thread.
unsafe impl Sync for Shared {}
// SAFETY: as for `Sync`.
unsafe impl Send for Shared {}

impl Shared {
    pub(crate) fn new(selector: Selector) -> Shared {
        Shared {
            owner: thread_token(),
            ready: UnsafeCell::new(VecDeque::with_capacity(64)),
            remote: UnsafeCell::new(Vec::new()),
            remote_locked: CachePadded::new(AtomicBool::new(false)),
            spare: UnsafeCell::new(Vec::new()),
            remote_capacity: Cell::new(0),
            batches: UnsafeCell::new(VecDeque::new()),
            remote_pending: CachePadded::new(AtomicBool::new(false)),
            signal_pending: AtomicBool::new(false),
            sleeping: CachePadded::new(AtomicBool::new(false)),
            fed: Cell::new(false),
            closed: AtomicBool::new(false),
            spare_refs: Cell::new(0),
            ref_pool_open: Cell::new(true),
            selector,
        }
    }

    /// # Safety
    /// Owner thread only, and the returned borrow must end before any user
    /// code runs (which could reach the queue again).
    #[allow(
        clippy::mut_from_ref,
        reason = "the UnsafeCell is confined to the owner thread"
    )]
    pub(crate) unsafe fn ready_mut(&self) -> &mut VecDeque<Ready> {
        debug_assert_eq!(thread_token(), self.owner, "ready queue touched off its thread");
        // SAFETY: per this function's contract.
        unsafe { &mut *self.ready.get() }
    }

    /// Appends to the ready queue, after anything other threads queued
    /// before (so FIFO holds across threads). Owner thread only.
    /// # Safety
    /// As for [`ready_mut`](Self::ready_mut).
    #[allow(
        clippy::mut_from_ref,
        reason = "the UnsafeCell is confined to the owner thread"
    )]
    unsafe fn spare_mut(&self) -> &mut Vec<Remote> {
        debug_assert_eq!(thread_token(), self.owner, "spare queue touched off its thread");
        // SAFETY: per this function's contract.
        unsafe { &mut *self.spare.get() }
    }

    pub(crate) fn push_local(&self, entry: Ready) {
        if self.remote_pending.load(Ordering::Acquire) {
            self.drain_remote();
        }
        // SAFETY: owner thread (callers are the `!Send` loop, or `schedule`
        // after its thread check); the borrow ends here.
        unsafe { self.ready_mut() }.push_back(entry);
    }

    pub(crate) fn pop_local(&self) -> Option<Ready> {
        // SAFETY: owner thread (called by the loop); the borrow ends here.
        unsafe { self.ready_mut() }.pop_front()
    }

    /// Gives back most of the ready queue's memory once a burst has passed:
    /// a queue that once held 100,000 entries would otherwise keep 3 MiB for
    /// good. When less than an eighth is used, the capacity drops to twice
    /// the entries left (at least `KEPT_READY_CAPACITY`): one reallocation
    /// copying those few entries, which the iteration that filled the queue
    /// has paid for many times over.
    pub(crate) fn trim_ready(&self) {
        // SAFETY: owner thread (called by the loop); the borrow ends here.
        let ready = unsafe { self.ready_mut() };
        let capacity = ready.capacity();
        if capacity > KEPT_READY_CAPACITY && ready.len() < capacity / 8 {
            ready.shrink_to(KEPT_READY_CAPACITY.max(ready.len() * 2));
        }
    }

    pub(crate) fn ready_len(&self) -> usize {
        // SAFETY: owner thread (called by the loop); the borrow ends here.
        unsafe { self.ready_mut() }.len()
    }

    /// Drops every queued entry. Owner thread only.
    pub(crate) fn clear_local(&self) {
        let entries = {
            // SAFETY: owner thread (called by the loop); the borrow ends
            // before the entries drop, which may run user destructors.
            let queue = unsafe { self.ready_mut() };
            std::mem::take(queue)
        };
        drop(entries);
        // SAFETY: owner thread; the borrow ends before the batches drop.
        drop(std::mem::take(unsafe { self.batches_mut() }));
        drop(std::mem::take(&mut *self.lock_remote()));
        self.remote_pending.store(false, Ordering::Release);
    }

    fn lock_remote(&self) -> RemoteGuard<'_> {
        let backoff = Backoff::new();
        while self
            .remote_locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            backoff.snooze();
        }
        RemoteGuard { shared: self }
    }

    pub(crate) fn remote_pending(&self) -> bool {
        self.remote_pending.load(Ordering::Acquire)
    }

    /// Moves what other threads queued into the ready queue, as one
    /// `Ready::Batch` entry standing for all of them in their order (one
    /// queue entry per drain rather than one per callback). Owner thread.
    pub(crate) fn drain_remote(&self) {
        // SAFETY: owner thread; no user code runs while the borrow lives.
        let mut batch = std::mem::take(unsafe { self.spare_mut() });
        self.remote_capacity.set(batch.capacity());
        {
            let mut remote = self.lock_remote();
            self.remote_pending.store(false, Ordering::Release);
            std::mem::swap(&mut *remote, &mut batch);
        }
        // SAFETY: owner thread; no user code runs while the borrow lives.
        let ready = unsafe { self.ready_mut() };
        self.fed.set(!batch.is_empty());
        if batch.is_empty() {
            // SAFETY: as above.
            *unsafe { self.spare_mut() } = batch;
        } else {
            // SAFETY: as above.
            unsafe { self.batches_mut() }.push_back(batch);
            ready.push_back(Ready::Batch);
        }
        if self.signal_pending.load(Ordering::Relaxed) && self.signal_pending.swap(false, Ordering::Acquire) {
            ready.push_back(Ready::Signals);
        }
    }

    /// The entries of the oldest `Ready::Batch`, for the loop to run.
    /// Owner thread.
    pub(crate) fn take_batch(&self) -> Vec<Remote> {
        // SAFETY: owner thread; the borrow ends here.
        unsafe { self.batches_mut() }.pop_front().unwrap_or_default()
    }

    /// Gives an emptied batch back: its capacity serves the next drain, so
    /// posting threads push without growing a vector again. Owner thread.
    pub(crate) fn recycle_batch(&self, batch: Vec<Remote>) {
        debug_assert!(batch.is_empty());
        // SAFETY: owner thread; the borrow ends here.
        let spare = unsafe { self.spare_mut() };
        if spare.capacity() < batch.capacity() {
            *spare = batch;
        }
    }

    /// Gives back what a burst grew: the spare keeps room for
    /// `KEPT_REMOTE_CAPACITY` entries, and an empty posters' vector larger
    /// than that is freed (the spare is swapped in for it at the next
    /// drain). A burst of posts grows the vector posters push to, and the
    /// drained batch is kept as the spare to swap in next, so that a steady
    /// stream of posts never grows a vector again; without this a burst of a
    /// million callbacks would keep 16 MB twice over for the loop's life. The
    /// loop calls it as it is about to block, idle: a busy loop keeps its
    /// vectors. Owner thread.
    pub(crate) fn trim_remote(&self) {
        // SAFETY: owner thread; the borrow ends here, and no user code runs.
        let spare = unsafe { self.spare_mut() };
        if spare.capacity() > KEPT_REMOTE_CAPACITY {
            // Empty between drains: this is one reallocation, no copy.
            spare.shrink_to(KEPT_REMOTE_CAPACITY);
        }
        if self.remote_capacity.get() > KEPT_REMOTE_CAPACITY {
            // Entries mean a poster is busy: they are drained before the
            // loop blocks, and the vector is trimmed at a later idle moment.
            // Taken out under the lock and freed after it, so posters never
            // wait on the allocator.
            let taken = {
                let mut remote = self.lock_remote();
                remote.is_empty().then(|| std::mem::take(&mut *remote))
            };
            if let Some(large) = taken {
                self.remote_capacity.set(0);
                drop(large);
            }
        }
    }

    /// # Safety
    /// As for [`ready_mut`](Self::ready_mut).
    #[allow(
        clippy::mut_from_ref,
        reason = "the UnsafeCell is confined to the owner thread"
    )]
    unsafe fn batches_mut(&self) -> &mut VecDeque<Vec<Remote>> {
        debug_assert_eq!(thread_token(), self.owner, "batches touched off their thread");
        // SAFETY: per this function's contract.
        unsafe { &mut *self.batches.get() }
    }

    /// A signal handler's wake-up (see `SignalWake`): only atomics and the
    /// selector's `notify`, so async-signal-safe on Linux and Android.
    pub(crate) fn signal(&self) {
        self.signal_pending.store(true, Ordering::Release);
        self.remote_pending.store(true, Ordering::SeqCst);
        self.wake_if_sleeping();
    }

    fn push_remote(&self, entry: Remote) {
        let announced = {
            let mut remote = self.lock_remote();
            remote.push(entry);
            // Read under the lock: the loop clears the flag under it too
            // (`drain_remote`), so a set flag means the loop has not taken
            // the queue since and will see this entry before it sleeps.
            self.remote_pending.load(Ordering::Relaxed)
        };
        if !announced {
            self.remote_pending.store(true, Ordering::SeqCst);
            self.wake_if_sleeping();
        }
    }

    /// Writes the wake-up channel if the loop sleeps in its poll and nobody
    /// has woken it yet.
    pub(crate) fn wake_if_sleeping(&self) {
        if self.sleeping.load(Ordering::SeqCst) && self.sleeping.swap(false, Ordering::SeqCst) {
            self.selector.notify();
        }
    }

    /// Before the loop blocks (for `timeout`, `None` for good): when the
    /// last drain found entries, watches for more for a moment (about
    /// 0.6 µs here) and says whether some came. A thread posting callbacks
    /// one after another on another CPU then keeps the loop awake instead
    /// of paying a wake-up (a system call on each side) every time the loop
    /// catches up with it.
    ///
    /// When none came and the loop would block for long
    /// ([`YIELD_BEFORE_BLOCKING_MIN`] or more), it also gives its CPU away
    /// once (`sched_yield`) and looks again. A poster that shares the
    /// loop's CPU cannot post while the loop spins; without the yield the
    /// loop blocks, the poster's next callback wakes it, the kernel hands
    /// the CPU straight back to the woken loop, and the two trade the CPU
    /// once per callback (two context switches and two system calls each,
    /// ~2 µs, seen for runs of thousands of callbacks). After a yield the
    /// poster runs out its time slice and the loop takes the whole batch.
    /// The price: other threads ready on this CPU run first, so a callback
    /// posted or a socket turning ready meanwhile may wait up to their time
    /// slice (a blocked loop would have been woken ahead of them). Owner
    /// thread.
    pub(crate) fn spin_for_remote(&self, timeout: Option<Duration>) -> bool {
        if !self.fed.replace(false) {
            return false;
        }
        for _ in 0..REMOTE_SPINS {
            if self.remote_pending.load(Ordering::Acquire) {
                return true;
            }
            std::hint::spin_loop();
        }
        if timeout.is_none_or(|timeout| timeout >= YIELD_BEFORE_BLOCKING_MIN) {
            std::thread::yield_now();
            return self.remote_pending.load(Ordering::Acquire);
        }
        false
    }

    /// Declares the loop about to block; returns `false` (and stays awake)
    /// when remote work arrived meanwhile.
    pub(crate) fn enter_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        if self.remote_pending.load(Ordering::SeqCst) {
            self.sleeping.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Declares the loop awake again. A plain store: a caller that still
    /// sees the loop asleep only writes the wake-up channel once more, and
    /// the next wait reads that wake-up and returns at once.
    pub(crate) fn leave_sleep(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// The scheduler a new task holds: a spare reference when there is one,
    /// else a new one. Owner thread only (the `!Send` loop calls it).
    pub(crate) fn task_scheduler(this: &Arc<Shared>) -> Arc<dyn Scheduler> {
        debug_assert_eq!(thread_token(), this.owner, "a task made off its loop's thread");
        let spare = this.spare_refs.get();
        if spare == 0 || !this.ref_pool_open.get() {
            return this.clone();
        }
        this.spare_refs.set(spare - 1);
        // SAFETY: the pool holds `spare` strong references that tasks gave
        // back (`reclaim_task_ref` forgot their `Arc`s): this one now
        // belongs to the new task.
        let spare: Arc<Shared> = unsafe { Arc::from_raw(Arc::as_ptr(this)) };
        spare
    }

    /// Gives the pool's references back to the count; later tasks drop
    /// theirs as plain `Arc`s. The loop calls it as it drops, while its own
    /// `Arc` keeps the count above zero.
    pub(crate) fn close_ref_pool(this: &Arc<Shared>) {
        this.ref_pool_open.set(false);
        for _ in 0..this.spare_refs.replace(0) {
            // SAFETY: each spare is a strong reference the pool owns; the
            // caller's `Arc` outlives this call, so none of these is last.
            unsafe { Arc::decrement_strong_count(Arc::as_ptr(this)) };
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// The remote queue, locked; unlocks on drop (also when a `push` panics,
/// which it does only when out of memory).
struct RemoteGuard<'a> {
    shared: &'a Shared,
}

impl Deref for RemoteGuard<'_> {
    type Target = Vec<Remote>;

    fn deref(&self) -> &Vec<Remote> {
        // SAFETY: the lock is held, so no other reference to the queue lives.
        unsafe { &*self.shared.remote.get() }
    }
}

impl DerefMut for RemoteGuard<'_> {
    fn deref_mut(&mut self) -> &mut Vec<Remote> {
        // SAFETY: as in `deref`.
        unsafe { &mut *self.shared.remote.get() }
    }
}

impl Drop for RemoteGuard<'_> {
    fn drop(&mut self) {
        self.shared.remote_locked.store(false, Ordering::Release);
    }
}

impl Scheduler for Shared {
    fn is_local(&self) -> bool {
        thread_token() == self.owner
    }

    fn schedule_local(&self, key: usize) {
        if !self.is_closed() {
            self.push_local(Ready::LocalTask(key));
        }
    }

    fn schedule_remote(&self, task: TaskRef) {
        if !self.is_closed() {
            self.push_remote(Remote::TaskOrStop(Some(task)));
        }
    }

    fn reclaim_task_ref(&self) -> bool {
        // Only the owner thread touches the pool; a task ending elsewhere
        // drops its `Arc` as usual.
        if thread_token() != self.owner || !self.ref_pool_open.get() {
            return false;
        }
        self.spare_refs.set(self.spare_refs.get() + 1);
        true
    }
}

impl ThreadsafeScheduler for Shared {
    fn call_soon_threadsafe(&self, callback: Box<dyn FnOnce() + Send>) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::closed());
        }
        if thread_token() == self.owner {
            self.push_local(Ready::Remote(callback));
        } else {
            self.push_remote(Remote::Callback(callback));
        }
        Ok(())
    }

    fn stop(&self) {
        if self.is_closed() {
            return;
        }
        if thread_token() == self.owner {
            self.push_local(Ready::Stop);
        } else {
            self.push_remote(Remote::TaskOrStop(None));
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let queue = std::mem::take(self.ready.get_mut());
        if thread_token() == self.owner {
            drop(queue);
        } else {
            // Entries that are not `Send` must not drop here; the loop clears
            // the queue when it closes or drops, so this is only a guard.
            std::mem::forget(queue);
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("closed", &self.is_closed())
            .field("remote_pending", &self.remote_pending())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aio_events::Scheduler;

    use super::{KEPT_READY_CAPACITY, KEPT_REMOTE_CAPACITY, Ready, Remote, Shared};
    use crate::selector::Selector;

    /// Gives `scheduler` back as a task ending on this thread would.
    fn end_task(scheduler: Arc<dyn Scheduler>) {
        if scheduler.reclaim_task_ref() {
            std::mem::forget(scheduler);
        }
    }

    #[test]
    fn callbacks_from_other_threads_all_arrive_in_each_threads_order() {
        use std::sync::Mutex;

        use aio_events::ThreadsafeScheduler;

        let per_thread = if cfg!(miri) { 40 } else { 20_000 };
        let shared = Arc::new(Shared::new(Selector::new().expect("a selector")));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let posters: Vec<_> = (0..2)
            .map(|thread| {
                let (shared, seen) = (shared.clone(), seen.clone());
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        let seen = seen.clone();
                        shared
                            .call_soon_threadsafe(Box::new(move || seen.lock().unwrap().push((thread, i))))
                            .expect("the loop is open");
                    }
                })
            })
            .collect();
        let mut ran = 0;
        while ran < 2 * per_thread {
            if shared.remote_pending() {
                shared.drain_remote();
            }
            ran += run_batches(&shared);
            std::thread::yield_now();
        }
        for poster in posters {
            poster.join().expect("the poster ran");
        }
        let seen = seen.lock().unwrap();
        for thread in 0..2 {
            let order: Vec<usize> = seen
                .iter()
                .filter(|(t, _)| *t == thread)
                .map(|&(_, i)| i)
                .collect();
            assert_eq!(
                order,
                (0..per_thread).collect::<Vec<_>>(),
                "thread {thread}'s callbacks"
            );
        }
    }

    #[test]
    fn the_ready_queue_gives_back_its_memory_after_a_burst() {
        let shared = Shared::new(Selector::new().expect("a selector"));
        let burst = if cfg!(miri) { 2_000 } else { 20_000 };
        for key in 0..burst {
            shared.push_local(Ready::LocalTask(key));
        }
        for _ in 0..burst - 100 {
            shared.pop_local();
        }
        shared.trim_ready();
        // SAFETY: this thread made `shared`; the borrow ends here.
        let capacity = unsafe { shared.ready_mut() }.capacity();
        assert!(capacity <= KEPT_READY_CAPACITY, "capacity {capacity}");
        assert_eq!(shared.ready_len(), 100, "no entry lost");
        assert!(
            matches!(shared.pop_local(), Some(Ready::LocalTask(key)) if key == burst - 100),
            "order kept"
        );
    }

    /// Runs every drained batch (callbacks only) and gives it back, as the
    /// loop does; returns how many ran.
    fn run_batches(shared: &Shared) -> usize {
        let mut ran = 0;
        while let Some(entry) = shared.pop_local() {
            let Ready::Batch = entry else {
                panic!("only batches were queued");
            };
            let mut batch = shared.take_batch();
            for remote in batch.drain(..) {
                let Ready::Remote(callback) = remote.into_ready() else {
                    panic!("only callbacks were queued");
                };
                callback();
                ran += 1;
            }
            shared.recycle_batch(batch);
        }
        ran
    }

    #[test]
    fn the_cross_thread_queue_gives_back_its_memory_when_idle_and_loses_nothing() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        let shared = Arc::new(Shared::new(Selector::new().expect("a selector")));
        let burst = if cfg!(miri) { 1_500 } else { 50_000 };
        let ran = Arc::new(AtomicUsize::new(0));
        let post = |count: usize| {
            let (shared, ran) = (shared.clone(), ran.clone());
            std::thread::spawn(move || {
                for _ in 0..count {
                    let ran = ran.clone();
                    shared.push_remote(Remote::Callback(Box::new(move || {
                        ran.fetch_add(1, Ordering::Relaxed);
                    })));
                }
            })
            .join()
            .expect("the poster ran");
        };
        let capacities = |shared: &Shared| {
            // SAFETY: this thread made `shared`; the borrow ends here.
            let spare = unsafe { shared.spare_mut() }.capacity();
            (spare, shared.lock_remote().capacity())
        };

        // A burst, drained and run: the spare is the burst's vector.
        post(burst);
        shared.drain_remote();
        assert_eq!(run_batches(&shared), burst);
        // A second burst lands in a fresh vector; the first is swapped in
        // for posters at the drain, so both are large before the trim.
        post(burst);
        shared.drain_remote();
        assert_eq!(run_batches(&shared), burst);
        let (spare, remote) = capacities(&shared);
        assert!(
            spare >= burst && remote >= burst,
            "spare {spare}, remote {remote}"
        );

        shared.trim_remote();
        let (spare, remote) = capacities(&shared);
        assert!(spare <= KEPT_REMOTE_CAPACITY, "spare {spare}");
        assert!(remote <= KEPT_REMOTE_CAPACITY, "remote {remote}");

        // Entries waiting under the lock are kept by a trim.
        post(3 * KEPT_REMOTE_CAPACITY);
        shared.drain_remote();
        post(2 * KEPT_REMOTE_CAPACITY);
        shared.trim_remote();
        shared.drain_remote();
        assert_eq!(run_batches(&shared), 5 * KEPT_REMOTE_CAPACITY);
        assert_eq!(ran.load(Ordering::Relaxed), 2 * burst + 5 * KEPT_REMOTE_CAPACITY);
        shared.trim_remote();
        let (spare, remote) = capacities(&shared);
        assert!(
            spare <= KEPT_REMOTE_CAPACITY && remote <= KEPT_REMOTE_CAPACITY,
            "spare {spare}, remote {remote}"
        );
    }

    #[test]
    fn task_references_are_reused_on_the_loop_thread_and_returned_when_the_pool_closes() {
        let shared = Arc::new(Shared::new(Selector::new().expect("a selector")));
        let first: Vec<_> = (0..10).map(|_| Shared::task_scheduler(&shared)).collect();
        assert_eq!(Arc::strong_count(&shared), 11);
        first.into_iter().for_each(end_task);
        assert_eq!(Arc::strong_count(&shared), 11, "the pool holds the ten");

        let mut second: Vec<_> = (0..4).map(|_| Shared::task_scheduler(&shared)).collect();
        assert_eq!(
            Arc::strong_count(&shared),
            11,
            "four taken from the pool, none made"
        );

        // A task that ends on another thread drops its reference.
        let elsewhere = second.pop().expect("four");
        std::thread::spawn(move || end_task(elsewhere))
            .join()
            .expect("the thread ran");
        assert_eq!(Arc::strong_count(&shared), 10);

        Shared::close_ref_pool(&shared);
        assert_eq!(Arc::strong_count(&shared), 4, "the loop's and three tasks'");
        // Once closed, the pool takes nothing back.
        second.into_iter().for_each(end_task);
        assert_eq!(Arc::strong_count(&shared), 1);
    }
}
