//! [`Stack`]: a task's stack, mapped RW, with an unmapped guard page directly below it.
//!
//! Stacks of the default size are recycled: a dropped one goes into a small pool (at most [`POOL_CAPACITY`],
//! still mapped, guard page still reserved) and the next [`Stack::new`] of that size takes it back, so a spawn/exit
//! cycle does not allocate, map, unmap and shoot down 16 pages each time. [`pooled_stacks`] tells how many are
//! held (for leak checks that compare memory before and after), [`drain_pool`] frees them.

use irq_safe::IrqSafeMutex;
use memory::{AllocateError, AllocatedPages, MapError, MappedPages, Permissions};
use memory_structs::{PAGE_SIZE, VirtualAddress};

/// Default stack size of a spawned task: 16 pages (64 KiB), plus one guard page.
pub const DEFAULT_STACK_PAGES: usize = 16;

/// How many freed default-size stacks the pool keeps (each 16 mapped frames plus 17 pages of address space).
pub const POOL_CAPACITY: usize = 4;

/// Freed default-size stacks, ready for reuse. A fixed array, so pooling takes no heap.
static POOL: IrqSafeMutex<[Option<StackParts>; POOL_CAPACITY]> = IrqSafeMutex::new([const { None }; POOL_CAPACITY]);

/// How many freed stacks of [`DEFAULT_STACK_PAGES`] pages the pool holds now (each keeps that many frames mapped
/// and that many pages plus one guard page of address space).
pub fn pooled_stacks() -> usize {
    POOL.lock().iter().filter(|slot| slot.is_some()).count()
}

/// Unmaps and frees every stack in the pool; returns how many it freed.
pub fn drain_pool() -> usize {
    let taken: [Option<StackParts>; POOL_CAPACITY] =
        core::mem::replace(&mut *POOL.lock(), [const { None }; POOL_CAPACITY]);
    // Dropped here, after the lock is released: unmapping shoots down TLBs and must not run under the pool lock.
    taken.into_iter().flatten().count()
}

/// The guard page and the mapped stack pages of one stack.
#[derive(Debug)]
struct StackParts {
    /// The reserved guard page (allocated so nothing else is ever mapped there, but never mapped).
    guard: AllocatedPages,
    /// The usable stack.
    pages: MappedPages,
}

/// A task stack: `pages` mapped read-write, and below them one reserved, never-mapped guard page, so that an
/// overflow faults (#PF at an address in [`Stack::guard_contains`]) instead of corrupting the neighbouring memory.
/// The stack grows down from [`Stack::top`]. Dropping it returns a default-size stack to the pool if there is room;
/// otherwise it unmaps the pages and frees pages, frames and the guard page.
#[derive(Debug)]
pub struct Stack {
    /// Always `Some` until `drop` takes it.
    parts: Option<StackParts>,
    /// Whether `drop` may put it in the pool (cleared by [`Stack::forbid_reuse`]).
    reusable: bool,
}

/// Why a stack could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackError {
    /// Zero pages were asked for.
    ZeroSize,
    /// The page allocator could not provide the pages (stack plus guard).
    Pages(AllocateError),
    /// The frame allocator could not provide the frames.
    Frames(AllocateError),
    /// Mapping failed.
    Map(MapError),
}

impl Stack {
    /// A stack of `page_count` pages (4 KiB each) with a guard page below it: a pooled one if `page_count` is
    /// [`DEFAULT_STACK_PAGES`] and the pool has one, else newly allocated and mapped. The contents are not zeroed
    /// (a pooled stack holds what its last task left).
    ///
    /// # Errors
    /// [`StackError`] naming the allocator or mapping step that failed; nothing is leaked on error.
    pub fn new(page_count: usize) -> Result<Stack, StackError> {
        if page_count == 0 {
            return Err(StackError::ZeroSize);
        }
        if page_count == DEFAULT_STACK_PAGES
            && let Some(parts) = POOL.lock().iter_mut().find_map(Option::take)
        {
            return Ok(Stack { parts: Some(parts), reusable: true });
        }
        let pages = memory::allocate_pages(page_count + 1).map_err(StackError::Pages)?;
        let (guard, stack_pages) = pages.split_at(1).map_err(|_| StackError::ZeroSize)?;
        let frames = memory::allocate_frames(page_count).map_err(StackError::Frames)?;
        let pages = memory::map_allocated(stack_pages, frames, Permissions::ReadWrite).map_err(StackError::Map)?;
        Ok(Stack { parts: Some(StackParts { guard, pages }), reusable: true })
    }

    /// Makes dropping this stack unmap and free it instead of pooling it (for the stack of a task that failed).
    pub fn forbid_reuse(&mut self) {
        self.reusable = false;
    }

    fn parts(&self) -> &StackParts {
        self.parts.as_ref().expect("a live stack has its parts")
    }

    /// One past the highest byte of the stack (16-byte aligned): the initial stack pointer.
    pub fn top(&self) -> VirtualAddress {
        let pages = &self.parts().pages;
        pages.start_address() + pages.size_in_bytes()
    }

    /// The lowest byte of the usable stack.
    pub fn bottom(&self) -> VirtualAddress {
        self.parts().pages.start_address()
    }

    /// The size of the usable stack in bytes.
    pub fn size_in_bytes(&self) -> usize {
        self.parts().pages.size_in_bytes()
    }

    /// Whether `address` lies in the guard page below the stack.
    pub fn guard_contains(&self, address: VirtualAddress) -> bool {
        let start = self.parts().guard.start_address().value();
        (start..start + PAGE_SIZE).contains(&address.value())
    }

    /// The stack's bytes `top - count*8 .. top` as seen through the direct map, for writing the first frame of a new
    /// task from another CPU without touching (and caching TLB entries for) the stack's own virtual pages. (Since
    /// dropped mappings are shot down on every CPU this is no longer required for safety; it keeps the spawning
    /// CPU's TLB free of entries it does not need.)
    pub(crate) fn top_words_through_direct_map(&mut self, count: usize) -> &mut [usize] {
        assert!(count * 8 <= self.size_in_bytes(), "initial frame larger than the stack");
        let pages = &self.parts().pages;
        let physical_top = pages.physical_start_address().value() + pages.size_in_bytes();
        let start = memory::layout::PHYSICAL_MEMORY_OFFSET + physical_top - count * 8;
        // SAFETY: the stack's frames are contiguous (one `AllocatedFrames`), owned by this `Stack`, and direct-mapped
        // (every allocatable frame is); `&mut self` makes the access exclusive, and no task runs on the stack yet
        // (the caller only writes the initial frame of a task that has never run).
        unsafe { core::slice::from_raw_parts_mut(start as *mut usize, count) }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let Some(parts) = self.parts.take() else { return };
        if !self.reusable || parts.pages.size_in_bytes() != DEFAULT_STACK_PAGES * PAGE_SIZE {
            return;
        }
        let mut pool = POOL.lock();
        if let Some(slot) = pool.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some(parts);
            return;
        }
        drop(pool);
        // The pool is full: `parts` is dropped here, after the lock is released, which unmaps and frees it.
    }
}
