//! Faults in idle tasks: each one-shot idle-loop hook below makes a CPU's idle loop fault (or panic) once; the
//! loop must restart, release what its abandoned frames held, and a task pinned to that CPU must then complete.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use spawn::TaskBuilder;
use task::ExitValue;

use crate::{JOIN_TIMEOUT_NS, fault, wait_unlocked, wait_until_finished};

/// Waits up to 3 s until CPU `target`'s one-shot fault (`pending` turns false) has happened and its idle loop
/// restarted since `restarts`; `name` and `what` word the error.
fn wait_for_restart(
    name: &str,
    target: usize,
    restarts: u64,
    pending: impl Fn() -> bool,
    what: &str,
) -> Result<(), String> {
    let deadline = tsc::now_ns() + JOIN_TIMEOUT_NS;
    while pending() || scheduler::idle_restarts(target) == restarts {
        if tsc::now_ns() > deadline {
            return Err(format!("{name}: CPU {target}'s idle loop did not {what} and restart within 3 s"));
        }
        scheduler::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Spawns a task pinned to CPU `target` that sums 0..1000 and checks that it completes with 499,500 within 3 s.
fn pinned_task_completes(name: &str, target: usize) -> Result<(), String> {
    let after = TaskBuilder::new(name)
        .pin(target)
        .spawn(|| (0..1000u64).map(core::hint::black_box).sum::<u64>())
        .map_err(|error| format!("{name}: spawn: {error}"))?;
    wait_until_finished(&after, || format!("{name}: a task pinned to CPU {target} did not run after the restart"))?;
    match after.join().map_err(|error| format!("{name}: join: {error:?}"))? {
        ExitValue::Completed(499_500) => Ok(()),
        other => Err(format!("{name}: the pinned task ended with {other:?}")),
    }
}

/// An idle task faults: its CPU's idle loop restarts, and a task pinned there completes.
pub(crate) fn fault_in_idle_task() -> Result<(), String> {
    let target = cpu::online().last().ok_or("fault_in_idle: no CPU online")?.index();
    let restarts = scheduler::idle_restarts(target);
    scheduler::set_idle_hook_once(target, fault);
    wait_for_restart("fault_in_idle", target, restarts, || scheduler::idle_hook_pending(target), "fault")?;
    pinned_task_completes("fault_in_idle", target)?;
    serial::write_fmt(format_args!(
        "fault_in_idle: CPU {target}'s idle loop faulted and restarted; a task pinned there completed\n"
    ));
    Ok(())
}

/// The idle-loop hook of [`damaged_idle_state_is_not_reaped`]: marks the idle task (the current task) `Exited`, as
/// a flipped bit in its state byte did in the campaign (any value above 3 reads as `Exited`).
fn mark_idle_exited() {
    if let Some(idle) = scheduler::current_task() {
        idle.set_state(task::RunState::Exited);
    }
}

/// The idle task's state word says `Exited` when its CPU switches to another task: the switch must not reap it.
/// Before, it was reaped (its stack freed, its table entry removed), and the next time that CPU idled it switched
/// to the freed stack: every idle-loop restart faulted there again (campaign seed 2027, image *o*).
pub(crate) fn damaged_idle_state_is_not_reaped() -> Result<(), String> {
    let name = "damaged_idle_state";
    let target = cpu::online().last().ok_or("damaged_idle_state: no CPU online")?.index();
    let idle = task::all_tasks()
        .into_iter()
        .find(|task| task.is_idle() && task.cpu() == target)
        .ok_or_else(|| format!("{name}: CPU {target} has no idle task in the task table"))?;
    scheduler::set_idle_hook_once(target, mark_idle_exited);
    let deadline = tsc::now_ns() + JOIN_TIMEOUT_NS;
    while scheduler::idle_hook_pending(target) {
        if tsc::now_ns() > deadline {
            return Err(format!("{name}: CPU {target}'s idle loop did not run its hook within 3 s"));
        }
        scheduler::sleep(Duration::from_millis(2));
    }
    // A task pinned there makes the CPU switch away from its idle task (the switch that reaped it) and back.
    pinned_task_completes(name, target)?;
    if task::task_by_id(idle.id()).is_none() {
        return Err(format!("{name}: CPU {target}'s idle task was reaped after its state word read `Exited`"));
    }
    pinned_task_completes(name, target)?;
    serial::write_fmt(format_args!(
        "{name}: CPU {target}'s idle task read `Exited` at a switch; it was not reaped and the CPU went on \
         scheduling\n"
    ));
    Ok(())
}

/// The idle-loop hook of [`idle_fault_holding_heap`]: faults holding the heap's lock.
fn idle_heap_fault() {
    memory::with_heap_lock_held(fault);
}

/// An idle loop faults in code outside the scheduler while holding the heap's lock (in the campaign: a skipped
/// instruction in `__rust_dealloc` as the idle task freed a reaped task's memory). The restart must release the
/// lock the abandoned frames held, or the next allocation anywhere spins on it; before session 12 only a fault in
/// the scheduler's own code released it.
pub(crate) fn idle_fault_holding_heap() -> Result<(), String> {
    let name = "idle_fault_holding_heap";
    let target = cpu::online().last().ok_or("idle_fault_holding_heap: no CPU online")?.index();
    let restarts = scheduler::idle_restarts(target);
    scheduler::set_idle_hook_once(target, idle_heap_fault);
    wait_for_restart(name, target, restarts, || scheduler::idle_hook_pending(target), "fault")?;
    if !wait_unlocked(memory::heap_is_locked) {
        return Err(format!("{name}: the heap lock is still held after the idle loop restarted"));
    }
    let block: Vec<u8> = core::hint::black_box(alloc::vec![0x5a; 4096]);
    serial::write_fmt(format_args!(
        "{name}: CPU {target}'s idle loop faulted holding the heap lock; released, allocated {} bytes\n",
        block.len()
    ));
    Ok(())
}

/// The idle task faults in the scheduler's own code with interrupts enabled (no scheduler spin lock held): its
/// CPU's idle loop restarts (before, that CPU was stopped: "in the idle task's scheduler code"), and a task pinned
/// there completes.
pub(crate) fn scheduler_path_fault_in_idle_task() -> Result<(), String> {
    let name = "scheduler_fault_in_idle";
    let target = cpu::online().last().ok_or("scheduler_fault_in_idle: no CPU online")?.index();
    let restarts = scheduler::idle_restarts(target);
    scheduler::set_idle_scheduler_fault_once(target);
    let pending = || scheduler::idle_scheduler_fault_pending(target);
    wait_for_restart(name, target, restarts, pending, "fault in the scheduler")?;
    pinned_task_completes(name, target)?;
    serial::write_fmt(format_args!(
        "{name}: CPU {target}'s idle loop faulted in the scheduler with interrupts on and restarted; a task pinned \
         there completed\n"
    ));
    Ok(())
}

/// An idle task faults in the scheduler's code holding its CPU's runqueue lock, interrupts off (what the
/// campaign's faults in `wake_expired_sleepers` and the pick did to idle CPUs): the idle loop restarts with the
/// lock taken over and the runqueue rebuilt, and a task pinned to that CPU afterwards completes. Before, that CPU
/// was stopped ("in the idle task's scheduler code with interrupts off"), so the pinned task never ran. Needs a
/// CPU other than the test's own (an idle loop must reach the fault while the test waits); skipped on one CPU.
pub(crate) fn idle_fault_holding_runqueue() -> Result<(), String> {
    let name = "idle_fault_holding_runqueue";
    let own = scheduler::current_cpu();
    let Some(target) = cpu::online().map(|cpu| cpu.index()).filter(|&index| index != own).last() else {
        serial::write_str("idle_fault_holding_runqueue: skipped (one CPU)\n");
        return Ok(());
    };
    let restarts = scheduler::idle_restarts(target);
    scheduler::set_idle_runqueue_fault_once(target);
    let pending = || scheduler::idle_runqueue_fault_pending(target);
    wait_for_restart(name, target, restarts, pending, "fault holding its runqueue lock")?;
    pinned_task_completes(name, target)?;
    serial::write_fmt(format_args!(
        "{name}: CPU {target}'s idle loop faulted holding its runqueue lock with interrupts off and restarted; a \
         task pinned there completed\n"
    ));
    Ok(())
}

/// Panics (the idle hook's function: the unwind finds no catch in an idle task).
fn idle_panic() {
    panic!("test_fault_paths: panic in the idle task, on purpose");
}

/// An idle task panics (what a skipped call in `schedule` did in the campaign: a garbage CPU index, and a panic
/// that could not unwind out of the scheduler): no catch ends the unwind, and the idle loop restarts; a task pinned
/// there completes. Before, the end of that unwind stopped the machine ("unwinding ended outside any task
/// (IdleTask)", QEMU exited).
pub(crate) fn panic_in_idle_task() -> Result<(), String> {
    let target = cpu::online().last().ok_or("panic_in_idle: no CPU online")?.index();
    let restarts = scheduler::idle_restarts(target);
    scheduler::set_idle_hook_once(target, idle_panic);
    wait_for_restart("panic_in_idle", target, restarts, || scheduler::idle_hook_pending(target), "panic")?;
    pinned_task_completes("panic_in_idle", target)?;
    serial::write_fmt(format_args!(
        "panic_in_idle: CPU {target}'s idle task panicked, its idle loop restarted; a task pinned there completed\n"
    ));
    Ok(())
}
