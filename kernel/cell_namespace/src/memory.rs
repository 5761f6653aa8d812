//! The memory-provider traits: how a namespace gets memory for a cell without knowing about paging.
//!
//! The kernel implements them with `MappedPages` (allocate pages in the top 2 GiB, map them writable, then remap
//! W^X in [`MemoryRegion::finalize`]); host tests implement them with `mmap`/`mprotect` below 2 GiB.

use alloc::boxed::Box;
use core::fmt;

use memory_structs::VirtualAddress;

/// Which of a cell's three regions; fixes the final permissions (W^X).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RegionKind {
    /// Code: read + execute after [`MemoryRegion::finalize`].
    Text,
    /// Read-only data, `.eh_frame` and `.gcc_except_table`: read-only after finalize.
    ReadOnlyData,
    /// Data and bss: read + write, never execute.
    Data,
}

impl RegionKind {
    /// All kinds, in the order a cell's regions are stored.
    pub const ALL: [RegionKind; 3] = [RegionKind::Text, RegionKind::ReadOnlyData, RegionKind::Data];

    /// Position of this kind in [`RegionKind::ALL`].
    pub const fn index(self) -> usize {
        match self {
            RegionKind::Text => 0,
            RegionKind::ReadOnlyData => 1,
            RegionKind::Data => 2,
        }
    }
}

/// Why a memory provider or region failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryError {
    /// No memory (frames, or virtual addresses within reach of the kernel code model) for the region.
    OutOfMemory {
        /// The requested size in bytes.
        size_in_bytes: usize,
        /// The requested kind.
        kind: RegionKind,
    },
    /// A byte range does not lie inside the region.
    OutOfBounds {
        /// Offset of the range from the region start, in bytes.
        offset: usize,
        /// Length of the range in bytes.
        length: usize,
        /// The region size in bytes.
        region_size: usize,
    },
    /// A region does not start on a 4 KiB boundary.
    MisalignedRegion {
        /// The region's start address.
        start: VirtualAddress,
    },
    /// A region that should still be writable is not (the provider finalized it already).
    NotWritable {
        /// The region's kind.
        kind: RegionKind,
    },
    /// Changing page permissions failed; `code` is the provider's own error code (e.g. an errno on the host).
    PermissionChange {
        /// The region's kind.
        kind: RegionKind,
        /// Provider-specific error code.
        code: i32,
    },
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfMemory { size_in_bytes, kind } => {
                write!(f, "no memory for a {size_in_bytes}-byte {kind:?} region")
            }
            Self::OutOfBounds { offset, length, region_size } => {
                write!(f, "{length} bytes at offset {offset:#x} lie outside a {region_size}-byte region")
            }
            Self::MisalignedRegion { start } => write!(f, "region at {start} is not 4 KiB aligned"),
            Self::NotWritable { kind } => write!(f, "{kind:?} region is not writable"),
            Self::PermissionChange { kind, code } => {
                write!(f, "changing permissions of a {kind:?} region failed ({code})")
            }
        }
    }
}

/// Allocates the memory cells are loaded into. Object-safe; one instance serves a whole namespace.
pub trait CellMemory: Send + Sync {
    /// Allocates a writable region of at least `size_in_bytes` bytes (`size_in_bytes > 0`) that will end up with
    /// `kind`'s permissions.
    ///
    /// The region must start on a 4 KiB boundary (sections are packed at offsets aligned for at most 4 KiB), and
    /// every region of a namespace must lie within ±2 GiB of every other and of the base image (the kernel code
    /// model patches 32-bit PC-relative and sign-extended fields): in the kernel, the top 2 GiB. Its contents may be
    /// arbitrary; the loader fills all of it.
    ///
    /// # Errors
    /// [`MemoryError::OutOfMemory`] if no such region can be had.
    fn allocate(&self, size_in_bytes: usize, kind: RegionKind) -> Result<Box<dyn MemoryRegion>, MemoryError>;
}

/// One contiguous region of a cell's memory. Dropping it frees the memory (unmaps it).
pub trait MemoryRegion: Send + Sync {
    /// The first address of the region (4 KiB aligned).
    fn start_address(&self) -> VirtualAddress;

    /// The region size in bytes (at least what was requested).
    fn size_in_bytes(&self) -> usize;

    /// The region's bytes, while it is still writable (before [`finalize`](Self::finalize)); `None` afterwards.
    fn as_mut_slice(&mut self) -> Option<&mut [u8]>;

    /// Applies the final permissions of the region's kind: text read + execute, read-only data read-only, data
    /// read + write and no execute. Afterwards the region is only changed through [`patch`](Self::patch).
    ///
    /// # Errors
    /// [`MemoryError::PermissionChange`] if the permissions could not be changed.
    fn finalize(&mut self) -> Result<(), MemoryError>;

    /// Overwrites `bytes.len()` bytes at `offset` bytes from the region start, whatever the final permissions
    /// (e.g. by temporarily remapping the page writable, or through a writable alias mapping), and makes the new
    /// bytes visible to instruction fetch. Used by swap to rewrite relocations in dependent cells: `bytes` is then
    /// one relocated value of 1, 2, 4 or 8 bytes, which the provider must write with one store of that width (so
    /// that no CPU or DMA reader can see a half-written field).
    ///
    /// # Safety
    /// No CPU may execute, read or write the patched bytes while they change (the swap caller quiesces every
    /// other CPU and task that could), and the new bytes must leave the region's code and data valid, e.g. the
    /// result of a relocation computed for this place.
    ///
    /// # Errors
    /// [`MemoryError::OutOfBounds`] if the range is not inside the region; [`MemoryError::PermissionChange`] if the
    /// region could not be made writable and back. On [`MemoryError::OutOfBounds`] nothing was written.
    unsafe fn patch(&self, offset: usize, bytes: &[u8]) -> Result<(), MemoryError>;
}
