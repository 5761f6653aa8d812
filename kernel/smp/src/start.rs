//! Starting the application processors one at a time with INIT-SIPI-SIPI (Intel SDM Vol. 3A 8.4.4.1, "Typical BSP
//! Initialization Sequence"), and their 64-bit entry.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use cpu::{ApicId, CpuId};
use memory::{AllocatedPages, MappedPages, Permissions};
use memory_structs::{PAGE_SIZE, PhysicalAddress};
use spin::Mutex;
use x86_64::registers::control::Cr3;

use crate::SmpError;
use crate::trampoline::{self, Parameters};

/// Size of each application processor's boot stack in bytes (it keeps running on it: the idle loop, later the
/// scheduler's idle task).
const AP_STACK_SIZE: usize = 64 * 1024;
/// Wait after INIT before the first SIPI (SDM: 10 ms).
const INIT_DELAY_US: u64 = 10_000;
/// Wait after each SIPI before checking (SDM: 200 us).
const STARTUP_DELAY_US: u64 = 200;
/// How long an application processor may take from its SIPI to its acknowledgement (generous for TCG and OVMF).
const ACKNOWLEDGE_TIMEOUT_US: u64 = 1_000_000;

/// Status of the CPU being started: written by it, read by the bootstrap CPU.
static STATUS: AtomicU32 = AtomicU32::new(STATUS_WAITING);
const STATUS_WAITING: u32 = 0;
const STATUS_ONLINE: u32 = 1;
const STATUS_FAILED: u32 = 2;

/// The caller's entry for every application processor (null before [`start_application_processors`]).
static AP_ENTRY: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// The application processors' boot stacks (and guard pages), kept forever. The lock protects the list.
static AP_STACKS: Mutex<Vec<(AllocatedPages, MappedPages)>> = Mutex::new(Vec::new());

/// Busy-waits for `microseconds` using the TSC (falls back to a spin count if it is not calibrated).
pub(crate) fn delay_us(microseconds: u64) {
    let start = tsc::now_ns();
    if start == 0 {
        for _ in 0..microseconds * 1000 {
            core::hint::spin_loop();
        }
        return;
    }
    while tsc::now_ns() - start < microseconds * 1000 {
        core::hint::spin_loop();
    }
}

/// Polls `condition` for up to `microseconds`; returns whether it became true. Services pending TLB shootdown
/// requests between polls (callers may wait with interrupts disabled: see `stop`).
pub(crate) fn wait_until(microseconds: u64, condition: impl Fn() -> bool) -> bool {
    let start = tsc::now_ns();
    loop {
        if condition() {
            return true;
        }
        memory::service_tlb_shootdown();
        if start == 0 || tsc::now_ns() - start >= microseconds * 1000 {
            return condition();
        }
        core::hint::spin_loop();
    }
}

/// A stack of [`AP_STACK_SIZE`] with an unmapped guard page below it, kept forever; returns its top.
fn allocate_stack() -> Result<u64, SmpError> {
    let pages = AP_STACK_SIZE / PAGE_SIZE;
    let all = memory::allocate_pages(pages + 1).map_err(SmpError::StackPages)?;
    let (guard, stack_pages) = all.split_at(1).map_err(|_| SmpError::StackPages(memory::AllocateError::ZeroCount))?;
    let frames = memory::allocate_frames(pages).map_err(SmpError::StackFrames)?;
    let stack = memory::map_allocated(stack_pages, frames, Permissions::ReadWrite).map_err(SmpError::Map)?;
    let top = (stack.start_address().value() + stack.size_in_bytes()) as u64;
    AP_STACKS.lock().push((guard, stack));
    Ok(top)
}

/// Starts every enabled CPU of the MADT except the caller, one at a time; each runs `ap_entry` with its [`CpuId`],
/// interrupts disabled, its GDT/TSS/IDT/GS base loaded and its local APIC timer running. A CPU that does not answer
/// within 1 s is reset with INIT, reported, and skipped. Call once, on the bootstrap CPU, after `apic::init`.
///
/// Returns how many application processors came online.
///
/// # Errors
/// [`SmpError`] if the MADT is unreadable, the trampoline page cannot be allocated or mapped, or the kernel page
/// table lies above 4 GiB; failures of single CPUs are logged and skipped instead.
pub fn start_application_processors(ap_entry: fn(CpuId) -> !) -> Result<usize, SmpError> {
    let madt = acpi_tables::madt().map_err(SmpError::Madt)?;
    AP_ENTRY.store(ap_entry as *mut (), Ordering::Release);
    let own_apic_id = apic::local_apic_id();
    let targets: Vec<u32> = madt.enabled_apic_ids().into_iter().filter(|id| *id != own_apic_id.0).collect();
    if targets.is_empty() {
        return Ok(0);
    }
    let (pml4, _) = Cr3::read();
    let page_table = u32::try_from(pml4.start_address().as_u64()).map_err(|_| SmpError::PageTableAbove4GiB)?;
    let low_memory = PhysicalAddress::new(memory::layout::LOW_MEMORY_SIZE);
    let frame = memory::allocate_frames_below(1, low_memory).map_err(SmpError::TrampolineFrame)?;
    let identity = memory::identity_map_low_frames(&frame, Permissions::ReadExecute).map_err(SmpError::Map)?;
    let page = frame.start_address();
    let startup_vector = (page.value() / PAGE_SIZE) as u8;
    let mut next_index = cpu::count();
    let mut started = 0;
    for apic_id in targets {
        let Some(cpu_id) = CpuId::new(next_index) else {
            log::warn!("ignoring CPU with APIC id {apic_id}: more than {} CPUs", cpu::MAX_CPUS);
            continue;
        };
        let parameters = Parameters {
            page_table,
            stack_top: allocate_stack()?,
            entry: application_processor_entry as extern "C" fn(u64) -> ! as usize as u64,
            argument: (cpu_id.index() as u64) | ((apic_id as u64) << 32),
        };
        let direct = (memory::layout::PHYSICAL_MEMORY_OFFSET + page.value()) as *mut [u8; 4096];
        // SAFETY: the frame is ours (allocated above) and direct-mapped (the low 1 MiB always is); no CPU runs the
        // trampoline now (the previous one acknowledged, or was reset with INIT), so nothing reads it meanwhile.
        let image = unsafe { &mut *direct };
        trampoline::write(image, page, &parameters).map_err(SmpError::TrampolineTooLarge)?;
        STATUS.store(STATUS_WAITING, Ordering::Release);
        match start_one(ApicId(apic_id), startup_vector) {
            Ok(STATUS_ONLINE) => {
                started += 1;
                next_index += 1;
            }
            Ok(_) => {
                log::error!("CPU with APIC id {apic_id} failed its own set-up; it is halted");
                next_index += 1;
            }
            Err(error) => {
                log::error!("CPU with APIC id {apic_id} did not start ({error:?}); resetting it and going on");
                let _ = apic::send_init(ApicId(apic_id));
            }
        }
    }
    drop(identity);
    drop(frame);
    Ok(started)
}

/// Sends INIT, SIPI, and if needed a second SIPI to one CPU and waits for its status.
fn start_one(apic_id: ApicId, startup_vector: u8) -> Result<u32, StartError> {
    apic::send_init(apic_id).map_err(StartError::Ipi)?;
    delay_us(INIT_DELAY_US);
    apic::send_startup(apic_id, startup_vector).map_err(StartError::Ipi)?;
    let answered = || STATUS.load(Ordering::Acquire) != STATUS_WAITING;
    if !wait_until(STARTUP_DELAY_US, answered) {
        apic::send_startup(apic_id, startup_vector).map_err(StartError::Ipi)?;
    }
    if !wait_until(ACKNOWLEDGE_TIMEOUT_US, answered) {
        return Err(StartError::Timeout);
    }
    Ok(STATUS.load(Ordering::Acquire))
}

/// Why one CPU did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartError {
    /// An IPI could not be sent.
    Ipi(apic::IpiError),
    /// It did not acknowledge in time.
    Timeout,
}

/// The 64-bit entry of an application processor, reached from the trampoline on the stack prepared for it, with
/// the trampoline's GDT still loaded. `argument` = CPU index | APIC id << 32.
extern "C" fn application_processor_entry(argument: u64) -> ! {
    let apic_id = ApicId((argument >> 32) as u32);
    let Some(cpu_id) = CpuId::new((argument & 0xFFFF_FFFF) as usize) else { fail() };
    if cpu::init_current(cpu_id, apic_id).is_err() {
        fail()
    }
    interrupts::load();
    // Reloading CR3 flushes this CPU's TLB entries for the trampoline's identity mapping, which the bootstrap CPU
    // removes once every CPU has left it.
    let (pml4, flags) = Cr3::read();
    // SAFETY: the same page tables are loaded again; only the (non-global) TLB entries are flushed.
    unsafe { Cr3::write(pml4, flags) };
    if let Err(error) = apic::init_application_processor() {
        log::error!("{cpu_id}: local APIC set-up failed: {error:?}");
        // It halts for good: nobody may wait for it (stop-the-world counts the online CPUs).
        cpu::mark_offline(cpu_id);
        fail()
    }
    // From here on it answers TLB shootdowns (the handler is registered; interrupts stay disabled until the entry
    // enables them, and senders wait meanwhile); joining flushes its TLB.
    crate::shootdown::join_current();
    log::info!("{cpu_id} online (APIC id {})", apic_id.0);
    STATUS.store(STATUS_ONLINE, Ordering::Release);
    let entry = AP_ENTRY.load(Ordering::Acquire);
    // SAFETY: AP_ENTRY was set to a `fn(CpuId) -> !` before any CPU was started (function and data pointers have the
    // same representation on x86_64).
    let entry = unsafe { core::mem::transmute::<*mut (), fn(CpuId) -> !>(entry) };
    entry(cpu_id)
}

/// Reports failure to the bootstrap CPU and halts this CPU for good.
fn fail() -> ! {
    STATUS.store(STATUS_FAILED, Ordering::Release);
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
