//! `memory::init`: the whole boot sequence of the memory system, and access to boot modules.

use crate::errors::MemoryInitError;
use crate::frames::{FRAME_ALLOCATOR, FRAME_RANGE_CAPACITY, free_frame_count};
use crate::layout::{HEAP_INITIAL_SIZE, HEAP_START, PAGE_REGION_END, PAGE_REGION_START};
use crate::plan::{KernelImageBounds, direct_map_frames, reachable_after_switch, usable_frames};
use crate::sync::with_lock;
use crate::{MemoryInfo, direct_map, heap, pages, paging};
use boot_info::{BootInfo, MAX_MODULES, Module, PhysicalRegion};
use core::sync::atomic::{AtomicBool, Ordering};
use memory_structs::{PAGE_SIZE, PhysicalAddress, VirtualAddress};
use owned_spin::OwnedSpinLock;
use range_allocator::RangeAllocator;

/// Capacity of the direct-map range set (RAM and ACPI areas, modules, kernel, boot information).
const DIRECT_MAP_RANGE_CAPACITY: usize = 512;

/// Every frame of RAM that the frame allocator manages, free or allocated (the `Available` areas). Written once by
/// `init`, then only read (by `map_device_memory`, to refuse mapping RAM as a device); the lock protects that write.
pub(crate) static MANAGED_FRAMES: OwnedSpinLock<RangeAllocator<FRAME_RANGE_CAPACITY>> =
    OwnedSpinLock::new(RangeAllocator::new());

/// The physical regions of the boot modules, recorded by `init` for [`module_bytes`]. Written once, then read.
static MODULE_REGIONS: OwnedSpinLock<([PhysicalRegion; MAX_MODULES], usize)> = OwnedSpinLock::new((
    [PhysicalRegion { start: PhysicalAddress::zero(), end: PhysicalAddress::zero() }; MAX_MODULES],
    0,
));

/// Set when `init` starts; a second call fails.
static INIT_STARTED: AtomicBool = AtomicBool::new(false);

impl KernelImageBounds {
    /// Reads the bounds from the linker script's symbols (`cfg/linker.ld`): `__kernel_physical_start/end`,
    /// `__text_start/end`, `__rodata_start/end`, `__data_start/end`. Only the symbols' addresses are used.
    pub fn from_linker_symbols() -> Self {
        unsafe extern "C" {
            static __kernel_physical_start: u8;
            static __kernel_physical_end: u8;
            static __text_start: u8;
            static __text_end: u8;
            static __rodata_start: u8;
            static __rodata_end: u8;
            static __data_start: u8;
            static __data_end: u8;
        }
        // Linker symbols have an address but no object behind it (`__kernel_physical_start` is not even a mapped
        // virtual address), so only raw addresses are taken, never references. A value that is not a valid address
        // (a broken script) becomes 0 and fails `validate` with a clear reason instead of panicking here.
        let virtual_address = |symbol: *const u8| VirtualAddress::try_new(symbol as usize).unwrap_or_default();
        let physical_address = |symbol: *const u8| PhysicalAddress::try_new(symbol as usize).unwrap_or_default();
        Self {
            physical_start: physical_address(&raw const __kernel_physical_start),
            physical_end: physical_address(&raw const __kernel_physical_end),
            text_start: virtual_address(&raw const __text_start),
            text_end: virtual_address(&raw const __text_end),
            rodata_start: virtual_address(&raw const __rodata_start),
            rodata_end: virtual_address(&raw const __rodata_end),
            data_start: virtual_address(&raw const __data_start),
            data_end: virtual_address(&raw const __data_end),
        }
    }
}

/// Brings up the memory system. Call once, on the bootstrap CPU, with interrupts disabled, before any allocation.
///
/// Steps: (1) validate `kernel`; (2) fill the frame allocator with the `Available` areas minus page 0, the kernel
/// image, the boot information and every module; (3) compute the direct map (RAM and ACPI areas, low 1 MiB, image,
/// boot information, modules); (4) check that the stack, GDT and IDT will stay mapped; (5) build new page tables
/// (direct map RW+NX with 2 MiB pages where possible, kernel image W^X, empty lower half), enable EFER.NXE and
/// CR0.WP, and load CR3 (this removes the boot identity map); (6) fill the page allocator; (7) map and initialise
/// the heap.
///
/// `boot_info` is copied from as needed; it may live anywhere that stays mapped (a `static` in the image is best).
///
/// # Errors
/// A [`MemoryInitError`] describing what is wrong; the system cannot continue without memory. In particular
/// [`MemoryInitError::UnreachableAfterSwitch`] if the stack, GDT or IDT is still in the low identity map: the boot
/// code must use their higher-half aliases (`KERNEL_OFFSET + physical`) before calling `init`.
pub fn init(boot_info: &BootInfo, kernel: KernelImageBounds) -> Result<MemoryInfo, MemoryInitError> {
    if INIT_STARTED.swap(true, Ordering::AcqRel) {
        return Err(MemoryInitError::AlreadyInitialized);
    }
    kernel.validate()?;

    // (2) Frames. Reservations: page 0, the image, the boot information, then the modules.
    let mut reservations = [PhysicalRegion::default(); MAX_MODULES + 3];
    reservations[0] = PhysicalRegion { start: PhysicalAddress::zero(), end: PhysicalAddress::new(PAGE_SIZE) };
    reservations[1] = kernel.physical_region();
    reservations[2] = boot_info.information_region();
    let modules = boot_info.modules();
    for (slot, module) in reservations[3..].iter_mut().zip(modules) {
        *slot = module.region;
    }
    let reservations = &reservations[..3 + modules.len()];
    let areas = boot_info.memory_areas();
    with_lock(&FRAME_ALLOCATOR, |free| usable_frames(areas, reservations, free))?;
    with_lock(&MANAGED_FRAMES, |managed| usable_frames(areas, &[], managed))?;
    with_lock(&MODULE_REGIONS, |(regions, count)| {
        for (slot, module) in regions.iter_mut().zip(modules) {
            *slot = module.region;
        }
        *count = modules.len();
    });
    let usable_frames_count = free_frame_count();
    if usable_frames_count == 0 {
        return Err(MemoryInitError::NoUsableMemory);
    }

    // (3) The direct map: everything except page 0's reservation is also mapped.
    let mut direct = RangeAllocator::<DIRECT_MAP_RANGE_CAPACITY>::new();
    direct_map_frames(areas, &reservations[1..], &mut direct)?;

    // (4) What the CPU uses right now must stay mapped after the switch.
    let stack_marker = 0u8;
    let gdt = x86_64::instructions::tables::sgdt();
    let idt = x86_64::instructions::tables::sidt();
    let in_use = [
        ("the current stack", core::ptr::addr_of!(stack_marker) as usize),
        ("the GDT (GDTR.base)", gdt.base.as_u64() as usize),
        ("the end of the GDT", gdt.base.as_u64() as usize + usize::from(gdt.limit)),
        ("the IDT (IDTR.base)", idt.base.as_u64() as usize),
        ("the end of the IDT", idt.base.as_u64() as usize + usize::from(idt.limit)),
    ];
    for (what, address) in in_use {
        if !reachable_after_switch(address, &kernel, &direct) {
            return Err(MemoryInitError::UnreachableAfterSwitch { what, address });
        }
    }

    // (5) Our own page tables.
    let frames_before_tables = free_frame_count();
    let (table, pml4_frame, counts) = paging::build(&kernel, direct.free_ranges())?;
    // The new tables map the kernel image at its linked addresses (all code and statics, and the boot part with the
    // boot stack) and the direct map at the boot tables' offset (so `boot_info`, modules and page tables stay
    // reachable). The boot asm maps everything writable.
    // SAFETY: everything used after the switch is mapped (above); step (4) checked the stack, GDT and IDT.
    unsafe { paging::activate(table, pml4_frame) }?;
    let page_table_frames = frames_before_tables - free_frame_count();

    // (6) Pages, (7) heap.
    pages::init().map_err(|_| MemoryInitError::TooFragmented {
        what: "free page ranges",
        capacity: pages::PAGE_RANGE_CAPACITY,
    })?;
    heap::init().map_err(|error| MemoryInitError::Map { what: "the kernel heap", error })?;

    Ok(MemoryInfo {
        usable_bytes: usable_frames_count * PAGE_SIZE,
        free_bytes: free_frame_count() * PAGE_SIZE,
        direct_mapped_bytes: direct.free_units() * PAGE_SIZE,
        direct_map_large_pages: counts.large_pages,
        direct_map_small_pages: counts.small_pages,
        page_table_frames,
        kernel_text_bytes: kernel.text_end.value() - kernel.text_start.value(),
        kernel_rodata_bytes: kernel.rodata_end.value() - kernel.rodata_start.value(),
        kernel_data_bytes: kernel.data_end.value() - kernel.data_start.value(),
        heap_start: VirtualAddress::new(HEAP_START),
        heap_size_in_bytes: HEAP_INITIAL_SIZE,
        page_region_start: VirtualAddress::new(PAGE_REGION_START),
        page_region_end: VirtualAddress::new(PAGE_REGION_END),
    })
}

/// The bytes of a boot module, read through the direct map.
///
/// Returns `None` if `module` is not one of the modules that `init` recorded (same physical region), or before
/// `init`: only recorded modules are known to be reserved forever (never handed out by the frame allocator, so never
/// written) and direct-mapped.
pub fn module_bytes(module: &Module) -> Option<&'static [u8]> {
    let known = with_lock(&MODULE_REGIONS, |(regions, count)| regions[..*count].contains(&module.region));
    if !known {
        return None;
    }
    let start = direct_map::virtual_address_of(module.region.start) as *const u8;
    // SAFETY: the region is a recorded boot module: `init` reserved its frames forever (nothing allocates or writes
    // them) and mapped them in the direct map, which is never unmapped; so the bytes stay valid and unchanged for
    // `'static`.
    Some(unsafe { core::slice::from_raw_parts(start, module.region.size_in_bytes()) })
}

/// Current counters for tests and the shell. First frees the dropped mappings that wait for a TLB shootdown (one
/// round), so the counters include everything dropped so far. Call without holding a lock (it may run a round).
pub fn stats() -> crate::MemoryStats {
    crate::deferred::flush_deferred();
    let (heap_used_bytes, heap_free_bytes) = heap::usage();
    crate::MemoryStats {
        free_frames: free_frame_count(),
        free_pages: pages::free_page_count(),
        heap_used_bytes,
        heap_free_bytes,
        leaked_frames: crate::frames::leaked_frame_count(),
        page_table_frames: crate::paging::page_table_frame_count(),
    }
}
