//! Lock helper: every lock of this crate is taken with interrupts disabled on the kernel target, so an interrupt
//! handler that allocates (frames, pages, heap) cannot deadlock against the code it interrupted on the same CPU.

use spin::Mutex;

/// Runs `f` with `mutex` locked (and, on the kernel target, interrupts disabled until it is unlocked again).
pub(crate) fn with_lock<T, R>(mutex: &Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
    #[cfg(target_os = "none")]
    {
        x86_64::instructions::interrupts::without_interrupts(|| f(&mut mutex.lock()))
    }
    #[cfg(not(target_os = "none"))]
    {
        f(&mut mutex.lock())
    }
}
