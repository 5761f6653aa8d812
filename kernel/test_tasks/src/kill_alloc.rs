//! Killing a task in the middle of heap work must leave the heap consistent (issue 9/12: `yes | upper | head 2`
//! ended in `Freed node ... aliases existing hole`).
//!
//! The victims reallocate in a tight loop (`Vec::push` + `shrink_to_fit`: one `realloc` per iteration, so most of
//! their time is spent between an allocator call and the store of its result) and only now and then reach a
//! scheduler safe point (`yield_now`). A kill that unwound them from the interrupted instruction would, sooner or
//! later, land right after `realloc` freed the old block and before `RawVec` stored the new pointer; the
//! closure's landing pad would then free the old block a second time. The kill must instead take effect at the
//! safe point, where every landing pad sees consistent state; so every victim's `Drop`s run, and the heap's use
//! goes back to its baseline. A last few victims never reach a safe point: they are ended without unwinding, which
//! leaks their (small, bounded) vectors but must not corrupt anything.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use kernel_test_support::{ensure, spawn_error, wait_for};
use spawn::TaskBuilder;
use task::{ExitValue, FailureReason, RunState};

/// Victims killed while reaching a safe point now and then.
const ROUNDS: usize = 300;
/// Victims that never reach a safe point (each costs `KILL_DEFERRAL_LIMIT` ticks).
const BUSY_ROUNDS: usize = 3;
/// Reallocations between two safe points of a cooperative victim.
const ITERATIONS_PER_YIELD: usize = 200;
/// Heap bytes other tasks (logging, the shell) may hold at the end beyond the baseline.
const HEAP_TOLERANCE: usize = 16 * 1024;
/// Heap bytes the busy victims may leak between them: each owns at most a 33-element `Vec<u64>` and a String of
/// at most 100 bytes (plus allocator rounding).
const BUSY_LEAK_BOUND: usize = BUSY_ROUNDS * 1024;

/// One victim's heap work: a reallocation per call, in frames that own the vector and the string.
#[inline(never)]
fn churn(numbers: &mut Vec<u64>, text: &mut String, step: u64) {
    numbers.push(step);
    numbers.shrink_to_fit();
    text.push(char::from(b'a' + (step % 26) as u8));
    if text.len().is_multiple_of(8) {
        text.shrink_to_fit();
    }
    if numbers.len() > 32 {
        numbers.clear();
        numbers.shrink_to_fit();
    }
    if text.len() > 100 {
        *text = String::new();
    }
}

/// A victim's body: reallocates forever, yielding every [`ITERATIONS_PER_YIELD`] iterations if `cooperative`.
fn victim(started: &AtomicBool, cooperative: bool) {
    let mut numbers: Vec<u64> = Vec::new();
    let mut text = String::new();
    let mut step = 0u64;
    loop {
        for _ in 0..ITERATIONS_PER_YIELD {
            churn(&mut numbers, &mut text, step);
            step = step.wrapping_add(1);
        }
        started.store(true, Ordering::Release);
        if cooperative {
            scheduler::yield_now();
        }
    }
}

/// Spawns a victim on CPU `cpu`, lets it run `delay_yields` yields after it started, kills it, and checks it
/// ended `Failed(Killed)`.
fn kill_one(round: usize, cpu: usize, cooperative: bool, delay_yields: usize) -> Result<(), String> {
    let started = Arc::new(AtomicBool::new(false));
    let victim_started = started.clone();
    let handle = TaskBuilder::new("realloc_victim")
        .pin(cpu)
        .spawn(move || victim(&victim_started, cooperative))
        .map_err(spawn_error)?;
    ensure!(wait_for(2000, || started.load(Ordering::Acquire)), "round {round}: the victim never ran");
    for _ in 0..delay_yields {
        scheduler::yield_now();
    }
    spawn::kill(handle.id()).map_err(|error| format!("round {round}: kill: {error}"))?;
    match handle.join() {
        Ok(ExitValue::Failed(FailureReason::Killed)) => Ok(()),
        other => Err(format!("round {round}: the victim ended {other:?} instead of Failed(Killed)")),
    }
}

/// Allocates blocks of many sizes, fills each with its own pattern, checks them all, and frees them: a heap
/// whose free list was corrupted hands out overlapping blocks (or panics in the allocator).
fn heap_pattern_check() -> Result<(), String> {
    let blocks: Vec<Box<[u8]>> =
        (1..=64usize).map(|index| alloc::vec![index as u8; index * 24 + (index % 7)].into_boxed_slice()).collect();
    for (index, block) in blocks.iter().enumerate() {
        let expected = (index + 1) as u8;
        ensure!(block.iter().all(|&byte| byte == expected), "heap block {index} was overwritten (overlapping blocks)");
    }
    Ok(())
}

/// Waits until only the tasks resident before are left (the victims were reaped), then reads the heap use.
fn settle(resident: usize) -> Result<usize, String> {
    ensure!(wait_for(2000, || task::task_count() == resident), "killed victims were not reaped");
    scheduler::sleep(Duration::from_millis(5));
    Ok(memory::stats().heap_used_bytes)
}

/// See the module docs.
pub fn kill_while_allocating() -> Result<(), String> {
    let cpus: Vec<usize> = scheduler::online_cpus().collect();
    ensure!(!cpus.is_empty(), "no online CPU");
    let resident = task::all_tasks().iter().filter(|task| task.state() != RunState::Exited).count();
    // Warm up (task table, runqueues, log buffers at their working capacity).
    kill_one(0, cpus[0], true, 0)?;
    let baseline = settle(resident)?;
    for round in 0..ROUNDS {
        kill_one(round, cpus[round % cpus.len()], true, round % 3)?;
    }
    heap_pattern_check()?;
    let after = settle(resident)?;
    log::info!("test_tasks: {ROUNDS} kills of reallocating tasks; heap used {baseline} -> {after} bytes");
    ensure!(
        after <= baseline + HEAP_TOLERANCE,
        "heap use grew from {baseline} to {after} bytes over {ROUNDS} kills: the victims' drops did not all run"
    );
    for round in 0..BUSY_ROUNDS {
        kill_one(round, cpus[round % cpus.len()], false, 0)?;
    }
    heap_pattern_check()?;
    let busy_after = settle(resident)?;
    log::info!("test_tasks: {BUSY_ROUNDS} kills of never-yielding reallocating tasks; heap used {busy_after} bytes");
    ensure!(
        busy_after <= after + HEAP_TOLERANCE + BUSY_LEAK_BOUND,
        "heap use grew from {after} to {busy_after} bytes over {BUSY_ROUNDS} busy kills (more than their vectors)"
    );
    Ok(())
}
