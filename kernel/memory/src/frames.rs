//! The global physical frame allocator and [`AllocatedFrames`].

use crate::deferred::retry_after_flush;
use crate::layout::LOW_MEMORY_SIZE;
use crate::sync::with_lock;
use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};
use memory_structs::{Frame, PAGE_SIZE, PhysicalAddress};
use owned_spin::OwnedSpinLock;
use range_allocator::{AllocateError, RangeAllocator, UnitRange};

/// Capacity of the free-frame set, in disjoint ranges (32 KiB of `.bss`).
pub const FRAME_RANGE_CAPACITY: usize = 2048;

/// The free physical frames, as frame numbers. The lock protects the free set and its counters: every allocation
/// and free of physical memory goes through it. Lock order: taken after `paging::KERNEL_PAGE_TABLE` (page-table
/// construction allocates frames), never while holding `pages::PAGE_ALLOCATOR`.
pub(crate) static FRAME_ALLOCATOR: OwnedSpinLock<RangeAllocator<FRAME_RANGE_CAPACITY>> =
    OwnedSpinLock::new(RangeAllocator::new());

/// Frames that could not be returned because the free set was full (see [`AllocatedFrames`]'s `Drop`).
static LEAKED_FRAMES: AtomicUsize = AtomicUsize::new(0);

/// Frames below this number are handed out only when explicitly requested or when nothing else is left, so that
/// the low 1 MiB stays available for uses that need it (e.g. the real-mode trampoline that starts other CPUs).
const LOW_MEMORY_FRAMES: usize = LOW_MEMORY_SIZE / PAGE_SIZE;

/// A contiguous range of physical frames owned by the holder; dropping it returns the frames to the allocator.
///
/// Never empty. The frames' contents are unspecified on allocation.
#[must_use = "dropping AllocatedFrames frees them at once"]
pub struct AllocatedFrames {
    range: UnitRange,
}

impl AllocatedFrames {
    /// The first frame.
    pub fn start(&self) -> Frame {
        Frame::containing(self.start_address())
    }

    /// The physical address of the first byte.
    pub fn start_address(&self) -> PhysicalAddress {
        PhysicalAddress::new(self.range.start() * PAGE_SIZE)
    }

    /// The number of frames (at least 1).
    pub fn count(&self) -> usize {
        self.range.count()
    }

    /// The size in bytes (`count * 4096`).
    pub fn size_in_bytes(&self) -> usize {
        self.range.count() * PAGE_SIZE
    }

    /// Splits off the first `count` frames: returns `(first count frames, the rest)`. Each part frees itself.
    ///
    /// # Errors
    /// Returns `self` unchanged if `count` is 0 or not less than [`count`](Self::count) (a part would be empty).
    pub fn split_at(self, count: usize) -> Result<(AllocatedFrames, AllocatedFrames), AllocatedFrames> {
        let Some((first, second)) = self.range.split_at(count) else { return Err(self) };
        core::mem::forget(self);
        Ok((AllocatedFrames { range: first }, AllocatedFrames { range: second }))
    }

    /// The frame numbers (crate-internal).
    #[cfg_attr(
        not(target_os = "none"),
        allow(dead_code, reason = "used by the kernel-only modules; the host build only tests it")
    )]
    pub(crate) fn range(&self) -> UnitRange {
        self.range
    }

    /// Gives up ownership without freeing: the frames stay allocated forever (page tables, the heap).
    #[cfg_attr(
        not(target_os = "none"),
        allow(dead_code, reason = "used by the kernel-only modules; the host build only tests it")
    )]
    pub(crate) fn keep_forever(self) -> UnitRange {
        let range = self.range;
        core::mem::forget(self);
        range
    }
}

impl fmt::Debug for AllocatedFrames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AllocatedFrames({:#x}..{:#x})", self.range.start() * PAGE_SIZE, self.range.end() * PAGE_SIZE)
    }
}

impl Drop for AllocatedFrames {
    fn drop(&mut self) {
        // A failure means the free set is full (double frees cannot happen: AllocatedFrames is the only owner).
        // Drop cannot report it, so the frames are accounted as leaked rather than lost silently.
        if with_lock(&FRAME_ALLOCATOR, |allocator| allocator.free(self.range)).is_err() {
            LEAKED_FRAMES.fetch_add(self.range.count(), Ordering::Relaxed);
        }
    }
}

/// Allocates `count` contiguous frames (4 KiB each), preferring memory above 1 MiB.
///
/// # Errors
/// [`AllocateError::ZeroCount`], [`AllocateError::OutOfSpace`] (no contiguous run of `count` free frames), or
/// [`AllocateError::CapacityExceeded`].
pub fn allocate_frames(count: usize) -> Result<AllocatedFrames, AllocateError> {
    allocate_frames_aligned(count, 1)
}

/// Allocates `count` contiguous frames whose first frame number is a multiple of `alignment` (in frames; e.g. 512
/// for a 2 MiB-aligned block), preferring memory above 1 MiB.
///
/// # Errors
/// As [`allocate_frames`], plus [`AllocateError::InvalidAlignment`] if `alignment` is not a power of two.
pub fn allocate_frames_aligned(count: usize, alignment: usize) -> Result<AllocatedFrames, AllocateError> {
    let high = UnitRange::new(LOW_MEMORY_FRAMES, usize::MAX).unwrap_or_default();
    retry_after_flush(|| {
        with_lock(&FRAME_ALLOCATOR, |allocator| match allocator.allocate_within(count, alignment, high) {
            Err(AllocateError::OutOfSpace { .. }) => allocator.allocate(count, alignment),
            other => other,
        })
    })
    .map(|range| AllocatedFrames { range })
}

/// Allocates `count` contiguous frames that all lie below physical address `limit` (e.g. 1 MiB for a real-mode
/// trampoline, 4 GiB for a 32-bit DMA device).
///
/// # Errors
/// As [`allocate_frames`].
pub fn allocate_frames_below(count: usize, limit: PhysicalAddress) -> Result<AllocatedFrames, AllocateError> {
    let bounds = UnitRange::new(0, limit.value() / PAGE_SIZE).unwrap_or_default();
    retry_after_flush(|| with_lock(&FRAME_ALLOCATOR, |allocator| allocator.allocate_within(count, 1, bounds)))
        .map(|range| AllocatedFrames { range })
}

/// Allocates the `count` frames starting at the frame that contains `start`.
///
/// # Errors
/// [`AllocateError::NotFree`] if any of them is not free (reserved by the firmware, the kernel, a module, or already
/// allocated), [`AllocateError::ZeroCount`], or [`AllocateError::CapacityExceeded`].
pub fn allocate_frames_at(start: PhysicalAddress, count: usize) -> Result<AllocatedFrames, AllocateError> {
    let range = UnitRange::with_count(start.value() / PAGE_SIZE, count).ok_or(AllocateError::ZeroCount)?;
    retry_after_flush(|| with_lock(&FRAME_ALLOCATOR, |allocator| allocator.allocate_at(range)))
        .map(|()| AllocatedFrames { range })
}

/// The number of free frames (frames of dropped mappings that still wait for their TLB shootdown are not counted
/// until [`crate::stats`] or a failed allocation flushes them).
pub fn free_frame_count() -> usize {
    with_lock(&FRAME_ALLOCATOR, |allocator| allocator.free_units())
}

/// Calls `f` while holding the frame allocator's lock (interrupts disabled), for fault-path tests: `f` must not
/// allocate frames (it would spin on the lock forever), and may fault, which the fault path must survive (it
/// releases the lock: `release_memory_locks_held_within`).
pub fn with_frame_allocator_lock_held(f: fn()) {
    with_lock(&FRAME_ALLOCATOR, |_allocator| f());
}

/// Whether the frame allocator's lock is taken right now (a snapshot).
pub fn frame_allocator_is_locked() -> bool {
    FRAME_ALLOCATOR.holder().is_some()
}

/// The number of frames leaked because the free set was full when they were dropped (normally 0).
pub fn leaked_frame_count() -> usize {
    LEAKED_FRAMES.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test that touches the global allocator (tests run in parallel threads).
    #[test]
    fn global_frames_prefer_high_memory_free_on_drop_and_split() {
        with_lock(&FRAME_ALLOCATOR, |allocator| {
            allocator.add(UnitRange::new(1, 0x100).unwrap()).unwrap();
            allocator.add(UnitRange::new(0x100, 0x200).unwrap()).unwrap();
        });
        let total = free_frame_count();
        let frames = allocate_frames(4).unwrap();
        assert_eq!(frames.start_address().value(), 0x10_0000, "memory above 1 MiB comes first");
        assert_eq!(frames.size_in_bytes(), 4 * PAGE_SIZE);
        assert_eq!(free_frame_count(), total - 4);
        let (first, rest) = frames.split_at(1).unwrap();
        assert_eq!(rest.start().number(), 0x101);
        drop(first);
        assert_eq!(free_frame_count(), total - 3);
        drop(rest);
        assert_eq!(free_frame_count(), total);

        let low = allocate_frames_below(2, PhysicalAddress::new(0x10_0000)).unwrap();
        assert_eq!(low.start().number(), 1);
        assert!(matches!(allocate_frames_at(PhysicalAddress::new(0x1000), 1), Err(AllocateError::NotFree(_))));
        let exact = allocate_frames_at(PhysicalAddress::new(0x5000), 3).unwrap();
        assert_eq!(exact.count(), 3);
        let aligned = allocate_frames_aligned(1, 64).unwrap();
        assert_eq!(aligned.start().number() % 64, 0);
        assert!(allocate_frames(0x1000).is_err());
        drop((low, exact, aligned));
        // High memory exhausted: falls back to low memory.
        let all_high = allocate_frames(0x100).unwrap();
        let fallback = allocate_frames(1).unwrap();
        assert!(fallback.start().number() < 0x100);
        drop((all_high, fallback));
        assert_eq!(free_frame_count(), total);
        assert_eq!(leaked_frame_count(), 0);
    }
}
