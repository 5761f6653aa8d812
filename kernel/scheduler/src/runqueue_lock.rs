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

use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicPtr, Ordering};

use deadline_queue::DeadlineQueue;
use owned_spin::{OwnedSpinGuard, OwnedSpinLock, stack_token};
use task::{RunQueue, RunState, TaskRef, interrupts};

use crate::cpus::{CPUS, MAX_CPUS, PerCpu};

/// A CPU's runqueue or sleepers lock: an [`OwnedSpinLock`] held with interrupts disabled.
pub(crate) struct TrackedLock<T> {
    pub(crate) inner: OwnedSpinLock<T>,
}

/// The guard of a [`TrackedLock`]. Fields drop in declaration order: the lock is released first, then
/// interrupts are restored.
pub(crate) struct TrackedGuard<'a, T> {
    guard: OwnedSpinGuard<'a, T>,
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

impl<T> TrackedLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        TrackedLock { inner: OwnedSpinLock::new(value) }
    }

    /// Disables interrupts, then spins until the lock is free and takes it.
    #[inline(always)]
    pub(crate) fn lock(&self) -> TrackedGuard<'_, T> {
        let were_enabled = interrupts::disable();
        let token = stack_token();
        TrackedGuard { guard: self.spin_for(token), _interrupts: RestoreInterrupts { were_enabled } }
    }

    /// [`lock`](Self::lock) on a CPU whose interrupts the caller disabled and keeps disabled until the guard is
    /// dropped (the switch path).
    #[inline(always)]
    pub(crate) fn lock_interrupts_disabled(&self) -> TrackedGuard<'_, T> {
        debug_assert!(!interrupts::are_enabled(), "lock_interrupts_disabled with interrupts enabled");
        let token = stack_token();
        TrackedGuard { guard: self.spin_for(token), _interrupts: RestoreInterrupts { were_enabled: false } }
    }

    /// Whether the holder's token lies in `stack`.
    pub(crate) fn held_within(&self, stack: &core::ops::Range<usize>) -> bool {
        self.inner.holder().is_some_and(|token| stack.contains(&token))
    }

    fn spin_for(&self, token: usize) -> OwnedSpinGuard<'_, T> {
        loop {
            if let Some(guard) = self.inner.try_lock_as(token) {
                return guard;
            }
            irq_safe::relax();
        }
    }
}

impl<T> Deref for TrackedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for TrackedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

/// A CPU's sleeping tasks by wake-up deadline: a [`DeadlineQueue`] whose [`insert`](Self::insert) also records the
/// deadline in the task, so the queue can be rebuilt from the task table after a fault
/// ([`repair_runqueues_held_within`]). Every other operation is the queue's own (through `Deref`).
pub(crate) struct SleeperQueue {
    queue: DeadlineQueue<TaskRef>,
    /// Whether the next insertion executes `ud2` first ([`set_sleepers_fault_once`], for tests).
    fault_once: bool,
}

impl SleeperQueue {
    pub(crate) const fn new() -> Self {
        SleeperQueue { queue: DeadlineQueue::new(), fault_once: false }
    }

    /// Queues `task` until `deadline` (TSC ns), recording the deadline in the task first.
    #[inline]
    pub(crate) fn insert(&mut self, deadline: u64, task: TaskRef) {
        if self.fault_once {
            self.fault_once = false;
            ud2_here();
        }
        task.set_sleep_deadline(deadline);
        self.queue.insert(deadline, task);
    }
}

impl Deref for SleeperQueue {
    type Target = DeadlineQueue<TaskRef>;
    fn deref(&self) -> &DeadlineQueue<TaskRef> {
        &self.queue
    }
}

impl DerefMut for SleeperQueue {
    fn deref_mut(&mut self) -> &mut DeadlineQueue<TaskRef> {
        &mut self.queue
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

/// What [`repair_runqueues_held_within`] did for one CPU's runqueue or sleepers queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunQueueRepair {
    /// The runqueue lock was taken over and the queue rebuilt with this many tasks.
    Rebuilt {
        /// The CPU whose runqueue it was.
        cpu: usize,
        /// Tasks queued again.
        tasks: usize,
    },
    /// The sleepers lock was taken over and the queue rebuilt with this many tasks (at their recorded deadlines).
    SleepersRebuilt {
        /// The CPU whose sleepers queue it was.
        cpu: usize,
        /// Tasks queued again.
        tasks: usize,
    },
    /// A lock is held by the faulting task, but the task table could not be read without waiting (the faulting
    /// task may hold its lock too): the lock stays held and that CPU will not schedule again.
    TaskTableBusy {
        /// The CPU whose queue it is.
        cpu: usize,
    },
}

/// Takes over and rebuilds every runqueue and sleepers queue whose lock's holder token lies in `stack` (see the
/// module docs); the current task, if it faulted half-way into its own requeue (made `Runnable`) or its own sleep
/// (made `Sleeping`), is made `Running` again. Reports each queue through `report`. Interrupts must be disabled.
///
/// # Safety
/// `stack` must be the stack of a task that faulted and never resumes the faulting code (it is unwound or ended).
pub unsafe fn repair_runqueues_held_within(stack: core::ops::Range<usize>, mut report: impl FnMut(RunQueueRepair)) {
    let held = |cpu: &PerCpu| cpu.runqueue.held_within(&stack) || cpu.sleepers.held_within(&stack);
    if !CPUS.iter().any(held) {
        return;
    }
    let current = crate::current_task();
    if let Some(current) = &current {
        // Faulted between its `Running -> Runnable` transition and its push (or inside the pick), or between its
        // `Running -> Sleeping` transition and its insertion as a sleeper: it runs on (it is being unwound).
        let _ = current.transition(RunState::Runnable, RunState::Running)
            || current.transition(RunState::Sleeping, RunState::Running);
    }
    let held_by = |token: usize| stack.contains(&token);
    let others =
        |task: &TaskRef, index: usize| task.cpu() == index && !task.is_idle() && current.as_ref() != Some(task);
    for (index, cpu) in CPUS.iter().enumerate().take(MAX_CPUS) {
        if !held(cpu) {
            continue;
        }
        let Some(tasks) = task::try_all_tasks() else {
            report(RunQueueRepair::TaskTableBusy { cpu: index });
            continue;
        };
        // Sleepers first (lock order: `sleepers` before `runqueue`).
        // SAFETY: the holder faulted and never resumes its critical section (the caller's contract).
        unsafe {
            rebuild_sleepers(cpu, index, &tasks, |task| others(task, index), held_by, &mut report);
            rebuild_runqueue(cpu, index, &tasks, |task| others(task, index), held_by, &mut report);
        }
    }
}

/// Takes over CPU `index`'s sleepers lock if its holder token satisfies `holder`, replaces the queue without
/// reading it (it may be the damaged word) and queues again every task of `tasks` that `rebuilds` selects and
/// that is `Sleeping`, at the deadline its sleep recorded; recomputes the CPU's next deadline. Returns whether it
/// did.
///
/// # Safety
/// A holder that `holder` accepts is not inside the critical section and never resumes it.
unsafe fn rebuild_sleepers(
    cpu: &PerCpu,
    index: usize,
    tasks: &[TaskRef],
    rebuilds: impl Fn(&TaskRef) -> bool,
    holder: impl Fn(usize) -> bool,
    report: &mut impl FnMut(RunQueueRepair),
) -> bool {
    let token = stack_token();
    // SAFETY: the caller's contract; the queue is not read, only replaced, before the guard is dropped.
    let Some(mut guard) = (unsafe { cpu.sleepers.inner.take_over_if(holder, token) }) else { return false };
    let count = crate::verify::refill_sleepers(&mut guard, cpu, tasks, rebuilds);
    drop(guard);
    report(RunQueueRepair::SleepersRebuilt { cpu: index, tasks: count });
    true
}

/// [`rebuild_sleepers`] for the runqueue: queues again every selected task that is `Runnable`.
///
/// # Safety
/// As for [`rebuild_sleepers`].
unsafe fn rebuild_runqueue(
    cpu: &PerCpu,
    index: usize,
    tasks: &[TaskRef],
    rebuilds: impl Fn(&TaskRef) -> bool,
    holder: impl Fn(usize) -> bool,
    report: &mut impl FnMut(RunQueueRepair),
) -> bool {
    let token = stack_token();
    // SAFETY: as above.
    let Some(mut guard) = (unsafe { cpu.runqueue.inner.take_over_if(holder, token) }) else { return false };
    let count = crate::verify::refill_runqueue(&mut guard, tasks, rebuilds);
    drop(guard);
    report(RunQueueRepair::Rebuilt { cpu: index, tasks: count });
    true
}

/// For an NMI-watchdog stall of CPU `index` (it took no tick for seconds, i.e. it spins with interrupts off):
/// takes over and rebuilds that CPU's sleepers queue and runqueue if their lock is held by nobody who can be inside
/// its critical section: a holder token on the stack of a task that is not on a CPU (a task holds these locks only
/// with interrupts off and never switches while holding them, so it is a holder that skipped its release, e.g. a
/// skipped store in the campaign, and ran on). A token on the stack of a task that is on a CPU, or on no known
/// task's stack (an adopted task's, an exception stack), is left alone: its holder may be inside the section (the
/// stalled task's own locks are handled by [`repair_runqueues_held_within`] when it is failed). Returns whether a lock was repaired. Does not
/// wait: `None` from the task table's bounded try-lock repairs nothing.
///
/// # Safety
/// Interrupts must be disabled, and the heap must be free to use from here (the caller checks that its lock is
/// not held: the rebuild allocates).
pub unsafe fn repair_stale_queue_locks(index: usize, mut report: impl FnMut(RunQueueRepair)) -> bool {
    let Some(cpu) = CPUS.get(index) else { return false };
    if cpu.sleepers.inner.holder().is_none() && cpu.runqueue.inner.holder().is_none() {
        return false;
    }
    let Some(tasks) = task::try_all_tasks() else { return false };
    let stale = |token: usize| {
        let owner = tasks.iter().find(|task| task.stack_bounds().is_some_and(|stack| stack.contains(&token)));
        owner.is_some_and(|owner| !owner.is_on_cpu())
    };
    let current = crate::current_task();
    let others = |task: &TaskRef| task.cpu() == index && !task.is_idle() && current.as_ref() != Some(task);
    let mut repaired = false;
    if let Some(token) = cpu.sleepers.inner.holder().filter(|&token| stale(token)) {
        // SAFETY: the holder is not inside the critical section (see above).
        repaired |= unsafe { rebuild_sleepers(cpu, index, &tasks, others, |held| held == token, &mut report) };
    }
    if let Some(token) = cpu.runqueue.inner.holder().filter(|&token| stale(token)) {
        // SAFETY: as above.
        repaired |= unsafe { rebuild_runqueue(cpu, index, &tasks, others, |held| held == token, &mut report) };
    }
    repaired
}

/// Runs the test hook in `slot` once, if one is set (a `fn()` stored by a `set_*_fault_once`).
#[inline(never)]
pub(crate) fn run_hook_once(slot: &AtomicPtr<()>) {
    let hook = slot.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !hook.is_null() {
        // SAFETY: non-null values come only from the `set_*_fault_once` functions, which store a `fn()`.
        let hook = unsafe { core::mem::transmute::<*mut (), fn()>(hook) };
        hook();
    }
}

/// Executes `ud2` in the calling frame (always inlined): a test's fault inside a critical section, in the frame
/// that holds the guard, as the campaign's faults are (a fault in a function the section *called* unwinds through
/// the holder's landing pad, which unlocks, so it would not test the repair). It counts against this cell's
/// reload limit (3 faults reload the cell): the tests cause two.
#[inline(always)]
fn ud2_here() {
    // SAFETY: a test's request: raises #UD here; fault recovery unwinds the task from this frame (which it never
    // resumes) and repairs the queue whose lock the frame holds.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
}

/// For tests: the next task to go to sleep on CPU `cpu` executes `ud2` inside the sleepers queue's critical
/// section, after it was made `Sleeping` and before it is queued (the fault the campaign's flipped bits in
/// `sleep_until_ns` caused). The task must be unwound, and the other sleepers of that CPU must still wake at their
/// deadlines (not earlier).
pub fn set_sleepers_fault_once(cpu: usize) {
    CPUS[cpu].sleepers.lock().fault_once = true;
}

/// Whether the fault asked for by [`set_sleepers_fault_once`] is still to happen on `cpu`.
pub fn sleepers_fault_pending(cpu: usize) -> bool {
    CPUS[cpu].sleepers.lock().fault_once
}

/// [`PerCpu::runqueue_fault_once`]: no fault asked for.
pub(crate) const FAULT_NONE: u8 = 0;
/// [`PerCpu::runqueue_fault_once`]: at the requeue of a task that was `Running` ([`set_runqueue_fault_once`]).
pub(crate) const FAULT_AT_REQUEUE: u8 = 1;
/// [`PerCpu::runqueue_fault_once`]: in the `schedule` of a task that made itself `Blocked` or `Sleeping`
/// ([`set_blocked_runqueue_fault_once`]).
pub(crate) const FAULT_WHEN_BLOCKED: u8 = 2;

/// For tests: the next `schedule` of a task (not the idle task) on CPU `cpu` executes `ud2` inside the runqueue's
/// critical section, half-way through requeuing the current task (made `Runnable`, not yet queued): the fault the
/// campaign's flipped bits and skipped instructions in `schedule` cause. The task must be unwound and the CPU must
/// go on scheduling. (For the idle task: `set_idle_runqueue_fault_once`.)
pub fn set_runqueue_fault_once(cpu: usize) {
    CPUS[cpu].runqueue_fault_once.store(FAULT_AT_REQUEUE, Ordering::Release);
}

/// The fault hook of [`set_blocked_runqueue_fault_once`] (null: none).
static BLOCKED_FAULT_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// For tests: the next `schedule` on CPU `cpu` of a task that made itself `Blocked` or `Sleeping` (a join, a
/// sleep) calls `fault` inside the runqueue's critical section (the campaign's flipped runqueue word in a `join`'s
/// `schedule`). The task must be unwound *running*: its landing pads may block again (a drop that joins), which a
/// task still marked `Blocked` cannot do (it is never woken). The fault is the hook's (a function of another cell,
/// so the scheduler's own fault count, whose third fault reloads it, is not spent on tests).
pub fn set_blocked_runqueue_fault_once(cpu: usize, fault: fn()) {
    BLOCKED_FAULT_HOOK.store(fault as *mut (), Ordering::Release);
    CPUS[cpu].runqueue_fault_once.store(FAULT_WHEN_BLOCKED, Ordering::Release);
}

/// Whether the fault asked for by [`set_runqueue_fault_once`] or [`set_blocked_runqueue_fault_once`] is still to
/// happen on `cpu`.
pub fn runqueue_fault_pending(cpu: usize) -> bool {
    CPUS[cpu].runqueue_fault_once.load(Ordering::Acquire) != FAULT_NONE
}

/// For tests: the next `schedule` on CPU `cpu` does not release its runqueue lock (the guard is forgotten, as
/// when a fault skips the release store) and runs on: the next `schedule` there spins on the lock with interrupts
/// off until the NMI watchdog's stall repair ([`repair_stale_queue_locks`]) rebuilds the queue and resumes it.
pub fn set_runqueue_release_skipped_once(cpu: usize) {
    CPUS[cpu].runqueue_skip_release_once.store(true, Ordering::Release);
}

/// Whether the skipped release asked for by [`set_runqueue_release_skipped_once`] is still to happen on `cpu`.
pub fn runqueue_release_skip_pending(cpu: usize) -> bool {
    CPUS[cpu].runqueue_skip_release_once.load(Ordering::Acquire)
}

impl PerCpu {
    /// Ends `schedule`'s runqueue critical section: drops the guard (or, if a test asked for it with
    /// [`set_runqueue_release_skipped_once`], forgets it; one relaxed load otherwise).
    #[inline(always)]
    pub(crate) fn release_runqueue(&self, guard: TrackedGuard<'_, RunQueue>) {
        if self.runqueue_skip_release_once.load(Ordering::Relaxed)
            && self.runqueue_skip_release_once.swap(false, Ordering::AcqRel)
        {
            core::mem::forget(guard);
        } else {
            drop(guard);
        }
    }

    /// Called by `schedule` inside the runqueue's critical section, at the point `mode` names: executes `ud2` if a
    /// test asked for it there ([`set_runqueue_fault_once`], [`set_blocked_runqueue_fault_once`]; one relaxed load
    /// otherwise).
    #[inline(always)]
    pub(crate) fn runqueue_fault_once_here(&self, mode: u8) {
        if self.runqueue_fault_once.load(Ordering::Relaxed) == mode
            && self.runqueue_fault_once.compare_exchange(mode, FAULT_NONE, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            if mode == FAULT_WHEN_BLOCKED {
                run_hook_once(&BLOCKED_FAULT_HOOK);
            } else {
                ud2_here();
            }
        }
    }
}
