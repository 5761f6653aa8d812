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
//! The interrupt-handler test registers a vector whose handler executes `ud2`, and has a task pinned to one CPU
//! send itself that interrupt: the task must end `Failed` with `#UD` (the handler abandoned, the interrupted task
//! unwound), and afterwards that CPU must still take interrupts of the same priority class (a second self-IPI to
//! another test vector arrives), which needs the abandoned handler's end-of-interrupt. Without the recovery the
//! dispatcher stops the machine (`not in task context`).
//!
//! The idle test sets a one-shot hook that the last CPU's idle loop calls (it executes `ud2`), waits for that
//! CPU to go idle and fault, then checks that its idle loop was restarted (`scheduler::idle_restarts`) and that a
//! task pinned there still runs to completion. Without the restart, that CPU stops for good ("outside any task;
//! stopping this CPU") and the pinned task never runs (on one CPU the machine hangs).
//!
//! The watchdog test pins a task to the last CPU that keeps interrupts off for [`STALL_NS`] (its timer stops),
//! and checks that another CPU's timer recorded that CPU as stopped (`apic::watchdog`); without the watchdog
//! there is no record and the test fails. On one CPU nothing can watch it (its own timer is stopped too), so the
//! test says so and does not run.
//!
//! The frame-allocator test faults while holding the frame allocator's lock (`memory::with_frame_allocator_lock_held`);
//! the lock must be free afterwards and a frame allocatable. The scheduler-path idle test makes the last CPU's
//! idle loop execute `ud2` in the scheduler's own code with interrupts enabled: its idle loop must restart.
//!
//! The NMI-watchdog test spins with interrupts off forever on CPU 0; the PIT's NMI must fail that task (an
//! exception with vector 2) within the watchdog's threshold plus a margin.
//!
//! # Control flow of [`run`]
//! 1. fault holding COM1's lock (inside `serial::with_port`);
//! 2. fault holding the heap lock (inside `memory::with_heap_lock_held`); a tick while holding the heap's per-CPU
//!    pin is deferred to its end, a fault holding it leaves the CPU usable, and a pin left held is released by
//!    the timer (`heap_pin`);
//! 3. fault holding the frame allocator's lock, the task table's, the task-I/O registry's (taken over by its next
//!    user), then the fault log's, then inside the fault path itself (a #PF
//!    whose handling executes `ud2` on the IST stack: the task is ended, the machine goes on);
//! 4. a fault in an interrupt handler;
//! 5. a fault in an idle task;
//! 6. a fault in the scheduler path of an idle task, interrupts enabled; and with interrupts off, holding its
//!    CPU's runqueue lock (2 CPUs or more: the idle CPU must not be the test's own); a panic in an idle task;
//! 7. a task faults in `schedule` holding its CPU's runqueue lock: the runqueue is rebuilt, the CPU goes on; the
//!    same holding the sleepers lock (the sleepers keep their deadlines); a task blocked in a join faults there and
//!    is unwound running, its landing pad joining another task (`blocked`); a task faults after its context switch,
//!    before finishing it: the next switch finishes it; a runqueue lock left taken by a task that ran on is
//!    repaired at the NMI watchdog's stall;
//! 8. a restartable task whose fault the unwinder cannot walk is restarted; a task a fault took out of its
//!    runqueue is queued again; damaged idle-task and current-task words are rewritten from the task table by the
//!    fault path, and a damaged runqueue or sleepers header is rebuilt at its next lock (`cpu_state`); a call into data is
//!    unwound from its return address;
//! 9. a CPU stalled with interrupts off is recorded by the watchdog;
//! 10. a task stuck with interrupts off on CPU 0 is failed by the NMI watchdog.
#![no_std]
#![feature(abi_x86_interrupt)]

extern crate alloc;

mod blocked;
mod cpu_state;
mod heap_pin;
mod idle;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use x86_64::structures::idt::InterruptStackFrame;

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
    expect_ud_from(name, TaskBuilder::new(name), body)
}

/// [`expect_ud`] with the task built by `builder` (e.g. pinned to a CPU).
fn expect_ud_from(name: &str, builder: TaskBuilder, body: impl FnOnce() + Send + 'static) -> Result<(), String> {
    let handle = builder.spawn(body).map_err(|error| format!("{name}: spawn: {error}"))?;
    wait_until_finished(&handle, || format!("{name}: the faulting task did not end within 3 s (fault path hung?)"))?;
    match handle.join().map_err(|error| format!("{name}: join: {error:?}"))? {
        ExitValue::Failed(FailureReason::Exception { kind: ExceptionKind::InvalidOpcode, .. }) => Ok(()),
        ExitValue::Failed(reason) => Err(format!("{name}: wrong failure: {reason}")),
        ExitValue::Completed(()) => Err(format!("{name}: completed instead of faulting")),
    }
}

/// Waits (sleeping 2 ms between looks) until the task of `handle` has ended, at most [`JOIN_TIMEOUT_NS`];
/// `Err(timed_out())` if it has not by then.
fn wait_until_finished<T: 'static>(
    handle: &spawn::JoinHandle<T>,
    timed_out: impl FnOnce() -> String,
) -> Result<(), String> {
    let deadline = tsc::now_ns() + JOIN_TIMEOUT_NS;
    while !handle.is_finished() {
        if tsc::now_ns() > deadline {
            return Err(timed_out());
        }
        scheduler::sleep(Duration::from_millis(2));
    }
    Ok(())
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

/// A task faults holding the task-I/O registry's lock (`spawn::stdio`, which every pipe read and write and every
/// application's exit takes): the next user takes the lock over (its holder's stack was reaped) instead of
/// spinning on it. In the campaign (session 13) a fault inside `Registration::drop` left it taken and the same
/// task's failure callback spun on it until the NMI watchdog.
fn fault_holding_task_io_registry() -> Result<(), String> {
    expect_ud("fault_holding_task_io", || {
        spawn::stdio::leak_registry_lock_for_test();
        fault();
    })?;
    let deadline = tsc::now_ns() + JOIN_TIMEOUT_NS;
    let lookup = TaskBuilder::new("task_io_lookup")
        .spawn(|| spawn::stdio::current().is_none())
        .map_err(|error| format!("fault_holding_task_io: spawn: {error}"))?;
    while !lookup.is_finished() {
        if tsc::now_ns() > deadline {
            return Err("fault_holding_task_io: a lookup of the registry did not return within 3 s".into());
        }
        scheduler::sleep(Duration::from_millis(2));
    }
    match lookup.join().map_err(|error| format!("fault_holding_task_io: join: {error:?}"))? {
        ExitValue::Completed(true) => {}
        other => return Err(format!("fault_holding_task_io: the lookup ended with {other:?}")),
    }
    serial::write_str("fault_holding_task_io: the registry's lock, left taken by a fault, was taken over\n");
    Ok(())
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

/// A task faults while holding the task table's lock: the fault path releases it (its holder is recorded), so the
/// runqueue repair and the task's own exit and reap, which all read or change the table, go on. Before, the lock
/// stayed taken and the CPU spun on it at the task's reap (in the campaign: an exception handler that faulted
/// while walking the table left every later runqueue repair with "the task table is busy").
fn fault_holding_task_table() -> Result<(), String> {
    expect_ud("fault_holding_task_table", || task::with_task_table_held(fault))?;
    if !wait_unlocked(task::task_table_is_locked) {
        return Err("fault_holding_task_table: the task table's lock is still held after the task ended".into());
    }
    log::info!("fault_holding_task_table: recovered; {} tasks in the table", task::task_count());
    Ok(())
}

/// A task faults while holding the frame allocator's lock: recovered, the lock free, and a 4 KiB mapping (a frame)
/// is allocated. Before the memory crate's locks recorded their holder, every later frame allocation spun forever.
fn fault_holding_frame_allocator() -> Result<(), String> {
    expect_ud("fault_holding_frames", || memory::with_frame_allocator_lock_held(fault))?;
    if !wait_unlocked(memory::frame_allocator_is_locked) {
        return Err("fault_holding_frames: the frame allocator's lock is still held after the task ended".into());
    }
    let frames = memory::allocate_frames(1).map_err(|error| format!("fault_holding_frames: allocate: {error:?}"))?;
    log::info!(
        "fault_holding_frames: recovered; frame allocator free, allocated {:#x}",
        frames.start_address().value()
    );
    Ok(())
}

/// A task faults while holding the fault log's lock: the fault path releases it, so the task's own failure is
/// recorded (before, its failure hook spun on the lock forever) and the log can be read.
fn fault_holding_fault_log() -> Result<(), String> {
    let handle = TaskBuilder::new("fault_holding_fault_log")
        .spawn(|| fault_recovery::with_fault_log_lock_held(fault))
        .map_err(|error| format!("fault_holding_fault_log: spawn: {error}"))?;
    let id = handle.id();
    wait_until_finished(&handle, || {
        String::from("fault_holding_fault_log: the task did not end within 3 s (failure hook hung?)")
    })?;
    match handle.join().map_err(|error| format!("fault_holding_fault_log: join: {error:?}"))? {
        ExitValue::Failed(FailureReason::Exception { kind: ExceptionKind::InvalidOpcode, .. }) => {}
        other => return Err(format!("fault_holding_fault_log: expected #UD, got {other:?}")),
    }
    if !fault_recovery::fault_log().iter().any(|record| record.task == id) {
        return Err(format!("fault_holding_fault_log: no fault-log record for task {id}"));
    }
    log::info!("fault_holding_fault_log: recovered; the lock was released and the failure recorded");
    Ok(())
}

/// A #PF whose handling faults again (`ud2` inside the exception hook, on the #PF IST stack): an exception inside
/// an exception handler. The task must end `Failed` with #UD (ended without unwinding) and the system go on;
/// before, the dispatcher refused recovery and stopped the machine ("exception inside an exception handler").
fn fault_inside_the_fault_path() -> Result<(), String> {
    fault_recovery::fault_in_next_fault_path();
    let result = expect_ud("fault_inside_fault_path", || {
        // SAFETY: runs in a spawned task with the exception hook installed; the #PF is handled by it.
        core::hint::black_box(unsafe { fault_injection::null_dereference() });
    });
    result?;
    let block: Vec<u8> = core::hint::black_box(alloc::vec![0x5a; 256]);
    log::info!("fault_inside_fault_path: recovered; the task was ended, allocated {} bytes", block.len());
    Ok(())
}

/// Vectors no other cell uses (devices 0x20-0x2F, the reschedule IPI 0x40, `test_live_update` 0x70, system IPIs
/// 0xF1-0xFF); both in priority class 7, so a handler left in service on a CPU would block the second.
const FAULTING_VECTOR: u8 = 0x71;
const PING_VECTOR: u8 = 0x72;

/// Interrupts taken on [`PING_VECTOR`].
static PINGS: AtomicU64 = AtomicU64::new(0);

extern "x86-interrupt" fn faulting_interrupt(_frame: InterruptStackFrame) {
    fault();
    apic::end_of_interrupt();
}

extern "x86-interrupt" fn ping_interrupt(_frame: InterruptStackFrame) {
    PINGS.fetch_add(1, Ordering::AcqRel);
    apic::end_of_interrupt();
}

/// Sends this CPU [`FAULTING_VECTOR`]; the handler faults before this returns.
fn interrupted_by_a_faulting_handler() {
    if apic::send_ipi(cpu::current_id(), FAULTING_VECTOR).is_ok() {
        // The interrupt arrives at once (interrupts are on); spin a little in case delivery lags.
        let until = tsc::now_ns() + 100_000_000;
        while tsc::now_ns() < until {
            core::hint::spin_loop();
        }
    }
}

/// Sends this CPU [`PING_VECTOR`] and waits up to 100 ms for its handler to run.
fn ping_self() {
    let before = PINGS.load(Ordering::Acquire);
    if apic::send_ipi(cpu::current_id(), PING_VECTOR).is_err() {
        return;
    }
    let until = tsc::now_ns() + 100_000_000;
    while PINGS.load(Ordering::Acquire) == before && tsc::now_ns() < until {
        core::hint::spin_loop();
    }
}

/// A fault in an interrupt handler fails the interrupted task, and the CPU keeps taking interrupts.
fn fault_in_interrupt_handler() -> Result<(), String> {
    interrupts::register_handler(FAULTING_VECTOR, faulting_interrupt)
        .map_err(|error| format!("fault_in_irq_handler: register: {error:?}"))?;
    if let Err(error) = interrupts::register_handler(PING_VECTOR, ping_interrupt) {
        // Undoing our own registration cannot fail: the vector is ours and registered just above.
        let _ = interrupts::deregister_handler(FAULTING_VECTOR);
        return Err(format!("fault_in_irq_handler: register: {error:?}"));
    }
    let result = interrupt_handler_checks();
    // As above: both vectors were registered by this function; a failure here would be reported by the next run.
    let _ = interrupts::deregister_handler(FAULTING_VECTOR);
    let _ = interrupts::deregister_handler(PING_VECTOR);
    result
}

fn interrupt_handler_checks() -> Result<(), String> {
    let target = cpu::online().last().ok_or("fault_in_irq_handler: no CPU online")?.index();
    let handle = TaskBuilder::new("fault_in_irq_handler")
        .pin(target)
        .spawn(interrupted_by_a_faulting_handler)
        .map_err(|error| format!("fault_in_irq_handler: spawn: {error}"))?;
    match handle.join().map_err(|error| format!("fault_in_irq_handler: join: {error:?}"))? {
        ExitValue::Failed(FailureReason::Exception { kind: ExceptionKind::InvalidOpcode, .. }) => {}
        ExitValue::Failed(reason) => return Err(format!("fault_in_irq_handler: wrong failure: {reason}")),
        ExitValue::Completed(()) => return Err("fault_in_irq_handler: the task was not interrupted".into()),
    }
    let before = PINGS.load(Ordering::Acquire);
    let pinger = TaskBuilder::new("ping_after_irq_fault")
        .pin(target)
        .spawn(ping_self)
        .map_err(|error| format!("fault_in_irq_handler: spawn: {error}"))?;
    pinger.join().map_err(|error| format!("fault_in_irq_handler: join: {error:?}"))?;
    if PINGS.load(Ordering::Acquire) == before {
        return Err(format!(
            "fault_in_irq_handler: CPU {target} takes no interrupt of the faulted handler's class afterwards (no EOI?)"
        ));
    }
    serial::write_fmt(format_args!(
        "fault_in_irq_handler: interrupted task failed with #UD; CPU {target} takes interrupts again\n"
    ));
    Ok(())
}

/// A task faults inside `schedule` while holding its CPU's runqueue lock, half-way through requeuing itself (made
/// `Runnable`, not yet queued: what the campaign's flipped bits and skipped instructions in the requeue did). It
/// must end `Failed` with `#UD`, and the CPU must go on scheduling: a bystander task queued on the same CPU
/// before the fault completes (the repair re-queued it from the task table), and so does a task spawned there
/// afterwards. Before the runqueue lock recorded its holder, the lock stayed taken and the CPU hung in its next
/// `schedule` with interrupts off (on one CPU, the machine).
fn fault_holding_runqueue() -> Result<(), String> {
    let target = cpu::online().last().ok_or("fault_holding_runqueue: no CPU online")?.index();
    let bystander = TaskBuilder::new("runqueue_bystander")
        .pin(target)
        .spawn(|| {
            let mut sum = 0u64;
            for i in 0..200u64 {
                sum += core::hint::black_box(i);
                scheduler::yield_now();
            }
            sum
        })
        .map_err(|error| format!("fault_holding_runqueue: spawn bystander: {error}"))?;
    let faulting = TaskBuilder::new("fault_holding_runqueue")
        .pin(target)
        .spawn(|| {
            // Interrupts off from before the request to the fault: no tick may run `schedule` for this task in
            // between (inside an interrupt handler, where a scheduler-path fault is refused).
            let _ = task::interrupts::disable();
            scheduler::set_runqueue_fault_once(scheduler::current_cpu());
            scheduler::yield_now();
        })
        .map_err(|error| format!("fault_holding_runqueue: spawn: {error}"))?;
    let deadline = tsc::now_ns() + JOIN_TIMEOUT_NS;
    while !faulting.is_finished() || !bystander.is_finished() {
        if tsc::now_ns() > deadline {
            return Err(format!(
                "fault_holding_runqueue: the faulting task or the bystander on CPU {target} did not end within 3 s \
                 (runqueue lock still held?)"
            ));
        }
        scheduler::sleep(Duration::from_millis(2));
    }
    if scheduler::runqueue_fault_pending(target) {
        return Err("fault_holding_runqueue: the requested fault never happened".into());
    }
    match faulting.join().map_err(|error| format!("fault_holding_runqueue: join: {error:?}"))? {
        ExitValue::Failed(FailureReason::Exception { kind: ExceptionKind::InvalidOpcode, .. }) => {}
        other => return Err(format!("fault_holding_runqueue: the faulting task ended with {other:?}")),
    }
    match bystander.join().map_err(|error| format!("fault_holding_runqueue: join bystander: {error:?}"))? {
        ExitValue::Completed(19_900) => {}
        other => return Err(format!("fault_holding_runqueue: the bystander ended with {other:?}")),
    }
    let after = TaskBuilder::new("after_runqueue_fault")
        .pin(target)
        .spawn(|| (0..1000u64).map(core::hint::black_box).sum::<u64>())
        .map_err(|error| format!("fault_holding_runqueue: spawn: {error}"))?;
    wait_until_finished(&after, || {
        format!("fault_holding_runqueue: a task pinned to CPU {target} did not run after the fault")
    })?;
    match after.join().map_err(|error| format!("fault_holding_runqueue: join: {error:?}"))? {
        ExitValue::Completed(499_500) => {}
        other => return Err(format!("fault_holding_runqueue: the task after the fault ended with {other:?}")),
    }
    serial::write_fmt(format_args!(
        "fault_holding_runqueue: a task faulted in schedule holding CPU {target}'s runqueue lock; the runqueue was \
         rebuilt, a bystander and a later task completed\n"
    ));
    Ok(())
}

/// A task faults while holding its CPU's sleepers lock, made `Sleeping` and not yet queued (what the campaign's
/// flipped bits in `sleep_until_ns` did): it must end `Failed` with `#UD`; a bystander asleep on the same CPU
/// must still wake, and not before its deadline (the rebuilt queue keeps each sleeper's recorded deadline); a
/// task sleeping there afterwards completes. Before the sleepers lock recorded its holder, the next sleep on that
/// CPU spun on it with interrupts off (on one CPU, the machine hung).
fn fault_holding_sleepers() -> Result<(), String> {
    const BYSTANDER_SLEEP_NS: u64 = 300_000_000;
    let target = cpu::online().last().ok_or("fault_holding_sleepers: no CPU online")?.index();
    let bystander = TaskBuilder::new("sleepers_bystander")
        .pin(target)
        .spawn(|| {
            let start = tsc::now_ns();
            scheduler::sleep(Duration::from_nanos(BYSTANDER_SLEEP_NS));
            tsc::now_ns() - start
        })
        .map_err(|error| format!("fault_holding_sleepers: spawn bystander: {error}"))?;
    // Let the bystander go to sleep first.
    scheduler::sleep(Duration::from_millis(30));
    let faulting = TaskBuilder::new("fault_holding_sleepers")
        .pin(target)
        .spawn(|| {
            // Interrupts off from the request to the fault, so no other task on this CPU sleeps in between (the
            // request is for this CPU only).
            let _ = task::interrupts::disable();
            scheduler::set_sleepers_fault_once(scheduler::current_cpu());
            scheduler::sleep(Duration::from_millis(1));
        })
        .map_err(|error| format!("fault_holding_sleepers: spawn: {error}"))?;
    let deadline = tsc::now_ns() + JOIN_TIMEOUT_NS;
    while !faulting.is_finished() || !bystander.is_finished() {
        if tsc::now_ns() > deadline {
            return Err(format!(
                "fault_holding_sleepers: the faulting task or the sleeping bystander on CPU {target} did not end \
                 within 3 s (sleepers lock still held, or the sleeper lost?)"
            ));
        }
        scheduler::sleep(Duration::from_millis(2));
    }
    if scheduler::sleepers_fault_pending(target) {
        return Err("fault_holding_sleepers: the requested fault never happened".into());
    }
    match faulting.join().map_err(|error| format!("fault_holding_sleepers: join: {error:?}"))? {
        ExitValue::Failed(FailureReason::Exception { kind: ExceptionKind::InvalidOpcode, .. }) => {}
        other => return Err(format!("fault_holding_sleepers: the faulting task ended with {other:?}")),
    }
    match bystander.join().map_err(|error| format!("fault_holding_sleepers: join bystander: {error:?}"))? {
        ExitValue::Completed(slept) if slept >= BYSTANDER_SLEEP_NS => {}
        ExitValue::Completed(slept) => {
            return Err(format!(
                "fault_holding_sleepers: the bystander woke after {slept} ns, before its {BYSTANDER_SLEEP_NS} ns"
            ));
        }
        other => return Err(format!("fault_holding_sleepers: the bystander ended with {other:?}")),
    }
    let after = TaskBuilder::new("after_sleepers_fault")
        .pin(target)
        .spawn(|| {
            scheduler::sleep(Duration::from_millis(5));
            (0..1000u64).map(core::hint::black_box).sum::<u64>()
        })
        .map_err(|error| format!("fault_holding_sleepers: spawn: {error}"))?;
    wait_until_finished(&after, || {
        format!("fault_holding_sleepers: a task sleeping on CPU {target} did not end after the fault")
    })?;
    match after.join().map_err(|error| format!("fault_holding_sleepers: join: {error:?}"))? {
        ExitValue::Completed(499_500) => {}
        other => return Err(format!("fault_holding_sleepers: the task after the fault ended with {other:?}")),
    }
    serial::write_fmt(format_args!(
        "fault_holding_sleepers: a task faulted holding CPU {target}'s sleepers lock; the queue was rebuilt, a \
         sleeping bystander woke at its deadline and a later sleeper completed\n"
    ));
    Ok(())
}

/// A task's `schedule` leaves its runqueue lock taken (the guard forgotten, as when a fault skips the release
/// store) and runs on: the next `schedule` on that CPU spins on the lock with interrupts off. The NMI watchdog must
/// find the stall, see that the lock's holder is not on a CPU (the skipper was switched out), rebuild the queue and
/// resume the spinning code: tasks on that CPU complete and none fails. Without the stall repair the spinning
/// task is failed and the next one spins again (on one CPU, the machine hangs).
fn stale_runqueue_lock_repaired_at_stall() -> Result<(), String> {
    static SKIPPER_DONE: AtomicBool = AtomicBool::new(false);
    let target = cpu::online().last().ok_or("stale_runqueue_lock: no CPU online")?.index();
    SKIPPER_DONE.store(false, Ordering::Release);
    // Spawned first, so nothing on another CPU touches this CPU's runqueue while its lock is stale (a wake-up or
    // spawn from another CPU would spin on it there, where the stall repair does not look).
    let after = TaskBuilder::new("after_stale_runqueue_lock")
        .pin(target)
        .spawn(|| {
            scheduler::sleep(Duration::from_millis(5));
            (0..1000u64).map(core::hint::black_box).sum::<u64>()
        })
        .map_err(|error| format!("stale_runqueue_lock: spawn: {error}"))?;
    // Runnable on that CPU whenever the skipper runs, so the skipper's yield switches away (the skipper is then
    // off the CPU, which is what makes its token stale); bounded, in case the skipper never ends.
    let bystander = TaskBuilder::new("stale_runqueue_bystander")
        .pin(target)
        .spawn(|| {
            let deadline = tsc::now_ns() + 4 * JOIN_TIMEOUT_NS;
            while !SKIPPER_DONE.load(Ordering::Acquire) && tsc::now_ns() < deadline {
                scheduler::yield_now();
            }
        })
        .map_err(|error| format!("stale_runqueue_lock: spawn bystander: {error}"))?;
    let skipper = TaskBuilder::new("runqueue_release_skipper")
        .pin(target)
        .spawn(|| {
            let _ = task::interrupts::disable();
            scheduler::set_runqueue_release_skipped_once(scheduler::current_cpu());
            // Switches away holding the lock for good; runs again once the stall repair rebuilt the queue.
            scheduler::yield_now();
            SKIPPER_DONE.store(true, Ordering::Release);
            7u64
        })
        .map_err(|error| format!("stale_runqueue_lock: spawn: {error}"))?;
    // The NMI watchdog's threshold is 2 s (`NMI_STALL_NS`); on other CPUs the cross-CPU watchdog sends the NMI.
    let deadline = tsc::now_ns() + 3 * JOIN_TIMEOUT_NS;
    while !skipper.is_finished() || !after.is_finished() || !bystander.is_finished() {
        if tsc::now_ns() > deadline {
            return Err(format!(
                "stale_runqueue_lock: tasks on CPU {target} did not end within 9 s (lock still stale?)"
            ));
        }
        scheduler::sleep(Duration::from_millis(2));
    }
    if scheduler::runqueue_release_skip_pending(target) {
        return Err("stale_runqueue_lock: the requested skipped release never happened".into());
    }
    match skipper.join().map_err(|error| format!("stale_runqueue_lock: join: {error:?}"))? {
        ExitValue::Completed(7) => {}
        other => return Err(format!("stale_runqueue_lock: the task that skipped the release ended with {other:?}")),
    }
    match bystander.join().map_err(|error| format!("stale_runqueue_lock: join bystander: {error:?}"))? {
        ExitValue::Completed(()) => {}
        other => return Err(format!("stale_runqueue_lock: the bystander ended with {other:?}")),
    }
    match after.join().map_err(|error| format!("stale_runqueue_lock: join: {error:?}"))? {
        ExitValue::Completed(499_500) => {}
        other => return Err(format!("stale_runqueue_lock: the later task ended with {other:?}")),
    }
    serial::write_fmt(format_args!(
        "stale_runqueue_lock: CPU {target}'s runqueue lock was left taken; the stall repair rebuilt the queue and \
         every task there completed\n"
    ));
    Ok(())
}

/// A task faults right after `context_switch` returned to it, before it finished the switch (its predecessor,
/// usually the idle task, still marked on the CPU): it must end `Failed` with `#UD`, and the CPU must go on
/// scheduling, its predecessor included (a task pinned there afterwards completes). Before `switch` finished a
/// switch left unfinished, the next switch to that predecessor spun forever with interrupts off waiting for its
/// `on_cpu` flag.
fn fault_before_finishing_a_switch() -> Result<(), String> {
    let target = cpu::online().last().ok_or("fault_before_finish_switch: no CPU online")?.index();
    let faulting = TaskBuilder::new("fault_before_finish_switch")
        .pin(target)
        .spawn(|| {
            let me = scheduler::current_task().expect("in a task").id();
            scheduler::set_switch_fault_once(me, fault);
            // Switches away (to the idle task or another one) and faults when resumed.
            scheduler::sleep(Duration::from_millis(1));
        })
        .map_err(|error| format!("fault_before_finish_switch: spawn: {error}"))?;
    wait_until_finished(&faulting, || {
        format!("fault_before_finish_switch: the faulting task on CPU {target} did not end in 3 s")
    })?;
    if scheduler::switch_fault_pending() {
        return Err("fault_before_finish_switch: the requested fault never happened".into());
    }
    match faulting.join().map_err(|error| format!("fault_before_finish_switch: join: {error:?}"))? {
        ExitValue::Failed(FailureReason::Exception { kind: ExceptionKind::InvalidOpcode, .. }) => {}
        other => return Err(format!("fault_before_finish_switch: the faulting task ended with {other:?}")),
    }
    // Several rounds, so the CPU switches to the stranded predecessor (its idle task) and back.
    for round in 0..3 {
        let after = TaskBuilder::new("after_switch_fault")
            .pin(target)
            .spawn(|| {
                scheduler::sleep(Duration::from_millis(1));
                (0..1000u64).map(core::hint::black_box).sum::<u64>()
            })
            .map_err(|error| format!("fault_before_finish_switch: spawn: {error}"))?;
        let deadline = tsc::now_ns() + JOIN_TIMEOUT_NS;
        while !after.is_finished() {
            if tsc::now_ns() > deadline {
                return Err(format!(
                    "fault_before_finish_switch: task {round} pinned to CPU {target} did not end after the fault"
                ));
            }
            scheduler::sleep(Duration::from_millis(2));
        }
        match after.join().map_err(|error| format!("fault_before_finish_switch: join: {error:?}"))? {
            ExitValue::Completed(499_500) => {}
            other => return Err(format!("fault_before_finish_switch: task {round} ended with {other:?}")),
        }
    }
    serial::write_fmt(format_args!(
        "fault_before_finish_switch: a task faulted before finishing its switch on CPU {target}; later tasks there \
         completed\n"
    ));
    Ok(())
}

/// Bytes in read-only data (never executable: W^X), jumped to or called as a function by the tests below.
static NOT_CODE: [u8; 16] = [0xc3; 16];
/// Runs of [`unwalkable_then_done`] so far.
static UNWALKABLE_RUNS: AtomicU64 = AtomicU64::new(0);

/// Jumps into read-only data with a zero word on top of the stack: a #PF on the instruction fetch at an address
/// no unwind information covers, with no return address to fall back on, so the unwind ends without reaching the
/// task's catch.
fn jump_into_data() {
    // SAFETY: deliberately jumps into non-executable data (the fetch faults before any byte runs: the page is
    // mapped without execute permission); fault recovery ends the task, which never returns here.
    unsafe {
        core::arch::asm!("push 0", "jmp {target}", target = in(reg) NOT_CODE.as_ptr(), options(noreturn));
    }
}

/// Set by [`Guard`]'s drop.
static GUARD_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Counts its drop in [`GUARD_DROPPED`].
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        GUARD_DROPPED.fetch_add(1, Ordering::AcqRel);
    }
}

/// Calls into read-only data while a [`Guard`] lives in this frame: the fault has no unwind information, but the
/// return address on top of the stack leads back here, so the unwind runs the guard's drop.
#[inline(never)]
fn call_into_data_holding_a_guard() {
    let guard = Guard;
    // SAFETY: deliberately calls into non-executable data (the fetch faults before any byte runs); fault
    // recovery unwinds the task from the return address.
    let function = unsafe { core::mem::transmute::<*const u8, fn()>(NOT_CODE.as_ptr()) };
    core::hint::black_box(function)();
    drop(core::hint::black_box(guard));
}

/// A call through a damaged pointer into data is unwound from its return address: the caller's drops run.
/// Before, the walk stopped at the faulting address (no unwind information) and nothing was dropped.
fn wild_call_is_unwound() -> Result<(), String> {
    let dropped = GUARD_DROPPED.load(Ordering::Acquire);
    let handle = TaskBuilder::new("wild_call")
        .spawn(call_into_data_holding_a_guard)
        .map_err(|error| format!("wild_call: spawn: {error}"))?;
    match handle.join().map_err(|error| format!("wild_call: join: {error:?}"))? {
        ExitValue::Failed(FailureReason::Exception { kind: ExceptionKind::PageFault(_), .. }) => {}
        other => return Err(format!("wild_call: expected a #PF failure, got {other:?}")),
    }
    if GUARD_DROPPED.load(Ordering::Acquire) == dropped {
        return Err("wild_call: the caller's guard was not dropped (the unwind did not reach its frame)".into());
    }
    serial::write_str("wild_call: a call into data was unwound from its return address; the guard was dropped\n");
    Ok(())
}

/// Waits up to 3 s until the restartable series `handle` (test `name`, its runs counted in `runs`) is done.
fn wait_for_series(name: &str, handle: &spawn::RestartableHandle, runs: &AtomicU64) -> Result<(), String> {
    let deadline = tsc::now_ns() + JOIN_TIMEOUT_NS;
    while !handle.is_done() {
        if tsc::now_ns() > deadline {
            return Err(format!(
                "{name}: not done within 3 s ({} runs, {} restarts, last failure {:?})",
                runs.load(Ordering::Acquire),
                handle.restarts(),
                handle.last_failure()
            ));
        }
        scheduler::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// The first run faults where the unwinder cannot walk; the second returns.
fn unwalkable_then_done() {
    if UNWALKABLE_RUNS.fetch_add(1, Ordering::AcqRel) == 0 {
        jump_into_data();
    }
}

/// A restartable task whose fault cannot be unwound (the walk fails: no catch runs) is still restarted, like the
/// shell after a fault in code without unwind information. Before, the respawn callback ran only in the catch, so
/// such a task (the shell in the fault campaign) never came back.
fn unwalkable_fault_restarts_task() -> Result<(), String> {
    UNWALKABLE_RUNS.store(0, Ordering::Release);
    let handle = TaskBuilder::new("unwalkable_fault")
        .spawn_restartable(1, unwalkable_then_done)
        .map_err(|error| format!("unwalkable_fault: spawn: {error}"))?;
    wait_for_series("unwalkable_fault", &handle, &UNWALKABLE_RUNS)?;
    match (handle.restarts(), handle.last_failure()) {
        (1, Some(FailureReason::Exception { kind: ExceptionKind::PageFault(_), .. })) => {}
        (restarts, failure) => {
            return Err(format!("unwalkable_fault: {restarts} restarts, last failure {failure:?} (expected 1, a #PF)"));
        }
    }
    serial::write_str("unwalkable_fault: a fault the unwinder cannot walk ended the run; the task was restarted\n");
    Ok(())
}

/// Runs of [`bad_stack_pointer_then_done`].
static BAD_STACK_POINTER_RUNS: AtomicU64 = AtomicU64::new(0);

/// The first run flips bit 62 of its stack pointer (as a flipped register bit in the campaign did) and pushes: the
/// push raises #SS, whose frame cannot be pushed at that stack pointer either, so the CPU raises #DF on its IST
/// stack. The second run returns.
fn bad_stack_pointer_then_done() {
    if BAD_STACK_POINTER_RUNS.fetch_add(1, Ordering::AcqRel) == 0 {
        // SAFETY: never returns: the push faults and the task is ended by the #DF path without its frames ever being
        // resumed or walked (nothing is written anywhere: the stack pointer is non-canonical).
        unsafe { core::arch::asm!("btc rsp, 62", "push rax", options(noreturn)) };
    }
}

/// A task whose stack pointer is outside its stack ends in a #DF, which fails the task (without unwinding: its
/// frames cannot be reached) instead of stopping the CPU, and a restartable task starts again. Before, every #DF
/// stopped the machine (campaign seed 2027, a flipped RSP in the shell's `deps`).
fn bad_stack_pointer_ends_task() -> Result<(), String> {
    BAD_STACK_POINTER_RUNS.store(0, Ordering::Release);
    let handle = TaskBuilder::new("bad_stack_pointer")
        .spawn_restartable(1, bad_stack_pointer_then_done)
        .map_err(|error| format!("bad_stack_pointer: spawn: {error}"))?;
    wait_for_series("bad_stack_pointer", &handle, &BAD_STACK_POINTER_RUNS)?;
    match (handle.restarts(), handle.last_failure()) {
        (1, Some(FailureReason::Exception { kind: ExceptionKind::DoubleFault, .. })) => {}
        (restarts, failure) => {
            return Err(format!(
                "bad_stack_pointer: {restarts} restarts, last failure {failure:?} (expected 1, a #DF)"
            ));
        }
    }
    serial::write_str(
        "bad_stack_pointer: a non-canonical stack pointer ended the run in a #DF; the task was restarted\n",
    );
    Ok(())
}

/// Set to stop [`lost_task_spinner`]; its loop count.
static LOST_STOP: AtomicBool = AtomicBool::new(false);
static LOST_LOOPS: AtomicU64 = AtomicU64::new(0);

/// Yields in a loop until [`LOST_STOP`]: whenever another task of its CPU runs, it is `Runnable` in the runqueue.
fn lost_task_spinner() {
    while !LOST_STOP.load(Ordering::Acquire) {
        LOST_LOOPS.fetch_add(1, Ordering::AcqRel);
        scheduler::yield_now();
    }
}

/// A `Runnable` task that a fault took out of its runqueue without running it (a skipped instruction in the
/// policy's `pick_next` in the campaign) runs again: the idle loop's audit finds it in no runqueue at two looks and
/// queues it again. Without the audit it never runs again (the test then fails after 3 s).
fn lost_task_is_queued_again() -> Result<(), String> {
    let before = scheduler::lost_tasks_requeued();
    LOST_STOP.store(false, Ordering::Release);
    LOST_LOOPS.store(0, Ordering::Release);
    let cpu = scheduler::current_cpu();
    let handle = TaskBuilder::new("lost_task")
        .pin(cpu)
        .spawn(lost_task_spinner)
        .map_err(|e| format!("lost_task: spawn: {e}"))?;
    let task = task::task_by_id(handle.id()).ok_or("lost_task: the spinner is not in the task table")?;
    let mut removed = 0;
    for _ in 0..1000 {
        scheduler::yield_now();
        if LOST_LOOPS.load(Ordering::Acquire) > 10 {
            removed = scheduler::unqueue_for_test(&task);
            if removed > 0 {
                break;
            }
        }
    }
    let lost_at = LOST_LOOPS.load(Ordering::Acquire);
    let result = if removed == 0 {
        Err(format!("lost_task: the spinner was never found in its runqueue ({lost_at} loops)"))
    } else {
        scheduler::sleep(Duration::from_millis(20));
        let still_lost = LOST_LOOPS.load(Ordering::Acquire) == lost_at;
        let deadline = tsc::now_ns() + JOIN_TIMEOUT_NS;
        while LOST_LOOPS.load(Ordering::Acquire) == lost_at && tsc::now_ns() < deadline {
            scheduler::sleep(Duration::from_millis(5));
        }
        if !still_lost {
            Err("lost_task: the spinner ran although it was taken out of its runqueue".into())
        } else if LOST_LOOPS.load(Ordering::Acquire) == lost_at {
            Err("lost_task: the task taken out of its runqueue did not run again within 3 s".into())
        } else if scheduler::lost_tasks_requeued() == before {
            Err("lost_task: the spinner ran again, but the audit counted no lost task".into())
        } else {
            Ok(())
        }
    };
    LOST_STOP.store(true, Ordering::Release);
    drop(task);
    wait_until_finished(&handle, || "lost_task: the spinner did not finish within 3 s of being stopped".into())?;
    let _ = handle.join();
    result?;
    serial::write_str("lost_task: a runnable task taken out of its runqueue was queued again by the idle audit\n");
    Ok(())
}

/// Spins forever with interrupts off on its CPU (servicing TLB-shootdown requests, so other CPUs' unmaps do not
/// wait for it): only an NMI can end it.
fn spin_with_interrupts_off() {
    x86_64::instructions::interrupts::without_interrupts(|| {
        loop {
            memory::service_tlb_shootdown();
            core::hint::spin_loop();
        }
    })
}

/// A task stuck with interrupts off on CPU 0 (no timer tick, so no preemption and no kill can reach it) is failed
/// by the NMI watchdog (`apic::nmi_watchdog`: the PIT's NMI), and the system goes on. Without it, on one CPU the
/// machine hangs for good (the join below never returns; the harness reports a timeout).
fn stuck_task_failed_by_nmi_watchdog() -> Result<(), String> {
    let recoveries = apic::nmi_watchdog::recoveries();
    let nmis = apic::nmi_watchdog::nmi_count();
    let started = tsc::now_ns();
    let handle = TaskBuilder::new("stuck_interrupts_off")
        .pin(0)
        .spawn(spin_with_interrupts_off)
        .map_err(|error| format!("nmi_watchdog: spawn: {error}"))?;
    let deadline = started + apic::nmi_watchdog::NMI_STALL_NS + 2 * JOIN_TIMEOUT_NS;
    while !handle.is_finished() {
        if tsc::now_ns() > deadline {
            return Err(format!(
                "nmi_watchdog: the task stuck with interrupts off was not failed (NMIs seen: {} -> {})",
                nmis,
                apic::nmi_watchdog::nmi_count()
            ));
        }
        scheduler::sleep(Duration::from_millis(20));
    }
    match handle.join().map_err(|error| format!("nmi_watchdog: join: {error:?}"))? {
        ExitValue::Failed(FailureReason::Exception { kind: ExceptionKind::Other(2), .. }) => {}
        other => return Err(format!("nmi_watchdog: the stuck task ended with {other:?}, expected a failure by NMI")),
    }
    if apic::nmi_watchdog::recoveries() <= recoveries {
        return Err("nmi_watchdog: the task failed but the watchdog counted no recovery".into());
    }
    serial::write_fmt(format_args!(
        "nmi_watchdog: a task stuck with interrupts off on CPU 0 was failed by the NMI watchdog after {} ms\n",
        tsc::now_ns().saturating_sub(started) / 1_000_000
    ));
    Ok(())
}

/// How long the watchdog test keeps a CPU's interrupts off: longer than `apic::watchdog::STALL_THRESHOLD_NS` plus
/// two check periods.
const STALL_NS: u64 = 1_500_000_000;

/// Keeps interrupts off on this CPU for [`STALL_NS`] (servicing TLB-shootdown requests meanwhile, so other CPUs'
/// unmaps do not wait for it), then restores them.
fn stall_this_cpu() {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let until = tsc::now_ns() + STALL_NS;
        while tsc::now_ns() < until {
            memory::service_tlb_shootdown();
            core::hint::spin_loop();
        }
    });
}

/// The watchdog records a CPU whose timer stood still for longer than its threshold.
fn watchdog_sees_a_stalled_cpu() -> Result<(), String> {
    let Some(victim) = cpu::online().last().filter(|_| cpu::count() >= 2) else {
        serial::write_str("watchdog: one CPU, nothing can watch it; not run\n");
        return Ok(());
    };
    let before = apic::watchdog::stall_count();
    let started = tsc::now_ns();
    let handle = TaskBuilder::new("watchdog_stall")
        .pin(victim.index())
        .spawn(stall_this_cpu)
        .map_err(|error| format!("watchdog: spawn: {error}"))?;
    match handle.join().map_err(|error| format!("watchdog: join: {error:?}"))? {
        ExitValue::Completed(()) => {}
        ExitValue::Failed(reason) => return Err(format!("watchdog: the stalling task failed: {reason}")),
    }
    // One more check period for a detection that raced the end of the stall to be stored.
    scheduler::sleep(Duration::from_millis(200));
    let mut seen = None;
    apic::watchdog::for_each_stall(|stall| {
        if stall.cpu == victim && stall.detected_ns >= started {
            seen = Some(stall);
        }
    });
    let Some(stall) = seen else {
        return Err(format!(
            "watchdog: {victim} had interrupts off for {} ms and no stall was recorded ({} stalls before, {} after)",
            STALL_NS / 1_000_000,
            before,
            apic::watchdog::stall_count()
        ));
    };
    serial::write_fmt(format_args!(
        "watchdog: {victim} stalled with interrupts off; recorded by {} {} ms after its last tick\n",
        stall.detected_by,
        stall.detected_ns.saturating_sub(stall.since_ns) / 1_000_000
    ));
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
    heap_pin::tick_inside_heap_pin_is_deferred()?;
    heap_pin::fault_holding_heap_pin()?;
    heap_pin::leaked_heap_pin_is_released()?;
    fault_holding_frame_allocator()?;
    fault_holding_task_table()?;
    fault_holding_task_io_registry()?;
    fault_holding_fault_log()?;
    fault_inside_the_fault_path()?;
    fault_in_interrupt_handler()?;
    idle::fault_in_idle_task()?;
    idle::idle_fault_holding_heap()?;
    idle::scheduler_path_fault_in_idle_task()?;
    idle::idle_fault_holding_runqueue()?;
    idle::panic_in_idle_task()?;
    idle::damaged_idle_state_is_not_reaped()?;
    fault_holding_runqueue()?;
    fault_holding_sleepers()?;
    blocked::fault_while_blocked()?;
    fault_before_finishing_a_switch()?;
    stale_runqueue_lock_repaired_at_stall()?;
    unwalkable_fault_restarts_task()?;
    bad_stack_pointer_ends_task()?;
    lost_task_is_queued_again()?;
    cpu_state::damaged_idle_word_is_rewritten()?;
    cpu_state::damaged_current_word_is_rewritten()?;
    cpu_state::damaged_runqueue_header_is_rebuilt()?;
    cpu_state::damaged_sleepers_header_is_rebuilt()?;
    cpu_state::stale_on_cpu_flag_is_overwritten()?;
    wild_call_is_unwound()?;
    watchdog_sees_a_stalled_cpu()?;
    stuck_task_failed_by_nmi_watchdog()?;
    Ok(())
}
