//! The kernel heap: the one `#[global_allocator]`, a `linked_list_allocator::Heap` over a region mapped at init.

use crate::access::Permissions;
use crate::errors::MapError;
use crate::frames::{AllocatedFrames, allocate_frames};
use crate::layout::{HEAP_INITIAL_SIZE, HEAP_START};
use crate::paging;
use crate::sync::with_lock;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use linked_list_allocator::Heap;
use memory_structs::PAGE_SIZE;
use spin::Mutex;

/// The kernel's global allocator (first fit over a free list).
pub struct KernelHeap {
    /// The heap's free list and its bounds. The lock protects every allocation and free; it is taken with
    /// interrupts disabled and never held while taking another lock.
    heap: Mutex<Heap>,
}

impl KernelHeap {
    const fn new() -> Self {
        Self { heap: Mutex::new(Heap::empty()) }
    }
}

// SAFETY: `allocate_first_fit` returns blocks of at least `layout.size()` bytes aligned to `layout.align()` inside the
// heap region, which is mapped RW for the kernel's lifetime, and never hands out a block twice; `dealloc` gets back
// exactly the pointer and layout that `alloc` produced, as the GlobalAlloc contract requires of callers.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        with_lock(&self.heap, |heap| heap.allocate_first_fit(layout).map_or(ptr::null_mut(), NonNull::as_ptr))
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        if let Some(pointer) = NonNull::new(pointer) {
            // SAFETY: the GlobalAlloc contract makes the caller pass a block allocated by `alloc` with `layout`.
            with_lock(&self.heap, |heap| unsafe { heap.deallocate(pointer, layout) });
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
    with_lock(&KERNEL_HEAP.heap, |heap| unsafe { heap.init(HEAP_START as *mut u8, HEAP_INITIAL_SIZE) });
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
    with_lock(&KERNEL_HEAP.heap, |heap| (heap.used(), heap.free()))
}
