//! Segregated free lists (size classes) for the kernel heap: [`SizeClass`] and [`FreeLists`].
//!
//! # Purpose
//! A first-fit heap walks its free list on every allocation and coalesces on every free. Most kernel
//! allocations are small and of few sizes, so the heap keeps, in front of its first-fit backing allocator, one
//! free list per size class: a freed small block goes to the head of its class's list, and the next request of
//! that class takes it back, both in O(1) with a handful of memory accesses. A miss (empty list) goes to the
//! backing allocator for one block of the class's size.
//!
//! # Size classes
//! [`CLASS_COUNT`] classes of [`CLASS_STEP`] (16) bytes each: class `n` serves requests of `16n + 1 ..= 16(n+1)`
//! bytes (size 0 counts as 1) with alignment at most [`CLASS_ALIGN`] (16), and its blocks are exactly
//! `16(n+1)` bytes, 16-aligned ([`SizeClass::block_layout`]). Larger or more aligned requests have no class.
//! Because the class depends only on the layout, a block freed with the layout it was allocated with (the
//! `GlobalAlloc` contract) returns to the class it came from.
//!
//! # Fault tolerance (what a fault in the middle of an operation leaves behind)
//! Each list is a chain of [`FreeBlock`]s through their first word, with a head pointer per class and a count.
//! Every list update commits with one store to the head, after every other store it depends on (a compiler
//! fence keeps that order; x86-64 keeps stores in order for the CPU):
//! - [`FreeLists::push`] writes the block's link, then the head: a fault before the head store leaves the block
//!   outside the list (leaked, still counted as used), never a head pointing at an unlinked block.
//! - [`FreeLists::pop`] reads the link, checks it, then stores the head: a fault before the head store leaves
//!   the block in the list (and the caller never got it).
//!
//! The counts are updated after the commit, so a fault can leave one count off by one; [`FreeLists::repair`]
//! (run by the heap after the fault path released its lock) recounts every list. Independently of faults in the
//! allocator, a link overwritten by someone else (a use after free, a flipped bit) is caught when it would
//! become a head: a link outside the region, misaligned, or too close to the region's end for the class makes
//! [`FreeLists::pop`] quarantine the rest of that list (it is leaked and counted in
//! [`FreeLists::quarantined_bytes`]) instead of handing out a wild pointer later. A check cannot catch a link
//! that still points at a plausible block of the region.
//!
//! The crate has no locks: the caller serializes all calls on one [`FreeLists`] (the kernel heap holds its lock).
//! Host-tested: `cargo test -p size_classes`.
#![cfg_attr(not(test), no_std)]

use core::alloc::Layout;
use core::ops::Range;
use core::ptr::{self, NonNull};
use core::sync::atomic::{Ordering, compiler_fence};

/// Bytes between the block sizes of neighbouring classes (and the size of the smallest class).
pub const CLASS_STEP: usize = 16;
/// How many size classes there are.
pub const CLASS_COUNT: usize = 64;
/// The largest request size, in bytes, that has a class (inclusive).
pub const MAX_CLASS_SIZE: usize = CLASS_STEP * CLASS_COUNT;
/// The alignment of every class block, in bytes, and the largest requested alignment a class serves.
pub const CLASS_ALIGN: usize = 16;

/// A size class: block sizes `16 ..= 1024` bytes in steps of 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SizeClass(u8);

impl SizeClass {
    /// The class serving `layout`, or `None` if its size exceeds [`MAX_CLASS_SIZE`] or its alignment exceeds
    /// [`CLASS_ALIGN`] (such requests go to the backing allocator).
    #[inline]
    pub fn of(layout: Layout) -> Option<SizeClass> {
        if layout.size() > MAX_CLASS_SIZE || layout.align() > CLASS_ALIGN {
            return None;
        }
        Some(SizeClass((layout.size().saturating_sub(1) / CLASS_STEP) as u8))
    }

    /// The class with index `index` (`0 .. CLASS_COUNT`), or `None` past the last class.
    pub const fn from_index(index: usize) -> Option<SizeClass> {
        if index < CLASS_COUNT { Some(SizeClass(index as u8)) } else { None }
    }

    /// The index, `0 .. CLASS_COUNT`.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// The size of this class's blocks, in bytes (a multiple of 16, at least every size the class serves).
    #[inline]
    pub const fn block_size(self) -> usize {
        (self.0 as usize + 1) * CLASS_STEP
    }

    /// The layout a class block is allocated with from the backing allocator: [`Self::block_size`] bytes,
    /// [`CLASS_ALIGN`]-aligned.
    #[inline]
    pub const fn block_layout(self) -> Layout {
        // SAFETY: the size is at most 1024 and the alignment 16, a power of two, so the layout is valid (a size
        // rounded up to the alignment cannot overflow `isize`).
        unsafe { Layout::from_size_align_unchecked(self.block_size(), CLASS_ALIGN) }
    }

    /// Every class, smallest first.
    pub fn all() -> impl DoubleEndedIterator<Item = SizeClass> {
        (0..CLASS_COUNT).map(|index| SizeClass(index as u8))
    }
}

/// The first word of a free class block: the link to the next free block of its class (null: the last one).
#[repr(C)]
pub struct FreeBlock {
    next: *mut FreeBlock,
}

/// What [`FreeLists::repair`] found and fixed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Lists whose count did not match their length (now corrected).
    pub recounted_lists: usize,
    /// Lists cut at an implausible link or a cycle (the rest is quarantined).
    pub cut_lists: usize,
}

/// One free list per [`SizeClass`], over blocks inside one region of memory (see the crate docs).
pub struct FreeLists {
    /// The first free block of each class (null: empty).
    heads: [*mut FreeBlock; CLASS_COUNT],
    /// How many blocks each list holds.
    counts: [usize; CLASS_COUNT],
    /// Start of the region every block lies in (inclusive), as an address.
    region_start: usize,
    /// End of the region (exclusive).
    region_end: usize,
    /// Bytes cut off corrupted lists: lost for good (counted as used).
    quarantined_bytes: usize,
}

// SAFETY: the lists own the free blocks they point to (no one else uses a free block); moving the lists to another
// thread moves that ownership, and every access goes through `&mut self`.
unsafe impl Send for FreeLists {}

impl FreeLists {
    /// Empty lists over an empty region (set it with [`Self::set_region`] before pushing blocks).
    pub const fn new() -> Self {
        Self {
            heads: [ptr::null_mut(); CLASS_COUNT],
            counts: [0; CLASS_COUNT],
            region_start: 0,
            region_end: 0,
            quarantined_bytes: 0,
        }
    }

    /// Sets the region all blocks lie in (addresses; `end` exclusive). Blocks outside it are refused by the
    /// plausibility checks, so set it before the first [`Self::push`].
    pub fn set_region(&mut self, region: Range<usize>) {
        self.region_start = region.start;
        self.region_end = region.end;
    }

    /// Takes a free block of `class`: [`SizeClass::block_size`] bytes, 16-aligned, inside the region; `None` if
    /// the list is empty. If the block's link is implausible (see the crate docs), the rest of the list is
    /// quarantined and the block is still returned (it was checked when it became the head).
    #[inline]
    pub fn pop(&mut self, class: SizeClass) -> Option<NonNull<u8>> {
        let index = class.index();
        let head = NonNull::new(self.heads[index])?;
        // SAFETY: `head` is a free block of this class: it was pushed (by the `push` contract, a block of this
        // class that nobody else uses) and checked plausible when it became the head, so its first word is ours.
        let next = unsafe { head.as_ptr().read().next };
        if !self.is_plausible(next, class) {
            self.quarantine(class, 1);
            return Some(head.cast());
        }
        // The commit: the block leaves the list with this one store.
        self.heads[index] = next;
        compiler_fence(Ordering::Release);
        self.counts[index] -= 1;
        Some(head.cast())
    }

    /// Gives `block` to the list of `class`.
    ///
    /// # Safety
    /// `block` must be a block of [`SizeClass::block_size`]`(class)` bytes, 16-aligned, inside the region, that
    /// the caller owns and never uses again (until [`Self::pop`] hands it out), and not already in a list.
    #[inline]
    pub unsafe fn push(&mut self, class: SizeClass, block: NonNull<u8>) {
        let index = class.index();
        let block = block.cast::<FreeBlock>();
        // SAFETY: the caller hands over a writable block of at least 16 bytes, 16-aligned.
        unsafe { block.as_ptr().write(FreeBlock { next: self.heads[index] }) };
        // The link must be in memory before the head points at the block (see the crate docs).
        compiler_fence(Ordering::Release);
        // The commit.
        self.heads[index] = block.as_ptr();
        compiler_fence(Ordering::Release);
        self.counts[index] += 1;
    }

    /// Whether `link` may be the next block of a `class` list: null, or 16-aligned with the whole block inside
    /// the region.
    #[inline]
    ///
    /// Evaluated without short-circuiting (`|`, `&` on the three tests), so the pop's fast path takes one branch on
    /// the result instead of one per test (under QEMU's TCG each branch ends a translated block).
    fn is_plausible(&self, link: *mut FreeBlock, class: SizeClass) -> bool {
        let address = link as usize;
        // Below the region start the offset wraps around to a huge value and fails the bound.
        let offset = address.wrapping_sub(self.region_start);
        let last_start = self.region_end.saturating_sub(class.block_size()).saturating_sub(self.region_start);
        (address == 0)
            | ((address.is_multiple_of(CLASS_ALIGN)) & (offset <= last_start) & (address >= self.region_start))
    }

    /// Cuts the list of `class` off (its blocks, less `handed_out` of them, are lost for good).
    #[cold]
    fn quarantine(&mut self, class: SizeClass, handed_out: usize) {
        let index = class.index();
        let lost = self.counts[index].saturating_sub(handed_out);
        self.heads[index] = ptr::null_mut();
        self.counts[index] = 0;
        self.quarantined_bytes += lost * class.block_size();
    }

    /// How many free blocks the list of `class` holds.
    pub fn count(&self, class: SizeClass) -> usize {
        self.counts[class.index()]
    }

    /// Bytes held in all lists (free for reuse by their class), in bytes.
    pub fn cached_bytes(&self) -> usize {
        SizeClass::all().map(|class| self.counts[class.index()] * class.block_size()).sum()
    }

    /// Bytes cut off corrupted lists so far (never reused).
    pub fn quarantined_bytes(&self) -> usize {
        self.quarantined_bytes
    }

    /// Empties every list, giving each block with its class to `release` (e.g. back to the backing allocator).
    pub fn drain(&mut self, mut release: impl FnMut(NonNull<u8>, SizeClass)) {
        for class in SizeClass::all() {
            while let Some(block) = self.pop(class) {
                release(block, class);
            }
        }
    }

    /// Walks every list, cutting it at the first implausible link or after more blocks than the region can hold
    /// (a cycle), and sets each count to the list's real length. Run after a fault inside an operation (see the
    /// crate docs). Cost: one read per free block.
    pub fn repair(&mut self) -> RepairReport {
        let mut report = RepairReport::default();
        for class in SizeClass::all() {
            let index = class.index();
            let (length, end) = self.walk(class);
            let counted = self.counts[index];
            match end {
                ListEnd::Null if length == counted => continue,
                ListEnd::Null => report.recounted_lists += 1,
                ListEnd::BadLink { last } => {
                    report.cut_lists += 1;
                    match NonNull::new(last) {
                        // SAFETY: `last` is the last plausible block of the list, a free block the lists own.
                        Some(last) => unsafe { (*last.as_ptr()).next = ptr::null_mut() },
                        None => self.heads[index] = ptr::null_mut(),
                    }
                }
                ListEnd::TooLong => {
                    // A cycle: which blocks are really free cannot be told, so the whole list goes.
                    report.cut_lists += 1;
                    self.quarantine(class, 0);
                    continue;
                }
            }
            self.quarantined_bytes += counted.saturating_sub(length) * class.block_size();
            self.counts[index] = length;
        }
        report
    }

    /// Follows the list of `class` from its head: its length up to the first implausible link, and how it ends.
    fn walk(&self, class: SizeClass) -> (usize, ListEnd) {
        let most = (self.region_end - self.region_start) / class.block_size();
        let mut length = 0;
        let mut last: *mut FreeBlock = ptr::null_mut();
        let mut cursor = self.heads[class.index()];
        loop {
            if cursor.is_null() {
                return (length, ListEnd::Null);
            }
            if !self.is_plausible(cursor, class) {
                return (length, ListEnd::BadLink { last });
            }
            if length == most {
                return (length, ListEnd::TooLong);
            }
            length += 1;
            last = cursor;
            // SAFETY: `cursor` is a plausible block of the region on this class's list: a free block the lists
            // own (a link that someone overwrote with another plausible address is the one case the checks cannot
            // tell apart, see the crate docs).
            cursor = unsafe { cursor.read().next };
        }
    }
}

/// How a walk along a list ended.
enum ListEnd {
    /// At a null link: the list is well formed.
    Null,
    /// At an implausible link, stored in `last` (null: in the head).
    BadLink { last: *mut FreeBlock },
    /// After more blocks than the region can hold: the list has a cycle.
    TooLong,
}

impl Default for FreeLists {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64 KiB, 16-aligned arena standing in for the heap region.
    struct Arena {
        memory: Vec<u128>,
    }

    impl Arena {
        fn new() -> Self {
            Self { memory: vec![0; 4096] }
        }
        fn region(&mut self) -> Range<usize> {
            let start = self.memory.as_mut_ptr() as usize;
            start..start + self.memory.len() * 16
        }
        fn block(&mut self, offset: usize) -> NonNull<u8> {
            assert_eq!(offset % 16, 0);
            NonNull::new(self.memory.as_mut_ptr().cast::<u8>().wrapping_add(offset)).unwrap()
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes_cover_their_sizes() {
        for size in 0..=MAX_CLASS_SIZE {
            let class = SizeClass::of(layout(size, 1)).expect("small sizes have a class");
            assert!(class.block_size() >= size.max(1), "size {size}");
            assert!(class.block_size() < size.max(1) + CLASS_STEP, "size {size} wastes a whole step");
            assert_eq!(class.block_layout().align(), CLASS_ALIGN);
            assert_eq!(SizeClass::from_index(class.index()), Some(class));
        }
        assert_eq!(SizeClass::of(layout(MAX_CLASS_SIZE + 1, 1)), None);
        assert_eq!(SizeClass::of(layout(8, 32)), None);
        assert_eq!(SizeClass::from_index(CLASS_COUNT), None);
        assert_eq!(SizeClass::all().count(), CLASS_COUNT);
    }

    #[test]
    fn pop_returns_pushed_blocks_last_in_first_out() {
        let mut arena = Arena::new();
        let mut lists = FreeLists::new();
        lists.set_region(arena.region());
        let class = SizeClass::of(layout(40, 8)).unwrap();
        let (first, second) = (arena.block(0), arena.block(64));
        assert_eq!(lists.pop(class), None);
        // SAFETY: both blocks are 48-byte, 16-aligned parts of the arena that nothing else uses.
        unsafe {
            lists.push(class, first);
            lists.push(class, second);
        }
        assert_eq!(lists.count(class), 2);
        assert_eq!(lists.cached_bytes(), 2 * class.block_size());
        let other = SizeClass::of(layout(100, 1)).unwrap();
        assert_eq!(lists.pop(other), None, "classes do not share blocks");
        assert_eq!(lists.pop(class), Some(second));
        assert_eq!(lists.pop(class), Some(first));
        assert_eq!(lists.pop(class), None);
        assert_eq!(lists.cached_bytes(), 0);
    }

    #[test]
    fn an_overwritten_link_quarantines_the_rest() {
        let mut arena = Arena::new();
        let region = arena.region();
        let mut lists = FreeLists::new();
        lists.set_region(region.clone());
        let class = SizeClass::of(layout(16, 16)).unwrap();
        let blocks: Vec<_> = (0..4).map(|index| arena.block(index * 16)).collect();
        for &block in &blocks {
            // SAFETY: distinct 16-byte blocks of the arena.
            unsafe { lists.push(class, block) };
        }
        // A use after free writes a wild value into the head block's link.
        // SAFETY: the block is part of the arena.
        unsafe { blocks[3].cast::<usize>().write(region.end + 4096) };
        assert_eq!(lists.pop(class), Some(blocks[3]), "the head itself was checked and is handed out");
        assert_eq!(lists.quarantined_bytes(), 3 * class.block_size());
        assert_eq!(lists.count(class), 0);
        assert_eq!(lists.pop(class), None, "the wild link is never followed");
        assert_eq!(lists.cached_bytes(), 0);
    }

    #[test]
    fn misaligned_and_end_of_region_links_are_implausible() {
        let mut arena = Arena::new();
        let region = arena.region();
        let mut lists = FreeLists::new();
        lists.set_region(region.clone());
        let class = SizeClass::from_index(CLASS_COUNT - 1).unwrap();
        for wild in [region.start + 8, region.end - 16] {
            let block = arena.block(0);
            // SAFETY: a 1 KiB block at the arena's start; the list is empty before each round.
            unsafe {
                lists.push(class, block);
                block.cast::<usize>().write(wild);
            }
            assert_eq!(lists.pop(class), Some(block));
            assert_eq!(lists.pop(class), None, "link {wild:#x} must not be followed");
        }
    }

    #[test]
    fn repair_recounts_and_cuts() {
        let mut arena = Arena::new();
        let region = arena.region();
        let mut lists = FreeLists::new();
        lists.set_region(region.clone());
        let small = SizeClass::of(layout(1, 1)).unwrap();
        let large = SizeClass::of(layout(512, 1)).unwrap();
        for index in 0..5 {
            // SAFETY: distinct blocks of the arena (small ones below 1 KiB, large ones from 8 KiB on).
            unsafe {
                lists.push(small, arena.block(index * 16));
                lists.push(large, arena.block(8192 + index * 512));
            }
        }
        assert_eq!(lists.repair(), RepairReport::default(), "consistent lists need no repair");
        // A fault between the commit and the count update leaves a count off by one.
        lists.counts[small.index()] += 1;
        // A link in the middle of the large list was overwritten.
        // SAFETY: the third block pushed (index 2) is in the arena.
        unsafe { arena.block(8192 + 2 * 512).cast::<usize>().write(3) };
        let report = lists.repair();
        assert_eq!(report, RepairReport { recounted_lists: 1, cut_lists: 1 });
        assert_eq!(lists.count(small), 5);
        assert_eq!(lists.count(large), 3, "blocks 4, 3, 2 stay; the wild link after 2 is cut");
        let mut drained = Vec::new();
        lists.drain(|block, class| drained.push((block, class)));
        assert_eq!(drained.len(), 8);
        assert_eq!(lists.cached_bytes(), 0);
    }

    #[test]
    fn repair_breaks_a_cycle() {
        let mut arena = Arena::new();
        let mut lists = FreeLists::new();
        lists.set_region(arena.region());
        let class = SizeClass::of(layout(1000, 8)).unwrap();
        let (first, second) = (arena.block(0), arena.block(1024));
        // SAFETY: two distinct 1 KiB blocks of the arena.
        unsafe {
            lists.push(class, first);
            lists.push(class, second);
            // Corrupt: the first block links back to the second.
            first.cast::<usize>().write(second.as_ptr() as usize);
        }
        let report = lists.repair();
        assert_eq!(report.cut_lists, 1);
        let mut popped = 0;
        while lists.pop(class).is_some() {
            popped += 1;
            assert!(popped <= 64, "the cycle must be gone");
        }
        assert_eq!(lists.count(class), 0);
    }
}
