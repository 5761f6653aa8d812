//! A spin lock whose holder is known: [`OwnedSpinLock`].
//!
//! # Purpose
//! A CPU fault inside a critical section leaves an ordinary spin lock taken for good: the guard lives in the
//! faulting frame, whose drops the unwinder skips, and every later user spins forever. The fault path cannot
//! simply unlock it either: if the guard lives in a caller's frame, that frame's landing pad unlocks it again later,
//! possibly while another CPU holds it. This lock records a *holder token* when it is taken: a nonzero address on
//! the holder's stack (`lock` uses the address of one of its own locals). Then:
//! - the fault path asks whether the holder's token lies on the faulting task's stack, and if so releases it
//!   ([`OwnedSpinLock::force_release_if`]);
//! - a guard releases only its own acquisition (it clears the holder only if the holder is still its own token), so a guard dropped
//!   by a landing pad after a forced release never unlocks a later holder (whose token lies on another stack, or
//!   deeper on the same one only after this guard's frame is gone).
//!
//! Interrupt masking is the caller's business (the kernel's heap and COM1 wrap their acquisitions in
//! `without_interrupts`). Host-testable: `cargo test -p owned_spin`.
#![cfg_attr(not(test), no_std)]

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicUsize, Ordering};

/// An address in the caller's stack frame (inlined into it): a holder token for [`OwnedSpinLock::try_lock_as`]
/// and its kin. Nonzero, and on the caller's stack, so the fault path can tell whose frame holds a lock.
#[inline(always)]
pub fn stack_token() -> usize {
    let marker = 0u8;
    core::hint::black_box(core::ptr::addr_of!(marker)) as usize
}

/// A mutual-exclusion spin lock that records its holder's token (0: free).
pub struct OwnedSpinLock<T> {
    /// The holder's token, or 0 when free. Protects `data`.
    holder: AtomicUsize,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is serialized by `holder` (one guard at a time), so sharing the lock between threads is
// like sharing a `spin::Mutex<T>`: sound when `T` may be sent between threads.
unsafe impl<T: Send> Sync for OwnedSpinLock<T> {}
// SAFETY: the lock owns its `T`; moving it moves the `T`.
unsafe impl<T: Send> Send for OwnedSpinLock<T> {}

/// Access to the data of an [`OwnedSpinLock`] until dropped; dropping it releases this acquisition only.
pub struct OwnedSpinGuard<'a, T> {
    lock: &'a OwnedSpinLock<T>,
    token: usize,
}

impl<T> OwnedSpinLock<T> {
    /// A new unlocked lock holding `value`.
    pub const fn new(value: T) -> Self {
        Self { holder: AtomicUsize::new(0), data: UnsafeCell::new(value) }
    }

    /// Takes the lock if it is free, recording `token` as the holder.
    ///
    /// # Panics
    /// If `token` is 0 (reserved for "free").
    #[inline]
    pub fn try_lock_as(&self, token: usize) -> Option<OwnedSpinGuard<'_, T>> {
        assert_ne!(token, 0, "holder token 0 means free");
        self.holder
            .compare_exchange(0, token, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| OwnedSpinGuard { lock: self, token })
    }

    /// The current holder's token, or `None` when free (a snapshot: it may change at once).
    pub fn holder(&self) -> Option<usize> {
        match self.holder.load(Ordering::Relaxed) {
            0 => None,
            token => Some(token),
        }
    }

    /// Releases the lock if its holder's token satisfies `held_by`; returns the released token.
    ///
    /// # Safety
    /// The holder must never touch the data again except through its guard's drop (e.g. it faulted and is being
    /// unwound or ended), and the data must be left in a state its next user can work with.
    pub unsafe fn force_release_if(&self, held_by: impl Fn(usize) -> bool) -> Option<usize> {
        let token = self.holder()?;
        if !held_by(token) {
            return None;
        }
        self.holder.compare_exchange(token, 0, Ordering::Release, Ordering::Relaxed).ok()
    }

    /// Takes the lock over from its holder, if the holder's token satisfies `held_by`, recording `token` as the
    /// new holder in one atomic step (so no other user can take the lock between the dead holder and the repair
    /// of the data); returns the guard of the new acquisition. For data that must be repaired before anyone else
    /// sees it (a fault may have left it half-updated).
    ///
    /// # Safety
    /// As for [`force_release_if`](Self::force_release_if): the holder must never touch the data again except
    /// through its guard's drop. The data may be in any state its holder left it in: the caller must repair it
    /// (without trusting it) before dropping the returned guard.
    ///
    /// # Panics
    /// If `token` is 0 (reserved for "free").
    pub unsafe fn take_over_if(&self, held_by: impl Fn(usize) -> bool, token: usize) -> Option<OwnedSpinGuard<'_, T>> {
        assert_ne!(token, 0, "holder token 0 means free");
        let old = self.holder()?;
        if !held_by(old) {
            return None;
        }
        self.holder
            .compare_exchange(old, token, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| OwnedSpinGuard { lock: self, token })
    }
}

impl<T> Deref for OwnedSpinGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: this guard's acquisition excludes every other guard (a forced release is only allowed once the
        // holder no longer uses the data, see `force_release_if`).
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for OwnedSpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference derived from the guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for OwnedSpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release only our own acquisition, with a load and a store instead of a compare-exchange (an atomic
        // read-modify-write is the costliest part of a short critical section, under QEMU TCG especially). This
        // is as safe as the compare-exchange: while this acquisition holds the lock, nobody else changes
        // `holder` (`try_lock_as` fails on a taken lock, and `force_release_if` may only release a holder that
        // never runs its critical section again, which this running drop is not, unless the release already
        // happened); after a forced release, `holder` is 0 or a later holder's token, which differs from ours
        // (tokens are addresses in live frames, and this guard's frame is still live), so the check skips it.
        if self.lock.holder.load(Ordering::Relaxed) == self.token {
            self.lock.holder.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_and_frees() {
        let lock = OwnedSpinLock::new(5);
        let mut guard = lock.try_lock_as(0x1000).expect("free");
        *guard += 1;
        assert_eq!(lock.holder(), Some(0x1000));
        assert!(lock.try_lock_as(0x2000).is_none());
        drop(guard);
        assert_eq!(lock.holder(), None);
        assert_eq!(*lock.try_lock_as(0x2000).expect("free again"), 6);
    }

    #[test]
    fn forced_release_only_when_the_holder_matches() {
        let lock = OwnedSpinLock::new(());
        let guard = lock.try_lock_as(0x1000).expect("free");
        // SAFETY: the test never uses the data.
        assert_eq!(unsafe { lock.force_release_if(|token| (0x2000..0x3000).contains(&token)) }, None);
        assert_eq!(lock.holder(), Some(0x1000));
        // SAFETY: as above.
        assert_eq!(unsafe { lock.force_release_if(|token| (0x0800..0x1800).contains(&token)) }, Some(0x1000));
        assert_eq!(lock.holder(), None);
        core::mem::forget(guard);
    }

    #[test]
    fn take_over_moves_the_lock_to_the_new_holder_only_when_the_old_one_matches() {
        let lock = OwnedSpinLock::new(1);
        let dead = lock.try_lock_as(0x1000).expect("free");
        // SAFETY: the test's "dead" guard never uses the data.
        assert!(unsafe { lock.take_over_if(|token| (0x2000..0x3000).contains(&token), 0x4000) }.is_none());
        assert_eq!(lock.holder(), Some(0x1000));
        // SAFETY: as above.
        let mut repair =
            unsafe { lock.take_over_if(|token| (0x0800..0x1800).contains(&token), 0x4000) }.expect("taken");
        assert_eq!(lock.holder(), Some(0x4000), "never free between the two holders");
        *repair = 2;
        drop(dead);
        assert_eq!(lock.holder(), Some(0x4000), "the dead holder's guard must not unlock the repairer");
        drop(repair);
        assert_eq!(lock.holder(), None);
        assert_eq!(*lock.try_lock_as(0x5000).expect("free"), 2);
        // A free lock has no holder to take over from.
        // SAFETY: as above.
        assert!(unsafe { lock.take_over_if(|_| true, 0x6000) }.is_none());
    }

    #[test]
    fn a_stale_guard_does_not_release_a_later_holder() {
        let lock = OwnedSpinLock::new(());
        let stale = lock.try_lock_as(0x1000).expect("free");
        // SAFETY: the test never uses the data.
        unsafe { lock.force_release_if(|_| true) };
        let later = lock.try_lock_as(0x2000).expect("released");
        drop(stale);
        assert_eq!(lock.holder(), Some(0x2000), "the stale guard's drop must not unlock the later holder");
        drop(later);
        assert_eq!(lock.holder(), None);
    }
}
