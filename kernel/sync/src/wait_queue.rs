//! [`WaitQueue`]: tasks waiting for a condition, woken in FIFO order; a notification is never lost to a waiter
//! that dies before it could act on it.

use alloc::collections::VecDeque;

use task::{TaskRef, interrupts};

use crate::OwnedIrqMutex;

/// A FIFO of blocked tasks waiting for some condition.
///
/// The condition is always evaluated with the queue's lock held, and a task enqueues itself and blocks under that
/// same lock, so a waker that changes the state *and then* calls [`notify_one`](Self::notify_one) or
/// [`notify_all`](Self::notify_all) can never miss a waiter.
///
/// # Kill safety
/// A waiter keeps interrupts disabled from before it blocks until it has re-checked its condition after waking, so
/// the only point where it can die meanwhile is the kill safe point inside `scheduler::schedule` (a call, whose
/// landing pad runs here). If it dies there after a notification already dequeued it, it passes the notification
/// on to the next waiter ([`notify_one`](Self::notify_one)); if it was still queued (the kill woke it), it just
/// leaves the queue. So with several consumers, a value signalled to one that is then killed still wakes another.
pub struct WaitQueue {
    /// Blocked waiters, oldest first. The lock protects the queue only; condition closures run inside it. A lock
    /// whose holder died inside (a fault in a condition closure) is taken over by the next user.
    waiters: OwnedIrqMutex<VecDeque<TaskRef>>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs on unwind out of a wait (a kill at the safe point in `schedule`); disarmed on every normal wake-up.
struct PassOn<'a> {
    queue: &'a WaitQueue,
    waiter: TaskRef,
    /// Cleared once the wait returned normally.
    armed: bool,
}

impl Drop for PassOn<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut waiters = self.queue.waiters.lock();
        match waiters.iter().position(|waiter| *waiter == self.waiter) {
            Some(index) => {
                // Woken by the kill, not by a notification: nothing to pass on.
                waiters.remove(index);
            }
            None => {
                drop(waiters);
                self.queue.notify_one();
            }
        }
    }
}

impl WaitQueue {
    /// An empty wait queue.
    pub const fn new() -> Self {
        WaitQueue { waiters: OwnedIrqMutex::new(VecDeque::new()) }
    }

    /// Blocks the current task until `condition` returns `Some`, and returns that value. `condition` runs with
    /// the queue locked and interrupts disabled, so it must be short and must not block; it may take other
    /// `IrqSafeMutex` locks (lock order: this queue, then those).
    pub fn wait_until<R>(&self, mut condition: impl FnMut() -> Option<R>) -> R {
        let interrupts_were_enabled = interrupts::disable();
        let value = loop {
            let mut waiters = self.waiters.lock();
            if let Some(value) = condition() {
                break value;
            }
            match scheduler::block_current() {
                Some(current) => {
                    waiters.push_back(current.clone());
                    drop(waiters);
                    let mut pass_on = PassOn { queue: self, waiter: current, armed: true };
                    // Interrupts stay disabled across the switch (see "Kill safety").
                    scheduler::schedule();
                    // Woken normally: the condition is checked again at the top.
                    pass_on.armed = false;
                }
                None => {
                    // No task to block (before tasking, or the idle task): poll, with interrupts as the caller had them.
                    drop(waiters);
                    interrupts::restore(interrupts_were_enabled);
                    core::hint::spin_loop();
                    interrupts::disable();
                }
            }
        };
        interrupts::restore(interrupts_were_enabled);
        value
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
