//! The scheduling decision and the task state machine: schedule, yield, block/unblock, exit, kill.

use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use task::{AnyExitValue, ExitValue, FailureReason, RunState, TaskId, TaskRef, interrupts};

use crate::cpus::{CPUS, PerCpu, current_cpu, kick, this_cpu};
use crate::sleep::wake_expired_sleepers;

/// The task running on this CPU, or `None` before tasking started on it ([`init_bsp`](crate::init_bsp) /
/// [`ap_entry`](crate::ap_entry)).
pub fn current_task() -> Option<TaskRef> {
    let interrupts_were_enabled = interrupts::disable();
    let cpu = this_cpu();
    // SAFETY: interrupts are disabled and `cpu` is this CPU's state; the clone does not reach the slot again.
    let current = unsafe { cpu.current.with(|current| current.clone()) };
    interrupts::restore(interrupts_were_enabled);
    current
}

/// Switches to the next task this CPU's policy picks, if it is not the current one; the current task, if still
/// running, goes back to the runqueue. Returns when the current task is scheduled again.
///
/// This is the only place tasks switch, and the only caller of the policy cell: with interrupts disabled, it
/// wakes expired sleepers, asks `scheduler_policy::policy()` (looked up afresh) to pick from the runqueue, and
/// switches. Afterwards, on the task that resumes, it finishes the switch (reaps an exited predecessor) and, if the
/// resumed task was killed, ends it there: that is the kill's safe point.
///
/// Must not be called while holding a lock (an [`task::IrqSafeMutex`] guard or any spin lock).
pub fn schedule() {
    let interrupts_were_enabled = interrupts::disable();
    let cpu = this_cpu();
    // Every `CpuSlot::with` below: interrupts are disabled and `cpu` is this CPU's state; no closure reenters.
    // SAFETY: as just said.
    let Some(previous) = (unsafe { cpu.current.with(|current| current.clone()) }) else {
        interrupts::restore(interrupts_were_enabled);
        return;
    };
    // A kill that raced with the target going to sleep or blocking (the killer saw it running and only sent an
    // IPI) must not leave it parked forever: a killed task does not block; it runs on to its safe point below.
    if previous.is_kill_requested() && !previous.is_idle() {
        let _ = previous.transition(RunState::Blocked, RunState::Running)
            || previous.transition(RunState::Sleeping, RunState::Running);
    }
    wake_expired_sleepers(cpu);
    let picked = {
        let mut runqueue = cpu.runqueue.lock_interrupts_disabled();
        // The idle task is never queued: it is what runs when the queue is empty. The clone taken above goes to
        // the runqueue (no second reference count); `cpu.current` keeps its own until the switch hands it over.
        if previous.transition(RunState::Running, RunState::Runnable) && !previous.is_idle() {
            cpu.runqueue_fault_once_here(crate::runqueue_lock::FAULT_AT_REQUEUE);
            runqueue.push_back(previous);
        } else {
            cpu.runqueue_fault_once_here(crate::runqueue_lock::FAULT_WHEN_BLOCKED);
            drop(previous);
        }
        let picked = crate::runqueue_lock::pick_runnable(&mut runqueue);
        cpu.release_runqueue(runqueue);
        picked
    };
    // `None`: stay on the current task (nothing else is runnable, or no idle task yet).
    // SAFETY: as above.
    let next = picked.or_else(|| unsafe { cpu.idle.with(|idle| idle.clone()) });
    // SAFETY: as above.
    let stays = unsafe { cpu.current.with(|current| next.is_none() || next == *current) };
    let cpu = match next {
        Some(next) if !stays => {
            switch(cpu, next);
            fault_after_switch_if_asked();
            // Looked up again, not reused from before the switch: a swap of this cell while the task was switched
            // out moved the per-CPU state into the new copy (the old copy's references to it are rewritten, but a
            // reference held on this stack is not). The CPU itself is the same: tasks never migrate.
            let cpu = this_cpu();
            finish_switch(cpu);
            cpu
        }
        next => {
            drop(next);
            // SAFETY: as above.
            unsafe {
                cpu.current.with(|current| {
                    if let Some(current) = current
                        && current.state() == RunState::Runnable
                    {
                        current.set_state(RunState::Running);
                    }
                });
            }
            cpu
        }
    };
    if safe_point_pending(cpu) {
        end_if_killed();
        park_if_stopped();
    }
    interrupts::restore(interrupts_were_enabled);
}

/// Whether the current task of `cpu` (this CPU) was asked to end or stop, so [`schedule`] must run the safe
/// points ([`end_if_killed`], [`park_if_stopped`]); both do nothing otherwise, so the common case (neither) skips
/// their task lookups. Interrupts must be disabled.
fn safe_point_pending(cpu: &PerCpu) -> bool {
    // SAFETY: interrupts are disabled (the caller's contract) and `cpu` is this CPU's state; the closure only reads
    // the task's flags.
    unsafe {
        cpu.current
            .with(|current| current.as_ref().is_some_and(|task| task.is_kill_requested() || task.is_stop_requested()))
    }
}

/// The stop's safe point (after the kill's): a task asked to stop ([`stop`]) blocks here until [`resume`] (or a
/// kill) wakes it. Called with interrupts disabled and no lock held, on the task's own stack; a task switched out
/// from an interrupt handler (preemption) parks inside it, as preemption itself leaves it.
///
/// Protocol with [`resume`]: the task marks itself `Blocked` first, then moves its stop from requested to parked;
/// if the stop was cleared meanwhile, it unblocks itself. `resume` clears the stop and unblocks the task only if
/// it had parked, so a task blocked on anything else is never woken by a resume, and no resume is lost.
fn park_if_stopped() {
    let Some(current) = current_task() else { return };
    if current.is_idle() || current.is_unwinding() || current.is_body_finished() {
        return;
    }
    while current.is_stop_requested() && !current.is_kill_requested() {
        if block_current().is_none() {
            return;
        }
        if !current.mark_parked() {
            unblock(&current);
        }
        // The nested `schedule` returns when the task is woken; its own safe points (kill, stop) run first.
        schedule();
    }
}

/// Stops task `id` (the shell's Ctrl-Z): it parks at its next safe point (a tick, a yield, a block or sleep
/// ending) and does not run again until [`resume`]. A task spinning with preemption disabled parks only when it
/// re-enables preemption and is next switched out.
///
/// # Errors
/// As for [`kill`]: no such task, the idle task, or already exited.
pub fn stop(id: TaskId) -> Result<(), KillError> {
    let task = live_task(id)?;
    task.request_stop();
    if task.cpu() != current_cpu() && task.state() == RunState::Running {
        crate::cpus::interrupt(task.cpu());
    }
    Ok(())
}

/// Lets task `id`, stopped by [`stop`], run again (a no-op for a task that is not stopped).
///
/// # Errors
/// As for [`kill`].
pub fn resume(id: TaskId) -> Result<(), KillError> {
    let task = live_task(id)?;
    if task.clear_stop() {
        unblock(&task);
    }
    Ok(())
}

/// Task `id`, if it exists, is not the idle task and has not exited.
fn live_task(id: TaskId) -> Result<TaskRef, KillError> {
    let task = task::task_by_id(id).ok_or(KillError::NoSuchTask(id))?;
    if task.is_idle() {
        return Err(KillError::IdleTask(id));
    }
    if task.state() == RunState::Exited {
        return Err(KillError::AlreadyExited(id));
    }
    Ok(task)
}

/// Switches from the current task of `cpu` (this CPU) to `next`, returning when the current task runs again.
/// Interrupts must be disabled.
///
/// Protocol: `cpu.current` takes `next` and hands its reference to the current task over to `cpu.previous`, which
/// keeps that `Task` (and the stack-pointer slot `context_switch` writes into it) alive across the switch, until
/// `next` runs [`finish_switch`]. Neither slot is locked (see `CpuSlot`): only this CPU touches them, with
/// interrupts disabled, and no lock is held across the switch.
fn switch(cpu: &PerCpu, next: TaskRef) {
    // A switch this CPU never finished: the task that ran since faulted or panicked after `context_switch` returned
    // to it and before its `finish_switch` (in the campaign: a skipped compare made `this_cpu` panic there). Its
    // predecessor still has `on_cpu` set, so the spin below would wait for it forever once it is picked (a hang
    // with interrupts off); finish that switch now. Normally the slot is empty and this only reads it.
    finish_switch(cpu);
    next.set_state(RunState::Running);
    // A task is only ever picked on its own CPU, after that CPU finished switching away from it (`finish_switch`
    // just above), and tasks never migrate, so no CPU is still saving `next`'s registers: an `on_cpu` flag found
    // set here was left so by a fault, and is overwritten. (A spin on it stood here, for a migration path that
    // does not exist; in the campaign a skipped instruction left a task's flag set, and the next pick of that task
    // spun with interrupts off forever, failing every task that reached it.)
    next.set_on_cpu(true);
    cpu.idling.store(next.is_idle(), Ordering::Release);
    let next_stack_pointer = next.saved_stack_pointer();
    // SAFETY: interrupts are disabled and `cpu` is this CPU's state; the closures only move references (the
    // `previous` slot is empty here: `finish_switch` above took it, so nothing is dropped).
    let previous_slot = unsafe {
        let previous = cpu.current.with(|current| current.replace(next));
        cpu.previous.with(|slot| {
            *slot = previous;
            slot.as_ref().map(|previous| previous.saved_stack_pointer_slot())
        })
    };
    let previous_slot = previous_slot.expect("schedule: switching with no current task");
    // `previous_slot` points into the `Task` kept alive by `cpu.previous` until the next task finished the switch;
    // `next_stack_pointer` was saved by `context_switch` when `next` last switched away (its `on_cpu` flag was
    // clear) or written by `prepare_first_frame`, on a stack owned by `next` that stays mapped until it is reaped.
    // SAFETY: interrupts are disabled, and both pointers are valid as just described.
    unsafe { task::context_switch(previous_slot, next_stack_pointer) };
}

/// The task (id number) that [`set_switch_fault_once`] asked to fault when it next resumes from a switch, before
/// finishing it, and the hook it then calls (null: none; one relaxed load per switch otherwise).
static SWITCH_FAULT_TASK: AtomicU64 = AtomicU64::new(0);
static SWITCH_FAULT_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// For tests: task `id`, the next time it resumes from a switch, calls `fault` right after `context_switch`
/// returns to it and before it finishes the switch (so its predecessor keeps `on_cpu` set): the fault the
/// campaign's skipped compare in `schedule` caused (`this_cpu` panicked there). The task must be unwound and its
/// CPU must go on scheduling, the predecessor included.
pub fn set_switch_fault_once(id: TaskId, fault: fn()) {
    SWITCH_FAULT_TASK.store(id.value(), Ordering::Release);
    SWITCH_FAULT_HOOK.store(fault as *mut (), Ordering::Release);
}

/// Whether the fault asked for by [`set_switch_fault_once`] is still to happen.
pub fn switch_fault_pending() -> bool {
    !SWITCH_FAULT_HOOK.load(Ordering::Acquire).is_null()
}

#[inline(always)]
fn fault_after_switch_if_asked() {
    if !SWITCH_FAULT_HOOK.load(Ordering::Relaxed).is_null() {
        fault_after_switch_slow();
    }
}

#[inline(never)]
fn fault_after_switch_slow() {
    // SAFETY: interrupts are disabled (inside `schedule`) and this is this CPU's state; the closure only reads.
    let current = unsafe { this_cpu().current.with(|current| current.as_ref().map(|task| task.id().value())) };
    if current == Some(SWITCH_FAULT_TASK.load(Ordering::Acquire)) {
        crate::runqueue_lock::run_hook_once(&SWITCH_FAULT_HOOK);
    }
}

/// Completes a switch on the task that now runs: the previous task is off the CPU; if it exited, its stack and
/// other resources are freed here (it could not free the stack it ran on). Interrupts must be disabled.
pub(crate) fn finish_switch(cpu: &PerCpu) {
    // SAFETY: interrupts are disabled (the caller's contract: `schedule`, and the first code of a new task, which
    // starts with them disabled) and `cpu` is this CPU's state.
    let previous = unsafe { cpu.previous.with(Option::take) };
    if let Some(previous) = previous {
        previous.set_on_cpu(false);
        // Never an idle task, whatever its state word says: an idle task does not exit, and reaping one frees the
        // stack its CPU's idle loop runs on (in the campaign, a flipped bit in the idle task's state byte read as
        // `Exited`; every later idle-loop restart faulted on the unmapped stack). Its state is rewritten when it
        // is next switched to.
        if previous.state() == RunState::Exited && !previous.is_idle() {
            previous.reap();
            cpu.assigned.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// How many times a kill of a task caught running in an interrupt handler (preempted by the timer, or reached by
/// the kill's reschedule IPI) is deferred before the task is ended without unwinding: about
/// `KILL_DEFERRAL_LIMIT` timer ticks (10 ms each), the bound a task gets to reach a safe point where it can be
/// unwound soundly (see [`end_if_killed`]).
pub const KILL_DEFERRAL_LIMIT: u32 = 10;

/// The kill's safe point: a task that was asked to end unwinds from here (every `Drop` on its stack runs, then
/// its entry's `catch_unwind` ends it with `Failed(Killed)`), before it returns to its own code. Called with
/// interrupts disabled and no lock held, from [`schedule`] and [`kill_point`].
///
/// Why only here: unwinding is sound only from a *call*. Every frame above a call site is stopped at a call, so
/// each landing pad that runs sees the state its code had committed to (a `Vec` whose pointer was stored, a
/// guard that was taken). A task interrupted at an arbitrary instruction is not in that state: between `realloc`
/// returning and `RawVec` storing the new pointer, unwinding from the interrupted instruction makes a caller's
/// landing pad free the old block a second time (the heap corruption of `yes | upper | head 2`). So a task
/// switched out from an interrupt handler (its stack holds an interrupt frame, and below it an arbitrary
/// instruction) is never unwound: its kill is deferred to its next call into the scheduler (a yield, a block, a
/// sleep, a channel operation that waits) or to [`kill_point`] (called by the applications' stdio). A task that
/// reaches none within [`KILL_DEFERRAL_LIMIT`] deferrals (a busy loop) is ended **without unwinding**: nothing
/// on its stack is dropped (what it owned leaks, which is safe; running drops on half-updated state is not),
/// registered `sync::Mutex` locks are released and its stack is freed by [`exit_current`]. Spin locks are never
/// held there: interrupts are masked in their critical sections, and preemption-disabled sections are never
/// switched out from an interrupt (see `schedule_from_interrupt`). Tasks without a `catch_unwind` at their entry
/// (adopted threads) end without unwinding.
///
/// While an unwind is already in flight on the task (a panic, a fault, or the kill itself, counted through the
/// unwinder's hooks: see [`init_bsp`](crate::init_bsp)), safe points reached from its landing pads do nothing.
fn end_if_killed() {
    let Some(current) = current_task() else { return };
    if !current.is_kill_requested()
        || current.is_idle()
        || current.state() != RunState::Running
        || current.is_unwinding()
        || current.is_body_finished()
    {
        return;
    }
    let spawned = current.kind() == task::TaskKind::Spawned;
    if current.is_in_interrupt() && spawned && current.defer_kill() < KILL_DEFERRAL_LIMIT {
        return;
    }
    if current.is_in_interrupt() || !spawned {
        if spawned {
            log::warn!(
                "task {} \"{}\": killed without unwinding (no safe point within {KILL_DEFERRAL_LIMIT} ticks); \
                 what its stack owned is leaked",
                current.id(),
                current.name()
            );
        }
        drop(current);
        exit_current(ExitValue::Failed(FailureReason::Killed));
    }
    let options = unwind_options(&current);
    drop(current);
    unwind::start_unwinding(unwind::UnwindCause::Killed, options)
}

/// A kill safe point outside the scheduler, for code that may run long without calling it (the applications'
/// stdio calls it on every read and write): if the current task was killed, it unwinds from this call (every
/// `Drop` on its stack runs) and ends `Failed(Killed)`; otherwise it returns at once. Sound for the reason given
/// at [`end_if_killed`]: the task is at a call. Does nothing inside a preemption-disabled section (its holder
/// is killed when it re-enables preemption), in an unwind already in flight, or with no current task.
///
/// Must not be called while holding a spin lock whose guard is not on the stack as a value (a `mem::forget`
/// guard stays locked as after any unwind).
pub fn kill_point() {
    let requested = current_task().is_some_and(|task| task.is_kill_requested() && !task.is_preempt_disabled());
    if !requested {
        return;
    }
    let interrupts_were_enabled = interrupts::disable();
    end_if_killed();
    interrupts::restore(interrupts_were_enabled);
}

/// Unwind options confined to `task`'s stack.
fn unwind_options(task: &TaskRef) -> unwind::UnwindOptions {
    unwind::UnwindOptions {
        stack_bounds: task.stack_bounds().map(|bounds| bounds.start as u64..bounds.end as u64),
        ..unwind::UnwindOptions::default()
    }
}

/// The unwinder's start hook: counts an unwind in flight on the current task.
pub(crate) fn unwind_started() {
    if let Some(task) = current_task() {
        task.unwind_started();
    }
}

/// The unwinder's catch hook: an unwind on the current task was caught.
pub(crate) fn unwind_caught() {
    if let Some(task) = current_task() {
        task.unwind_caught();
    }
}

/// Gives up the CPU to the next runnable task (by the policy's choice); returns at once if there is none.
pub fn yield_now() {
    schedule();
}

/// Puts `task` on its CPU's runqueue (its state must already be `Runnable`).
pub(crate) fn enqueue(task: &TaskRef) {
    let cpu = task.cpu();
    CPUS[cpu].runqueue.lock().push_back(task.clone());
    kick(cpu);
}

/// Wakes a `Blocked` task: makes it `Runnable` and puts it on its CPU's runqueue. Returns whether it was blocked
/// (false: it is running, runnable, sleeping or exited, and nothing changed).
pub fn unblock(task: &TaskRef) -> bool {
    if !task.transition(RunState::Blocked, RunState::Runnable) {
        return false;
    }
    enqueue(task);
    true
}

/// Marks the current task `Blocked` and returns it, or `None` if there is no current task or it is the idle task
/// (which must never block). The caller must make the task findable by its waker (e.g. push it on a wait queue)
/// *under the same lock* that the waker takes, then drop that lock and call [`schedule`]. A wake-up that comes
/// between the two makes `schedule` return at once.
pub fn block_current() -> Option<TaskRef> {
    let current = current_task()?;
    if current.is_idle() || !current.transition(RunState::Running, RunState::Blocked) {
        return None;
    }
    Some(current)
}

/// Releases every blocking lock still registered with `task` (see `task::HeldLock`): on the failing task, once its
/// stack was unwound (or abandoned), for the locks whose guards' drops did not run.
pub(crate) fn release_held_locks(task: &TaskRef) {
    let held = task.take_held_locks();
    if !held.is_empty() {
        log::warn!("task {} \"{}\": releasing {} lock(s) its failure left held", task.id(), task.name(), held.len());
    }
    for lock in held {
        lock.force_release(task.id());
    }
}

/// Ends the current task with `value`: records it, wakes the joiner, and switches away for good. The next task on
/// this CPU frees the stack. A `Failed` task first force-releases the locks still registered with it
/// ([`release_held_locks`]); a completed one does not (a guard it forgot with `mem::forget` stays locked, as in
/// `std`).
///
/// # Panics
/// If there is no current task or it is an idle task.
pub fn exit_current(value: AnyExitValue) -> ! {
    interrupts::disable();
    let current = current_task().expect("exit_current: tasking is not running on this CPU");
    assert!(!current.is_idle(), "exit_current: an idle task cannot exit");
    if value.failure().is_some() {
        release_held_locks(&current);
    }
    let joiner = current.set_exited(value);
    if let Some(joiner) = joiner {
        unblock(&joiner);
    }
    drop(current);
    // `schedule` never returns to an exited task; one that did was misled by a fault (in the campaign a skipped
    // instruction in `schedule` made it stay on the exited task, and the `unreachable!` that stood here then
    // panicked where nothing can unwind). The task is `Exited` and in no queue: switching away again is what the
    // call was for, and the next task reaps it.
    loop {
        schedule();
    }
}

/// Whether the exception path ends faulting tasks through [`fail_current`] (set by whoever installs that hook).
static TASK_FAULT_RECOVERY: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Records that the CPU-exception hook now ends a faulting task with [`fail_current`] (and classifies a page
/// fault in `Task::stack_guard_contains` as `FailureReason::StackOverflow`) instead of stopping the machine.
/// Tests that provoke faults run only once this is set.
pub fn set_task_fault_recovery(enabled: bool) {
    TASK_FAULT_RECOVERY.store(enabled, Ordering::Release);
}

/// Whether [`set_task_fault_recovery`] enabled fault recovery.
pub fn task_fault_recovery() -> bool {
    TASK_FAULT_RECOVERY.load(Ordering::Acquire)
}

/// Why [`fail_current`] could not end the current task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotInTask {
    /// Tasking has not started on this CPU.
    NoTask,
    /// The current task is the CPU's idle task, which must not die.
    IdleTask,
}

/// Ends the current task as failed with `reason` and switches away for good; for the exception path (a CPU
/// exception in a task) and for the unwinder once it has cleaned a failed task's stack up. Interrupts may be in
/// any state; this function never returns to the caller in the success case.
///
/// # Errors
/// [`NotInTask`] if there is no task to end on this CPU (the caller should then report and stop the CPU).
pub fn fail_current(reason: FailureReason) -> Result<core::convert::Infallible, NotInTask> {
    match current_task() {
        None => Err(NotInTask::NoTask),
        Some(task) if task.is_idle() => Err(NotInTask::IdleTask),
        Some(task) => {
            log::warn!("task {} \"{}\" failed: {reason}", task.id(), task.name());
            drop(task);
            exit_current(ExitValue::Failed(reason))
        }
    }
}

/// Why [`kill`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillError {
    /// No task with this id exists (or it was already reaped).
    NoSuchTask(TaskId),
    /// The task is a CPU's idle task.
    IdleTask(TaskId),
    /// The task has already exited.
    AlreadyExited(TaskId),
}

impl core::fmt::Display for KillError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KillError::NoSuchTask(id) => write!(f, "no task with id {id}"),
            KillError::IdleTask(id) => write!(f, "task {id} is an idle task and cannot be killed"),
            KillError::AlreadyExited(id) => write!(f, "task {id} has already exited"),
        }
    }
}

/// Asks task `id` to end. It ends with `ExitValue::Failed(FailureReason::Killed)` at its next safe point (a call
/// into the scheduler or [`kill_point`], see [`end_if_killed`]), unwound there. A blocked or sleeping target is
/// woken for that; a running one unwinds at its next yield, blocking call or stdio call (its CPU gets a
/// reschedule IPI, which only counts a deferral: an interrupted instruction is never unwound from); one that
/// reaches no safe point within [`KILL_DEFERRAL_LIMIT`] ticks is ended without unwinding. Killing the current
/// task takes effect at its next safe point.
///
/// # Errors
/// [`KillError`] for a nonexistent id, an idle task, or a task that already exited.
pub fn kill(id: TaskId) -> Result<(), KillError> {
    let task = task::task_by_id(id).ok_or(KillError::NoSuchTask(id))?;
    if task.is_idle() {
        return Err(KillError::IdleTask(id));
    }
    if task.state() == RunState::Exited {
        return Err(KillError::AlreadyExited(id));
    }
    if task.request_kill() {
        return Ok(());
    }
    if task.transition(RunState::Blocked, RunState::Runnable) {
        enqueue(&task);
    } else if task.transition(RunState::Sleeping, RunState::Runnable) {
        // Drop its sleep-list entry now, so the `Task` is not kept alive until its deadline.
        CPUS[task.cpu()].sleepers.lock().retain(|sleeper| *sleeper != task);
        enqueue(&task);
    } else if task.cpu() != current_cpu() {
        crate::cpus::interrupt(task.cpu());
    }
    Ok(())
}
