//! In-kernel test: swap the scheduler policy cell while tasks run, and back, through [`run`].
//!
//! For each of the two swaps (to the other policy, then back to the original):
//! 1. spawn load: two busy, yielding tasks per CPU, and on one CPU a pair `high` (priority 10) / `low`
//!    (priority 5) that count their iterations;
//! 2. swap the policy cell (`scheduler_round_robin` <-> `scheduler_priority`) with every other CPU stopped;
//! 3. check `scheduler::policy_name()` and what `task_summaries` (`ps`) reports as policy data;
//! 4. check the new policy's behaviour: under priority, `low` makes no progress while `high` runs; under round
//!    robin, both progress;
//! 5. stop the load and join every task: each must complete.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use kernel_test_support::ensure;
use spawn::{JoinHandle, TaskBuilder};
use task::ExitValue;

/// The two policy cells and the names their policies report.
const POLICIES: [(&str, &str); 2] = [("scheduler_round_robin", "round_robin"), ("scheduler_priority", "priority")];

/// Runs the test; `Err` names the first failed check. Leaves the original policy in place.
#[inline(never)]
pub fn run() -> Result<(), String> {
    let original = scheduler::policy_name();
    let index = POLICIES.iter().position(|(_, name)| *name == original).ok_or("unknown policy in use")?;
    let (original_cell, _) = POLICIES[index];
    let (other_cell, other_name) = POLICIES[1 - index];
    swap_under_load(original_cell, other_cell, other_name)?;
    swap_under_load(other_cell, original_cell, &original)?;
    Ok(())
}

/// A worker that counts its iterations (yielding after each) until `stop` is set; returns the count.
fn worker(
    name: &str,
    pin: Option<usize>,
    priority: u8,
    stop: &Arc<AtomicBool>,
) -> Result<(JoinHandle<u64>, Arc<AtomicU64>), String> {
    let counter = Arc::new(AtomicU64::new(0));
    let (stop, count) = (stop.clone(), counter.clone());
    let mut builder = TaskBuilder::new(name).priority(priority);
    if let Some(cpu) = pin {
        builder = builder.pin(cpu);
    }
    let handle = builder
        .spawn(move || {
            while !stop.load(Ordering::Acquire) {
                count.fetch_add(1, Ordering::Relaxed);
                core::hint::black_box((0..200u64).sum::<u64>());
                scheduler::yield_now();
            }
            count.load(Ordering::Relaxed)
        })
        .map_err(|error| format!("spawn: {error}"))?;
    Ok((handle, counter))
}

fn swap(old: &str, new: &str) -> Result<(), String> {
    let options = cell_namespace::SwapOptions::default();
    let report = live_update::swap(&[(old, new)], &options).map_err(|error| format!("swap {old} {new}: {error}"))?;
    log::info!("test_policy_swap: swap {old} -> {new}: {report}");
    Ok(())
}

fn swap_under_load(old_cell: &str, new_cell: &str, new_name: &str) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let cpus: Vec<usize> = scheduler::online_cpus().collect();
    // The pair shares a CPU other than ours when there is one, so this task keeps running under strict priority.
    let me = scheduler::current_cpu();
    let pair_cpu = cpus.iter().copied().find(|&cpu| cpu != me).unwrap_or(me);
    let (high, high_count) = worker("high", Some(pair_cpu), task::DEFAULT_PRIORITY, &stop)?;
    let (low, low_count) = worker("low", Some(pair_cpu), task::DEFAULT_PRIORITY - 5, &stop)?;
    let mut load = Vec::new();
    for &cpu in &cpus {
        for _ in 0..2 {
            load.push(worker("load", Some(cpu), task::DEFAULT_PRIORITY, &stop)?.0);
        }
    }
    scheduler::sleep(Duration::from_millis(20));
    swap(old_cell, new_cell)?;
    let result = check_policy(new_name, &high, &high_count, &low_count);
    stop.store(true, Ordering::Release);
    for handle in load.into_iter().chain([high, low]) {
        match handle.join().map_err(|error| format!("join: {error:?}"))? {
            ExitValue::Completed(count) if count > 0 => {}
            other => return Err(format!("a task did not complete after the swap: {other:?}")),
        }
    }
    result
}

fn check_policy(
    name: &str,
    high: &JoinHandle<u64>,
    high_count: &AtomicU64,
    low_count: &AtomicU64,
) -> Result<(), String> {
    let in_use = scheduler::policy_name();
    ensure!(in_use == name, "policy {in_use} in use after swapping to {name}");
    let rows = scheduler::task_summaries();
    let row = rows.iter().find(|row| row.id == high.id()).ok_or("the high task is missing from ps")?;
    let expected = (name == "priority").then_some(task::DEFAULT_PRIORITY);
    ensure!(row.policy_data.priority == expected, "ps shows {:?} for `high` under {name}", row.policy_data);
    // Let the new policy settle (the low task may be mid-slice), then measure both tasks' progress.
    scheduler::sleep(Duration::from_millis(30));
    let (high_before, low_before) = (high_count.load(Ordering::Relaxed), low_count.load(Ordering::Relaxed));
    scheduler::sleep(Duration::from_millis(50));
    let high_progress = high_count.load(Ordering::Relaxed) - high_before;
    let low_progress = low_count.load(Ordering::Relaxed) - low_before;
    log::info!("test_policy_swap: under {name}: high +{high_progress}, low +{low_progress} iterations in 50 ms");
    ensure!(high_progress > 0, "the high-priority task made no progress under {name}");
    if name == "priority" {
        ensure!(low_progress == 0, "the low-priority task ran {low_progress} times beside a busy higher one");
    } else {
        ensure!(low_progress > 0, "the low-priority task starved under {name}");
    }
    Ok(())
}
