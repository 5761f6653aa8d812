//! The APICs: each CPU's local APIC (end-of-interrupt, IPIs, the periodic timer) and the I/O APICs that route
//! device interrupts; the legacy 8259 PICs are masked.
//!
//! # Purpose
//! Interrupt delivery on x86_64 SMP machines goes through the local APIC of each CPU (Intel SDM Vol. 3A ch. 10,
//! "Advanced Programmable Interrupt Controller", numbered as in the 2016-2021 editions; ch. 11 in later ones) and
//! through I/O APICs for device lines. This cell programs the local APICs in xAPIC (MMIO) mode, or in x2APIC (MSR)
//! mode when the firmware left the bootstrap CPU in it ([`mode`]; see `local.rs` for the choice), and gives every
//! CPU a periodic timer interrupt at [`TICK_HZ`].
//!
//! **Why 100 Hz.** Under QEMU's TCG every timer interrupt costs a VM-exit-like slow path on each emulated CPU, so a
//! 1000 Hz tick on 4 CPUs spends a noticeable share of the host's time on interrupts; 100 Hz (10 ms) is a classic
//! time slice, and sleeping to within 2 ticks means within 20 ms, which tests can check reliably under TCG.
//!
//! # Key functions
//! - [`init`] (bootstrap CPU) and [`init_application_processor`] (each other CPU), errors in [`ApicError`].
//! - [`end_of_interrupt`], [`send_ipi`], [`send_ipi_to_all_but_self`], [`send_init`], [`send_startup`] ([`IpiError`]).
//! - [`route_isa_irq`], [`mask_isa_irq`] ([`RouteError`]).
//! - [`ticks`] (per-CPU tick counter), [`set_tick_hook`] (the scheduler's preemption entry), [`TICK_HZ`].
//! - [`watchdog`]: each CPU's timer checks the others' tick counts; a CPU stalled for 1 s is recorded.
//! - [`nmi_watchdog`]: a CPU stalled with interrupts off for 2 s gets a non-maskable interrupt (the PIT's, routed
//!   as NMI to the bootstrap CPU, or another CPU's NMI IPI), which hands the stalled task to fault recovery.
//!
//! # Control flow of [`init`]
//! 1. Mask the 8259 PICs (after moving their vectors to 0xE0-0xEF, out of the exception range) if the MADT says the
//!    machine has them.
//! 2. Choose xAPIC or x2APIC mode, map the local APIC (MADT address; xAPIC only), enable it (spurious vector, LINT0 masked, error vector).
//! 3. Register the timer, APIC-error handlers; install the "interrupt in service" probe for exception reports.
//! 4. Calibrate the timer against the TSC over 10 ms, then start it periodic at [`TICK_HZ`].
//! 5. Map every I/O APIC and mask all inputs (drivers route theirs with [`route_isa_irq`]).
//!
//! The timer handler counts the tick for the current CPU, sends EOI, then calls the tick hook if one is installed
//! (after EOI, so a hook that switches tasks does not block further timer interrupts).
#![no_std]
#![feature(abi_x86_interrupt)]

extern crate alloc;

mod io_apic;
mod local;
pub mod nmi_watchdog;
pub mod watchdog;

use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use cpu::{ApicId, CpuId, MAX_CPUS};
use x86_64::instructions::port::Port;
use x86_64::structures::idt::InterruptStackFrame;

pub use io_apic::{mask_isa_irq, route_isa_irq, route_isa_irq_as_nmi};
pub use local::{
    ApicMode, end_of_interrupt, interrupt_in_service, local_apic_id, mode, send_init, send_ipi,
    send_ipi_to_all_but_self, send_nmi, send_startup, timer_counts_per_second,
};

/// Timer interrupts per second on every CPU (see the crate documentation for the choice).
pub const TICK_HZ: u32 = 100;

/// Why the APIC could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicError {
    /// The MADT could not be read.
    Madt(acpi_tables::AcpiTablesError),
    /// This CPU's local APIC is in x2APIC mode while the bootstrap CPU's was in xAPIC mode (the firmware left
    /// the CPUs in different modes).
    X2ApicMode,
    /// A register page could not be mapped.
    Map(memory::MapError),
    /// A handler vector was taken.
    Register(interrupts::RegisterError),
    /// The TSC frequency is unknown, so the timer cannot be calibrated.
    NoTscFrequency,
    /// The local APIC timer did not count during calibration.
    TimerNotCounting,
    /// The timer was started before calibration (on an application processor before [`init`]).
    TimerNotCalibrated,
}

/// Why an IPI could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpiError {
    /// The target CPU is not online (no APIC id recorded).
    CpuNotOnline(CpuId),
    /// xAPIC destinations are 8 bits; this APIC id does not fit (x2APIC mode takes 32 bits).
    ApicIdOutOfRange(ApicId),
    /// Vectors 0-31 cannot be sent as fixed interrupts.
    ReservedVector(u8),
    /// The local APIC kept the IPI pending (delivery status) for too long.
    DeliveryTimeout,
    /// [`init`] has not mapped the local APIC.
    NotInitialized,
}

/// Why an ISA IRQ could not be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// The MADT could not be read.
    Madt(acpi_tables::AcpiTablesError),
    /// The target CPU is not online.
    CpuNotOnline(CpuId),
    /// xAPIC physical destinations are 8 bits; this APIC id does not fit.
    ApicIdOutOfRange(ApicId),
    /// No I/O APIC serves this global system interrupt.
    NoIoApicForGsi(u32),
    /// The vector is an exception vector or the spurious vector.
    InvalidVector(u8),
}

/// What [`init`] set up, for the boot log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApicInfo {
    /// The bootstrap CPU's local APIC id.
    pub bootstrap_apic_id: ApicId,
    /// The local APIC timer's rate at divide-by-16, in counts per second.
    pub timer_counts_per_second: u64,
    /// Number of I/O APICs mapped.
    pub io_apic_count: usize,
    /// Their inputs in total.
    pub io_apic_inputs: u32,
}

/// Timer ticks per CPU, counted by the timer handler.
static TICKS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Local APIC errors seen (ESR values OR-ed together), for diagnostics.
static APIC_ERRORS: AtomicU64 = AtomicU64::new(0);
/// The tick hook (null: none), called by the timer handler after EOI. An atomic pointer, replaceable at run time,
/// read without locks in the handler.
static TICK_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Timer ticks taken so far by CPU `cpu` (at [`TICK_HZ`] per second once its timer runs).
pub fn ticks(cpu: CpuId) -> u64 {
    TICKS[cpu.index()].load(Ordering::Relaxed)
}

/// Local APIC error bits seen so far (ESR, SDM Vol. 3A 10.5.3), OR-ed together; 0 if none.
pub fn error_status_seen() -> u64 {
    APIC_ERRORS.load(Ordering::Relaxed)
}

/// Installs (or replaces) the function the timer handler calls on every tick, on every CPU, after counting the
/// tick and sending EOI, with interrupts disabled, on the interrupted task's stack. The scheduler's preemption
/// entry: it may switch tasks (the interrupted task resumes from the handler when switched back to).
pub fn set_tick_hook(hook: fn()) {
    TICK_HOOK.store(hook as *mut (), Ordering::Release);
}

/// Removes the tick hook.
pub fn clear_tick_hook() {
    TICK_HOOK.store(core::ptr::null_mut(), Ordering::Release);
}

/// This cell's state transfer (the swap convention, see `cell_namespace`), for `swap apic apic`: the default copy
/// carries the tick counts, the tick hook and the register mapping over; at the commit the timer and APIC-error
/// gates move to this copy's handlers, the interrupt-in-service probe and the NMI hook (if the NMI watchdog runs)
/// to this copy's (captured addresses, not
/// relocations: left alone, they would keep the old copy running, and retired, for good).
///
/// # Errors
/// Never fails.
pub fn cell_state_transfer(transfer: &cell_namespace::StateTransfer<'_>) -> Result<(), alloc::string::String> {
    interrupts::move_handlers_at_commit(
        transfer,
        &[(interrupts::TIMER_VECTOR, timer_interrupt), (interrupts::APIC_ERROR_VECTOR, apic_error_interrupt)],
    );
    transfer.after_commit(alloc::boxed::Box::new(|| {
        interrupts::set_interrupt_in_service_probe(interrupt_in_service);
        interrupts::set_end_of_interrupt(end_of_interrupt);
        nmi_watchdog::move_hook_at_commit();
    }));
    Ok(())
}

extern "x86-interrupt" fn timer_interrupt(_frame: InterruptStackFrame) {
    let this = cpu::current_id();
    let ticks = TICKS[this.index()].fetch_add(1, Ordering::Relaxed) + 1;
    end_of_interrupt();
    watchdog::on_tick(this, ticks);
    let hook = TICK_HOOK.load(Ordering::Acquire);
    if !hook.is_null() {
        // SAFETY: non-null values come only from `set_tick_hook`, which stores a `fn()` (function and data pointers
        // have the same representation on x86_64).
        let hook = unsafe { core::mem::transmute::<*mut (), fn()>(hook) };
        hook();
    }
}

extern "x86-interrupt" fn apic_error_interrupt(_frame: InterruptStackFrame) {
    APIC_ERRORS.fetch_or(local::take_error_status() as u64, Ordering::Relaxed);
    end_of_interrupt();
}

/// Remaps the two 8259 PICs to vectors 0xE0-0xEF (away from the exception vectors the BIOS leaves them on) and
/// masks every line (8259A datasheet: ICW1-ICW4, then OCW1). With LINT0 masked too, nothing from them reaches a CPU.
fn mask_legacy_pics() {
    let mut master_command: Port<u8> = Port::new(0x20);
    let mut master_data: Port<u8> = Port::new(0x21);
    let mut slave_command: Port<u8> = Port::new(0xA0);
    let mut slave_data: Port<u8> = Port::new(0xA1);
    // SAFETY: ports 0x20/0x21/0xA0/0xA1 are the 8259 PICs, used by nothing else in this kernel; the sequence is the
    // standard initialisation (ICW1 with ICW4, vector bases, cascade on IRQ 2, 8086 mode), then all lines masked.
    unsafe {
        master_command.write(0x11);
        slave_command.write(0x11);
        master_data.write(0xE0);
        slave_data.write(0xE8);
        master_data.write(0x04);
        slave_data.write(0x02);
        master_data.write(0x01);
        slave_data.write(0x01);
        master_data.write(0xFF);
        slave_data.write(0xFF);
    }
}

/// Brings up interrupt delivery on the bootstrap CPU (see the crate documentation for the steps). Call after
/// `cpu::init_current` and `interrupts::init_bsp`, with interrupts disabled.
///
/// # Errors
/// An [`ApicError`]; interrupts must then stay disabled.
pub fn init() -> Result<ApicInfo, ApicError> {
    let madt = acpi_tables::madt().map_err(ApicError::Madt)?;
    if madt.has_legacy_pics {
        mask_legacy_pics();
    }
    local::map(madt.local_apic_address)?;
    local::enable_current()?;
    log::info!("apic: local APIC in {} mode", mode().name());
    interrupts::register_handler(interrupts::TIMER_VECTOR, timer_interrupt).map_err(ApicError::Register)?;
    interrupts::register_handler(interrupts::APIC_ERROR_VECTOR, apic_error_interrupt).map_err(ApicError::Register)?;
    interrupts::set_interrupt_in_service_probe(interrupt_in_service);
    interrupts::set_end_of_interrupt(end_of_interrupt);
    let timer_counts_per_second = local::calibrate_timer()?;
    local::start_periodic_timer(TICK_HZ)?;
    let io_apic_inputs = io_apic::init(madt)?;
    Ok(ApicInfo {
        bootstrap_apic_id: local_apic_id(),
        timer_counts_per_second,
        io_apic_count: madt.io_apics.len(),
        io_apic_inputs,
    })
}

/// Enables the calling application processor's local APIC and starts its timer at [`TICK_HZ`] (with the
/// bootstrap CPU's calibration). Call with interrupts disabled, after [`init`] ran on the bootstrap CPU.
///
/// # Errors
/// [`ApicError::X2ApicMode`]; [`ApicError::TimerNotCalibrated`] before [`init`].
pub fn init_application_processor() -> Result<(), ApicError> {
    let madt = acpi_tables::madt().map_err(ApicError::Madt)?;
    local::map(madt.local_apic_address)?;
    local::enable_current()?;
    local::start_periodic_timer(TICK_HZ)
}
