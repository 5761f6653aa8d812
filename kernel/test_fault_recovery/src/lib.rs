//! In-kernel tests of unwinding and fault recovery, run by the shell's `test` builtin.
//!
//! # Purpose
//! Proves that a failing task gives back everything it held. For each failure kind (panic, #PF null dereference,
//! #GP, #UD, #DE, stack overflow, kill of a sleeping and of a spinning (kill-point polling) task, kill during a panic's unwind, a 1 GiB
//! allocation, a `Drop` panicking during unwinding, a panic out of an `extern "C"` function) a task takes
//! resources (a 128 KiB heap allocation, 32 KiB of `MappedPages`, a `sync::Mutex` lock, a channel sender), then
//! fails; the test checks the exit reason, that the lock is free, that the channel's receiver sees the
//! disconnection, that the unwinder's exception objects are all back, and that the free frames and pages are back
//! at their baseline and the heap within [`HEAP_TOLERANCE`] (the fault log and log lines allocate a little). A
//! fault-triggered reload of `fault_injection` (whose faults the scenarios count up) is kept out of each
//! measurement: it is done just before a scenario whose fault would trigger it, and checked to be a one-time cost
//! (repeated reloads return everything).
//! Then: a restartable task failing every run is restarted exactly 3 times; a cell corrupted with `ud2` faults
//! once and is repaired from its object file by the scrub after that fault (no reload), after which its dependent
//! (this cell) works again; `bt` of a sleeping task; and timings (unwinding 10 frames, fault to reaped, corrupt to
//! repaired).
//!
//! # Control flow of [`run`]
//! 1. the twelve failure scenarios, each with its resource check (a due reload of `fault_injection` first);
//! 2. repeated reloads of `fault_injection` keep nothing; 3. the restartable task; 4. the corrupted cell;
//! 5. the stack trace; 6. the measurements.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use spawn::TaskBuilder;
use task::{ExceptionKind, ExitValue, FailureReason, TaskId};

/// Heap bytes a scenario may leave allocated (fault-log records, log formatting); far below the 128 KiB held.
const HEAP_TOLERANCE: usize = 16 * 1024;
/// Free frames a scenario may consume (page-table frames created for new mappings stay allocated).
const FRAME_TOLERANCE: usize = 3;

/// The lock every failing task holds.
static LOCK: sync::Mutex<u64> = sync::Mutex::new(0);
/// When the failing task was about to fail (TSC ns), for the fault-to-reaped time.
static FAULT_AT: AtomicU64 = AtomicU64::new(0);

/// What a failing task holds.
struct Held {
    heap: Vec<u8>,
    pages: memory::MappedPages,
    guard: sync::MutexGuard<'static, u64>,
    sender: channel::Sender<u64>,
}

fn take_resources(sender: channel::Sender<u64>) -> Held {
    let heap = vec![0x5a_u8; 128 * 1024];
    let pages = memory::map_new(32 * 1024, memory::Permissions::ReadWrite).expect("map 32 KiB");
    let mut guard = LOCK.lock();
    *guard += 1;
    Held { heap, pages, guard, sender }
}

type Fault = fn() -> u64;
/// Whether a failure reason is the expected one.
type Expected = fn(&FailureReason) -> bool;
/// A scenario: task name, fault, expected reason, whether the test kills the task.
type Scenario = (&'static str, Fault, Expected, bool);

#[inline(never)]
fn panicking() -> u64 {
    panic!("injected panic")
}

#[inline(never)]
fn killed() -> u64 {
    loop {
        scheduler::sleep(Duration::from_millis(1));
    }
}

/// Spins without ever calling the scheduler, only polling the kill safe point (`scheduler::kill_point`, as the
/// applications' stdio does): the kill is noticed by an interrupt (timer or IPI) and deferred, and takes effect,
/// unwinding every frame, at the next poll. A loop that polls nothing is ended without unwinding and leaks what
/// its frames own (tested by `test_tasks`'s "kill while allocating"), so it could not pass the resource checks here.
#[inline(never)]
fn spinning() -> u64 {
    let mut counter = 0u64;
    loop {
        counter = core::hint::black_box(counter.wrapping_add(1));
        core::hint::spin_loop();
        scheduler::kill_point();
    }
}

/// Set when [`SlowDrop`] starts dropping (during the unwind of a panic).
static DROP_STARTED: AtomicBool = AtomicBool::new(false);

/// A value whose drop blocks (sleeps): a safe point reached from a landing pad.
struct SlowDrop;

impl Drop for SlowDrop {
    fn drop(&mut self) {
        DROP_STARTED.store(true, Ordering::Release);
        scheduler::sleep(Duration::from_millis(30));
    }
}

/// Panics while holding a [`SlowDrop`]: the test kills the task while that drop sleeps, and the kill must not
/// start a second unwind inside the first (the task still ends with the panic).
#[inline(never)]
fn panic_with_slow_drop() -> u64 {
    DROP_STARTED.store(false, Ordering::Release);
    let _slow = SlowDrop;
    panic!("injected panic with a slow drop")
}

fn overflow() -> u64 {
    fault_injection::stack_overflow(0)
}

/// Bytes [`out_of_memory`] asks for: 1 GiB, far more than the 32 MiB kernel heap.
const OOM_BYTES: usize = 1 << 30;

/// Allocates [`OOM_BYTES`]: the allocation fails, and the allocation-error handler panics.
#[inline(never)]
fn out_of_memory() -> u64 {
    // `black_box`: the compiler may otherwise drop an allocation that is never read.
    let buffer: Vec<u8> = core::hint::black_box(vec![1; core::hint::black_box(OOM_BYTES)]);
    buffer.len() as u64
}

/// Panics in its `Drop` when dropped during an unwind.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("injected panic in a Drop during unwinding");
    }
}

/// Panics inside an `extern "C"` function, which may not unwind: Rust's abort pad around it raises `panic in a
/// function that cannot unwind`, which must still end only this task.
#[inline(never)]
extern "C" fn panic_in_extern_c() -> u64 {
    panic!("injected panic in an extern \"C\" function")
}

fn panic_through_extern_c() -> u64 {
    core::hint::black_box(panic_in_extern_c as extern "C" fn() -> u64)()
}

/// Panics while holding a [`PanicsOnDrop`]: the drop panics inside this frame's cleanup pad, a panic that may
/// not unwind (`panic in a destructor during cleanup`), which must still end only this task.
#[inline(never)]
fn double_panic() -> u64 {
    let _bomb = PanicsOnDrop;
    panic!("injected panic before the panicking Drop")
}

/// Waits until task `id` is reaped (its stack freed); returns false after about 2 s.
fn wait_reaped(id: TaskId) -> bool {
    let deadline = tsc::now_ns() + 2_000_000_000;
    while task::task_by_id(id).is_some() {
        if tsc::now_ns() > deadline {
            return false;
        }
        scheduler::yield_now();
    }
    true
}

/// The cell whose code the CPU-exception scenarios fault in; fault recovery counts those faults against it.
const FAULT_CELL: &str = "fault_injection";

/// Reloads [`FAULT_CELL`] now if one more fault in it would make fault recovery reload it, so that no reload
/// falls inside a scenario's resource measurement (the count carries over from earlier tests, such as
/// `test_fault_paths`, so which scenario would trigger it depends on what ran before).
///
/// A reload is not a resource of the failing task, but it changes the heap for good: the new copy's dependency
/// edges are pushed onto shared sections' dependents lists (nano_core's `__rust_alloc` has hundreds of entries)
/// before the old copy's are removed, so a list that was full doubles its capacity and keeps it (18,432 bytes seen
/// in `fault_ud` after `hello` had loaded more cells). [`reload_steady_state`] checks that this is a one-time
/// growth, not a leak.
///
/// The stack pool (at most `task::STACK_POOL_CAPACITY` freed stacks kept mapped) is emptied here and again before
/// the second measurement, so the victim's stack is counted the same way at both ends whatever the pool held: a
/// task of an earlier test reaped inside the measurement filled the pool, and the victim's stack was then unmapped
/// (17 pages and 16 frames more free than before, `fault_panic` after the cpu-state tests of `test_fault_paths`).
/// Retired cells (an earlier test cell that faulted three times was reloaded) are reclaimed here too.
fn reload_outside_measurement() -> Result<(), String> {
    if fault_recovery::fault_count(FAULT_CELL) + 1 >= fault_recovery::REPEATED_FAULT_LIMIT {
        fault_recovery::reload_cell(FAULT_CELL).map_err(|error| format!("reload {FAULT_CELL}: {error}"))?;
    }
    let _ = live_update::reclaim();
    // Tasks of earlier tests that exited are reaped at their CPU's next switch: let that happen first.
    scheduler::sleep(Duration::from_millis(5));
    task::drain_stack_pool();
    Ok(())
}

/// Runs one failure scenario; returns the time from the failure to the task being reaped, in ns.
fn scenario(name: &str, fault: Fault, expected: Expected, kill: bool) -> Result<u64, String> {
    reload_outside_measurement()?;
    let before = memory::stats();
    let unwinds_before = unwind::pool_in_use();
    let (sender, receiver) = channel::bounded::<u64>(1);
    let ready = Arc::new(AtomicBool::new(false));
    let task_ready = ready.clone();
    let handle = TaskBuilder::new(name)
        .spawn(move || {
            let held = take_resources(sender);
            task_ready.store(true, Ordering::Release);
            FAULT_AT.store(tsc::now_ns(), Ordering::Release);
            let value = fault();
            core::hint::black_box(&held);
            value
                + held.heap.len() as u64
                + held.pages.size_in_bytes() as u64
                + *held.guard
                + u64::from(core::hint::black_box(&held.sender).try_send(0).is_ok())
        })
        .map_err(|error| format!("{name}: spawn: {error}"))?;
    let id = handle.id();
    if kill {
        while !ready.load(Ordering::Acquire) {
            scheduler::sleep(Duration::from_millis(1));
        }
        while name == "fault_kill_during_panic" && !DROP_STARTED.load(Ordering::Acquire) {
            scheduler::sleep(Duration::from_millis(1));
        }
        scheduler::sleep(Duration::from_millis(3));
        FAULT_AT.store(tsc::now_ns(), Ordering::Release);
        spawn::kill(id).map_err(|error| format!("{name}: kill: {error}"))?;
    }
    let exit = handle.join().map_err(|error| format!("{name}: join: {error:?}"))?;
    let reason = match exit {
        ExitValue::Completed(value) => return Err(format!("{name}: completed with {value} instead of failing")),
        ExitValue::Failed(reason) => reason,
    };
    if !expected(&reason) {
        return Err(format!("{name}: wrong failure: {reason}"));
    }
    if !wait_reaped(id) {
        return Err(format!("{name}: task {id} was not reaped"));
    }
    let reaped = tsc::now_ns().saturating_sub(FAULT_AT.load(Ordering::Acquire));
    let reloaded = fault_recovery::fault_log().into_iter().rev().find(|record| record.task == id);
    match reloaded {
        None => return Err(format!("{name}: no fault-log record for task {id}")),
        Some(record) if record.reload_ns.is_some() => {
            return Err(format!("{name}: the fault reloaded {:?} inside the measurement", record.cell));
        }
        Some(_) => {}
    }
    if LOCK.try_lock().is_none() {
        return Err(format!("{name}: the mutex is still locked"));
    }
    if receiver.try_receive() != Err(channel::TryReceiveError::Disconnected) {
        return Err(format!("{name}: the channel's receiver does not see the sender gone"));
    }
    drop(receiver);
    let unwinds_after = unwind::pool_in_use();
    if unwinds_after != unwinds_before {
        return Err(format!("{name}: unwinder exception objects in use {unwinds_before} -> {unwinds_after}"));
    }
    task::drain_stack_pool();
    let after = memory::stats();
    if after.free_pages != before.free_pages
        || after.free_frames + FRAME_TOLERANCE < before.free_frames
        || after.heap_used_bytes > before.heap_used_bytes + HEAP_TOLERANCE
    {
        return Err(format!("{name}: resources not returned: before {before:?}, after {after:?}"));
    }
    log::info!(
        "{name}: failed as expected ({reason}); resources returned; reaped {} us after the fault",
        reaped / 1000
    );
    Ok(reaped)
}

/// The twelve failure scenarios (kill three times: a task that sleeps, one that spins polling only the kill safe
/// point, and one that is killed while a drop of its panic's unwind sleeps; out of memory; a `Drop` that
/// panics during unwinding; a panic out of an `extern "C"` function): name, fault, expected reason, kill. The faults are closures of this cell that call
/// `fault_injection` by name (through relocations a reload re-links), never pointers into `fault_injection`,
/// which its reload (after its third fault) would leave dangling.
fn scenarios() -> [Scenario; 12] {
    [
        (
            "fault_panic",
            panicking,
            |reason| matches!(reason, FailureReason::Panic(message) if message.contains("injected panic") && message.contains("test_fault_recovery")),
            false,
        ),
        (
            "fault_null",
            // SAFETY: runs in a spawned task with the exception hook installed, which unwinds it.
            || unsafe { fault_injection::null_dereference() },
            |reason| matches!(reason, FailureReason::Exception { kind: ExceptionKind::PageFault(_), fault_address: Some(address), .. } if address.value() == 0),
            false,
        ),
        (
            "fault_gp",
            // SAFETY: runs in a spawned task with the exception hook installed, which unwinds it.
            || unsafe { fault_injection::general_protection() },
            |reason| matches!(reason, FailureReason::Exception { kind: ExceptionKind::GeneralProtection(_), .. }),
            false,
        ),
        (
            "fault_ud",
            // SAFETY: runs in a spawned task with the exception hook installed, which unwinds it.
            || unsafe { fault_injection::invalid_opcode() },
            |reason| matches!(reason, FailureReason::Exception { kind: ExceptionKind::InvalidOpcode, .. }),
            false,
        ),
        (
            "fault_de",
            // SAFETY: runs in a spawned task with the exception hook installed, which unwinds it.
            || unsafe { fault_injection::divide_by_zero() },
            |reason| matches!(reason, FailureReason::Exception { kind: ExceptionKind::DivideError, .. }),
            false,
        ),
        ("fault_overflow", overflow, |reason| matches!(reason, FailureReason::StackOverflow { .. }), false),
        ("fault_kill", killed, |reason| matches!(reason, FailureReason::Killed), true),
        ("fault_kill_spinning", spinning, |reason| matches!(reason, FailureReason::Killed), true),
        (
            "fault_kill_during_panic",
            panic_with_slow_drop,
            |reason| matches!(reason, FailureReason::Panic(message) if message.contains("slow drop")),
            true,
        ),
        (
            "fault_out_of_memory",
            out_of_memory,
            |reason| matches!(reason, FailureReason::Panic(message) if message.contains("memory allocation of 1073741824 bytes")),
            false,
        ),
        (
            "fault_double_panic",
            double_panic,
            |reason| matches!(reason, FailureReason::Panic(message) if message.contains("panic in a destructor during cleanup")),
            false,
        ),
        (
            "fault_panic_in_extern_c",
            panic_through_extern_c,
            |reason| matches!(reason, FailureReason::Panic(message) if message.contains("panic in a function that cannot unwind")),
            false,
        ),
    ]
}

/// Reloads measured by [`reload_steady_state`] after its warm-up reload.
const RELOADS: usize = 3;
/// Heap bytes [`RELOADS`] steady-state reloads may leave allocated (allocator rounding), far below what one
/// reload allocates (a fresh copy's 40 dependency edges alone take about 2.5 KiB).
const RELOAD_TOLERANCE: usize = 256;

/// Reloading [`FAULT_CELL`] is not a leak: after one warm-up reload (which may grow shared dependents lists to a
/// capacity they keep, see [`reload_outside_measurement`]), [`RELOADS`] more reloads return every page, every frame
/// but page-table ones ([`FRAME_TOLERANCE`]) and the heap within [`RELOAD_TOLERANCE`]. This is what lets the
/// scenarios keep reloads out of their measurement.
fn reload_steady_state() -> Result<(), String> {
    let reload = || fault_recovery::reload_cell(FAULT_CELL).map_err(|error| format!("reload {FAULT_CELL}: {error}"));
    reload()?;
    let before = memory::stats();
    for _ in 0..RELOADS {
        reload()?;
    }
    let after = memory::stats();
    if after.free_pages != before.free_pages
        || after.free_frames + FRAME_TOLERANCE < before.free_frames
        || after.heap_used_bytes > before.heap_used_bytes + RELOAD_TOLERANCE
    {
        return Err(format!("{RELOADS} reloads of {FAULT_CELL} kept resources: before {before:?}, after {after:?}"));
    }
    log::info!(
        "reload steady state: {RELOADS} reloads of {FAULT_CELL}, heap {:+} bytes",
        after.heap_used_bytes as i64 - before.heap_used_bytes as i64
    );
    Ok(())
}

/// A restartable task that fails every run is restarted exactly `LIMIT` times.
fn restartable() -> Result<(), String> {
    const LIMIT: usize = 3;
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let handle = TaskBuilder::new("restartable")
        .spawn_restartable(LIMIT, move || {
            counter.fetch_add(1, Ordering::AcqRel);
            panic!("restartable task fails");
        })
        .map_err(|error| format!("restartable: spawn: {error}"))?;
    let deadline = tsc::now_ns() + 3_000_000_000;
    while !handle.is_done() {
        if tsc::now_ns() > deadline {
            return Err(format!("restartable: not done after 3 s ({} restarts)", handle.restarts()));
        }
        scheduler::sleep(Duration::from_millis(2));
    }
    let (restarts, runs) = (handle.restarts(), runs.load(Ordering::Acquire));
    if restarts != LIMIT || runs != LIMIT + 1 {
        return Err(format!("restartable: {restarts} restarts and {runs} runs, expected {LIMIT} and {}", LIMIT + 1));
    }
    if !matches!(handle.last_failure(), Some(FailureReason::Panic(_))) {
        return Err(format!("restartable: last failure {:?}", handle.last_failure()));
    }
    log::info!("restartable: failed {runs} times, restarted {restarts} times");
    Ok(())
}

/// A cell corrupted with `ud2` faults once: the scrub after that failure finds the damaged bytes against the
/// cell's object file and writes them back, so the next call (from this cell, its dependent) computes right, with
/// no reload. Returns the time from corrupting to the repaired call, in ns.
fn corrupted_cell() -> Result<u64, String> {
    let expected = fault_victim::checksum(5);
    let start = tsc::now_ns();
    // SAFETY: `fault_victim` exists for this test: only the victim task below calls `checksum` until the scrub
    // after its fault repairs the cell.
    unsafe { fault_injection::corrupt_function("fault_victim", "fault_victim::checksum") }
        .map_err(|error| format!("corrupt: {error:?}"))?;
    let handle = TaskBuilder::new("victim")
        .spawn(|| fault_victim::checksum(core::hint::black_box(5)))
        .map_err(|error| format!("victim: spawn: {error}"))?;
    let id = handle.id();
    match handle.join() {
        Ok(ExitValue::Failed(FailureReason::Exception { kind: ExceptionKind::InvalidOpcode, .. })) => {}
        other => return Err(format!("victim: expected #UD, got {other:?}")),
    }
    let record = fault_recovery::fault_log().into_iter().rev().find(|record| record.task == id);
    let record = record.ok_or("no fault-log record for the victim")?;
    let repaired = record.repaired.iter().find(|damaged| damaged.cell == "fault_victim");
    match repaired {
        Some(damaged) if damaged.repaired && damaged.damaged_bytes >= 1 => {}
        _ => return Err(format!("the victim's fault did not repair fault_victim: {record:?}")),
    }
    if record.reload_ns.is_some() {
        return Err(format!("the repaired cell was reloaded as well: {record:?}"));
    }
    let value = fault_victim::checksum(5);
    let repaired_ns = tsc::now_ns().saturating_sub(start);
    if value != expected {
        return Err(format!("after the repair checksum(5) = {value:#x}, expected {expected:#x}"));
    }
    let intact = system_namespaces::kernel_namespace()
        .ok_or("no kernel namespace")?
        .check_cell("fault_victim", cell_namespace::IntegrityMode::Check)
        .map_err(|error| format!("check fault_victim: {error}"))?;
    if !intact.is_intact() {
        return Err(format!("fault_victim still damaged after the repair: {intact:?}"));
    }
    log::info!("corrupted cell: repaired from its object file at its first fault, dependents work again");
    Ok(repaired_ns)
}

/// `bt` of a sleeping task walks its saved context through the scheduler into this cell.
fn stack_trace() -> Result<(), String> {
    let handle = TaskBuilder::new("sleeper").spawn(killed).map_err(|error| format!("sleeper: {error}"))?;
    let id = handle.id();
    scheduler::sleep(Duration::from_millis(5));
    let mut trace = String::new();
    let frames = fault_recovery::write_backtrace_of(&mut trace, id);
    let in_this_cell = fault_recovery::tasks_in_cell("test_fault_recovery");
    let in_victim = fault_recovery::tasks_in_cell("fault_victim");
    let _ = spawn::kill(id);
    let _ = handle.join();
    let frames = frames.map_err(|error| format!("bt {id}: {error}"))?;
    if !in_this_cell.tasks.contains(&id) || in_victim.tasks.contains(&id) {
        return Err(format!(
            "tasks_in_cell: {in_this_cell:?} in this cell, {in_victim:?} in fault_victim; sleeper {id}"
        ));
    }
    serial::write_fmt(format_args!("bt {id}:\n{trace}"));
    if frames < 3 || !trace.contains("scheduler") || !trace.contains("test_fault_recovery") {
        return Err(format!("bt {id}: {frames} frames, missing the scheduler or this cell"));
    }
    // The running task's own trace includes this cell (this function may be inlined into `run`).
    let mut own = String::new();
    let own_frames = fault_recovery::write_current_backtrace(&mut own).map_err(|error| format!("bt self: {error}"))?;
    if own_frames < 2 || !own.contains("(cell test_fault_recovery)") {
        return Err(format!("bt of the running task: {own_frames} frames:\n{own}"));
    }
    let missing = TaskId::new(u64::MAX);
    if fault_recovery::print_backtrace(missing) != Err(fault_recovery::BacktraceError::NoSuchTask(missing)) {
        return Err("bt of a nonexistent task did not fail with NoSuchTask".to_string());
    }
    Ok(())
}

struct Guard;
impl Drop for Guard {
    fn drop(&mut self) {
        core::hint::black_box(self);
    }
}

/// Recurses `depth` frames, each holding a [`Guard`] (one landing pad per frame), then panics (`quiet`: starts
/// the unwind directly, without the panic handler's message on the serial console).
#[inline(never)]
fn nested(depth: u32, quiet: bool) -> u32 {
    let _guard = Guard;
    if depth == 1 {
        if quiet {
            let cause = unwind::UnwindCause::Panic(unwind::PanicCause::with_message("benchmark unwind"));
            unwind::start_unwinding(cause, unwind::UnwindOptions::default());
        }
        panic!("benchmark unwind");
    }
    core::hint::black_box(nested(depth - 1, quiet)) + 1
}

/// Median time in ns of catching an unwind through 10 frames, over 5 runs (`quiet` as for [`nested`]).
fn time_unwind(quiet: bool) -> Result<(u64, Vec<u64>), String> {
    let mut samples = Vec::new();
    for _ in 0..5 {
        let started = tsc::now_ns();
        let result = unwind::catch_unwind(|| nested(10, quiet));
        samples.push(tsc::now_ns() - started);
        if result.is_ok() {
            return Err("the benchmark unwind was not caught".to_string());
        }
    }
    Ok((median(samples.clone()), samples))
}

fn median(mut samples: Vec<u64>) -> u64 {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or(0)
}

/// Runs every test; see the crate docs.
///
/// # Errors
/// A description of the first failed check.
#[inline(never)]
pub fn run() -> Result<(), String> {
    let mut reaped = Vec::new();
    for (name, fault, expected, kill) in scenarios() {
        reaped.push((name, scenario(name, fault, expected, kill)?));
    }
    reload_steady_state()?;
    restartable()?;
    let repair_ns = corrupted_cell()?;
    stack_trace()?;
    for (quiet, what) in [(true, "start_unwinding, no output"), (false, "panic!, message printed on serial")] {
        let (median_ns, samples) = time_unwind(quiet)?;
        let samples: Vec<String> = samples.iter().map(|ns| format!("{}", ns / 1000)).collect();
        serial::write_fmt(format_args!(
            "bench: unwind 10 frames with 10 landing pads ({what}): median {} us (runs: {} us)\n",
            median_ns / 1000,
            samples.join(" ")
        ));
    }
    for (name, ns) in reaped {
        serial::write_fmt(format_args!("bench: {name}: fault to reaped {} us\n", ns / 1000));
    }
    serial::write_fmt(format_args!(
        "bench: corrupted fault_victim: corrupt, fault, scrub and repair, call again: {} us\n",
        repair_ns / 1000
    ));
    Ok(())
}
