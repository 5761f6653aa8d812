//! [`OwnedIrqMutex`]: an interrupt-safe spin lock that records its holder, so that a lock a dead frame left taken
//! is taken over by the next user instead of spinning it (and, on one CPU, the machine) forever.
//!
//! # Why
//! A CPU fault in a critical section leaves the guard in a frame whose drops the unwinder skips (the faulting
//! instruction is not a call, so no landing pad covers it), and a skipped release instruction leaves the lock
//! taken by a task that runs on. In the fault-injection campaign both happened to a channel's state lock and its
//! wait queues' locks: the faulting round's own unwinding then spun on the lock in its channel end's drop, and the
//! echo task's next receive spun on it with interrupts off until the NMI watchdog failed it (README "IPC cases").
//!
//! # Rule
//! The lock records a *holder token* (an address in the acquiring frame, on the holder's stack; `owned_spin`).
//! Such a lock is held with interrupts disabled, for a few instructions, never across a context switch, and never
//! taken again by code that holds it (every user in this kernel takes it for one short block). So a spinner that
//! finds the holder token
//! - on its own stack: the holder is one of its own frames that is gone (unwound or abandoned) or that skipped its
//!   release: nobody is inside the critical section;
//! - on the stack of a task that is not on any CPU: that task cannot be inside the critical section either (it
//!   would be running with interrupts off);
//!
//! - on the stack of a task that was reaped (it faulted in the section and was ended; `task::was_reaped_stack`
//!   remembers the last reaped stacks) and that no task in the table owns now: nobody runs on it;
//!
//! takes the lock over ([`owned_spin::OwnedSpinLock::take_over_if`]) and goes on with the data as the dead holder
//! left it (a half-finished update is accepted: the alternative is a hang). A token on no known stack (an AP idle
//! task's, which has no recorded bounds, or a stack reaped too long ago), or on a task running on another CPU, is
//! waited for. The checks run only after a long spin, so the uncontended path
//! is one compare-and-swap, as for [`task::IrqSafeMutex`].

use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU64, Ordering};

use owned_spin::{OwnedSpinGuard, OwnedSpinLock, stack_token};
use task::interrupts;

/// Spins between two looks at whether the holder is dead (about a millisecond under QEMU's TCG); the look at the
/// other tasks' stacks (which walks the task table) is made every [`OTHERS_EVERY`] looks.
const SPINS_PER_LOOK: u32 = 1 << 14;
/// Looks between two walks of the task table.
const OTHERS_EVERY: u32 = 8;

/// Locks taken over from a dead holder so far (all [`OwnedIrqMutex`]es).
static TAKEN_OVER: AtomicU64 = AtomicU64::new(0);

/// How many times a lock was taken over from a dead holder since boot.
pub fn stale_locks_taken_over() -> u64 {
    TAKEN_OVER.load(Ordering::Relaxed)
}

/// An interrupt-safe spin lock whose holder is known (see the module docs).
pub struct OwnedIrqMutex<T> {
    inner: OwnedSpinLock<T>,
}

/// The guard of an [`OwnedIrqMutex`]. Fields drop in declaration order: the lock is released first, then
/// interrupts are restored.
pub struct OwnedIrqMutexGuard<'a, T> {
    guard: OwnedSpinGuard<'a, T>,
    _interrupts: RestoreInterrupts,
}

/// Restores the interrupt flag saved when a guard was taken.
struct RestoreInterrupts {
    were_enabled: bool,
}

impl Drop for RestoreInterrupts {
    #[inline]
    fn drop(&mut self) {
        interrupts::restore(self.were_enabled);
    }
}

impl<T> OwnedIrqMutex<T> {
    /// A new unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        OwnedIrqMutex { inner: OwnedSpinLock::new(value) }
    }

    /// Disables interrupts, then spins until the lock is free (or its holder is found dead, see the module docs)
    /// and takes it.
    #[inline(always)]
    pub fn lock(&self) -> OwnedIrqMutexGuard<'_, T> {
        let were_enabled = interrupts::disable();
        let token = stack_token();
        let guard = match self.inner.try_lock_as(token) {
            Some(guard) => guard,
            None => self.lock_contended(token),
        };
        OwnedIrqMutexGuard { guard, _interrupts: RestoreInterrupts { were_enabled } }
    }

    /// Whether the lock is taken now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.inner.holder().is_some()
    }

    #[inline(never)]
    #[cold]
    fn lock_contended(&self, token: usize) -> OwnedSpinGuard<'_, T> {
        let mut looks = 0u32;
        loop {
            for _ in 0..SPINS_PER_LOOK {
                if let Some(guard) = self.inner.try_lock_as(token) {
                    return guard;
                }
                core::hint::spin_loop();
            }
            looks = looks.wrapping_add(1);
            let Some(holder) = self.inner.holder() else { continue };
            if holder_is_dead(holder, looks.is_multiple_of(OTHERS_EVERY)) {
                // The data is taken as the dead holder left it.
                // SAFETY: the holder is not inside the critical section (module docs: its frame or task is gone, or
                // its task is off-CPU, while the lock is only held with interrupts off); its guard's drop releases
                // only its own acquisition.
                if let Some(guard) = unsafe { self.inner.take_over_if(|held| held == holder, token) } {
                    TAKEN_OVER.fetch_add(1, Ordering::Relaxed);
                    return guard;
                }
            }
        }
    }
}

/// Whether `holder` (a holder token) lies on the current task's own stack or, with `others`, on stacks of tasks
/// none of which is on a CPU, or on the stack of a reaped task that no task in the table owns now.
fn holder_is_dead(holder: usize, others: bool) -> bool {
    let Some(current) = scheduler::current_task() else { return false };
    if current.stack_bounds().is_some_and(|stack| stack.contains(&holder)) {
        return true;
    }
    if !others {
        return false;
    }
    let Some(tasks) = task::try_all_tasks() else { return false };
    // A stack freed by a reap may already be a new task's (pooled stacks are reused at once): the address is
    // live if any task owning it now runs.
    let mut owners = tasks.iter().filter(|task| task.stack_bounds().is_some_and(|stack| stack.contains(&holder)));
    match owners.next() {
        Some(first) => !first.is_on_cpu() && owners.all(|owner| !owner.is_on_cpu()),
        None => task::was_reaped_stack(holder),
    }
}

impl<T> Deref for OwnedIrqMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for OwnedIrqMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}
