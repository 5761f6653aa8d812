//! Round-robin scheduling policy (the default): each CPU runs its runnable tasks in the order they became runnable.
//!
//! One of two interchangeable cells that build crate `scheduler_policy` (the other is `scheduler_priority`); the
//! scheduler core calls [`policy`] for every decision, with interrupts disabled, and never keeps the result, so
//! `swap scheduler_round_robin scheduler_priority` changes the policy of every CPU at its next decision. The policy
//! has no state: the runqueues belong to the scheduler core, so a swap loses no task.
//!
//! Decision: take the oldest task of the runqueue. A preempted or yielding task is appended at the back by the
//! core, so every runnable task gets one time slice per round.
//!
//! # State
//! The policy's only state is [`STATISTICS`] (its decision counters, a [`PolicyCounters`], shown by `ps` as
//! `policy state: ...`). The runqueues (with their round-robin order) and the tasks' priorities belong to the
//! scheduler core and the tasks, so a policy swap keeps them as they are: the priority policy, FIFO among equal
//! priorities, starts from the round-robin order, and a swap back keeps every priority set meanwhile.
//! [`cell_state_transfer`] carries the counters over from whichever policy this cell replaces (case study (a): the
//! `scheduler-state` QEMU scenario checks that they survive both swaps).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use task::{PolicyCounters, PolicyData, PolicyStatistics, RunQueue, SchedulerPolicy, Task, TaskRef};

/// The round-robin policy (stateless).
pub struct RoundRobin;

impl SchedulerPolicy for RoundRobin {
    fn name(&self) -> &'static str {
        "round_robin"
    }

    fn pick_next(&self, runqueue: &mut RunQueue) -> Option<TaskRef> {
        let picked = runqueue.pop_front();
        STATISTICS.counters.count(picked.is_some());
        picked
    }

    fn describe(&self, _task: &Task) -> PolicyData {
        PolicyData { priority: None }
    }

    fn statistics(&self) -> PolicyStatistics {
        STATISTICS.counters.statistics(None)
    }
}

/// What the round-robin policy counts: only the counters every policy keeps (`#[repr(C)]`, counters first).
#[repr(C)]
pub struct RoundRobinStatistics {
    /// Decisions made, idle decisions, and decisions inherited by the last swap.
    pub counters: PolicyCounters,
}

/// The policy's state (carried over by a swap, see [`cell_state_transfer`]). Private: an exported static may not
/// change size across a swap, and the two policies' statistics differ in size.
static STATISTICS: RoundRobinStatistics = RoundRobinStatistics { counters: PolicyCounters::new() };

static POLICY: RoundRobin = RoundRobin;

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
    use task::{DEFAULT_PRIORITY, TaskKind, TaskParams};

    fn task(name: &str, priority: u8) -> TaskRef {
        let params = TaskParams { name: name.into(), cpu: 0, pinned: false, priority };
        Task::adopt_current(params, TaskKind::Adopted)
    }

    #[test]
    fn picks_in_fifo_order_ignoring_priority() {
        let mut runqueue = RunQueue::new();
        let tasks = [task("a", 1), task("b", 200), task("c", DEFAULT_PRIORITY)];
        for task in &tasks {
            runqueue.push_back(task.clone());
        }
        for expected in &tasks {
            assert_eq!(policy().pick_next(&mut runqueue).as_ref(), Some(expected));
        }
        assert!(policy().pick_next(&mut runqueue).is_none());
        assert_eq!(policy().name(), "round_robin");
        assert_eq!(policy().describe(&tasks[1]).priority, None);
    }
}
