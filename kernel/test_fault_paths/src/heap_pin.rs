//! The heap's per-CPU pin (`memory::heap_cpu`): a tick while code holds it must not switch tasks, the switch
//! must come when the pin ends, and a fault while holding it must leave the CPU scheduling and allocating.
//!
//! - [`tick_inside_heap_pin_is_deferred`]: a task that never yields (`spinner`) and a task that holds the pin for
//!   [`PINNED_SPIN_NS`] (three timer ticks) with interrupts enabled run on one CPU. The spinner must make no progress
//!   while the pin is held (without the deferral a tick switches to it), and must have run by the time the pin's
//!   end returns (the deferred switch is made inside it; without it the holder would go on until the next tick).
//! - [`fault_holding_heap_pin`]: a task pinned to a CPU executes `ud2` inside `memory::with_heap_pinned`; it must
//!   end `Failed` with #UD, and a task on the same CPU must then find the pin free and allocate.
//! - [`leaked_heap_pin_is_released`]: a task takes the pin and goes on without releasing it (as code whose release
//!   a fault skipped); within [`LEAK_TIMEOUT_NS`] the timer must have released it (`memory::STALE_PIN_DEFERRALS`
//!   ticks) and counted it.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spawn::TaskBuilder;
use task::ExitValue;

use crate::{expect_ud_from, fault};

/// How long a leaked pin may stay held: `memory::STALE_PIN_DEFERRALS` ticks (0.5 s) and a margin.
const LEAK_TIMEOUT_NS: u64 = 3_000_000_000;

/// How long the pinned task spins with the pin held: three 10 ms ticks.
const PINNED_SPIN_NS: u64 = 30_000_000;

/// Attempts of [`tick_inside_heap_pin_is_deferred`] whose pin saw no timer tick (nothing was deferred, so nothing
/// can be checked) before it fails.
const PIN_ATTEMPTS: usize = 3;

/// A tick inside the pin is deferred to the pin's end (see the module docs). An attempt in which no tick came
/// while the pin was held (under a loaded host, QEMU can deliver the timer late) proves nothing and is repeated,
/// up to [`PIN_ATTEMPTS`] times.
pub(crate) fn tick_inside_heap_pin_is_deferred() -> Result<(), String> {
    let mut untested = 0;
    for _ in 0..PIN_ATTEMPTS {
        match pin_attempt()? {
            true => return Ok(()),
            false => untested += 1,
        }
    }
    Err(format!("heap_pin: no timer tick came while the pin was held, in {untested} attempts of {PINNED_SPIN_NS} ns"))
}

/// One attempt of [`tick_inside_heap_pin_is_deferred`]: `Ok(false)` if no tick came while the pin was held.
fn pin_attempt() -> Result<bool, String> {
    let cpu = scheduler::current_cpu();
    let progress = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (spinner_progress, spinner_stop, stop_on_error) = (progress.clone(), stop.clone(), stop.clone());
    let spinner = TaskBuilder::new("heap_pin spinner")
        .pin(cpu)
        .spawn(move || {
            while !spinner_stop.load(Ordering::Relaxed) {
                spinner_progress.fetch_add(1, Ordering::Relaxed);
                core::hint::spin_loop();
            }
        })
        .map_err(|error| format!("heap_pin: spawn spinner: {error}"))?;
    let pinned = TaskBuilder::new("heap_pin holder").pin(cpu).spawn(move || {
        // Let the spinner start first.
        while progress.load(Ordering::Relaxed) == 0 {
            scheduler::yield_now();
        }
        let mut during = (0, 0);
        let mut ticks = 0;
        let held = memory::with_heap_pinned(|| {
            let (before, first_tick) = (progress.load(Ordering::Relaxed), scheduler::ticks());
            tsc::spin_ns(PINNED_SPIN_NS);
            during = (before, progress.load(Ordering::Relaxed));
            ticks = scheduler::ticks() - first_tick;
        });
        let ended = progress.load(Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        (held, during, ended, ticks)
    });
    let pinned = match pinned {
        Ok(handle) => handle,
        Err(error) => {
            // The spinner never yields: stop it before reporting.
            stop_on_error.store(true, Ordering::Relaxed);
            let _ = spinner.join();
            return Err(format!("heap_pin: spawn holder: {error}"));
        }
    };
    let outcome = pinned.join().map_err(|error| format!("heap_pin: join holder: {error:?}"))?;
    spinner.join().map_err(|error| format!("heap_pin: join spinner: {error:?}"))?;
    let (held, (before, at_end), ended, ticks) = match outcome {
        ExitValue::Completed(outcome) => outcome,
        ExitValue::Failed(reason) => return Err(format!("heap_pin: the holder failed: {reason}")),
    };
    if !held {
        return Err(format!("heap_pin: CPU {cpu} has no per-CPU heap lists (with_heap_pinned refused)"));
    }
    if at_end != before {
        return Err(format!(
            "heap_pin: the spinner ran {} times while the pin was held for {PINNED_SPIN_NS} ns (a tick switched)",
            at_end - before
        ));
    }
    if ticks == 0 {
        return Ok(false);
    }
    if ended == at_end {
        return Err(format!(
            "heap_pin: the switch deferred while pinned ({ticks} ticks came) was not made when the pin ended"
        ));
    }
    log::info!(
        "heap_pin: no switch while pinned for {} ms on CPU {cpu}; the deferred switch ran the spinner {} times",
        PINNED_SPIN_NS / 1_000_000,
        ended - at_end
    );
    Ok(true)
}

/// A fault while holding the pin leaves that CPU's pin free (see the module docs).
pub(crate) fn fault_holding_heap_pin() -> Result<(), String> {
    let name = "fault_holding_heap_pin";
    let cpu = scheduler::current_cpu();
    expect_ud_from(name, TaskBuilder::new(name).pin(cpu), || {
        if !memory::with_heap_pinned(fault) {
            panic!("no per-CPU heap lists on this CPU");
        }
    })?;
    let checker = TaskBuilder::new("heap_pin checker")
        .pin(cpu)
        .spawn(|| {
            let pinned = memory::heap_pinned_on_this_cpu();
            let blocks: Vec<Vec<u8>> = (1..=64).map(|size| alloc::vec![0x3c; size * 16]).collect();
            let relisted = memory::with_heap_pinned(|| {});
            (pinned, core::hint::black_box(blocks).len(), relisted)
        })
        .map_err(|error| format!("{name}: spawn checker: {error}"))?;
    match checker.join().map_err(|error| format!("{name}: join checker: {error:?}"))? {
        ExitValue::Completed((false, 64, true)) => {}
        ExitValue::Completed((pinned, blocks, relisted)) => {
            return Err(format!(
                "{name}: after the fault CPU {cpu}: pin still held {pinned}, allocated {blocks} of 64 blocks, \
                 pin free again {relisted}"
            ));
        }
        ExitValue::Failed(reason) => return Err(format!("{name}: the checker failed: {reason}")),
    }
    log::info!("{name}: recovered; CPU {cpu}'s heap pin is free and its lists serve allocations");
    Ok(())
}

/// A pin left held is released by the timer (see the module docs).
pub(crate) fn leaked_heap_pin_is_released() -> Result<(), String> {
    let name = "leaked_heap_pin";
    let cpu = scheduler::current_cpu();
    let released_before = memory::leaked_heap_pins_released();
    let checker = TaskBuilder::new(name)
        .pin(cpu)
        .spawn(|| {
            if !memory::leak_heap_pin_for_test() {
                return Err(String::from("the pin was not free"));
            }
            let start = tsc::now_ns();
            while memory::heap_pinned_on_this_cpu() {
                if tsc::now_ns() - start > LEAK_TIMEOUT_NS {
                    return Err(format!("the leaked pin was still held after {LEAK_TIMEOUT_NS} ns"));
                }
                core::hint::spin_loop();
            }
            let blocks: Vec<Vec<u8>> = (1..=16).map(|size| alloc::vec![0x5a; size * 32]).collect();
            Ok((tsc::now_ns() - start, core::hint::black_box(blocks).len()))
        })
        .map_err(|error| format!("{name}: spawn: {error}"))?;
    let (held_ns, _) = match checker.join().map_err(|error| format!("{name}: join: {error:?}"))? {
        ExitValue::Completed(Ok(outcome)) => outcome,
        ExitValue::Completed(Err(error)) => return Err(format!("{name}: {error}")),
        ExitValue::Failed(reason) => return Err(format!("{name}: the task failed: {reason}")),
    };
    if memory::leaked_heap_pins_released() <= released_before {
        return Err(format!("{name}: the pin was freed but no release was counted"));
    }
    log::info!("{name}: the timer released the leaked pin after {} ms", held_ns / 1_000_000);
    Ok(())
}
