//! Recovering a CPU whose idle task faulted inside the scheduler's code with interrupts off (used by
//! `fault_recovery`'s idle path): where the abandoned frames end ([`idle_loop_base`]) and the requeue of a task
//! they had taken off the runqueue ([`requeue_runnable_not_queued`]); and the test hook that makes an idle loop
//! fault holding its runqueue lock ([`set_idle_runqueue_fault_once`]).
//!
//! Kept in a module of its own, placed after `switch` in the cell's text (sections are laid out in name order):
//! code added before `schedule` moved the context switch into QEMU TCG's slow mode (see the README, "Context
//! switch and `sti`").

use core::sync::atomic::{AtomicBool, Ordering};

use task::RunState;

use crate::cpus::{CPUS, MAX_CPUS, current_cpu};

/// Per CPU: whether the next idle-loop round executes `ud2` holding this CPU's runqueue lock.
static RUNQUEUE_FAULTS: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// The stack pointer at the base of CPU `cpu`'s idle loop (what a restart returns to; every frame the idle task
/// runs lies below it), once the loop started.
pub fn idle_loop_base(cpu: usize) -> Option<usize> {
    let base = crate::idle_restart::IDLE_BASE.get(cpu)?.load(Ordering::Acquire);
    (base != 0).then_some(base as usize)
}

/// Called by the idle loop each round, interrupts disabled: executes `ud2` holding this CPU's runqueue lock if
/// [`set_idle_runqueue_fault_once`] asked for it.
pub(crate) fn runqueue_fault_once() {
    let slot = &RUNQUEUE_FAULTS[current_cpu()];
    if slot.load(Ordering::Relaxed) && slot.swap(false, Ordering::AcqRel) {
        let _held = crate::cpus::this_cpu().runqueue.lock_interrupts_disabled();
        // SAFETY: `ud2` raises #UD and touches nothing; fault recovery restarts this idle loop and takes the
        // runqueue lock over from the abandoned guard.
        unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    }
}

/// Makes CPU `cpu`'s next idle-loop round execute `ud2` once while holding that CPU's runqueue lock, interrupts
/// off (the fault the campaign's corrupted words and skipped instructions cause in an idle task's `schedule`).
/// Out-of-range CPUs are ignored.
pub fn set_idle_runqueue_fault_once(cpu: usize) {
    if let Some(slot) = RUNQUEUE_FAULTS.get(cpu) {
        slot.store(true, Ordering::Release);
    }
}

/// Whether CPU `cpu`'s one-shot fault holding the runqueue lock is still waiting to happen.
pub fn idle_runqueue_fault_pending(cpu: usize) -> bool {
    RUNQUEUE_FAULTS.get(cpu).is_some_and(|slot| slot.load(Ordering::Acquire))
}

/// After CPU `index`'s idle task was abandoned inside the scheduler path (a fault there with interrupts off; its
/// frames are discarded by an idle-loop restart, see `fault_recovery`): queues again every task of the task table
/// that is `Runnable` on that CPU but not in its runqueue. The abandoned `schedule` may have popped the task it
/// picked and held it only in its frames, and such a task would never run again (a wake-up queues a task exactly
/// once). Returns how many were queued; `None` (nothing done) if the task table was busy.
///
/// # Safety
/// Interrupts must be disabled, no lock of that CPU's queues may be held by the abandoned frames any more
/// ([`repair_runqueues_held_within`] ran first for the idle task's stack), and the heap must be free to use (the
/// task list allocates).
pub unsafe fn requeue_runnable_not_queued(index: usize) -> Option<usize> {
    let cpu = CPUS.get(index)?;
    let tasks = task::try_all_tasks()?;
    let current = crate::current_task();
    let mut runqueue = cpu.runqueue.lock_interrupts_disabled();
    let mut queued = 0;
    for task in tasks.iter().filter(|task| task.cpu() == index && !task.is_idle() && current.as_ref() != Some(task)) {
        if task.state() == RunState::Runnable && !runqueue.contains(task) {
            runqueue.push_back(task.clone());
            queued += 1;
        }
    }
    drop(runqueue);
    Some(queued)
}
