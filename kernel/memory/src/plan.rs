//! Pure planning logic of `memory::init`, tested on the host: which frames are free, which physical memory the
//! direct map covers, how a range splits into 4 KiB and 2 MiB pages, and whether the kernel's linker bounds make sense.

use crate::MemoryInitError;
use crate::layout::{DIRECT_MAP_SIZE, KERNEL_OFFSET, LARGE_PAGE_SIZE, LOW_MEMORY_SIZE, PAGE_REGION_START};
use boot_info::{MemoryArea, MemoryAreaKind, PhysicalRegion};
use memory_structs::{PAGE_SIZE, PhysicalAddress, VirtualAddress};
use range_allocator::{RangeAllocator, UnitRange};

/// Frames per 2 MiB page.
pub const FRAMES_PER_LARGE_PAGE: usize = LARGE_PAGE_SIZE / PAGE_SIZE;

/// The frames wholly inside `region` (start rounded up, end rounded down): what may be handed out.
pub fn frames_inside(region: PhysicalRegion) -> UnitRange {
    let start = region.start.value().div_ceil(PAGE_SIZE);
    let end = region.end.value() / PAGE_SIZE;
    UnitRange::new(start, end.max(start)).unwrap_or_default()
}

/// The frames touching `region` (start rounded down, end rounded up): what must be kept away from allocation.
pub fn frames_touching(region: PhysicalRegion) -> UnitRange {
    let start = region.start.value() / PAGE_SIZE;
    let end = region.end.value().div_ceil(PAGE_SIZE);
    UnitRange::new(start, end.max(start)).unwrap_or_default()
}

/// Frames at or above the direct-map size: not reachable through the direct map, so never used.
fn unreachable_frames() -> UnitRange {
    UnitRange::new(DIRECT_MAP_SIZE / PAGE_SIZE, usize::MAX).unwrap_or_default()
}

/// Fills `free` with the frames that the frame allocator may hand out: every `Available` area (rounded inward),
/// minus every other area that overlaps it (rounded outward; when the firmware contradicts itself, "reserved"
/// wins), minus every region of `reservations` (rounded outward), minus memory beyond the direct map.
///
/// # Errors
/// [`MemoryInitError::TooFragmented`] if `free`'s capacity cannot hold the result.
pub fn usable_frames<const N: usize>(
    areas: &[MemoryArea],
    reservations: &[PhysicalRegion],
    free: &mut RangeAllocator<N>,
) -> Result<(), MemoryInitError> {
    let too_fragmented = MemoryInitError::TooFragmented { what: "free frame ranges", capacity: N };
    for area in areas.iter().filter(|area| area.kind == MemoryAreaKind::Available) {
        free.add(frames_inside(area.region)).map_err(|_| too_fragmented)?;
    }
    let not_available = areas.iter().filter(|area| area.kind != MemoryAreaKind::Available).map(|area| area.region);
    for region in not_available.chain(reservations.iter().copied()) {
        free.reserve(frames_touching(region)).map_err(|_| too_fragmented)?;
    }
    free.reserve(unreachable_frames()).map_err(|_| too_fragmented)?;
    Ok(())
}

/// Fills `mapped` with the frames that the direct map must cover: RAM and ACPI areas (`Available`,
/// `AcpiReclaimable`, `Nvs`), the low 1 MiB, and every region of `extra` (kernel image, boot information, modules),
/// all rounded outward and limited to the direct-map window. Reserved and unknown areas (often MMIO) are left out;
/// drivers map those with `map_device_memory`.
///
/// # Errors
/// [`MemoryInitError::TooFragmented`] if `mapped`'s capacity cannot hold the result.
pub fn direct_map_frames<const N: usize>(
    areas: &[MemoryArea],
    extra: &[PhysicalRegion],
    mapped: &mut RangeAllocator<N>,
) -> Result<(), MemoryInitError> {
    let too_fragmented = MemoryInitError::TooFragmented { what: "direct-map ranges", capacity: N };
    let memory = areas
        .iter()
        .filter(|area| {
            matches!(area.kind, MemoryAreaKind::Available | MemoryAreaKind::AcpiReclaimable | MemoryAreaKind::Nvs)
        })
        .map(|area| area.region);
    let low_memory = PhysicalRegion { start: PhysicalAddress::zero(), end: PhysicalAddress::new(LOW_MEMORY_SIZE) };
    for region in memory.chain(extra.iter().copied()).chain([low_memory]) {
        mapped.add(frames_touching(region)).map_err(|_| too_fragmented)?;
    }
    mapped.reserve(unreachable_frames()).map_err(|_| too_fragmented)?;
    Ok(())
}

/// A range of frames split for mapping: `head` and `tail` use 4 KiB pages, `large` (2 MiB-aligned, a whole number
/// of 2 MiB pages, possibly empty) uses 2 MiB pages. The three are contiguous: `head.end == large.start`,
/// `large.end == tail.start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LargePageSplit {
    /// Leading frames before the first 2 MiB boundary.
    pub head: UnitRange,
    /// Whole 2 MiB pages.
    pub large: UnitRange,
    /// Trailing frames after the last whole 2 MiB page.
    pub tail: UnitRange,
}

/// Splits `frames` so that as much as possible is mapped with 2 MiB pages. Virtual and physical addresses of the
/// direct map differ by a 2 MiB-aligned offset, so physical alignment decides.
pub fn split_for_large_pages(frames: UnitRange) -> LargePageSplit {
    let large_start = frames.start().next_multiple_of(FRAMES_PER_LARGE_PAGE);
    let large_end = frames.end() / FRAMES_PER_LARGE_PAGE * FRAMES_PER_LARGE_PAGE;
    if large_start >= large_end {
        let empty = UnitRange::new(frames.end(), frames.end()).unwrap_or_default();
        return LargePageSplit { head: frames, large: empty, tail: empty };
    }
    let range = |start, end| UnitRange::new(start, end).unwrap_or_default();
    LargePageSplit {
        head: range(frames.start(), large_start),
        large: range(large_start, large_end),
        tail: range(large_end, frames.end()),
    }
}

/// The kernel image's bounds, from the linker script's symbols (see `cfg/linker.ld`), passed by nano_core.
///
/// Virtual bounds are page-aligned and half-open; they satisfy `text_start <= text_end <= rodata_start <= rodata_end
/// <= data_start <= data_end`. The physical range covers the whole image, including the low boot part (multiboot
/// header, 32-bit code, boot page tables and boot stack) that lies before `text_start - KERNEL_OFFSET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelImageBounds {
    /// `__kernel_physical_start`: first byte of the whole image (physical).
    pub physical_start: PhysicalAddress,
    /// `__kernel_physical_end`: one past the last byte of the whole image (physical).
    pub physical_end: PhysicalAddress,
    /// `__text_start`.
    pub text_start: VirtualAddress,
    /// `__text_end`.
    pub text_end: VirtualAddress,
    /// `__rodata_start` (the range includes `.eh_frame` and `.gcc_except_table`).
    pub rodata_start: VirtualAddress,
    /// `__rodata_end`.
    pub rodata_end: VirtualAddress,
    /// `__data_start` (the range covers `.data` and `.bss`).
    pub data_start: VirtualAddress,
    /// `__data_end`.
    pub data_end: VirtualAddress,
}

impl KernelImageBounds {
    /// The physical address behind a virtual address of the image (`virtual - KERNEL_OFFSET`).
    pub fn physical_of(address: VirtualAddress) -> PhysicalAddress {
        PhysicalAddress::new(address.value().wrapping_sub(KERNEL_OFFSET))
    }

    /// The whole image as a physical region.
    pub fn physical_region(&self) -> PhysicalRegion {
        PhysicalRegion { start: self.physical_start, end: self.physical_end }
    }

    /// Checks the bounds for consistency.
    ///
    /// # Errors
    /// [`MemoryInitError::InvalidKernelBounds`] naming the first violated rule.
    pub fn validate(&self) -> Result<(), MemoryInitError> {
        let fail = |reason| Err(MemoryInitError::InvalidKernelBounds { reason, bounds: *self });
        let virtual_bounds =
            [self.text_start, self.text_end, self.rodata_start, self.rodata_end, self.data_start, self.data_end];
        if virtual_bounds.iter().any(|address| address.page_offset() != 0)
            || self.physical_start.frame_offset() != 0
            || self.physical_end.frame_offset() != 0
        {
            return fail("a bound is not 4 KiB-aligned");
        }
        if virtual_bounds.windows(2).any(|pair| pair[0] > pair[1]) || self.physical_start >= self.physical_end {
            return fail("bounds are out of order (expected text <= rodata <= data, physical start < end)");
        }
        if self.text_start.value() < KERNEL_OFFSET + self.physical_start.value() {
            return fail("__text_start lies below KERNEL_OFFSET + __kernel_physical_start");
        }
        if self.data_end.value() - KERNEL_OFFSET > self.physical_end.value() {
            return fail("__data_end lies beyond KERNEL_OFFSET + __kernel_physical_end");
        }
        if KERNEL_OFFSET + self.physical_end.value() > PAGE_REGION_START {
            return fail("the kernel image reaches into the page-allocator region (image larger than 256 MiB?)");
        }
        Ok(())
    }
}

/// Whether virtual `address` will still be mapped after the switch to the new page tables: inside the kernel image's
/// higher-half alias, or inside the part of the direct map that `direct_mapped` (frame numbers) covers.
pub fn reachable_after_switch<const N: usize>(
    address: usize,
    kernel: &KernelImageBounds,
    direct_mapped: &RangeAllocator<N>,
) -> bool {
    use crate::layout::PHYSICAL_MEMORY_OFFSET;
    let image = (KERNEL_OFFSET + kernel.physical_start.value())..(KERNEL_OFFSET + kernel.physical_end.value());
    if image.contains(&address) {
        return true;
    }
    let Some(physical) = address.checked_sub(PHYSICAL_MEMORY_OFFSET).filter(|physical| *physical < DIRECT_MAP_SIZE)
    else {
        return false;
    };
    let frame = physical / PAGE_SIZE;
    direct_mapped.is_free(UnitRange::new(frame, frame + 1).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(start: usize, end: usize) -> PhysicalRegion {
        PhysicalRegion { start: PhysicalAddress::new(start), end: PhysicalAddress::new(end) }
    }
    fn area(start: usize, end: usize, kind: MemoryAreaKind) -> MemoryArea {
        MemoryArea { region: region(start, end), kind }
    }
    fn units(start: usize, end: usize) -> UnitRange {
        UnitRange::new(start, end).unwrap()
    }

    /// A QEMU/OVMF-like map: low RAM with a hole, 1 MiB.. RAM with an ACPI area inside it, MMIO above.
    fn qemu_like_areas() -> Vec<MemoryArea> {
        vec![
            area(0, 0x9_fc00, MemoryAreaKind::Available),
            area(0x9_fc00, 0xa_0000, MemoryAreaKind::Reserved),
            area(0xf_0000, 0x10_0000, MemoryAreaKind::Reserved),
            area(0x10_0000, 0x800_0000, MemoryAreaKind::Available),
            area(0x7f0_0000, 0x7f1_0000, MemoryAreaKind::AcpiReclaimable), // overlaps the RAM area
            area(0xfec0_0000, 0xfec0_1000, MemoryAreaKind::Reserved),
        ]
    }

    #[test]
    fn rounding_inward_and_outward() {
        assert_eq!(frames_inside(region(0x1001, 0x3fff)), units(2, 3));
        assert_eq!(frames_inside(region(0x1001, 0x1fff)), units(2, 2)); // empty, never negative
        assert_eq!(frames_touching(region(0x1001, 0x3fff)), units(1, 4));
        assert_eq!(frames_touching(region(0x1000, 0x1000)), units(1, 1));
    }

    #[test]
    fn usable_frames_exclude_reserved_areas_and_reservations() {
        let reservations = [
            region(0, PAGE_SIZE),         // page 0
            region(0x10_0000, 0x30_0000), // kernel image
            region(0x5000, 0x5a28),       // boot information (unaligned size)
            region(0x7000, 0x7100),       // a module in low memory
            region(0x40_0000, 0x40_0001), // a one-byte module
        ];
        let mut free = RangeAllocator::<64>::new();
        usable_frames(&qemu_like_areas(), &reservations, &mut free).unwrap();
        assert_eq!(
            free.free_ranges(),
            &[
                units(1, 5),
                units(6, 7),
                units(8, 0x9f), // 0x9fc00 rounds down to frame 0x9f
                units(0x300, 0x400),
                units(0x401, 0x7f00),
                units(0x7f10, 0x8000),
            ]
        );
    }

    #[test]
    fn overlapping_available_areas_merge_and_reserved_wins() {
        let areas = [
            area(0x10_0000, 0x20_0000, MemoryAreaKind::Available),
            area(0x18_0000, 0x28_0000, MemoryAreaKind::Available),
            area(0x1f_f800, 0x20_0800, MemoryAreaKind::Defective),
            area(0x30_0000, 0x31_0000, MemoryAreaKind::Unknown(20)),
        ];
        let mut free = RangeAllocator::<8>::new();
        usable_frames(&areas, &[], &mut free).unwrap();
        assert_eq!(free.free_ranges(), &[units(0x100, 0x1ff), units(0x201, 0x280)]);
    }

    #[test]
    fn memory_beyond_the_direct_map_is_never_usable() {
        let areas = [area(DIRECT_MAP_SIZE - 0x2000, DIRECT_MAP_SIZE + 0x10_0000, MemoryAreaKind::Available)];
        let mut free = RangeAllocator::<8>::new();
        usable_frames(&areas, &[], &mut free).unwrap();
        assert_eq!(free.free_units(), 2);
        let mut mapped = RangeAllocator::<8>::new();
        direct_map_frames(&areas, &[], &mut mapped).unwrap();
        assert_eq!(mapped.free_ranges().last().unwrap().end(), DIRECT_MAP_SIZE / PAGE_SIZE);
    }

    #[test]
    fn capacity_overflow_is_reported() {
        let areas: Vec<_> =
            (0..10).map(|index| area(index * 0x2000, index * 0x2000 + 0x1000, MemoryAreaKind::Available)).collect();
        let mut free = RangeAllocator::<4>::new();
        assert_eq!(
            usable_frames(&areas, &[], &mut free),
            Err(MemoryInitError::TooFragmented { what: "free frame ranges", capacity: 4 })
        );
    }

    #[test]
    fn direct_map_covers_ram_acpi_low_memory_and_modules_but_not_mmio() {
        let extra = [region(0x1_2000_0000, 0x1_2000_0010)]; // a module above 4 GiB, odd size
        let mut mapped = RangeAllocator::<16>::new();
        direct_map_frames(&qemu_like_areas(), &extra, &mut mapped).unwrap();
        assert_eq!(mapped.free_ranges(), &[units(0, 0x8000), units(0x12_0000, 0x12_0001)]);
    }

    #[test]
    fn large_page_split() {
        let split = split_for_large_pages(units(0x100, 0x8000));
        assert_eq!(split.head, units(0x100, 0x200));
        assert_eq!(split.large, units(0x200, 0x8000));
        assert!(split.tail.is_empty());
        let split = split_for_large_pages(units(0x1ff, 0x401));
        assert_eq!(
            (split.head, split.large, split.tail),
            (units(0x1ff, 0x200), units(0x200, 0x400), units(0x400, 0x401))
        );
        // Too small for any 2 MiB page: all 4 KiB.
        let split = split_for_large_pages(units(0x201, 0x3ff));
        assert_eq!(split.head, units(0x201, 0x3ff));
        assert!(split.large.is_empty() && split.tail.is_empty());
    }

    fn good_bounds() -> KernelImageBounds {
        KernelImageBounds {
            physical_start: PhysicalAddress::new(0x10_0000),
            physical_end: PhysicalAddress::new(0x20_0000),
            text_start: VirtualAddress::new(KERNEL_OFFSET + 0x10_3000),
            text_end: VirtualAddress::new(KERNEL_OFFSET + 0x15_0000),
            rodata_start: VirtualAddress::new(KERNEL_OFFSET + 0x15_0000),
            rodata_end: VirtualAddress::new(KERNEL_OFFSET + 0x18_0000),
            data_start: VirtualAddress::new(KERNEL_OFFSET + 0x18_0000),
            data_end: VirtualAddress::new(KERNEL_OFFSET + 0x20_0000),
        }
    }

    #[test]
    fn kernel_bounds_validation() {
        assert_eq!(good_bounds().validate(), Ok(()));
        let reason = |bounds: KernelImageBounds| match bounds.validate() {
            Err(MemoryInitError::InvalidKernelBounds { reason, .. }) => reason,
            other => panic!("expected an error, got {other:?}"),
        };
        let mut bounds = good_bounds();
        bounds.rodata_end = VirtualAddress::new(KERNEL_OFFSET + 0x18_0010);
        assert!(reason(bounds).contains("aligned"));
        let mut bounds = good_bounds();
        bounds.text_end = VirtualAddress::new(KERNEL_OFFSET + 0x16_0000);
        assert!(reason(bounds).contains("order"));
        let mut bounds = good_bounds();
        bounds.data_end = VirtualAddress::new(KERNEL_OFFSET + 0x30_0000);
        assert!(reason(bounds).contains("__data_end"));
        let mut bounds = good_bounds();
        bounds.physical_start = PhysicalAddress::new(0x20_0000);
        bounds.physical_end = PhysicalAddress::new(0x30_0000);
        assert!(reason(bounds).contains("__text_start"));
        let mut bounds = good_bounds();
        bounds.physical_end = PhysicalAddress::new(0x1000_1000);
        assert!(reason(bounds).contains("page-allocator"));
        assert_eq!(
            KernelImageBounds::physical_of(VirtualAddress::new(KERNEL_OFFSET + 0x12_3000)),
            PhysicalAddress::new(0x12_3000)
        );
    }

    #[test]
    fn reachability_after_the_switch() {
        use crate::layout::PHYSICAL_MEMORY_OFFSET;
        let bounds = good_bounds();
        let mut mapped = RangeAllocator::<8>::new();
        mapped.add(units(0, 0x100)).unwrap();
        // A boot stack in the image's higher-half alias (the boot part starts at 1 MiB).
        assert!(reachable_after_switch(KERNEL_OFFSET + 0x10_1ff8, &bounds, &mapped));
        // The same stack through the low identity map is gone after the switch.
        assert!(!reachable_after_switch(0x10_1ff8, &bounds, &mapped));
        assert!(reachable_after_switch(PHYSICAL_MEMORY_OFFSET + 0xff_fff, &bounds, &mapped));
        assert!(!reachable_after_switch(PHYSICAL_MEMORY_OFFSET + 0x100_000, &bounds, &mapped));
        assert!(!reachable_after_switch(KERNEL_OFFSET + 0x20_0000, &bounds, &mapped));
    }
}
