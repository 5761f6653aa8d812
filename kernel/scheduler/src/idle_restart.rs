//! Restarting a CPU's idle loop after a fault in it (or in an interrupt handler that interrupted it).
//!
//! The idle task owns nothing: between its calls into `schedule` it only halts and checks the runqueue. So when
//! code it ran faults outside the scheduler (an interrupt handler that interrupted it, a test hook), fault
//! recovery abandons the idle task's frames and re-enters the idle loop on the same stack, from the stack pointer
//! the loop had when it first started on this CPU ([`restart_idle_loop`]); the task itself (its id, its place as
//! this CPU's idle task) stays. A fault inside the scheduler's own code with interrupts off is restarted too: its
//! runqueue and sleepers locks record their holder, so fault recovery takes over those the abandoned frames held
//! and queues again a task they had picked (`fault_recovery`'s idle path).
//!
//! For tests, [`set_idle_hook_once`] makes a CPU's next idle-loop round call a function once (with interrupts
//! disabled), e.g. one that faults, [`set_idle_scheduler_fault_once`] makes it execute `ud2` once in this cell's
//! own code with interrupts enabled (a fault in the scheduler path that holds none of its spin locks), and
//! [`set_idle_runqueue_fault_once`] makes it execute `ud2` once holding its CPU's runqueue lock, interrupts off.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use crate::cpus::{MAX_CPUS, current_cpu};

/// Per CPU: the idle loop's stack pointer (16-byte aligned down) at its first start on that CPU; 0 before.
pub(crate) static IDLE_BASE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: idle-loop restarts after a fault.
static RESTARTS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: whether the next idle-loop round with interrupts enabled executes `ud2` in this cell's own code.
static SCHEDULER_FAULTS: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Per CPU: a function the next idle-loop round calls once (null: none).
static HOOKS: [AtomicPtr<()>; MAX_CPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// Why [`restart_idle_loop`] could not restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleRestartError {
    /// The current task is not this CPU's idle task.
    NotIdle,
    /// This CPU's idle loop never started (no stack pointer recorded).
    NeverStarted(usize),
}

/// Called by the idle loop at its start: records this CPU's base stack pointer the first time.
#[inline(always)]
pub(crate) fn record_base() {
    let pointer: u64;
    // SAFETY: reads RSP into a register; no memory access, no flags changed.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) pointer, options(nomem, nostack, preserves_flags)) };
    let _ = IDLE_BASE[current_cpu()].compare_exchange(0, pointer & !0xF, Ordering::AcqRel, Ordering::Acquire);
}

/// Called by the idle loop each round, interrupts disabled: runs this CPU's one-shot hook, if one is set.
pub(crate) fn run_hook_once() {
    let hook = HOOKS[current_cpu()].swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !hook.is_null() {
        // SAFETY: non-null values come only from `set_idle_hook_once`, which stores a `fn()`.
        let hook = unsafe { core::mem::transmute::<*mut (), fn()>(hook) };
        hook();
    }
}

/// Called by the idle loop each round: executes `ud2` here, in the scheduler's own code, if
/// [`set_idle_scheduler_fault_once`] asked for it and interrupts are enabled (otherwise it stays pending).
pub(crate) fn scheduler_fault_once() {
    let slot = &SCHEDULER_FAULTS[current_cpu()];
    if slot.load(Ordering::Relaxed)
        && x86_64::instructions::interrupts::are_enabled()
        && slot.swap(false, Ordering::AcqRel)
    {
        // SAFETY: `ud2` raises #UD and touches nothing; fault recovery restarts this idle loop (the idle task holds
        // nothing here: interrupts are enabled, so no scheduler spin lock is held).
        unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    }
}

/// Makes CPU `cpu`'s next idle-loop round with interrupts enabled execute `ud2` once in the scheduler cell's own
/// code (for fault-injection tests of the scheduler path). Out-of-range CPUs are ignored.
pub fn set_idle_scheduler_fault_once(cpu: usize) {
    if let Some(slot) = SCHEDULER_FAULTS.get(cpu) {
        slot.store(true, Ordering::Release);
    }
}

/// Whether CPU `cpu`'s one-shot scheduler-path fault is still waiting to happen.
pub fn idle_scheduler_fault_pending(cpu: usize) -> bool {
    SCHEDULER_FAULTS.get(cpu).is_some_and(|slot| slot.load(Ordering::Acquire))
}

/// Makes CPU `cpu`'s next idle-loop round call `hook` once, with interrupts disabled (for fault-injection tests).
/// Replaces a hook not yet run. Out-of-range CPUs are ignored.
pub fn set_idle_hook_once(cpu: usize, hook: fn()) {
    if let Some(slot) = HOOKS.get(cpu) {
        slot.store(hook as *mut (), Ordering::Release);
    }
}

/// Whether CPU `cpu`'s one-shot idle hook is still waiting to run.
pub fn idle_hook_pending(cpu: usize) -> bool {
    HOOKS.get(cpu).is_some_and(|slot| !slot.load(Ordering::Acquire).is_null())
}

/// Idle-loop restarts of CPU `cpu` so far.
pub fn idle_restarts(cpu: usize) -> u64 {
    RESTARTS.get(cpu).map_or(0, |count| count.load(Ordering::Relaxed))
}

/// Abandons the current (idle) task's frames and re-enters the idle loop from its base stack pointer.
///
/// # Errors
/// [`IdleRestartError`] if the current task is not this CPU's idle task or its loop never started; nothing
/// changed then.
///
/// # Safety
/// Every frame of the idle task below its loop's base is abandoned without running its drops: the caller must
/// know they hold nothing that must be released (fault recovery: a fault outside the scheduler's own code). Call
/// with interrupts disabled (on the exception's stack, which is free again afterwards).
pub unsafe fn restart_idle_loop() -> Result<core::convert::Infallible, IdleRestartError> {
    let cpu = current_cpu();
    if !crate::switch::current_task().is_some_and(|task| task.is_idle()) {
        return Err(IdleRestartError::NotIdle);
    }
    let base = IDLE_BASE[cpu].load(Ordering::Acquire);
    if base == 0 {
        return Err(IdleRestartError::NeverStarted(cpu));
    }
    RESTARTS[cpu].fetch_add(1, Ordering::Relaxed);
    // SAFETY: `base` is a 16-byte-aligned stack pointer of this CPU's idle loop on the idle task's stack, which is
    // still current; everything below it belongs to abandoned frames (the caller's contract). The call pushes the
    // return address, so `idle_restart_entry` starts with the ABI's alignment; it never returns.
    unsafe {
        core::arch::asm!("mov rsp, {base}", "call {entry}", base = in(reg) base, entry = sym idle_restart_entry,
            options(noreturn))
    }
}

/// The restarted idle loop's first frame.
extern "C" fn idle_restart_entry() -> ! {
    crate::lifecycle::idle_loop()
}
