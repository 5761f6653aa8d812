//! The namespace's locks, and what each does about interrupts and preemption.
//!
//! A plain spin lock held with interrupts enabled lets its holder be preempted; under the priority policy a
//! higher-priority task on the same CPU that wants the lock then spins forever and the holder never runs again.
//! So every lock here is one of two kinds:
//!
//! | lock | protects | kind | why |
//! |---|---|---|---|
//! | `CellNamespace::transaction` | serializes loads, swaps, `add_object` | [`TransactionLock`] | held for a whole cell load or swap (milliseconds): interrupts stay enabled, but the holder's preemption is disabled |
//! | `CellNamespace::state` | loaded cells, symbol map | [`IrqSafeRwLock`] | lookups, and a cell's exports at publish or swap: short (`symbols()`, which copies the whole map, is for host tests) |
//! | `CellNamespace::manifest`, `directory`, `clock` | manifest (an `Arc`, rebuilt outside the lock by `add_object`), object files, clock | [`IrqSafeRwLock`] | one lookup, an `Arc` copy or swap, a listing of the object files |
//! | `LoadedSection::dependencies` / `dependents` | a section's dependency edges | [`IrqSafeMutex`] | a push, a clone or a retain |
//!
//! **Lock order**: a namespace's `transaction`, then each ancestor's (`CellNamespace::lock_chain`); then
//! `manifest`, then `directory`, then `state`; then one section's `dependencies`, then another's `dependents`.
//! Nothing here is taken while one of the interrupt-safe locks is held except in that order, and the transaction
//! lock is never taken while an interrupt-safe lock is held. Code under these locks may log (the serial lock is a
//! leaf).
//!
//! **Preemption.** This crate lives in nano_core, below the task and scheduler cells, so it reaches the
//! scheduler's preemption-disable count through hooks ([`set_preemption_hooks`], installed by the scheduler when
//! tasking starts). Before that, and in host tests, the hooks are absent and the transaction lock is a plain spin
//! lock. Interrupt masking compiles away on the host (`cfg(target_os = "none")`).

use core::sync::atomic::{AtomicUsize, Ordering};

use owned_spin::stack_token;

pub(crate) use irq_safe::{IrqSafeMutex, IrqSafeRwLock};

/// The scheduler's preemption-disable and -enable functions.
#[derive(Clone, Copy)]
struct PreemptionHooks {
    disable: fn(),
    enable: fn(),
}

/// Installed once by the scheduler (`scheduler::init_bsp`).
static PREEMPTION_HOOKS: spin::Once<PreemptionHooks> = spin::Once::new();

/// Installs the functions that disable and re-enable preemption of the current task (nested counts; `enable` may
/// switch tasks if a preemption was deferred). Only the first call has an effect. Until then the transaction lock
/// does not touch preemption.
pub fn set_preemption_hooks(disable: fn(), enable: fn()) {
    PREEMPTION_HOOKS.call_once(|| PreemptionHooks { disable, enable });
}

/// Preemption of the current task disabled until dropped (through the hooks, when installed).
struct PreemptionOff;

impl PreemptionOff {
    fn new() -> Self {
        if let Some(hooks) = PREEMPTION_HOOKS.get() {
            (hooks.disable)();
        }
        PreemptionOff
    }
}

impl Drop for PreemptionOff {
    fn drop(&mut self) {
        if let Some(hooks) = PREEMPTION_HOOKS.get() {
            (hooks.enable)();
        }
    }
}

/// The transaction lock: a spin lock whose holder runs with preemption disabled (interrupts enabled), for critical
/// sections too long to mask interrupts (a whole cell load). Contenders spin with preemption enabled, so a
/// contender on the holder's own CPU can only run while the holder is blocked voluntarily, never while it is
/// preempted; a kill of the holder waits until it unlocks (the scheduler defers kills in preemption-disabled
/// sections), so the lock is never left held by an unwind from an interrupted instruction.
///
/// **Holder.** The lock records an address on its holder's stack (a local of the locking call), so that the fault
/// path can tell whether a task that died without dropping its guard (a CPU fault in the frame holding it, or a
/// task ended without unwinding) held it: [`TransactionLock::force_release_if_held_within`].
pub(crate) struct TransactionLock {
    inner: spin::Mutex<()>,
    /// A stack address of the holder (0: free, or a holder outside tasks' stacks such as a host test thread).
    holder: AtomicUsize,
}

/// The guard of a [`TransactionLock`]: forgets the holder, unlocks, then re-enables preemption (which may switch
/// tasks).
pub(crate) struct TransactionGuard<'a> {
    lock: &'a TransactionLock,
    _guard: spin::MutexGuard<'a, ()>,
    _preemption: PreemptionOff,
}

impl Drop for TransactionGuard<'_> {
    fn drop(&mut self) {
        self.lock.holder.store(0, Ordering::Release);
    }
}

impl TransactionLock {
    pub(crate) const fn new() -> Self {
        TransactionLock { inner: spin::Mutex::new(()), holder: AtomicUsize::new(0) }
    }

    fn guard<'a>(&'a self, guard: spin::MutexGuard<'a, ()>, preemption: PreemptionOff) -> TransactionGuard<'a> {
        self.holder.store(stack_token(), Ordering::Release);
        TransactionGuard { lock: self, _guard: guard, _preemption: preemption }
    }

    /// Whether the lock is held by a holder whose stack token lies in `stack` (a task's stack).
    pub(crate) fn is_held_within(&self, stack: &core::ops::Range<usize>) -> bool {
        self.inner.is_locked() && stack.contains(&self.holder.load(Ordering::Acquire))
    }

    /// Unlocks the lock if its holder token lies in `stack`; returns whether it did. The holder's preemption
    /// count is its own task's and dies with it.
    ///
    /// # Safety
    /// `stack` must be the stack of a task that will never resume the code that took the lock (it failed), and its
    /// guard must not be dropped later (its frame is gone: the guard's drop would have cleared the token).
    pub(crate) unsafe fn force_release_if_held_within(&self, stack: &core::ops::Range<usize>) -> bool {
        if !self.is_held_within(stack) {
            return false;
        }
        self.holder.store(0, Ordering::Release);
        // SAFETY: the caller guarantees the holder is dead to its critical section and its guard gone.
        unsafe { self.inner.force_unlock() };
        true
    }

    pub(crate) fn lock(&self) -> TransactionGuard<'_> {
        loop {
            let preemption = PreemptionOff::new();
            if let Some(guard) = self.inner.try_lock() {
                return self.guard(guard, preemption);
            }
            drop(preemption);
            while self.inner.is_locked() {
                core::hint::spin_loop();
            }
        }
    }

    /// Like [`lock`](Self::lock), but gives up after `attempts` polls of a taken lock (`None`).
    pub(crate) fn try_lock_within(&self, attempts: usize) -> Option<TransactionGuard<'_>> {
        for _ in 0..attempts.max(1) {
            let preemption = PreemptionOff::new();
            if let Some(guard) = self.inner.try_lock() {
                return Some(self.guard(guard, preemption));
            }
            drop(preemption);
            core::hint::spin_loop();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;

    #[test]
    fn transaction_lock_excludes_across_threads() {
        let lock = Arc::new((TransactionLock::new(), IrqSafeMutex::new(0u64)));
        let threads: std::vec::Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let _transaction = lock.0.lock();
                        let value = *lock.1.lock();
                        std::thread::yield_now();
                        *lock.1.lock() = value + 1;
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        assert_eq!(*lock.1.lock(), 800);
    }
}
