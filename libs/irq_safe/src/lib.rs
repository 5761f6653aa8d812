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
//! Used by the tasking layer (`task` re-exports [`IrqSafeMutex`]), the namespace (`cell_namespace`) and COM1
//! (`serial`). The interrupt masking compiles away on the host (`cfg(target_os = "none")`), where the crate's
//! tests run.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

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
    #[inline]
    pub fn restore(were_enabled: bool) {
        #[cfg(target_os = "none")]
        if were_enabled {
            x86_64::instructions::interrupts::enable();
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

/// Interrupts disabled on this CPU until dropped, then restored to their previous state.
struct InterruptsOff {
    were_enabled: bool,
}

impl InterruptsOff {
    fn new() -> Self {
        InterruptsOff { were_enabled: interrupts::disable() }
    }
}

impl Drop for InterruptsOff {
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
        IrqSafeMutexGuard { guard: self.inner.lock(), _interrupts: interrupts }
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
        IrqSafeReadGuard { guard: self.inner.read(), _interrupts: interrupts }
    }

    /// Disables interrupts, then spins until nobody holds the lock, and writes.
    pub fn write(&self) -> IrqSafeWriteGuard<'_, T> {
        let interrupts = InterruptsOff::new();
        IrqSafeWriteGuard { guard: self.inner.write(), _interrupts: interrupts }
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
