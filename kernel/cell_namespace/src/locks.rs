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
pub(crate) struct TransactionLock {
    inner: spin::Mutex<()>,
}

/// The guard of a [`TransactionLock`]: unlocks, then re-enables preemption (which may switch tasks).
pub(crate) struct TransactionGuard<'a> {
    _guard: spin::MutexGuard<'a, ()>,
    _preemption: PreemptionOff,
}

impl TransactionLock {
    pub(crate) const fn new() -> Self {
        TransactionLock { inner: spin::Mutex::new(()) }
    }

    pub(crate) fn lock(&self) -> TransactionGuard<'_> {
        loop {
            let preemption = PreemptionOff::new();
            if let Some(guard) = self.inner.try_lock() {
                return TransactionGuard { _guard: guard, _preemption: preemption };
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
                return Some(TransactionGuard { _guard: guard, _preemption: preemption });
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
