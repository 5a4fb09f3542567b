//! The timer heap of `call_later`/`call_at`, with asyncio's lazy cancellation.
//!
//! A file of its own because it is a data structure with a rule worth testing
//! against a model: cancelled timers stay in the heap until they reach the
//! head, unless more than 100 timers are scheduled and more than half of them
//! are cancelled, when the heap is rebuilt without them (asyncio's
//! `_MIN_SCHEDULED_TIMER_HANDLES` and `_MIN_CANCELLED_TIMER_HANDLES_FRACTION`).
//! "Heap" names the role (asyncio's `_scheduled`); the entries themselves
//! live in a [`TimerWheel`], which keeps the same order.

use std::cell::Cell;
use std::cmp::Ordering;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::rc::Rc;
use std::task::Waker;
use std::time::Instant;

use aio_events::{Handle, TimerHandle};
use slab::Slab;

use crate::timer_wheel::{MakeRoom, Timed, TimerWheel};

/// Entries (heap and slot table) whose memory `trim` never gives back.
const KEPT_CAPACITY: usize = 1024;

/// Fewer scheduled timers than this are never purged in bulk.
pub const MIN_SCHEDULED_TIMER_HANDLES: usize = 100;

/// What a heap entry fires: a `call_at` callback, or a `sleep`'s waker kept
/// in the heap's own slot table (no allocation per sleep).
enum Callback {
    Handle(Handle),
    Wake(usize),
}

/// The order of an entry: its deadline (signed nanoseconds from the heap's
/// epoch, sign bit flipped so that the unsigned order is the signed one),
/// then its insertion number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    deadline: u64,
    seq: u64,
}

impl Key {
    /// The key as one number, compared without a branch.
    fn wide(self) -> u128 {
        (u128::from(self.deadline) << 64) | u128::from(self.seq)
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.wide().cmp(&other.wide())
    }
}

/// 24 bytes: the key, then the callback packed in one word.
struct Entry {
    key: Key,
    callback: Packed,
}

/// A [`Callback`] in one word: a handle's pointer (aligned to 8, so its low
/// bit is 0), or a slot number shifted left with the low bit set, as a
/// pointer without provenance that is never dereferenced. Owns the handle's
/// reference, like the `Callback` it packs.
struct Packed(NonNull<()>);

impl Packed {
    fn new(callback: Callback) -> Packed {
        match callback {
            Callback::Handle(handle) => {
                let raw = handle.into_raw();
                debug_assert_eq!(raw.as_ptr().addr() & 1, 0, "handles are aligned");
                Packed(raw)
            }
            Callback::Wake(slot) => {
                let tagged = std::ptr::without_provenance_mut::<()>((slot << 1) | 1);
                Packed(NonNull::new(tagged).expect("the tag bit is set"))
            }
        }
    }

    fn is_handle(&self) -> bool {
        self.0.as_ptr().addr() & 1 == 0
    }

    fn slot(&self) -> usize {
        self.0.as_ptr().addr() >> 1
    }

    /// Runs `f` on the callback without taking it out.
    fn with<R>(&self, f: impl FnOnce(&Callback) -> R) -> R {
        if self.is_handle() {
            // SAFETY: the pointer came from `Handle::into_raw` and this
            // entry still owns its reference; `ManuallyDrop` keeps the
            // borrowed handle from giving it up.
            let handle = ManuallyDrop::new(Callback::Handle(unsafe { Handle::from_raw(self.0) }));
            f(&handle)
        } else {
            f(&Callback::Wake(self.slot()))
        }
    }

    fn unpack(self) -> Callback {
        let this = ManuallyDrop::new(self);
        if this.is_handle() {
            // SAFETY: as in `with`; the reference moves to the result, and
            // `ManuallyDrop` keeps `Drop` from releasing it too.
            Callback::Handle(unsafe { Handle::from_raw(this.0) })
        } else {
            Callback::Wake(this.slot())
        }
    }
}

impl Drop for Packed {
    fn drop(&mut self) {
        if self.is_handle() {
            // SAFETY: the pointer came from `Handle::into_raw`; this is the
            // entry's reference, given back once.
            drop(unsafe { Handle::from_raw(self.0) });
        }
    }
}

/// A sleeping waker, in its slot until it fires or is cancelled. The heap
/// entry that names the slot also carries `seq`: a slot emptied (or given to
/// another wake) while that entry waits in the heap no longer matches it.
/// No `Option` inside, so the slab's vacant entries take the waker's niche
/// and a slot is 24 bytes, not 32.
struct WakeSlot {
    seq: u64,
    waker: Waker,
}

/// What [`TimerHeap::pop_due`] hands out.
#[derive(Debug)]
pub enum Due {
    /// A `call_at` callback to run.
    Handle(Handle),
    /// A waker to wake.
    Waker(Waker),
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Timed for Entry {
    fn deadline(&self) -> u64 {
        self.key.deadline
    }

    fn seq(&self) -> u64 {
        self.key.seq
    }
}

impl Ord for Entry {
    // Reversed: `BinaryHeap` is a max-heap and we want the earliest deadline,
    // then the earliest insertion, on top.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

/// Scheduled callbacks ordered by deadline, FIFO among equal deadlines.
pub struct TimerHeap {
    heap: TimerWheel<Entry>,
    /// Deadlines are kept as signed nanoseconds from here.
    epoch: Instant,
    wake_slots: Slab<WakeSlot>,
    seq: u64,
    cancelled: Rc<Cell<usize>>,
}

impl TimerHeap {
    /// An empty heap.
    pub fn new() -> TimerHeap {
        TimerHeap {
            heap: TimerWheel::new(),
            epoch: Instant::now(),
            wake_slots: Slab::new(),
            seq: 0,
            cancelled: Rc::new(Cell::new(0)),
        }
    }

    /// Schedules `handle` at `when`; the returned handle's `cancel` counts
    /// towards this heap's cancelled total.
    pub fn push(&mut self, when: Instant, handle: Handle) -> TimerHandle {
        handle.set_scheduled(true);
        let timer = TimerHandle::new(handle.clone(), when, Some(self.cancelled.clone()));
        self.seq += 1;
        let key = self.key(when, self.seq);
        self.heap.push(Entry {
            key,
            callback: Packed::new(Callback::Handle(handle)),
        });
        timer
    }

    /// Schedules a wake of `waker` at `when`; returns the slot and sequence
    /// number that name it for [`cancel_wake`](TimerHeap::cancel_wake).
    pub fn push_wake(&mut self, when: Instant, waker: Waker) -> (usize, u64) {
        self.push_wake_inner(None, when, waker)
    }

    /// [`push_wake`](TimerHeap::push_wake) for a wake `now` plus a delay:
    /// the present tells the queue where timers start (see the wheel).
    pub fn push_wake_from(&mut self, now: Instant, when: Instant, waker: Waker) -> (usize, u64) {
        self.push_wake_inner(Some(now), when, waker)
    }

    fn push_wake_inner(&mut self, now: Option<Instant>, when: Instant, waker: Waker) -> (usize, u64) {
        self.seq += 1;
        let seq = self.seq;
        self.wake_slots.make_room();
        let slot = self.wake_slots.insert(WakeSlot { seq, waker });
        let key = self.key(when, seq);
        let now = now.map(|now| self.key(now, 0).deadline);
        self.heap.push_from(
            Entry {
                key,
                callback: Packed::new(Callback::Wake(slot)),
            },
            now,
        );
        (slot, seq)
    }

    /// Whether `slot` holds the wake numbered `seq`.
    fn holds(&self, slot: usize, seq: u64) -> bool {
        holds(&self.wake_slots, slot, seq)
    }

    /// Cancels a pending wake (its slot is freed at once; the heap entry
    /// stays until purged); a no-op once it fired or was cancelled.
    pub fn cancel_wake(&mut self, slot: usize, seq: u64) {
        if self.holds(slot, seq) {
            self.wake_slots.remove(slot);
            self.cancelled.set(self.cancelled.get() + 1);
        }
    }

    /// Whether the wake has fired (or was cancelled).
    pub fn wake_done(&self, slot: usize, seq: u64) -> bool {
        !self.holds(slot, seq)
    }

    /// Makes a pending wake wake `waker` instead.
    pub fn rearm_wake(&mut self, slot: usize, seq: u64, waker: &Waker) {
        if let Some(entry) = self.wake_slots.get_mut(slot)
            && entry.seq == seq
            && !entry.waker.will_wake(waker)
        {
            entry.waker = waker.clone();
        }
    }

    /// Forgets an entry leaving the heap without firing.
    fn discard(&mut self, entry: Entry) {
        match entry.callback.unpack() {
            Callback::Handle(handle) => handle.set_scheduled(false),
            Callback::Wake(slot) => {
                // A cancelled wake's slot is gone already, or holds another
                // wake by now.
                if self.holds(slot, entry.key.seq) {
                    self.wake_slots.remove(slot);
                }
            }
        }
    }

    /// Orders by deadline (signed nanoseconds from the epoch, so deadlines
    /// in the past keep their order, as asyncio's negative delays do), then
    /// by insertion.
    fn key(&self, when: Instant, seq: u64) -> Key {
        let nanos: i64 = if when >= self.epoch {
            i64::try_from(when.duration_since(self.epoch).as_nanos()).unwrap_or(i64::MAX)
        } else {
            i64::try_from(self.epoch.duration_since(when).as_nanos()).map_or(i64::MIN, |n| -n)
        };
        // Flipping the sign bit makes the unsigned order the signed one.
        Key {
            deadline: (nanos as u64) ^ (1 << 63),
            seq,
        }
    }

    fn deadline(&self, key: Key) -> Instant {
        let nanos = (key.deadline ^ (1 << 63)) as i64;
        let offset = std::time::Duration::from_nanos(nanos.unsigned_abs());
        if nanos >= 0 {
            self.epoch + offset
        } else {
            self.epoch.checked_sub(offset).unwrap_or(self.epoch)
        }
    }

    /// Entries in the heap, cancelled ones not yet purged included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the heap holds no entry at all.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Cancelled entries still in the heap.
    pub fn cancelled_count(&self) -> usize {
        self.cancelled.get()
    }

    /// asyncio's purge: rebuild without cancelled entries when more than
    /// [`MIN_SCHEDULED_TIMER_HANDLES`] are scheduled and over half are
    /// cancelled; otherwise drop cancelled entries from the head only.
    pub fn purge_cancelled(&mut self) {
        let cancelled = self.cancelled.get();
        if self.heap.len() > MIN_SCHEDULED_TIMER_HANDLES && cancelled * 2 > self.heap.len() {
            let wake_slots = &self.wake_slots;
            self.heap.retain(|entry| {
                if !is_cancelled(wake_slots, entry) {
                    return true;
                }
                // A cancelled handle is told it left the heap; a cancelled
                // wake's slot is free already.
                entry.callback.with(|callback| {
                    if let Callback::Handle(handle) = callback {
                        handle.set_scheduled(false);
                    }
                });
                false
            });
            self.cancelled.set(0);
        } else {
            self.pop_cancelled_heads();
        }
    }

    fn pop_cancelled_heads(&mut self) {
        while let Some(head) = self.heap.peek() {
            if !is_cancelled(&self.wake_slots, head) {
                break;
            }
            if let Some(entry) = self.heap.pop() {
                self.discard(entry);
                self.cancelled.set(self.cancelled.get().saturating_sub(1));
            }
        }
    }

    /// The earliest live deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.pop_cancelled_heads();
        let key = self.heap.peek()?.key;
        Some(self.deadline(key))
    }

    /// Takes the earliest live entry whose deadline is before `end`.
    pub fn pop_due(&mut self, end: Instant) -> Option<Due> {
        self.pop_cancelled_heads();
        let end = self.key(end, 0);
        if self.heap.peek()?.key >= end {
            return None;
        }
        let entry = self.heap.pop()?;
        match entry.callback.unpack() {
            Callback::Handle(handle) => {
                handle.set_scheduled(false);
                Some(Due::Handle(handle))
            }
            Callback::Wake(slot) => {
                // Live, since cancelled heads were popped above.
                debug_assert!(self.holds(slot, entry.key.seq));
                Some(Due::Waker(self.wake_slots.remove(slot).waker))
            }
        }
    }

    /// Gives back most of the memory of a burst of timers once it has
    /// passed: when under an eighth of the heap's capacity is used, it drops
    /// to twice what is left (at least `KEPT_CAPACITY` entries); the slot
    /// table is made anew once it is empty. The loop calls this after
    /// taking the due timers.
    pub fn trim(&mut self) {
        self.heap.trim(KEPT_CAPACITY);
        if self.wake_slots.is_empty() && self.wake_slots.capacity() > KEPT_CAPACITY {
            // Keys of slots gone by carry a sequence number no new slot has.
            self.wake_slots = Slab::new();
        }
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        for entry in self.heap.drain() {
            if let Callback::Handle(handle) = entry.callback.unpack() {
                handle.set_scheduled(false);
            }
        }
        // Wakers may wake tasks of this loop; they are dropped, not woken.
        self.wake_slots.clear();
        self.cancelled.set(0);
    }
}

/// Whether `entry` was cancelled (a wake's slot no longer holds it).
fn is_cancelled(wake_slots: &Slab<WakeSlot>, entry: &Entry) -> bool {
    entry.callback.with(|callback| match callback {
        Callback::Handle(handle) => handle.cancelled(),
        Callback::Wake(slot) => !holds(wake_slots, *slot, entry.key.seq),
    })
}

/// Whether `slot` of `wake_slots` holds the wake numbered `seq`.
fn holds(wake_slots: &Slab<WakeSlot>, slot: usize, seq: u64) -> bool {
    matches!(wake_slots.get(slot), Some(entry) if entry.seq == seq)
}

impl Default for TimerHeap {
    fn default() -> TimerHeap {
        TimerHeap::new()
    }
}

impl fmt::Debug for TimerHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHeap")
            .field("len", &self.heap.len())
            .field("cancelled", &self.cancelled.get())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn trim_gives_back_the_memory_of_a_burst() {
        let mut heap = TimerHeap::new();
        let now = Instant::now();
        let mut wakes = Vec::new();
        let burst = if cfg!(miri) { 1_000 } else { 4_000 };
        for i in 0..burst {
            heap.push(now + Duration::from_secs(i), Handle::new(|| {}));
            wakes.push(heap.push_wake(now + Duration::from_secs(i), std::task::Waker::noop().clone()));
        }
        for (slot, seq) in wakes {
            heap.cancel_wake(slot, seq);
        }
        while heap.pop_due(now + Duration::from_secs(burst - 10)).is_some() {}
        heap.trim();
        assert!(
            heap.heap.capacity() <= KEPT_CAPACITY,
            "heap capacity {}",
            heap.heap.capacity()
        );
        // What is left still pops: the ten last handles (their cancelled
        // wakes are discarded on the way).
        let later = now + Duration::from_secs(20_000);
        let left = std::iter::from_fn(|| heap.pop_due(later)).count();
        assert_eq!(left, 10);
        heap.trim();
        assert!(
            heap.wake_slots.capacity() <= KEPT_CAPACITY,
            "slots {}",
            heap.wake_slots.capacity()
        );
        // A new sleep after the reset gets a slot with a new sequence number.
        let (slot, seq) = heap.push_wake(later, std::task::Waker::noop().clone());
        assert!(!heap.wake_done(slot, seq));
    }

    #[test]
    fn many_pending_sleeps_keep_less_than_half_as_much_spare_room() {
        let now = Instant::now();
        for sleeps in [1_500, 10_000, 17_000] {
            let mut heap = TimerHeap::new();
            for i in 0..sleeps {
                // An hour on: all beyond the wheel's reach.
                let when = now + Duration::from_secs(3_600) + Duration::from_millis(i);
                heap.push_wake_from(now, when, std::task::Waker::noop().clone());
            }
            let (entries, slots) = (heap.heap.capacity(), heap.wake_slots.capacity());
            let limit = sleeps as usize * 3 / 2;
            assert!(entries <= limit, "{sleeps} sleeps: room for {entries} entries");
            assert!(slots <= limit, "{sleeps} sleeps: room for {slots} slots");
        }
    }

    #[test]
    fn equal_deadlines_pop_in_insertion_order() {
        let mut heap = TimerHeap::new();
        let now = Instant::now();
        let order = Rc::new(std::cell::RefCell::new(Vec::new()));
        for i in 0..5 {
            let order = order.clone();
            heap.push(now, Handle::new(move || order.borrow_mut().push(i)));
        }
        while let Some(Due::Handle(handle)) = heap.pop_due(now + Duration::from_nanos(1)) {
            handle.run();
        }
        assert_eq!(*order.borrow(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn bulk_purge_needs_over_100_and_over_half_cancelled() {
        let mut heap = TimerHeap::new();
        let now = Instant::now();
        let timers: Vec<_> = (0..150)
            .map(|i| heap.push(now + Duration::from_secs(i), Handle::new(|| {})))
            .collect();
        // Cancel 76 from the back: the head stays live, so only a bulk purge
        // can remove them.
        for timer in timers.iter().rev().take(76) {
            timer.cancel();
        }
        assert_eq!(heap.cancelled_count(), 76);
        heap.purge_cancelled();
        assert_eq!(heap.len(), 74);
        assert_eq!(heap.cancelled_count(), 0);
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod size_tests {
    #[test]
    fn a_heap_entry_is_24_bytes() {
        assert_eq!(std::mem::size_of::<super::Entry>(), 24);
    }
}
