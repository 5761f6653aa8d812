//! In-kernel test of the swap gate (`live_update`), through [`run`]. No `unsafe`: the stored pointer is never
//! called, only compared.
//!
//! 1. **A stored pointer retires the old cell.** Store `greeting::greet`'s address into a static at run time (a
//!    stored pointer, not a relocation), swap `greeting_v1` for `greeting_v2`: the old cell must be retired, with a
//!    `Pointer` pin at that static, and `greeting::greet` (a relocation, rewritten) must now give the v2 text.
//!    Clear the static and reclaim: the old cell must be freed and the retired list empty. Swap back.
//! 2. **A task's frame retires the old cell; its exit frees it.** A task blocks inside `sync`'s mutex slow path
//!    (a non-generic function of the `sync` cell) on a mutex this test holds; `swap sync sync` must retire the old
//!    copy with a `Frame` pin of that task. Unlocking lets the task return through the old code and exit; the
//!    scheduler's exit hook must then free the old copy, without anyone calling `reclaim`.
//! 3. **Leak test.** One warm-up round trip, then the baseline (`memory::stats()`: free frames plus page-table
//!    frames, free pages, heap bytes in use); then [`LEAK_SWAPS`] swaps back and forth between the two versions
//!    and a reclaim: every counter must be back at its baseline and no cell retired.
//!
//! Steps 4 and 5 (`captured.rs`): `swap interrupts interrupts` must move every CPU to the new IDT (a handler
//! registered afterwards runs on each CPU, the timers keep ticking, the old copy is reclaimed), and the self-swap of
//! every cell that registered IDT handlers or hooks must move them to the new copy.
//!
//! Step 6 (`swap_faults.rs`): a fault in the swapping task at six points of a swap, unwound or not, rolls the
//! swap back (or keeps it, past the commit point) and frees every lock of the swap path.
#![no_std]
#![forbid(unsafe_code)]
#![feature(abi_x86_interrupt)]

extern crate alloc;

mod captured;
mod swap_faults;

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicUsize, Ordering};

use alloc::sync::Arc;

use cell_namespace::{Pin, SwapOptions};
use kernel_test_support::{ensure, step, wait_for};
use spawn::TaskBuilder;
use task::{ExitValue, RunState};

/// Swaps of the leak test (an even number: it ends on the version it started with).
pub const LEAK_SWAPS: usize = 200;

const CELL: &str = "test_live_update";
const V1: &str = "greeting_v1";
const V2: &str = "greeting_v2";

/// A function address stored at run time: what a hook registration does.
static STORED_GREET: AtomicUsize = AtomicUsize::new(0);

/// Runs the test; `Err` names the first failed check. Leaves `greeting_v1` loaded.
#[inline(never)]
pub fn run() -> Result<(), String> {
    let kernel = system_namespaces::kernel_namespace().ok_or("no kernel namespace")?;
    // This cell depends on greeting_v1, so it is loaded; a shell swap may have replaced it by v2 since.
    if kernel.cell(V1).is_none() {
        swap(V2, V1)?;
    }
    step(CELL, "stored pointer retires", stored_pointer_retires)?;
    step(CELL, "task frame retires until exit", task_frame_retires)?;
    step(CELL, "leak test", leak_test)?;
    step(CELL, "swap interrupts: every CPU uses the new IDT", captured::interrupts_self_swap)?;
    step(CELL, "handler cells move their gates and hooks", captured::handler_cells_move)?;
    step(CELL, "a fault in the swapping task rolls the swap back", swap_faults::fault_in_swapping_task_rolls_back)?;
    Ok(())
}

fn swap(old: &str, new: &str) -> Result<cell_namespace::SwapReport, String> {
    live_update::swap(&[(old, new)], &SwapOptions::default()).map_err(|error| format!("swap {old} {new}: {error}"))
}

fn stored_pointer_retires() -> Result<(), String> {
    let greet: fn(&str) -> String = greeting::greet;
    STORED_GREET.store(greet as usize, Ordering::Release);
    let report = swap(V1, V2)?;
    let retired = live_update::retired();
    let location = core::ptr::addr_of!(STORED_GREET) as usize;
    let entry = retired.iter().find(|info| info.name == V1);
    let pinned_here = entry.is_some_and(|info| {
        info.pins.iter().any(|pin| matches!(pin, Pin::Pointer { location: at, .. } if at.value() == location))
    });
    STORED_GREET.store(0, Ordering::Release);
    ensure!(report.cells_retired == 1, "the swap retired {} cells, expected 1: {report}", report.cells_retired);
    ensure!(pinned_here, "greeting_v1 is not pinned by the stored pointer at {location:#x}: {retired:?}");
    let text = greeting::greet("test");
    ensure!(text.contains("greeting v2"), "after the swap greet() says {text:?}");
    let reclaimed = live_update::reclaim();
    ensure!(
        reclaimed.freed.iter().any(|name| name == V1),
        "greeting_v1 was not freed once unpinned: {reclaimed}: {:?}",
        reclaimed.still_retired
    );
    let left = live_update::retired();
    ensure!(left.is_empty(), "cells still retired after the reclaim: {left:?}");
    swap(V2, V1)?;
    Ok(())
}

fn task_frame_retires() -> Result<(), String> {
    let mutex = Arc::new(sync::Mutex::new(0u64));
    let guard = mutex.lock();
    let shared = mutex.clone();
    let waiter = TaskBuilder::new("mutex waiter")
        .spawn(move || {
            let mut value = shared.lock();
            *value += 1;
            *value
        })
        .map_err(kernel_test_support::spawn_error)?;
    let blocked = wait_for(2000, || waiter.task().state() == RunState::Blocked);
    ensure!(blocked, "the waiter did not block on the mutex");
    let report = swap("sync", "sync");
    let retired = live_update::retired();
    drop(guard);
    let report = report?;
    let id = waiter.task().id().value();
    let pinned = retired.iter().any(|info| {
        info.name == "sync" && info.pins.iter().any(|pin| matches!(pin, Pin::Frame { task, .. } if *task == id))
    });
    let value = match waiter.join().map_err(|error| format!("join: {error:?}"))? {
        ExitValue::Completed(value) => value,
        ExitValue::Failed(reason) => return Err(format!("the waiter failed: {reason}")),
    };
    ensure!(value == 1, "the waiter saw {value}");
    ensure!(report.cells_retired == 1, "swap sync sync retired {} cells: {report}", report.cells_retired);
    ensure!(pinned, "the old sync is not pinned by the waiter's frame (task {id}): {retired:?}");
    // The exit hook ran on the waiter before its joiner (this task) was woken.
    let left = live_update::retired();
    ensure!(left.iter().all(|info| info.name != "sync"), "the old sync is still retired after the exit: {left:?}");
    Ok(())
}

/// The counters a leak would move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    frames: usize,
    pages: usize,
    heap_used: usize,
}

fn counters() -> Counters {
    let stats = memory::stats();
    Counters { frames: stats.free_frames_with_page_tables(), pages: stats.free_pages, heap_used: stats.heap_used_bytes }
}

fn leak_test() -> Result<(), String> {
    swap(V1, V2)?;
    swap(V2, V1)?;
    live_update::reclaim();
    let baseline = counters();
    let started = tsc::now_ns();
    for round in 0..LEAK_SWAPS / 2 {
        swap(V1, V2).map_err(|error| format!("round {round}: {error}"))?;
        swap(V2, V1).map_err(|error| format!("round {round}: {error}"))?;
    }
    let elapsed_ms = (tsc::now_ns() - started) / 1_000_000;
    let reclaimed = live_update::reclaim();
    let after = counters();
    log::info!("{CELL}: {LEAK_SWAPS} swaps in {elapsed_ms} ms; baseline {baseline:?}, after {after:?}; {reclaimed}");
    ensure!(reclaimed.still_retired.is_empty(), "cells still retired: {:?}", reclaimed.still_retired);
    ensure!(after == baseline, "counters moved over {LEAK_SWAPS} swaps: baseline {baseline:?}, after {after:?}");
    Ok(())
}
