//! [`HeldLock`]: what a task registers while it holds (or is being handed) a blocking lock, so that a task that
//! dies without running its drops still releases it.
//!
//! # Why
//! A CPU fault unwinds from the middle of a function: no landing pad covers that instruction, so the drops of
//! the faulting frame's own locals (and of callees inlined into it) never run; a kill of a task that reaches no
//! safe point ends it without unwinding at all. A `sync::Mutex` guard held there would keep the mutex locked forever. So every acquisition
//! registers the lock with the owning task (removed again on unlock), and when a task ends `Failed`, the scheduler
//! force-releases whatever is still registered ([`Task::take_held_locks`]).
//!
//! The list is per task: the task itself adds entries when it locks, and whoever drops the guard (normally the
//! same task; a guard may be sent to another) removes them, so its lock (an [`IrqSafeMutex`](crate::IrqSafeMutex)
//! taken for a few instructions) is practically uncontended. Entries are `Arc`s of the lock's state, which lives
//! on the heap: a mutex that moves or is dropped while its guard was forgotten leaves no dangling entry.

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::TaskId;

/// A lock that can be released on behalf of a task that died holding it (or died after it was handed the lock,
/// before it noticed).
pub trait HeldLock: Send + Sync {
    /// Releases the lock if `owner` holds it or was handed it (passing it on to the next waiter, if any), and
    /// forgets `owner` as a waiter. Does nothing otherwise. Called on the dying task, with no lock held.
    fn force_release(&self, owner: TaskId);
}

/// The entries of one task's held-locks list: one per acquisition (a lock taken twice through two guards, e.g. of
/// a recursive wrapper, appears twice).
#[derive(Default)]
pub(crate) struct HeldLocks {
    entries: Vec<Arc<dyn HeldLock>>,
}

/// Whether `entry` is `lock` (by address; vtable pointers of one type may differ between cells).
fn same(entry: &Arc<dyn HeldLock>, lock: &dyn HeldLock) -> bool {
    core::ptr::addr_eq(Arc::as_ptr(entry), lock as *const dyn HeldLock)
}

impl HeldLocks {
    pub(crate) fn push(&mut self, lock: Arc<dyn HeldLock>) {
        self.entries.push(lock);
    }

    /// Removes the most recent entry for `lock`; returns whether there was one.
    pub(crate) fn remove(&mut self, lock: &dyn HeldLock) -> bool {
        match self.entries.iter().rposition(|entry| same(entry, lock)) {
            Some(index) => {
                self.entries.swap_remove(index);
                true
            }
            None => false,
        }
    }

    pub(crate) fn take(&mut self) -> Vec<Arc<dyn HeldLock>> {
        core::mem::take(&mut self.entries)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
