//! Multiprocessor bring-up: the bootstrap CPU's interrupt set-up, starting every other CPU, and stop-the-world.
//!
//! # Purpose
//! The bootstrap CPU reads the ACPI MADT, sets up its per-CPU data, the shared IDT and its APICs
//! ([`init_bootstrap_cpu`]), then starts each other enabled CPU with INIT-SIPI-SIPI through a real-mode trampoline
//! ([`start_application_processors`]; Intel SDM Vol. 3A 8.4 "Multiple-Processor (MP) Initialization"). Every CPU then
//! has its own GDT, TSS with IST stacks, GS base, the shared IDT, and a local APIC timer at `apic::TICK_HZ`.
//! [`run_with_other_cpus_stopped`] holds all other CPUs still while a closure runs (the live-swap commit). The TLB
//! shootdown IPI is registered here too (the memory system's transport; see `shootdown`), and
//! [`park_current_cpu`] halts a CPU for good after taking it out of the online set and the shootdown.
//!
//! # Key functions
//! - [`init_bootstrap_cpu`] -> [`BootstrapInfo`] or [`SmpError`].
//! - [`start_application_processors`] (the caller's `fn(CpuId) -> !` runs on each new CPU, interrupts disabled);
//!   [`idle_application_processor`] is a ready-made entry that enables interrupts and halts forever.
//! - [`run_with_other_cpus_stopped`] with [`StopError`]; [`log_stop_the_world_check`] exercises it at boot;
//!   [`stopped_contexts`] ([`StoppedContext`]): where each stopped CPU was interrupted, read inside the closure.
//! - [`log_timer_check`]: waits a little and logs each CPU's tick count (boot-time evidence that timers run).
//! - [`park_current_cpu`] (halt for good), [`withdraw_current_cpu`] / [`Withdrawn::rejoin`] (for a while, tests).
//!
//! # Control flow of starting one CPU
//! 1. Allocate its stack (guard page + 64 KiB); write the trampoline and its parameters (kernel CR3, stack, entry,
//!    CPU index and APIC id) into a frame below 1 MiB, identity-mapped for the duration of the bring-up.
//! 2. INIT IPI, 10 ms, SIPI with the frame's page number, 200 us, a second SIPI if it has not answered yet.
//! 3. The CPU runs the trampoline (16 -> 32 -> 64-bit), then `application_processor_entry`: `cpu::init_current`
//!    (its GDT, TSS, GS base), the IDT, a CR3 reload (drops the identity mapping from its TLB), its local APIC and
//!    timer; it logs one line, acknowledges, and calls the caller's entry.
//! 4. The bootstrap CPU waits up to 1 s for the acknowledgement; a CPU that stays silent is reset with INIT and
//!    skipped. After the last CPU the identity mapping and the frame are released.
#![no_std]
#![feature(abi_x86_interrupt)]

extern crate alloc;

mod park;
mod shootdown;
mod start;
mod stop;
mod trampoline;

pub use park::{Withdrawn, park_current_cpu, withdraw_current_cpu};
pub use start::start_application_processors;
pub use stop::{
    StopError, StoppedContext, log_stop_the_world_check, release_stop_held_within, run_with_other_cpus_stopped,
    stopped_context_storage, stopped_contexts,
};
pub use trampoline::TrampolineTooLarge;

/// This cell's state transfer (the swap convention, see `cell_namespace`): called by a live swap of `smp`, inside
/// the stop-the-world of the old copy, after the default copy of the statics. The new copy must not inherit the
/// old copy's stop in progress (see `stop::StopControl`); at the commit, the stop and shootdown IPI gates move to
/// this copy's handlers (the CPUs stopped right now finish in the old handler, which keeps that copy retired until
/// they have left it).
///
/// # Errors
/// Never fails.
pub fn cell_state_transfer(transfer: &cell_namespace::StateTransfer<'_>) -> Result<(), alloc::string::String> {
    stop::reset_after_swap();
    interrupts::move_handlers_at_commit(transfer, &[stop::HANDLER, shootdown::HANDLER]);
    Ok(())
}

use cpu::{ApicId, CpuId};

/// Why multiprocessor bring-up failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmpError {
    /// The MADT could not be read.
    Madt(acpi_tables::AcpiTablesError),
    /// Per-CPU set-up of the bootstrap CPU failed.
    Cpu(cpu::CpuInitError),
    /// The APIC set-up failed.
    Apic(apic::ApicError),
    /// The stop-IPI or TLB-shootdown vector was taken.
    Register(interrupts::RegisterError),
    /// No free frame below 1 MiB for the trampoline.
    TrampolineFrame(memory::AllocateError),
    /// The trampoline code does not fit its page.
    TrampolineTooLarge(TrampolineTooLarge),
    /// The kernel PML4 lies above 4 GiB, out of reach of the trampoline's 32-bit `mov %eax, %cr3`.
    PageTableAbove4GiB,
    /// No virtual pages for a CPU's stack.
    StackPages(memory::AllocateError),
    /// No frames for a CPU's stack.
    StackFrames(memory::AllocateError),
    /// A mapping (trampoline identity mapping or stack) failed.
    Map(memory::MapError),
}

/// What [`init_bootstrap_cpu`] found and set up, for the boot log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootstrapInfo {
    /// Enabled CPUs the MADT lists (including this one).
    pub cpus_listed: usize,
    /// This CPU's local APIC id.
    pub apic_id: ApicId,
    /// The APIC set-up, timer calibration included.
    pub apic: apic::ApicInfo,
}

/// The bootstrap CPU's APIC id from CPUID leaf 1, EBX bits 31:24 ("initial APIC ID"; SDM Vol. 2A, CPUID).
fn initial_apic_id() -> ApicId {
    ApicId(core::arch::x86_64::__cpuid(1).ebx >> 24)
}

/// Sets up interrupt handling on the bootstrap CPU, with interrupts disabled: reads the MADT, per-CPU data (GDT, TSS
/// with IST stacks, GS base), the shared IDT, the APICs with the periodic timer, and the stop-IPI handler. The caller
/// enables interrupts afterwards.
///
/// # Errors
/// [`SmpError`]; interrupts must then stay disabled.
pub fn init_bootstrap_cpu() -> Result<BootstrapInfo, SmpError> {
    let madt = acpi_tables::madt().map_err(SmpError::Madt)?;
    let apic_id = initial_apic_id();
    cpu::init_current(CpuId::BOOTSTRAP, apic_id).map_err(SmpError::Cpu)?;
    interrupts::init_bsp();
    let apic = apic::init().map_err(SmpError::Apic)?;
    stop::init().map_err(SmpError::Register)?;
    shootdown::init().map_err(SmpError::Register)?;
    shootdown::join_current();
    stop::mark_ready();
    Ok(BootstrapInfo { cpus_listed: madt.enabled_apic_ids().len(), apic_id, apic })
}

/// A ready-made application-processor entry until the scheduler provides one: enables interrupts and halts,
/// waking for each interrupt (the timer keeps ticking), forever.
pub fn idle_application_processor(_cpu: CpuId) -> ! {
    loop {
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

/// Waits `milliseconds` (busy, interrupts must be enabled) and logs each online CPU's timer tick count, as boot-time
/// evidence that every CPU's timer runs at `apic::TICK_HZ`.
pub fn log_timer_check(milliseconds: u64) {
    let before: alloc::vec::Vec<u64> = cpu::online().map(apic::ticks).collect();
    start::delay_us(milliseconds * 1000);
    let mut line = alloc::string::String::new();
    for (cpu, before) in cpu::online().zip(before) {
        use core::fmt::Write;
        let _ = write!(line, " {}={}", cpu.index(), apic::ticks(cpu) - before);
    }
    log::info!(
        "timer check: ticks per CPU in {milliseconds} ms (expect about {}):{line}",
        milliseconds * apic::TICK_HZ as u64 / 1000
    );
}
