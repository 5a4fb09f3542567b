//! The selector's `TimerHeap` against a sorted-list model: deadline order,
//! FIFO among equal deadlines, lazy cancellation, and asyncio's purge rule
//! (more than 100 timers with more than half cancelled: rebuild without them;
//! otherwise drop cancelled timers from the head only).
//!
//! A file of its own because it is proptest of one data structure, plus the
//! deterministic port of `test_base_events.py`'s cancelled-timer clean-up test
//! that the property generalises.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use aio::{Handle, TimerHandle};
use aio_selector::{Due, TimerHeap};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// asyncio's `_MIN_SCHEDULED_TIMER_HANDLES`.
const MIN_SCHEDULED: usize = 100;

#[derive(Debug, Clone)]
enum Op {
    /// `push` a `call_at` handle.
    Insert {
        offset_ms: u64,
    },
    /// `push_wake` a sleep's waker.
    InsertWake {
        offset_ms: u64,
    },
    /// `push_wake_from` a sleep's waker, told a present that may lie before
    /// the deadline, after it, or far from it: only where the queue starts
    /// may change, never the order.
    InsertWakeFrom {
        now_ms: u64,
        offset_ms: u64,
    },
    /// Many `push`es at nearby deadlines (to pass the bulk-purge threshold).
    InsertMany {
        count: usize,
        offset_ms: u64,
    },
    /// Cancel one timer: `TimerHandle::cancel` or `cancel_wake`.
    Cancel {
        pick: usize,
    },
    CancelMany {
        pick: usize,
        count: usize,
    },
    /// `rearm_wake` one wake with a new waker.
    Rearm {
        pick: usize,
    },
    PopDue {
        at_ms: u64,
    },
    NextDeadline,
    Purge,
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    // Offsets mostly from a small range, so that equal deadlines are common;
    // some beyond the selector's 67 ms timer wheel, and due times past them.
    prop_oneof![
        3 => (0..64u64).prop_map(|offset_ms| Op::Insert { offset_ms }),
        1 => (64..400u64).prop_map(|offset_ms| Op::Insert { offset_ms }),
        1 => (64..400u64).prop_map(|offset_ms| Op::InsertWake { offset_ms }),
        1 => (80..420u64).prop_map(|at_ms| Op::PopDue { at_ms }),
        2 => (0..64u64).prop_map(|offset_ms| Op::InsertWake { offset_ms }),
        2 => (0..200u64, 0..120u64).prop_map(|(now_ms, offset_ms)| Op::InsertWakeFrom { now_ms, offset_ms }),
        3 => (1..60usize, 0..64u64).prop_map(|(count, offset_ms)| Op::InsertMany { count, offset_ms }),
        3 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        3 => (any::<usize>(), 1..60usize).prop_map(|(pick, count)| Op::CancelMany { pick, count }),
        1 => any::<usize>().prop_map(|pick| Op::Rearm { pick }),
        3 => (0..80u64).prop_map(|at_ms| Op::PopDue { at_ms }),
        1 => Just(Op::NextDeadline),
        2 => Just(Op::Purge),
        1 => Just(Op::Clear),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    Cancelled,
    Popped,
}

/// What fired, in order: the timer's id and, for a wake, how many times it
/// was re-armed (the waker that fires must be the latest).
type FiredLog = Arc<Mutex<Vec<(usize, u32)>>>;

/// A waker that records its timer's id and generation when woken.
struct Recorder {
    id: usize,
    generation: u32,
    fired: FiredLog,
}

impl Wake for Recorder {
    fn wake(self: Arc<Self>) {
        self.fired.lock().unwrap().push((self.id, self.generation));
    }
}

enum Kind {
    Timer(TimerHandle),
    Wake { slot: usize, seq: u64, generation: u32 },
}

struct Entry {
    id: usize,
    when: Instant,
    kind: Kind,
    state: State,
}

/// The model: every timer pushed since the last `clear`, in insertion order
/// (so `id` order is FIFO order), plus which cancelled ones may still sit in
/// the heap.
struct Model {
    base: Instant,
    entries: Vec<Entry>,
    next_id: usize,
    /// Timers cancelled while in the heap and not known to be purged: an
    /// upper bound of the heap's cancelled count (pop_due may drop cancelled
    /// heads on its way, which the model does not predict).
    maybe_cancelled_in_heap: BTreeSet<usize>,
    fired: FiredLog,
}

impl Model {
    fn new() -> Model {
        Model {
            base: Instant::now(),
            entries: Vec::new(),
            next_id: 0,
            maybe_cancelled_in_heap: BTreeSet::new(),
            fired: FiredLog::default(),
        }
    }

    fn live(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.state == State::Live)
    }

    /// The earliest live timer due before `end`, FIFO among equal deadlines,
    /// as the log entry its firing must write.
    fn next_due(&self, end: Instant) -> Option<(usize, u32)> {
        let entry = self
            .live()
            .filter(|e| e.when < end)
            .min_by_key(|e| (e.when, e.id))?;
        let generation = match entry.kind {
            Kind::Timer(_) => 0,
            Kind::Wake { generation, .. } => generation,
        };
        Some((entry.id, generation))
    }

    fn waker(&self, id: usize, generation: u32) -> Waker {
        Waker::from(Arc::new(Recorder {
            id,
            generation,
            fired: self.fired.clone(),
        }))
    }

    fn insert(&mut self, heap: &mut TimerHeap, offset_ms: u64, wake: bool) -> Result<(), TestCaseError> {
        self.insert_from(heap, None, offset_ms, wake)
    }

    fn insert_from(
        &mut self,
        heap: &mut TimerHeap,
        now_ms: Option<u64>,
        offset_ms: u64,
        wake: bool,
    ) -> Result<(), TestCaseError> {
        let id = self.next_id;
        self.next_id += 1;
        let when = self.base + Duration::from_millis(offset_ms);
        let kind = if wake {
            let waker = self.waker(id, 0);
            let (slot, seq) = match now_ms {
                Some(now_ms) => heap.push_wake_from(self.base + Duration::from_millis(now_ms), when, waker),
                None => heap.push_wake(when, waker),
            };
            prop_assert!(!heap.wake_done(slot, seq));
            Kind::Wake {
                slot,
                seq,
                generation: 0,
            }
        } else {
            let fired = self.fired.clone();
            let timer = heap.push(when, Handle::new(move || fired.lock().unwrap().push((id, 0))));
            prop_assert_eq!(timer.when(), when);
            prop_assert!(!timer.cancelled());
            Kind::Timer(timer)
        };
        self.entries.push(Entry {
            id,
            when,
            kind,
            state: State::Live,
        });
        Ok(())
    }

    fn cancel(&mut self, heap: &mut TimerHeap, pick: usize) {
        if self.entries.is_empty() {
            return;
        }
        let index = pick % self.entries.len();
        let entry = &mut self.entries[index];
        match entry.kind {
            Kind::Timer(ref timer) => timer.cancel(),
            Kind::Wake { slot, seq, .. } => heap.cancel_wake(slot, seq),
        }
        if entry.state == State::Live {
            entry.state = State::Cancelled;
            self.maybe_cancelled_in_heap.insert(entry.id);
        }
    }

    fn rearm(&mut self, heap: &mut TimerHeap, pick: usize) {
        let wakes: Vec<usize> = (0..self.entries.len())
            .filter(|&i| matches!(self.entries[i].kind, Kind::Wake { .. }))
            .collect();
        if wakes.is_empty() {
            return;
        }
        let index = wakes[pick % wakes.len()];
        let (id, live) = (self.entries[index].id, self.entries[index].state == State::Live);
        if let Kind::Wake {
            slot,
            seq,
            generation,
        } = self.entries[index].kind
        {
            let waker = self.waker(id, generation + 1);
            heap.rearm_wake(slot, seq, &waker);
            if live && let Kind::Wake { generation, .. } = &mut self.entries[index].kind {
                *generation += 1;
            }
        }
    }

    fn apply(&mut self, heap: &mut TimerHeap, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Insert { offset_ms } => self.insert(heap, offset_ms, false)?,
            Op::InsertWake { offset_ms } => self.insert(heap, offset_ms, true)?,
            Op::InsertWakeFrom { now_ms, offset_ms } => {
                self.insert_from(heap, Some(now_ms), offset_ms, true)?
            }
            Op::InsertMany { count, offset_ms } => {
                for i in 0..count {
                    self.insert(heap, offset_ms + (i as u64 % 3), i % 4 == 3)?;
                }
            }
            Op::Cancel { pick } => self.cancel(heap, pick),
            Op::CancelMany { pick, count } => {
                for i in 0..count {
                    self.cancel(heap, pick.wrapping_add(i.wrapping_mul(7)));
                }
            }
            Op::Rearm { pick } => self.rearm(heap, pick),
            Op::PopDue { at_ms } => {
                let end = self.base + Duration::from_millis(at_ms);
                let expected = self.next_due(end);
                let popped = heap.pop_due(end);
                prop_assert_eq!(
                    popped.is_some(),
                    expected.is_some(),
                    "pop_due before +{}ms",
                    at_ms
                );
                if let (Some(due), Some((id, _))) = (popped, expected) {
                    match due {
                        Due::Handle(handle) => {
                            prop_assert!(!handle.cancelled(), "pop_due returned a cancelled timer");
                            handle.run();
                        }
                        Due::Waker(waker) => waker.wake(),
                    }
                    let fired = self.fired.lock().unwrap().last().copied();
                    prop_assert_eq!(fired, expected, "popped the wrong timer");
                    let entry = self
                        .entries
                        .iter_mut()
                        .find(|e| e.id == id)
                        .expect("a model entry");
                    entry.state = State::Popped;
                }
            }
            Op::NextDeadline => {
                let expected = self.live().map(|e| e.when).min();
                prop_assert_eq!(heap.next_deadline(), expected);
            }
            Op::Purge => {
                let (len, cancelled) = (heap.len(), heap.cancelled_count());
                heap.purge_cancelled();
                if len > MIN_SCHEDULED && cancelled * 2 > len {
                    prop_assert_eq!(
                        heap.len(),
                        self.live().count(),
                        "a full purge keeps only live timers"
                    );
                    prop_assert_eq!(heap.cancelled_count(), 0);
                    self.maybe_cancelled_in_heap.clear();
                } else {
                    prop_assert!(heap.len() <= len);
                }
            }
            Op::Clear => {
                heap.clear();
                prop_assert_eq!(heap.len(), 0);
                prop_assert_eq!(heap.cancelled_count(), 0);
                prop_assert_eq!(heap.next_deadline(), None);
                for entry in &self.entries {
                    if let Kind::Wake { slot, seq, .. } = entry.kind {
                        prop_assert!(heap.wake_done(slot, seq), "a cleared wake is still pending");
                    }
                }
                self.entries.clear();
                self.maybe_cancelled_in_heap.clear();
            }
        }
        Ok(())
    }

    /// What holds after every operation.
    fn check(&self, heap: &TimerHeap) -> Result<(), TestCaseError> {
        let live = self.live().count();
        let (len, cancelled) = (heap.len(), heap.cancelled_count());
        prop_assert!(cancelled <= len, "cancelled_count {} > len {}", cancelled, len);
        prop_assert_eq!(
            len - cancelled,
            live,
            "len {} - cancelled {} != live timers",
            len,
            cancelled
        );
        prop_assert!(
            cancelled <= self.maybe_cancelled_in_heap.len(),
            "cancelled_count {} but at most {} cancelled timers can be in the heap",
            cancelled,
            self.maybe_cancelled_in_heap.len()
        );
        for entry in &self.entries {
            if let Kind::Wake { slot, seq, .. } = entry.kind {
                prop_assert_eq!(
                    heap.wake_done(slot, seq),
                    entry.state != State::Live,
                    "wake_done of timer {} in state {:?}",
                    entry.id,
                    entry.state
                );
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // cargo runs test binaries from the package root: failures are kept
        // in tests/proptest-regressions/, to be committed.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/proptest_timer_heap.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn timer_heap_matches_a_sorted_list(ops in vec(op(), 0..80)) {
        // test_base_events.py: BaseEventLoopTests.test__run_once,
        // test__run_once_cancelled_event_cleanup and test_call_later_negative_delays
        // (deadline order), generalised
        let mut heap = TimerHeap::new();
        let mut model = Model::new();
        for op in &ops {
            model.apply(&mut heap, op)?;
            model.check(&heap)?;
        }
        // Drain: everything live comes out in (deadline, insertion) order.
        let far = model.base + Duration::from_secs(3600);
        while model.next_due(far).is_some() {
            model.apply(&mut heap, &Op::PopDue { at_ms: 3_600_000 })?;
            model.check(&heap)?;
        }
        prop_assert!(heap.pop_due(far).is_none());
        prop_assert_eq!(heap.next_deadline(), None);
    }
}

/// The handle of a popped `call_at` entry; these tests push no wakes.
fn popped_handle(due: Due) -> Handle {
    match due {
        Due::Handle(handle) => handle,
        Due::Waker(_) => panic!("a waker came out of a heap holding only handles"),
    }
}

fn noop() -> Handle {
    Handle::new(|| {})
}

#[test]
fn cancelled_timers_are_purged_from_the_head_or_in_bulk() {
    // test_base_events.py: BaseEventLoopTests.test__run_once_cancelled_event_cleanup
    let now = Instant::now();
    let mut heap = TimerHeap::new();

    // One live timer keeps later cancelled ones away from the head.
    heap.push(now + Duration::from_secs(3000), noop());
    for _ in 0..2 {
        heap.push(now + Duration::from_secs(3600), noop()).cancel();
    }
    // These two reach the head and go in a head-only purge.
    for _ in 0..2 {
        heap.push(now + Duration::from_secs(100), noop()).cancel();
    }
    assert_eq!(heap.cancelled_count(), 4);
    heap.purge_cancelled();
    assert_eq!(heap.cancelled_count(), 2);
    assert_eq!(heap.len(), 3);

    // 49 live and 51 cancelled more: 103 timers, 53 cancelled, over half.
    let add_cancelled = MIN_SCHEDULED / 2 + 1;
    let add_live = MIN_SCHEDULED - add_cancelled;
    for _ in 0..add_live {
        heap.push(now + Duration::from_secs(3600), noop());
    }
    for _ in 0..add_cancelled {
        heap.push(now + Duration::from_secs(3600), noop()).cancel();
    }
    assert_eq!(heap.len(), 3 + add_live + add_cancelled);
    heap.purge_cancelled();
    assert_eq!(heap.len(), 1 + add_live, "only live timers remain");
    assert_eq!(heap.cancelled_count(), 0);
    let far = now + Duration::from_secs(7200);
    let mut popped = 0;
    while let Some(due) = heap.pop_due(far) {
        assert!(!popped_handle(due).cancelled());
        popped += 1;
    }
    assert_eq!(popped, 1 + add_live);
}

#[test]
fn few_cancelled_timers_stay_until_they_reach_the_head() {
    // test_base_events.py: BaseEventLoopTests.test__run_once_cancelled_event_cleanup
    // (the part below _MIN_SCHEDULED_TIMER_HANDLES)
    let now = Instant::now();
    let mut heap = TimerHeap::new();
    heap.push(now + Duration::from_secs(1), noop());
    let cancelled: Vec<TimerHandle> = (0..10)
        .map(|_| heap.push(now + Duration::from_secs(2), noop()))
        .collect();
    for timer in &cancelled {
        timer.cancel();
        assert!(timer.cancelled());
    }
    heap.purge_cancelled();
    assert_eq!(heap.len(), 11, "cancelled timers behind a live head stay");
    assert_eq!(heap.cancelled_count(), 10);
    assert!(heap.pop_due(now + Duration::from_secs(3)).is_some());
    assert!(heap.pop_due(now + Duration::from_secs(3)).is_none());
    assert_eq!(heap.next_deadline(), None);
    heap.purge_cancelled();
    assert_eq!(heap.len(), 0);
    assert_eq!(heap.cancelled_count(), 0);
}

#[test]
fn equal_deadlines_pop_in_insertion_order() {
    // test_events.py: TimerTests.test_timer_comparison (asyncio orders by
    // deadline only; aio promises FIFO among equal ones)
    let when = Instant::now();
    let mut heap = TimerHeap::new();
    let ran = Rc::new(RefCell::new(Vec::new()));
    for id in 0..10 {
        let ran = ran.clone();
        heap.push(when, Handle::new(move || ran.borrow_mut().push(id)));
    }
    assert_eq!(heap.next_deadline(), Some(when));
    assert!(
        heap.pop_due(when).is_none(),
        "pop_due takes deadlines strictly before `end`"
    );
    while let Some(due) = heap.pop_due(when + Duration::from_nanos(1)) {
        popped_handle(due).run();
    }
    assert_eq!(*ran.borrow(), (0..10).collect::<Vec<_>>());
}

#[test]
fn cancelling_a_popped_timer_does_not_count() {
    // test_events.py: TimerTests.test_timer plus BaseEventLoop._timer_handle_cancelled:
    // only a timer still in the heap bumps the cancelled count
    let now = Instant::now();
    let mut heap = TimerHeap::new();
    let timer = heap.push(now, noop());
    heap.push(now + Duration::from_secs(60), noop());
    let due = heap.pop_due(now + Duration::from_millis(1)).expect("a due timer");
    popped_handle(due).run();
    timer.cancel();
    assert_eq!(heap.cancelled_count(), 0);
    assert_eq!(heap.len(), 1);
    timer.cancel();
    assert_eq!(heap.cancelled_count(), 0, "a second cancel does not count either");
}
