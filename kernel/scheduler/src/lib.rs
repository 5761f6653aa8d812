//! The scheduler core: per-CPU runqueues, idle tasks, preemption, sleeping, and the task life cycle, with the
//! scheduling *policy* in a separate, swappable cell.
//!
//! # Purpose
//! Every CPU that runs tasks has a runqueue, an idle task, a sleep list and a current task ([`cpus`] state, owned
//! here so a policy swap loses no task). [`schedule`] is the one place tasks switch; it asks the policy cell
//! (crate `scheduler_policy`: `scheduler_round_robin` by default, `scheduler_priority` after
//! `swap scheduler_round_robin scheduler_priority`) which runnable task runs next. The policy is reached only by
//! calling `scheduler_policy::policy()` afresh for each decision, with interrupts disabled, and never cached, so a
//! swap (done with every other CPU stopped, e.g. by `smp::run_with_other_cpus_stopped`) redirects every CPU at its next decision.
//!
//! # Key functions
//! - Start: [`init_bsp`] (boot CPU: the calling thread becomes a task), [`ap_entry`] (other CPUs: become idle).
//! - Hooks for the interrupt cells: [`set_reschedule_ipi_fn`], [`on_timer_tick`],
//!   [`on_reschedule_ipi`], [`fail_current`] (exception path).
//! - Tasks: [`spawn`] with [`SpawnOptions`], [`join`], [`kill`], [`kill_point`] (a safe point outside the
//!   scheduler), [`exit_current`], [`current_task`].
//! - Switching: [`schedule`], [`yield_now`], [`block_current`] / [`unblock`], [`sleep`], [`sleep_until_ns`].
//! - Failures: every spawned task's body runs inside `unwind::catch_unwind`; a panic, a CPU exception (unwound
//!   by the exception hook) or a kill (unwound at the safe point) ends it with `Failed(reason)` after every
//!   `Drop` ran; [`failure_from_cause`], [`set_failure_hook`] (the fault log); [`set_exit_hook`] (told about
//!   every spawned task about to exit: `live_update` re-checks the retired cells it pinned). A task that ends `Failed`
//!   force-releases the blocking locks still registered with it (`task::HeldLock`): those held in a frame whose
//!   landing pads the unwind skipped (the faulting frame), or all of them (a kill that ended a task without
//!   unwinding).
//! - Long critical sections: [`preempt_disable`] / [`preempt_enable`] (the namespace's transaction lock).
//! - Shell: [`task_summaries`] (`ps`), [`policy_name`], [`policy_statistics`].
//! - Live swap of this cell: [`cell_state_transfer`] (see `evolution.rs`: idle loops hand over, hooks move).
//!
//! # Control flow of a switch ([`schedule`], interrupts disabled throughout)
//! 1. wake this CPU's expired sleepers into its runqueue;
//! 2. if the current task is still `Running`, make it `Runnable` and append it to the runqueue;
//! 3. `scheduler_policy::policy().pick_next(runqueue)`; nothing picked means the idle task;
//! 4. if that is the current task, return; otherwise mark it `Running`, make it current, hand the previous task
//!    over in the per-CPU `previous` slot, and `context_switch`;
//! 5. on the task that resumes: clear the previous task's `on_cpu` flag and, if it exited, reap it (free its
//!    stack); then, if the resumed task was killed, unwind it (the kill's safe point): every `Drop` on its stack
//!    runs and it ends `Failed(Killed)`. Not while an unwind is already in flight on it (counted through the
//!    unwinder's hooks), so a drop that blocks never starts a second unwind. A task switched out from an
//!    interrupt handler (its stack holds an interrupt frame, and below it an arbitrary instruction, from which
//!    unwinding is unsound: a caller's landing pad could drop a `Vec` whose `realloc` already freed its block)
//!    has its kill deferred to its next call into the scheduler or to [`kill_point`]; after
//!    [`KILL_DEFERRAL_LIMIT`] deferrals (ticks) without one, it is ended without unwinding, leaking what its
//!    stack owned.
//!
//! # Invariants
//! - A task runs only on the CPU it was assigned at spawn (pinned or least-loaded); it never migrates, so only
//!   that CPU ever pops it from a runqueue. Its stack is unmapped when it is reaped (a `MappedPages` drop: flushed
//!   locally at once and on every other CPU by a TLB-shootdown round before the pages and frames are reused).
//! - Every wake-up is a compare-and-swap into `Runnable` followed by exactly one enqueue; `schedule` enqueues the
//!   current task only on its own `Running -> Runnable` transition. So a task is queued at most once.
//! - Exit values: see `task::Task::set_exited` / `take_exit_value_or_block` (one lock orders exit and join).
#![no_std]

extern crate alloc;

mod cpus;
mod evolution;
mod exit_hook;
mod failure;
mod idle_restart;
mod info;
mod lifecycle;
mod preempt;
mod rebuild;
mod runqueue_lock;
mod sleep;
mod switch;
mod verify;

pub use cpus::{
    MAX_CPUS, current_cpu, online_cpu_count, online_cpus, set_reschedule_ipi_fn, take_current_cpu_offline,
    tick_period_ns, ticks,
};
pub use exit_hook::{ExitHook, set_exit_hook};
pub use failure::{FailureHook, failure_from_cause, set_failure_hook};
pub use idle_restart::{
    IdleRestartError, idle_hook_pending, idle_restarts, idle_scheduler_fault_pending, restart_idle_loop,
    set_idle_hook_once, set_idle_scheduler_fault_once,
};
pub use info::{TaskSummary, policy_name, policy_statistics, task_summaries};
pub use lifecycle::{InitError, JoinError, SpawnError, SpawnOptions, ap_entry, init_bsp, join, spawn};
pub use preempt::{preempt_disable, preempt_enable};
pub use rebuild::{
    idle_loop_base, idle_runqueue_fault_pending, lost_tasks_requeued, requeue_runnable_not_queued,
    set_idle_runqueue_fault_once, unqueue_for_test,
};
pub use runqueue_lock::{
    RunQueueRepair, repair_runqueues_held_within, repair_stale_queue_locks, runqueue_fault_pending,
    runqueue_release_skip_pending, set_blocked_runqueue_fault_once, set_runqueue_fault_once,
    set_runqueue_release_skipped_once, set_sleepers_fault_once, sleepers_fault_pending,
};
pub use sleep::{on_reschedule_ipi, on_timer_tick, sleep, sleep_until_ns};
pub use switch::{
    KILL_DEFERRAL_LIMIT, KillError, NotInTask, block_current, current_task, exit_current, fail_current, kill,
    kill_point, resume, schedule, set_switch_fault_once, set_task_fault_recovery, stop, switch_fault_pending,
    task_fault_recovery, unblock, yield_now,
};
pub use verify::{
    SlotRepairs, cpu_slot_repairs, damage_runqueue_for_test, damage_slot_for_test, damaged_runqueue_rebuilds,
    repair_cpu_slots, repair_damaged_runqueue, resume_running_after_fault,
};

/// The state-transfer function a live swap calls in the *new* copy of this cell (hash-free path
/// `scheduler::cell_state_transfer`, the swap convention), with every other CPU stopped, after the old copy's
/// `.data`/`.bss` were copied: re-installs the unwinder's hooks to this copy and hands the idle loops over to it
/// (see `evolution.rs`). It writes nothing the swap could not undo except those hooks, which point into this copy.
///
/// # Errors
/// Never (the signature is the swap convention's).
pub fn cell_state_transfer(transfer: &cell_namespace::StateTransfer<'_>) -> Result<(), alloc::string::String> {
    evolution::transfer(transfer)
}
