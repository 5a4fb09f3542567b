//! The timer heap of `call_later`/`call_at`, with asyncio's lazy cancellation.
//!
//! A file of its own because it is a data structure with a rule worth testing
//! against a model: cancelled timers stay in the heap until they reach the
//! head, unless more than 100 timers are scheduled and more than half of them
//! are cancelled, when the heap is rebuilt without them (asyncio's
//! `_MIN_SCHEDULED_TIMER_HANDLES` and `_MIN_CANCELLED_TIMER_HANDLES_FRACTION`).

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::rc::Rc;
use std::time::Instant;

use aio_events::{Handle, TimerHandle};

/// Fewer scheduled timers than this are never purged in bulk.
pub const MIN_SCHEDULED_TIMER_HANDLES: usize = 100;

struct Entry {
    when: Instant,
    seq: u64,
    handle: Handle,
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

impl Ord for Entry {
    // Reversed: `BinaryHeap` is a max-heap and we want the earliest deadline,
    // then the earliest insertion, on top.
    fn cmp(&self, other: &Self) -> Ordering {
        other.when.cmp(&self.when).then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Scheduled callbacks ordered by deadline, FIFO among equal deadlines.
pub struct TimerHeap {
    heap: BinaryHeap<Entry>,
    seq: u64,
    cancelled: Rc<Cell<usize>>,
}

impl TimerHeap {
    /// An empty heap.
    pub fn new() -> TimerHeap {
        TimerHeap {
            heap: BinaryHeap::new(),
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
        self.heap.push(Entry {
            when,
            seq: self.seq,
            handle,
        });
        timer
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
            let entries = std::mem::take(&mut self.heap).into_vec();
            let live: Vec<Entry> = entries
                .into_iter()
                .filter(|entry| {
                    if entry.handle.cancelled() {
                        entry.handle.set_scheduled(false);
                        false
                    } else {
                        true
                    }
                })
                .collect();
            self.heap = BinaryHeap::from(live);
            self.cancelled.set(0);
        } else {
            self.pop_cancelled_heads();
        }
    }

    fn pop_cancelled_heads(&mut self) {
        while let Some(head) = self.heap.peek() {
            if !head.handle.cancelled() {
                break;
            }
            if let Some(entry) = self.heap.pop() {
                entry.handle.set_scheduled(false);
                self.cancelled.set(self.cancelled.get().saturating_sub(1));
            }
        }
    }

    /// The earliest live deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.pop_cancelled_heads();
        self.heap.peek().map(|entry| entry.when)
    }

    /// Takes the earliest live entry whose deadline is before `end`.
    pub fn pop_due(&mut self, end: Instant) -> Option<Handle> {
        self.pop_cancelled_heads();
        if self.heap.peek()?.when >= end {
            return None;
        }
        let entry = self.heap.pop()?;
        entry.handle.set_scheduled(false);
        Some(entry.handle)
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        for entry in std::mem::take(&mut self.heap) {
            entry.handle.set_scheduled(false);
        }
        self.cancelled.set(0);
    }
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
    fn equal_deadlines_pop_in_insertion_order() {
        let mut heap = TimerHeap::new();
        let now = Instant::now();
        let order = Rc::new(std::cell::RefCell::new(Vec::new()));
        for i in 0..5 {
            let order = order.clone();
            heap.push(now, Handle::new(move || order.borrow_mut().push(i)));
        }
        while let Some(handle) = heap.pop_due(now + Duration::from_nanos(1)) {
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
