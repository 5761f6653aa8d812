//! Priority scheduling policy: each CPU runs its highest-priority runnable task; among equal priorities, the one
//! that became runnable first (FIFO), so equal-priority tasks share the CPU round-robin.
//!
//! One of two interchangeable cells that build crate `scheduler_policy` (the other, the default, is
//! `scheduler_round_robin`); swap it in with `swap scheduler_round_robin scheduler_priority`. Priorities are the
//! tasks' own policy data (`Task::priority`, `Task::set_priority`, `TaskBuilder::priority`), so they survive
//! swaps in both directions; the policy itself is stateless. Strict priority: a runnable higher-priority task always
//! wins, so a busy high-priority task starves lower ones (the idle task is never in the runqueue).
#![cfg_attr(not(test), no_std)]

use task::{PolicyData, RunQueue, SchedulerPolicy, Task, TaskRef};

/// The priority policy (stateless).
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
        runqueue.remove(best?.0)
    }

    fn describe(&self, task: &Task) -> PolicyData {
        PolicyData { priority: Some(task.priority()) }
    }
}

static POLICY: Priority = Priority;

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
