//! Lock helper: every lock of this crate is taken with interrupts disabled on the kernel target, so an interrupt
//! handler that allocates (frames, pages, heap) cannot deadlock against the code it interrupted on the same CPU.

use spin::Mutex;

/// Runs `f` with `mutex` locked (and, on the kernel target, interrupts disabled until it is unlocked again).
pub(crate) fn with_lock<T, R>(mutex: &Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
    #[cfg(target_os = "none")]
    {
        // Spin with `try_lock`, servicing TLB-shootdown requests meanwhile: interrupts are off, and the holder (on
        // another CPU) may be waiting for this CPU's acknowledgement of a round.
        x86_64::instructions::interrupts::without_interrupts(|| {
            loop {
                if let Some(mut guard) = mutex.try_lock() {
                    return f(&mut guard);
                }
                crate::shootdown::service_tlb_shootdown();
                core::hint::spin_loop();
            }
        })
    }
    #[cfg(not(target_os = "none"))]
    {
        f(&mut mutex.lock())
    }
}
