//! The error types of the memory system: one per operation.

use crate::plan::KernelImageBounds;
use crate::shootdown::ShootdownError;
use memory_structs::{PhysicalAddress, VirtualAddress};
use range_allocator::AllocateError;

/// Why a mapping could not be created. Whatever was allocated for it has been freed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// A request for 0 bytes.
    ZeroSize,
    /// The page count and frame count given to `map_allocated` differ.
    CountMismatch {
        /// Pages given.
        pages: usize,
        /// Frames given.
        frames: usize,
    },
    /// No virtual pages: the page-allocator region is exhausted or too fragmented.
    Pages(AllocateError),
    /// No physical frames: memory is exhausted or too fragmented for a contiguous run.
    Frames(AllocateError),
    /// A new page table was needed but no frame was free.
    PageTableFrameUnavailable {
        /// The page being mapped.
        address: VirtualAddress,
    },
    /// The page is already mapped (or lies inside a 2 MiB mapping): a bug in the owner of the address space.
    AlreadyMapped {
        /// The page being mapped.
        address: VirtualAddress,
    },
    /// `map_device_memory` was asked to map RAM that the frame allocator manages.
    NotDeviceMemory {
        /// The first byte requested.
        start: PhysicalAddress,
    },
    /// `identity_map_low_frames` was given frames that do not all lie below 1 MiB (`layout::LOW_MEMORY_SIZE`).
    NotLowMemory {
        /// The first byte of the frames given.
        start: PhysicalAddress,
    },
    /// `memory::init` has not completed.
    NotInitialized,
    /// Mapping failed part-way and the pages mapped so far were unmapped again, but another CPU did not
    /// acknowledge the TLB shootdown: the pages and frames were leaked (never freed) rather than reused while a
    /// stale translation may survive.
    Shootdown(ShootdownError),
}

/// Why [`MappedPages::remap`](crate::MappedPages::remap) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemapError {
    /// A page of the mapping is not mapped any more: the page tables were changed behind its owner's back.
    NotMapped {
        /// The first page found unmapped.
        address: VirtualAddress,
    },
    /// `memory::init` has not completed.
    NotInitialized,
    /// The page tables carry the new permissions, but another CPU did not acknowledge the TLB shootdown: it may
    /// still use the old ones.
    Shootdown(ShootdownError),
}

/// Why a typed access to a [`MappedPages`](crate::MappedPages) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessError {
    /// `offset .. offset + length` (bytes) does not lie within the mapping, or overflows.
    OutOfBounds {
        /// Requested offset in bytes.
        offset: usize,
        /// Requested length in bytes.
        length: usize,
        /// Size of the mapping in bytes.
        size: usize,
    },
    /// The address is not a multiple of the type's alignment.
    Misaligned {
        /// The address that would have been accessed.
        address: VirtualAddress,
        /// The required alignment in bytes.
        alignment: usize,
    },
    /// A mutable access to a mapping that is not writable.
    NotWritable,
    /// A write through the direct map to a mapping that is not backed by RAM (device memory).
    NotRam,
}

/// Why `memory::init` failed. Every variant says what to fix; the system cannot continue without memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryInitError {
    /// `init` was called a second time.
    AlreadyInitialized,
    /// The linker-script bounds passed by nano_core are inconsistent.
    InvalidKernelBounds {
        /// The first rule broken.
        reason: &'static str,
        /// The bounds as given.
        bounds: KernelImageBounds,
    },
    /// The memory map is too fragmented for a fixed-capacity range set.
    TooFragmented {
        /// Which set overflowed.
        what: &'static str,
        /// Its capacity in ranges.
        capacity: usize,
    },
    /// The memory map names no usable RAM after the reservations.
    NoUsableMemory,
    /// Something the CPU uses lies outside what the new page tables map, so switching CR3 would crash. The boot code
    /// must move it to the kernel image's higher-half alias (`KERNEL_OFFSET + physical`) before calling `init`.
    UnreachableAfterSwitch {
        /// What it is (the stack, the GDT, the IDT).
        what: &'static str,
        /// Its current virtual address.
        address: usize,
    },
    /// The CPU lacks the execute-disable bit (CPUID.80000001H:EDX.NX[bit 20]; Intel SDM Vol. 3A, 4.1.4), so W^X cannot be
    /// enforced.
    NoExecuteUnsupported,
    /// A mapping needed during initialisation failed.
    Map {
        /// What was being mapped.
        what: &'static str,
        /// Why.
        error: MapError,
    },
}
