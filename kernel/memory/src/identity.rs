//! [`IdentityMapping`]: a temporary identity mapping (virtual = physical) of frames below 1 MiB.
//!
//! After `memory::init` the lower half of the address space is empty (see [`crate::layout`]). The one user of a
//! lower-half mapping is the real-mode trampoline that starts the other CPUs: an application processor enables
//! paging while it executes from the trampoline's low physical address, so the instruction after `mov %eax, %cr0`
//! must be fetched through a mapping whose virtual address equals that physical address (Intel SDM Vol. 3A, 9.8.5
//! "Initializing IA-32e Mode"). The mapping borrows the frames, so they cannot be freed while it exists.

use crate::access::Permissions;
use crate::errors::MapError;
use crate::frames::AllocatedFrames;
use crate::layout::LOW_MEMORY_SIZE;
use crate::paging;
use core::marker::PhantomData;
use memory_structs::PhysicalAddress;

/// An identity mapping of some low frames in the kernel page tables; dropping it unmaps them and flushes their
/// translations on every CPU (TLB shootdown). The page-table frames created for it stay (page-table frames are never reclaimed).
#[must_use = "dropping IdentityMapping removes the mapping at once"]
#[derive(Debug)]
pub struct IdentityMapping<'frames> {
    start: PhysicalAddress,
    count: usize,
    _frames: PhantomData<&'frames AllocatedFrames>,
}

impl IdentityMapping<'_> {
    /// The first mapped address (virtual and physical alike).
    pub fn start_address(&self) -> PhysicalAddress {
        self.start
    }

    /// The number of 4 KiB pages mapped.
    pub fn count(&self) -> usize {
        self.count
    }
}

/// Maps `frames` at virtual addresses equal to their physical addresses with `permissions`.
///
/// # Errors
/// [`MapError::NotLowMemory`] if the frames do not all lie below 1 MiB; [`MapError::AlreadyMapped`] if another
/// identity mapping covers them; [`MapError::PageTableFrameUnavailable`]; [`MapError::NotInitialized`].
pub fn identity_map_low_frames(
    frames: &AllocatedFrames,
    permissions: Permissions,
) -> Result<IdentityMapping<'_>, MapError> {
    let start = frames.start_address();
    if start.value() + frames.size_in_bytes() > LOW_MEMORY_SIZE {
        return Err(MapError::NotLowMemory { start });
    }
    let flags = paging::leaf_flags(permissions, false);
    // SAFETY: the caller owns the frames (borrowed for the mapping's lifetime); low virtual addresses are used by
    // no other mapping (the lower half is empty after `init` except for these identity mappings, and a second
    // mapping of the same pages fails with `AlreadyMapped`). Rust code reaches the frames only through the owner.
    unsafe { paging::map_range(start.value(), start.value(), frames.count(), flags) }?;
    Ok(IdentityMapping { start, count: frames.count(), _frames: PhantomData })
}

impl Drop for IdentityMapping<'_> {
    fn drop(&mut self) {
        // A failed shootdown cannot be returned from `drop`, and the frames are borrowed, so they cannot be leaked
        // here: the failure is counted (`shootdown_stats().timeouts`). The only user, the CPU start-up trampoline,
        // has every started CPU reload CR3 before it acknowledges its start, which already dropped this mapping
        // from its TLB, so no stale translation of it survives anyway.
        let _ = paging::unmap_range(self.start.value(), self.count);
    }
}
