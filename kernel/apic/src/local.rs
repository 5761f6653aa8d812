//! The local APIC in xAPIC or x2APIC mode: registers, enabling, EOI, IPIs, the in-service probe and the timer.
//!
//! Register offsets from the local APIC base: Intel SDM Vol. 3A 10.4.1, Table 10-1 ("Local APIC Register Address
//! Map"). In xAPIC mode every CPU sees its own local APIC at the same physical address, so one mapping serves all
//! CPUs. In x2APIC mode (SDM Vol. 3A 10.12) the same registers are MSRs `0x800 + offset / 16` (Table 10-6), the
//! ID register holds the whole 32-bit id, and the interrupt command register is one 64-bit MSR (0x830) with the
//! destination in bits 63:32 and no delivery-status bit (10.12.9).
//!
//! **Which mode.** The mode the firmware left on the bootstrap CPU: x2APIC if IA32_APIC_BASE.EXTD is set (a
//! firmware that enabled it may have handed out APIC ids above 255, and leaving x2APIC mode needs a full APIC
//! disable), else xAPIC. Every application processor is put into the same mode. xAPIC stays the default on
//! CPUs that merely support x2APIC, the path every test exercises.

use core::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use cpu::{ApicId, CpuId};
use memory::{MappedPages, Permissions};
use memory_structs::PhysicalAddress;
use spin::Once;
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::registers::model_specific::Msr;

use crate::{ApicError, IpiError};

/// Local APIC ID register (bits 31:24 in xAPIC mode; SDM Vol. 3A 10.4.6).
const ID: usize = 0x20;
/// Task priority register.
const TASK_PRIORITY: usize = 0x80;
/// End-of-interrupt register (write 0; SDM Vol. 3A 10.8.5).
const END_OF_INTERRUPT: usize = 0xB0;
/// Spurious interrupt vector register: bit 8 enables the APIC (SDM Vol. 3A 10.9).
const SPURIOUS_INTERRUPT_VECTOR: usize = 0xF0;
/// In-service register, eight 32-bit registers 16 bytes apart (SDM Vol. 3A 10.8.4).
const IN_SERVICE: usize = 0x100;
/// Error status register (write before reading; SDM Vol. 3A 10.5.3).
const ERROR_STATUS: usize = 0x280;
/// Interrupt command register, low and high halves (SDM Vol. 3A 10.6.1).
const COMMAND_LOW: usize = 0x300;
const COMMAND_HIGH: usize = 0x310;
/// LVT entries (SDM Vol. 3A 10.5.1).
const LVT_TIMER: usize = 0x320;
const LVT_LINT0: usize = 0x350;
const LVT_ERROR: usize = 0x370;
/// Timer initial count, current count and divide configuration (SDM Vol. 3A 10.5.4).
const TIMER_INITIAL_COUNT: usize = 0x380;
const TIMER_CURRENT_COUNT: usize = 0x390;
const TIMER_DIVIDE: usize = 0x3E0;

/// SVR bit 8: APIC software enable.
const SOFTWARE_ENABLE: u32 = 1 << 8;
/// LVT bit 16: masked.
const LVT_MASKED: u32 = 1 << 16;
/// LVT timer bits 18:17 = 01: periodic mode.
const TIMER_PERIODIC: u32 = 1 << 17;
/// Divide configuration 0b0011: divide the bus clock by 16.
const DIVIDE_BY_16: u32 = 0b0011;
/// ICR bit 12: delivery status, 1 = send pending (xAPIC only).
const DELIVERY_PENDING: u32 = 1 << 12;
/// ICR bit 14: level assert (required for INIT; harmless for others).
const LEVEL_ASSERT: u32 = 1 << 14;
/// ICR bits 10:8, delivery mode INIT (101b) and start-up (110b).
const DELIVERY_INIT: u32 = 0b101 << 8;
const DELIVERY_STARTUP: u32 = 0b110 << 8;
/// ICR bits 19:18, destination shorthand "all excluding self" (11b).
const ALL_EXCLUDING_SELF: u32 = 0b11 << 18;

/// IA32_APIC_BASE MSR (SDM Vol. 3A 10.4.4): bit 11 global enable, bit 10 x2APIC mode.
const IA32_APIC_BASE: u32 = 0x1B;
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
const X2APIC_ENABLE: u64 = 1 << 10;

/// How long the timer calibration counts, in ms.
const CALIBRATION_MS: u64 = 10;
/// Polls of the delivery-status bit before an IPI is declared stuck.
const DELIVERY_POLLS: u32 = 1_000_000;

/// The x2APIC register MSRs start here (SDM Vol. 3A 10.12.1.2, Table 10-6).
const X2APIC_MSR_BASE: u32 = 0x800;
/// The x2APIC interrupt command register (64 bits).
const X2APIC_COMMAND: u32 = 0x830;

/// How the local APIC registers are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicMode {
    /// Not set up yet ([`map`] has not run).
    Uninitialized,
    /// xAPIC: memory-mapped registers.
    XApic,
    /// x2APIC: MSRs.
    X2Apic,
}

impl ApicMode {
    /// `xAPIC`, `x2APIC` or `uninitialized`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Uninitialized => "uninitialized",
            Self::XApic => "xAPIC",
            Self::X2Apic => "x2APIC",
        }
    }
}

/// The mode chosen by the bootstrap CPU's [`map`] (0 uninitialised, 1 xAPIC, 2 x2APIC), the same on all CPUs;
/// read lock-free by interrupt handlers.
static MODE: AtomicU8 = AtomicU8::new(0);

/// The local APIC mode in use (the same on every CPU).
pub fn mode() -> ApicMode {
    match MODE.load(Ordering::Acquire) {
        1 => ApicMode::XApic,
        2 => ApicMode::X2Apic,
        _ => ApicMode::Uninitialized,
    }
}

/// The local APIC's register page, mapped once by [`map`] (uncached), shared by all CPUs (xAPIC mode only).
static REGISTERS: Once<MappedPages> = Once::new();
/// The register page's virtual address (0 before [`map`]), for lock-free access from interrupt handlers.
static BASE: AtomicUsize = AtomicUsize::new(0);
/// Timer counts per second at divide-by-16, measured by [`calibrate_timer`] on the bootstrap CPU (every CPU's timer
/// runs from the same bus clock).
static TIMER_COUNTS_PER_SECOND: AtomicU64 = AtomicU64::new(0);

fn read(register: usize) -> u32 {
    if mode() == ApicMode::X2Apic {
        // SAFETY: in x2APIC mode (set on this CPU by `enable_current`, as on all CPUs) the register offsets of
        // Table 10-1 used here have MSRs at 0x800 + offset / 16 (Table 10-6); reading them has no side effects.
        return unsafe { Msr::new(X2APIC_MSR_BASE + (register >> 4) as u32).read() } as u32;
    }
    let base = BASE.load(Ordering::Acquire);
    debug_assert!(base != 0);
    // SAFETY: `base` is the uncached mapping of the local APIC's 4 KiB register page made by `map` (a non-zero
    // BASE implies it), `register` is an offset from Table 10-1 inside it, 16-byte aligned; APIC registers must be
    // accessed with aligned 32-bit loads, which a volatile u32 read is.
    unsafe { core::ptr::read_volatile((base + register) as *const u32) }
}

fn write(register: usize, value: u32) {
    if mode() == ApicMode::X2Apic {
        // SAFETY: as in `read`; the registers written here (TPR, EOI, SVR, ESR, LVT entries, timer counts) are
        // writable MSRs in x2APIC mode, and 0 written to the ESR is allowed (10.12.1.2).
        unsafe { Msr::new(X2APIC_MSR_BASE + (register >> 4) as u32).write(u64::from(value)) };
        return;
    }
    let base = BASE.load(Ordering::Acquire);
    debug_assert!(base != 0);
    // SAFETY: as in `read`, with an aligned 32-bit store.
    unsafe { core::ptr::write_volatile((base + register) as *mut u32, value) }
}

/// Whether the registers can be accessed (the mode is chosen and, for xAPIC, the page is mapped).
fn ready() -> bool {
    match mode() {
        ApicMode::X2Apic => true,
        ApicMode::XApic => BASE.load(Ordering::Acquire) != 0,
        ApicMode::Uninitialized => false,
    }
}

/// Chooses the mode (on the first call: the bootstrap CPU's, see the module documentation) and, in xAPIC mode,
/// maps the local APIC registers at `physical` (from the MADT). Idempotent.
///
/// # Errors
/// [`ApicError::Map`].
pub(crate) fn map(physical: PhysicalAddress) -> Result<(), ApicError> {
    if mode() == ApicMode::Uninitialized {
        // SAFETY: reading IA32_APIC_BASE has no side effects; it exists on every CPU with an APIC.
        let base_msr = unsafe { Msr::new(IA32_APIC_BASE).read() };
        let chosen = if base_msr & X2APIC_ENABLE != 0 { 2 } else { 1 };
        // Only the first caller (the bootstrap CPU, before any other CPU runs) decides.
        let _ = MODE.compare_exchange(0, chosen, Ordering::AcqRel, Ordering::Acquire);
    }
    if mode() == ApicMode::X2Apic || REGISTERS.get().is_some() {
        return Ok(());
    }
    // SAFETY: the local APIC's register page is device memory that nothing else maps; it is accessed only with
    // aligned 32-bit volatile operations (`read`, `write`).
    let pages = unsafe { memory::map_device_memory(physical, 4096, Permissions::ReadWrite) }.map_err(ApicError::Map)?;
    let pages = REGISTERS.call_once(|| pages);
    BASE.store(pages.start_address().value(), Ordering::Release);
    Ok(())
}

/// Puts the calling CPU's IA32_APIC_BASE into the chosen mode (global enable, plus EXTD for x2APIC, set in two
/// steps: xAPIC first, then x2APIC, the transition SDM Vol. 3A 10.12.5 Figure 10-27 allows).
///
/// # Errors
/// [`ApicError::X2ApicMode`] if this CPU is in x2APIC mode while the system uses xAPIC (the firmware enabled
/// x2APIC on an application processor but not on the bootstrap CPU).
fn enter_mode() -> Result<(), ApicError> {
    let mut msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: reading IA32_APIC_BASE has no side effects.
    let value = unsafe { msr.read() };
    match mode() {
        ApicMode::X2Apic if value & X2APIC_ENABLE == 0 => {
            // SAFETY: enabling the APIC keeps its base address; then setting EXTD with EN set is the valid
            // xAPIC -> x2APIC transition. `mode()` is X2Apic only if the bootstrap CPU was already in x2APIC
            // mode, so the CPU supports it.
            unsafe {
                msr.write(value | APIC_GLOBAL_ENABLE);
                msr.write(value | APIC_GLOBAL_ENABLE | X2APIC_ENABLE);
            }
        }
        ApicMode::XApic if value & X2APIC_ENABLE != 0 => return Err(ApicError::X2ApicMode),
        _ => {
            // SAFETY: setting the global-enable bit keeps the base address and the mode.
            unsafe { msr.write(value | APIC_GLOBAL_ENABLE) };
        }
    }
    Ok(())
}

/// Enables the calling CPU's local APIC in the chosen mode: global enable in IA32_APIC_BASE, software enable with
/// the spurious vector, task priority 0 (accept all), LINT0 masked (the 8259s' virtual wire), the error vector,
/// errors cleared.
///
/// # Errors
/// As [`enter_mode`].
pub(crate) fn enable_current() -> Result<(), ApicError> {
    enter_mode()?;
    write(TASK_PRIORITY, 0);
    write(LVT_LINT0, LVT_MASKED);
    write(LVT_ERROR, interrupts::APIC_ERROR_VECTOR as u32);
    write(ERROR_STATUS, 0);
    write(ERROR_STATUS, 0);
    write(SPURIOUS_INTERRUPT_VECTOR, SOFTWARE_ENABLE | interrupts::SPURIOUS_VECTOR as u32);
    Ok(())
}

/// The calling CPU's local APIC id, from its ID register.
pub fn local_apic_id() -> ApicId {
    match mode() {
        ApicMode::X2Apic => ApicId(read(ID)),
        _ => ApicId(read(ID) >> 24),
    }
}

/// Signals the end of the current interrupt to the calling CPU's local APIC. Every device and IPI handler calls it
/// once (not the spurious-interrupt handler). Does nothing before the APIC is mapped.
pub fn end_of_interrupt() {
    if ready() {
        write(END_OF_INTERRUPT, 0);
    }
}

/// Whether the calling CPU's local APIC has any interrupt in service (an ISR bit set): true inside a device or IPI
/// handler until its end-of-interrupt.
pub fn interrupt_in_service() -> bool {
    ready() && (0..8).any(|index| read(IN_SERVICE + 0x10 * index) != 0)
}

/// Reads and clears the calling CPU's error status (SDM Vol. 3A 10.5.3: write, then read).
pub(crate) fn take_error_status() -> u32 {
    write(ERROR_STATUS, 0);
    read(ERROR_STATUS)
}

/// Writes the ICR (high half first; the low write sends) and waits for delivery, with interrupts disabled so that a
/// handler on this CPU cannot interleave its own IPI between the two halves.
fn send_command(destination: u32, low: u32) -> Result<(), IpiError> {
    if !ready() {
        return Err(IpiError::NotInitialized);
    }
    if mode() == ApicMode::X2Apic {
        // SAFETY: in x2APIC mode the ICR is MSR 0x830, written in one 64-bit access that sends the IPI
        // (10.12.9); `low` holds a valid vector, delivery mode and shorthand.
        unsafe { Msr::new(X2APIC_COMMAND).write((u64::from(destination) << 32) | u64::from(low)) };
        return Ok(());
    }
    without_interrupts(|| {
        write(COMMAND_HIGH, destination << 24);
        write(COMMAND_LOW, low);
        for _ in 0..DELIVERY_POLLS {
            if read(COMMAND_LOW) & DELIVERY_PENDING == 0 {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(IpiError::DeliveryTimeout)
    })
}

/// The destination field for `apic_id`: 8 bits in xAPIC mode, 32 in x2APIC mode.
fn destination_field(apic_id: ApicId) -> Result<u32, IpiError> {
    if apic_id.0 > 0xFF && mode() != ApicMode::X2Apic {
        Err(IpiError::ApicIdOutOfRange(apic_id))
    } else {
        Ok(apic_id.0)
    }
}

/// Sends a fixed interrupt with `vector` to logical CPU `target` (which may be the caller).
///
/// # Errors
/// [`IpiError::CpuNotOnline`], [`IpiError::ReservedVector`] for vectors below 32, [`IpiError::DeliveryTimeout`],
/// [`IpiError::NotInitialized`].
pub fn send_ipi(target: CpuId, vector: u8) -> Result<(), IpiError> {
    if vector < interrupts::FIRST_DEVICE_VECTOR {
        return Err(IpiError::ReservedVector(vector));
    }
    let apic_id = cpu::apic_id(target).ok_or(IpiError::CpuNotOnline(target))?;
    send_command(destination_field(apic_id)?, LEVEL_ASSERT | vector as u32)
}

/// Delivery mode NMI in the ICR's bits 10:8 (SDM Vol. 3A 10.6.1); the vector field is ignored.
const DELIVERY_NMI: u32 = 0b100 << 8;

/// Sends a non-maskable interrupt to logical CPU `target` (the cross-CPU NMI watchdog's kick of a stalled CPU).
///
/// # Errors
/// [`IpiError::CpuNotOnline`], [`IpiError::ApicIdOutOfRange`], [`IpiError::DeliveryTimeout`],
/// [`IpiError::NotInitialized`].
pub fn send_nmi(target: CpuId) -> Result<(), IpiError> {
    let apic_id = cpu::apic_id(target).ok_or(IpiError::CpuNotOnline(target))?;
    send_command(destination_field(apic_id)?, DELIVERY_NMI | LEVEL_ASSERT)
}

/// Sends a fixed interrupt with `vector` to every CPU except the caller (shorthand "all excluding self"; CPUs not
/// started ignore it).
///
/// # Errors
/// As [`send_ipi`], without `CpuNotOnline`.
pub fn send_ipi_to_all_but_self(vector: u8) -> Result<(), IpiError> {
    if vector < interrupts::FIRST_DEVICE_VECTOR {
        return Err(IpiError::ReservedVector(vector));
    }
    send_command(0, ALL_EXCLUDING_SELF | LEVEL_ASSERT | vector as u32)
}

/// Sends an INIT IPI to the CPU with local APIC id `target` (SDM Vol. 3A 8.4.4.1): it resets into the
/// wait-for-SIPI state.
///
/// # Errors
/// [`IpiError::ApicIdOutOfRange`], [`IpiError::DeliveryTimeout`], [`IpiError::NotInitialized`].
pub fn send_init(target: ApicId) -> Result<(), IpiError> {
    send_command(destination_field(target)?, DELIVERY_INIT | LEVEL_ASSERT)
}

/// Sends a start-up IPI to `target`: it starts in real mode at physical address `page * 4096` (SDM Vol. 3A
/// 8.4.4.1), so the trampoline must lie in the first 1 MiB.
///
/// # Errors
/// As [`send_init`].
pub fn send_startup(target: ApicId, page: u8) -> Result<(), IpiError> {
    send_command(destination_field(target)?, DELIVERY_STARTUP | LEVEL_ASSERT | page as u32)
}

fn read_tsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Measures the local APIC timer's rate (divide-by-16) against the TSC over 10 ms, with the timer masked.
/// Returns the counts per second.
///
/// # Errors
/// [`ApicError::NoTscFrequency`] if the TSC was not calibrated; [`ApicError::TimerNotCounting`].
pub(crate) fn calibrate_timer() -> Result<u64, ApicError> {
    let tsc_hz = tsc::frequency_hz().ok_or(ApicError::NoTscFrequency)?;
    write(LVT_TIMER, LVT_MASKED | interrupts::TIMER_VECTOR as u32);
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    let wait = tsc_hz * CALIBRATION_MS / 1000;
    let start = read_tsc();
    write(TIMER_INITIAL_COUNT, u32::MAX);
    while read_tsc().wrapping_sub(start) < wait {
        core::hint::spin_loop();
    }
    let remaining = read(TIMER_CURRENT_COUNT);
    write(TIMER_INITIAL_COUNT, 0);
    let elapsed = (u32::MAX - remaining) as u64;
    if elapsed == 0 {
        return Err(ApicError::TimerNotCounting);
    }
    let per_second = elapsed * 1000 / CALIBRATION_MS;
    TIMER_COUNTS_PER_SECOND.store(per_second, Ordering::Release);
    Ok(per_second)
}

/// Starts the calling CPU's timer in periodic mode at `hz` interrupts per second on [`interrupts::TIMER_VECTOR`].
///
/// # Errors
/// [`ApicError::TimerNotCalibrated`] before [`calibrate_timer`].
pub(crate) fn start_periodic_timer(hz: u32) -> Result<(), ApicError> {
    let per_second = TIMER_COUNTS_PER_SECOND.load(Ordering::Acquire);
    if per_second == 0 {
        return Err(ApicError::TimerNotCalibrated);
    }
    let initial = (per_second / hz as u64).clamp(1, u32::MAX as u64) as u32;
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    write(LVT_TIMER, TIMER_PERIODIC | interrupts::TIMER_VECTOR as u32);
    write(TIMER_INITIAL_COUNT, initial);
    Ok(())
}

/// The calibrated timer rate in counts per second (divide-by-16), or `None` before calibration.
pub fn timer_counts_per_second() -> Option<u64> {
    match TIMER_COUNTS_PER_SECOND.load(Ordering::Acquire) {
        0 => None,
        value => Some(value),
    }
}
