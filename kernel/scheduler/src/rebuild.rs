//! Recovering a CPU whose idle task faulted inside the scheduler's code with interrupts off (used by
//! `fault_recovery`'s idle path): where the abandoned frames end ([`idle_loop_base`]) and the requeue of a task
//! they had taken off the runqueue ([`requeue_runnable_not_queued`]); the idle loop's audit for tasks that are
//! `Runnable` but in no runqueue ([`audit_lost_tasks`]); and the test hooks that make an idle loop fault holding its
//! runqueue lock ([`set_idle_runqueue_fault_once`]) and that take a task out of its runqueue
//! ([`unqueue_for_test`]).
//!
//! Kept in a module of its own, placed after `switch` in the cell's text (sections are laid out in name order):
//! code added before `schedule` moved the context switch into QEMU TCG's slow mode (see the README, "Context
//! switch and `sti`").

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use task::{RunState, TaskRef};

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

/// How often an idling CPU looks for lost tasks (nanoseconds of idle time between two looks).
const AUDIT_PERIOD_NS: u64 = 200_000_000;
/// Lost tasks remembered per CPU between two looks.
const AUDIT_CANDIDATES: usize = 8;

/// Per CPU: the time of the last look for lost tasks (0: none yet).
static LAST_AUDIT_NS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: ids of the tasks the last look found `Runnable` but not queued (0: an empty slot).
static CANDIDATES: [[AtomicU64; AUDIT_CANDIDATES]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; AUDIT_CANDIDATES] }; MAX_CPUS];
/// Lost tasks queued again by [`audit_lost_tasks`] since boot (all CPUs).
static LOST_REQUEUED: AtomicU64 = AtomicU64::new(0);

/// How many lost tasks (`Runnable`, in no runqueue, on no CPU, at two looks of the audit) were queued again.
pub fn lost_tasks_requeued() -> u64 {
    LOST_REQUEUED.load(Ordering::Relaxed)
}

/// Called by the idle loop when it has nothing to run, interrupts disabled, holding no lock: every
/// [`AUDIT_PERIOD_NS`] of idle time, queues again each task of the task table that is `Runnable` on this CPU but
/// neither in its runqueue nor on a CPU, and was so at the previous look too.
///
/// Such a task is lost: a wake-up queues a task exactly once, right after making it `Runnable`, so only a fault
/// takes it out of the queue without running it (in the fault campaign: a skipped instruction in the policy's
/// `pick_next` dropped the task it had popped, the shell, and the system hung with every CPU idle, which no
/// watchdog sees). The window between a wake-up's compare-and-swap and its push lasts microseconds, so a task seen
/// lost at two looks 200 ms apart is not in it. Takes the task table with a bounded try-lock (skips the look if it
/// is busy) and allocates a task list, like `ps`.
pub(crate) fn audit_lost_tasks() {
    let index = current_cpu();
    crate::verify::log_rebuild_at_lock(index);
    let now = tsc::now_ns();
    if now.saturating_sub(LAST_AUDIT_NS[index].load(Ordering::Relaxed)) < AUDIT_PERIOD_NS {
        return;
    }
    LAST_AUDIT_NS[index].store(now, Ordering::Relaxed);
    let Some(tasks) = task::try_all_tasks() else { return };
    let previous: [u64; AUDIT_CANDIDATES] =
        core::array::from_fn(|slot| CANDIDATES[index][slot].swap(0, Ordering::Relaxed));
    let mut requeued = 0u64;
    let mut seen = 0;
    let mut runqueue = CPUS[index].runqueue.lock_interrupts_disabled();
    for task in tasks.iter().filter(|task| lost_on(task, index)) {
        if runqueue.contains(task) {
            continue;
        }
        let id = task.id().value();
        if previous.contains(&id) {
            runqueue.push_back(task.clone());
            requeued += 1;
        } else if seen < AUDIT_CANDIDATES {
            CANDIDATES[index][seen].store(id, Ordering::Relaxed);
            seen += 1;
        }
    }
    drop(runqueue);
    if requeued > 0 {
        LOST_REQUEUED.fetch_add(requeued, Ordering::Relaxed);
        log::warn!(
            "scheduler: CPU {index}: queued again {requeued} runnable task(s) found in no runqueue at two looks"
        );
    }
}

/// Whether `task` is assigned to CPU `index`, `Runnable` and on no CPU (not the idle task).
fn lost_on(task: &TaskRef, index: usize) -> bool {
    task.cpu() == index && !task.is_idle() && task.state() == RunState::Runnable && !task.is_on_cpu()
}

/// For tests: takes `task` out of its CPU's runqueue (every entry of it), as a fault that dropped a popped task
/// would; returns how many entries were removed. The task stays `Runnable`: only [`audit_lost_tasks`] queues it
/// again.
pub fn unqueue_for_test(task: &TaskRef) -> usize {
    let Some(cpu) = CPUS.get(task.cpu()) else { return 0 };
    let mut runqueue = cpu.runqueue.lock();
    let mut removed = 0;
    let mut position = 0;
    while let Some(queued) = runqueue.get(position) {
        if queued == task {
            runqueue.remove(position);
            removed += 1;
        } else {
            position += 1;
        }
    }
    removed
}
