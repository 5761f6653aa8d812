//! [`IrqSafeMutex`]: a spin lock held with interrupts disabled on the current CPU.
//!
//! Every lock of the tasking layer (runqueues, sleep lists, wait queues, task state) is one of these: a timer tick
//! that preempts or wakes tasks takes the same locks, so holding one with interrupts enabled could deadlock the CPU
//! against its own interrupt handler, and a task preempted while holding a spin lock would make every other task
//! that wants it spin for a whole time slice.

use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};

/// A spin lock that disables interrupts on the current CPU while it is held, and restores the previous interrupt
/// state when the guard is dropped. Guards may nest (the innermost restores "disabled").
pub struct IrqSafeMutex<T: ?Sized> {
    inner: spin::Mutex<T>,
}

/// The guard of an [`IrqSafeMutex`]: the data, with interrupts disabled until it is dropped.
pub struct IrqSafeMutexGuard<'a, T: ?Sized> {
    guard: ManuallyDrop<spin::MutexGuard<'a, T>>,
    interrupts_were_enabled: bool,
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
        let interrupts_were_enabled = interrupts::disable();
        IrqSafeMutexGuard { guard: ManuallyDrop::new(self.inner.lock()), interrupts_were_enabled }
    }

    /// Takes the lock if it is free; interrupts are left as they were if it is not.
    pub fn try_lock(&self) -> Option<IrqSafeMutexGuard<'_, T>> {
        let interrupts_were_enabled = interrupts::disable();
        match self.inner.try_lock() {
            Some(guard) => Some(IrqSafeMutexGuard { guard: ManuallyDrop::new(guard), interrupts_were_enabled }),
            None => {
                interrupts::restore(interrupts_were_enabled);
                None
            }
        }
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

impl<T: ?Sized> Drop for IrqSafeMutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard is dropped exactly once, here, and never used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.guard) };
        interrupts::restore(self.interrupts_were_enabled);
    }
}

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
