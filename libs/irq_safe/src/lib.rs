//! Spin locks held with interrupts disabled on the current CPU: [`IrqSafeMutex`] and [`IrqSafeRwLock`].
//!
//! # Purpose
//! A spin lock held with interrupts enabled can be preempted: a task on the same CPU that wants it then spins
//! against a holder that does not run (for a whole time slice under round robin, forever under the priority
//! policy), and an interrupt handler that takes it deadlocks against the code it interrupted. These locks disable
//! interrupts before taking the spin lock and restore the previous state after releasing it, so the holder runs
//! its critical section to the end. Critical sections must therefore be short. Guards may nest (the innermost
//! restores "disabled").
//!
//! While a lock is taken by another CPU, the waiter spins with interrupts disabled, so it cannot take an
//! interrupt that another CPU may be waiting for (the TLB-shootdown IPI). Each turn of the spin loop therefore calls
//! the relax function registered with [`set_spin_relax`] (nano_core registers `memory::service_tlb_shootdown`, so a
//! waiter still acknowledges a shootdown round that the lock's holder started).
//!
//! Used by the tasking layer (`task` re-exports [`IrqSafeMutex`]), the namespace (`cell_namespace`) and COM1
//! (`serial`). The interrupt masking compiles away on the host (`cfg(target_os = "none")`), where the crate's
//! tests run.
#![cfg_attr(not(test), no_std)]
// Two exceptions: `IrqSafeRwLock::force_write_unlock`, for the fault path's recovery of a dead writer, and the
// `popfq` of `interrupts::restore`.
#![deny(unsafe_code)]

use core::ops::{Deref, DerefMut};

/// Interrupt-flag helpers (no-ops on the host, where tests run without interrupts).
pub mod interrupts {
    /// Disables interrupts on this CPU; returns whether they were enabled.
    #[inline]
    pub fn disable() -> bool {
        #[cfg(target_os = "none")]
        {
            let enabled = x86_64::instructions::interrupts::are_enabled();
            x86_64::instructions::interrupts::disable();
            enabled
        }
        #[cfg(not(target_os = "none"))]
        {
            false
        }
    }

    /// Enables interrupts again if `were_enabled` (the value [`disable`] returned).
    ///
    /// By `popfq` of the current RFLAGS with IF set rather than by `sti`: under QEMU's TCG, `sti` ends the
    /// translated block twice (at itself and after its one-instruction interrupt shadow), each time back to the
    /// emulator's main loop, `popfq` once (README "Benchmarks"). Unlike `sti`, `popfq` has no interrupt shadow: a
    /// pending interrupt is taken right after it, which no caller here relies on otherwise (the idle loop uses
    /// `sti; hlt` itself).
    #[inline]
    pub fn restore(were_enabled: bool) {
        #[cfg(target_os = "none")]
        if were_enabled {
            #[allow(unsafe_code, reason = "the one instruction sequence that re-enables interrupts, see above")]
            // SAFETY: reloads this CPU's own RFLAGS with only IF changed (the `or` edits the pushed copy; `popfq`
            // restores the arithmetic flags it had before the `or`), at the same privilege level; the asm is not
            // `nomem`, so the compiler keeps the critical section's memory accesses before it.
            unsafe {
                core::arch::asm!("pushfq", "or qword ptr [rsp], 0x200", "popfq", options(preserves_flags))
            };
        }
        #[cfg(not(target_os = "none"))]
        let _ = were_enabled;
    }

    /// Whether interrupts are enabled on this CPU (always `false` on the host).
    #[inline]
    pub fn are_enabled() -> bool {
        #[cfg(target_os = "none")]
        {
            x86_64::instructions::interrupts::are_enabled()
        }
        #[cfg(not(target_os = "none"))]
        {
            false
        }
    }
}

/// The function every spin loop of this crate calls on each turn (see the crate docs). Set once.
static SPIN_RELAX: spin::Once<fn()> = spin::Once::new();

/// Registers `relax`, called on each turn of every spin loop of this crate, with interrupts disabled; it must be
/// short, take no lock and never block (e.g. service a pending TLB-shootdown request). Only the first registration
/// takes effect; returns whether this one did.
pub fn set_spin_relax(relax: fn()) -> bool {
    let mut registered = false;
    SPIN_RELAX.call_once(|| {
        registered = true;
        relax
    });
    registered
}

/// One turn of a spin loop: the registered relax function, then a spin-loop hint. Public for spin loops outside
/// this crate that also run with interrupts disabled (COM1's and the heap's owned locks).
pub fn relax() {
    if let Some(relax) = SPIN_RELAX.get() {
        relax();
    }
    core::hint::spin_loop();
}

/// Interrupts disabled on this CPU until dropped, then restored to their previous state.
struct InterruptsOff {
    were_enabled: bool,
}

impl InterruptsOff {
    #[inline]
    fn new() -> Self {
        InterruptsOff { were_enabled: interrupts::disable() }
    }
}

impl Drop for InterruptsOff {
    #[inline]
    fn drop(&mut self) {
        interrupts::restore(self.were_enabled);
    }
}

/// A spin lock that disables interrupts on the current CPU while it is held.
pub struct IrqSafeMutex<T: ?Sized> {
    inner: spin::Mutex<T>,
}

/// The guard of an [`IrqSafeMutex`]: the data, with interrupts disabled until it is dropped. Fields drop in
/// declaration order: the lock is released first, then interrupts are restored.
pub struct IrqSafeMutexGuard<'a, T: ?Sized> {
    guard: spin::MutexGuard<'a, T>,
    _interrupts: InterruptsOff,
}

impl<T> IrqSafeMutex<T> {
    /// A new unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Self { inner: spin::Mutex::new(value) }
    }
}

impl<T: ?Sized> IrqSafeMutex<T> {
    /// Disables interrupts, then spins until the lock is free and takes it.
    pub fn lock(&self) -> IrqSafeMutexGuard<'_, T> {
        let interrupts = InterruptsOff::new();
        loop {
            if let Some(guard) = self.inner.try_lock() {
                return IrqSafeMutexGuard { guard, _interrupts: interrupts };
            }
            relax();
        }
    }

    /// Spins until the lock is free and takes it, on a CPU whose interrupts the caller already disabled and keeps
    /// disabled until the guard is dropped: [`lock`](Self::lock) without saving and masking the interrupt flag
    /// again (for a section that takes several locks with interrupts off, like the scheduler's switch path).
    /// Called with interrupts enabled, the lock would be held with interrupts enabled (see the crate docs for why
    /// that must not happen); debug builds check.
    #[inline]
    pub fn lock_interrupts_disabled(&self) -> IrqSafeMutexGuard<'_, T> {
        debug_assert!(!interrupts::are_enabled(), "lock_interrupts_disabled with interrupts enabled");
        loop {
            if let Some(guard) = self.inner.try_lock() {
                return IrqSafeMutexGuard { guard, _interrupts: InterruptsOff { were_enabled: false } };
            }
            relax();
        }
    }

    /// Takes the lock if it is free; interrupts are left as they were if it is not.
    pub fn try_lock(&self) -> Option<IrqSafeMutexGuard<'_, T>> {
        let interrupts = InterruptsOff::new();
        let guard = self.inner.try_lock()?;
        Some(IrqSafeMutexGuard { guard, _interrupts: interrupts })
    }
}

impl<T: ?Sized> Deref for IrqSafeMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for IrqSafeMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

/// A readers-writer spin lock that disables interrupts on the current CPU while it is held (read or write).
pub struct IrqSafeRwLock<T: ?Sized> {
    inner: spin::RwLock<T>,
}

/// A read guard of an [`IrqSafeRwLock`] (the lock, then the interrupt state, are released on drop).
pub struct IrqSafeReadGuard<'a, T: ?Sized> {
    guard: spin::RwLockReadGuard<'a, T>,
    _interrupts: InterruptsOff,
}

/// The write guard of an [`IrqSafeRwLock`].
pub struct IrqSafeWriteGuard<'a, T: ?Sized> {
    guard: spin::RwLockWriteGuard<'a, T>,
    _interrupts: InterruptsOff,
}

impl<T> IrqSafeRwLock<T> {
    /// A new unlocked lock holding `value`.
    pub const fn new(value: T) -> Self {
        IrqSafeRwLock { inner: spin::RwLock::new(value) }
    }
}

impl<T: ?Sized> IrqSafeRwLock<T> {
    /// Disables interrupts, then spins until no writer holds the lock, and reads.
    pub fn read(&self) -> IrqSafeReadGuard<'_, T> {
        let interrupts = InterruptsOff::new();
        loop {
            if let Some(guard) = self.inner.try_read() {
                return IrqSafeReadGuard { guard, _interrupts: interrupts };
            }
            relax();
        }
    }

    /// Disables interrupts and reads if no writer holds the lock; otherwise restores interrupts and returns `None`
    /// at once (for a fault report that must not wait).
    pub fn try_read(&self) -> Option<IrqSafeReadGuard<'_, T>> {
        let interrupts = InterruptsOff::new();
        let guard = self.inner.try_read()?;
        Some(IrqSafeReadGuard { guard, _interrupts: interrupts })
    }

    /// Whether a writer holds the lock now (a snapshot).
    pub fn is_write_locked(&self) -> bool {
        self.inner.writer_count() > 0
    }

    /// Releases a write lock whose guard will never be dropped (its holder died in its critical section).
    ///
    /// # Safety
    /// The lock must be write-locked by a holder that never touches the data again and whose guard is never
    /// dropped; the data may hold a half-finished update.
    #[allow(unsafe_code)]
    pub unsafe fn force_write_unlock(&self) {
        // SAFETY: as the caller guarantees.
        unsafe { self.inner.force_write_unlock() };
    }

    /// Disables interrupts and writes if nobody holds the lock; `None` (interrupts restored) otherwise.
    pub fn try_write(&self) -> Option<IrqSafeWriteGuard<'_, T>> {
        let interrupts = InterruptsOff::new();
        self.inner.try_write().map(|guard| IrqSafeWriteGuard { guard, _interrupts: interrupts })
    }

    /// Disables interrupts, then spins until nobody holds the lock, and writes.
    pub fn write(&self) -> IrqSafeWriteGuard<'_, T> {
        let interrupts = InterruptsOff::new();
        loop {
            if let Some(guard) = self.inner.try_write() {
                return IrqSafeWriteGuard { guard, _interrupts: interrupts };
            }
            relax();
        }
    }
}

impl<T: ?Sized> Deref for IrqSafeReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> Deref for IrqSafeWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for IrqSafeWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static RELAX_CALLS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

    fn count_relax() {
        RELAX_CALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }

    #[test]
    fn waiters_call_the_relax_function_while_they_spin() {
        // The only test that registers a relax function (registration is once per process).
        assert!(set_spin_relax(count_relax));
        assert!(!set_spin_relax(|| {}), "a second registration is ignored");
        let mutex = std::sync::Arc::new(IrqSafeMutex::new(0));
        let lock = std::sync::Arc::new(IrqSafeRwLock::new(0));
        let (held, written) = (mutex.lock(), lock.write());
        let waiters = [
            std::thread::spawn({
                let mutex = mutex.clone();
                move || *mutex.lock() += 1
            }),
            std::thread::spawn({
                let lock = lock.clone();
                move || *lock.write() += 1
            }),
            std::thread::spawn({
                let lock = lock.clone();
                move || assert!(*lock.read() <= 1)
            }),
        ];
        while RELAX_CALLS.load(core::sync::atomic::Ordering::Relaxed) < 100 {
            std::thread::yield_now();
        }
        drop(held);
        drop(written);
        for waiter in waiters {
            waiter.join().expect("waiter");
        }
        assert_eq!(*mutex.lock(), 1);
    }

    #[test]
    fn mutex_excludes_and_try_lock_fails_while_held() {
        let mutex = IrqSafeMutex::new(1);
        let guard = mutex.lock();
        assert!(mutex.try_lock().is_none());
        drop(guard);
        *mutex.try_lock().expect("free again") += 1;
        assert_eq!(*mutex.lock(), 2);
    }

    #[test]
    fn rwlock_allows_nested_readers() {
        let lock = IrqSafeRwLock::new(5);
        let first = lock.read();
        let second = lock.read();
        assert_eq!(*first + *second, 10);
        drop((first, second));
        *lock.write() += 1;
        assert_eq!(*lock.read(), 6);
    }
}
