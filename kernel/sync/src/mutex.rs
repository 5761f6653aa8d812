//! [`Mutex`]: a blocking mutual-exclusion lock with FIFO hand-off.

use alloc::collections::VecDeque;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

use task::{IrqSafeMutex, TaskId, TaskRef};

/// The lock state, separate from the data so its code is not generic (and lives in this cell).
struct RawMutex {
    /// Protects the fields below only; taken with interrupts disabled, never held across a switch.
    state: IrqSafeMutex<RawState>,
}

struct RawState {
    /// Whether some task owns the mutex.
    locked: bool,
    /// Blocked tasks waiting for it, in arrival order.
    waiters: VecDeque<TaskRef>,
    /// The waiter the last unlock handed ownership to, until it notices.
    handed_to: Option<TaskId>,
}

impl RawMutex {
    const fn new() -> Self {
        RawMutex { state: IrqSafeMutex::new(RawState { locked: false, waiters: VecDeque::new(), handed_to: None }) }
    }

    #[inline(never)]
    fn lock(&self) {
        let mut state = self.state.lock();
        if !state.locked {
            state.locked = true;
            return;
        }
        loop {
            let Some(current) = scheduler::block_current() else {
                // No task to block: spin until the mutex is free.
                drop(state);
                core::hint::spin_loop();
                state = self.state.lock();
                if !state.locked {
                    state.locked = true;
                    return;
                }
                continue;
            };
            if !state.waiters.contains(&current) {
                state.waiters.push_back(current.clone());
            }
            drop(state);
            scheduler::schedule();
            state = self.state.lock();
            if state.handed_to == Some(current.id()) {
                // The unlocker left `locked` set and passed ownership to us.
                state.handed_to = None;
                return;
            }
        }
    }

    #[inline(never)]
    fn try_lock(&self) -> bool {
        let mut state = self.state.lock();
        if state.locked {
            return false;
        }
        state.locked = true;
        true
    }

    #[inline(never)]
    fn unlock(&self) {
        let mut state = self.state.lock();
        while let Some(next) = state.waiters.pop_front() {
            state.handed_to = Some(next.id());
            if scheduler::unblock(&next) {
                return;
            }
        }
        state.handed_to = None;
        state.locked = false;
    }
}

/// A mutual-exclusion lock for tasks: a task that finds it locked blocks (gives the CPU away) instead of spinning,
/// and unlocking hands it to the longest waiter (FIFO), so contending tasks get it in the order they asked.
pub struct Mutex<T: ?Sized> {
    raw: RawMutex,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex gives access to `T` to one task at a time (the `RawMutex` protocol), so sharing it between
// tasks only needs `T` to be sendable to another task.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves the `T`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

/// Access to the data of a locked [`Mutex`]; dropping it unlocks (handing the mutex to the next waiter).
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Mutex { raw: RawMutex::new(), data: UnsafeCell::new(value) }
    }

    /// Consumes the mutex and returns the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, blocking the current task until it gets it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.raw.lock();
        MutexGuard { mutex: self }
    }

    /// Locks the mutex if it is free.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.raw.try_lock().then_some(MutexGuard { mutex: self })
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this task owns the mutex, so no other reference to the data exists.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.raw.unlock();
    }
}
