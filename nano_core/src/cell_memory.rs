//! The kernel's memory provider for loaded cells: `MappedPages` in the page-allocator region (top 2 GiB).
//!
//! Regions are mapped read + write while the loader fills them, then [`MemoryRegion::finalize`] remaps them W^X
//! (text read + execute, read-only data read-only, data read + write + no-execute). Live swapping patches finalized
//! text and read-only data through the direct map, which is a writable alias of the same frames.

use alloc::boxed::Box;

use cell_namespace::{CellMemory, MemoryError, MemoryRegion, RegionKind};
use memory::{MappedPages, Permissions};
use memory_structs::VirtualAddress;

/// Allocates cell regions with [`memory::map_new`].
pub struct KernelCellMemory;

impl CellMemory for KernelCellMemory {
    fn allocate(&self, size_in_bytes: usize, kind: RegionKind) -> Result<Box<dyn MemoryRegion>, MemoryError> {
        let pages = memory::map_new(size_in_bytes, Permissions::ReadWrite)
            .map_err(|_| MemoryError::OutOfMemory { size_in_bytes, kind })?;
        Ok(Box::new(KernelRegion { pages, kind, finalized: false }))
    }
}

/// One region of a loaded cell.
struct KernelRegion {
    pages: MappedPages,
    kind: RegionKind,
    finalized: bool,
}

impl KernelRegion {
    fn final_permissions(&self) -> Permissions {
        match self.kind {
            RegionKind::Text => Permissions::ReadExecute,
            RegionKind::ReadOnlyData => Permissions::ReadOnly,
            RegionKind::Data => Permissions::ReadWrite,
        }
    }
}

impl MemoryRegion for KernelRegion {
    fn start_address(&self) -> VirtualAddress {
        self.pages.start_address()
    }

    fn size_in_bytes(&self) -> usize {
        self.pages.size_in_bytes()
    }

    fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        if self.finalized {
            return None;
        }
        let size = self.pages.size_in_bytes();
        self.pages.as_slice_mut::<u8>(0, size).ok()
    }

    fn finalize(&mut self) -> Result<(), MemoryError> {
        let permissions = self.final_permissions();
        self.pages.remap(permissions).map_err(|_| MemoryError::PermissionChange { kind: self.kind, code: -1 })?;
        self.finalized = true;
        Ok(())
    }

    unsafe fn patch(&self, offset: usize, bytes: &[u8]) -> Result<(), MemoryError> {
        let region_size = self.pages.size_in_bytes();
        if offset.checked_add(bytes.len()).is_none_or(|end| end > region_size) {
            return Err(MemoryError::OutOfBounds { offset, length: bytes.len(), region_size });
        }
        // SAFETY: the caller guarantees that nothing executes or accesses these bytes while they change and that the
        // new bytes keep the cell valid; the range was checked to lie inside this region's RAM-backed frames.
        unsafe { self.pages.write_through_direct_map(offset, bytes) }.map_err(|_| MemoryError::OutOfBounds {
            offset,
            length: bytes.len(),
            region_size,
        })?;
        // The direct-map alias and the code mapping share frames. A serializing instruction makes sure this CPU does
        // not run stale prefetched instructions (Intel SDM Vol. 3A 9.1.3, "Handling Self- and Cross-Modifying Code").
        serialize();
        Ok(())
    }
}

/// Executes CPUID, a serializing instruction.
fn serialize() {
    // CPUID leaf 0 has no side effects besides serialization and exists on every x86_64 CPU.
    let _ = core::arch::x86_64::__cpuid(0);
}
