//! Weighing the heap: a global allocator that forwards to the system
//! allocator and, while a [`LiveBytes`] probe is open, keeps a running total
//! of bytes allocated minus bytes freed.
//!
//! A file of its own because it is most of the benches' `unsafe` code (the
//! rest is one poller registration in `floor.rs`).
//! Counting is switched on only inside a probe so that the timed workloads
//! run on the plain system allocator, paying one relaxed load per call rather
//! than an atomic read-modify-write.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// Whether a probe is open, that is whether allocations are being counted.
static COUNTING: AtomicBool = AtomicBool::new(false);

/// Bytes allocated minus bytes freed while counting was on. Only differences
/// between two readings mean anything.
static NET_BYTES: AtomicI64 = AtomicI64::new(0);

/// The system allocator, counting while a [`LiveBytes`] probe is open.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

impl CountingAllocator {
    fn count(delta: i64) {
        // Relaxed is enough: the probe reads the total on the thread that
        // did the work, and allocations made meanwhile on other threads are
        // part of what is being weighed whenever they are observed.
        if COUNTING.load(Ordering::Relaxed) {
            NET_BYTES.fetch_add(delta, Ordering::Relaxed);
        }
    }
}

fn signed(size: usize) -> i64 {
    // No allocation exceeds isize::MAX bytes, which fits in an i64.
    i64::try_from(size).unwrap_or(i64::MAX)
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the bookkeeping around the
// calls never touches the memory.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract
        // (non-zero size), which is `System::alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            Self::count(signed(layout.size()));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            Self::count(signed(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator, that
        // is from `System`, with this `layout`.
        unsafe { System.dealloc(ptr, layout) };
        Self::count(-signed(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `ptr` came from `System` with
        // `layout`, and that `new_size` is valid for `layout`'s alignment.
        let new_ptr = unsafe { System.realloc(ptr, layout, new_size) };
        if !new_ptr.is_null() {
            Self::count(signed(new_size) - signed(layout.size()));
        }
        new_ptr
    }
}

/// An open measurement of the live heap: the bytes allocated and not yet
/// freed since [`LiveBytes::open`], on every thread. One at a time.
#[derive(Debug)]
pub struct LiveBytes {
    at_open: i64,
}

impl LiveBytes {
    /// Starts counting.
    ///
    /// # Panics
    /// When another probe is open: the two would share one counter.
    pub fn open() -> LiveBytes {
        let was_counting = COUNTING.swap(true, Ordering::SeqCst);
        assert!(!was_counting, "a LiveBytes probe is already open");
        LiveBytes {
            at_open: NET_BYTES.load(Ordering::SeqCst),
        }
    }

    /// The growth of the live heap since the probe opened; negative when more
    /// was freed than allocated.
    pub fn bytes(&self) -> i64 {
        NET_BYTES.load(Ordering::SeqCst) - self.at_open
    }

    /// [`bytes`](LiveBytes::bytes) shared out over `items`, rounded to the
    /// nearest byte.
    pub fn bytes_per(&self, items: u64) -> i64 {
        let items = i64::try_from(items.max(1)).unwrap_or(i64::MAX);
        let bytes = self.bytes();
        (bytes + bytes.signum() * items / 2) / items
    }
}

impl Drop for LiveBytes {
    fn drop(&mut self) {
        COUNTING.store(false, Ordering::SeqCst);
    }
}
