//! The interrupt descriptor table shared by every CPU: exception reports, the task-fault hook, and registration of
//! device and IPI handlers by vector.
//!
//! # Purpose
//! One IDT (Intel SDM Vol. 3A 6.10) serves all CPUs; each CPU loads it with [`load`]. Exceptions (vectors 0-31)
//! enter through small assembly stubs that save every general-purpose register, so a report, and later the
//! unwinder, sees the complete register state at the fault ([`ExceptionInfo`]). Vectors 32-255 belong to devices
//! and IPIs; a cell claims one with [`register_handler`] and may give it up with [`deregister_handler`].
//!
//! # Key types and functions
//! - [`init_bsp`] (build and load the IDT), [`load`] (on every other CPU).
//! - [`register_handler`], [`replace_handler`], [`deregister_handler`] with [`RegisterError`]; [`InterruptHandler`].
//! - [`set_exception_hook`] with [`ExceptionInfo`] and [`SavedRegisters`]: the task layer's handler for exceptions
//!   raised by a task; [`set_interrupt_in_service_probe`]: the APIC's answer to "is an interrupt being serviced?".
//! - Live swaps (see `evolution.rs`): [`cell_state_transfer`] (this cell's own: the new IDT is loaded on every
//!   CPU), [`move_handlers_at_commit`] / [`move_handlers`] (a handler cell's: its gates move to its new copy).
//! - Vector numbers: [`TIMER_VECTOR`], [`SERIAL_VECTOR`], [`RESCHEDULE_IPI_VECTOR`], [`STOP_IPI_VECTOR`], ...
//!
//! # Control flow of an exception
//! 1. The stub pushes a zero error code if the CPU pushed none, then the vector and the 15 general registers.
//!    #DF, #PF and NMI run on their own IST stacks (see the `cpu` cell), so a stack overflow into a guard page is
//!    reported too.
//! 2. The dispatcher builds an [`ExceptionInfo`] and prints a report on the serial port: vector and name, CPU, error
//!    code, RIP, CS, RFLAGS, RSP, SS, CR2 for #PF, the registers, and the cell whose code contains RIP.
//! 3. If the exception was raised in task context (a hook is installed; the vector is not NMI or #MC, nor a #DF
//!    inside an exception handler (the task layer accepts a #DF only from a task whose stack pointer was bad); the
//!    faulting RSP is not on one of this CPU's IST stacks, i.e. no exception handler was running; no interrupt is in
//!    service on the local APIC), the hook is called; it never returns (the scheduler marks the task failed and
//!    switches away; the unwinder will unwind it).
//! 4. Otherwise the machine stops (QEMU exits with failure, as nano_core's early handlers do).
#![no_std]
#![feature(abi_x86_interrupt)]

extern crate alloc;

mod evolution;
mod exceptions;
mod table;

pub use evolution::move_handlers_at_commit;

pub use exceptions::{
    ExceptionHook, ExceptionInfo, InterruptedFrame, NmiHook, NmiVerdict, RefusalReason, SavedRegisters,
    StallRepairHook, clear_exception_hook, exception_name, set_end_of_interrupt, set_exception_hook,
    set_interrupt_in_service_probe, set_nmi_hook, set_stall_repair_hook,
};
pub use table::{
    InterruptHandler, RegisterError, deregister_handler, init_bsp, load, move_handlers, register_handler,
    replace_handler,
};

/// The first vector available to devices and IPIs (0-31 are the CPU's exceptions; SDM Vol. 3A 6.3, Table 6-1).
pub const FIRST_DEVICE_VECTOR: u8 = 32;
/// The local APIC timer (each CPU's own timer).
pub const TIMER_VECTOR: u8 = 0x20;
/// ISA IRQ `n` (1..=15, routed through the I/O APIC) uses vector `ISA_IRQ_VECTOR_BASE + n`; IRQ 0, the PIT, is not
/// used (the local APIC timer replaces it), so its vector is [`TIMER_VECTOR`].
pub const ISA_IRQ_VECTOR_BASE: u8 = 0x20;
/// The PS/2 keyboard, ISA IRQ 1.
pub const KEYBOARD_VECTOR: u8 = ISA_IRQ_VECTOR_BASE + 1;
/// COM1, ISA IRQ 4.
pub const SERIAL_VECTOR: u8 = ISA_IRQ_VECTOR_BASE + 4;
/// IPI: "run the scheduler" (the scheduler registers its handler).
pub const RESCHEDULE_IPI_VECTOR: u8 = 0x40;
/// IPI: "stop and wait" for stop-the-world (the `smp` cell registers its handler). In a higher priority class
/// (vector >> 4, SDM Vol. 3A 10.8.3.1) than device interrupts, so it is delivered first when several are pending.
pub const STOP_IPI_VECTOR: u8 = 0xF1;
/// IPI: TLB shootdown, "flush the translations the current request names and acknowledge" (the `smp` cell
/// registers its handler; the protocol is in `memory`). In the top priority class with [`STOP_IPI_VECTOR`], above
/// it, so a CPU with both pending flushes first; a CPU spinning with interrupts disabled polls for requests.
pub const TLB_SHOOTDOWN_IPI_VECTOR: u8 = 0xF2;
/// The local APIC's error interrupt (LVT Error register).
pub const APIC_ERROR_VECTOR: u8 = 0xFE;
/// The local APIC's spurious-interrupt vector (SVR; its low 4 bits must be 1 on older CPUs, SDM Vol. 3A 10.9).
pub const SPURIOUS_VECTOR: u8 = 0xFF;

/// This cell's state transfer (the swap convention, see `cell_namespace`; it must be at the crate root): adopts the
/// copied IDT and, at the commit, loads it on the swapping CPU; the stopped CPUs load it on leaving the stop (see
/// `evolution.rs`).
///
/// # Errors
/// A message if the copied registration lock is held (never, inside a stop-the-world). Before `init_bsp` there is
/// no IDT: nothing to do.
pub fn cell_state_transfer(transfer: &cell_namespace::StateTransfer<'_>) -> Result<(), alloc::string::String> {
    evolution::transfer(transfer)
}
