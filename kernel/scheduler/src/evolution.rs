//! How the scheduler core survives its own live swap (`swap scheduler scheduler`).
//!
//! The swap gate carries the per-CPU state over (runqueues, sleepers, current and idle tasks: the default copy of
//! `.data`/`.bss`) and redirects the old copy's references to that state into the new copy. Two kinds of old code
//! would otherwise keep running forever, and two stored function pointers would keep pointing into the old copy:
//! - **The idle loops** never return, so every CPU would idle in the old copy's code. Each idle loop remembers the
//!   [`IDLE_GENERATION`] it started in; the new copy's `cell_state_transfer` bumps it and publishes its own idle
//!   loop in [`IDLE_LOOP`]; an old idle loop seeing the bump jumps into the published one (its own frame stays on
//!   the stack, never resumed, which keeps that old copy retired but idle).
//! - **The unwinder's hooks** (`unwind::set_unwind_hooks`, stored in nano_core) and the heap's deferred-preemption
//!   hook (`memory::set_deferred_preemption_hook`) are re-installed by the new copy.
//! - The timer tick reaches the scheduler through `tasking`'s trampoline (a relocation, rewritten by the swap), not
//!   through a pointer stored in `apic`.
//!
//! Tasks switched out inside the old copy's `schedule` return through its code once, on the carried-over state,
//! and leave it; the old copy is reclaimed when no frame, stopped CPU or stored pointer refers to it any more.

use alloc::string::String;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// Bumped by each new copy of the scheduler at its swap; idle loops of older copies hand over when it changes.
static IDLE_GENERATION: AtomicU64 = AtomicU64::new(0);
/// The newest copy's idle loop (null until the first swap: every idle loop then is the newest).
static IDLE_LOOP: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// The generation an idle loop starts in.
pub(crate) fn idle_generation() -> u64 {
    IDLE_GENERATION.load(Ordering::Acquire)
}

/// Called by an idle loop each time round with the generation it started in: if a newer copy of the scheduler
/// was swapped in since, continues in that copy's idle loop and never returns.
pub(crate) fn hand_over_if_swapped(started_in: u64) {
    if IDLE_GENERATION.load(Ordering::Acquire) == started_in {
        return;
    }
    let newest = IDLE_LOOP.load(Ordering::Acquire);
    if !newest.is_null() {
        // SAFETY: non-null values come only from `cell_state_transfer`, which stores a copy's `idle_loop`
        // (`fn() -> !`); that copy stays mapped while this frame, whose code reads it, refers to it (the swap gate
        // pins a copy while any CPU or stack is in it, and this CPU is about to be).
        let idle_loop = unsafe { core::mem::transmute::<*mut (), fn() -> !>(newest) };
        idle_loop();
    }
}

/// The body of `scheduler::cell_state_transfer`: at the commit (so that an aborted swap leaves nothing pointing
/// into the discarded copy), re-installs the unwinder's hooks to this copy's functions and hands the idle loops
/// over. The preemption hooks given to `cell_namespace` cannot move (it keeps the first pair for good): they keep
/// an old copy retired, running on the carried-over state.
pub(crate) fn transfer(transfer: &cell_namespace::StateTransfer<'_>) -> Result<(), String> {
    transfer.after_commit(alloc::boxed::Box::new(|| {
        unwind::set_unwind_hooks(crate::switch::unwind_started, crate::switch::unwind_caught);
        memory::set_deferred_preemption_hook(crate::sleep::heap_deferred_preemption);
        IDLE_LOOP.store(crate::lifecycle::idle_loop as *mut (), Ordering::Release);
        IDLE_GENERATION.fetch_add(1, Ordering::AcqRel);
    }));
    Ok(())
}
