//! The local APIC in xAPIC mode: registers, enabling, EOI, IPIs, the in-service probe and the timer.
//!
//! Register offsets from the local APIC base: Intel SDM Vol. 3A 10.4.1, Table 10-1 ("Local APIC Register Address
//! Map"). Every CPU sees its own local APIC at the same physical address, so one mapping serves all CPUs.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
/// ICR bit 12: delivery status, 1 = send pending.
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

/// The local APIC's register page, mapped once by [`map`] (uncached), shared by all CPUs.
static REGISTERS: Once<MappedPages> = Once::new();
/// The register page's virtual address (0 before [`map`]), for lock-free access from interrupt handlers.
static BASE: AtomicUsize = AtomicUsize::new(0);
/// Timer counts per second at divide-by-16, measured by [`calibrate_timer`] on the bootstrap CPU (every CPU's timer
/// runs from the same bus clock).
static TIMER_COUNTS_PER_SECOND: AtomicU64 = AtomicU64::new(0);

fn read(register: usize) -> u32 {
    let base = BASE.load(Ordering::Acquire);
    debug_assert!(base != 0);
    // SAFETY: `base` is the uncached mapping of the local APIC's 4 KiB register page made by `map` (a non-zero
    // BASE implies it), `register` is an offset from Table 10-1 inside it, 16-byte aligned; APIC registers must be
    // accessed with aligned 32-bit loads, which a volatile u32 read is.
    unsafe { core::ptr::read_volatile((base + register) as *const u32) }
}

fn write(register: usize, value: u32) {
    let base = BASE.load(Ordering::Acquire);
    debug_assert!(base != 0);
    // SAFETY: as in `read`, with an aligned 32-bit store.
    unsafe { core::ptr::write_volatile((base + register) as *mut u32, value) }
}

/// Maps the local APIC registers at `physical` (from the MADT). Idempotent.
///
/// # Errors
/// [`ApicError::X2ApicMode`] if the firmware left the APIC in x2APIC mode (MMIO is then disabled);
/// [`ApicError::Map`].
pub(crate) fn map(physical: PhysicalAddress) -> Result<(), ApicError> {
    // SAFETY: reading IA32_APIC_BASE has no side effects; it exists on every CPU with an APIC.
    let base_msr = unsafe { Msr::new(IA32_APIC_BASE).read() };
    if base_msr & X2APIC_ENABLE != 0 {
        return Err(ApicError::X2ApicMode);
    }
    if REGISTERS.get().is_some() {
        return Ok(());
    }
    // SAFETY: the local APIC's register page is device memory that nothing else maps; it is accessed only with
    // aligned 32-bit volatile operations (`read`, `write`).
    let pages = unsafe { memory::map_device_memory(physical, 4096, Permissions::ReadWrite) }.map_err(ApicError::Map)?;
    let pages = REGISTERS.call_once(|| pages);
    BASE.store(pages.start_address().value(), Ordering::Release);
    Ok(())
}

/// Enables the calling CPU's local APIC: global enable in IA32_APIC_BASE, software enable with the spurious vector,
/// task priority 0 (accept all), LINT0 masked (the 8259s' virtual wire), the error vector, errors cleared.
pub(crate) fn enable_current() {
    // SAFETY: setting the global-enable bit of IA32_APIC_BASE keeps the base address and mode; the APIC is then
    // driven through the registers mapped by `map`.
    unsafe {
        let mut msr = Msr::new(IA32_APIC_BASE);
        let value = msr.read();
        msr.write(value | APIC_GLOBAL_ENABLE);
    }
    write(TASK_PRIORITY, 0);
    write(LVT_LINT0, LVT_MASKED);
    write(LVT_ERROR, interrupts::APIC_ERROR_VECTOR as u32);
    write(ERROR_STATUS, 0);
    write(ERROR_STATUS, 0);
    write(SPURIOUS_INTERRUPT_VECTOR, SOFTWARE_ENABLE | interrupts::SPURIOUS_VECTOR as u32);
}

/// The calling CPU's local APIC id, from its ID register.
pub fn local_apic_id() -> ApicId {
    ApicId(read(ID) >> 24)
}

/// Signals the end of the current interrupt to the calling CPU's local APIC. Every device and IPI handler calls it
/// once (not the spurious-interrupt handler). Does nothing before the APIC is mapped.
pub fn end_of_interrupt() {
    if BASE.load(Ordering::Acquire) != 0 {
        write(END_OF_INTERRUPT, 0);
    }
}

/// Whether the calling CPU's local APIC has any interrupt in service (an ISR bit set): true inside a device or IPI
/// handler until its end-of-interrupt.
pub fn interrupt_in_service() -> bool {
    BASE.load(Ordering::Acquire) != 0 && (0..8).any(|index| read(IN_SERVICE + 0x10 * index) != 0)
}

/// Reads and clears the calling CPU's error status (SDM Vol. 3A 10.5.3: write, then read).
pub(crate) fn take_error_status() -> u32 {
    write(ERROR_STATUS, 0);
    read(ERROR_STATUS)
}

/// Writes the ICR (high half first; the low write sends) and waits for delivery, with interrupts disabled so that a
/// handler on this CPU cannot interleave its own IPI between the two halves.
fn send_command(destination: u32, low: u32) -> Result<(), IpiError> {
    if BASE.load(Ordering::Acquire) == 0 {
        return Err(IpiError::NotInitialized);
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

fn xapic_destination(apic_id: ApicId) -> Result<u32, IpiError> {
    if apic_id.0 > 0xFF { Err(IpiError::ApicIdOutOfRange(apic_id)) } else { Ok(apic_id.0) }
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
    send_command(xapic_destination(apic_id)?, LEVEL_ASSERT | vector as u32)
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
    send_command(xapic_destination(target)?, DELIVERY_INIT | LEVEL_ASSERT)
}

/// Sends a start-up IPI to `target`: it starts in real mode at physical address `page * 4096` (SDM Vol. 3A
/// 8.4.4.1), so the trampoline must lie in the first 1 MiB.
///
/// # Errors
/// As [`send_init`].
pub fn send_startup(target: ApicId, page: u8) -> Result<(), IpiError> {
    send_command(xapic_destination(target)?, DELIVERY_STARTUP | LEVEL_ASSERT | page as u32)
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
