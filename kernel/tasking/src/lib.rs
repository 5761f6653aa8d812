//! Tasking bring-up: connects the scheduler core to the CPU and interrupt cells.
//!
//! The scheduler knows nothing about the local APIC or the IDT; it exposes hooks. This cell installs them, so the
//! captain needs two calls: [`init`] on the bootstrap CPU (after `smp::init_bootstrap_cpu`, before starting the
//! other CPUs) and [`application_processor_entry`] as the entry given to `smp::start_application_processors`.
//!
//! Control flow of [`init`]:
//! 1. `scheduler::set_current_cpu_fn` with `cpu::current_id` (one GS-relative load);
//! 2. register the reschedule-IPI handler (EOI, then `scheduler::on_reschedule_ipi`) and give the scheduler the
//!    function that sends it;
//! 3. `scheduler::init_bsp(name)`: the calling thread becomes a task, CPU 0 gets its idle task;
//! 4. `apic::set_tick_hook` with a trampoline to `scheduler::on_timer_tick`: preemption and sleep wake-ups on every
//!    CPU (through a relocation, so a live swap of the scheduler redirects it);
//! 5. the reschedule IPI's handler also redirects a killed task that it interrupted into a trampoline that
//!    unwinds it from the interrupted instruction (`scheduler::unwind_killed_from`): a kill cannot unwind through
//!    an interrupt frame, so the task leaves the handler first;
//! 6. `fault_recovery::init`: a CPU exception in a task unwinds that task (every `Drop` runs) and ends it
//!    `Failed(reason)` (`FailureReason::StackOverflow` for a page fault in its guard page), the failure is
//!    logged, and repeated faults in one cell reload it; the system runs on;
//! 7. `live_update::init`: a task that pinned a retired (swapped-out) cell re-checks the retired cells as it exits.
//!
//! A live swap of this cell (`swap tasking tasking`) moves the tick hook and the reschedule-IPI gate to the new
//! copy at the commit ([`cell_state_transfer`]): captured addresses, which the swap's relocation rewriting does
//! not reach.
#![no_std]
#![feature(abi_x86_interrupt)]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};

use task::TaskRef;

/// Why tasking could not start.
#[derive(Debug)]
pub enum TaskingError {
    /// The reschedule-IPI vector could not be registered.
    RescheduleVector(interrupts::RegisterError),
    /// The scheduler could not adopt this CPU.
    Scheduler(scheduler::InitError),
}

/// Starts tasking on the bootstrap CPU: installs the hooks and turns the calling thread into the task `name`.
/// Call after `smp::init_bootstrap_cpu` and before `smp::start_application_processors`.
///
/// # Errors
/// [`TaskingError`]; the hooks installed before the failing step stay installed (harmless without tasks).
pub fn init(name: &str) -> Result<TaskRef, TaskingError> {
    scheduler::set_current_cpu_fn(current_cpu_index);
    interrupts::register_handler(interrupts::RESCHEDULE_IPI_VECTOR, reschedule_interrupt)
        .map_err(TaskingError::RescheduleVector)?;
    scheduler::set_reschedule_ipi_fn(send_reschedule_ipi);
    let current = scheduler::init_bsp(name).map_err(TaskingError::Scheduler)?;
    apic::set_tick_hook(timer_tick);
    fault_recovery::init();
    live_update::init();
    Ok(current)
}

/// This cell's state transfer (the swap convention, see `cell_namespace`): at the commit, re-installs the APIC's
/// tick hook at this copy's trampoline and moves the reschedule-IPI gate to this copy's handler. The scheduler's
/// CPU-index and reschedule-IPI functions cannot move (the scheduler keeps the first ones, `spin::Once`), nor the
/// application processors' entry (their boot stacks hold its frames for good): an old copy stays retired.
///
/// # Errors
/// Never fails.
pub fn cell_state_transfer(transfer: &cell_namespace::StateTransfer<'_>) -> Result<(), alloc::string::String> {
    interrupts::move_handlers_at_commit(transfer, &[(interrupts::RESCHEDULE_IPI_VECTOR, reschedule_interrupt)]);
    transfer.after_commit(alloc::boxed::Box::new(|| apic::set_tick_hook(timer_tick)));
    Ok(())
}

/// The entry of an application processor (give it to `smp::start_application_processors`): it becomes that CPU's
/// idle task and runs tasks from then on.
pub fn application_processor_entry(cpu: cpu::CpuId) -> ! {
    scheduler::ap_entry(cpu.index())
}

/// The tick hook: calls the scheduler through a relocation, which a live swap of the scheduler rewrites (a stored
/// pointer to `scheduler::on_timer_tick` would keep calling the old copy).
fn timer_tick() {
    scheduler::on_timer_tick();
}

fn current_cpu_index() -> usize {
    cpu::current_id().index()
}

fn send_reschedule_ipi(target: usize) {
    if let Some(target) = cpu::CpuId::new(target) {
        // A failed IPI only delays the target until its next tick.
        let _ = apic::send_ipi(target, interrupts::RESCHEDULE_IPI_VECTOR);
    }
}

extern "x86-interrupt" fn reschedule_interrupt(mut frame: x86_64::structures::idt::InterruptStackFrame) {
    apic::end_of_interrupt();
    scheduler::on_reschedule_ipi();
    if scheduler::kill_redirect_pending() {
        redirect_to_kill(&mut frame);
    }
}

/// Where a redirected task was interrupted, per CPU: (instruction pointer, stack pointer). Written by
/// [`redirect_to_kill`] and read by [`kill_entry`] on the same CPU with interrupts disabled in between (the
/// redirected frame has IF clear), so no other redirect on that CPU can intervene.
static REDIRECTED: [(AtomicU64, AtomicU64); scheduler::MAX_CPUS] =
    [const { (AtomicU64::new(0), AtomicU64::new(0)) }; scheduler::MAX_CPUS];

/// RFLAGS.IF (SDM Vol. 1, 3.4.3).
const INTERRUPT_FLAG: u64 = 1 << 9;

/// Makes the interrupted code of a killed task continue in [`kill_trampoline`] instead: a kill cannot unwind
/// through an interrupt frame, so the task leaves the handler first (`iretq`), with interrupts disabled, on its
/// own stack well below the interrupted stack pointer (what lies there, the handler's frames, is dead after
/// `iretq`). Only done when the interrupted stack pointer lies in the current task's stack.
fn redirect_to_kill(frame: &mut x86_64::structures::idt::InterruptStackFrame) {
    let (instruction_pointer, stack_pointer) = (frame.instruction_pointer.as_u64(), frame.stack_pointer.as_u64());
    let Some(bounds) = scheduler::current_task().and_then(|task| task.stack_bounds()) else { return };
    let new_stack_pointer = (stack_pointer - 512) & !15;
    if !(bounds.start as u64 + 4096..bounds.end as u64).contains(&new_stack_pointer) {
        return;
    }
    let cpu = scheduler::current_cpu();
    REDIRECTED[cpu].0.store(instruction_pointer, Ordering::Relaxed);
    REDIRECTED[cpu].1.store(stack_pointer, Ordering::Relaxed);
    // SAFETY: the new RIP is a function that takes over the task's stack at the new RSP (16-byte aligned, inside
    // the task's stack, below everything the interrupted code still uses), with interrupts disabled; it never
    // returns to the interrupted code, whose registers it passes on to the unwinder.
    unsafe {
        frame.as_mut().update(|value| {
            value.instruction_pointer = x86_64::VirtAddr::new(kill_trampoline as *const () as usize as u64);
            value.stack_pointer = x86_64::VirtAddr::new(new_stack_pointer);
            value.cpu_flags =
                x86_64::registers::rflags::RFlags::from_bits_retain(value.cpu_flags.bits() & !INTERRUPT_FLAG);
        });
    }
}

/// The callee-saved registers of the interrupted code, as [`kill_trampoline`] pushes them (lowest first).
#[repr(C)]
struct CalleeSaved {
    rbx: u64,
    rbp: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
}

/// Entered by `iretq` from the reschedule IPI with the interrupted code's registers (the handler restored them)
/// and a 16-byte-aligned stack: saves the callee-saved registers and calls [`kill_entry`].
#[unsafe(naked)]
extern "C" fn kill_trampoline() -> ! {
    core::arch::naked_asm!(
        "push r15", "push r14", "push r13", "push r12", "push rbp", "push rbx",
        "mov rdi, rsp",
        "call {entry}",
        "ud2",
        entry = sym kill_entry,
    )
}

/// Builds the interrupted frame's registers and unwinds the killed task from there.
extern "C" fn kill_entry(saved: &CalleeSaved) -> ! {
    let cpu = scheduler::current_cpu();
    let (instruction_pointer, stack_pointer) =
        (REDIRECTED[cpu].0.load(Ordering::Relaxed), REDIRECTED[cpu].1.load(Ordering::Relaxed));
    let mut registers = unwind::Registers::new();
    for (register, value) in [
        (unwind::RBX, saved.rbx),
        (unwind::RBP, saved.rbp),
        (unwind::R12, saved.r12),
        (unwind::R13, saved.r13),
        (unwind::R14, saved.r14),
        (unwind::R15, saved.r15),
        (unwind::RSP, stack_pointer),
        (unwind::RA, instruction_pointer),
    ] {
        registers.set(register, Some(value));
    }
    // SAFETY: these are the interrupted code's registers (callee-saved ones restored by the handler's epilogue,
    // RIP and RSP from its interrupt frame), on the current task's stack; the interrupt frame is gone (`iretq`
    // ran) and interrupts are disabled (the redirected RFLAGS).
    unsafe { scheduler::unwind_killed_from(&registers) }
}
