//! Sleeping, the timer tick, and the reschedule IPI.
//!
//! Each CPU keeps its sleeping tasks in a [`deadline_queue::DeadlineQueue`] keyed by the TSC time (ns) they are
//! due. Every timer tick and every scheduling decision on that CPU moves the expired ones to the runqueue, so a
//! sleeper wakes at most one tick late (plus the time the tasks ahead of it in the runqueue run). Before a timer
//! exists, the idle loop calls `schedule` continuously, so sleeping works cooperatively too.

use core::sync::atomic::Ordering;
use core::time::Duration;

use task::{RunState, interrupts};

use crate::cpus::{PerCpu, this_cpu};
use crate::switch::{current_task, schedule};

/// Moves every sleeper of `cpu` whose deadline has passed to its runqueue. Interrupts must be disabled.
pub(crate) fn wake_expired_sleepers(cpu: &PerCpu) {
    let next_deadline = cpu.next_deadline.load(Ordering::Acquire);
    // No sleeper (`u64::MAX`): no need to read the clock.
    if next_deadline == u64::MAX {
        return;
    }
    let now = tsc::now_ns();
    if now < next_deadline {
        return;
    }
    let mut sleepers = cpu.sleepers.lock_interrupts_disabled();
    while let Some(task) = sleepers.pop_expired(now) {
        if task.transition(RunState::Sleeping, RunState::Runnable) {
            cpu.runqueue.lock_interrupts_disabled().push_back(task);
        }
    }
    cpu.next_deadline.store(sleepers.next_deadline().unwrap_or(u64::MAX), Ordering::Release);
}

/// Blocks the current task until the TSC clock (`tsc::now_ns`) reaches `deadline_ns`. Without a current task (before
/// tasking, or in the idle task) it busy-waits instead.
pub fn sleep_until_ns(deadline_ns: u64) {
    let current = current_task().filter(|task| !task.is_idle());
    let Some(current) = current else {
        while tsc::now_ns() < deadline_ns {
            core::hint::spin_loop();
        }
        return;
    };
    let interrupts_were_enabled = interrupts::disable();
    if tsc::now_ns() < deadline_ns && current.transition(RunState::Running, RunState::Sleeping) {
        let cpu = this_cpu();
        let mut sleepers = cpu.sleepers.lock();
        sleepers.insert(deadline_ns, current.clone());
        cpu.next_deadline.fetch_min(deadline_ns, Ordering::AcqRel);
    }
    drop(current);
    schedule();
    interrupts::restore(interrupts_were_enabled);
}

/// Blocks the current task for at least `duration` (woken within one timer tick after it elapses, once the
/// tasks ahead of it have had their turn).
pub fn sleep(duration: Duration) {
    let nanoseconds = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    sleep_until_ns(tsc::now_ns().saturating_add(nanoseconds));
}

/// The timer interrupt's work, to be called by the timer handler of every CPU **after** it sent the EOI, with
/// interrupts disabled: counts the tick, wakes expired sleepers
/// and preempts the current task (time slice: one tick). May switch to another task before returning; the
/// interrupted task resumes (returning from this call and from the handler) when it is scheduled again.
pub fn on_timer_tick() {
    let cpu = this_cpu();
    let now = tsc::now_ns();
    if cpu.ticks.fetch_add(1, Ordering::Relaxed) == 0 {
        cpu.first_tick_ns.store(now, Ordering::Relaxed);
    }
    cpu.last_tick_ns.store(now, Ordering::Relaxed);
    schedule_from_interrupt();
}

/// `schedule` from an interrupt handler: marks the current task as switched out from one (a kill then waits for
/// a safe point outside the handler, see `end_if_killed`). Not while the task has preemption disabled
/// (`crate::preempt`): the switch is deferred to its `preempt_enable`; nor while the interrupted code is inside a
/// heap operation on this CPU's lists: the switch is deferred to its end (`heap_deferred_preemption`).
pub(crate) fn schedule_from_interrupt() {
    if memory::defer_preemption_if_pinned() {
        // Inside a heap operation on this CPU's own lists (`memory::heap_cpu`): the heap makes the switch when it
        // ends, through `heap_deferred_preemption`.
        wake_expired_sleepers(this_cpu());
        return;
    }
    if let Some(current) = current_task() {
        if current.is_preempt_disabled() {
            // In a preemption-disabled section: switch at its end (`preempt_enable`); still wake the sleepers due.
            current.set_preempt_pending();
            wake_expired_sleepers(this_cpu());
            return;
        }
        current.set_in_interrupt(true);
    }
    schedule();
    if let Some(current) = current_task() {
        current.set_in_interrupt(false);
    }
}

/// The heap's hook (`memory::set_deferred_preemption_hook`) for a switch that a tick or reschedule IPI deferred
/// while the code on this CPU was inside a heap operation: the switch the interrupt would have made, made now, as
/// from the interrupt (so a kill still waits for a safe point: the caller of the allocator may be between getting
/// a block and storing it). Nothing if interrupts are off (no tick could have come; the flag was stale).
pub(crate) fn heap_deferred_preemption() {
    let interrupts_were_enabled = interrupts::disable();
    if interrupts_were_enabled {
        schedule_from_interrupt();
    }
    interrupts::restore(interrupts_were_enabled);
}

/// The reschedule IPI's work, to be called by its handler after the EOI, with interrupts disabled: reschedules (an
/// idle CPU picks up newly queued work; a killed task on this CPU reaches its safe point).
pub fn on_reschedule_ipi() {
    schedule_from_interrupt();
}
