//! What the shell shows: the task list (`ps`) with each task's policy data, and the policy's name.

use alloc::string::String;
use alloc::vec::Vec;

use task::{PolicyData, PolicyStatistics, RunState, TaskId, TaskKind, interrupts};

/// One row of `ps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSummary {
    /// The task's id.
    pub id: TaskId,
    /// Its name.
    pub name: String,
    /// Its run state.
    pub state: RunState,
    /// The CPU it runs on or last ran on.
    pub cpu: usize,
    /// Whether it is pinned to that CPU.
    pub pinned: bool,
    /// Spawned, idle, or adopted (the boot thread).
    pub kind: TaskKind,
    /// What the current policy reports about it (e.g. its priority).
    pub policy_data: PolicyData,
    /// How many times a CPU switched to it.
    pub switches: u64,
}

impl TaskSummary {
    /// The column header matching this type's `Display` (one `ps` line).
    pub const HEADER: &'static str = "   ID NAME                 STATE     CPU  POLICY     SWITCHES";
}

impl core::fmt::Display for TaskSummary {
    /// One `ps` line, aligned with [`TaskSummary::HEADER`]; a pinned CPU is marked `*`, idle tasks `(idle)`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let pin = if self.pinned { "*" } else { " " };
        let name = if self.kind == TaskKind::Idle { alloc::format!("{} (idle)", self.name) } else { self.name.clone() };
        write!(
            f,
            "{:>5} {:<20} {:<9} {:>3}{pin} {:<10} {:>8}",
            self.id,
            name,
            self.state.name(),
            self.cpu,
            alloc::format!("{}", self.policy_data),
            self.switches
        )
    }
}

/// One summary per task that has not been reaped, ordered by id.
pub fn task_summaries() -> Vec<TaskSummary> {
    let tasks = task::all_tasks();
    let mut rows = Vec::with_capacity(tasks.len());
    for task in tasks {
        let interrupts_were_enabled = interrupts::disable();
        let policy_data = scheduler_policy::policy().describe(&task);
        interrupts::restore(interrupts_were_enabled);
        rows.push(TaskSummary {
            id: task.id(),
            name: String::from(task.name()),
            state: task.state(),
            cpu: task.cpu(),
            pinned: task.pinned_cpu().is_some(),
            kind: task.kind(),
            policy_data,
            switches: task.switch_count(),
        });
    }
    rows
}

/// The name of the policy in use (`round_robin` or `priority`), copied out of the policy cell.
pub fn policy_name() -> String {
    let interrupts_were_enabled = interrupts::disable();
    let name = String::from(scheduler_policy::policy().name());
    interrupts::restore(interrupts_were_enabled);
    name
}

/// The policy in use's own counters (decisions, and how many it inherited through the last policy swap).
pub fn policy_statistics() -> PolicyStatistics {
    let interrupts_were_enabled = interrupts::disable();
    let statistics = scheduler_policy::policy().statistics();
    interrupts::restore(interrupts_were_enabled);
    statistics
}
