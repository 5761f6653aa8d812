//! The kernel heap: the one `#[global_allocator]`, a `linked_list_allocator::Heap` over a region mapped at init.

use crate::access::Permissions;
use crate::errors::MapError;
use crate::frames::{AllocatedFrames, allocate_frames};
use crate::layout::{HEAP_INITIAL_SIZE, HEAP_START};
use crate::paging;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use linked_list_allocator::Heap;
use memory_structs::PAGE_SIZE;
use owned_spin::OwnedSpinLock;

/// The kernel's global allocator (first fit over a free list).
pub struct KernelHeap {
    /// The heap's free list and its bounds. The lock protects every allocation and free; it is taken with
    /// interrupts disabled and never held while taking another lock. Its holder token is an address on the
    /// holder's stack, so the fault path can release it for a task that faulted holding it
    /// ([`release_heap_if_held_within`]).
    heap: OwnedSpinLock<Heap>,
}

impl KernelHeap {
    const fn new() -> Self {
        Self { heap: OwnedSpinLock::new(Heap::empty()) }
    }
}

/// Runs `f` with the heap locked, interrupts disabled (see `crate::sync::with_lock`, which this mirrors for the
/// owned lock: spinning services TLB-shootdown requests).
fn with_heap<R>(f: impl FnOnce(&mut Heap) -> R) -> R {
    // The holder token: an address in this frame, i.e. on the holder's stack.
    let anchor = 0u8;
    let token = ptr::addr_of!(anchor) as usize;
    x86_64::instructions::interrupts::without_interrupts(|| {
        loop {
            if let Some(mut guard) = KERNEL_HEAP.heap.try_lock_as(token) {
                return f(&mut guard);
            }
            crate::shootdown::service_tlb_shootdown();
            core::hint::spin_loop();
        }
    })
}

/// Releases the heap lock if its holder's token lies in `stack` (a task that faulted holding it: its guard would
/// stay taken forever and every later allocation would spin). Returns whether it did.
///
/// # Safety
/// `stack` must be the stack of a task that will not continue its critical section (it faulted and is being
/// unwound or ended). A fault inside the allocator itself may have left the free list half-updated; the caller
/// accepts that risk (and should say so in its report).
pub unsafe fn release_heap_if_held_within(stack: core::ops::Range<usize>) -> bool {
    // SAFETY: the caller guarantees the holder is dead or unwinding and accepts the free list's state.
    unsafe { KERNEL_HEAP.heap.force_release_if(|token| stack.contains(&token)) }.is_some()
}

/// Whether the heap lock is taken right now (a snapshot).
pub fn heap_is_locked() -> bool {
    KERNEL_HEAP.heap.holder().is_some()
}

/// Calls `f` while holding the heap lock (interrupts disabled), for fault-path tests: `f` must not allocate
/// (it would spin on the lock forever), and may fault, which the fault path must survive.
pub fn with_heap_lock_held(f: fn()) {
    with_heap(|_heap| f());
}

// SAFETY: `allocate_first_fit` returns blocks of at least `layout.size()` bytes aligned to `layout.align()` inside the
// heap region, which is mapped RW for the kernel's lifetime, and never hands out a block twice; `dealloc` gets back
// exactly the pointer and layout that `alloc` produced, as the GlobalAlloc contract requires of callers.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        with_heap(|heap| heap.allocate_first_fit(layout).map_or(ptr::null_mut(), NonNull::as_ptr))
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        if let Some(pointer) = NonNull::new(pointer) {
            // SAFETY: the GlobalAlloc contract makes the caller pass a block allocated by `alloc` with `layout`.
            with_heap(|heap| unsafe { heap.deallocate(pointer, layout) });
        }
    }
}

/// The global allocator. Allocations before `memory::init` fail (the heap is empty), which ends in
/// `alloc::alloc::handle_alloc_error`.
#[global_allocator]
static KERNEL_HEAP: KernelHeap = KernelHeap::new();

/// Maps `HEAP_INITIAL_SIZE` bytes at `HEAP_START` (RW, NX) and hands them to the allocator. The frames need not be
/// contiguous: they are taken in the largest runs available. They belong to the heap forever.
pub(crate) fn init() -> Result<(), MapError> {
    let pages = HEAP_INITIAL_SIZE / PAGE_SIZE;
    let flags = paging::leaf_flags(Permissions::ReadWrite, false);
    let mut mapped = 0;
    while mapped < pages {
        let run = take_run(pages - mapped)?;
        let count = run.count();
        let physical = run.start_address().value();
        // SAFETY: the heap region belongs to this module alone (see layout), and the frames were just allocated;
        // after mapping, they are only reachable through the heap allocator.
        unsafe { paging::map_range(HEAP_START + mapped * PAGE_SIZE, physical, count, flags) }?;
        run.keep_forever();
        mapped += count;
    }
    // SAFETY: `HEAP_START .. + HEAP_INITIAL_SIZE` is now mapped RW, unused, and owned by the heap for the kernel's
    // lifetime; `init` runs once (guarded by `memory::init`).
    with_heap(|heap| unsafe { heap.init(HEAP_START as *mut u8, HEAP_INITIAL_SIZE) });
    Ok(())
}

/// Allocates up to `wanted` contiguous frames: all of them if possible, else halving the request.
fn take_run(wanted: usize) -> Result<AllocatedFrames, MapError> {
    let mut count = wanted;
    loop {
        match allocate_frames(count) {
            Ok(frames) => return Ok(frames),
            Err(error) if count == 1 => return Err(MapError::Frames(error)),
            Err(_) => count = count.div_ceil(2),
        }
    }
}

/// `(used, free)` bytes of the heap.
pub(crate) fn usage() -> (usize, usize) {
    with_heap(|heap| (heap.used(), heap.free()))
}
