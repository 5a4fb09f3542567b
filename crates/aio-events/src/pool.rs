//! Per-thread free lists of small blocks, by size class: where callback
//! handles and tasks get their memory.
//!
//! A file of its own because both hot allocations of the runtime share it.
//! glibc's per-thread cache keeps only seven blocks per size, so a program
//! that makes a thousand tasks and then ends them all goes to the slow paths
//! of `malloc` and `free` for each; these lists keep up to a thousand blocks
//! per class. A block is freed to the pool of the thread that frees it (a
//! task may end on another thread than the one that made it): every block of
//! a class has the same layout, so that is always sound. Blocks beyond a
//! class's cap, and larger or over-aligned layouts, use the global
//! allocator.

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::ptr::NonNull;

/// Sizes of the classes (steps of a half power of two, so at most a third
/// of a block is slack); blocks are aligned to `ALIGN`.
const CLASSES: [usize; 11] = [32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024];
const ALIGN: usize = 16;
/// Free blocks kept per class: about 64 KiB to 256 KiB of each.
const CAPS: [usize; 11] = [2048, 2048, 2048, 1024, 1024, 1024, 1024, 512, 256, 256, 128];

/// The class of `layout`, or `None` for the global allocator.
pub(crate) const fn size_class(layout: Layout) -> Option<usize> {
    if layout.align() > ALIGN {
        return None;
    }
    let mut class = 0;
    while class < CLASSES.len() {
        if layout.size() <= CLASSES[class] {
            return Some(class);
        }
        class += 1;
    }
    None
}

fn class_layout(class: usize) -> Layout {
    // Sizes and alignment are small powers of two: always a valid layout.
    Layout::from_size_align(CLASSES[class], ALIGN).expect("pool layouts are valid")
}

/// A freed block's first word links to the next free block of its class.
struct FreeBlock {
    next: *mut FreeBlock,
}

struct Pool {
    heads: [Cell<*mut FreeBlock>; CLASSES.len()],
    counts: [Cell<usize>; CLASSES.len()],
    /// Whether this thread's `ExitGuard` is registered (at the first block
    /// kept), so that the blocks kept are freed when the thread ends.
    guarded: Cell<bool>,
    /// The thread is ending: the guard has emptied the lists, and blocks
    /// freed from here on go to the global allocator.
    closed: Cell<bool>,
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            heads: [const { Cell::new(std::ptr::null_mut()) }; CLASSES.len()],
            counts: [const { Cell::new(0) }; CLASSES.len()],
            guarded: Cell::new(false),
            closed: Cell::new(false),
        }
    }

    fn pop(&self, class: usize) -> Option<NonNull<u8>> {
        let head = NonNull::new(self.heads[class].get())?;
        // SAFETY: every block on the list was pushed by `push`, which wrote a
        // `FreeBlock` into it; the list is this thread's alone.
        let next = unsafe { head.as_ref().next };
        self.heads[class].set(next);
        self.counts[class].set(self.counts[class].get() - 1);
        Some(head.cast())
    }

    fn push(&self, class: usize, block: NonNull<u8>) -> bool {
        if self.counts[class].get() >= CAPS[class] || !self.guard() {
            return false;
        }
        let node = block.cast::<FreeBlock>();
        // SAFETY: the block is at least 32 bytes, 16-aligned, and unused: it
        // may hold our link.
        unsafe {
            node.as_ptr().write(FreeBlock {
                next: self.heads[class].get(),
            })
        };
        self.heads[class].set(node.as_ptr());
        self.counts[class].set(self.counts[class].get() + 1);
        true
    }

    /// Whether blocks may be kept: the exit guard is registered (now, if
    /// this is the first block) and has not run.
    fn guard(&self) -> bool {
        if self.guarded.get() {
            return !self.closed.get();
        }
        if self.closed.get() {
            return false;
        }
        // Touching the guard registers its destructor; it fails once the
        // thread's destructors have begun and the guard is gone.
        if EXIT_GUARD.try_with(|_| ()).is_err() {
            self.closed.set(true);
            return false;
        }
        self.guarded.set(true);
        true
    }

    /// Frees every kept block; later frees bypass the lists.
    fn close(&self) {
        self.closed.set(true);
        for class in 0..CLASSES.len() {
            while let Some(block) = self.pop(class) {
                // SAFETY: allocated by `alloc` with this class's layout.
                unsafe { alloc::dealloc(block.as_ptr(), class_layout(class)) };
            }
        }
    }
}

/// Empties the thread's pool as the thread ends. The pool itself has no
/// destructor, so that reaching it is a plain thread-local access (a
/// thread-local with a destructor checks its state on every access); it
/// stays usable while other thread-locals' destructors free blocks.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        POOL.with(Pool::close);
    }
}

thread_local! {
    static POOL: Pool = const { Pool::new() };
    static EXIT_GUARD: ExitGuard = const { ExitGuard };
}

/// A block for `layout` (whose size must not be zero).
pub(crate) fn alloc(layout: Layout) -> NonNull<u8> {
    let layout = match size_class(layout) {
        Some(class) => {
            if let Some(block) = POOL.with(|pool| pool.pop(class)) {
                return block;
            }
            class_layout(class)
        }
        None => layout,
    };
    debug_assert!(layout.size() > 0);
    // SAFETY: callers allocate headers, which are never zero-sized.
    let raw = unsafe { alloc::alloc(layout) };
    NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout))
}

/// Returns a block to this thread's pool, or to the global allocator.
///
/// # Safety
/// `block` came from [`alloc`] with the same `layout` and is no longer used.
pub(crate) unsafe fn free(block: NonNull<u8>, layout: Layout) {
    let layout = match size_class(layout) {
        Some(class) => {
            // Once the thread is ending, blocks go straight back.
            if POOL.with(|pool| pool.push(class, block)) {
                return;
            }
            class_layout(class)
        }
        None => layout,
    };
    // SAFETY: allocated with this layout by `alloc`.
    unsafe { alloc::dealloc(block.as_ptr(), layout) };
}

/// [`alloc`] with `layout`'s class worked out already (`size_class` is a
/// `const fn`: a callback's table keeps its class), for the handle's hot
/// path.
#[inline]
pub(crate) fn alloc_in(class: Option<usize>, layout: Layout) -> NonNull<u8> {
    if let Some(class) = class
        && let Some(block) = POOL.with(|pool| pool.pop(class))
    {
        return block;
    }
    alloc(layout)
}

/// [`free`] with `layout`'s class worked out already.
///
/// # Safety
/// As for [`free`]; `class` is `size_class(layout)`.
#[inline]
pub(crate) unsafe fn free_in(block: NonNull<u8>, class: Option<usize>, layout: Layout) {
    if let Some(class) = class
        && POOL.with(|pool| pool.push(class, block))
    {
        return;
    }
    // SAFETY: per this function's contract.
    unsafe { free(block, layout) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks handed between threads (the pointers are plain memory).
    struct Blocks(Vec<NonNull<u8>>);
    // SAFETY: unused blocks of plain memory, freed by the receiving thread.
    unsafe impl Send for Blocks {}

    fn kept(class: usize) -> usize {
        POOL.with(|pool| pool.counts[class].get())
    }

    #[test]
    fn a_freed_block_serves_the_next_allocation_of_its_class() {
        let layout = Layout::from_size_align(40, 8).unwrap();
        let class = size_class(layout).unwrap();
        let before = kept(class);
        let block = alloc(layout);
        // SAFETY: allocated just above with this layout, unused.
        unsafe { free(block, layout) };
        assert_eq!(kept(class), before + 1);
        // Any layout of the same class takes it back.
        let again = alloc(Layout::from_size_align(48, 16).unwrap());
        assert_eq!(again, block);
        // SAFETY: as above, with the layout it was taken with.
        unsafe { free(again, Layout::from_size_align(48, 16).unwrap()) };
    }

    #[test]
    fn a_thread_gives_its_kept_blocks_back_as_it_ends() {
        // Freed on another thread, the blocks go to that thread's pool; Miri
        // reports them leaked unless that pool frees them as the thread ends.
        let layout = Layout::from_size_align(200, 8).unwrap();
        let class = size_class(layout).unwrap();
        let blocks = Blocks((0..10).map(|_| alloc(layout)).collect());
        std::thread::spawn(move || {
            let blocks = blocks;
            for block in blocks.0 {
                // SAFETY: allocated above with this layout, unused.
                unsafe { free(block, layout) };
            }
            assert_eq!(kept(class), 10);
        })
        .join()
        .unwrap();
    }
}
