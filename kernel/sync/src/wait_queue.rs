//! [`WaitQueue`]: tasks waiting for a condition, woken in FIFO order.

use alloc::collections::VecDeque;

use task::{IrqSafeMutex, TaskRef};

/// A FIFO of blocked tasks waiting for some condition.
///
/// The condition is always evaluated with the queue's lock held, and a task enqueues itself and blocks under that
/// same lock, so a waker that changes the state *and then* calls [`notify_one`](Self::notify_one) or
/// [`notify_all`](Self::notify_all) can never miss a waiter.
pub struct WaitQueue {
    /// Blocked waiters, oldest first. The lock protects the queue only; condition closures run inside it.
    waiters: IrqSafeMutex<VecDeque<TaskRef>>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    /// An empty wait queue.
    pub const fn new() -> Self {
        WaitQueue { waiters: IrqSafeMutex::new(VecDeque::new()) }
    }

    /// Blocks the current task until `condition` returns `Some`, and returns that value. `condition` runs with
    /// the queue locked and interrupts disabled, so it must be short and must not block; it may take other
    /// `IrqSafeMutex` locks (lock order: this queue, then those).
    pub fn wait_until<R>(&self, mut condition: impl FnMut() -> Option<R>) -> R {
        loop {
            let mut waiters = self.waiters.lock();
            if let Some(value) = condition() {
                return value;
            }
            match scheduler::block_current() {
                Some(current) => {
                    waiters.push_back(current);
                    drop(waiters);
                    scheduler::schedule();
                }
                None => {
                    // No task to block (before tasking, or the idle task): poll.
                    drop(waiters);
                    core::hint::spin_loop();
                }
            }
        }
    }

    /// Wakes the longest-waiting task that is still blocked; returns whether one was woken. Entries of tasks
    /// that are no longer blocked (killed) are dropped on the way.
    pub fn notify_one(&self) -> bool {
        loop {
            let Some(waiter) = self.waiters.lock().pop_front() else { return false };
            if scheduler::unblock(&waiter) {
                return true;
            }
        }
    }

    /// Wakes every waiting task; returns how many were woken.
    pub fn notify_all(&self) -> usize {
        let waiters = core::mem::take(&mut *self.waiters.lock());
        waiters.iter().filter(|waiter| scheduler::unblock(waiter)).count()
    }

    /// The number of queued waiters (including stale entries of killed tasks).
    pub fn len(&self) -> usize {
        self.waiters.lock().len()
    }

    /// Whether no task waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
