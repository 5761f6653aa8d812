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
//! 4. `apic::set_tick_hook(scheduler::on_timer_tick)`: preemption and sleep wake-ups on every CPU;
//! 5. `interrupts::set_exception_hook`: a CPU exception in a task ends that task (`scheduler::fail_current`), with
//!    `FailureReason::StackOverflow` for a page fault in its guard page; the system runs on.
#![no_std]
#![feature(abi_x86_interrupt)]

use task::{ExceptionKind, FailureReason, TaskRef};

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
    apic::set_tick_hook(scheduler::on_timer_tick);
    interrupts::set_exception_hook(task_exception);
    scheduler::set_task_fault_recovery(true);
    Ok(current)
}

/// The entry of an application processor (give it to `smp::start_application_processors`): it becomes that CPU's
/// idle task and runs tasks from then on.
pub fn application_processor_entry(cpu: cpu::CpuId) -> ! {
    scheduler::ap_entry(cpu.index())
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

extern "x86-interrupt" fn reschedule_interrupt(_frame: x86_64::structures::idt::InterruptStackFrame) {
    apic::end_of_interrupt();
    scheduler::on_reschedule_ipi();
}

/// The exception hook: ends the faulting task, or stops the CPU if no task can be blamed.
fn task_exception(info: &interrupts::ExceptionInfo) -> ! {
    let reason = failure_reason(info);
    let error = match scheduler::fail_current(reason) {
        Ok(never) => match never {},
        Err(error) => error,
    };
    log::error!("{} on CPU {} outside any task ({error:?}); stopping this CPU", info.name, info.cpu.index());
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

fn failure_reason(info: &interrupts::ExceptionInfo) -> FailureReason {
    let address = |value: u64| memory_structs::VirtualAddress::try_new(value as usize).ok();
    let fault_address = info.faulting_address.and_then(address);
    if let Some(fault_address) = fault_address
        && scheduler::current_task().is_some_and(|task| task.stack_guard_contains(fault_address))
    {
        return FailureReason::StackOverflow { fault_address };
    }
    let error_code = info.error_code.unwrap_or(0);
    let kind = match info.vector {
        0 => ExceptionKind::DivideError,
        6 => ExceptionKind::InvalidOpcode,
        8 => ExceptionKind::DoubleFault,
        12 => ExceptionKind::StackSegmentFault(error_code),
        13 => ExceptionKind::GeneralProtection(error_code),
        14 => ExceptionKind::PageFault(error_code),
        other => ExceptionKind::Other(other),
    };
    FailureReason::Exception {
        kind,
        instruction_pointer: address(info.frame.instruction_pointer).unwrap_or(memory_structs::VirtualAddress::zero()),
        fault_address,
    }
}
