//! The queue under the timer heap: a wheel of 64 buckets of about a
//! millisecond, each sorted when it comes up, with a binary heap for the
//! timers beyond the wheel's 67 ms and another for timers pushed into a
//! bucket that has come up already.
//!
//! A file of its own because it is a data structure with one invariant to
//! keep, apart from asyncio's rules (cancellation, purging) that the timer
//! heap keeps above it. With every timer in one binary heap, a loop with
//! 100 k pending sleeps pops each through 17 levels of a 2.4 MB array whose
//! lower levels are cold in the cache. Here a timer is pushed into its
//! bucket in O(1); a bucket that comes up is sorted in place (one pass over
//! contiguous memory) and popped from its end.
//!
//! The invariant: every entry of `sorted` and `front` lies in a bucket
//! before `cursor`, every entry of `wheel` in one of the `BUCKETS` buckets
//! from `cursor` on (bucket `b` in `wheel[b % BUCKETS]`), every entry of
//! `far` later still. So the earlier of `sorted`'s last entry and `front`'s
//! top is the earliest entry of all, in the entries' own order (deadline,
//! then insertion), whatever the buckets.

use std::collections::BinaryHeap;

/// Bucket width: 2^20 ns, about 1.05 ms.
const BUCKET_SHIFT: u32 = 20;
/// Buckets in the wheel (one bit each in `occupied`): about 67 ms ahead.
const BUCKETS: u64 = 64;
/// Buckets' vectors above this capacity are let go by `trim` once empty.
const KEPT_BUCKET_CAPACITY: usize = 64;

/// An entry the wheel can place: its bucket number grows with its order.
pub(crate) trait Timed: Ord {
    /// A number that never decreases along the entries' order (the top of
    /// the max-heap `BinaryHeap<Self>` comes first): here the deadline in
    /// nanoseconds, unsigned.
    fn deadline(&self) -> u64;
    /// The insertion number: among equal deadlines, the smaller first.
    fn seq(&self) -> u64;
}

/// Bits of the deadline one radix pass sorts on: two passes cover a bucket.
const RADIX_BITS: u32 = 10;
const _: () = assert!(2 * RADIX_BITS == BUCKET_SHIFT);
/// Buckets smaller than this are sorted by comparison.
const RADIX_MIN: usize = 256;

/// Puts one bucket's entries in `sorted`'s order (the first entry last).
///
/// A bucket whose entries came in insertion order (every push since the
/// bucket came into the wheel's reach, none pulled from `far`) is sorted by
/// an LSD radix sort on the deadline's low `BUCKET_SHIFT` bits (the rest is
/// the bucket number, the same for all): stable, so equal deadlines keep
/// their insertion order, and two passes over contiguous memory instead of
/// a comparison sort's branches. Any other bucket is sorted by comparison.
fn sort_bucket<T: Timed>(entries: &mut Vec<T>, scratch: &mut Vec<T>) {
    if entries.len() < RADIX_MIN || !entries.is_sorted_by_key(Timed::seq) {
        entries.sort_unstable();
        return;
    }
    radix_pass(entries, scratch, 0);
    radix_pass(scratch, entries, RADIX_BITS);
    // Ascending deadlines, and `sorted` wants the first entry last.
    entries.reverse();
}

/// Moves every entry of `from` into `to` (emptied first), stably ordered by
/// the `RADIX_BITS` bits of the deadline at `shift`.
fn radix_pass<T: Timed>(from: &mut Vec<T>, to: &mut Vec<T>, shift: u32) {
    const DIGITS: usize = 1 << RADIX_BITS;
    let digit = |entry: &T| ((entry.deadline() >> shift) as usize) & (DIGITS - 1);
    let mut starts = [0usize; DIGITS];
    for entry in from.iter() {
        starts[digit(entry)] += 1;
    }
    let mut sum = 0;
    for start in &mut starts {
        let count = *start;
        *start = sum;
        sum += count;
    }
    let len = from.len();
    to.clear();
    to.reserve(len);
    // SAFETY: `from` gives up its entries first (length 0: none is dropped
    // there again, even should this panic); each is then moved exactly once,
    // to a distinct index below `len` of `to`'s reserved room, since the
    // starts partition 0..len by digit. `to` takes them over at the end.
    unsafe {
        from.set_len(0);
        let source = from.as_ptr();
        let target = to.as_mut_ptr();
        for index in 0..len {
            let entry = source.add(index);
            let slot = &mut starts[digit(&*entry)];
            std::ptr::copy_nonoverlapping(entry, target.add(*slot), 1);
            *slot += 1;
        }
        to.set_len(len);
    }
}

/// Entries from which a full queue grows by half instead of doubling.
const GROW_BY_HALF_FROM: usize = 1024;

/// Room to add to a full vector or heap of `capacity` timers: twice the
/// room while small, half again from [`GROW_BY_HALF_FROM`] entries on. A
/// doubling queue carries up to as much spare room as it holds entries
/// (10 k pending sleeps sat in room for 16 k, twice: heap and slots);
/// growing by half keeps it under a half, for a second copy per entry on
/// average, a few bytes' `memcpy`.
fn growth(capacity: usize) -> usize {
    if capacity < GROW_BY_HALF_FROM {
        capacity.max(4)
    } else {
        capacity / 2
    }
}

/// A timer queue that makes room by [`growth`]'s rule before a push.
pub(crate) trait MakeRoom {
    /// When full, reserves [`growth`] more.
    fn make_room(&mut self);
}

impl<T> MakeRoom for Vec<T> {
    fn make_room(&mut self) {
        if self.len() == self.capacity() {
            self.reserve_exact(growth(self.capacity()));
        }
    }
}

impl<T: Ord> MakeRoom for BinaryHeap<T> {
    fn make_room(&mut self) {
        if self.len() == self.capacity() {
            self.reserve_exact(growth(self.capacity()));
        }
    }
}

impl<T> MakeRoom for slab::Slab<T> {
    fn make_room(&mut self) {
        // Full only with no vacant entry left to reuse.
        if self.len() == self.capacity() {
            self.reserve_exact(growth(self.capacity()));
        }
    }
}

fn bucket_of<T: Timed>(entry: &T) -> u64 {
    entry.deadline() >> BUCKET_SHIFT
}

/// Timers in the order of `T` (a max-heap order: the greatest first).
pub(crate) struct TimerWheel<T: Timed> {
    /// The bucket that came up last, sorted so that its first entry is at
    /// the end: popped in O(1), in cache order.
    sorted: Vec<T>,
    /// Entries pushed into a bucket that has come up already.
    front: BinaryHeap<T>,
    /// Room for a radix sort's other half (empty between sorts).
    scratch: Vec<T>,
    /// Boxed: 1.5 KiB the loop's own struct need not carry.
    wheel: Box<[Vec<T>; BUCKETS as usize]>,
    /// Bit `i` set when `wheel[i]` holds entries.
    occupied: u64,
    far: BinaryHeap<T>,
    /// The first bucket not in `front`.
    cursor: u64,
    len: usize,
}

impl<T: Timed> TimerWheel<T> {
    pub(crate) fn new() -> TimerWheel<T> {
        TimerWheel {
            sorted: Vec::new(),
            front: BinaryHeap::new(),
            scratch: Vec::new(),
            wheel: Box::new(std::array::from_fn(|_| Vec::new())),
            occupied: 0,
            far: BinaryHeap::new(),
            cursor: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn push(&mut self, entry: T) {
        self.push_from(entry, None);
    }

    /// [`push`](TimerWheel::push), told the present (`now`, on the
    /// deadlines' scale). Into an empty wheel, an entry starts the wheel at
    /// the present's bucket rather than its own, when within reach: the
    /// timers pushed next for sooner deadlines then land in the wheel too,
    /// not in `front` (100 k sleeps of 0–10 ms made one after another went
    /// mostly to `front` behind the first one's bucket).
    pub(crate) fn push_from(&mut self, entry: T, now: Option<u64>) {
        let bucket = bucket_of(&entry);
        if self.len == 0 {
            // Nothing to keep in order with: the wheel may start anywhere
            // up to this entry's bucket.
            self.cursor = match now.map(|now| now >> BUCKET_SHIFT) {
                Some(start) if start <= bucket && bucket - start < BUCKETS => start,
                _ => bucket,
            };
        }
        self.len += 1;
        if bucket < self.cursor {
            self.front.make_room();
            self.front.push(entry);
        } else if bucket - self.cursor < BUCKETS {
            self.put_in_wheel(bucket, entry);
        } else {
            self.far.make_room();
            self.far.push(entry);
        }
    }

    fn put_in_wheel(&mut self, bucket: u64, entry: T) {
        let index = (bucket % BUCKETS) as usize;
        let entries = &mut self.wheel[index];
        entries.make_room();
        entries.push(entry);
        self.occupied |= 1 << index;
    }

    /// Whether the first entry is `front`'s top rather than `sorted`'s last.
    fn first_in_front(&self) -> bool {
        match (self.sorted.last(), self.front.peek()) {
            (Some(sorted), Some(front)) => front > sorted,
            (None, front) => front.is_some(),
            (Some(_), None) => false,
        }
    }

    /// The first entry.
    pub(crate) fn peek(&mut self) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        if self.sorted.is_empty() && self.front.is_empty() {
            self.refill();
        }
        if self.first_in_front() {
            self.front.peek()
        } else {
            self.sorted.last()
        }
    }

    /// Takes the first entry.
    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        if self.sorted.is_empty() && self.front.is_empty() {
            self.refill();
        }
        let entry = if self.first_in_front() {
            self.front.pop()
        } else {
            self.sorted.pop()
        }?;
        self.len -= 1;
        Some(entry)
    }

    /// Moves the next bucket with entries into the empty `sorted`. Out of
    /// line: it sorts, and most peeks need none of it.
    #[inline(never)]
    fn refill(&mut self) {
        debug_assert!(self.sorted.is_empty() && self.front.is_empty() && self.len > 0);
        loop {
            if self.occupied != 0 {
                let start = self.cursor % BUCKETS;
                let offset = u64::from(self.occupied.rotate_right(start as u32).trailing_zeros());
                let bucket = self.cursor + offset;
                let index = (bucket % BUCKETS) as usize;
                self.occupied &= !(1 << index);
                let mut entries = std::mem::take(&mut self.wheel[index]);
                sort_bucket(&mut entries, &mut self.scratch);
                // The emptied vector serves the bucket next time.
                self.wheel[index] = std::mem::replace(&mut self.sorted, entries);
                self.cursor = bucket + 1;
                self.pull_far();
                return;
            }
            match self.far.peek() {
                Some(first) => {
                    self.cursor = bucket_of(first);
                    self.pull_far();
                }
                None => return,
            }
        }
    }

    /// Moves the entries of `far` that the wheel now reaches into it.
    fn pull_far(&mut self) {
        while let Some(first) = self.far.peek() {
            let bucket = bucket_of(first);
            if bucket - self.cursor >= BUCKETS {
                break;
            }
            if let Some(entry) = self.far.pop() {
                self.put_in_wheel(bucket, entry);
            }
        }
    }

    /// Entries the queue has room for without allocating, all parts summed.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.sorted.capacity()
            + self.scratch.capacity()
            + self.front.capacity()
            + self.far.capacity()
            + self.wheel.iter().map(Vec::capacity).sum::<usize>()
    }

    /// Keeps only the entries `keep` says yes to (asyncio's purge).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.sorted.retain(&mut keep);
        self.front.retain(&mut keep);
        self.far.retain(&mut keep);
        let mut len = self.sorted.len() + self.front.len() + self.far.len();
        for (index, bucket) in self.wheel.iter_mut().enumerate() {
            bucket.retain(&mut keep);
            if bucket.is_empty() {
                self.occupied &= !(1 << index);
            }
            len += bucket.len();
        }
        self.len = len;
    }

    /// Takes every entry out, in no particular order.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        let mut all = std::mem::take(&mut self.sorted);
        all.append(&mut std::mem::take(&mut self.front).into_vec());
        all.append(&mut std::mem::take(&mut self.far).into_vec());
        for bucket in self.wheel.iter_mut() {
            all.append(bucket);
        }
        self.occupied = 0;
        self.len = 0;
        all
    }

    /// Gives back most of the memory of a burst: the two heaps and the sorted
    /// bucket each shrink to twice what they hold (at least a third of `kept`
    /// entries) when under an eighth of them is used, and empty buckets let
    /// go of large vectors.
    pub(crate) fn trim(&mut self, kept: usize) {
        let kept = kept / 3;
        for heap in [&mut self.front, &mut self.far] {
            let capacity = heap.capacity();
            if capacity > kept && heap.len() < capacity / 8 {
                heap.shrink_to(kept.max(heap.len() * 2));
            }
        }
        if self.sorted.capacity() > kept && self.sorted.len() < self.sorted.capacity() / 8 {
            self.sorted.shrink_to(kept.max(self.sorted.len() * 2));
        }
        if self.scratch.capacity() > kept {
            self.scratch = Vec::new();
        }
        for bucket in self.wheel.iter_mut() {
            if bucket.is_empty() && bucket.capacity() > KEPT_BUCKET_CAPACITY {
                *bucket = Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deadline and an insertion number, earliest first in the max-heap
    /// order, as the timer heap's entries.
    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    struct At(u64, u64);

    impl Ord for At {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            (other.0, other.1).cmp(&(self.0, self.1))
        }
    }

    impl PartialOrd for At {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }

    impl Timed for At {
        fn deadline(&self) -> u64 {
            self.0
        }
        fn seq(&self) -> u64 {
            self.1
        }
    }

    /// A deterministic spread of deadlines: near, within the wheel, far,
    /// and ties.
    fn deadlines(count: u64) -> Vec<u64> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..count)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let base = 1 << 40;
                match i % 4 {
                    0 => base + state % (1 << 22),
                    1 => base + state % (1 << 27),
                    2 => base + state % (1 << 34),
                    _ => base + ((state % 8) << 20),
                }
            })
            .collect()
    }

    #[test]
    fn pops_in_order_across_front_wheel_and_far() {
        let mut wheel = TimerWheel::new();
        let mut expected = Vec::new();
        for (seq, deadline) in deadlines(if cfg!(miri) { 500 } else { 5_000 })
            .into_iter()
            .enumerate()
        {
            wheel.push(At(deadline, seq as u64));
            expected.push(At(deadline, seq as u64));
        }
        expected.sort_by_key(|at| (at.0, at.1));
        assert_eq!(wheel.len(), expected.len());
        let mut popped = Vec::new();
        while let Some(at) = wheel.pop() {
            popped.push(at);
        }
        assert_eq!(popped, expected);
        assert!(wheel.is_empty());
    }

    #[test]
    fn told_the_present_an_empty_wheel_starts_there() {
        // The first entry 10 buckets ahead, then sooner ones: told the
        // present, the wheel starts at its bucket and takes them all in; not
        // told, the sooner ones queue in front.
        let bucket = 1u64 << BUCKET_SHIFT;
        for told in [true, false] {
            let mut wheel = TimerWheel::new();
            wheel.push_from(At(100 * bucket + 10 * bucket, 0), told.then_some(100 * bucket));
            for seq in 1..10 {
                wheel.push(At(100 * bucket + seq * bucket, seq));
            }
            assert_eq!(wheel.front.is_empty(), told);
            let popped: Vec<u64> = std::iter::from_fn(|| wheel.pop()).map(|at| at.1).collect();
            assert_eq!(popped, [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]);
        }
        // A present after the entry, or out of the wheel's reach, is ignored.
        for now in [200 * bucket, 100 * bucket - BUCKETS * bucket] {
            let mut wheel = TimerWheel::new();
            wheel.push_from(At(100 * bucket, 0), Some(now));
            assert_eq!(wheel.cursor, 100);
            assert_eq!(wheel.pop(), Some(At(100 * bucket, 0)));
        }
    }

    #[test]
    fn pushes_between_pops_keep_the_order() {
        let mut wheel = TimerWheel::new();
        let mut model: Vec<At> = Vec::new();
        for (round, deadline) in deadlines(if cfg!(miri) { 400 } else { 4_000 })
            .into_iter()
            .enumerate()
        {
            // Some deadlines before what was already popped: past timers.
            let deadline = if round % 7 == 0 { deadline >> 1 } else { deadline };
            let seq = round as u64;
            wheel.push(At(deadline, seq));
            model.push(At(deadline, seq));
            if round % 3 == 0 {
                model.sort_by_key(|at| std::cmp::Reverse((at.0, at.1)));
                assert_eq!(wheel.pop(), model.pop());
            }
        }
        model.sort_by_key(|at| std::cmp::Reverse((at.0, at.1)));
        while let Some(at) = model.pop() {
            assert_eq!(wheel.pop(), Some(at));
        }
        assert_eq!(wheel.pop(), None);
    }

    #[test]
    fn a_bucket_sorts_the_same_by_radix_and_by_comparison() {
        // One bucket's worth: the same high bits, low bits from a small set
        // (so that ties are many), in insertion order.
        let count = if cfg!(miri) { 300 } else { 3_000 };
        let bucket = 7u64 << BUCKET_SHIFT;
        let entries: Vec<At> = deadlines(count as u64)
            .into_iter()
            .enumerate()
            .map(|(seq, deadline)| At(bucket | (deadline % 509) << 11, seq as u64))
            .collect();
        let mut expected = entries.clone();
        expected.sort_unstable();
        let mut radix = entries.clone();
        sort_bucket(&mut radix, &mut Vec::new());
        assert_eq!(radix, expected);
        // Out of insertion order (as after a pull from `far`): by comparison.
        let mut shuffled = entries;
        shuffled.swap(0, count - 1);
        let mut expected = shuffled.clone();
        expected.sort_unstable();
        sort_bucket(&mut shuffled, &mut Vec::new());
        assert_eq!(shuffled, expected);
    }

    #[test]
    fn retain_drain_and_trim() {
        let mut wheel = TimerWheel::new();
        for (seq, deadline) in deadlines(3_000).into_iter().enumerate() {
            wheel.push(At(deadline, seq as u64));
        }
        wheel.retain(|at| at.1 % 2 == 0);
        assert_eq!(wheel.len(), 1_500);
        let mut last = None;
        let mut count = 0;
        while let Some(at) = wheel.pop() {
            assert_eq!(at.1 % 2, 0);
            if let Some(At(deadline, seq)) = last {
                assert!((deadline, seq) < (at.0, at.1));
            }
            last = Some(at);
            count += 1;
            if count == 700 {
                break;
            }
        }
        assert_eq!(wheel.drain().len(), 800);
        assert!(wheel.is_empty());
        wheel.trim(16);
        assert!(
            wheel
                .wheel
                .iter()
                .all(|bucket| bucket.capacity() <= KEPT_BUCKET_CAPACITY)
        );
        assert!(wheel.front.capacity() <= 5 && wheel.far.capacity() <= 5 && wheel.sorted.capacity() <= 5);
    }
}
