//! The heap's two layers without the lock: size-class free lists in front of a first-fit heap (see the `heap`
//! module for the design, the lock and the accounting). Host-tested: `cargo test -p memory heap_state`.

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use linked_list_allocator::Heap;
use size_classes::{FreeLists, RepairReport, SizeClass};

/// Everything the heap lock protects.
pub(crate) struct HeapState {
    /// Free blocks of the small size classes (all taken from `backing`, all inside the heap region).
    classes: FreeLists,
    /// The first-fit heap over the whole region: large blocks, and the class blocks (free or not).
    backing: Heap,
}

impl HeapState {
    /// An empty heap: every allocation fails until [`Self::init`].
    pub(crate) const fn new() -> Self {
        Self { classes: FreeLists::new(), backing: Heap::empty() }
    }

    /// A block for `layout`: from its class's list when it has one, else from the backing heap.
    #[inline]
    pub(crate) fn allocate(&mut self, layout: Layout) -> *mut u8 {
        match SizeClass::of(layout) {
            Some(class) => match self.classes.pop(class) {
                Some(block) => block.as_ptr(),
                None => self.allocate_backing(class.block_layout()),
            },
            None => self.allocate_backing(layout),
        }
    }

    /// Frees `block`, allocated by [`Self::allocate`] with `layout`.
    ///
    /// # Safety
    /// `block` must come from `allocate(layout)` with this same `layout` and not have been freed since.
    #[inline]
    pub(crate) unsafe fn deallocate(&mut self, block: NonNull<u8>, layout: Layout) {
        match SizeClass::of(layout) {
            // SAFETY: `allocate` gave out a block of this class (the class depends on the layout alone): a
            // 16-aligned block of the class size inside the region, now handed back by its owner.
            Some(class) => unsafe { self.classes.push(class, block) },
            // SAFETY: a block without a class came from the backing heap with this layout.
            None => unsafe { self.backing.deallocate(block, layout) },
        }
    }

    /// A free block of `class` from its central list only (`None` if the list is empty): a per-CPU refill takes
    /// blocks this way and never grows the backing heap's share for them.
    #[inline]
    pub(crate) fn take_class_block(&mut self, class: SizeClass) -> Option<NonNull<u8>> {
        self.classes.pop(class)
    }

    /// Puts a free block of `class` on its central list (a per-CPU list giving blocks back).
    ///
    /// # Safety
    /// `block` must be a free block of `class` that came from this heap (from [`Self::allocate`] with a layout of
    /// that class, or [`Self::take_class_block`]) and that nobody uses any more.
    #[inline]
    pub(crate) unsafe fn give_class_block(&mut self, class: SizeClass, block: NonNull<u8>) {
        // SAFETY: the caller's contract: a free class block of this heap's region.
        unsafe { self.classes.push(class, block) };
    }

    /// Hands the region `start .. start + size` to the heap.
    ///
    /// # Safety
    /// The region must be writable, unused, owned by the heap from now on, and valid for its whole lifetime;
    /// call once.
    pub(crate) unsafe fn init(&mut self, start: *mut u8, size: usize) {
        let begin = start as usize;
        self.classes.set_region(begin..begin + size);
        // SAFETY: the caller's guarantees are the backing heap's.
        unsafe { self.backing.init(start, size) };
    }

    /// `(used, free)` bytes: blocks in the class lists count as free (see the `heap` module docs).
    pub(crate) fn usage(&self) -> (usize, usize) {
        let cached = self.classes.cached_bytes();
        (self.backing.used() - cached, self.backing.free() + cached)
    }

    /// Recounts and checks the class lists after a fault inside an operation (see `size_classes`).
    pub(crate) fn repair(&mut self) -> RepairReport {
        self.classes.repair()
    }

    /// A block from the backing heap; on failure, returns every cached class block to it and tries once more,
    /// unless the request is larger than everything free and cached together (a drain costs one first-fit free
    /// per cached block, with interrupts off, and could not help).
    #[cold]
    fn allocate_backing(&mut self, layout: Layout) -> *mut u8 {
        if let Ok(block) = self.backing.allocate_first_fit(layout) {
            return block.as_ptr();
        }
        let cached = self.classes.cached_bytes();
        if cached == 0 || layout.size() > self.backing.free() + cached {
            return ptr::null_mut();
        }
        let backing = &mut self.backing;
        // SAFETY: every block in the class lists came from the backing heap with its class's block layout and is
        // free (owned by the lists, which give it up here).
        self.classes.drain(|block, class| unsafe { backing.deallocate(block, class.block_layout()) });
        self.backing.allocate_first_fit(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A heap over a fresh 64 KiB, 16-aligned buffer (returned too: keep it alive as long as the heap).
    fn test_heap() -> (HeapState, Vec<u128>) {
        let mut memory = vec![0u128; 4096];
        let mut state = HeapState::new();
        // SAFETY: the caller keeps the buffer (whose storage does not move with the `Vec`) alive as long as the
        // state, and nothing else touches it.
        unsafe { state.init(memory.as_mut_ptr().cast(), memory.len() * 16) };
        (state, memory)
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    /// Allocates `layout` from `state`, checking that the block is there and aligned.
    fn allocate_checked(state: &mut HeapState, layout: Layout) -> *mut u8 {
        let block = state.allocate(layout);
        assert!(!block.is_null(), "{layout:?} failed");
        assert_eq!(block as usize % layout.align().max(16), 0, "{layout:?} misaligned");
        block
    }

    /// Frees `block`, which the test allocated from `state` with `layout`.
    fn free(state: &mut HeapState, block: *mut u8, layout: Layout) {
        // SAFETY: every caller passes a live block it allocated from `state` with `layout`.
        unsafe { state.deallocate(NonNull::new(block).unwrap(), layout) };
    }

    #[test]
    fn a_freed_small_block_is_reused_and_counts_as_free() {
        let (mut state, _memory) = test_heap();
        let (used_before, free_before) = state.usage();
        let small = layout(24, 8);
        let block = allocate_checked(&mut state, small);
        let class = SizeClass::of(small).unwrap();
        assert_eq!(state.usage().0, used_before + class.block_size());
        free(&mut state, block, small);
        assert_eq!(state.usage(), (used_before, free_before), "a cached block is free");
        assert_eq!(state.allocate(layout(17, 1)), block, "a request of the same class takes the cached block");
    }

    #[test]
    fn large_and_overaligned_requests_bypass_the_classes() {
        let (mut state, _memory) = test_heap();
        for wanted in [layout(2000, 8), layout(64, 64)] {
            let block = allocate_checked(&mut state, wanted);
            free(&mut state, block, wanted);
            assert_eq!(state.classes.cached_bytes(), 0, "{wanted:?} must not end up in a class list");
        }
        assert_eq!(state.usage().0, 0);
    }

    #[test]
    fn cached_blocks_go_back_when_a_large_request_needs_them() {
        let (mut state, _memory) = test_heap();
        let (_, total) = state.usage();
        // Fill the whole region with small blocks, then free them all into their class list.
        let small = layout(64, 8);
        let mut blocks = Vec::new();
        loop {
            let block = state.allocate(small);
            if block.is_null() {
                break;
            }
            blocks.push(block);
        }
        assert!(blocks.len() * 64 > total / 2, "the region was filled");
        for &block in &blocks {
            free(&mut state, block, small);
        }
        assert_eq!(state.usage().0, 0);
        // Only a drain of the class list (and coalescing in the backing heap) makes room for this.
        let large = layout(total / 2, 16);
        let block = state.allocate(large);
        assert!(!block.is_null(), "the large request must succeed after the drain");
        assert_eq!(state.classes.cached_bytes(), 0);
        // A request larger than the region fails at once and keeps the heap usable.
        assert!(state.allocate(layout(total * 2, 16)).is_null());
        free(&mut state, block, large);
        assert_eq!(state.usage(), (0, total));
    }

    #[test]
    fn repair_after_a_clean_state_reports_nothing() {
        let (mut state, _memory) = test_heap();
        let blocks: Vec<_> = (1..=100).map(|size| (state.allocate(layout(size, 1)), size)).collect();
        for &(block, size) in &blocks {
            free(&mut state, block, layout(size, 1));
        }
        let usage = state.usage();
        assert_eq!(state.repair(), RepairReport::default());
        assert_eq!(state.usage(), usage);
    }
}
