//! Tasks: the unit of execution, with guard-paged stacks, run states, exit values and the context switch.
//!
//! # Purpose
//! This is the lower layer of tasking. It defines what a task *is*; the `scheduler` cell decides when tasks run,
//! and the policy cells (`scheduler_round_robin`, `scheduler_priority`, both crate `scheduler_policy`) decide which
//! one. The [`RunQueue`] type and the [`SchedulerPolicy`] trait live here, below both, so the crate graph stays
//! acyclic: `task` <- `scheduler_policy` <- `scheduler` <- `sync`, `spawn`, `channel`.
//!
//! # Key types
//! - [`Task`] / [`TaskRef`] (an `Arc<Task>`), [`TaskId`], [`RunState`] (with its transition rules), [`TaskKind`].
//! - [`Stack`]: 64 KiB by default ([`DEFAULT_STACK_PAGES`]) with an unmapped guard page below it.
//! - [`context_switch`] and [`prepare_first_frame`]: callee-saved registers only (soft-float kernel).
//! - [`ExitValue`] / [`AnyExitValue`] and [`FailureReason`] (panic, exception, stack overflow, killed).
//! - The task table: [`all_tasks`], [`task_by_id`] (what `ps` and `kill` use).
//! - [`IrqSafeMutex`] (from the `irq_safe` lib): the spin lock, held with interrupts disabled, that every tasking
//!   lock uses.
//! - [`HeldLock`]: the per-task list of blocking locks held, force-released when a task dies without its drops
//!   (a CPU fault skips the faulting frame's landing pads; a kill without a safe point skips all).
//!
//! # Life of a task
//! 1. `Task::new_spawned` allocates nothing itself: the caller passes a [`Stack`]; the first frame is written so
//!    that the first switch to the task runs the scheduler's entry function, which takes the [`TaskBody`].
//! 2. The task is inserted into the task table and (by the scheduler) into a runqueue, `Runnable`.
//! 3. It runs, blocks, sleeps, is preempted, following the transitions documented at [`RunState`].
//! 4. It ends: [`Task::set_exited`] stores the exit value and wakes the joiner; after the switch away, the next
//!    task on the same CPU calls [`Task::reap`], which frees the stack (a task cannot free the stack it runs on)
//!    and removes it from the table. The `Task` itself is freed when the last `TaskRef` (the joiner's) goes.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[cfg(target_os = "none")]
mod context;
mod exit;
mod held;
mod reaped;
mod runqueue;
#[cfg(target_os = "none")]
mod stack;
mod task;

#[cfg(target_os = "none")]
pub use context::{TaskEntry, context_switch, prepare_first_frame};
pub use exit::{AnyExitValue, ExceptionKind, ExitValue, FailureReason};
pub use held::HeldLock;
pub use irq_safe::{IrqSafeMutex, IrqSafeMutexGuard, interrupts};
pub use reaped::{CAPACITY as REAPED_STACKS_REMEMBERED, was_reaped_stack};
pub use runqueue::{
    CountersError, POLICY_STATISTICS_PATH, PolicyCounters, PolicyData, PolicyStatistics, PolicyTransferError, RunQueue,
    SchedulerPolicy, transfer_policy_counters,
};
#[cfg(target_os = "none")]
pub use stack::{
    DEFAULT_STACK_PAGES, POOL_CAPACITY as STACK_POOL_CAPACITY, Stack, StackError, drain_pool as drain_stack_pool,
    pooled_stacks,
};
pub use task::{
    DEFAULT_PRIORITY, FailureCallback, RunState, Task, TaskBody, TaskId, TaskKind, TaskParams, TaskRef, TasksView,
    all_tasks, release_task_table_if_held_within, task_by_id, task_count, task_table_is_locked, try_all_tasks,
    try_with_tasks, with_task_table_held,
};

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn adopted(name: &str) -> TaskRef {
        let params = TaskParams { name: String::from(name), cpu: 0, pinned: false, priority: DEFAULT_PRIORITY };
        Task::adopt_current(params, TaskKind::Adopted)
    }

    #[test]
    fn transitions_are_compare_and_swap() {
        let task = adopted("t");
        assert_eq!(task.state(), RunState::Running);
        assert!(!task.transition(RunState::Blocked, RunState::Runnable));
        assert!(task.transition(RunState::Running, RunState::Blocked));
        assert!(task.transition(RunState::Blocked, RunState::Runnable));
        assert_eq!(task.state(), RunState::Runnable);
        assert!(task_by_id(task.id()).is_some());
        task.reap();
        assert!(task_by_id(task.id()).is_none());
    }

    #[test]
    fn join_registers_the_joiner_until_exit() {
        let target = adopted("target");
        let joiner = adopted("joiner");
        assert!(target.take_exit_value_or_block(&joiner).is_none());
        assert_eq!(joiner.state(), RunState::Blocked);
        let woken = target.set_exited(ExitValue::Failed(FailureReason::Killed));
        assert_eq!(woken.as_ref(), Some(&joiner));
        let value = target.take_exit_value_or_block(&joiner).expect("exit value after exit");
        assert_eq!(value.failure(), Some(&FailureReason::Killed));
        assert!(target.take_exit_value_or_block(&joiner).is_none(), "the exit value is taken once");
    }

    #[test]
    fn the_table_view_names_its_tasks_by_address_only() {
        let task = adopted("viewed");
        let damaged = (task.as_ptr() as usize ^ (1 << 52)) as *const Task;
        let seen = try_with_tasks(1_000_000, |tasks| {
            (tasks.contains_ptr(task.as_ptr()), tasks.contains_ptr(damaged), tasks.iter().any(|entry| *entry == task))
        });
        assert_eq!(seen, Some((true, false, true)), "the task is found by address, a damaged address is not");
        let held = try_with_tasks(1_000_000, |_| try_with_tasks(3, |_| ()));
        assert_eq!(held, Some(None), "a bounded attempt gives up while the table is held");
    }
}
