//! The kernel's own page tables: construction at boot, the CR3 switch, and map/unmap/remap of page ranges.
//!
//! Page-table entry bits used (Intel SDM Vol. 3A, 4.5, Tables 4-15 to 4-20): P (bit 0), R/W (bit 1), PWT (bit 3),
//! PCD (bit 4), PS (bit 7, 2 MiB page in a PDE), XD (bit 63, honoured once IA32_EFER.NXE is set).

use crate::MemoryInitError;
use crate::access::Permissions;
use crate::errors::{MapError, RemapError};
use crate::frames::FRAME_ALLOCATOR;
use crate::layout::{BOOT_DIRECT_MAP_SIZE, KERNEL_OFFSET, LOW_MEMORY_SIZE, PHYSICAL_MEMORY_OFFSET};
use crate::plan::{FRAMES_PER_LARGE_PAGE, KernelImageBounds, LargePageSplit, split_for_large_pages};
use crate::shootdown::{self, ShootdownError};
use crate::sync::with_lock;
use memory_structs::{PAGE_SIZE, VirtualAddress};
use owned_spin::OwnedSpinLock;
use range_allocator::UnitRange;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3, Cr3Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::structures::paging::mapper::{MapToError, MapperFlush};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageSize, PageTable, PageTableFlags, PhysFrame, Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

/// The active kernel page tables, once `memory::init` has switched to them. The lock protects every page-table
/// entry reachable from the kernel PML4 (all mappings are changed through it). The TLB shootdown that follows a
/// change runs after it is released (a sender never waits for other CPUs while holding it; see `shootdown`).
/// Lock order: this lock first, then `frames::FRAME_ALLOCATOR` (page-table frames are allocated while it is held).
pub(crate) static KERNEL_PAGE_TABLE: OwnedSpinLock<Option<OffsetPageTable<'static>>> = OwnedSpinLock::new(None);

/// Flags of the entries that point to lower-level tables: the leaf entries decide the effective permissions.
const TABLE_FLAGS: PageTableFlags = PageTableFlags::PRESENT.union(PageTableFlags::WRITABLE);
/// Flags of the direct map: read/write data, never executable.
const DIRECT_MAP_FLAGS: PageTableFlags =
    PageTableFlags::PRESENT.union(PageTableFlags::WRITABLE).union(PageTableFlags::NO_EXECUTE);

/// The leaf flags for `permissions`; `device` adds PCD and PWT, which select UC with the power-on PAT (SDM Vol. 3A,
/// 12.12.3, Table 12-11).
pub(crate) fn leaf_flags(permissions: Permissions, device: bool) -> PageTableFlags {
    let mut flags = PageTableFlags::PRESENT;
    if permissions.is_writable() {
        flags |= PageTableFlags::WRITABLE;
    }
    if !permissions.is_executable() {
        flags |= PageTableFlags::NO_EXECUTE;
    }
    if device {
        flags |= PageTableFlags::NO_CACHE | PageTableFlags::WRITE_THROUGH;
    }
    flags
}

/// Hands out frames for new page tables from the global frame allocator, within `bounds` (frame numbers). These
/// frames are owned by the page tables forever (empty tables are not reclaimed).
struct TableFrames {
    bounds: UnitRange,
}

// SAFETY: every frame returned was just removed from the global free set, so it is unused and not handed out again;
// it lies within `bounds`, which the caller chooses so that the frame is reachable through the current direct map.
unsafe impl FrameAllocator<Size4KiB> for TableFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        // Prefer frames above 1 MiB, keeping low memory for the uses that need it (see `frames`).
        let high = self.bounds.intersection(UnitRange::new(LOW_MEMORY_SIZE / PAGE_SIZE, usize::MAX)?);
        let range = with_lock(&FRAME_ALLOCATOR, |allocator| {
            high.and_then(|high| allocator.allocate_within(1, 1, high).ok())
                .or_else(|| allocator.allocate_within(1, 1, self.bounds).ok())
        })?;
        PAGE_TABLE_FRAMES.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        PhysFrame::from_start_address(PhysAddr::new((range.start() * PAGE_SIZE) as u64)).ok()
    }
}

/// Frames taken for page tables since boot (never freed: empty tables are not reclaimed).
static PAGE_TABLE_FRAMES: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Frames taken for page tables since boot. They are never returned, so leak checks compare
/// `free_frames + page_table_frames` (see [`crate::MemoryStats`]).
pub(crate) fn page_table_frame_count() -> usize {
    PAGE_TABLE_FRAMES.load(core::sync::atomic::Ordering::Relaxed)
}

/// Frames below 4 GiB: before the switch only these are reachable through the boot direct map.
fn boot_table_frames() -> TableFrames {
    TableFrames { bounds: UnitRange::new(0, BOOT_DIRECT_MAP_SIZE / PAGE_SIZE).unwrap_or_default() }
}

/// Any frame: after the switch every allocatable frame is direct-mapped.
fn any_table_frames() -> TableFrames {
    TableFrames { bounds: UnitRange::new(0, usize::MAX).unwrap_or_default() }
}

fn virtual_address(value: usize) -> VirtAddr {
    // Callers pass canonical addresses (they come from `VirtualAddress` or layout constants).
    VirtAddr::new_truncate(value as u64)
}

fn map_error<S: PageSize>(error: MapToError<S>, address: usize) -> MapError {
    let address = VirtualAddress::new(virtual_address(address).as_u64() as usize);
    match error {
        MapToError::FrameAllocationFailed => MapError::PageTableFrameUnavailable { address },
        MapToError::ParentEntryHugePage | MapToError::PageAlreadyMapped(_) => MapError::AlreadyMapped { address },
    }
}

/// Maps one page of size `S` at `virtual_start` to the frame at `physical_start`, returning the pending TLB flush.
///
/// # Safety
/// The mapping must not create an alias that breaks Rust's aliasing rules: the frame must be owned by whoever will
/// own the page, or be memory that is only accessed through raw pointers (the direct map, the kernel image).
unsafe fn map_one<S: PageSize>(
    table: &mut OffsetPageTable<'static>,
    virtual_start: usize,
    physical_start: usize,
    flags: PageTableFlags,
    frames: &mut TableFrames,
) -> Result<MapperFlush<S>, MapError>
where
    OffsetPageTable<'static>: Mapper<S>,
{
    let page = Page::<S>::containing_address(virtual_address(virtual_start));
    let frame = PhysFrame::<S>::containing_address(PhysAddr::new(physical_start as u64));
    // SAFETY: the caller guarantees that the new mapping creates no forbidden alias; `frames` only yields unused
    // frames for intermediate tables.
    unsafe { table.map_to_with_table_flags(page, frame, flags, TABLE_FLAGS, frames) }
        .map_err(|error| map_error(error, virtual_start))
}

/// A fresh, empty PML4 in a frame below 4 GiB, wrapped for use through the direct map.
fn new_top_level_table() -> Result<(OffsetPageTable<'static>, PhysFrame), MemoryInitError> {
    let frame = boot_table_frames().allocate_frame().ok_or(MemoryInitError::Map {
        what: "the new PML4",
        error: MapError::PageTableFrameUnavailable { address: VirtualAddress::zero() },
    })?;
    let physical = frame.start_address().as_u64() as usize;
    let pointer = (PHYSICAL_MEMORY_OFFSET + physical) as *mut PageTable;
    // SAFETY: the frame was just allocated (exclusively ours, kept forever), lies below 4 GiB and is therefore
    // mapped RW by the boot direct map at PHYSICAL_MEMORY_OFFSET, and is 4 KiB-aligned as PageTable requires.
    // Writing a fresh value initialises it; the reference then lives as long as the frame, which is never freed.
    let pml4: &'static mut PageTable = unsafe {
        pointer.write(PageTable::new());
        &mut *pointer
    };
    // SAFETY: all physical memory that page-table walks reach (tables allocated by `TableFrames`) is mapped at
    // PHYSICAL_MEMORY_OFFSET, both by the boot tables now and by these tables after the switch.
    let table = unsafe { OffsetPageTable::new(pml4, VirtAddr::new_truncate(PHYSICAL_MEMORY_OFFSET as u64)) };
    Ok((table, frame))
}

/// Counts of what the direct map used, for `MemoryInfo`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DirectMapCounts {
    pub large_pages: usize,
    pub small_pages: usize,
}

/// Whether the direct map uses 2 MiB pages where a range allows. Off: 4 KiB pages only.
///
/// Why off (issue 11, measured): under QEMU TCG the direct map's 2 MiB pages made loading the boot cells about
/// 0.35 s slower under SeaBIOS (0.93 -> 0.59 s with 4 KiB pages; whole boot 2.20 -> 1.80 s, three runs each),
/// where RAM is one contiguous area and nearly all of the direct map is large pages. The likely mechanism: QEMU's
/// software TLB keeps one "large page" address range per MMU mode and flushes its whole TLB for any `invlpg`
/// inside that range (`accel/tcg/cputlb.c`); what was measured is that `perf` on QEMU showed about ten times the TLB refill work during the load under SeaBIOS than under OVMF (whose fragmented
/// map gives few large pages). The price of 4 KiB pages: 8 bytes of page table per 4 KiB of RAM (1 MiB per
/// 512 MiB) and about 5 ms more boot for 512 MiB; on hardware the direct map is touched rarely (boot modules,
/// page tables), so its TLB reach matters little.
const DIRECT_MAP_USES_LARGE_PAGES: bool = false;

/// Maps every frame range of `ranges` at `PHYSICAL_MEMORY_OFFSET + physical`, RW + NX, with 2 MiB pages where the
/// range allows (SDM Vol. 3A, 4.5: a PDE with PS=1 maps 2 MiB) if [`DIRECT_MAP_USES_LARGE_PAGES`], else with 4 KiB
/// pages.
fn map_direct(table: &mut OffsetPageTable<'static>, ranges: &[UnitRange]) -> Result<DirectMapCounts, MemoryInitError> {
    let mut counts = DirectMapCounts::default();
    let mut frames = boot_table_frames();
    let fail = |error| MemoryInitError::Map { what: "the direct map", error };
    for range in ranges {
        let split = if DIRECT_MAP_USES_LARGE_PAGES {
            split_for_large_pages(*range)
        } else {
            let empty = UnitRange::new(range.end(), range.end()).unwrap_or_default();
            LargePageSplit { head: *range, large: empty, tail: empty }
        };
        for frame in (split.head.start()..split.head.end()).chain(split.tail.start()..split.tail.end()) {
            let physical = frame * PAGE_SIZE;
            // SAFETY: the direct map is the designated alias of physical memory; it is only accessed through raw
            // pointers (`direct_map`, page-table walks), never through long-lived references that could conflict.
            unsafe {
                map_one::<Size4KiB>(table, PHYSICAL_MEMORY_OFFSET + physical, physical, DIRECT_MAP_FLAGS, &mut frames)
            }
            .map_err(fail)?
            .ignore(); // the table is not active yet: nothing to flush
            counts.small_pages += 1;
        }
        for frame in (split.large.start()..split.large.end()).step_by(FRAMES_PER_LARGE_PAGE) {
            let physical = frame * PAGE_SIZE;
            // SAFETY: as above, for a 2 MiB page.
            unsafe {
                map_one::<Size2MiB>(table, PHYSICAL_MEMORY_OFFSET + physical, physical, DIRECT_MAP_FLAGS, &mut frames)
            }
            .map_err(fail)?
            .ignore();
            counts.large_pages += 1;
        }
    }
    Ok(counts)
}

/// Maps the kernel image at `KERNEL_OFFSET + physical` with W^X per section: text RX, rodata R+NX, data/bss RW+NX,
/// and the rest of the image (the boot part: boot code, boot page tables, boot stack) RW+NX.
fn map_kernel_image(table: &mut OffsetPageTable<'static>, kernel: &KernelImageBounds) -> Result<(), MemoryInitError> {
    let mut frames = boot_table_frames();
    let section = |start: VirtualAddress, end: VirtualAddress| start.value()..end.value();
    let sections = [
        ("kernel .text", section(kernel.text_start, kernel.text_end), leaf_flags(Permissions::ReadExecute, false)),
        ("kernel .rodata", section(kernel.rodata_start, kernel.rodata_end), leaf_flags(Permissions::ReadOnly, false)),
        ("kernel .data/.bss", section(kernel.data_start, kernel.data_end), leaf_flags(Permissions::ReadWrite, false)),
    ];
    let image = (KERNEL_OFFSET + kernel.physical_start.value())..(KERNEL_OFFSET + kernel.physical_end.value());
    for page in image.step_by(PAGE_SIZE) {
        let (what, flags) = sections
            .iter()
            .find(|(_, range, _)| range.contains(&page))
            .map(|(what, _, flags)| (*what, *flags))
            .unwrap_or(("kernel boot part", leaf_flags(Permissions::ReadWrite, false)));
        // SAFETY: this recreates the kernel image mapping that the boot tables already provide (same virtual and
        // physical addresses), with narrower permissions; no new alias appears.
        unsafe { map_one::<Size4KiB>(table, page, page - KERNEL_OFFSET, flags, &mut frames) }
            .map_err(|error| MemoryInitError::Map { what, error })?
            .ignore();
    }
    Ok(())
}

/// Whether the CPU supports the execute-disable bit: CPUID.80000001H:EDX[bit 20] (SDM Vol. 2A, CPUID).
fn no_execute_supported() -> bool {
    let highest_extended = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    highest_extended >= 0x8000_0001 && core::arch::x86_64::__cpuid(0x8000_0001).edx & (1 << 20) != 0
}

/// Builds the kernel page tables: direct map of `direct_ranges`, kernel image W^X; nothing in the lower half.
pub(crate) fn build(
    kernel: &KernelImageBounds,
    direct_ranges: &[UnitRange],
) -> Result<(OffsetPageTable<'static>, PhysFrame, DirectMapCounts), MemoryInitError> {
    let (mut table, pml4_frame) = new_top_level_table()?;
    let counts = map_direct(&mut table, direct_ranges)?;
    map_kernel_image(&mut table, kernel)?;
    Ok((table, pml4_frame, counts))
}

/// Enables IA32_EFER.NXE (bit 11; SDM Vol. 3A, 2.2.1 and Table 2-1) and CR0.WP (bit 16; SDM Vol. 3A, 2.5), then loads
/// `pml4_frame` into CR3 (SDM Vol. 3A, 4.5), which also flushes all non-global TLB entries.
///
/// # Errors
/// [`MemoryInitError::NoExecuteUnsupported`] if the CPU lacks NX (nothing is changed then).
///
/// # Safety
/// `table` (rooted at `pml4_frame`) must map everything the CPU touches after the switch: the executing code, the
/// current stack, the GDT, IDT and TSS, and every static or pointer used afterwards. The boot tables must map all
/// pages writable (CR0.WP makes read-only pages read-only for the kernel too).
pub(crate) unsafe fn activate(table: OffsetPageTable<'static>, pml4_frame: PhysFrame) -> Result<(), MemoryInitError> {
    if !no_execute_supported() {
        return Err(MemoryInitError::NoExecuteUnsupported);
    }
    // SAFETY: NX is supported (checked above); setting NXE only gives meaning to bit 63 of entries, which the boot
    // tables leave clear, and the new tables need it before they are loaded.
    unsafe { Efer::update(|flags| flags.insert(EferFlags::NO_EXECUTE_ENABLE)) };
    // SAFETY: with WP set, supervisor writes honour R/W; the caller guarantees the boot tables map everything the
    // kernel writes before the switch as writable, and the new tables map writable data RW.
    unsafe { Cr0::update(|flags| flags.insert(Cr0Flags::WRITE_PROTECT)) };
    // SAFETY: the caller guarantees that the new tables map all memory used from here on.
    unsafe { Cr3::write(pml4_frame, Cr3Flags::empty()) };
    with_lock(&KERNEL_PAGE_TABLE, |slot| *slot = Some(table));
    Ok(())
}

/// Maps `count` consecutive pages from `virtual_start` to `count` consecutive frames from `physical_start` with
/// `flags`, flushing each page's TLB entry on this CPU (other CPUs cache no translation of a not-present entry, SDM
/// Vol. 3A 4.10.2.3, so adding a mapping needs no shootdown). On failure, the pages mapped so far are unmapped
/// again (with a shootdown: another CPU may have cached them speculatively).
///
/// # Safety
/// The caller must own both the pages and the frames (or, for device memory, have exclusive use of the frames), so
/// the new mapping creates no alias that breaks Rust's aliasing rules.
pub(crate) unsafe fn map_range(
    virtual_start: usize,
    physical_start: usize,
    count: usize,
    flags: PageTableFlags,
) -> Result<(), MapError> {
    // A page-table frame may be missing only because dropped mappings wait for their shootdown: then free those
    // and try once more (outside the page-table lock).
    // SAFETY: the caller's contract, passed on unchanged (each attempt maps the same pages to the same frames).
    crate::deferred::retry_after_flush(|| unsafe { map_range_once(virtual_start, physical_start, count, flags) })
}

/// One attempt of [`map_range`].
///
/// # Safety
/// As for [`map_range`].
unsafe fn map_range_once(
    virtual_start: usize,
    physical_start: usize,
    count: usize,
    flags: PageTableFlags,
) -> Result<(), MapError> {
    let rolled_back = with_lock(&KERNEL_PAGE_TABLE, |slot| {
        let table = slot.as_mut().ok_or(MapError::NotInitialized)?;
        let mut frames = any_table_frames();
        for index in 0..count {
            let offset = index * PAGE_SIZE;
            // SAFETY: the caller owns the pages and frames (see this function's contract).
            let result = unsafe {
                map_one::<Size4KiB>(table, virtual_start + offset, physical_start + offset, flags, &mut frames)
            };
            match result {
                Ok(flush) => flush.flush(),
                Err(error) => {
                    unmap_in(table, virtual_start, index);
                    return Ok(Some((error, index)));
                }
            }
        }
        Ok(None)
    })?;
    match rolled_back {
        None => Ok(()),
        Some((error, mapped)) => {
            // The pages go back to their owner, who frees them on this error: if the round failed, a stale
            // translation may survive, so report that instead (the owner then must not reuse them; see
            // `MapError::Shootdown`).
            shootdown::shoot_down(virtual_start, mapped).map_err(MapError::Shootdown)?;
            Err(error)
        }
    }
}

/// Unmaps `count` pages from `virtual_start` in `table` (the caller flushes); pages not mapped are skipped.
fn unmap_in(table: &mut OffsetPageTable<'static>, virtual_start: usize, count: usize) {
    for index in 0..count {
        let page = Page::<Size4KiB>::containing_address(virtual_address(virtual_start + index * PAGE_SIZE));
        if let Ok((_, flush)) = table.unmap(page) {
            // The shootdown after the page-table lock is released flushes this CPU too.
            flush.ignore();
        }
    }
}

/// Unmaps `count` pages from `virtual_start`, then flushes their translations on every CPU (one shootdown round
/// for the whole range, after the page-table lock is released). The frames are not freed. Pages that are not
/// mapped are skipped. Does nothing before `memory::init`.
///
/// # Errors
/// [`ShootdownError`] if another CPU did not acknowledge: it may still translate the pages, so the caller must not
/// reuse the pages or frames.
pub(crate) fn unmap_range(virtual_start: usize, count: usize) -> Result<(), ShootdownError> {
    let unmapped = with_lock(&KERNEL_PAGE_TABLE, |slot| {
        slot.as_mut().map(|table| unmap_in(table, virtual_start, count)).is_some()
    });
    if unmapped { shootdown::shoot_down(virtual_start, count) } else { Ok(()) }
}

/// Unmaps `count` pages from `virtual_start` and flushes them on this CPU only; pages that are not mapped are
/// skipped. The caller must not reuse the pages or frames before a shootdown round that starts after this call has
/// completed (`deferred::free_after_shootdown`). Does nothing before `memory::init`.
pub(crate) fn unmap_range_locally(virtual_start: usize, count: usize) {
    let unmapped = with_lock(&KERNEL_PAGE_TABLE, |slot| {
        slot.as_mut().map(|table| unmap_in(table, virtual_start, count)).is_some()
    });
    if unmapped {
        shootdown::flush_this_cpu(virtual_start, count);
    }
}

/// Changes the flags of `count` mapped pages from `virtual_start`, then flushes their translations on every CPU
/// (one shootdown round, after the page-table lock is released): any permission change may narrow a mapping, and
/// a stale wider translation on another CPU would outlive it (SDM Vol. 3A 4.10.5).
///
/// # Errors
/// [`RemapError::NotMapped`] (pages before the unmapped one were changed and are flushed too);
/// [`RemapError::NotInitialized`]; [`RemapError::Shootdown`] if another CPU did not acknowledge.
///
/// # Safety
/// The caller must own the pages; making a page writable or executable must not break an invariant that other
/// code relies on (e.g. W^X of code that others may be executing).
pub(crate) unsafe fn update_range(virtual_start: usize, count: usize, flags: PageTableFlags) -> Result<(), RemapError> {
    let (changed, result) = with_lock(&KERNEL_PAGE_TABLE, |slot| {
        let Some(table) = slot.as_mut() else { return (0, Err(RemapError::NotInitialized)) };
        for index in 0..count {
            let address = virtual_start + index * PAGE_SIZE;
            let page = Page::<Size4KiB>::containing_address(virtual_address(address));
            // SAFETY: the caller owns the page and accepts the new permissions.
            match unsafe { table.update_flags(page, flags) } {
                // Flushed below, on every CPU.
                Ok(flush) => flush.ignore(),
                Err(_) => return (index, Err(RemapError::NotMapped { address: VirtualAddress::new(address) })),
            }
        }
        (count, Ok(()))
    });
    if changed > 0 {
        shootdown::shoot_down(virtual_start, changed).map_err(RemapError::Shootdown)?;
    }
    result
}
