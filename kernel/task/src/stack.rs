//! [`Stack`]: a task's stack, mapped RW, with an unmapped guard page directly below it.

use memory::{AllocateError, AllocatedPages, MapError, MappedPages, Permissions};
use memory_structs::{PAGE_SIZE, VirtualAddress};

/// Default stack size of a spawned task: 16 pages (64 KiB), plus one guard page.
pub const DEFAULT_STACK_PAGES: usize = 16;

/// A task stack: `pages` mapped read-write, and below them one reserved, never-mapped guard page, so that an
/// overflow faults (#PF at an address in [`Stack::guard_contains`]) instead of corrupting the neighbouring memory.
/// The stack grows down from [`Stack::top`]. Dropping it unmaps the pages and frees pages, frames and the guard page.
#[derive(Debug)]
pub struct Stack {
    /// The reserved guard page (allocated so nothing else is ever mapped there, but never mapped).
    guard: AllocatedPages,
    /// The usable stack.
    pages: MappedPages,
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
    /// Allocates a stack of `page_count` pages (4 KiB each) with a guard page below it. The contents are not zeroed.
    ///
    /// # Errors
    /// [`StackError`] naming the allocator or mapping step that failed; nothing is leaked on error.
    pub fn new(page_count: usize) -> Result<Stack, StackError> {
        if page_count == 0 {
            return Err(StackError::ZeroSize);
        }
        let pages = memory::allocate_pages(page_count + 1).map_err(StackError::Pages)?;
        let (guard, stack_pages) = pages.split_at(1).map_err(|_| StackError::ZeroSize)?;
        let frames = memory::allocate_frames(page_count).map_err(StackError::Frames)?;
        let pages = memory::map_allocated(stack_pages, frames, Permissions::ReadWrite).map_err(StackError::Map)?;
        Ok(Stack { guard, pages })
    }

    /// One past the highest byte of the stack (16-byte aligned): the initial stack pointer.
    pub fn top(&self) -> VirtualAddress {
        self.pages.start_address() + self.pages.size_in_bytes()
    }

    /// The lowest byte of the usable stack.
    pub fn bottom(&self) -> VirtualAddress {
        self.pages.start_address()
    }

    /// The size of the usable stack in bytes.
    pub fn size_in_bytes(&self) -> usize {
        self.pages.size_in_bytes()
    }

    /// Whether `address` lies in the guard page below the stack.
    pub fn guard_contains(&self, address: VirtualAddress) -> bool {
        let start = self.guard.start_address().value();
        (start..start + PAGE_SIZE).contains(&address.value())
    }

    /// The stack's bytes `top - count*8 .. top` as seen through the direct map, for writing the first frame of a new
    /// task from another CPU without touching (and caching TLB entries for) the stack's own virtual pages. (Since
    /// dropped mappings are shot down on every CPU this is no longer required for safety; it keeps the spawning
    /// CPU's TLB free of entries it does not need.)
    pub(crate) fn top_words_through_direct_map(&mut self, count: usize) -> &mut [usize] {
        assert!(count * 8 <= self.size_in_bytes(), "initial frame larger than the stack");
        let physical_top = self.pages.physical_start_address().value() + self.pages.size_in_bytes();
        let start = memory::layout::PHYSICAL_MEMORY_OFFSET + physical_top - count * 8;
        // SAFETY: the stack's frames are contiguous (one `AllocatedFrames`), owned by this `Stack`, and direct-mapped
        // (every allocatable frame is); `&mut self` makes the access exclusive, and no task runs on the stack yet
        // (the caller only writes the initial frame of a task that has never run).
        unsafe { core::slice::from_raw_parts_mut(start as *mut usize, count) }
    }
}
