//! The runqueue lock, whose holder is known, and the repair of a runqueue whose holder faulted.
//!
//! Each CPU's runqueue is a spin lock taken with interrupts masked (like every tasking lock), but an
//! [`OwnedSpinLock`]: it records a *holder token*, an address in the holder's stack frame. A CPU fault inside
//! the critical section (a flipped bit or skipped instruction in `schedule`'s push of the current task, in the
//! policy's pick, in a wake-up's push) leaves the lock taken and the queue possibly half-updated: the guard lives
//! in the faulting frame, whose drops the unwinder skips, and the next `schedule` on that CPU spins on it forever
//! with interrupts off (in the fault-injection campaign: 4 of 13 failures of `load 4 1`, every one a hang).
//!
//! [`repair_runqueues_held_within`] (called by `fault_recovery` for the faulting task's stack) takes such a lock
//! over in one atomic step (never free in between, so no other CPU sees the damaged queue) and rebuilds the queue
//! without reading it: its old contents are leaked (their buffer and `Arc` counts may be damaged; leaking is
//! safe), and every task of the task table that is `Runnable` on that CPU, other than the current task of this
//! CPU, is queued again. That is exactly the set the queue holds between critical sections, because every task is
//! made `Runnable` just before it is queued and leaves the queue only by being picked: the invariant is the
//! crate's "a wake-up is a compare-and-swap into `Runnable` followed by exactly one enqueue". One race remains
//! with several CPUs: a task made `Runnable` by another CPU that is spinning on this lock to queue it is queued by
//! the repair and again by that CPU. A duplicate entry costs fairness only: [`pick_runnable`] drops any picked
//! entry that is not `Runnable` (a stale duplicate of a task that blocked since), so no task is switched to twice.

use alloc::vec::Vec;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

use owned_spin::{OwnedSpinGuard, OwnedSpinLock};
use task::{RunQueue, RunState, TaskRef, interrupts};

use crate::cpus::{CPUS, MAX_CPUS};

/// A CPU's runqueue lock: an [`OwnedSpinLock`] held with interrupts disabled.
pub(crate) struct RunQueueLock {
    inner: OwnedSpinLock<RunQueue>,
    /// Whether the next `schedule` of a task (not the idle task) on this CPU executes `ud2` while holding this
    /// lock, after making the task `Runnable` and before queuing it (set by [`set_runqueue_fault_once`]).
    fault_once: AtomicBool,
}

/// The guard of a [`RunQueueLock`]. Fields drop in declaration order: the lock is released first, then
/// interrupts are restored.
pub(crate) struct RunQueueGuard<'a> {
    guard: OwnedSpinGuard<'a, RunQueue>,
    _interrupts: RestoreInterrupts,
}

/// Restores the interrupt flag saved when a guard was taken.
struct RestoreInterrupts {
    were_enabled: bool,
}

impl Drop for RestoreInterrupts {
    #[inline]
    fn drop(&mut self) {
        interrupts::restore(self.were_enabled);
    }
}

/// An address in the caller's stack frame: the holder token (nonzero, on the holder's stack).
#[inline(always)]
fn stack_token() -> usize {
    let marker = 0u8;
    core::hint::black_box(core::ptr::addr_of!(marker)) as usize
}

impl RunQueueLock {
    pub(crate) const fn new() -> Self {
        RunQueueLock { inner: OwnedSpinLock::new(RunQueue::new()), fault_once: AtomicBool::new(false) }
    }

    /// Disables interrupts, then spins until the lock is free and takes it.
    #[inline(always)]
    pub(crate) fn lock(&self) -> RunQueueGuard<'_> {
        let were_enabled = interrupts::disable();
        let token = stack_token();
        RunQueueGuard { guard: self.spin_for(token), _interrupts: RestoreInterrupts { were_enabled } }
    }

    /// [`lock`](Self::lock) on a CPU whose interrupts the caller disabled and keeps disabled until the guard is
    /// dropped (the switch path).
    #[inline(always)]
    pub(crate) fn lock_interrupts_disabled(&self) -> RunQueueGuard<'_> {
        debug_assert!(!interrupts::are_enabled(), "lock_interrupts_disabled with interrupts enabled");
        let token = stack_token();
        RunQueueGuard { guard: self.spin_for(token), _interrupts: RestoreInterrupts { were_enabled: false } }
    }

    fn spin_for(&self, token: usize) -> OwnedSpinGuard<'_, RunQueue> {
        loop {
            if let Some(guard) = self.inner.try_lock_as(token) {
                return guard;
            }
            irq_safe::relax();
        }
    }
}

impl Deref for RunQueueGuard<'_> {
    type Target = RunQueue;
    fn deref(&self) -> &RunQueue {
        &self.guard
    }
}

impl DerefMut for RunQueueGuard<'_> {
    fn deref_mut(&mut self) -> &mut RunQueue {
        &mut self.guard
    }
}

/// The next task the policy picks from `runqueue` that is `Runnable`; entries that are not (a duplicate left by a
/// [repair](repair_runqueues_held_within) whose task has blocked or exited since) are dropped.
pub(crate) fn pick_runnable(runqueue: &mut RunQueue) -> Option<TaskRef> {
    loop {
        let picked = scheduler_policy::policy().pick_next(runqueue)?;
        if picked.state() == RunState::Runnable {
            return Some(picked);
        }
    }
}

/// What [`repair_runqueues_held_within`] did for one CPU's runqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunQueueRepair {
    /// The lock was taken over and the queue rebuilt with this many tasks.
    Rebuilt {
        /// The CPU whose runqueue it was.
        cpu: usize,
        /// Tasks queued again.
        tasks: usize,
    },
    /// The lock is held by the faulting task, but the task table could not be read without waiting (the faulting
    /// task may hold its lock too): the lock stays held and that CPU will not schedule again.
    TaskTableBusy {
        /// The CPU whose runqueue it is.
        cpu: usize,
    },
}

/// Takes over and rebuilds every runqueue whose lock's holder token lies in `stack` (see the module docs); the
/// current task, if it faulted half-way into its own requeue (made `Runnable`), is made `Running` again. Reports
/// each runqueue through `report`. Interrupts must be disabled.
///
/// # Safety
/// `stack` must be the stack of a task that faulted and never resumes the faulting code (it is unwound or ended).
pub unsafe fn repair_runqueues_held_within(stack: core::ops::Range<usize>, mut report: impl FnMut(RunQueueRepair)) {
    let held_by = |token: usize| stack.contains(&token);
    if !CPUS.iter().any(|cpu| cpu.runqueue.inner.holder().is_some_and(held_by)) {
        return;
    }
    let current = crate::current_task();
    if let Some(current) = &current {
        // Faulted between its `Running -> Runnable` transition and its push (or inside the pick): it runs on.
        let _ = current.transition(RunState::Runnable, RunState::Running);
    }
    for (index, cpu) in CPUS.iter().enumerate().take(MAX_CPUS) {
        if !cpu.runqueue.inner.holder().is_some_and(held_by) {
            continue;
        }
        let Some(tasks) = task::try_all_tasks() else {
            report(RunQueueRepair::TaskTableBusy { cpu: index });
            continue;
        };
        let token = stack_token();
        // SAFETY: the holder faulted and never resumes its critical section (the caller's contract); the queue is
        // not read, only replaced below, before the guard is dropped.
        let Some(mut guard) = (unsafe { cpu.runqueue.inner.take_over_if(held_by, token) }) else { continue };
        core::mem::forget(core::mem::replace(&mut *guard, RunQueue::new()));
        let runnable: Vec<TaskRef> = tasks
            .into_iter()
            .filter(|task| {
                task.cpu() == index
                    && !task.is_idle()
                    && task.state() == RunState::Runnable
                    && current.as_ref() != Some(task)
            })
            .collect();
        let count = runnable.len();
        for task in runnable {
            guard.push_back(task);
        }
        drop(guard);
        report(RunQueueRepair::Rebuilt { cpu: index, tasks: count });
    }
}

/// For tests: the next `schedule` of a task (not the idle task) on CPU `cpu` faults (`ud2`) inside the runqueue's
/// critical section, half-way through requeuing the current task: the fault the campaign's flipped bits and
/// skipped instructions in `schedule` cause. The task must be unwound and the CPU must go on scheduling.
pub fn set_runqueue_fault_once(cpu: usize) {
    CPUS[cpu].runqueue.fault_once.store(true, Ordering::Release);
}

/// Whether the fault asked for by [`set_runqueue_fault_once`] is still to happen on `cpu`.
pub fn runqueue_fault_pending(cpu: usize) -> bool {
    CPUS[cpu].runqueue.fault_once.load(Ordering::Acquire)
}

impl RunQueueLock {
    /// Called by `schedule` inside this lock's critical section: executes `ud2` if a test asked for it
    /// ([`set_runqueue_fault_once`]; one relaxed load otherwise).
    #[inline(always)]
    pub(crate) fn fault_once_here(&self) {
        if self.fault_once.load(Ordering::Relaxed) && self.fault_once.swap(false, Ordering::AcqRel) {
            // SAFETY: a test's request: raises #UD here, inside `schedule` with the runqueue lock held; fault
            // recovery unwinds the task from this frame (which it never resumes) and repairs the runqueue.
            unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
        }
    }
}
