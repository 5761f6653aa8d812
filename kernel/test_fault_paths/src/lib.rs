//! In-kernel tests of faults that strike while the faulting task holds a lock the fault path needs, run by the
//! shell's `test` builtin.
//!
//! # Purpose
//! The CPU-exception report and the task layer's recovery used to take COM1's lock and the heap lock (and the
//! namespaces'): a task faulting while it held one hung its CPU in the report. Each test here spawns a task that
//! takes one of those locks and executes `ud2` while holding it, then checks that the task ends `Failed` with
//! `#UD` (so the report completed and the task was unwound), that the lock is free again, and that the locked
//! facility works (a line is printed, a block is allocated). Without the fix the task never ends: the join times
//! out after [`JOIN_TIMEOUT_NS`] (on one CPU the whole machine hangs, which the harness reports as a timeout).
//!
//! # Control flow of [`run`]
//! 1. fault holding COM1's lock (inside `serial::with_port`);
//! 2. fault holding the heap lock (inside `memory::with_heap_lock_held`).
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use spawn::TaskBuilder;
use task::{ExceptionKind, ExitValue, FailureReason};

/// How long a faulting task may take to end (its report, stack trace and unwind take milliseconds).
const JOIN_TIMEOUT_NS: u64 = 3_000_000_000;

/// Executes `ud2` (through `fault_injection`, called by name so a reload of it re-links this cell).
#[inline(never)]
fn fault() {
    // SAFETY: runs in a spawned task with the exception hook installed, which unwinds it.
    core::hint::black_box(unsafe { fault_injection::invalid_opcode() });
}

/// Spawns a task running `body`, waits for it to end, and checks that it failed with `#UD`.
fn expect_ud(name: &str, body: fn()) -> Result<(), String> {
    let handle = TaskBuilder::new(name).spawn(body).map_err(|error| format!("{name}: spawn: {error}"))?;
    let deadline = tsc::now_ns() + JOIN_TIMEOUT_NS;
    while !handle.is_finished() {
        if tsc::now_ns() > deadline {
            return Err(format!("{name}: the faulting task did not end within 3 s (fault path hung?)"));
        }
        scheduler::sleep(Duration::from_millis(2));
    }
    match handle.join().map_err(|error| format!("{name}: join: {error:?}"))? {
        ExitValue::Failed(FailureReason::Exception { kind: ExceptionKind::InvalidOpcode, .. }) => Ok(()),
        ExitValue::Failed(reason) => Err(format!("{name}: wrong failure: {reason}")),
        ExitValue::Completed(()) => Err(format!("{name}: completed instead of faulting")),
    }
}

/// Waits up to 100 ms for `locked` to turn false (another CPU may hold the lock for a moment).
fn wait_unlocked(locked: fn() -> bool) -> bool {
    let deadline = tsc::now_ns() + 100_000_000;
    while locked() {
        if tsc::now_ns() > deadline {
            return false;
        }
        scheduler::yield_now();
    }
    true
}

/// A task faults inside `serial::with_port`: recovered, COM1 free, and a line prints.
fn fault_holding_serial() -> Result<(), String> {
    expect_ud("fault_holding_com1", || {
        serial::with_port(|_port| fault());
    })?;
    if !wait_unlocked(serial::is_locked) {
        return Err("fault_holding_com1: COM1's lock is still held after the task ended".into());
    }
    serial::write_str("fault_holding_com1: recovered; COM1 free, this line printed\n");
    Ok(())
}

/// A task faults while holding the heap lock: recovered, heap free, and an allocation succeeds.
fn fault_holding_heap() -> Result<(), String> {
    expect_ud("fault_holding_heap", || memory::with_heap_lock_held(fault))?;
    if !wait_unlocked(memory::heap_is_locked) {
        return Err("fault_holding_heap: the heap lock is still held after the task ended".into());
    }
    let block: Vec<u8> = core::hint::black_box(alloc::vec![0xa5; 4096]);
    log::info!("fault_holding_heap: recovered; heap free, allocated {} bytes", block.len());
    Ok(())
}

/// Runs every test; see the crate docs.
///
/// # Errors
/// A description of the first failed check.
#[inline(never)]
pub fn run() -> Result<(), String> {
    fault_holding_serial()?;
    fault_holding_heap()?;
    Ok(())
}
