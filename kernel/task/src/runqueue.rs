//! [`RunQueue`] and [`SchedulerPolicy`]: the interface between the scheduler core and a policy cell.
//!
//! The scheduler core owns one runqueue per CPU and hands it to the policy for each decision, so a policy keeps no
//! task state of its own and swapping the policy cell loses no task. Policy data (the priority) lives in the
//! [`Task`] itself.

use alloc::collections::VecDeque;
use alloc::string::String;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::task::{Task, TaskRef};

/// The runnable tasks of one CPU, in the order they became runnable (oldest first). The running task and the idle
/// task are not in it.
///
/// The queue's length and capacity are kept twice: in the `VecDeque`'s own header and in two words of this struct,
/// updated by every operation. [`is_consistent`](Self::is_consistent) compares them, so a flipped bit in either
/// copy is seen before the queue is used (in the fault campaign, a flipped capacity word made a push write past
/// the buffer and a flipped length word made a pop return a garbage task). The check is symmetric: which copy was
/// damaged does not matter, and the queue is then rebuilt from the task table (the scheduler's repair).
#[derive(Default)]
pub struct RunQueue {
    tasks: VecDeque<TaskRef>,
    /// `tasks.len()`, kept by every operation.
    len: usize,
    /// `tasks.capacity()`, kept by every operation.
    capacity: usize,
}

impl RunQueue {
    /// An empty runqueue.
    pub const fn new() -> Self {
        RunQueue { tasks: VecDeque::new(), len: 0, capacity: 0 }
    }

    /// The number of queued tasks.
    #[inline]
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task is queued.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Whether the queue's header agrees with its second copy (length and capacity, see the type's docs) and the
    /// length fits the capacity. Reads four words; never touches the buffer.
    #[inline]
    pub fn is_consistent(&self) -> bool {
        let (len, capacity) = (self.tasks.len(), self.tasks.capacity());
        len == self.len && capacity == self.capacity && len <= capacity
    }

    /// Appends a task that became runnable (the scheduler core does this; policies only pick).
    #[inline]
    pub fn push_back(&mut self, task: TaskRef) {
        self.tasks.push_back(task);
        self.len = self.len.wrapping_add(1);
        self.capacity = self.tasks.capacity();
    }

    /// Removes and returns the oldest task.
    #[inline]
    pub fn pop_front(&mut self) -> Option<TaskRef> {
        let task = self.tasks.pop_front()?;
        self.len = self.len.wrapping_sub(1);
        Some(task)
    }

    /// Removes and returns the task at `index` (0 = oldest).
    pub fn remove(&mut self, index: usize) -> Option<TaskRef> {
        let task = self.tasks.remove(index)?;
        self.len = self.len.wrapping_sub(1);
        Some(task)
    }

    /// The task at `index` (0 = oldest).
    pub fn get(&self, index: usize) -> Option<&TaskRef> {
        self.tasks.get(index)
    }

    /// Whether `task` is queued.
    pub fn contains(&self, task: &TaskRef) -> bool {
        self.tasks.contains(task)
    }

    /// For tests of the repair: flips the bits of `mask` in the second copy of the length (the `VecDeque`'s own
    /// header is private; [`is_consistent`](Self::is_consistent) compares both copies, so damaging either is
    /// seen the same way).
    pub fn damage_length_copy_for_test(&mut self, mask: usize) {
        self.len ^= mask;
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

/// What a policy reports about its own state for `ps` (owned data only, like [`PolicyData`]).
///
/// Policies count their decisions; a policy swap carries the counts over through the new policy cell's
/// `cell_state_transfer` function, which also records how many decisions it inherited, so `ps` shows whether the
/// state survived the swap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyStatistics {
    /// Decisions (calls of `pick_next`) made so far, by this policy and by the ones it inherited its state from.
    pub decisions: u64,
    /// Of those, decisions that found the runqueue empty (the CPU ran its idle task).
    pub idle_decisions: u64,
    /// Decisions carried over from the previous policy by the last swap (0 if none happened, or it carried nothing).
    pub inherited_decisions: u64,
    /// Decisions that picked a task other than the oldest runnable one, if the policy reorders (priority).
    pub overtakes: Option<u64>,
}

impl fmt::Display for PolicyStatistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} decisions ({} idle", self.decisions, self.idle_decisions)?;
        if let Some(overtakes) = self.overtakes {
            write!(f, ", {overtakes} overtakes")?;
        }
        write!(f, "), {} inherited from the previous policy", self.inherited_decisions)
    }
}

/// The counters every policy cell keeps, first in its `scheduler_policy::STATISTICS` static, so that a policy
/// swap's `cell_state_transfer` can read the old policy's counters whatever the old policy keeps after them.
///
/// `#[repr(C)]`: three `u64` counters at offsets 0, 8 and 16 (24 bytes, 8-byte aligned) in every build.
#[repr(C)]
#[derive(Debug, Default)]
pub struct PolicyCounters {
    /// Decisions made (calls of `pick_next`), including the inherited ones.
    pub decisions: AtomicU64,
    /// Decisions that picked nothing (the idle task ran).
    pub idle_decisions: AtomicU64,
    /// Decisions inherited from the previous policy by the last swap.
    pub inherited_decisions: AtomicU64,
}

/// Why [`PolicyCounters::at`] refused an old policy's statistics object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountersError {
    /// The object is smaller than [`PolicyCounters`] (bytes).
    TooSmall {
        /// The object's size.
        size: usize,
    },
    /// The object's address is not 8-byte aligned.
    Misaligned {
        /// The object's address.
        address: usize,
    },
}

impl fmt::Display for CountersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSmall { size } => {
                write!(f, "the old statistics object has {size} bytes, fewer than the {} counters need", COUNTERS_SIZE)
            }
            Self::Misaligned { address } => write!(f, "the old statistics object at {address:#x} is misaligned"),
        }
    }
}

const COUNTERS_SIZE: usize = core::mem::size_of::<PolicyCounters>();

impl PolicyCounters {
    /// All zero.
    pub const fn new() -> Self {
        PolicyCounters {
            decisions: AtomicU64::new(0),
            idle_decisions: AtomicU64::new(0),
            inherited_decisions: AtomicU64::new(0),
        }
    }

    /// Counts one decision; `picked` is whether it picked a task.
    #[inline]
    pub fn count(&self, picked: bool) {
        self.decisions.fetch_add(1, Ordering::Relaxed);
        if !picked {
            self.idle_decisions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters as [`PolicyStatistics`], with the policy's own `overtakes` count if it has one.
    pub fn statistics(&self, overtakes: Option<u64>) -> PolicyStatistics {
        PolicyStatistics {
            decisions: self.decisions.load(Ordering::Relaxed),
            idle_decisions: self.idle_decisions.load(Ordering::Relaxed),
            inherited_decisions: self.inherited_decisions.load(Ordering::Relaxed),
            overtakes,
        }
    }

    /// Takes over `old`'s decision counts (a policy swap's state transfer) and records them as inherited; returns
    /// the number of decisions inherited.
    pub fn inherit(&self, old: &PolicyCounters) -> u64 {
        let decisions = old.decisions.load(Ordering::Relaxed);
        self.decisions.store(decisions, Ordering::Relaxed);
        self.idle_decisions.store(old.idle_decisions.load(Ordering::Relaxed), Ordering::Relaxed);
        self.inherited_decisions.store(decisions, Ordering::Relaxed);
        decisions
    }

    /// The counters at the start of an old policy cell's `STATISTICS` object of `size` bytes at `address`.
    ///
    /// # Errors
    /// [`CountersError`] if the object is too small or misaligned to start with a [`PolicyCounters`].
    ///
    /// # Safety
    /// `address..address + size` must be a live, readable object of a policy cell of this build (one that starts
    /// with a [`PolicyCounters`]), alive for `'a` (e.g. the old cell during a swap's state transfer).
    pub unsafe fn at<'a>(address: usize, size: usize) -> Result<&'a PolicyCounters, CountersError> {
        if size < COUNTERS_SIZE {
            return Err(CountersError::TooSmall { size });
        }
        if !address.is_multiple_of(core::mem::align_of::<PolicyCounters>()) {
            return Err(CountersError::Misaligned { address });
        }
        // SAFETY: the caller guarantees a live object of at least `size` bytes at `address`, starting with a
        // `PolicyCounters` (checked large enough and aligned above); only atomics are read through it.
        Ok(unsafe { &*(address as *const PolicyCounters) })
    }
}

/// The hash-free path of every policy cell's statistics static, which starts with a [`PolicyCounters`].
pub const POLICY_STATISTICS_PATH: &str = "scheduler_policy::STATISTICS";

/// Why [`transfer_policy_counters`] failed (the swap is then aborted with nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyTransferError {
    /// The new cell has no [`POLICY_STATISTICS_PATH`] object where its counters are (a build mix-up).
    NewStatisticsNotFound {
        /// The new cell's name.
        cell: String,
    },
    /// The old cell's statistics object cannot hold the common counters.
    OldStatistics {
        /// The old cell's name.
        cell: String,
        /// What is wrong with it.
        error: CountersError,
    },
}

impl fmt::Display for PolicyTransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NewStatisticsNotFound { cell } => {
                write!(f, "{cell} has no {POLICY_STATISTICS_PATH} holding its policy counters")
            }
            Self::OldStatistics { cell, error } => write!(f, "{POLICY_STATISTICS_PATH} of {cell}: {error}"),
        }
    }
}

/// The state transfer every policy cell's `cell_state_transfer` does: `new` (the new policy's counters, first in
/// its [`POLICY_STATISTICS_PATH`] static) takes over the old policy's counters, whatever else either policy keeps
/// after them, and the old object is marked transferred (the default same-size copy cannot carry it when the two
/// policies' statistics differ in size). Returns the number of decisions inherited; 0 if the old policy kept no
/// statistics (nothing to carry over).
///
/// Runs inside the swap's quiesced phase: reads the old cell's object, writes only `new`, takes no lock.
///
/// # Errors
/// [`PolicyTransferError`] if the new cell's statistics are not `new`, or the old object is too small or misaligned.
pub fn transfer_policy_counters(
    transfer: &cell_namespace::StateTransfer<'_>,
    new: &PolicyCounters,
) -> Result<u64, PolicyTransferError> {
    let new_address = new as *const PolicyCounters as usize;
    let own = transfer.new_object(POLICY_STATISTICS_PATH).is_some_and(|object| object.address.value() == new_address);
    if !own {
        return Err(PolicyTransferError::NewStatisticsNotFound { cell: String::from(transfer.new_cell().name()) });
    }
    let Some(old) = transfer.old_object(POLICY_STATISTICS_PATH) else { return Ok(0) };
    // SAFETY: `old` is a data object of the old policy cell, which the swap keeps loaded and unchanged (every
    // other CPU is stopped) while the transfer function runs; `at` checks its size and alignment.
    let old_counters = unsafe { PolicyCounters::at(old.address.value(), old.size) }.map_err(|error| {
        PolicyTransferError::OldStatistics { cell: String::from(transfer.old_cell().name()), error }
    })?;
    let inherited = new.inherit(old_counters);
    transfer.mark_transferred(POLICY_STATISTICS_PATH);
    Ok(inherited)
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

    /// The policy's own counters, for `ps`.
    fn statistics(&self) -> PolicyStatistics;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_and_inherit() {
        let old = PolicyCounters::new();
        old.count(true);
        old.count(false);
        old.count(true);
        let new = PolicyCounters::new();
        new.count(true);
        assert_eq!(new.inherit(&old), 3);
        let statistics = new.statistics(Some(7));
        assert_eq!(
            statistics,
            PolicyStatistics { decisions: 3, idle_decisions: 1, inherited_decisions: 3, overtakes: Some(7) }
        );
        assert_eq!(
            alloc::format!("{statistics}"),
            "3 decisions (1 idle, 7 overtakes), 3 inherited from the previous policy"
        );
    }

    #[test]
    fn counters_at_checks_size_and_alignment() {
        let counters = [PolicyCounters::new(), PolicyCounters::new()];
        counters[0].count(false);
        let address = &counters[0] as *const PolicyCounters as usize;
        // SAFETY: `counters` is live for the whole test and starts with a `PolicyCounters` at `address`.
        let found = unsafe { PolicyCounters::at(address, COUNTERS_SIZE) }.unwrap();
        assert_eq!(found.decisions.load(Ordering::Relaxed), 1);
        // SAFETY: as above (the calls are refused before reading).
        assert_eq!(unsafe { PolicyCounters::at(address, 16) }.err(), Some(CountersError::TooSmall { size: 16 }));
        // SAFETY: as above.
        let misaligned = unsafe { PolicyCounters::at(address + 4, COUNTERS_SIZE) }.err();
        assert_eq!(misaligned, Some(CountersError::Misaligned { address: address + 4 }));
    }

    fn adopted(name: &str) -> TaskRef {
        let params = crate::TaskParams {
            name: alloc::string::String::from(name),
            cpu: 0,
            pinned: false,
            priority: crate::DEFAULT_PRIORITY,
        };
        Task::adopt_current(params, crate::TaskKind::Adopted)
    }

    #[test]
    fn the_second_copy_follows_every_operation() {
        let mut queue = RunQueue::new();
        assert!(queue.is_consistent());
        let tasks: alloc::vec::Vec<TaskRef> = (0..9).map(|n| adopted(&alloc::format!("q{n}"))).collect();
        for task in &tasks {
            queue.push_back(task.clone());
            assert!(queue.is_consistent(), "after a push (growing through several capacities)");
        }
        assert_eq!(queue.remove(3).as_ref(), Some(&tasks[3]));
        assert!(queue.is_consistent(), "after a remove");
        while queue.pop_front().is_some() {
            assert!(queue.is_consistent(), "after a pop");
        }
        assert!(queue.pop_front().is_none() && queue.remove(0).is_none());
        assert!(queue.is_consistent(), "popping an empty queue changes nothing");
    }

    #[test]
    fn a_damaged_length_word_is_seen() {
        let mut queue = RunQueue::new();
        queue.push_back(adopted("a"));
        queue.push_back(adopted("b"));
        for bit in [0, 1, 5, 40, 63] {
            queue.damage_length_copy_for_test(1 << bit);
            assert!(!queue.is_consistent(), "length bit {bit} flipped");
            queue.damage_length_copy_for_test(1 << bit);
            assert!(queue.is_consistent());
        }
    }
}
