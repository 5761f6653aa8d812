//! [`KernelAcpiHandler`]: how the `acpi` crate reaches physical memory.

use acpi::{AcpiHandler, PhysicalMapping};
use alloc::vec::Vec;
use boot_info::MemoryAreaKind;
use core::ptr::NonNull;
use memory::layout::{LOW_MEMORY_SIZE, PHYSICAL_MEMORY_OFFSET};
use memory::{MappedPages, Permissions};
use memory_structs::{PAGE_SIZE, PhysicalAddress};
use spin::Mutex;

/// Device mappings made for the `acpi` crate and not yet unmapped by it. The lock protects the list; it is taken
/// while mapping and unmapping only (boot-time, single CPU).
static DEVICE_MAPPINGS: Mutex<Vec<MappedPages>> = Mutex::new(Vec::new());

/// Returned when a region cannot be mapped: all zeros, so the `acpi` crate sees an invalid signature and returns an
/// error instead of reading unmapped memory. `AcpiHandler::map_physical_region` cannot fail by its signature.
#[repr(C, align(4096))]
struct ZeroPage([u8; PAGE_SIZE]);
static ZERO_PAGE: ZeroPage = ZeroPage([0; PAGE_SIZE]);

/// Maps ACPI tables for the `acpi` crate: through the direct map when the bytes lie in memory that `memory::init`
/// direct-maps (RAM, ACPI reclaimable and NVS areas, the low 1 MiB, the boot information), else with
/// `memory::map_device_memory` (read-only, uncached).
#[derive(Debug, Clone, Copy)]
pub struct KernelAcpiHandler;

/// Whether `start .. start + size` lies in memory that the kernel direct-maps.
fn direct_mapped(start: usize, size: usize) -> bool {
    let Some(end) = start.checked_add(size) else { return false };
    if end <= LOW_MEMORY_SIZE {
        return true;
    }
    let Some(info) = boot_info::global() else { return false };
    let inside = |region: boot_info::PhysicalRegion| region.start.value() <= start && end <= region.end.value();
    inside(info.information_region())
        || info.memory_areas().iter().any(|area| {
            matches!(area.kind, MemoryAreaKind::Available | MemoryAreaKind::AcpiReclaimable | MemoryAreaKind::Nvs)
                && inside(area.region)
        })
}

impl AcpiHandler for KernelAcpiHandler {
    unsafe fn map_physical_region<T>(&self, physical_address: usize, size: usize) -> PhysicalMapping<Self, T> {
        let zero = || {
            let length = size.min(PAGE_SIZE);
            // SAFETY: ZERO_PAGE is a 'static page of zeros, readable for `length <= PAGE_SIZE` bytes; the `acpi`
            // crate only reads through mappings. `size_of::<T>()` of every ACPI header type is below a page.
            unsafe { PhysicalMapping::new(0, NonNull::from(&ZERO_PAGE).cast::<T>(), length, length, KernelAcpiHandler) }
        };
        if direct_mapped(physical_address, size) {
            let virtual_address = (PHYSICAL_MEMORY_OFFSET + physical_address) as *mut T;
            let Some(pointer) = NonNull::new(virtual_address) else { return zero() };
            // SAFETY: the range is direct-mapped (checked against the same areas `memory::init` maps), and the
            // caller (`acpi`) guarantees a `T` is there.
            return unsafe { PhysicalMapping::new(physical_address, pointer, size, size, KernelAcpiHandler) };
        }
        let Ok(start) = PhysicalAddress::try_new(physical_address) else { return zero() };
        // SAFETY: the range is not RAM the kernel manages (`map_device_memory` refuses that) and not direct-mapped,
        // so no other mapping with another memory type exists; it is only read.
        let pages = match unsafe { memory::map_device_memory(start, size, Permissions::ReadOnly) } {
            Ok(pages) => pages,
            Err(error) => {
                log::warn!("acpi_tables: cannot map {size} bytes at physical {physical_address:#x}: {error:?}");
                return zero();
            }
        };
        let offset = physical_address % PAGE_SIZE;
        let virtual_address = (pages.start_address().value() + offset) as *mut T;
        let mapped_length = pages.size_in_bytes();
        let Some(pointer) = NonNull::new(virtual_address) else { return zero() };
        DEVICE_MAPPINGS.lock().push(pages);
        // SAFETY: the pages map `physical_address .. + size` (rounded out to pages) and stay mapped until
        // `unmap_physical_region` drops them.
        unsafe { PhysicalMapping::new(physical_address, pointer, size, mapped_length, KernelAcpiHandler) }
    }

    fn unmap_physical_region<T>(region: &PhysicalMapping<Self, T>) {
        let address = region.virtual_start().as_ptr() as usize;
        let mut mappings = DEVICE_MAPPINGS.lock();
        if let Some(index) = mappings.iter().position(|pages| {
            let start = pages.start_address().value();
            (start..start + pages.size_in_bytes()).contains(&address)
        }) {
            drop(mappings.swap_remove(index));
        }
    }
}
