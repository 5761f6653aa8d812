//! Priority scheduling policy: each CPU runs its highest-priority runnable task; among equal priorities, the one
//! that became runnable first (FIFO), so equal-priority tasks share the CPU round-robin.
//!
//! One of two interchangeable cells that build crate `scheduler_policy` (the other, the default, is
//! `scheduler_round_robin`); swap it in with `swap scheduler_round_robin scheduler_priority`. Priorities are the
//! tasks' own policy data (`Task::priority`, `Task::set_priority`, `TaskBuilder::priority`), so they survive
//! swaps in both directions. Strict priority: a runnable higher-priority task always wins, so a busy high-priority
//! task starves lower ones (the idle task is never in the runqueue).
//!
//! # State
//! The policy's own state is [`STATISTICS`]: the counters every policy keeps (a [`PolicyCounters`], first) and the
//! number of *overtakes* (decisions that ran a task other than the oldest runnable one). The runqueues belong to the
//! scheduler core, so after `swap scheduler_round_robin scheduler_priority` the round-robin order is the initial
//! order among equal priorities; the tasks' priorities live in the tasks and are kept across swaps both ways.
//! [`cell_state_transfer`] carries the decision counters over from the policy this cell replaces (the round-robin
//! policy's `STATISTICS` is smaller, so the default same-size copy cannot), case study (a) of the Theseus paper.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};

use task::{PolicyCounters, PolicyData, PolicyStatistics, RunQueue, SchedulerPolicy, Task, TaskRef};

/// The priority policy (its state is [`STATISTICS`]).
pub struct Priority;

impl SchedulerPolicy for Priority {
    fn name(&self) -> &'static str {
        "priority"
    }

    fn pick_next(&self, runqueue: &mut RunQueue) -> Option<TaskRef> {
        let mut best: Option<(usize, u8)> = None;
        let mut index = 0;
        while let Some(task) = runqueue.get(index) {
            let priority = task.priority();
            // Strictly greater: the oldest task wins among equals.
            if best.is_none_or(|(_, best_priority)| priority > best_priority) {
                best = Some((index, priority));
            }
            index += 1;
        }
        let picked = best.and_then(|(index, _)| runqueue.remove(index));
        STATISTICS.counters.count(picked.is_some());
        if best.is_some_and(|(index, _)| index > 0) {
            STATISTICS.overtakes.fetch_add(1, Ordering::Relaxed);
        }
        picked
    }

    fn describe(&self, task: &Task) -> PolicyData {
        PolicyData { priority: Some(task.priority()) }
    }

    fn statistics(&self) -> PolicyStatistics {
        STATISTICS.counters.statistics(Some(STATISTICS.overtakes.load(Ordering::Relaxed)))
    }
}

/// What the priority policy counts (`#[repr(C)]`, the common counters first).
#[repr(C)]
pub struct PriorityStatistics {
    /// Decisions made, idle decisions, and decisions inherited by the last swap.
    pub counters: PolicyCounters,
    /// Decisions that picked a task other than the oldest runnable one.
    pub overtakes: AtomicU64,
}

/// The policy's state (carried over by a swap, see [`cell_state_transfer`]). Private: an exported static may not
/// change size across a swap, and the two policies' statistics differ in size.
static STATISTICS: PriorityStatistics =
    PriorityStatistics { counters: PolicyCounters::new(), overtakes: AtomicU64::new(0) };

static POLICY: Priority = Priority;

/// State transfer, called by a swap that puts this cell in place of a policy cell (inside the swap's quiesced
/// phase, after the default copy of same-named, same-sized objects): [`STATISTICS`]'s counters take over the old
/// policy's (see `task::transfer_policy_counters`), so `ps` shows them carried on and how many were inherited.
///
/// # Errors
/// The reason, if the old policy's statistics cannot be read (the swap then changes nothing).
pub fn cell_state_transfer(transfer: &cell_namespace::StateTransfer<'_>) -> Result<(), alloc::string::String> {
    task::transfer_policy_counters(transfer, &STATISTICS.counters)
        .map(|_inherited_decisions| ())
        .map_err(|error| alloc::format!("{error}"))
}

/// The policy. The scheduler core calls this afresh for every decision (never caches it), so after a swap the
/// relocation of that call points to the new cell's `policy`.
#[inline(never)]
pub fn policy() -> &'static dyn SchedulerPolicy {
    &POLICY
}

#[cfg(test)]
mod tests {
    use super::*;
    use task::{TaskKind, TaskParams};

    fn task(name: &str, priority: u8) -> TaskRef {
        let params = TaskParams { name: name.into(), cpu: 0, pinned: false, priority };
        Task::adopt_current(params, TaskKind::Adopted)
    }

    #[test]
    fn highest_priority_first_fifo_among_equals() {
        let mut runqueue = RunQueue::new();
        let low = task("low", 1);
        let high_first = task("high1", 50);
        let middle = task("middle", 20);
        let high_second = task("high2", 50);
        for task in [&low, &high_first, &middle, &high_second] {
            runqueue.push_back(task.clone());
        }
        let order: Vec<TaskRef> = core::iter::from_fn(|| policy().pick_next(&mut runqueue)).collect();
        assert_eq!(order, vec![high_first, high_second, middle, low.clone()]);
        assert_eq!(policy().describe(&low).priority, Some(1));
        low.set_priority(99);
        assert_eq!(policy().describe(&low).priority, Some(99));
        assert_eq!(policy().name(), "priority");
    }

    #[test]
    fn empty_runqueue_gives_none() {
        assert!(policy().pick_next(&mut RunQueue::new()).is_none());
    }
}
