//! The allocation counter the allocation benchmarks share: a global allocator that forwards
//! every call to the system allocator unchanged and counts allocations and their bytes twice,
//! for the calling thread (what one thread's work allocates, whatever other threads do) and for
//! the whole process (what a tick costs across the runtime, worker and blocking threads).
//! Reallocations count as allocations: each may move the block.
//!
//! A bench takes it with `#[path = "support/counting.rs"] mod counting;` and reads the counter
//! it needs; the other one is unused there.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Counting;

thread_local! {
    static THREAD: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}
static ALL: AtomicU64 = AtomicU64::new(0);
static ALL_BYTES: AtomicU64 = AtomicU64::new(0);

fn count(bytes: usize) {
    ALL.fetch_add(1, Ordering::Relaxed);
    ALL_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    // `try_with`: a thread being torn down has no counter; the process total still has it.
    let _counted = THREAD.try_with(|c| {
        let (n, b) = c.get();
        c.set((n + 1, b + bytes as u64));
    });
}

// SAFETY: every call is forwarded to `System` with the same arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Allocations and bytes so far on the calling thread.
pub fn thread_counted() -> (u64, u64) {
    THREAD.with(Cell::get)
}

/// Allocations and bytes so far in the whole process, every thread.
pub fn all_counted() -> (u64, u64) {
    (
        ALL.load(Ordering::Relaxed),
        ALL_BYTES.load(Ordering::Relaxed),
    )
}
