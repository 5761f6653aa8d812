//! Per-CPU data through the GS base: which CPU am I, how many are online, and each CPU's GDT, TSS and IST stacks.
//!
//! # Purpose
//! Every CPU gets one [`PerCpu`] record, allocated once and never freed, whose address is written to its
//! IA32_GS_BASE MSR (0xC000_0101; Intel SDM Vol. 4, Table 2-2, and Vol. 3A 3.4.4.1). Reading the CPU's logical
//! index is then one `mov %gs:OFFSET, %eax`: cheap, and correct on every CPU without locks. The record also owns
//! the CPU's own GDT and TSS, whose interrupt stack table (SDM Vol. 3A 6.14.5) gives the double-fault, page-fault
//! and NMI handlers their own stacks, each with an unmapped guard page below it: a kernel stack overflow into a
//! guard page raises #PF, which still has a good stack to run on.
//!
//! Other cells keep their per-CPU state in arrays indexed by [`CpuId::index`] (`MAX_CPUS` entries), so this crate
//! stays small and holds no per-client bookkeeping. The one exception is the heap's per-CPU front
//! (`memory::CpuHeap`, at a fixed offset of the record): the allocator's fast path reaches it GS-relative, without
//! an index lookup.
//!
//! # Key types and functions
//! - [`CpuId`] (logical index, 0 = the bootstrap CPU) and [`ApicId`] (the local APIC's hardware id).
//! - [`current_id`], [`current_apic_id`], [`count`], [`online`], [`is_online`], [`apic_id`], [`MAX_CPUS`];
//!   [`mark_offline`] / [`mark_online_again`] for a CPU that halts (it then no longer counts).
//! - [`init_current`]: per-CPU setup on the calling CPU, returning [`CpuInitError`] on failure.
//! - IST slot numbers [`DOUBLE_FAULT_IST_INDEX`], [`PAGE_FAULT_IST_INDEX`], [`NMI_IST_INDEX`] for the IDT.
//!
//! # Control flow
//! 1. The bootstrap CPU calls [`init_current`] with `CpuId::BOOTSTRAP` and its APIC id, before other CPUs start.
//!    Before that, [`current_id`] answers `CpuId(0)`.
//! 2. Each application processor calls [`init_current`] first thing after the trampoline, before anything reads
//!    [`current_id`] on it.
//! 3. [`init_current`]: point IA32_GS_BASE at the heap's shared record (so allocating works before this CPU's
//!    record exists), allocate the IST stacks (guard page + stack each), build the TSS and GDT (null, kernel code
//!    0x08, kernel data 0x10, TSS 0x18), load them (reloading CS/DS/ES/SS, `ltr`), write IA32_GS_BASE, turn on the
//!    CPU's heap lists (`memory::enable_cpu_heap`, kept in the record), and count the CPU as online.
#![no_std]

extern crate alloc;

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use memory::{AllocatedPages, MappedPages, Permissions};
use memory_structs::PAGE_SIZE;
use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// The most CPUs this kernel runs on. CPUs beyond it that the firmware lists are left offline. At most 64: the
/// online set and the TLB shootdown's participant set are 64-bit masks.
pub const MAX_CPUS: usize = 64;
const _: () = assert!(MAX_CPUS <= 64 && MAX_CPUS <= memory::SHOOTDOWN_MAX_CPUS);

/// IST slot (0-based index into the TSS's interrupt stack table) of the double-fault handler.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;
/// IST slot of the page-fault handler (a stack overflow into a guard page must still find a stack).
pub const PAGE_FAULT_IST_INDEX: u16 = 1;
/// IST slot of the NMI handler (an NMI may arrive at any instruction, including with a bad stack pointer).
pub const NMI_IST_INDEX: u16 = 2;

/// Size of the NMI stack, in bytes.
const SMALL_IST_STACK_SIZE: usize = 16 * 1024;
/// Size of the page-fault and double-fault stacks, in bytes: the task-fault hook (and later the unwinder, or the
/// ending of a task whose stack pointer was bad, with its failure callback's respawn) runs on them.
const PAGE_FAULT_STACK_SIZE: usize = 64 * 1024;

/// A CPU's logical index: 0 is the bootstrap CPU, the others are numbered in the order they were started,
/// always below [`MAX_CPUS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuId(u32);

impl CpuId {
    /// The bootstrap CPU (the one that booted the kernel).
    pub const BOOTSTRAP: CpuId = CpuId(0);

    /// The CPU with logical index `index`, or `None` if `index >= MAX_CPUS`.
    pub const fn new(index: usize) -> Option<CpuId> {
        if index < MAX_CPUS { Some(CpuId(index as u32)) } else { None }
    }

    /// The logical index, `0 .. MAX_CPUS`, for per-CPU arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl core::fmt::Display for CpuId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CPU {}", self.0)
    }
}

/// A local APIC id: the hardware's name for a CPU, used to address interrupts and IPIs (SDM Vol. 3A 10.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApicId(pub u32);

/// The per-CPU record that IA32_GS_BASE points to. `#[repr(C)]`: [`current_id`] reads `cpu_index` at a fixed
/// offset. Allocated once per CPU and never freed (its GDT and TSS must outlive every use by the hardware).
#[repr(C)]
pub struct PerCpu {
    /// This record's own address (offset 0), the usual way to turn GS into a pointer.
    self_pointer: *const PerCpu,
    /// The logical index (offset 8).
    cpu_index: u32,
    /// The local APIC id (offset 12).
    apic_id: u32,
    /// This CPU's heap lists and heap pin (offset `memory::CPU_HEAP_OFFSET`, 16), reached GS-relative by the
    /// allocator's fast path.
    heap: memory::CpuHeap,
    /// The CPU's TSS (referenced by the GDT's TSS descriptor).
    _tss: &'static TaskStateSegment,
    /// The CPU's GDT.
    _gdt: &'static GlobalDescriptorTable,
    /// The IST stacks (kept mapped forever), each with its guard page (kept allocated, never mapped).
    ist_stacks: [(AllocatedPages, MappedPages); 3],
}

/// Byte offset of [`PerCpu::cpu_index`], read by [`current_id`].
const CPU_INDEX_OFFSET: usize = core::mem::offset_of!(PerCpu, cpu_index);
/// Byte offset of [`PerCpu::apic_id`], read by [`current_apic_id`].
const APIC_ID_OFFSET: usize = core::mem::offset_of!(PerCpu, apic_id);
const _: () = assert!(core::mem::offset_of!(PerCpu, heap) == memory::CPU_HEAP_OFFSET);

/// Set once the bootstrap CPU's GS base points to its record; until then [`current_id`] answers `CpuId(0)`.
static BOOTSTRAP_READY: AtomicBool = AtomicBool::new(false);
/// The online CPUs, bit n = logical CPU n: set by [`init_current`], cleared by [`mark_offline`] (a CPU halted for
/// good). [`count`], [`online`] and [`apic_id`] read it, so stop-the-world and IPI senders never wait for, or send
/// to, a halted CPU.
static ONLINE_MASK: AtomicU64 = AtomicU64::new(0);
/// The APIC id of each logical CPU (`u32::MAX`: none). Written once per CPU by [`init_current`].
static APIC_IDS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(u32::MAX) }; MAX_CPUS];

/// Why [`init_current`] failed. Nothing was loaded into the CPU then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuInitError {
    /// This logical CPU was already initialised.
    AlreadyInitialized(CpuId),
    /// An IST stack could not be allocated or mapped.
    Stack(memory::MapError),
    /// Pages for an IST stack and its guard page could not be allocated.
    GuardPages(memory::AllocateError),
}

/// The calling CPU's logical index: one GS-relative load. `CpuId(0)` on the bootstrap CPU before its
/// [`init_current`].
///
/// Must not be called on an application processor before its [`init_current`] (its GS base is 0 then): the
/// `smp` cell's entry code calls `init_current` before anything else.
#[inline]
pub fn current_id() -> CpuId {
    if !BOOTSTRAP_READY.load(Ordering::Acquire) {
        return CpuId::BOOTSTRAP;
    }
    let index: u32;
    // SAFETY: every CPU that runs kernel code after the bootstrap CPU's `init_current` has its GS base pointing to
    // its own live `PerCpu` (see the contract above), and `cpu_index` lies at CPU_INDEX_OFFSET inside it; the read
    // has no side effects.
    unsafe {
        core::arch::asm!("mov {index:e}, gs:[{offset}]", index = out(reg) index, offset = const CPU_INDEX_OFFSET,
            options(nostack, preserves_flags, readonly));
    }
    CpuId(index)
}

/// The calling CPU's local APIC id as recorded by [`init_current`], or `None` before it.
pub fn current_apic_id() -> Option<ApicId> {
    if !BOOTSTRAP_READY.load(Ordering::Acquire) {
        return None;
    }
    let apic_id: u32;
    // SAFETY: as in `current_id`, for the `apic_id` field.
    unsafe {
        core::arch::asm!("mov {id:e}, gs:[{offset}]", id = out(reg) apic_id, offset = const APIC_ID_OFFSET,
            options(nostack, preserves_flags, readonly));
    }
    Some(ApicId(apic_id))
}

/// The number of CPUs online (that completed [`init_current`] and were not marked offline since); 0 before the
/// bootstrap CPU's.
pub fn count() -> usize {
    ONLINE_MASK.load(Ordering::Acquire).count_ones() as usize
}

/// Whether logical CPU `cpu` is online.
pub fn is_online(cpu: CpuId) -> bool {
    ONLINE_MASK.load(Ordering::Acquire) & (1 << cpu.index()) != 0
}

/// The local APIC id of logical CPU `cpu`, or `None` if it is not online.
pub fn apic_id(cpu: CpuId) -> Option<ApicId> {
    if !is_online(cpu) {
        return None;
    }
    match APIC_IDS[cpu.index()].load(Ordering::Acquire) {
        u32::MAX => None,
        id => Some(ApicId(id)),
    }
}

/// Every online CPU's id, in index order (for IPIs and per-CPU reports).
pub fn online() -> impl Iterator<Item = CpuId> {
    let mask = ONLINE_MASK.load(Ordering::Acquire);
    (0..MAX_CPUS).filter_map(CpuId::new).filter(move |cpu| mask & (1 << cpu.index()) != 0)
}

/// Takes `cpu` out of the online set, for a CPU that halts for good (`smp::park_current_cpu`) or, in a test,
/// for a while (then [`mark_online_again`]). Afterwards [`count`] and [`online`] leave it out and [`apic_id`]
/// answers `None`. Returns whether it was online.
pub fn mark_offline(cpu: CpuId) -> bool {
    ONLINE_MASK.fetch_and(!(1 << cpu.index()), Ordering::AcqRel) & (1 << cpu.index()) != 0
}

/// Puts a CPU taken out by [`mark_offline`] back into the online set. Returns `false` (and changes nothing) if
/// `cpu` never completed [`init_current`].
pub fn mark_online_again(cpu: CpuId) -> bool {
    if APIC_IDS[cpu.index()].load(Ordering::Acquire) == u32::MAX {
        return false;
    }
    ONLINE_MASK.fetch_or(1 << cpu.index(), Ordering::AcqRel);
    true
}

/// Whether `address` lies on one of the calling CPU's IST stacks or their guard pages: a fault whose interrupted
/// stack pointer is there happened while an exception handler (or an NMI/#DF handler) was running on this CPU.
/// `false` before [`init_current`] on this CPU.
pub fn on_exception_stack(address: usize) -> bool {
    exception_stacks().iter().any(|stack| stack.contains(&address))
}

/// The calling CPU's IST stacks (#DF, #PF, NMI), each with its guard page, as address ranges; empty before
/// [`init_current`] on this CPU. Takes no lock and does not allocate.
pub fn exception_stacks() -> [core::ops::Range<usize>; 3] {
    if !BOOTSTRAP_READY.load(Ordering::Acquire) {
        return [0..0, 0..0, 0..0];
    }
    let record: *const PerCpu;
    // SAFETY: as in `current_id`: GS points to this CPU's live record, whose first field is its own address.
    unsafe {
        core::arch::asm!("mov {record}, gs:[0]", record = out(reg) record, options(nostack, preserves_flags, readonly));
    }
    // SAFETY: `record` is this CPU's leaked `PerCpu`, never freed or mutated after `init_current`.
    let record = unsafe { &*record };
    record.ist_stacks.each_ref().map(|(guard, stack)| {
        let start = guard.start_address().value();
        start..stack.start_address().value() + stack.size_in_bytes()
    })
}

/// Allocates a stack of `size_in_bytes` with an unmapped guard page below it; returns (guard, stack).
fn guarded_stack(size_in_bytes: usize) -> Result<(AllocatedPages, MappedPages), CpuInitError> {
    let pages = size_in_bytes / PAGE_SIZE;
    let all = memory::allocate_pages(pages + 1).map_err(CpuInitError::GuardPages)?;
    let (guard, stack_pages) =
        all.split_at(1).map_err(|_| CpuInitError::GuardPages(memory::AllocateError::ZeroCount))?;
    let frames =
        memory::allocate_frames(pages).map_err(|error| CpuInitError::Stack(memory::MapError::Frames(error)))?;
    let stack = memory::map_allocated(stack_pages, frames, Permissions::ReadWrite).map_err(CpuInitError::Stack)?;
    Ok((guard, stack))
}

/// The top (one past the last byte, 16-byte aligned) of a stack mapping.
fn stack_top(stack: &MappedPages) -> VirtAddr {
    VirtAddr::new((stack.start_address().value() + stack.size_in_bytes()) as u64)
}

/// Sets up the calling CPU as logical CPU `cpu` with local APIC id `apic_id`: allocates its IST stacks, loads its own
/// GDT and TSS, points IA32_GS_BASE at its [`PerCpu`] record, and counts it online. Interrupts should be disabled.
///
/// # Errors
/// [`CpuInitError::AlreadyInitialized`] if `cpu` was set up before; [`CpuInitError::GuardPages`] or
/// [`CpuInitError::Stack`] if memory for the IST stacks is exhausted.
pub fn init_current(cpu: CpuId, apic_id: ApicId) -> Result<(), CpuInitError> {
    if APIC_IDS[cpu.index()].load(Ordering::Acquire) != u32::MAX {
        return Err(CpuInitError::AlreadyInitialized(cpu));
    }
    // Until the record below exists, this CPU allocates through the heap's shared path (an application
    // processor's GS base is 0 when it arrives here).
    memory::point_gs_at_shared_record();
    let double_fault = guarded_stack(PAGE_FAULT_STACK_SIZE)?;
    let page_fault = guarded_stack(PAGE_FAULT_STACK_SIZE)?;
    let nmi = guarded_stack(SMALL_IST_STACK_SIZE)?;
    let mut tss = TaskStateSegment::new();
    tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] = stack_top(&double_fault.1);
    tss.interrupt_stack_table[PAGE_FAULT_IST_INDEX as usize] = stack_top(&page_fault.1);
    tss.interrupt_stack_table[NMI_IST_INDEX as usize] = stack_top(&nmi.1);
    // The TSS, GDT and record are leaked: they live (at fixed addresses) for the rest of the kernel's life, which the
    // GDT register, the TSS descriptor and GS base all require.
    let tss: &'static TaskStateSegment = Box::leak(Box::new(tss));
    let mut gdt = GlobalDescriptorTable::new();
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss_selector = gdt.append(Descriptor::tss_segment(tss));
    let gdt: &'static GlobalDescriptorTable = Box::leak(Box::new(gdt));
    let record: &'static mut PerCpu = Box::leak(Box::new(PerCpu {
        self_pointer: core::ptr::null(),
        cpu_index: cpu.0,
        apic_id: apic_id.0,
        heap: memory::CpuHeap::new(),
        _tss: tss,
        _gdt: gdt,
        ist_stacks: [double_fault, page_fault, nmi],
    }));
    record.self_pointer = &raw const *record;
    let record: &'static PerCpu = record;
    load_tables(gdt, code, data, tss_selector);
    GsBase::write(VirtAddr::from_ptr(record as *const PerCpu));
    memory::enable_cpu_heap(cpu.index(), &record.heap);
    APIC_IDS[cpu.index()].store(apic_id.0, Ordering::Release);
    ONLINE_MASK.fetch_or(1 << cpu.index(), Ordering::AcqRel);
    if cpu == CpuId::BOOTSTRAP {
        BOOTSTRAP_READY.store(true, Ordering::Release);
    }
    Ok(())
}

/// Loads `gdt`, reloads the segment registers with its kernel selectors and loads the task register.
fn load_tables(
    gdt: &'static GlobalDescriptorTable,
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
) {
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, which is 'static; code and data are the flat 64-bit kernel
    // segments (same layout as nano_core's and the trampoline's), and the TSS descriptor points to this CPU's
    // 'static TSS, not yet loaded by any CPU (so it is "available", SDM Vol. 3A 7.2.2).
    unsafe {
        use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
        CS::set_reg(code);
        DS::set_reg(data);
        ES::set_reg(data);
        SS::set_reg(data);
        x86_64::instructions::tables::load_tss(tss);
    }
}
