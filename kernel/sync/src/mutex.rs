//! [`Mutex`]: a blocking mutual-exclusion lock with FIFO hand-off, safe against the death of its holder.
//!
//! # Hand-off protocol
//! The lock state ([`RawState`]) lives in a heap-allocated [`MutexCore`], made on first use (so `Mutex::new` stays
//! `const`) and shared with the owner's held-locks list, so it never moves and outlives any registration.
//! 1. `lock` on a free mutex: `owner = me`, registers the core with the current task (`Task::register_held_lock`).
//! 2. `lock` on a held mutex: registers first (a death from here on is covered), queues itself and blocks, with
//!    interrupts disabled from before it blocks until it has seen the outcome (so no timer preemption, and no kill
//!    deferral that ends the task without unwinding, can land between the wake-up and that check). The only place it
//!    can be unwound meanwhile is the kill safe point inside `scheduler::schedule`, a call whose landing pad runs
//!    [`Abandon`].
//! 3. `unlock` pops waiters until one is still blocked, makes it the owner (`owner = next`, `locked` stays set),
//!    and wakes it; with none left, clears `locked`. It unregisters the core from the unlocking task.
//! 4. A waiter killed before it noticed the hand-off (it was `Runnable` with `owner == me`, or still queued)
//!    unwinds through [`Abandon`], which releases the mutex again (to the next waiter) or dequeues it.
//! 5. A holder that dies without running its guard's drop (a CPU fault in the frame holding the guard, a kill
//!    that ended it without unwinding) still has the core registered: the scheduler's exit path of a
//!    failed task calls [`HeldLock::force_release`], which does what step 3 does.
//!
//! Lock order: a mutex's `state` lock (an `IrqSafeMutex`, held for a few instructions) is taken before the
//! scheduler's runqueue locks (`unblock`) and a task's held-locks list; never the other way round.
//!
//! A force-released mutex is not poisoned: the data may hold a half-finished update of the dead task.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

use task::{HeldLock, IrqSafeMutex, TaskId, TaskRef, interrupts};

/// The lock state, shared (by `Arc`) between the mutex and the held-locks list of its owner.
struct MutexCore {
    /// Protects the fields of [`RawState`] only; taken with interrupts disabled, never held across a switch.
    state: IrqSafeMutex<RawState>,
}

struct RawState {
    /// Whether someone owns the mutex.
    locked: bool,
    /// The owning task (`None` while free, or if it was locked before tasking ran on that CPU). After a hand-off,
    /// the waiter it was handed to, which may not have run yet.
    owner: Option<TaskId>,
    /// Blocked tasks waiting for it, in arrival order.
    waiters: VecDeque<TaskRef>,
}

impl MutexCore {
    fn new() -> Self {
        MutexCore { state: IrqSafeMutex::new(RawState { locked: false, owner: None, waiters: VecDeque::new() }) }
    }

    /// Passes ownership to the longest waiter still blocked, or frees the mutex.
    fn release(state: &mut RawState) {
        while let Some(next) = state.waiters.pop_front() {
            // Ownership first: the woken task checks `owner` under this lock, which we hold.
            state.owner = Some(next.id());
            if scheduler::unblock(&next) {
                return;
            }
        }
        state.owner = None;
        state.locked = false;
    }

    /// Gives the mutex up on behalf of `task` if it owns it (or was handed it), and dequeues it as a waiter.
    fn abandon(&self, task: TaskId) {
        let mut state = self.state.lock();
        state.waiters.retain(|waiter| waiter.id() != task);
        if state.locked && state.owner == Some(task) {
            Self::release(&mut state);
        }
    }
}

impl HeldLock for MutexCore {
    fn force_release(&self, owner: TaskId) {
        self.abandon(owner);
    }
}

/// On unwind out of a wait in [`RawMutex::lock`] (a kill at the safe point in `schedule`): gives up the hand-off
/// or the queue place, and unregisters. Defused (forgotten) on every normal return.
struct Abandon<'a> {
    core: &'a Arc<MutexCore>,
    task: &'a TaskRef,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        self.core.abandon(self.task.id());
        self.task.unregister_held_lock(&**self.core);
    }
}

/// The lock itself, separate from the data so its code is not generic (and lives in this cell).
struct RawMutex {
    core: spin::Once<Arc<MutexCore>>,
}

impl RawMutex {
    const fn new() -> Self {
        RawMutex { core: spin::Once::new() }
    }

    fn core(&self) -> &Arc<MutexCore> {
        self.core.call_once(|| Arc::new(MutexCore::new()))
    }

    /// Locks; returns the owning task (registered with it), `None` if there is no task to own it.
    #[inline(never)]
    fn lock(&self) -> Option<TaskRef> {
        let core = self.core();
        let Some(current) = scheduler::current_task().filter(|task| !task.is_idle()) else {
            Self::lock_spinning(core);
            return None;
        };
        {
            let mut state = core.state.lock();
            if !state.locked {
                state.locked = true;
                state.owner = Some(current.id());
                // Registered before interrupts come back: no kill can end the task in between.
                current.register_held_lock(core.clone());
                return Some(current);
            }
        }
        Self::lock_contended(core, current)
    }

    /// The slow path of [`lock`](Self::lock): queue, block, and wait for the hand-off.
    fn lock_contended(core: &Arc<MutexCore>, current: TaskRef) -> Option<TaskRef> {
        // Registered before it can be handed the mutex, so a death from here on releases it.
        current.register_held_lock(core.clone());
        let interrupts_were_enabled = interrupts::disable();
        let mut state = core.state.lock();
        let abandon = Abandon { core, task: &current };
        loop {
            if state.owner == Some(current.id()) {
                // Handed over by an unlock: `locked` stayed set.
                break;
            }
            if !state.locked {
                state.locked = true;
                state.owner = Some(current.id());
                break;
            }
            if scheduler::block_current().is_some() {
                if !state.waiters.contains(&current) {
                    state.waiters.push_back(current.clone());
                }
                drop(state);
                // Interrupts stay disabled across the switch and until `owner` is checked again (see the module doc).
                scheduler::schedule();
            } else {
                // Not blocked (a killed task running its landing pads does not block): poll.
                drop(state);
                core::hint::spin_loop();
            }
            state = core.state.lock();
        }
        drop(state);
        core::mem::forget(abandon);
        interrupts::restore(interrupts_were_enabled);
        Some(current)
    }

    /// Before tasking (or in an idle task): spins until the mutex is free.
    fn lock_spinning(core: &MutexCore) {
        loop {
            {
                let mut state = core.state.lock();
                if !state.locked {
                    state.locked = true;
                    state.owner = None;
                    return;
                }
            }
            core::hint::spin_loop();
        }
    }

    /// Locks if free; `Some(owner)` on success (the owner is `None` without a current task).
    #[inline(never)]
    fn try_lock(&self) -> Option<Option<TaskRef>> {
        let core = self.core();
        let current = scheduler::current_task().filter(|task| !task.is_idle());
        // Interrupts off from the acquisition to the registration: no kill can end the task in between.
        let mut state = core.state.lock();
        if state.locked {
            return None;
        }
        state.locked = true;
        state.owner = current.as_ref().map(|task| task.id());
        if let Some(current) = &current {
            current.register_held_lock(core.clone());
        }
        drop(state);
        Some(current)
    }

    /// Unlocks (handing the mutex to the longest waiter) on behalf of `owner`, and unregisters it there.
    #[inline(never)]
    fn unlock(&self, owner: Option<TaskRef>) {
        let core = self.core();
        MutexCore::release(&mut core.state.lock());
        if let Some(owner) = owner {
            owner.unregister_held_lock(&**core);
        }
    }
}

/// A mutual-exclusion lock for tasks: a task that finds it locked blocks (gives the CPU away) instead of spinning,
/// and unlocking hands it to the longest waiter (FIFO), so contending tasks get it in the order they asked.
///
/// A task that dies holding it, or after being handed it, releases it (see the module doc): by its guard's drop
/// while unwinding, or, if the unwind skipped that frame, by the scheduler's exit path of a failed task.
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
    /// The task the lock is registered with (unregistered from it on unlock, whichever task drops the guard).
    owner: Option<TaskRef>,
}

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`. Allocates nothing until first locked.
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
    ///
    /// # Panics
    /// If the first lock of this mutex cannot allocate its lock state (about 80 bytes) on the heap.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        let owner = self.raw.lock();
        MutexGuard { mutex: self, owner }
    }

    /// Locks the mutex if it is free.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.raw.try_lock().map(|owner| MutexGuard { mutex: self, owner })
    }

    /// Whether the mutex is locked now (by anyone; a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw.core.get().is_some_and(|core| core.state.lock().locked)
    }

    /// The tasks queued for the mutex now, in the order they will get it (a snapshot; for tests of its FIFO
    /// hand-off). Allocates the list.
    pub fn queued_waiters(&self) -> alloc::vec::Vec<TaskId> {
        self.raw.core.get().map_or_else(alloc::vec::Vec::new, |core| {
            core.state.lock().waiters.iter().map(|waiter| waiter.id()).collect()
        })
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
        self.mutex.raw.unlock(self.owner.take());
    }
}
