//! Fault recovery: a CPU exception or panic in a task unwinds that task, is logged, and repeated faults in one
//! cell reload a fresh copy of the cell.
//!
//! # Purpose
//! The scheduler runs every task body inside `unwind::catch_unwind`; this cell makes CPU exceptions and uncaught
//! unwinds reach that machinery, records every failure, and applies the recovery policy. It is shared state by
//! necessity (one fault log per system, one fault counter per cell); both are small and bounded.
//!
//! # Key items
//! - [`init`]: installs the exception hook, the end-of-unwind handler and the scheduler's failure hook.
//! - [`print_backtrace`] (`bt ID`) / [`write_backtrace_of`], with [`BacktraceError`]; [`Symbolizer`] names
//!   addresses through the namespaces (cell, section, offset; nano_core through its base-image cell).
//! - [`tasks_in_cell`] / [`CellUsers`]: which tasks have a frame in a cell's code (walking saved contexts), the
//!   tasks `bt` and the tests can ask about (the swap gate's pin finder makes the actual retire-or-free decision).
//! - [`print_fault_log`] (`faults`), [`fault_log`] / [`FaultRecord`], [`fault_count`].
//! - [`REPEATED_FAULT_LIMIT`]: faults of one cell that trigger its reload ([`reload_cell`], also callable).
//! - [`scrub_read_only`] / [`ScrubReport`] / [`RepairedCell`]: every cell's code and constants compared with its
//!   object file and repaired in place, after each failure of a CPU exception or a panic.
//!
//! # Control flow of a CPU exception in a task
//! 1. `interrupts` calls the hook on the exception's stack (the IST stack for #PF), interrupts disabled; also for
//!    an NMI the NMI watchdog judged a stuck CPU (`apic::nmi_watchdog`), as if the task faulted there.
//! 2. No current task: stop this CPU. An idle task: its idle loop is restarted (`scheduler::restart_idle_loop`)
//!    unless the fault is in the scheduler path with interrupts off. A second exception of a task whose first is
//!    still being handled (`fault_path`), or one inside an exception handler on an IST stack (the dispatcher
//!    flags it), ends it without unwinding. A fault in an interrupt handler (the
//!    dispatcher sent its EOI) fails the interrupted task, unwound from its interrupt frame
//!    ([`interrupted_registers`]); one in an interrupt's delivery (IF still set) is the interrupted code's.
//! 3. Spin locks the task held at the fault are released ([`release_locks_held_by`]): COM1's, the heap's and the
//!    memory crate's record an address on their holder's stack, so a holder token on the faulting task's stack
//!    means the task holds it.
//!    Its guard is abandoned (or, in a caller's frame, its landing pad finds the lock no longer its own).
//!    The scheduler's runqueue and sleepers locks record a holder token the same way: one held from the task's
//!    stack is taken over and its queue rebuilt from the task table (`repair_runqueues_held_by`). An NMI stall
//!    goes first to `stall_repair`: a queue lock left taken by a task that is not on a CPU is rebuilt and the
//!    spinning code resumed.
//!    Then the failing task's stack trace is printed from the faulting frame's registers (at most 16 frames).
//!    This and the symbol lookup use the heap and the namespaces' locks, which the task no longer holds (the
//!    unwinding itself needs neither: its exception objects come from a static pool).
//! 4. Stack overflow (a #PF in the task's guard page): landing pads cannot run on the exhausted stack, so the
//!    walk skips the frames that lie within [`OVERFLOW_HEADROOM`] bytes of the stack bottom (their drops are
//!    abandoned: normally the frames of the runaway recursion) and starts unwinding at the first frame above;
//!    if there is none, the task ends without unwinding (its stack and task resources are still freed).
//! 5. Otherwise `unwind::start_unwinding_from` with the faulting registers (from the caller if the faulting
//!    address has no unwind information and the stack top is a return address: [`wild_call_cursor`]), bounded
//!    to the task's stack: the
//!    landing pads run on the task's stack (the IST stack is abandoned; interrupts stay off until the task's
//!    entry catches the unwind, so no other #PF can reuse the IST stack meanwhile).
//! 6. The task's entry catches the unwind, the scheduler turns the cause into `Failed(reason)` and calls the
//!    failure hook ([`record_failure`]): the read-only scrub ([`scrub_read_only`]) repairs damaged code and
//!    constants of every cell; a fault-log entry; a CPU exception in a loaded cell not explained by damage just
//!    repaired counts against that cell, and the [`REPEATED_FAULT_LIMIT`]th reloads it through the swap gate
//!    (`live_update::reload`: swap with itself, state carried over, other CPUs stopped for the commit, the old
//!    copy retired while pinned). An unwind that reaches no catch ends in [`end_of_unwind`], which records the
//!    failure and runs the task's failure callback (a restartable task is respawned) before ending it.
#![no_std]

extern crate alloc;

mod backtrace;
mod fault_path;
mod log_book;
mod scrub;

use alloc::string::ToString;

pub use backtrace::{
    BacktraceError, CellUsers, Symbolizer, print_backtrace, tasks_in_cell, write_backtrace_of, write_current_backtrace,
};
pub use log_book::{
    FaultRecord, REPEATED_FAULT_LIMIT, ReloadError, fault_count, fault_log, print_fault_log, record_failure,
    reload_cell, with_fault_log_lock_held,
};
pub use scrub::{RepairedCell, ScrubReport, scrub_read_only};

/// Bytes of stack a frame must have below it for its landing pads to run after a stack overflow (a landing pad
/// calls drops and `_Unwind_Resume`, whose frame walk needs a few KiB).
pub const OVERFLOW_HEADROOM: u64 = 16 * 1024;

/// Installs the exception hook, the end-of-unwind handler and the failure hook, and starts the NMI watchdog
/// (`apic::nmi_watchdog`: the PIT's periodic NMI to this CPU). Call once tasking runs.
pub fn init() {
    interrupts::set_exception_hook(task_exception);
    interrupts::set_stall_repair_hook(stall_repair);
    unwind::set_end_handler(end_of_unwind);
    scheduler::set_failure_hook(record_failure);
    scheduler::set_task_fault_recovery(true);
    // Without the NMI watchdog a CPU stuck with interrupts off stays stuck (and is only recorded by the
    // cross-CPU watchdog); everything else still works, so a routing error is logged, not fatal.
    if let Err(error) = apic::nmi_watchdog::start(cpu::current_id()) {
        log::error!("NMI watchdog not started: {error:?}");
    }
}

/// This cell's state transfer (the swap convention, see `cell_namespace`), for `swap fault_recovery
/// fault_recovery`: the default copy carries the fault log over; at the commit the three hooks [`init`] installed
/// (captured addresses in `interrupts`, the unwinder and the scheduler) are re-installed at this copy's functions,
/// so later faults are recorded in, and reloads decided by, the new copy.
///
/// # Errors
/// Never fails.
pub fn cell_state_transfer(transfer: &cell_namespace::StateTransfer<'_>) -> Result<(), alloc::string::String> {
    transfer.after_commit(alloc::boxed::Box::new(|| {
        interrupts::set_exception_hook(task_exception);
        interrupts::set_stall_repair_hook(stall_repair);
        unwind::set_end_handler(end_of_unwind);
        scheduler::set_failure_hook(record_failure);
    }));
    Ok(())
}

/// The unwinder's end handler: an unwind that no `catch_unwind` caught (an adopted task, or a walk that failed)
/// ends the current task without further cleanup, after running its failure callback (so a restartable task such
/// as the shell is respawned), or stops the CPU outside tasks.
fn end_of_unwind(end: unwind::UnwindEnd) -> ! {
    let reason = scheduler::failure_from_cause(&end.cause);
    log::warn!(
        "unwinding ended without a catch ({:?}, {} frames, {} landing pads)",
        end.end,
        end.frames,
        end.landing_pads
    );
    if let Some(task) = scheduler::current_task() {
        fault_path::leave(task.id());
        record_failure(&task, &reason);
        // The failure callback (a restartable task's respawn, e.g. the shell's) runs as the catch would have run
        // it: the task's frames are abandoned, but the series goes on.
        let on_failure = task.take_failure_callback();
        drop(task);
        if let Some(on_failure) = on_failure {
            on_failure(&reason);
        }
    }
    let error = match scheduler::fail_current(reason) {
        Ok(never) => match never {},
        Err(error) => error,
    };
    if error == scheduler::NotInTask::IdleTask {
        // An idle task's panic (a skipped call in `schedule` made its CPU index garbage; the panic could not
        // unwind out of the scheduler): its loop restarts as after a fault in the scheduler's code, every frame
        // from here up abandoned.
        let _ = task::interrupts::disable();
        let marker = 0u8;
        let here = core::hint::black_box(core::ptr::addr_of!(marker)) as usize;
        serial::raw::write_fmt(format_args!("\nunwinding of the idle task ended: {}\n", end.cause));
        let refused = restart_idle_loop_after(scheduler::current_cpu(), here, true);
        serial::raw::write_fmt(format_args!("idle loop restart refused: {refused:?}\n"));
    }
    serial::write_fmt(format_args!("\nunwinding ended outside any task ({error:?}): {}; stopping\n", end.cause));
    power::exit(power::ExitCode::Failure)
}

/// Rolls back a swap the failed `task` was inside and releases the swap path's locks it held
/// (`live_update::recover_failed_task`: stop-the-world, namespace transactions, the swap gate), if any; logs what
/// was done. Called for every failed task, before anything else of its failure handling.
pub(crate) fn recover_swap_of(task: &task::TaskRef) {
    let Some(stack) = task.stack_bounds() else { return };
    // SAFETY: `task` failed (its unwind is over or it is being ended without unwinding) and never resumes the code
    // it ran; this runs first in its failure handling, shallower on its stack than the swap's frames were.
    let recovery = unsafe { live_update::recover_failed_task(stack) };
    if !recovery.is_empty() {
        log::warn!("swap path recovered after task {}'s failure: {recovery:?}", task.id());
    }
}

/// The registers of the interrupted frame, in DWARF numbering, with RA = the faulting instruction.
fn fault_registers(info: &interrupts::ExceptionInfo) -> unwind::Registers {
    let r = &info.registers;
    let mut registers = unwind::Registers::new();
    for (register, value) in [
        (unwind::RAX, r.rax),
        (unwind::RDX, r.rdx),
        (unwind::RCX, r.rcx),
        (unwind::RBX, r.rbx),
        (unwind::RSI, r.rsi),
        (unwind::RDI, r.rdi),
        (unwind::RBP, r.rbp),
        (unwind::R8, r.r8),
        (unwind::R9, r.r9),
        (unwind::R10, r.r10),
        (unwind::R11, r.r11),
        (unwind::R12, r.r12),
        (unwind::R13, r.r13),
        (unwind::R14, r.r14),
        (unwind::R15, r.r15),
        (unwind::RSP, info.frame.stack_pointer),
        (unwind::RA, info.frame.instruction_pointer),
    ] {
        registers.set(register, Some(value));
    }
    registers
}

/// Where in a task's execution an exception landed (the dispatcher already refused exception handlers and
/// interrupt handlers), by the cell holding the faulting instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Landing {
    /// Code of the task's own cells (applications, services, tests).
    TaskCode,
    /// The tasking layer (`scheduler*`, `task`, `tasking`, `spawn`, `sync`) called by the task.
    SchedulerPath,
    /// The base image (nano_core: heap, memory, namespace) called by the task, or code in no known cell.
    NanoCore,
    /// The cell could not be named without waiting (a namespace was write-locked).
    Unknown,
}

impl Landing {
    /// Classifies the faulting instruction `address` without waiting or allocating.
    /// Looked up on CPU `cpu` with interrupts disabled (`system_namespaces::try_cell_containing_on_cpu`: a
    /// lookup that faults on a damaged cell table is not repeated).
    pub fn of(cpu: usize, address: u64) -> Landing {
        match system_namespaces::try_cell_containing_on_cpu(cpu, address) {
            Err(cell_namespace::NamespaceBusy) => Landing::Unknown,
            Ok(None) => Landing::NanoCore,
            Ok(Some(name)) => match name.as_str() {
                "nano_core" => Landing::NanoCore,
                "task" | "tasking" | "spawn" | "sync" => Landing::SchedulerPath,
                cell if cell.starts_with("scheduler") => Landing::SchedulerPath,
                _ => Landing::TaskCode,
            },
        }
    }

    /// The report's wording.
    pub fn describe(self) -> &'static str {
        match self {
            Landing::TaskCode => "task code",
            Landing::SchedulerPath => "the scheduler path, called by the task",
            Landing::NanoCore => "nano_core code, called by the task",
            Landing::Unknown => "unknown code (namespace busy or its cell tables damaged), in the task",
        }
    }
}

/// Set by [`fault_in_next_fault_path`]: the next task exception's hook executes `ud2` itself.
static FAULT_IN_NEXT_FAULT_PATH: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// For tests: the next CPU exception of a task faults again (`ud2`) inside its handling, on the exception's own
/// stack (the IST stack for #PF), i.e. an exception inside an exception handler. That task must then be ended
/// without unwinding (failed with #UD) instead of the machine stopping.
pub fn fault_in_next_fault_path() {
    FAULT_IN_NEXT_FAULT_PATH.store(true, core::sync::atomic::Ordering::Release);
}

/// The exception hook (see the crate docs, steps 2-5).
fn task_exception(info: &interrupts::ExceptionInfo) -> ! {
    // First, before the task is named from this CPU's current-task word: that word, the idle task's and the
    // previous task's are checked against the task table and rewritten if they name no task of it (a damaged
    // word made every fault's handling, or every `schedule`, fault again).
    repair_cpu_slots(info);
    // Before anything that could fault: naming the task clones its `TaskRef`, which aborts (`ud2`) if the task's
    // reference count was damaged, and each such #UD would come back here one frame deeper until the stack ran out.
    let naming = NAMING_TASK.get(info.cpu.index());
    if naming.is_some_and(|depth| depth.fetch_add(1, core::sync::atomic::Ordering::AcqRel) >= NAMING_ATTEMPTS) {
        stop_cpu(info, "the fault path faulted again each time before it could name the faulting task")
    }
    let task = scheduler::current_task();
    if let Some(depth) = naming {
        depth.store(0, core::sync::atomic::Ordering::Release);
    }
    if info.vector == DOUBLE_FAULT_VECTOR {
        double_fault(info, task)
    }
    let Some(task) = task.filter(|task| !task.is_idle()) else { idle_fault(info) };
    let entry = fault_path::enter(info.cpu, task.id());
    if FAULT_IN_NEXT_FAULT_PATH.swap(false, core::sync::atomic::Ordering::AcqRel) {
        // SAFETY: a test's request (`fault_in_next_fault_path`): raises #UD inside this hook, i.e. inside an
        // exception handler, which the dispatcher hands back here flagged; this frame is abandoned.
        unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    }
    if entry == fault_path::Entry::Nested || info.in_exception_handler {
        fault_in_fault_path(info, task)
    }
    // Every landing inside a task is recovered the same way: the task's stack is intact below the faulting
    // frame (the fault is in code it called), so unwinding it releases what its callers hold.
    let landing = Landing::of(info.cpu.index(), info.frame.instruction_pointer);
    let in_handler = info.in_interrupt_handler && !delivery_fault(info);
    if in_handler {
        interrupt_handler_fault(info, landing);
    } else {
        serial::raw::write_fmt(format_args!(
            "fault landed in: {}; recovering by unwinding the task\n",
            landing.describe()
        ));
    }
    let mut registers = fault_registers(info);
    if in_handler {
        let stack = task.stack_bounds().map(|bounds| bounds.start as u64..bounds.end as u64);
        match stack.and_then(|stack| interrupted_registers(info, registers, stack)) {
            Some(interrupted) => registers = interrupted,
            None => stop_cpu(info, "in an interrupt handler whose interrupt frame was not found on the task's stack"),
        }
    }
    if let Some(stack) = task.stack_bounds() {
        // SAFETY: `stack` is the faulting task's own stack; the task never continues the critical section it
        // faulted in (this hook unwinds or ends it and never returns to the faulting instruction).
        unsafe { release_locks_held_by(stack.clone()) };
        // SAFETY: as just said.
        unsafe { repair_runqueues_held_by(stack) };
    }
    // Its landing pads run now: a task that faulted on its way to switching out (made `Blocked` by a join) must be
    // `Running`, or a landing pad that blocks again is never woken.
    if let Some(state) = scheduler::resume_running_after_fault() {
        serial::raw::write_fmt(format_args!(
            "task {} was {} when it faulted; made running for its unwinding\n",
            task.id(),
            state.name()
        ));
    }
    let bounds = task.stack_bounds().map(|bounds| bounds.start as u64..bounds.end as u64);
    serial::write_fmt(format_args!("task {} \"{}\" faulted; stack trace:\n", task.id(), task.name()));
    let mut out = backtrace::SerialWriter;
    let _ = backtrace::write_walk(
        &mut out,
        unwind::FrameCursor::exact(registers),
        bounds.clone(),
        backtrace::FAULT_FRAME_LIMIT,
    );
    let overflow =
        info.faulting_address.and_then(|address| memory_structs::VirtualAddress::try_new(address as usize).ok());
    let overflow = overflow.is_some_and(|address| task.stack_guard_contains(address));
    let cause = unwind::UnwindCause::Exception(unwind::ExceptionCause {
        vector: info.vector,
        error_code: info.error_code,
        instruction_pointer: info.frame.instruction_pointer,
        fault_address: info.faulting_address,
    });
    let options = unwind::UnwindOptions { stack_bounds: bounds.clone(), ..unwind::UnwindOptions::default() };
    drop(task);
    if overflow {
        let start = bounds.as_ref().and_then(|bounds| overflow_start(registers, bounds.clone()));
        match start {
            // SAFETY: the cursor is a frame of the faulting task's stack (walked within its bounds from the
            // faulting registers), with at least OVERFLOW_HEADROOM bytes of mapped stack below it; this CPU takes
            // that stack over (the hook never returns), and the frames below are abandoned.
            Some(cursor) => unsafe { unwind::start_unwinding_at(cursor, cause, options) },
            None => {
                let reason = scheduler::failure_from_cause(&cause);
                if let Some(task) = scheduler::current_task() {
                    record_failure(&task, &reason);
                }
                log::warn!("stack overflow: no frame with enough stack below it; ending the task without unwinding");
                let _ = scheduler::fail_current(reason);
                stop_cpu(info, "outside any task")
            }
        }
    }
    if let Some(cursor) = bounds.and_then(|bounds| wild_call_cursor(&registers, bounds)) {
        serial::raw::write_fmt(format_args!(
            "no unwind information at the faulting instruction: unwinding from the return address on top of the \
             stack (a call into non-code)\n"
        ));
        // SAFETY: the cursor is the faulting frame's caller on the task's own stack (its RSP one word above the
        // faulting RSP, inside the stack bounds); this CPU takes that stack over (the hook never returns).
        unsafe { unwind::start_unwinding_at(cursor, cause, options) }
    }
    // SAFETY: the registers are those of the interrupted task frame, live on the task's stack, which this CPU
    // takes over (the hook never returns); nothing on the exception stack is needed afterwards.
    unsafe { unwind::start_unwinding_from(&registers, cause, options) }
}

/// Whether `address` lies in code the unwinder has call-frame information for (without waiting).
fn has_unwind_info(address: u64) -> bool {
    matches!(unwind::global_registry().find(address), Ok(Some(info)) if info.fde_for(address).is_some())
}

/// For a fault at an instruction without unwind information (a call through a damaged pointer into data or
/// unmapped memory): the caller's frame, if the word on top of the stack is a return address into code that has
/// unwind information. Nothing was pushed by the "callee" except that return address, so the callee-saved
/// registers are still the caller's. `None` if the faulting instruction has unwind information (the ordinary
/// walk handles it) or the top word is no such return address.
fn wild_call_cursor(registers: &unwind::Registers, stack: core::ops::Range<u64>) -> Option<unwind::FrameCursor> {
    use unwind::StackReader;
    let (rip, rsp) = (registers.get(unwind::RA)?, registers.stack_pointer()?);
    if has_unwind_info(rip) || !stack.contains(&rsp) {
        return None;
    }
    // SAFETY: `stack` is the faulting task's usable stack, mapped while the task exists (it is running here).
    let memory = unsafe { unwind::DirectMemory::within(stack.clone()) };
    let return_address = memory.read_u64(rsp).ok()?;
    if !has_unwind_info(return_address.checked_sub(1)?) {
        return None;
    }
    let mut caller = *registers;
    caller.set(unwind::RSP, Some(rsp.checked_add(8)?));
    caller.set(unwind::RA, Some(return_address));
    Some(unwind::FrameCursor::after_call(caller))
}

/// Whether the interrupted code ran with interrupts enabled (RFLAGS.IF, SDM Vol. 3A 2.3). Every spin lock of the
/// tasking layer masks interrupts while it is held (`IrqSafeMutex`), and a context switch runs with interrupts
/// off, so code interrupted with IF set holds none of them and is not half-way through a switch. (A flipped IF
/// bit in the faulting frame itself defeats this; it is one bit of one register at one moment.)
fn interrupts_were_enabled(info: &interrupts::ExceptionInfo) -> bool {
    info.frame.cpu_flags & RFLAGS_FIXED_AND_IF == RFLAGS_FIXED_AND_IF
}

/// Whether an exception reported "in an interrupt handler" struck the delivery of the interrupt rather than its
/// handler: handlers run with interrupts disabled (interrupt gates clear IF, SDM Vol. 3A 6.12.1.3), so a frame
/// with IF set is the interrupted code's own, e.g. a #PF while the CPU pushed the interrupt frame at a corrupted
/// RSP. The dispatcher has sent the end-of-interrupt, so the interrupt is dropped and the fault is the
/// interrupted code's.
fn delivery_fault(info: &interrupts::ExceptionInfo) -> bool {
    info.in_interrupt_handler && interrupts_were_enabled(info)
}

/// The vector of #DF.
const DOUBLE_FAULT_VECTOR: u8 = 8;

/// [`task_exception`]'s first step: `scheduler::repair_cpu_slots` for this CPU and the interrupted stack pointer;
/// says on COM1 (without its lock) which words it rewrote.
fn repair_cpu_slots(info: &interrupts::ExceptionInfo) {
    // SAFETY: the exception hook runs on the faulting CPU with interrupts disabled, outside any access of its
    // scheduler slots (the code it interrupted is abandoned, never resumed inside such an access).
    let repairs = unsafe { scheduler::repair_cpu_slots(info.cpu.index(), info.frame.stack_pointer as usize) };
    let Some(repairs) = repairs.filter(|repairs| !repairs.is_empty()) else { return };
    for (word, damaged) in [("idle", repairs.idle), ("current", repairs.current), ("previous", repairs.previous)] {
        if let Some(damaged) = damaged {
            serial::raw::write_fmt(format_args!(
                "CPU {}'s {word}-task word named no task of the task table ({damaged:#x}); rewritten from the table\n",
                info.cpu.index()
            ));
        }
    }
}

/// Per CPU: entries into [`task_exception`] that have not yet named their task (`scheduler::current_task`).
static NAMING_TASK: [core::sync::atomic::AtomicU32; cpu::MAX_CPUS] =
    [const { core::sync::atomic::AtomicU32::new(0) }; cpu::MAX_CPUS];
/// How many such entries in a row are tolerated before the CPU is stopped with a reason (instead of recursing).
const NAMING_ATTEMPTS: u32 = 3;

/// A #DF handed over by the dispatcher (never one inside an exception handler) while `task` ran. The one sound
/// case: a spawned task whose stack pointer lies outside its stack (a flipped RSP bit in the fault campaign):
/// the CPU could not push the frame of the exception the bad RSP caused (#SS, #GP or #PF, which use the task's
/// stack) and raised #DF on its own IST stack. The task's frames cannot be walked, so it is ended without
/// unwinding ([`end_without_unwinding`]: its tracked locks released, its failure callback run, so a restartable
/// task starts again). Any other #DF (the idle task, an interrupt handler, a stack pointer on the task's own
/// stack: a damaged IDT or TSS, or a fault inside the delivery of a fault) stops this CPU: nothing says which
/// state is still right. The saved RIP of a #DF is architecturally undefined; it is only reported, never resumed.
fn double_fault(info: &interrupts::ExceptionInfo, task: Option<task::TaskRef>) -> ! {
    let Some(task) = task.filter(|task| !task.is_idle()) else {
        stop_cpu(info, "a double fault outside a spawned task")
    };
    if info.in_interrupt_handler {
        stop_cpu(info, "a double fault inside an interrupt handler")
    }
    let stack_pointer = info.frame.stack_pointer as usize;
    let Some(stack) = task.stack_bounds() else { stop_cpu(info, "a double fault in a task with no known stack") };
    if stack.contains(&stack_pointer) {
        stop_cpu(info, "a double fault with the task's stack pointer on its own stack (no bad stack pointer to blame)")
    }
    serial::raw::write_fmt(format_args!(
        "fault landed in: a double fault: task {}'s stack pointer {stack_pointer:#x} lies outside its stack \
         ({:#x}..{:#x}), so the exception before it could not be delivered; ending the task without unwinding\n",
        task.id(),
        stack.start,
        stack.end
    ));
    end_without_unwinding(info, task)
}

/// A second exception of `task` while its first one is still being handled (the stack trace, a cell lookup or a
/// landing pad faulted: typically damaged heap or namespace data): ends the task without unwinding and without
/// further lookups (each would fault again), after releasing the locks it holds and running its failure callback.
/// Also for an exception inside an exception handler (`info.in_exception_handler`: the dispatcher's report or
/// this hook faulted on an IST stack): that handler is abandoned and the locks held from this CPU's IST stacks are
/// released too (a fault in the CPU's own state, #DF, #MC or NMI, is refused by the dispatcher before this).
fn fault_in_fault_path(info: &interrupts::ExceptionInfo, task: task::TaskRef) -> ! {
    serial::raw::write_fmt(format_args!(
        "{} inside the fault path of task {}; ending it without unwinding (no stack trace, no lookups)\n",
        info.name,
        task.id()
    ));
    end_without_unwinding(info, task)
}

/// Ends `task`, whose exception `info` is being handled, without unwinding it: releases the locks its stack holds
/// (and, for an exception inside an exception handler, those held from this CPU's IST stacks), rolls back a swap
/// it was in, runs its failure callback and fails it. Never returns.
fn end_without_unwinding(info: &interrupts::ExceptionInfo, task: task::TaskRef) -> ! {
    fault_path::leave(task.id());
    if info.in_exception_handler {
        // The abandoned exception handler (the report or the task layer's handling of an earlier exception of this
        // task) ran on this CPU's IST stacks and may have held locks there (the task table's, which the runqueue
        // repair below reads). This hook holds none (its own frames hold no guard here).
        for stack in cpu::exception_stacks() {
            // SAFETY: the abandoned handler is never resumed (this task is ended below).
            unsafe { release_locks_held_by(stack.clone()) };
            // SAFETY: as just said (e.g. a check of a damaged runqueue that faulted holding its lock).
            unsafe { repair_runqueues_held_by(stack) };
        }
    }
    if let Some(stack) = task.stack_bounds() {
        // SAFETY: `stack` is the faulting task's own stack; it is ended below and never resumes its code.
        unsafe { release_locks_held_by(stack.clone()) };
        // SAFETY: as just said.
        unsafe { repair_runqueues_held_by(stack) };
    }
    let reason = scheduler::failure_from_cause(&unwind::UnwindCause::Exception(unwind::ExceptionCause {
        vector: info.vector,
        error_code: info.error_code,
        instruction_pointer: info.frame.instruction_pointer,
        fault_address: info.faulting_address,
    }));
    // Ended without unwinding: no landing pad of a swap it was in ran (its restart must find the swap path free).
    recover_swap_of(&task);
    let on_failure = task.take_failure_callback();
    drop(task);
    if let Some(on_failure) = on_failure {
        on_failure(&reason);
    }
    let _ = scheduler::fail_current(reason);
    stop_cpu(info, "outside any task")
}

/// A fault in an idle task (in code it called, or in an interrupt handler that interrupted it): restarts that
/// CPU's idle loop (`scheduler::restart_idle_loop`). The abandoned frames may hold locks: the runqueue and
/// sleepers locks record their holder and are taken over and rebuilt, COM1's, the heap's and the allocators' are
/// released ([`release_locks_held_by`]); inside the scheduler path with interrupts off they may also hold a picked
/// task, and a `Runnable` task missing from the runqueue is queued again (`scheduler::requeue_runnable_not_queued`). A lock that records
/// no holder (a task's own state lock) cannot be released; if the abandoned code held one, the CPU stalls on it
/// later and the NMI watchdog reports that. Stops this CPU with no current task or inside an exception handler.
fn idle_fault(info: &interrupts::ExceptionInfo) -> ! {
    let landing = Landing::of(info.cpu.index(), info.frame.instruction_pointer);
    serial::raw::write_fmt(format_args!("fault landed in: the idle loop (in {})\n", landing.describe()));
    if scheduler::current_task().is_none() {
        stop_cpu(info, "outside any task")
    }
    if info.in_exception_handler {
        stop_cpu(info, "inside an exception handler of the idle task (restarting its idle loop is not attempted)")
    }
    let inside_scheduler =
        matches!(landing, Landing::SchedulerPath | Landing::Unknown) && !interrupts_were_enabled(info);
    let error = restart_idle_loop_after(info.cpu.index(), info.frame.stack_pointer as usize, inside_scheduler);
    serial::raw::write_fmt(format_args!("idle loop restart refused: {error:?}\n"));
    stop_cpu(info, "outside any task")
}

/// Restarts this CPU's (`cpu`) idle loop after a fault, or an unwind no catch ended, of its idle task, whose
/// abandoned frames start at `abandoned_from` (the faulting stack pointer) and end at the loop's base. A runqueue or
/// sleepers lock whose holder token lies there is repaired (a release skipped by a fault, then the idle task spun
/// on it: an NMI-watchdog stall), or the restarted loop would spin on it again; COM1's, the heap's and the
/// allocators' locks held there are released (wherever the fault landed: since session 12 also in nano_core code
/// the idle task called). `inside_scheduler` (the fault struck the scheduler's code with interrupts off): a task the
/// abandoned `schedule` had taken off the runqueue is queued again. Interrupts must be disabled. Returns only if
/// the restart is refused.
fn restart_idle_loop_after(cpu: usize, abandoned_from: usize, inside_scheduler: bool) -> scheduler::IdleRestartError {
    // An idle task of an AP runs on a stack it does not own, so it records no bounds of its own.
    let abandoned = scheduler::idle_loop_base(cpu)
        .map(|base| abandoned_from..base)
        .filter(|frames| !frames.is_empty())
        .or_else(|| scheduler::current_task().and_then(|idle| idle.stack_bounds()));
    if let Some(stack) = abandoned {
        // Wherever it landed: a fault in nano_core code the idle task called (a `__rust_dealloc` of a reaped
        // task's memory, in the campaign) leaves the heap's lock taken by the abandoned frames, and the next
        // allocation anywhere spins on it. Released first: the queue repairs below allocate.
        // SAFETY: the idle task's frames are abandoned by the restart below and never resumed.
        unsafe { release_locks_held_by(stack.clone()) };
        // SAFETY: as above.
        unsafe { repair_runqueues_held_by(stack) };
        if inside_scheduler {
            // SAFETY: interrupts are disabled (the caller's contract), the queue locks the frames held were just
            // repaired, and the heap lock too if they held it.
            match unsafe { scheduler::requeue_runnable_not_queued(cpu) } {
                Some(0) => {}
                Some(queued) => serial::raw::write_fmt(format_args!(
                    "queued again {queued} runnable task(s) the abandoned scheduler code had taken off the runqueue\n"
                )),
                None => serial::raw::write_fmt(format_args!(
                    "the task table is busy: runnable tasks missing from the runqueue were not queued again\n"
                )),
            }
        }
    }
    serial::raw::write_fmt(format_args!("restarting the idle loop of CPU {cpu}\n"));
    // SAFETY: the idle loop's frames (and what interrupted them) are abandoned by the restart below.
    if unsafe { memory::abandon_pin_on_this_cpu() } {
        serial::raw::write_fmt(format_args!("released this CPU's heap pin, held by the idle loop\n"));
    }
    // SAFETY: the idle task's abandoned frames need no drops: the idle loop owns nothing but what the scheduler's
    // code holds in them, and those locks and the picked task were recovered above; interrupts are disabled (the
    // caller's contract).
    match unsafe { scheduler::restart_idle_loop() } {
        Ok(never) => match never {},
        Err(error) => error,
    }
}

/// A fault in a device or IPI handler (the dispatcher already sent its end-of-interrupt): decides between failing
/// the interrupted task and stopping this CPU.
///
/// Failing the interrupted task, not returning to it with the interrupt dropped, is the sound choice: the handler
/// ran on the task's stack, above the CPU's interrupt frame, and `x86-interrupt` handlers save the registers they
/// use at slots only their own epilogue knows; the call-frame information restores only the callee-saved ones,
/// so the task's caller-saved registers (live at an arbitrary interrupted instruction) cannot be rebuilt to
/// resume it. Unwinding needs only the callee-saved registers, RSP and RIP ([`interrupted_registers`]): the task
/// is unwound from the interrupted instruction, as for a kill redirected from an interrupt, the handler's own
/// frames abandoned. A dropped tick or device
/// interrupt is then harmless (the next one comes), but a resumed task with one wrong register is not.
/// A fault in the scheduler path inside a handler (the timer's tick hook) is refused: the scheduler's spin locks
/// are not tracked, so one held there stays locked and this CPU would deadlock at its next switch.
fn interrupt_handler_fault(info: &interrupts::ExceptionInfo, landing: Landing) {
    if landing == Landing::SchedulerPath {
        stop_cpu(info, "in the scheduler path inside an interrupt handler (its spin locks are not tracked)");
    }
    serial::raw::write_fmt(format_args!(
        "interrupt handler in {} faulted; failing the interrupted task (its stack holds the handler)\n",
        landing.describe()
    ));
}

/// RFLAGS bit 1 (always set) and IF (bit 9): an interrupt frame of a task that could be interrupted has both.
const RFLAGS_FIXED_AND_IF: u64 = (1 << 1) | (1 << 9);

/// The interrupted task's registers under a faulting interrupt handler: walks up from the fault to the first frame
/// whose return-address slot starts a CPU interrupt frame (SDM Vol. 3A 6.14.1: RIP, CS, RFLAGS, RSP, SS) with
/// this CPU's kernel CS and SS, interrupts enabled and a stack pointer above it on the task's stack, and takes
/// the interrupted RIP and RSP from it. The walk cannot cross that frame by itself: an `x86-interrupt` handler's
/// call-frame information describes it as a call, so the caller's RSP would come out 32 bytes (or more, with
/// the CPU's alignment) too low. The callee-saved registers come from the walk (the handler's CFI records where
/// it saved them). `None` if no such frame is found within 32 frames.
fn interrupted_registers(
    info: &interrupts::ExceptionInfo,
    registers: unwind::Registers,
    stack: core::ops::Range<u64>,
) -> Option<unwind::Registers> {
    use unwind::StackReader;
    // SAFETY: `stack` is the faulting task's usable stack, mapped while the task exists (it is running here).
    let memory = unsafe { unwind::DirectMemory::within(stack.clone()) };
    let mut frames = unwind::FrameIter::new(unwind::global_registry(), &memory, unwind::FrameCursor::exact(registers))
        .with_limit(32);
    loop {
        let frame = frames.next_frame().ok()??;
        let slot = frame.cfa.checked_sub(8)?;
        let word = |index: u64| memory.read_u64(slot + 8 * index).ok();
        let (rip, cs, rflags, rsp, ss) = (word(0)?, word(1)?, word(2)?, word(3)?, word(4)?);
        let looks_like_interrupt_frame = cs == info.frame.code_segment
            && ss == info.frame.stack_segment
            && rflags & RFLAGS_FIXED_AND_IF == RFLAGS_FIXED_AND_IF
            && rsp > slot
            && stack.contains(&rsp);
        if looks_like_interrupt_frame {
            let mut interrupted = *frames.cursor().registers();
            interrupted.set(unwind::RSP, Some(rsp));
            interrupted.set(unwind::RA, Some(rip));
            return Some(interrupted);
        }
    }
}

/// Releases COM1's lock, the fault log's, the heap lock and the memory crate's allocator and page-table locks if
/// their holder token lies on `stack` (the faulting task's), and this CPU's heap pin if the abandoned code held
/// it, and says so on COM1 (without the lock). A fault
/// inside an allocator itself may have left it half-updated: the report says so, and recovery goes on (the
/// alternative, a hung machine, is certain loss).
///
/// # Safety
/// `stack` must be the stack of a task that faulted and will never resume the faulting code.
pub unsafe fn release_locks_held_by(stack: core::ops::Range<usize>) {
    // SAFETY: the caller guarantees the task is dead to its critical sections; a half-sent line needs no repair.
    if unsafe { serial::release_if_held_within(stack.clone()) } {
        serial::raw::write_fmt(format_args!("released COM1's lock, held by the faulting task\n"));
    }
    // SAFETY: as above; the allocators' and page table's state is accepted and reported.
    unsafe {
        memory::release_memory_locks_held_within(stack.clone(), |lock| {
            serial::raw::write_fmt(format_args!(
                "released the {lock} lock, held by the faulting task (a fault inside it may have left it \
                 inconsistent)\n"
            ));
        });
    }
    // SAFETY: as above; the task table's map is accepted as left (its updates are single map calls).
    if unsafe { task::release_task_table_if_held_within(stack.clone()) } {
        serial::raw::write_fmt(format_args!("released the task table's lock, held by the faulting code\n"));
    }
    // SAFETY: as above; a half-pushed fault record is accepted.
    if unsafe { log_book::release_book_if_held_within(stack.clone()) } {
        serial::raw::write_fmt(format_args!("released the fault log's lock, held by the faulting task\n"));
    }
    // SAFETY: the code on this CPU (the faulting task, and any handler that interrupted it) is abandoned.
    if unsafe { memory::abandon_pin_on_this_cpu() } {
        serial::raw::write_fmt(format_args!("released this CPU's heap pin, held by the faulting code\n"));
    }
    // SAFETY: as above; the free list's state is accepted and reported.
    if unsafe { memory::release_heap_if_held_within(stack) } {
        serial::raw::write_fmt(format_args!(
            "released the heap lock, held by the faulting task (a fault inside the allocator may have left its \
             free list inconsistent)\n"
        ));
    }
}

/// The NMI watchdog's stall repair (`interrupts::set_stall_repair_hook`): a CPU spinning with interrupts off on
/// its runqueue or sleepers lock, left taken by a holder that is not on a CPU (it skipped its release and ran on,
/// or died), gets the lock repaired (`scheduler::repair_stale_queue_locks`) and resumes, instead of the spinning
/// task being failed and the next one spinning again. Not while the heap lock is held (the rebuild allocates;
/// the stall then goes the ordinary way: the task is failed).
fn stall_repair(info: &interrupts::ExceptionInfo) -> bool {
    if memory::heap_is_locked() {
        return false;
    }
    // SAFETY: called on the NMI's stack with interrupts disabled; the heap is free (checked above).
    unsafe { scheduler::repair_stale_queue_locks(info.cpu.index(), report_queue_repair) }
}

/// Says on COM1 (without its lock) what a runqueue or sleepers repair did.
fn report_queue_repair(repair: scheduler::RunQueueRepair) {
    match repair {
        scheduler::RunQueueRepair::Rebuilt { cpu, tasks } => serial::raw::write_fmt(format_args!(
            "released CPU {cpu}'s runqueue lock, held by a task that cannot be using it; rebuilt the runqueue from \
             the task table ({tasks} runnable tasks)\n"
        )),
        scheduler::RunQueueRepair::SleepersRebuilt { cpu, tasks } => serial::raw::write_fmt(format_args!(
            "released CPU {cpu}'s sleepers lock, held by a task that cannot be using it; rebuilt the sleepers \
             queue from the task table ({tasks} sleeping tasks, at their recorded deadlines)\n"
        )),
        scheduler::RunQueueRepair::TaskTableBusy { cpu } => serial::raw::write_fmt(format_args!(
            "CPU {cpu}'s queue lock is held, but the task table is busy: not repaired\n"
        )),
    }
}

/// Takes over and rebuilds every CPU's runqueue and sleepers queue whose lock the faulting task held
/// (`scheduler`'s runqueue and sleepers locks record a holder token on the holder's stack; a fault inside
/// `schedule`'s requeue or pick, or in a sleep's insertion, leaves the lock taken and the queue half-updated), then
/// checks this CPU's runqueue for damage (`scheduler::repair_damaged_runqueue`), and says on COM1 without its lock
/// what was done. Runs after [`release_locks_held_by`] (the rebuilds allocate).
///
/// # Safety
/// `stack` must be the stack of a task that faulted and will never resume the faulting code.
unsafe fn repair_runqueues_held_by(stack: core::ops::Range<usize>) {
    // SAFETY: the caller's contract, which is `repair_runqueues_held_within`'s.
    unsafe {
        scheduler::repair_runqueues_held_within(stack, |repair| match repair {
            scheduler::RunQueueRepair::Rebuilt { cpu, tasks } => serial::raw::write_fmt(format_args!(
                "released CPU {cpu}'s runqueue lock, held by the faulting task; rebuilt the runqueue from the task \
                 table ({tasks} runnable tasks)\n"
            )),
            scheduler::RunQueueRepair::SleepersRebuilt { cpu, tasks } => serial::raw::write_fmt(format_args!(
                "released CPU {cpu}'s sleepers lock, held by the faulting task; rebuilt the sleepers queue from the \
                 task table ({tasks} sleeping tasks, at their recorded deadlines)\n"
            )),
            scheduler::RunQueueRepair::TaskTableBusy { cpu } => serial::raw::write_fmt(format_args!(
                "CPU {cpu}'s runqueue lock is held by the faulting task, but the task table is busy: not repaired \
                 (that CPU will not schedule again)\n"
            )),
        });
    }
    // Then this CPU's runqueue itself (its header and entries), whoever held it: a damaged word in it faults in
    // every later `schedule` otherwise.
    // SAFETY: interrupts are disabled (the fault path) and the heap lock is not held by the abandoned code (its
    // locks were released first: the caller's order).
    let repair = unsafe { scheduler::repair_damaged_runqueue(scheduler::current_cpu()) };
    if let Some(scheduler::RunQueueRepair::Rebuilt { cpu, tasks }) = repair {
        serial::raw::write_fmt(format_args!(
            "CPU {cpu}'s runqueue was damaged (its header or an entry names no task); rebuilt it from the task table \
             ({tasks} runnable tasks)\n"
        ));
    }
}

/// The first frame (as an after-call cursor, so its landing pads run) whose stack pointer has at least
/// [`OVERFLOW_HEADROOM`] bytes of stack below it.
fn overflow_start(registers: unwind::Registers, bounds: core::ops::Range<u64>) -> Option<unwind::FrameCursor> {
    // SAFETY: `bounds` is the task's usable stack, mapped while the task exists (it is running here).
    let memory = unsafe { unwind::DirectMemory::within(bounds.clone()) };
    let mut frames = unwind::FrameIter::new(unwind::global_registry(), memory, unwind::FrameCursor::exact(registers));
    loop {
        let before = frames.cursor();
        let frame = frames.next_frame().ok()??;
        if frame.registers.stack_pointer()? >= bounds.start + OVERFLOW_HEADROOM {
            // The first frame itself (exact, the faulting one) keeps its exact cursor.
            return Some(before);
        }
    }
}

/// Halts this CPU for good; it leaves the online sets first: the scheduler's, so no new task is placed on it, and
/// the CPUs' (`smp::park_current_cpu`), so stop-the-world and TLB shootdowns stop waiting for it.
fn stop_cpu(info: &interrupts::ExceptionInfo, why: &str) -> ! {
    serial::raw::write_fmt(format_args!("{} on CPU {} {why}; stopping this CPU\n", info.name, info.cpu.index()));
    scheduler::take_current_cpu_offline();
    smp::park_current_cpu()
}

/// The cell holding `address` in the kernel or application namespace, if any (by name).
pub fn cell_containing(address: u64) -> Option<alloc::string::String> {
    system_namespaces::cell_containing(address).map(|name| name.as_str().to_string())
}
