//! Which task each CPU is handling an exception for, so that an exception inside that handling (the stack trace,
//! a cell lookup, a landing pad) is recognised instead of recursing.
//!
//! [`enter`] marks the CPU when the exception hook takes a task's fault; [`leave`] clears every mark of that task
//! once its unwind ended (the failure hook, or the unwinder's end handler). Between the two the task runs with
//! interrupts disabled (the exception hook and the landing pads of a fault's unwind), so it stays on this CPU.
//! Lock-free: atomics only.

use core::sync::atomic::{AtomicU64, Ordering};

use cpu::{CpuId, MAX_CPUS};
use task::TaskId;

/// Per CPU: the task id + 1 whose exception is being handled (0: none).
static HANDLING: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// What [`enter`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The first exception of this task being handled here.
    First,
    /// The task's earlier exception is still being handled on this CPU.
    Nested,
}

fn mark(task: TaskId) -> u64 {
    task.value().wrapping_add(1)
}

/// Marks CPU `cpu` as handling an exception of `task`.
pub(crate) fn enter(cpu: CpuId, task: TaskId) -> Entry {
    let Some(slot) = HANDLING.get(cpu.index()) else { return Entry::First };
    if slot.swap(mark(task), Ordering::AcqRel) == mark(task) { Entry::Nested } else { Entry::First }
}

/// Clears every CPU's mark of `task`.
pub(crate) fn leave(task: TaskId) {
    for slot in &HANDLING {
        let _ = slot.compare_exchange(mark(task), 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}
