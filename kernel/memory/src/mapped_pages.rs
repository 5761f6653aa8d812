//! [`MappedPages`]: an owned, mapped range of virtual pages, unmapped when dropped.

use crate::access::{Permissions, PlainData, check_access, slice_length};
use crate::errors::{AccessError, MapError, RemapError};
use crate::frames::{AllocatedFrames, allocate_frames};
use crate::pages::{AllocatedPages, allocate_pages};
use crate::paging;
use crate::sync::with_lock;
use crate::{direct_map, init::MANAGED_FRAMES};
use core::fmt;
use memory_structs::{PAGE_SIZE, PhysicalAddress, VirtualAddress};
use range_allocator::UnitRange;

/// What is behind the pages.
enum Backing {
    /// RAM owned by the mapping; freed after unmapping.
    Ram(AllocatedFrames),
    /// Device memory (MMIO) starting at this address; not managed by the frame allocator, never freed.
    Device(PhysicalAddress),
}

/// A contiguous range of virtual pages in the page-allocator region, mapped to contiguous physical frames, owned by
/// the holder. Dropping it unmaps the pages, flushes their TLB entries (on this CPU), and frees pages and frames.
///
/// Typed access checks bounds and alignment and returns an [`AccessError`] instead of touching memory outside the
/// mapping. Mutable access needs a writable mapping.
#[must_use = "dropping MappedPages unmaps them at once"]
pub struct MappedPages {
    pages: AllocatedPages,
    backing: Backing,
    permissions: Permissions,
}

impl fmt::Debug for MappedPages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, physical) = match &self.backing {
            Backing::Ram(frames) => ("RAM", frames.start_address()),
            Backing::Device(start) => ("device", *start),
        };
        f.debug_struct("MappedPages")
            .field("start", &self.start_address())
            .field("size_in_bytes", &self.size_in_bytes())
            .field("physical", &physical)
            .field("backing", &kind)
            .field("permissions", &self.permissions)
            .finish()
    }
}

/// Allocates `size_in_bytes` (rounded up to whole 4 KiB pages) of zeroed RAM and maps it in the page-allocator region
/// (top 2 GiB, reachable from `code-model=kernel` code) with `permissions`.
///
/// # Errors
/// [`MapError::ZeroSize`]; [`MapError::Pages`] or [`MapError::Frames`] if pages or contiguous frames are exhausted;
/// [`MapError::PageTableFrameUnavailable`]; [`MapError::NotInitialized`] before `memory::init`.
pub fn map_new(size_in_bytes: usize, permissions: Permissions) -> Result<MappedPages, MapError> {
    if size_in_bytes == 0 {
        return Err(MapError::ZeroSize);
    }
    let count = size_in_bytes.div_ceil(PAGE_SIZE);
    let pages = allocate_pages(count).map_err(MapError::Pages)?;
    let frames = allocate_frames(count).map_err(MapError::Frames)?;
    // SAFETY: the frames were just allocated, so they are exclusively ours, and every allocatable frame is
    // direct-mapped.
    unsafe { direct_map::zero_frames(frames.range().start(), count) };
    map_allocated(pages, frames, permissions)
}

/// Maps `pages` to `frames` with `permissions` (e.g. a stack whose guard page was split off the `AllocatedPages`).
/// The frames' contents are kept as they are.
///
/// # Errors
/// [`MapError::CountMismatch`] if the counts differ; [`MapError::PageTableFrameUnavailable`];
/// [`MapError::AlreadyMapped`]; [`MapError::NotInitialized`]. Pages and frames are freed on error.
pub fn map_allocated(
    pages: AllocatedPages,
    frames: AllocatedFrames,
    permissions: Permissions,
) -> Result<MappedPages, MapError> {
    if pages.count() != frames.count() {
        return Err(MapError::CountMismatch { pages: pages.count(), frames: frames.count() });
    }
    let flags = paging::leaf_flags(permissions, false);
    // SAFETY: we own both the pages and the frames; the pages come from the page-allocator region, which nothing
    // else maps, so the frames get exactly one mapping besides the direct map's (accessed only by raw pointers).
    unsafe { paging::map_range(pages.start_address().value(), frames.start_address().value(), pages.count(), flags) }?;
    Ok(MappedPages { pages, backing: Backing::Ram(frames), permissions })
}

/// Maps `size_in_bytes` (rounded out to whole pages) of device memory starting at physical `start` uncached
/// (PCD+PWT) with `permissions`, for memory-mapped I/O such as the local APIC. The result starts at the page that
/// contains `start`.
///
/// # Errors
/// [`MapError::ZeroSize`]; [`MapError::NotDeviceMemory`] if the range overlaps RAM managed by the frame allocator;
/// [`MapError::Pages`]; [`MapError::PageTableFrameUnavailable`]; [`MapError::NotInitialized`].
///
/// # Safety
/// The physical range must be device memory (or firmware memory) that no other mapping uses with a different
/// memory type, and the caller must access it in a way the device tolerates (typically volatile reads and writes
/// through raw pointers from [`MappedPages::start_address`]).
pub unsafe fn map_device_memory(
    start: PhysicalAddress,
    size_in_bytes: usize,
    permissions: Permissions,
) -> Result<MappedPages, MapError> {
    if size_in_bytes == 0 {
        return Err(MapError::ZeroSize);
    }
    let first_frame = start.value() / PAGE_SIZE;
    let end = start.value().checked_add(size_in_bytes).ok_or(MapError::ZeroSize)?;
    let frames = UnitRange::new(first_frame, end.div_ceil(PAGE_SIZE)).unwrap_or_default();
    let overlaps_ram =
        with_lock(&MANAGED_FRAMES, |managed| managed.free_ranges().iter().any(|ram| ram.overlaps(frames)));
    if overlaps_ram {
        return Err(MapError::NotDeviceMemory { start });
    }
    let pages = allocate_pages(frames.count()).map_err(MapError::Pages)?;
    let flags = paging::leaf_flags(permissions, true);
    // SAFETY: we own the pages; the caller guarantees exclusive, type-consistent use of the device frames.
    unsafe { paging::map_range(pages.start_address().value(), first_frame * PAGE_SIZE, frames.count(), flags) }?;
    let physical = PhysicalAddress::new(first_frame * PAGE_SIZE);
    Ok(MappedPages { pages, backing: Backing::Device(physical), permissions })
}

impl MappedPages {
    /// The virtual address of the first byte (4 KiB-aligned).
    pub fn start_address(&self) -> VirtualAddress {
        self.pages.start_address()
    }

    /// The size in bytes (a multiple of 4096).
    pub fn size_in_bytes(&self) -> usize {
        self.pages.size_in_bytes()
    }

    /// The current permissions.
    pub fn permissions(&self) -> Permissions {
        self.permissions
    }

    /// The physical address behind the first byte.
    pub fn physical_start_address(&self) -> PhysicalAddress {
        match &self.backing {
            Backing::Ram(frames) => frames.start_address(),
            Backing::Device(start) => *start,
        }
    }

    /// A reference to the `T` at byte `offset`.
    ///
    /// # Errors
    /// [`AccessError::OutOfBounds`] or [`AccessError::Misaligned`].
    pub fn as_type<T: PlainData>(&self, offset: usize) -> Result<&T, AccessError> {
        let address = self.checked_address::<T>(offset, core::mem::size_of::<T>())?;
        // The mapping stays mapped and readable while `self` is borrowed (only `Drop` unmaps; `remap` needs
        // `&mut self`), and its bytes are initialised (zeroed or written at creation).
        // SAFETY: the `T` lies inside the mapping and is aligned (checked), every bit pattern is a valid `T`
        // (`PlainData`), and no `&mut` to it can exist while `&self` is borrowed.
        Ok(unsafe { &*(address as *const T) })
    }

    /// A mutable reference to the `T` at byte `offset`.
    ///
    /// # Errors
    /// [`AccessError::NotWritable`], [`AccessError::OutOfBounds`] or [`AccessError::Misaligned`].
    pub fn as_type_mut<T: PlainData>(&mut self, offset: usize) -> Result<&mut T, AccessError> {
        let address = self.checked_writable_address::<T>(offset, core::mem::size_of::<T>())?;
        // SAFETY: as in `as_type`, and the mapping is writable (checked); `&mut self` makes the access exclusive.
        Ok(unsafe { &mut *(address as *mut T) })
    }

    /// A slice of `count` values of `T` starting at byte `offset`.
    ///
    /// # Errors
    /// [`AccessError::OutOfBounds`] (also when `count * size_of::<T>()` overflows) or [`AccessError::Misaligned`].
    pub fn as_slice<T: PlainData>(&self, offset: usize, count: usize) -> Result<&[T], AccessError> {
        let length = slice_length::<T>(count).ok_or(AccessError::OutOfBounds {
            offset,
            length: usize::MAX,
            size: self.size_in_bytes(),
        })?;
        let address = self.checked_address::<T>(offset, length)?;
        // SAFETY: as in `as_type`, for `count` consecutive values that all lie inside the mapping.
        Ok(unsafe { core::slice::from_raw_parts(address as *const T, count) })
    }

    /// A mutable slice of `count` values of `T` starting at byte `offset`.
    ///
    /// # Errors
    /// [`AccessError::NotWritable`], [`AccessError::OutOfBounds`] or [`AccessError::Misaligned`].
    pub fn as_slice_mut<T: PlainData>(&mut self, offset: usize, count: usize) -> Result<&mut [T], AccessError> {
        let length = slice_length::<T>(count).ok_or(AccessError::OutOfBounds {
            offset,
            length: usize::MAX,
            size: self.size_in_bytes(),
        })?;
        let address = self.checked_writable_address::<T>(offset, length)?;
        // SAFETY: as in `as_type_mut`, for `count` consecutive values that all lie inside the mapping.
        Ok(unsafe { core::slice::from_raw_parts_mut(address as *mut T, count) })
    }

    fn checked_address<T>(&self, offset: usize, length: usize) -> Result<usize, AccessError> {
        check_access(self.start_address(), self.size_in_bytes(), offset, length, core::mem::align_of::<T>())
    }

    fn checked_writable_address<T>(&self, offset: usize, length: usize) -> Result<usize, AccessError> {
        if !self.permissions.is_writable() {
            return Err(AccessError::NotWritable);
        }
        self.checked_address::<T>(offset, length)
    }

    /// Changes the permissions of every page (e.g. a loaded cell's text from `ReadWrite` to `ReadExecute` once it is
    /// relocated) and flushes the TLB entries on this CPU.
    ///
    /// # Errors
    /// [`RemapError::NotMapped`] if the page tables were changed behind this mapping's back (a bug);
    /// [`RemapError::NotInitialized`].
    pub fn remap(&mut self, permissions: Permissions) -> Result<(), RemapError> {
        let device = matches!(self.backing, Backing::Device(_));
        let flags = paging::leaf_flags(permissions, device);
        // SAFETY: we own the pages exclusively (`&mut self`), so no reference into them is live while their
        // permissions change; W^X holds because `Permissions` cannot express writable + executable.
        unsafe { paging::update_range(self.start_address().value(), self.pages.count(), flags) }?;
        self.permissions = permissions;
        Ok(())
    }

    /// Writes `bytes` at byte `offset` of this mapping through the direct map, whatever its permissions: the way to
    /// patch a finalised (read-only or executable) cell, e.g. to rewrite relocations during a live swap. A value of
    /// 1, 2, 4 or 8 bytes is written with one store of that width.
    ///
    /// # Errors
    /// [`AccessError::OutOfBounds`]; [`AccessError::NotRam`] for device memory.
    ///
    /// # Safety
    /// No reference into the written bytes may be live (the borrow checker does not see this write), and no CPU may
    /// be executing or reading the bytes concurrently in a way that a torn update breaks: quiesce other CPUs first.
    /// After patching code, each CPU that will execute it must run a serializing instruction (e.g. CPUID) before
    /// doing so (Intel SDM Vol. 3A, 9.1.3 "Handling Self- and Cross-Modifying Code").
    pub unsafe fn write_through_direct_map(&self, offset: usize, bytes: &[u8]) -> Result<(), AccessError> {
        let Backing::Ram(frames) = &self.backing else {
            return Err(AccessError::NotRam);
        };
        check_access(self.start_address(), self.size_in_bytes(), offset, bytes.len(), 1)?;
        let destination = PhysicalAddress::new(frames.start_address().value() + offset);
        // SAFETY: the destination lies inside our own RAM frames (checked), which are direct-mapped; the caller
        // guarantees that no reference into them is live and that concurrent execution is quiesced.
        unsafe { direct_map::write_physical(destination, bytes) };
        Ok(())
    }
}

impl Drop for MappedPages {
    fn drop(&mut self) {
        // Unmap (and flush) first, so that no stale translation reaches the pages or frames once they are reused.
        paging::unmap_range(self.start_address().value(), self.pages.count());
        // The fields drop next, after the page-table lock was released: `AllocatedPages` and (for RAM)
        // `AllocatedFrames` return to their allocators.
    }
}
