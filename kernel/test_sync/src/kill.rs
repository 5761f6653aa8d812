//! Kill and fault safety of `sync::Mutex`: a waiter killed right after the mutex was handed to it, and a holder
//! that dies in the very frame holding the guard (a `ud2`, whose drops the unwind skips, and a kill of a spin loop,
//! which ends the task without unwinding). In every case the next waiter must get the mutex.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel_test_support::{ensure, spawn_error, wait_for};
use spawn::{JoinHandle, TaskBuilder};
use sync::Mutex;
use task::{ExceptionKind, ExitValue, FailureReason, RunState, interrupts};

/// Hand-off kills per run (spread round-robin over the online CPUs).
pub const HANDOFF_KILL_ITERATIONS: usize = 300;

/// How long a waiter may take to get a mutex that should be free (ms).
const BOUND_MS: u64 = 2000;

/// The CPU for iteration `iteration`: all online CPUs in turn (so both "same CPU as the killer" and "another CPU").
fn cpu_for(iteration: usize) -> usize {
    let cpus: Vec<usize> = scheduler::online_cpus().collect();
    cpus[iteration % cpus.len()]
}

/// Spawns a task on `cpu` that locks `mutex`, increments it and returns; waits until it is blocked on the mutex.
fn blocked_locker(name: &str, cpu: usize, mutex: &Arc<Mutex<u64>>) -> Result<JoinHandle<()>, String> {
    let mutex = mutex.clone();
    let handle = TaskBuilder::new(name).pin(cpu).spawn(move || *mutex.lock() += 1).map_err(spawn_error)?;
    ensure!(wait_for(BOUND_MS, || handle.task().state() == RunState::Blocked), "{name} did not block on the mutex");
    Ok(handle)
}

/// Waits (bounded) for `handle` to exit and returns its exit value.
fn join_within<T: 'static>(name: &str, handle: JoinHandle<T>) -> Result<ExitValue<T>, String> {
    ensure!(wait_for(BOUND_MS, || handle.is_finished()), "{name} did not finish within {BOUND_MS} ms");
    handle.join().map_err(|error| format!("join {name}: {error:?}"))
}

/// The mutex is unlocked (handing it to `first`) and `first` is killed at once, with interrupts off on this CPU,
/// so `first` cannot run in between when it shares this CPU; `second`, queued behind it, must get the mutex.
pub fn mutex_handoff_to_killed_waiter() -> Result<(), String> {
    let mut killed_before_running = 0;
    for iteration in 0..HANDOFF_KILL_ITERATIONS {
        let mutex = Arc::new(Mutex::new(0u64));
        let held = mutex.lock();
        let first_cpu = cpu_for(iteration);
        let first = blocked_locker("handed", first_cpu, &mutex)?;
        let second = blocked_locker("next", cpu_for(iteration + 1), &mutex)?;
        let interrupts_were_enabled = interrupts::disable();
        drop(held);
        let killed = spawn::kill(first.id());
        interrupts::restore(interrupts_were_enabled);
        match killed {
            // On another CPU the waiter may have taken the mutex and finished before the kill came.
            Ok(()) | Err(spawn::KillError::AlreadyExited(_) | spawn::KillError::NoSuchTask(_)) => {}
            Err(error) => return Err(format!("iteration {iteration}: kill: {error}")),
        }
        let first_exit = join_within("the killed waiter", first)?;
        let second_exit = join_within("the next waiter", second)
            .map_err(|error| format!("iteration {iteration}: {error} (the hand-off to the killed waiter was lost)"))?;
        ensure!(second_exit.is_completed(), "iteration {iteration}: the next waiter failed: {second_exit:?}");
        let count = *mutex.lock();
        // 2 if the killed waiter got to increment before it died (or completed), 1 if it died holding the hand-off.
        let plausible = if first_exit.is_completed() { count == 2 } else { count == 1 || count == 2 };
        ensure!(plausible, "iteration {iteration}: count {count} after {first_exit:?}");
        // On this CPU the handed waiter cannot run before the kill: it must die holding the hand-off.
        let first_here = first_cpu == scheduler::current_cpu();
        ensure!(!first_here || count == 1, "iteration {iteration}: the waiter ran before the kill on this CPU");
        if count == 1 {
            killed_before_running += 1;
        }
    }
    log::info!(
        "test_sync: {HANDOFF_KILL_ITERATIONS} hand-off kills, {killed_before_running} waiters died holding the hand-off"
    );
    ensure!(killed_before_running > 0, "no waiter was killed at the hand-off point");
    Ok(())
}

/// Locks `mutex` and executes `ud2` in the same frame: no landing pad covers the faulting instruction, so the
/// guard's drop never runs.
#[inline(never)]
fn hold_and_fault(mutex: &Mutex<u64>, go: &AtomicBool) {
    let mut guard = mutex.lock();
    *guard += 1;
    while !go.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    // SAFETY: `ud2` raises #UD, which the fault-recovery hook turns into an unwind of this task (checked enabled
    // before this runs); it touches no memory and never falls through.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack, noreturn)) }
}

/// Locks `mutex` and spins in the same frame without calling anything: a kill never reaches a safe point, so
/// after `scheduler::KILL_DEFERRAL_LIMIT` ticks the task is ended without unwinding (no drop runs at all).
#[inline(never)]
fn hold_and_spin(mutex: &Mutex<u64>, go: &AtomicBool) {
    let mut guard = mutex.lock();
    *guard += 1;
    go.store(true, Ordering::Release);
    loop {
        core::hint::spin_loop();
    }
}

/// A holder dies in the frame that holds the guard (fault, or kill from an interrupt); the next waiter must get
/// the mutex, released by the scheduler's exit path from the task's held-locks list.
pub fn holder_dies_in_its_own_frame() -> Result<(), String> {
    ensure!(scheduler::task_fault_recovery(), "fault recovery is not enabled: a ud2 would stop the machine");
    for (iteration, faults) in [true, false, true, false].into_iter().enumerate() {
        let mutex = Arc::new(Mutex::new(0u64));
        let go = Arc::new(AtomicBool::new(false));
        let (task_mutex, task_go) = (mutex.clone(), go.clone());
        let cpu = cpu_for(iteration + 1);
        let holder =
            TaskBuilder::new("holder")
                .pin(cpu)
                .spawn(move || {
                    if faults { hold_and_fault(&task_mutex, &task_go) } else { hold_and_spin(&task_mutex, &task_go) }
                })
                .map_err(spawn_error)?;
        ensure!(wait_for(BOUND_MS, || mutex.is_locked()), "the holder did not lock");
        let next = blocked_locker("next", cpu_for(iteration), &mutex)?;
        if faults {
            go.store(true, Ordering::Release);
        } else {
            ensure!(wait_for(BOUND_MS, || go.load(Ordering::Acquire)), "the holder did not start spinning");
            spawn::kill(holder.id()).map_err(|error| format!("kill: {error}"))?;
        }
        let exit = join_within("the holder", holder)?;
        let expected = if faults {
            matches!(exit.failure(), Some(FailureReason::Exception { kind: ExceptionKind::InvalidOpcode, .. }))
        } else {
            exit.failure() == Some(&FailureReason::Killed)
        };
        ensure!(expected, "holder ({}) ended {exit:?}", if faults { "ud2" } else { "killed" });
        let next_exit = join_within("the next waiter", next)
            .map_err(|error| format!("{error}: the mutex stayed locked by the dead holder"))?;
        ensure!(next_exit.is_completed(), "the next waiter failed: {next_exit:?}");
        ensure!(!mutex.is_locked(), "the mutex is still locked");
        ensure!(*mutex.lock() == 2, "the next waiter's increment is missing");
    }
    Ok(())
}

/// Runs `body` `PAIRS` times; returns the mean time per run in ns.
fn mean_ns(mut body: impl FnMut()) -> u64 {
    let started = tsc::now_ns();
    for _ in 0..PAIRS {
        body();
    }
    (tsc::now_ns() - started) / PAIRS
}

/// Iterations of each measured operation.
const PAIRS: u64 = 20_000;

/// The cost of an uncontended `lock` + `unlock` pair, in ns (logged; the mean over many pairs), next to its parts;
/// checks that no held-lock registration is left behind.
pub fn mutex_uncontended_cost() -> Result<(), String> {
    let current = scheduler::current_task().ok_or("no current task")?;
    let registered_before = current.held_lock_count();
    let mutex = Mutex::new(0u64);
    let pair = mean_ns(|| *core::hint::black_box(&mutex).lock() += 1);
    let try_pair = mean_ns(|| drop(core::hint::black_box(&mutex).try_lock()));
    ensure!(*mutex.lock() == PAIRS, "lost increments");
    let registered_after = current.held_lock_count();
    ensure!(registered_after == registered_before, "held-lock entries {registered_before} -> {registered_after}");
    // Its parts: a current-task lookup (an `Arc` clone under the per-CPU lock) and an `IrqSafeMutex` pair (the
    // mutex state and the held-locks list each take one per lock and per unlock).
    let lookup = mean_ns(|| drop(core::hint::black_box(scheduler::current_task())));
    let spin = task::IrqSafeMutex::new(0u64);
    let irq_safe = mean_ns(|| *core::hint::black_box(&spin).lock() += 1);
    log::info!(
        "test_sync: uncontended Mutex lock+unlock: {pair} ns per pair, try_lock+unlock {try_pair} ns ({PAIRS} pairs); \
         parts: current_task() {lookup} ns, IrqSafeMutex lock+unlock {irq_safe} ns"
    );
    Ok(())
}
