//! [`RunQueue`] and [`SchedulerPolicy`]: the interface between the scheduler core and a policy cell.
//!
//! The scheduler core owns one runqueue per CPU and hands it to the policy for each decision, so a policy keeps no
//! task state of its own and swapping the policy cell loses no task. Policy data (the priority) lives in the
//! [`Task`] itself.

use alloc::collections::VecDeque;
use core::fmt;

use crate::task::{Task, TaskRef};

/// The runnable tasks of one CPU, in the order they became runnable (oldest first). The running task and the idle
/// task are not in it.
#[derive(Default)]
pub struct RunQueue {
    tasks: VecDeque<TaskRef>,
}

impl RunQueue {
    /// An empty runqueue.
    pub const fn new() -> Self {
        RunQueue { tasks: VecDeque::new() }
    }

    /// The number of queued tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task is queued.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Appends a task that became runnable (the scheduler core does this; policies only pick).
    pub fn push_back(&mut self, task: TaskRef) {
        self.tasks.push_back(task);
    }

    /// Removes and returns the oldest task.
    pub fn pop_front(&mut self) -> Option<TaskRef> {
        self.tasks.pop_front()
    }

    /// Removes and returns the task at `index` (0 = oldest).
    pub fn remove(&mut self, index: usize) -> Option<TaskRef> {
        self.tasks.remove(index)
    }

    /// The task at `index` (0 = oldest).
    pub fn get(&self, index: usize) -> Option<&TaskRef> {
        self.tasks.get(index)
    }

    /// Whether `task` is queued.
    pub fn contains(&self, task: &TaskRef) -> bool {
        self.tasks.contains(task)
    }
}

/// What a policy reports about a task for `ps`. Owned data only: nothing in it may point into the policy cell,
/// which a swap can unload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyData {
    /// The priority, if the policy uses priorities.
    pub priority: Option<u8>,
}

impl fmt::Display for PolicyData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.priority {
            Some(priority) => write!(f, "prio {priority}"),
            None => write!(f, "-"),
        }
    }
}

/// A scheduling policy: which runnable task a CPU runs next.
///
/// Implemented by a swappable cell (crate name `scheduler_policy`, function `scheduler_policy::policy()`). The
/// scheduler core obtains the policy afresh for every decision and calls it only with interrupts disabled, so a
/// stop-the-world swap never finds a CPU inside the old policy's code, and no reference into the old cell (vtable,
/// static) survives the swap.
pub trait SchedulerPolicy: Sync {
    /// The policy's name, e.g. `round_robin` (copy it before the next swap; it points into the policy cell).
    fn name(&self) -> &'static str;

    /// Removes and returns the task to run next, or `None` to run the idle task.
    fn pick_next(&self, runqueue: &mut RunQueue) -> Option<TaskRef>;

    /// What this policy knows about `task`, for `ps`.
    fn describe(&self, task: &Task) -> PolicyData;
}
