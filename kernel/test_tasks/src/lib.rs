//! In-kernel tests of tasks and the scheduler core, run by the shell's `test` builtin through [`run`].
//!
//! Each check compares values (exit values, CPUs, times, memory counters), so a broken scheduler fails with a
//! message instead of passing silently. Works with 1 CPU and with several. Nothing is skipped: preemption fails if
//! the current CPU's timer does not tick within 1 s, and the stack-overflow test fails if the exception hook does
//! not recover tasks (both are set up before the shell runs, on every scenario's CPUs).
//!
//! Steps of [`run`]: spawn/join exit values; kill (blocked, sleeping, runnable targets, and the error cases);
//! kill while allocating (300 kills of reallocating tasks, heap consistent and back to its baseline: `kill_alloc`);
//! spawn by function name; pinning and load balancing; sleep accuracy (within 2 ticks) and wake order;
//! preemption; stack overflow into the guard page; 1,000 spawn/exit cycles with frame, page and heap counters
//! back to their baseline.
#![no_std]

extern crate alloc;

mod kill_alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use kernel_test_support::{ensure, spawn_error, step, wait_for};
use spawn::{SpawnError, TaskBuilder};
use task::{ExitValue, FailureReason, RunState, TaskId};

/// This cell's name, prefixed to its log lines.
const CELL: &str = "test_tasks";

/// Returns an error message from the enclosing function unless `condition` holds.
/// Runs every test of this cell; `Err` names the first failed check.
#[inline(never)]
pub fn run() -> Result<(), String> {
    log::info!(
        "test_tasks: {} CPU(s), policy {}, tick period {:?} ns",
        scheduler::online_cpu_count(),
        scheduler::policy_name(),
        scheduler::tick_period_ns()
    );
    step(CELL, "spawn and join", spawn_and_join)?;
    step(CELL, "kill", kill_tasks)?;
    step(CELL, "kill while allocating", kill_alloc::kill_while_allocating)?;
    step(CELL, "spawn by function name", spawn_by_name)?;
    step(CELL, "spawn an application by name", spawn_application_by_name)?;
    step(CELL, "pinning and load balancing", pinning)?;
    step(CELL, "sleep accuracy", sleep_accuracy)?;
    step(CELL, "preemption", preemption)?;
    step(CELL, "stack overflow", stack_overflow)?;
    step(CELL, "1000 spawn/exit cycles", spawn_exit_cycles)?;
    step(CELL, "task table", task_table)?;
    Ok(())
}

/// Joins and returns the exit value, or an error message.
fn join<T: 'static>(handle: spawn::JoinHandle<T>) -> Result<ExitValue<T>, String> {
    handle.join().map_err(|error| format!("join failed: {error:?}"))
}

fn spawn_and_join() -> Result<(), String> {
    let answer = TaskBuilder::new("answer").spawn(|| 6 * 7).map_err(spawn_error)?;
    ensure!(matches!(join(answer)?, ExitValue::Completed(42)), "a task returning 42 did not complete with 42");

    let text = TaskBuilder::new("text").spawn(|| String::from("hello")).map_err(spawn_error)?;
    match join(text)? {
        ExitValue::Completed(text) => ensure!(text == "hello", "wrong string exit value {text:?}"),
        ExitValue::Failed(reason) => return Err(format!("string task failed: {reason}")),
    }

    let handles: Vec<_> = (0..8u64)
        .map(|index| TaskBuilder::new("square").spawn(move || index * index))
        .collect::<Result<_, _>>()
        .map_err(spawn_error)?;
    for (index, handle) in handles.into_iter().enumerate() {
        let value = join(handle)?;
        let expected = (index * index) as u64;
        ensure!(matches!(value, ExitValue::Completed(v) if v == expected), "task {index} did not return {expected}");
    }

    let failing = TaskBuilder::new("failing")
        .spawn(|| {
            let _ = scheduler::fail_current(FailureReason::Panic(String::from("on purpose")));
            0u8
        })
        .map_err(spawn_error)?;
    match join(failing)? {
        ExitValue::Failed(FailureReason::Panic(message)) => ensure!(message == "on purpose", "message {message:?}"),
        other => return Err(format!("fail_current gave {other:?}")),
    }
    Ok(())
}

/// Waits (yielding) until `condition` holds, for at most `timeout_ms`.
fn kill_tasks() -> Result<(), String> {
    // A blocked target: waits on a queue that is never notified.
    let queue = Arc::new(sync::WaitQueue::new());
    let waiter_queue = queue.clone();
    let blocked =
        TaskBuilder::new("blocked").spawn(move || waiter_queue.wait_until(|| None::<u32>)).map_err(spawn_error)?;
    ensure!(wait_for(2000, || blocked.task().state() == RunState::Blocked), "target never blocked");
    spawn::kill(blocked.id()).map_err(|error| format!("kill blocked: {error}"))?;
    ensure!(matches!(join(blocked)?, ExitValue::Failed(FailureReason::Killed)), "blocked target not Failed(Killed)");

    // A sleeping target (60 s): must end long before its deadline.
    let sleeper =
        TaskBuilder::new("sleeper").spawn(|| scheduler::sleep(Duration::from_secs(60))).map_err(spawn_error)?;
    ensure!(wait_for(2000, || sleeper.task().state() == RunState::Sleeping), "target never slept");
    let started = tsc::now_ns();
    spawn::kill(sleeper.id()).map_err(|error| format!("kill sleeper: {error}"))?;
    ensure!(matches!(join(sleeper)?, ExitValue::Failed(FailureReason::Killed)), "sleeper not Failed(Killed)");
    ensure!(tsc::now_ns() - started < 2_000_000_000, "killing a sleeper waited for its deadline");

    // A runnable target that only yields.
    let running = Arc::new(AtomicBool::new(false));
    let running_flag = running.clone();
    let spinner = TaskBuilder::new("yielder")
        .spawn(move || {
            loop {
                running_flag.store(true, Ordering::Release);
                scheduler::yield_now();
            }
        })
        .map_err(spawn_error)?;
    ensure!(wait_for(2000, || running.load(Ordering::Acquire)), "yielder never ran");
    spawn::kill(spinner.id()).map_err(|error| format!("kill yielder: {error}"))?;
    let value: ExitValue<()> = join(spinner)?;
    ensure!(matches!(value, ExitValue::Failed(FailureReason::Killed)), "yielder not Failed(Killed)");

    // Errors.
    let missing = TaskId::new(u64::MAX);
    ensure!(spawn::kill(missing) == Err(spawn::KillError::NoSuchTask(missing)), "killing a missing id did not fail");
    let idle = task::all_tasks().into_iter().find(|task| task.is_idle()).ok_or("no idle task in the table")?;
    ensure!(spawn::kill(idle.id()) == Err(spawn::KillError::IdleTask(idle.id())), "killing an idle task did not fail");
    let done = TaskBuilder::new("done").spawn(|| ()).map_err(spawn_error)?;
    let done_id = done.id();
    join(done)?;
    ensure!(wait_for(1000, || task::task_by_id(done_id).is_none()), "an exited, joined task was not reaped");
    ensure!(spawn::kill(done_id).is_err(), "killing a finished task did not fail");
    Ok(())
}

/// The function [`spawn_by_name`] finds by its path, `test_tasks::triple`.
#[inline(never)]
pub fn triple(value: u64) -> u64 {
    value * 3
}

fn spawn_by_name() -> Result<(), String> {
    let namespace = system_namespaces::kernel_namespace().ok_or("no kernel namespace")?;
    // SAFETY: `test_tasks::triple` is `fn(u64) -> u64` (defined above).
    let handle = unsafe {
        TaskBuilder::new("triple").spawn_function::<u64, u64>(namespace, "test_tasks", "test_tasks::triple", 14)
    }
    .map_err(spawn_error)?;
    ensure!(matches!(join(handle)?, ExitValue::Completed(42)), "triple(14) did not complete with 42");
    // SAFETY: never called: the lookup fails.
    let missing = unsafe {
        TaskBuilder::new("missing").spawn_function::<u64, u64>(
            namespace,
            "test_tasks",
            "test_tasks::no_such_function",
            0,
        )
    };
    ensure!(matches!(missing, Err(SpawnError::Function(_))), "a bad function name did not give SpawnError::Function");
    // SAFETY: never called: the lookup fails.
    let no_cell =
        unsafe { TaskBuilder::new("missing").spawn_function::<u64, u64>(namespace, "no_such_cell", "x::y", 0) };
    ensure!(matches!(no_cell, Err(SpawnError::Function(_))), "a bad cell name did not give SpawnError::Function");
    Ok(())
}

/// `spawn::spawn_application`: an application runs and exits 0, twice (the second time from the entry remembered in
/// its `LoadedCell`, which must point into that cell); names that are not applications are refused as before.
fn spawn_application_by_name() -> Result<(), String> {
    let namespace = system_namespaces::application_namespace().ok_or("no application namespace")?;
    for round in 0..2 {
        let args = alloc::vec![String::from("hello"), String::from("test_tasks")];
        let handle = spawn::spawn_application("hello", args).map_err(spawn_error)?;
        ensure!(matches!(join(handle)?, ExitValue::Completed(0)), "hello (round {round}) did not exit with 0");
        let cell = namespace.cell("hello").ok_or("hello is not loaded after running")?;
        let memo = cell.entry_memo().load(Ordering::Acquire);
        ensure!(
            memo != 0 && cell.section_containing(memory_structs::VirtualAddress::new(memo)).is_some(),
            "hello's remembered entry {memo:#x} is not in the cell"
        );
    }
    let missing = spawn::spawn_application("no_such_application", Vec::new());
    ensure!(matches!(missing, Err(SpawnError::NoSuchApplication(_))), "a missing application was not refused");
    let kernel_cell = spawn::spawn_application("scheduler", Vec::new());
    ensure!(
        matches!(kernel_cell, Err(SpawnError::NoSuchApplication(_) | SpawnError::NotAnApplication(_))),
        "a kernel cell was started as an application"
    );
    for _ in 0..2 {
        let bad = spawn::spawn_application("bad_entry", Vec::new());
        ensure!(matches!(bad, Err(SpawnError::NotAnApplication(_))), "bad_entry was not refused");
    }
    let bad_cell = namespace.cell("bad_entry").ok_or("bad_entry was not loaded by the check")?;
    ensure!(bad_cell.entry_memo().load(Ordering::Acquire) == 0, "a refused entry was remembered");
    Ok(())
}

fn pinning() -> Result<(), String> {
    let cpus: Vec<usize> = scheduler::online_cpus().collect();
    for &cpu in &cpus {
        let handle = TaskBuilder::new("pinned").pin(cpu).spawn(scheduler::current_cpu).map_err(spawn_error)?;
        ensure!(handle.task().cpu() == cpu && handle.task().pinned_cpu() == Some(cpu), "task not assigned to {cpu}");
        let ran_on = join(handle)?;
        ensure!(matches!(ran_on, ExitValue::Completed(c) if c == cpu), "pinned to CPU {cpu}, ran elsewhere");
    }
    let offline = scheduler::MAX_CPUS + 1;
    let refused = TaskBuilder::new("nowhere").pin(offline).spawn(|| ());
    ensure!(
        matches!(refused, Err(SpawnError::Scheduler(scheduler::SpawnError::InvalidCpu(c))) if c == offline),
        "pinning to a missing CPU was not refused"
    );
    // Unpinned tasks that stay alive together spread over the CPUs (least-loaded placement).
    let handles: Vec<_> = (0..2 * cpus.len())
        .map(|_| {
            TaskBuilder::new("spread").spawn(|| {
                scheduler::sleep(Duration::from_millis(20));
                scheduler::current_cpu()
            })
        })
        .collect::<Result<_, _>>()
        .map_err(spawn_error)?;
    let mut used = Vec::new();
    for handle in handles {
        if let ExitValue::Completed(cpu) = join(handle)?
            && !used.contains(&cpu)
        {
            used.push(cpu);
        }
    }
    ensure!(used.len() == cpus.len(), "{} unpinned tasks used CPUs {used:?} of {cpus:?}", 2 * cpus.len());
    Ok(())
}

fn sleep_accuracy() -> Result<(), String> {
    // Accuracy target: within 2 timer ticks (2 ms when no timer runs: the idle loop then polls).
    let tick = scheduler::tick_period_ns().unwrap_or(1_000_000);
    let tolerance = 2 * tick;
    for ticks in [1u64, 3, 5] {
        let requested = ticks * tick;
        let started = tsc::now_ns();
        scheduler::sleep(Duration::from_nanos(requested));
        let elapsed = tsc::now_ns() - started;
        ensure!(elapsed >= requested, "slept {elapsed} ns, asked for {requested} ns");
        ensure!(elapsed <= requested + tolerance, "slept {elapsed} ns for {requested} ns (tolerance {tolerance} ns)");
        log::info!(
            "test_tasks: sleep {ticks} tick(s) = {} us: woke {} us late",
            requested / 1000,
            (elapsed - requested) / 1000
        );
    }
    // Sleepers wake in deadline order, whatever the order they went to sleep in.
    let step_ns = (3 * tick).max(5_000_000);
    let order = Arc::new(sync::Mutex::new(Vec::new()));
    let cpu = scheduler::current_cpu();
    let handles: Vec<_> = (0..5u64)
        .rev()
        .map(|index| {
            let order = order.clone();
            TaskBuilder::new("sleeper").pin(cpu).spawn(move || {
                scheduler::sleep(Duration::from_nanos((index + 1) * step_ns));
                order.lock().push(index);
            })
        })
        .collect::<Result<_, _>>()
        .map_err(spawn_error)?;
    for handle in handles {
        join(handle)?;
    }
    let order = order.lock().clone();
    ensure!(order == [0, 1, 2, 3, 4], "sleepers woke in order {order:?}");
    Ok(())
}

fn preemption() -> Result<(), String> {
    // Preemption needs this CPU's timer; without ticks the test below could not fail, so a missing timer fails.
    let cpu = scheduler::current_cpu();
    let ticks = scheduler::ticks();
    ensure!(
        wait_for(1000, || scheduler::ticks() > ticks + 1),
        "CPU {cpu}'s timer did not tick within 1 s ({ticks} ticks so far): preemption cannot be tested"
    );
    ensure!(scheduler::current_cpu() == cpu, "the test task moved from CPU {cpu} while waiting for ticks");
    // A task that never yields must not keep another task on its CPU from running.
    let flag = Arc::new(AtomicBool::new(false));
    let spin_flag = flag.clone();
    let spinner = TaskBuilder::new("spinner")
        .pin(cpu)
        .spawn(move || {
            let started = tsc::now_ns();
            while !spin_flag.load(Ordering::Acquire) {
                if tsc::now_ns() - started > 5_000_000_000 {
                    return false;
                }
                core::hint::spin_loop();
            }
            true
        })
        .map_err(spawn_error)?;
    let set_flag = flag.clone();
    let setter = TaskBuilder::new("setter").pin(cpu).spawn(move || set_flag.store(true, Ordering::Release));
    join(setter.map_err(spawn_error)?)?;
    ensure!(matches!(join(spinner)?, ExitValue::Completed(true)), "the spinning task was never preempted");
    Ok(())
}

fn stack_overflow() -> Result<(), String> {
    ensure!(
        scheduler::task_fault_recovery(),
        "the exception hook does not recover tasks (fault_recovery not installed): stack overflow cannot be tested"
    );
    let handle = TaskBuilder::new("overflow").stack_pages(4).spawn(|| recurse(0)).map_err(spawn_error)?;
    match join(handle)? {
        ExitValue::Failed(FailureReason::StackOverflow { .. }) => {}
        other => return Err(format!("overflowing task ended with {other:?}")),
    }
    let after = TaskBuilder::new("after overflow").spawn(|| 1u8).map_err(spawn_error)?;
    ensure!(matches!(join(after)?, ExitValue::Completed(1)), "the system did not run on after a stack overflow");
    Ok(())
}

/// Recurses until the stack overflows (each frame holds 1 KiB).
#[inline(never)]
#[allow(unconditional_recursion, reason = "it recurses until the guard page stops it, on purpose")]
fn recurse(depth: u64) -> u64 {
    let buffer = core::hint::black_box([depth; 128]);
    recurse(depth + 1).wrapping_add(buffer[(depth % 128) as usize])
}

fn spawn_exit_cycles() -> Result<(), String> {
    const BATCH: u64 = 10;
    const BATCHES: u64 = 100;
    let run_batch = |batch: u64| -> Result<(), String> {
        let handles: Vec<_> = (0..BATCH)
            .map(|index| TaskBuilder::new("cycle").spawn(move || batch * BATCH + index))
            .collect::<Result<_, _>>()
            .map_err(spawn_error)?;
        for (index, handle) in handles.into_iter().enumerate() {
            let expected = batch * BATCH + index as u64;
            ensure!(matches!(join(handle)?, ExitValue::Completed(v) if v == expected), "cycle {expected} wrong value");
        }
        Ok(())
    };
    // Tasks of earlier steps may have exited without being reaped yet (their joiner can run before the switch).
    let resident = task::all_tasks().iter().filter(|task| task.state() != RunState::Exited).count();
    // Stacks in the pool (`task::stack`) are a cache, not a leak: memory is counted as if they were freed (each
    // holds DEFAULT_STACK_PAGES frames and that many pages plus a guard page). The pool has no heap.
    let settle = || -> Result<memory::MemoryStats, String> {
        ensure!(
            wait_for(2000, || task::task_count() == resident),
            "exited tasks were not reaped: {resident} resident before, now {:?}",
            task::all_tasks()
        );
        scheduler::sleep(Duration::from_millis(5));
        let pooled = task::pooled_stacks();
        ensure!(pooled <= task::STACK_POOL_CAPACITY, "{pooled} pooled stacks, more than the pool's capacity");
        let mut stats = memory::stats();
        stats.free_frames += pooled * task::DEFAULT_STACK_PAGES;
        stats.free_pages += pooled * (task::DEFAULT_STACK_PAGES + 1);
        Ok(stats)
    };
    // Warm up: runqueues, sleep lists and the task table reach their working capacity, and page tables for the
    // stack region exist.
    for batch in 0..3 {
        run_batch(batch)?;
    }
    let before = settle()?;
    let started = tsc::now_ns();
    for batch in 0..BATCHES {
        run_batch(batch)?;
    }
    let elapsed = tsc::now_ns() - started;
    let after = settle()?;
    log::info!(
        "test_tasks: {} spawn/exit cycles in {} ms; before {before:?}; after {after:?}",
        BATCH * BATCHES,
        elapsed / 1_000_000
    );
    // Page-table frames taken when a stack lands in a fresh part of the page region are never freed; they are not
    // a leak, so frames are compared net of them.
    ensure!(
        after.free_frames_with_page_tables() == before.free_frames_with_page_tables(),
        "free frames {} -> {} (page-table frames {} -> {})",
        before.free_frames,
        after.free_frames,
        before.page_table_frames,
        after.page_table_frames
    );
    ensure!(after.free_pages == before.free_pages, "free pages {} -> {}", before.free_pages, after.free_pages);
    ensure!(
        after.heap_used_bytes == before.heap_used_bytes,
        "heap used {} -> {} bytes",
        before.heap_used_bytes,
        after.heap_used_bytes
    );
    ensure!(after.leaked_frames == before.leaked_frames, "frames leaked");
    // The pool really holds what it says: draining it frees exactly that many stacks' frames and pages.
    let pooled = task::pooled_stacks();
    ensure!(pooled > 0, "1000 spawn/exit cycles left no stack in the pool (stacks are not recycled)");
    let undrained = memory::stats();
    let drained = task::drain_stack_pool();
    let freed = memory::stats();
    ensure!(
        freed.free_frames == undrained.free_frames + drained * task::DEFAULT_STACK_PAGES
            && freed.free_pages == undrained.free_pages + drained * (task::DEFAULT_STACK_PAGES + 1),
        "draining {drained} pooled stacks: free frames {} -> {}, free pages {} -> {}",
        undrained.free_frames,
        freed.free_frames,
        undrained.free_pages,
        freed.free_pages
    );
    Ok(())
}

fn task_table() -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let worker = TaskBuilder::new("ps-visible")
        .priority(42)
        .spawn(move || {
            while !flag.load(Ordering::Acquire) {
                scheduler::sleep(Duration::from_millis(1));
            }
        })
        .map_err(spawn_error)?;
    let rows = scheduler::task_summaries();
    log::info!("test_tasks: ps:\n{}", scheduler::TaskSummary::HEADER);
    for row in &rows {
        log::info!("test_tasks: ps: {row}");
    }
    let row = rows.iter().find(|row| row.id == worker.id()).ok_or("the spawned task is missing from the table")?;
    ensure!(row.name == "ps-visible" && row.state != RunState::Exited, "wrong row {row:?}");
    let idle_rows = rows.iter().filter(|row| row.kind == task::TaskKind::Idle).count();
    ensure!(
        idle_rows == scheduler::online_cpu_count(),
        "{idle_rows} idle tasks for {} CPUs",
        scheduler::online_cpu_count()
    );
    stop.store(true, Ordering::Release);
    join(worker)?;
    Ok(())
}
