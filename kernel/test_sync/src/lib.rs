//! In-kernel tests of the `sync` cell and of lock discipline, run by the shell's `test` builtin through [`run`].
//!
//! 1. Wait queue: waiters wake only once their condition holds, and `notify_one` wakes exactly one.
//! 2. Mutex fairness: tasks queued on a held mutex in a known order get it in that order (FIFO hand-off), and in
//!    later rounds no task gets it more than twice in any window of as many acquisitions as there are tasks
//!    (a task that unlocks and relocks goes behind those already waiting).
//! 3. Mutex exclusion: read-yield-write increments under the lock by tasks on every CPU lose no update.
//! 4. Kill safety (`kill.rs`): a waiter killed right after an unlock handed it the mutex (hundreds of times, on
//!    every CPU); a holder that faults (`ud2`) or is killed from an interrupt in the frame holding the guard.
//!    The next waiter must get the mutex each time.
//! 5. Preempted holders (`starvation.rs`): COM1's lock and a namespace's transaction lock, each wanted by a
//!    high-priority task on the holder's CPU, must be had within a bound.
//! 6. The cost of an uncontended lock/unlock pair (logged).
//! 7. Dead holders of an `OwnedIrqMutex` (`stale.rs`): a guard the locking task itself left behind, and one left
//!    by a task that sleeps since, are taken over by the next `lock` (with `task::IrqSafeMutex` both spin forever).
//!
//! Every step runs even if an earlier one failed; `run` reports all failures.
#![no_std]

extern crate alloc;

mod kill;
mod stale;
mod starvation;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;

use kernel_test_support::{ensure, spawn_error, step, wait_for};
use spawn::TaskBuilder;
use sync::{Mutex, WaitQueue};
use task::{ExitValue, IrqSafeMutex, RunState, TaskId};

/// This cell's name, prefixed to its log lines.
const CELL: &str = "test_sync";

/// Runs every test of this cell; `Err` names every failed check.
#[inline(never)]
pub fn run() -> Result<(), String> {
    let results = [
        step(CELL, "wait queue", wait_queue),
        step(CELL, "notify_one", notify_one),
        step(CELL, "mutex FIFO fairness", mutex_fairness),
        step(CELL, "mutex exclusion", mutex_exclusion),
        step(CELL, "mutex hand-off to a killed waiter", kill::mutex_handoff_to_killed_waiter),
        step(CELL, "mutex holder dies in its own frame", kill::holder_dies_in_its_own_frame),
        step(CELL, "COM1 holder not preempted", starvation::serial_lock_holder_is_not_preempted),
        step(CELL, "transaction holder not preempted", starvation::namespace_transaction_holder_is_not_preempted),
        step(CELL, "mutex uncontended cost", kill::mutex_uncontended_cost),
        step(CELL, "owned spin lock left by its own frame", stale::left_by_own_frame_is_taken_over),
        step(CELL, "owned spin lock left by a sleeping task", stale::left_by_sleeping_task_is_taken_over),
        step(CELL, "owned spin lock left by a reaped task", stale::left_by_reaped_task_is_taken_over),
    ];
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if failures.is_empty() { Ok(()) } else { Err(failures.join("; ")) }
}

fn wait_queue() -> Result<(), String> {
    // Waiter k waits until the level reaches k and returns the level it saw.
    let level = Arc::new(IrqSafeMutex::new(0usize));
    let queue = Arc::new(WaitQueue::new());
    let woken = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for k in 1..=4usize {
        let (level, queue, woken) = (level.clone(), queue.clone(), woken.clone());
        let handle = TaskBuilder::new("waiter")
            .spawn(move || {
                let seen = queue.wait_until(|| {
                    let level = *level.lock();
                    (level >= k).then_some(level)
                });
                woken.fetch_add(1, Ordering::AcqRel);
                seen
            })
            .map_err(spawn_error)?;
        handles.push(handle);
    }
    ensure!(wait_for(2000, || queue.len() == 4), "waiters did not queue ({} queued)", queue.len());
    for step in 1..=4usize {
        *level.lock() = step;
        queue.notify_all();
        ensure!(wait_for(2000, || woken.load(Ordering::Acquire) == step), "level {step}: wrong number woken");
        scheduler::sleep(Duration::from_millis(2));
        ensure!(woken.load(Ordering::Acquire) == step, "level {step}: a waiter woke before its condition held");
    }
    for (index, handle) in handles.into_iter().enumerate() {
        let k = index + 1;
        let value = handle.join().map_err(|error| format!("join: {error:?}"))?;
        ensure!(matches!(value, ExitValue::Completed(seen) if seen == k), "waiter {k} woke at {value:?}");
    }
    Ok(())
}

fn notify_one() -> Result<(), String> {
    let tokens = Arc::new(IrqSafeMutex::new(0usize));
    let queue = Arc::new(WaitQueue::new());
    let woken = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (tokens, queue, woken) = (tokens.clone(), queue.clone(), woken.clone());
            TaskBuilder::new("token").spawn(move || {
                queue.wait_until(|| {
                    let mut tokens = tokens.lock();
                    (*tokens > 0).then(|| *tokens -= 1)
                });
                woken.fetch_add(1, Ordering::AcqRel);
            })
        })
        .collect::<Result<_, _>>()
        .map_err(spawn_error)?;
    ensure!(wait_for(2000, || queue.len() == 3), "waiters did not queue");
    for round in 1..=3 {
        *tokens.lock() += 1;
        ensure!(queue.notify_one(), "round {round}: notify_one woke nobody");
        ensure!(wait_for(2000, || woken.load(Ordering::Acquire) == round), "round {round}: the woken task did not run");
        scheduler::sleep(Duration::from_millis(2));
        ensure!(woken.load(Ordering::Acquire) == round, "round {round}: more than one task woke");
    }
    ensure!(!queue.notify_one(), "notify_one on an empty queue reported a wake-up");
    for handle in handles {
        handle.join().map_err(|error| format!("join: {error:?}"))?;
    }
    Ok(())
}

/// One acquisition of the fairness test's mutex: the worker, and the tasks queued for the mutex at that moment.
type Acquisition = (usize, Vec<TaskId>);

fn mutex_fairness() -> Result<(), String> {
    const WORKERS: usize = 4;
    const ROUNDS: usize = 5;
    // Each acquisition records its worker and the tasks queued for the mutex at that moment (taken under it).
    let mutex: Arc<Mutex<Vec<Acquisition>>> = Arc::new(Mutex::new(Vec::new()));
    let held = mutex.lock();
    let mut handles = Vec::new();
    for worker in 0..WORKERS {
        let mutex = mutex.clone();
        let handle = TaskBuilder::new("contender")
            .spawn(move || {
                for _ in 0..ROUNDS {
                    let mut order = mutex.lock();
                    let queued = mutex.queued_waiters();
                    order.push((worker, queued));
                }
            })
            .map_err(spawn_error)?;
        // Queue the workers in a known order: each must be blocked on the mutex before the next starts.
        ensure!(wait_for(2000, || handle.task().state() == RunState::Blocked), "worker {worker} did not block");
        handles.push(handle);
    }
    let ids: Vec<TaskId> = handles.iter().map(|handle| handle.id()).collect();
    drop(held);
    for handle in handles {
        let value = handle.join().map_err(|error| format!("join: {error:?}"))?;
        ensure!(value.is_completed(), "a contender failed: {value:?}");
    }
    let acquisitions = mutex.lock().clone();
    let order: Vec<usize> = acquisitions.iter().map(|(worker, _)| *worker).collect();
    // The first round is strictly FIFO: the workers were queued in a known order while the lock was held.
    ensure!(order.len() == WORKERS * ROUNDS, "acquisition count {} in {order:?}", order.len());
    let first_round: Vec<usize> = (0..WORKERS).collect();
    ensure!(order[..WORKERS] == first_round[..], "first round {order:?}, expected FIFO {first_round:?} first");
    for worker in 0..WORKERS {
        let count = order.iter().filter(|&&holder| holder == worker).count();
        ensure!(count == ROUNDS, "worker {worker} acquired {count} times in {order:?}");
    }
    // Hand-off is FIFO: a task queued while worker w held the mutex gets it before w does again (w queues behind
    // it). When each worker re-queues is a race between CPUs (under QEMU's TCG a vCPU may not run for a while), so
    // the check uses the queue itself, as each holder saw it, not the order of acquisitions alone.
    for (index, (worker, queued)) in acquisitions.iter().enumerate() {
        let next_own = acquisitions[index + 1..].iter().position(|(holder, _)| holder == worker);
        let Some(next_own) = next_own.map(|offset| index + 1 + offset) else { continue };
        for waiter in queued {
            let Some(waiting) = ids.iter().position(|id| id == waiter) else { continue };
            let served = acquisitions[index + 1..next_own].iter().any(|(holder, _)| *holder == waiting);
            ensure!(
                served,
                "worker {worker} bypassed the queue: worker {waiting} was queued at its acquisition {index} but \
                 had not got the mutex by its next one ({next_own}); order {order:?}"
            );
        }
    }
    Ok(())
}

fn mutex_exclusion() -> Result<(), String> {
    const INCREMENTS: usize = 50;
    let workers = 2 * scheduler::online_cpu_count().max(2);
    let counter = Arc::new(Mutex::new(0usize));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let counter = counter.clone();
            TaskBuilder::new("incrementer").spawn(move || {
                for _ in 0..INCREMENTS {
                    let mut guard = counter.lock();
                    let value = *guard;
                    scheduler::yield_now();
                    *guard = value + 1;
                }
            })
        })
        .collect::<Result<_, _>>()
        .map_err(spawn_error)?;
    for handle in handles {
        handle.join().map_err(|error| format!("join: {error:?}"))?;
    }
    let total = *counter.lock();
    ensure!(total == workers * INCREMENTS, "counter {total}, expected {}", workers * INCREMENTS);
    ensure!(counter.try_lock().is_some(), "the mutex stayed locked");
    Ok(())
}
