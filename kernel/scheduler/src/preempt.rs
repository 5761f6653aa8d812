//! Preemption-disabled sections: [`preempt_disable`] / [`preempt_enable`], per task and nested.
//!
//! For long critical sections under a spin lock that must not be made interrupt-safe (the namespace's transaction
//! lock is held across a whole cell load, milliseconds): while the holder's count is non-zero, a timer tick or a
//! reschedule IPI does not switch it out (the switch is remembered and done at the matching [`preempt_enable`]),
//! and a kill waits for that point too, so the holder is never preempted or unwound from an interrupted instruction
//! with the lock held. A task on the same CPU that wants the lock therefore never spins against a preempted holder
//! (under the priority policy it would spin forever). Interrupts stay enabled; the holder may still block
//! voluntarily (then its CPU runs other tasks, and a contender there spins with preemption enabled).
//!
//! `cell_namespace` (in nano_core, below this cell) reaches these through
//! `cell_namespace::set_preemption_hooks`, installed by [`init_bsp`](crate::init_bsp).

use task::interrupts;

use crate::switch::{current_task, schedule};

/// Enters a preemption-disabled section of the current task (nested). Does nothing without a current task, or
/// in the idle task.
pub fn preempt_disable() {
    if let Some(task) = current_task().filter(|task| !task.is_idle()) {
        task.preempt_disable();
    }
}

/// Leaves a preemption-disabled section; at the outermost one, switches now if a tick or IPI wanted to meanwhile
/// (and, if the task was killed meanwhile, that switch is its safe point). With interrupts disabled the deferred
/// switch is left to the next tick instead.
pub fn preempt_enable() {
    let Some(task) = current_task().filter(|task| !task.is_idle()) else { return };
    let switch_now = task.preempt_enable();
    drop(task);
    if switch_now {
        if interrupts::are_enabled() {
            schedule();
        } else if let Some(task) = current_task() {
            task.set_preempt_pending();
        }
    }
}
