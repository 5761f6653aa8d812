//! Damaged words of the scheduler's per-CPU state (the fault campaign's most common remaining failure in
//! session 12): the idle task's and the current task's references, and the runqueue's header.
//!
//! The slot tests damage a word (`scheduler::damage_slot_for_test`: bit 52 flipped, so the address is
//! non-canonical) and dereference it at once in a restartable task, interrupts still off: a #GP in this cell. The
//! fault path must rewrite the word from the task table before it names the task; the run fails and restarts. With
//! a damaged current-task word and no repair, every attempt to name the task faults again and the CPU stops; with a
//! damaged idle-task word, the next `schedule` with an empty runqueue on that CPU faults, and so does every one
//! after it, in whichever task runs there.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use spawn::TaskBuilder;
use task::{ExceptionKind, ExitValue, FailureReason};

use crate::{JOIN_TIMEOUT_NS, wait_for_series, wait_until_finished};

/// The bit flipped in a damaged task word: bit 52 of a heap address makes it non-canonical (a #GP on access).
const DAMAGE_MASK: usize = 1 << 52;

/// Runs of [`damaged_slot_then_done`] (one counter per test, reset by it).
static SLOT_RUNS: AtomicU64 = AtomicU64::new(0);
/// Which word [`damaged_slot_then_done`] damages (1: the idle task's, 0: the current task's).
static SLOT_IS_IDLE: AtomicU64 = AtomicU64::new(0);

/// The first run damages a task word of its CPU and dereferences the damaged value; the second returns.
fn damaged_slot_then_done() {
    if SLOT_RUNS.fetch_add(1, Ordering::AcqRel) == 0 {
        let damaged = scheduler::damage_slot_for_test(SLOT_IS_IDLE.load(Ordering::Acquire) == 1, DAMAGE_MASK);
        // SAFETY: never completes: `damaged` is a non-canonical address (bit 52 of a kernel heap address flipped),
        // so the read raises #GP before touching memory; the fault path fails this run (interrupts are still off,
        // as `damage_slot_for_test` left them, so nothing reads the damaged word before the fault path).
        let value = unsafe { core::ptr::read_volatile(damaged as *const u64) };
        core::hint::black_box(value);
    }
}

/// One slot test: the first run of a restartable task pinned to `cpu` damages the word (`idle` or current) and
/// faults; the series must be restarted once with a #GP, the word rewritten (the repair counter grows), and a task
/// pinned to `cpu` that sleeps (so the CPU switches to its idle task and back) must complete.
fn damaged_slot_is_rewritten(name: &str, cpu: usize, idle: bool) -> Result<(), String> {
    let before = scheduler::cpu_slot_repairs();
    SLOT_RUNS.store(0, Ordering::Release);
    SLOT_IS_IDLE.store(u64::from(idle), Ordering::Release);
    let handle = TaskBuilder::new(name)
        .pin(cpu)
        .spawn_restartable(1, damaged_slot_then_done)
        .map_err(|error| format!("{name}: spawn: {error}"))?;
    wait_for_series(name, &handle, &SLOT_RUNS)?;
    match (handle.restarts(), handle.last_failure()) {
        (1, Some(FailureReason::Exception { kind: ExceptionKind::GeneralProtection(_), .. })) => {}
        (restarts, failure) => {
            return Err(format!("{name}: {restarts} restarts, last failure {failure:?} (expected 1, a #GP)"));
        }
    }
    if scheduler::cpu_slot_repairs() == before {
        return Err(format!("{name}: the run faulted and restarted, but no task word was rewritten"));
    }
    let sleeper = TaskBuilder::new("after_slot_repair")
        .pin(cpu)
        .spawn(|| {
            for _ in 0..5 {
                scheduler::sleep(Duration::from_millis(2));
            }
            7u64
        })
        .map_err(|error| format!("{name}: spawn sleeper: {error}"))?;
    wait_until_finished(&sleeper, || format!("{name}: a sleeping task on CPU {cpu} did not finish within 3 s"))?;
    match sleeper.join().map_err(|error| format!("{name}: join sleeper: {error:?}"))? {
        ExitValue::Completed(7) => {}
        other => return Err(format!("{name}: the sleeper after the repair ended with {other:?}")),
    }
    serial::write_fmt(format_args!(
        "{name}: a damaged {} word on CPU {cpu} was rewritten from the task table; the task restarted and CPU {cpu} \
         went on scheduling\n",
        if idle { "idle-task" } else { "current-task" }
    ));
    Ok(())
}

/// The idle-task word of the test's CPU is damaged (see the module docs).
pub(crate) fn damaged_idle_word_is_rewritten() -> Result<(), String> {
    damaged_slot_is_rewritten("damaged_idle_word", scheduler::current_cpu(), true)
}

/// The current-task word of the last CPU is damaged (see the module docs).
pub(crate) fn damaged_current_word_is_rewritten() -> Result<(), String> {
    let cpu = cpu::online().last().ok_or("damaged_current_word: no CPU online")?.index();
    damaged_slot_is_rewritten("damaged_current_word", cpu, false)
}

/// Set once [`damaged_queue_header_is_rebuilt`] damaged the header.
static QUEUE_DAMAGED: AtomicBool = AtomicBool::new(false);

/// Rounds of each worker of [`damaged_queue_header_is_rebuilt`].
const WORKER_ROUNDS: u64 = 200;

/// A worker of [`damaged_queue_header_is_rebuilt`]: waits (yielding) until the header is damaged, then yields (or,
/// if `sleeps`, sleeps 1 ms) [`WORKER_ROUNDS`] times; returns the sum of its round numbers.
fn queue_worker(sleeps: bool) -> u64 {
    while !QUEUE_DAMAGED.load(Ordering::Acquire) {
        scheduler::yield_now();
    }
    let mut sum = 0u64;
    for i in 0..WORKER_ROUNDS {
        sum += core::hint::black_box(i);
        if sleeps {
            scheduler::sleep(Duration::from_millis(1));
        } else {
            scheduler::yield_now();
        }
    }
    sum
}

/// Three workers share a CPU whose runqueue (`sleepers` false: the workers yield) or sleepers queue (`sleepers`
/// true: they sleep) then has its header damaged (its second copy of the length, bit 40:
/// `scheduler::damage_runqueue_for_test`; the check compares both copies, so either damaged copy is seen alike):
/// the next lock of that queue must rebuild it from the task table (counted by
/// `scheduler::damaged_runqueue_rebuilds`) and every worker must still complete. Without the check, a damaged real
/// header (the campaign's flipped length and capacity words) made the next pick return a garbage task or a push
/// write past the buffer.
fn damaged_queue_header_is_rebuilt(name: &str, sleepers: bool) -> Result<(), String> {
    let cpu = cpu::online().last().ok_or_else(|| format!("{name}: no CPU online"))?.index();
    let before = scheduler::damaged_runqueue_rebuilds();
    QUEUE_DAMAGED.store(false, Ordering::Release);
    let workers = (0..3)
        .map(|n| {
            TaskBuilder::new(&format!("{name}_worker_{n}"))
                .pin(cpu)
                .spawn(move || queue_worker(sleepers))
                .map_err(|error| format!("{name}: spawn worker {n}: {error}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    scheduler::sleep(Duration::from_millis(1));
    scheduler::damage_runqueue_for_test(cpu, sleepers, 1 << 40);
    QUEUE_DAMAGED.store(true, Ordering::Release);
    let deadline = tsc::now_ns() + JOIN_TIMEOUT_NS;
    while workers.iter().any(|worker| !worker.is_finished()) {
        if tsc::now_ns() > deadline {
            return Err(format!("{name}: the workers on CPU {cpu} did not finish within 3 s"));
        }
        scheduler::sleep(Duration::from_millis(2));
    }
    let expected = WORKER_ROUNDS * (WORKER_ROUNDS - 1) / 2;
    for (n, worker) in workers.into_iter().enumerate() {
        match worker.join().map_err(|error| format!("{name}: join worker {n}: {error:?}"))? {
            ExitValue::Completed(sum) if sum == expected => {}
            other => return Err(format!("{name}: worker {n} ended with {other:?}")),
        }
    }
    if scheduler::damaged_runqueue_rebuilds() == before {
        return Err(format!("{name}: CPU {cpu}'s damaged queue header was never rebuilt"));
    }
    serial::write_fmt(format_args!(
        "{name}: CPU {cpu}'s {} header was damaged; the next lock rebuilt it from the task table and its three \
         workers completed\n",
        if sleepers { "sleepers queue" } else { "runqueue" }
    ));
    Ok(())
}

/// [`damaged_queue_header_is_rebuilt`] for the runqueue.
pub(crate) fn damaged_runqueue_header_is_rebuilt() -> Result<(), String> {
    damaged_queue_header_is_rebuilt("damaged_runqueue", false)
}

/// [`damaged_queue_header_is_rebuilt`] for the sleepers queue.
pub(crate) fn damaged_sleepers_header_is_rebuilt() -> Result<(), String> {
    damaged_queue_header_is_rebuilt("damaged_sleepers", true)
}

/// Loops of [`stale_flag_worker`]; set to stop it.
static STALE_LOOPS: AtomicU64 = AtomicU64::new(0);
static STALE_STOP: AtomicBool = AtomicBool::new(false);

/// Yields until [`STALE_STOP`], counting its loops.
fn stale_flag_worker() {
    while !STALE_STOP.load(Ordering::Acquire) {
        STALE_LOOPS.fetch_add(1, Ordering::AcqRel);
        scheduler::yield_now();
    }
}

/// A runnable task whose `on_cpu` flag was left set (a skipped store in `finish_switch`, in the campaign) is still
/// switched to: it must go on running. Before, the switch spun on the flag with interrupts off until the NMI
/// watchdog failed the task that was switching, and the next switch to it spun again.
pub(crate) fn stale_on_cpu_flag_is_overwritten() -> Result<(), String> {
    let name = "stale_on_cpu_flag";
    let cpu = scheduler::current_cpu();
    STALE_STOP.store(false, Ordering::Release);
    STALE_LOOPS.store(0, Ordering::Release);
    let handle =
        TaskBuilder::new(name).pin(cpu).spawn(stale_flag_worker).map_err(|error| format!("{name}: spawn: {error}"))?;
    let worker = task::task_by_id(handle.id()).ok_or_else(|| format!("{name}: the worker is not in the task table"))?;
    let deadline = tsc::now_ns() + JOIN_TIMEOUT_NS;
    while STALE_LOOPS.load(Ordering::Acquire) < 10 && tsc::now_ns() < deadline {
        scheduler::yield_now();
    }
    // Pinned to this CPU, the worker is switched out whenever this task runs.
    let interrupts_were_enabled = task::interrupts::disable();
    let stale = !worker.is_on_cpu();
    worker.set_on_cpu(true);
    task::interrupts::restore(interrupts_were_enabled);
    let loops = STALE_LOOPS.load(Ordering::Acquire);
    let deadline = tsc::now_ns() + JOIN_TIMEOUT_NS;
    while STALE_LOOPS.load(Ordering::Acquire) < loops + 10 && tsc::now_ns() < deadline {
        scheduler::sleep(Duration::from_millis(1));
    }
    let ran = STALE_LOOPS.load(Ordering::Acquire) - loops;
    STALE_STOP.store(true, Ordering::Release);
    drop(worker);
    wait_until_finished(&handle, || format!("{name}: the worker did not finish within 3 s of being stopped"))?;
    let _ = handle.join();
    if !stale {
        return Err(format!("{name}: the worker was on a CPU when its flag was set (the test needs it switched out)"));
    }
    if ran < 10 {
        return Err(format!("{name}: the worker ran {ran} loops in 3 s after its on_cpu flag was left set"));
    }
    serial::write_fmt(format_args!(
        "{name}: a runnable task whose on_cpu flag was left set was switched to again ({ran} loops)\n"
    ));
    Ok(())
}
