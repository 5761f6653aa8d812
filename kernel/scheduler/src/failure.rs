//! Turning an unwind's cause into a task's [`FailureReason`], and the failure hook (the fault log's entry).

use alloc::format;
use core::sync::atomic::{AtomicPtr, Ordering};

use memory_structs::VirtualAddress;
use task::{ExceptionKind, FailureReason, TaskRef};

use crate::switch::current_task;

/// Called for every spawned task that fails (after its stack was unwound, before it exits), on that task.
pub type FailureHook = fn(&TaskRef, &FailureReason);

/// The installed [`FailureHook`] (null: none); an atomic pointer so the failing path never waits.
static FAILURE_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs (or replaces) the hook told about every failed task (the fault log's recorder).
pub fn set_failure_hook(hook: FailureHook) {
    FAILURE_HOOK.store(hook as *mut (), Ordering::Release);
}

/// Logs the current task's failure and calls the failure hook.
pub(crate) fn report_failure(reason: &FailureReason) {
    let Some(task) = current_task() else { return };
    log::warn!("task {} \"{}\" failed: {reason}", task.id(), task.name());
    let pointer = FAILURE_HOOK.load(Ordering::Acquire);
    if !pointer.is_null() {
        // SAFETY: non-null values come only from `set_failure_hook`, which stores a `FailureHook`.
        let hook = unsafe { core::mem::transmute::<*mut (), FailureHook>(pointer) };
        hook(&task, reason);
    }
}

/// The failure reason of the current task for an unwind `cause`: a panic's message with its location; a CPU
/// exception's kind and addresses, or [`FailureReason::StackOverflow`] for a page fault in the current task's
/// guard page; [`FailureReason::Killed`].
pub fn failure_from_cause(cause: &unwind::UnwindCause) -> FailureReason {
    match cause {
        unwind::UnwindCause::Panic(panic) if panic.line != 0 => {
            FailureReason::Panic(format!("{} at {}:{}:{}", panic.message, panic.file, panic.line, panic.column))
        }
        unwind::UnwindCause::Panic(panic) => FailureReason::Panic(format!("{}", panic.message)),
        unwind::UnwindCause::Exception(exception) => {
            let address = |value: u64| VirtualAddress::try_new(value as usize).ok();
            let fault_address = exception.fault_address.and_then(address);
            if let Some(fault_address) = fault_address
                && current_task().is_some_and(|task| task.stack_guard_contains(fault_address))
            {
                return FailureReason::StackOverflow { fault_address };
            }
            let error_code = exception.error_code.unwrap_or(0);
            let kind = match exception.vector {
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
                instruction_pointer: address(exception.instruction_pointer).unwrap_or(VirtualAddress::zero()),
                fault_address,
            }
        }
        unwind::UnwindCause::Killed => FailureReason::Killed,
        unwind::UnwindCause::Foreign => FailureReason::Panic(format!("{cause}")),
    }
}
