//! Step 7: an `OwnedIrqMutex` whose guard was never dropped (`core::mem::forget`, as a fault that skipped the
//! guard's frame or its release instruction leaves it) is taken over by the next `lock`, whether the guard was
//! left by the locking task itself, by another task that ran on and sleeps (not on a CPU), or by a task that exited
//! and was reaped (a task ended by a fault inside the critical section: its token lies on a reaped stack,
//! `task::was_reaped_stack`, that no task owns now). Each `lock` must return within 3 s; with
//! `task::IrqSafeMutex` (no holder record) it spins forever with interrupts off (checked: the NMI watchdog then
//! fails the test task).

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use kernel_test_support::{ensure, spawn_error, wait_for};
use spawn::TaskBuilder;
use sync::OwnedIrqMutex;
use task::ExitValue;

/// Leaves a guard of `lock` behind (its release never runs), then restores interrupts as the guard would have.
fn leave_locked(lock: &OwnedIrqMutex<u64>) {
    let were_enabled = task::interrupts::disable();
    core::mem::forget(lock.lock());
    task::interrupts::restore(were_enabled);
}

pub(crate) fn left_by_own_frame_is_taken_over() -> Result<(), String> {
    let lock = OwnedIrqMutex::new(41u64);
    let before = sync::stale_locks_taken_over();
    leave_locked(&lock);
    ensure!(lock.is_locked(), "the left guard does not hold the lock");
    let started = tsc::now_ns();
    *lock.lock() += 1;
    let waited_ms = (tsc::now_ns() - started) / 1_000_000;
    ensure!(*lock.lock() == 42, "the data changed during the take-over");
    ensure!(!lock.is_locked(), "the lock is still held after its new guard was dropped");
    ensure!(sync::stale_locks_taken_over() > before, "no take-over was counted");
    ensure!(waited_ms < 3000, "the take-over took {waited_ms} ms");
    log::info!("test_sync: a lock its own dead frame held was taken over after {waited_ms} ms");
    Ok(())
}

pub(crate) fn left_by_sleeping_task_is_taken_over() -> Result<(), String> {
    let lock = Arc::new(OwnedIrqMutex::new(7u64));
    let done = Arc::new(AtomicBool::new(false));
    let before = sync::stale_locks_taken_over();
    let (held, finished) = (lock.clone(), done.clone());
    // Leaves the lock taken, then sleeps until the test is over (a task that skipped a release and ran on).
    let leaver = TaskBuilder::new("leave_locked")
        .spawn(move || {
            leave_locked(&held);
            while !finished.load(Ordering::Acquire) {
                scheduler::sleep(Duration::from_millis(1));
            }
        })
        .map_err(spawn_error)?;
    ensure!(wait_for(3000, || lock.is_locked()), "the task did not leave the lock taken");
    let started = tsc::now_ns();
    *lock.lock() += 1;
    let waited_ms = (tsc::now_ns() - started) / 1_000_000;
    done.store(true, Ordering::Release);
    ensure!(*lock.lock() == 8, "the data changed during the take-over");
    ensure!(sync::stale_locks_taken_over() > before, "no take-over was counted");
    ensure!(waited_ms < 3000, "the take-over took {waited_ms} ms");
    match leaver.join().map_err(|error| format!("join: {error:?}"))? {
        ExitValue::Completed(()) => {}
        other => return Err(format!("the task that left the lock ended with {other:?}")),
    }
    log::info!("test_sync: a lock a sleeping task held was taken over after {waited_ms} ms");
    Ok(())
}

pub(crate) fn left_by_reaped_task_is_taken_over() -> Result<(), String> {
    let lock = Arc::new(OwnedIrqMutex::new(70u64));
    let before = sync::stale_locks_taken_over();
    let held = lock.clone();
    // Leaves the lock taken and ends (as a task ended inside the critical section by a fault does).
    let leaver = TaskBuilder::new("leave_locked_exit").spawn(move || leave_locked(&held)).map_err(spawn_error)?;
    let id = leaver.id();
    match leaver.join().map_err(|error| format!("join: {error:?}"))? {
        ExitValue::Completed(()) => {}
        other => return Err(format!("the task that left the lock ended with {other:?}")),
    }
    ensure!(lock.is_locked(), "the exited task did not leave the lock taken");
    // Reaped by its CPU's next switch after its exit.
    ensure!(wait_for(3000, || task::task_by_id(id).is_none()), "task {id} was not reaped");
    let started = tsc::now_ns();
    *lock.lock() += 1;
    let waited_ms = (tsc::now_ns() - started) / 1_000_000;
    ensure!(*lock.lock() == 71, "the data changed during the take-over");
    ensure!(sync::stale_locks_taken_over() > before, "no take-over was counted");
    ensure!(waited_ms < 3000, "the take-over took {waited_ms} ms");
    log::info!("test_sync: a lock a reaped task held was taken over after {waited_ms} ms");
    Ok(())
}
