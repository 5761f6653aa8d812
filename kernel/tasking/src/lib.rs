//! Tasking bring-up: connects the scheduler core to the CPU and interrupt cells.
//!
//! The scheduler knows nothing about the local APIC or the IDT; it exposes hooks. This cell installs them, so the
//! captain needs two calls: [`init`] on the bootstrap CPU (after `smp::init_bootstrap_cpu`, before starting the
//! other CPUs) and [`application_processor_entry`] as the entry given to `smp::start_application_processors`.
//!
//! Control flow of [`init`]:
//! 1. (the scheduler reads the CPU index itself, `cpu::current_id`);
//! 2. register the reschedule-IPI handler (EOI, then `scheduler::on_reschedule_ipi`) and give the scheduler the
//!    function that sends it;
//! 3. `scheduler::init_bsp(name)`: the calling thread becomes a task, CPU 0 gets its idle task;
//! 4. `apic::set_tick_hook` with a trampoline to `scheduler::on_timer_tick`: preemption and sleep wake-ups on every
//!    CPU (through a relocation, so a live swap of the scheduler redirects it);
//! 5. the reschedule IPI's handler does not redirect a killed task it interrupted into an unwind (an earlier
//!    version did, from the interrupted instruction, which could drop half-updated state: a double free): the
//!    scheduler defers the kill to the task's next safe point (`scheduler::kill_point`);
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

fn send_reschedule_ipi(target: usize) {
    if let Some(target) = cpu::CpuId::new(target) {
        // A failed IPI only delays the target until its next tick.
        let _ = apic::send_ipi(target, interrupts::RESCHEDULE_IPI_VECTOR);
    }
}

/// The reschedule IPI: EOI, then the scheduler's work. It never redirects the interrupted code into an unwind
/// of a killed task (that was unsound: see `scheduler::kill_point`); a kill reaching a running task only counts a
/// deferral here, and the task is unwound at its next safe point or, after `scheduler::KILL_DEFERRAL_LIMIT`
/// deferrals, ended without unwinding.
extern "x86-interrupt" fn reschedule_interrupt(_frame: x86_64::structures::idt::InterruptStackFrame) {
    apic::end_of_interrupt();
    scheduler::on_reschedule_ipi();
}
