//! The global virtual page allocator over the page-allocator region, and [`AllocatedPages`].

use crate::deferred::retry_after_flush;
use crate::layout::{PAGE_REGION_END, PAGE_REGION_START};
use crate::sync::with_lock;
use core::fmt;
use memory_structs::{PAGE_SIZE, Page, VirtualAddress};
use owned_spin::OwnedSpinLock;
use range_allocator::{AllocateError, RangeAllocator, UnitRange};

/// Capacity of the free-page set, in disjoint ranges (32 KiB of `.bss`).
pub const PAGE_RANGE_CAPACITY: usize = 2048;

/// The free pages of `PAGE_REGION_START..PAGE_REGION_END`, as page numbers. The lock protects the free set; it is
/// never held while taking another lock of this crate.
pub(crate) static PAGE_ALLOCATOR: OwnedSpinLock<RangeAllocator<PAGE_RANGE_CAPACITY>> =
    OwnedSpinLock::new(RangeAllocator::new());

/// The page-allocator region as page numbers.
#[cfg_attr(
    not(target_os = "none"),
    allow(dead_code, reason = "used by the kernel-only modules; the host build only tests it")
)]
pub(crate) fn page_region() -> UnitRange {
    UnitRange::new(PAGE_REGION_START / PAGE_SIZE, PAGE_REGION_END / PAGE_SIZE).unwrap_or_default()
}

/// Fills the page allocator with the whole page region. Called once by `memory::init`.
#[cfg_attr(
    not(target_os = "none"),
    allow(dead_code, reason = "used by the kernel-only modules; the host build only tests it")
)]
pub(crate) fn init() -> Result<(), range_allocator::AddError> {
    with_lock(&PAGE_ALLOCATOR, |allocator| allocator.add(page_region()))
}

/// A contiguous range of virtual pages in the page-allocator region (top 2 GiB), owned by the holder; dropping it
/// returns the pages. Owning pages does not map them: see `MappedPages`.
#[must_use = "dropping AllocatedPages frees them at once"]
pub struct AllocatedPages {
    range: UnitRange,
}

impl AllocatedPages {
    /// The first page.
    pub fn start(&self) -> Page {
        Page::containing(self.start_address())
    }

    /// The virtual address of the first byte.
    pub fn start_address(&self) -> VirtualAddress {
        // Page numbers of the region come from canonical upper-half addresses; wrapping_mul restores them.
        VirtualAddress::new(self.range.start().wrapping_mul(PAGE_SIZE))
    }

    /// The number of pages (at least 1).
    pub fn count(&self) -> usize {
        self.range.count()
    }

    /// The size in bytes (`count * 4096`).
    pub fn size_in_bytes(&self) -> usize {
        self.range.count() * PAGE_SIZE
    }

    /// Splits off the first `count` pages: returns `(first count pages, the rest)`, e.g. a guard page and a stack.
    ///
    /// # Errors
    /// Returns `self` unchanged if `count` is 0 or not less than [`count`](Self::count).
    pub fn split_at(self, count: usize) -> Result<(AllocatedPages, AllocatedPages), AllocatedPages> {
        let Some((first, second)) = self.range.split_at(count) else { return Err(self) };
        core::mem::forget(self);
        Ok((AllocatedPages { range: first }, AllocatedPages { range: second }))
    }
}

impl fmt::Debug for AllocatedPages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AllocatedPages({:#x}, {} pages)", self.start_address().value(), self.count())
    }
}

impl Drop for AllocatedPages {
    fn drop(&mut self) {
        // Only fails if the free set is full; the pages are then lost from the region (1776 MiB of address space,
        // so this is harmless and would need over 2048 disjoint holes).
        let _ = with_lock(&PAGE_ALLOCATOR, |allocator| allocator.free(self.range));
    }
}

/// Allocates `count` contiguous pages (4 KiB each) in the page-allocator region.
///
/// # Errors
/// [`AllocateError::ZeroCount`], [`AllocateError::OutOfSpace`], or [`AllocateError::CapacityExceeded`].
pub fn allocate_pages(count: usize) -> Result<AllocatedPages, AllocateError> {
    allocate_pages_aligned(count, 1)
}

/// Allocates `count` contiguous pages whose first page number is a multiple of `alignment` (in pages).
///
/// # Errors
/// As [`allocate_pages`], plus [`AllocateError::InvalidAlignment`].
pub fn allocate_pages_aligned(count: usize, alignment: usize) -> Result<AllocatedPages, AllocateError> {
    retry_after_flush(|| with_lock(&PAGE_ALLOCATOR, |allocator| allocator.allocate(count, alignment)))
        .map(|range| AllocatedPages { range })
}

/// Allocates the `count` pages starting at the page that contains `start`.
///
/// # Errors
/// [`AllocateError::NotFree`] if any of them is outside the region or already allocated; [`AllocateError::ZeroCount`];
/// [`AllocateError::CapacityExceeded`].
pub fn allocate_pages_at(start: VirtualAddress, count: usize) -> Result<AllocatedPages, AllocateError> {
    let range = UnitRange::with_count(start.value() / PAGE_SIZE, count).ok_or(AllocateError::ZeroCount)?;
    retry_after_flush(|| with_lock(&PAGE_ALLOCATOR, |allocator| allocator.allocate_at(range)))
        .map(|()| AllocatedPages { range })
}

/// The number of free pages in the page-allocator region (pages of dropped mappings that still wait for their TLB
/// shootdown are not counted until [`crate::stats`] or a failed allocation flushes them).
pub fn free_page_count() -> usize {
    with_lock(&PAGE_ALLOCATOR, |allocator| allocator.free_units())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test that touches the global page allocator.
    #[test]
    fn pages_come_from_the_region_and_return_on_drop() {
        init().unwrap();
        let total = free_page_count();
        assert_eq!(total, (PAGE_REGION_END - PAGE_REGION_START) / PAGE_SIZE);
        let pages = allocate_pages(3).unwrap();
        assert_eq!(pages.start_address().value(), PAGE_REGION_START);
        assert_eq!(pages.size_in_bytes(), 3 * PAGE_SIZE);
        let (guard, stack) = pages.split_at(1).unwrap();
        assert_eq!(stack.start_address().value(), PAGE_REGION_START + PAGE_SIZE);
        assert_eq!(stack.start().number(), PAGE_REGION_START / PAGE_SIZE + 1);
        drop(guard);
        assert_eq!(free_page_count(), total - 2);
        drop(stack);
        assert_eq!(free_page_count(), total);
        let big = allocate_pages_aligned(1, 512).unwrap();
        assert!(big.start_address().value().is_multiple_of(2 << 20));
        assert!(allocate_pages_at(VirtualAddress::new(0x1000), 1).is_err());
        let at = allocate_pages_at(VirtualAddress::new(PAGE_REGION_START + 0x10_0000), 2).unwrap();
        assert_eq!(at.start_address().value(), PAGE_REGION_START + 0x10_0000);
        assert!(allocate_pages(usize::MAX / 2).is_err());
    }
}
