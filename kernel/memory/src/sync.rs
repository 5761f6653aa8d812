//! Lock helper: every lock of this crate is taken with interrupts disabled on the kernel target, so an interrupt
//! handler that allocates (frames, pages, heap) cannot deadlock against the code it interrupted on the same CPU.
//!
//! Every lock here is an [`OwnedSpinLock`] whose holder token is an address in [`with_lock`]'s frame, i.e. on the
//! holder's stack: when a task faults inside one of these critical sections, the fault path releases what the task
//! held ([`release_memory_locks_held_within`]) instead of leaving the frame or page allocator locked for good.

use owned_spin::OwnedSpinLock;

/// Runs `f` with `lock` taken (and, on the kernel target, interrupts disabled until it is released again).
pub(crate) fn with_lock<T, R>(lock: &OwnedSpinLock<T>, f: impl FnOnce(&mut T) -> R) -> R {
    // The holder token: an address in this frame, i.e. on the holder's stack.
    let anchor = 0u8;
    let token = core::ptr::addr_of!(anchor) as usize;
    #[cfg(target_os = "none")]
    {
        // Spin with `try_lock_as`, servicing TLB-shootdown requests meanwhile: interrupts are off, and the holder
        // (on another CPU) may be waiting for this CPU's acknowledgement of a round.
        x86_64::instructions::interrupts::without_interrupts(|| {
            loop {
                if let Some(mut guard) = lock.try_lock_as(token) {
                    return f(&mut guard);
                }
                crate::shootdown::service_tlb_shootdown();
                core::hint::spin_loop();
            }
        })
    }
    #[cfg(not(target_os = "none"))]
    {
        loop {
            if let Some(mut guard) = lock.try_lock_as(token) {
                return f(&mut guard);
            }
            core::hint::spin_loop();
        }
    }
}

/// Releases each of this crate's allocator and page-table locks whose holder token lies on `stack` (a faulting
/// task's), calling `released` with the lock's name for each. The heap has its own
/// ([`crate::release_heap_if_held_within`]).
///
/// # Safety
/// `stack` must be the stack of a task that faulted and will never resume the faulting code. The data under a
/// released lock is left as the fault left it: a fault inside an allocator or a page-table update may have left
/// it half-updated (the alternative, every later allocation spinning forever, is certain loss).
pub unsafe fn release_memory_locks_held_within(stack: core::ops::Range<usize>, mut released: impl FnMut(&'static str)) {
    let held = |token: usize| stack.contains(&token);
    // SAFETY: for each call, the caller guarantees the holder is dead to its critical section and accepts the state.
    unsafe {
        if crate::frames::FRAME_ALLOCATOR.force_release_if(held).is_some() {
            released("frame allocator");
        }
        if crate::pages::PAGE_ALLOCATOR.force_release_if(held).is_some() {
            released("page allocator");
        }
        #[cfg(target_os = "none")]
        if crate::paging::KERNEL_PAGE_TABLE.force_release_if(held).is_some() {
            released("kernel page table");
        }
        #[cfg(target_os = "none")]
        if crate::init::MANAGED_FRAMES.force_release_if(held).is_some() {
            released("managed frames");
        }
        if crate::deferred::PENDING.force_release_if(held).is_some() {
            released("deferred frees");
        }
    }
}
