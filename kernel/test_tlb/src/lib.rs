//! In-kernel tests of TLB shootdown (`memory`'s `shootdown` module, the `smp` cell's IPI), run by the shell's
//! `test` builtin through [`run`].
//!
//! Each check has a task pinned to another CPU (the same CPU on a one-CPU machine, which then checks the local
//! flush only) touch a page first, so that CPU caches its translation, then changes the mapping on this CPU and
//! lets the task touch the page again:
//! 1. unmap and replace: the page is unmapped and the same virtual page mapped to another frame with other
//!    contents (`allocate_pages_at`, which runs the dropped mapping's deferred shootdown round when it finds the page
//!    still waiting for it); the task must read the new contents (a stale translation reads the old frame);
//! 2. narrow: the page is remapped read-only; the task's write must fault (a stale writable translation lets it
//!    through). The write goes through `memset` (nano_core), so fault recovery unwinds the task and does not count
//!    the fault against this cell (no reload of `test_tlb` however often the test runs);
//! 3. a withdrawn CPU (interrupts off, out of the online set, as a CPU halted by the fault path): stop-the-world
//!    and a shootdown round on this CPU complete at once instead of timing out waiting for it (needs 2 CPUs);
//! 4. stack traces of tasks that exit meanwhile: `fault_recovery::write_backtrace_of` on tasks of another CPU
//!    that exit and are reaped (stacks unmapped and freed, pages reused by the next ones) while the traces are
//!    taken; a read of a freed stack would fault the test task (the shell) itself;
//! 5. the round-trip time of one shootdown (a one-page `remap`), median of [`ROUNDS`], logged.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use kernel_test_support::{ensure, spawn_error, step, wait_for};
use memory::{MappedPages, Permissions};
use spawn::TaskBuilder;
use task::{ExceptionKind, ExitValue, FailureReason};

/// This cell's name, prefixed to its log lines.
const CELL: &str = "test_tlb";
/// Shootdown rounds timed by the round-trip step.
const ROUNDS: usize = 200;

/// Phases of a probe task, advanced by the test (`GO`, `ABORT`) and by the task (`TOUCHED`, `DONE`).
const TOUCHED: u32 = 1;
const GO: u32 = 2;
const ABORT: u32 = 3;
const DONE: u32 = 4;

/// Runs every test of this cell; `Err` names the first failed check.
#[inline(never)]
pub fn run() -> Result<(), String> {
    let target = other_cpu().unwrap_or_else(scheduler::current_cpu);
    step(CELL, "unmap and replace: the other CPU reads the new frame", || unmap_and_replace(target))?;
    step(CELL, "remap read-only: a write on the other CPU faults", || narrowed_write_faults(target))?;
    match other_cpu() {
        Some(other) => step(CELL, "a withdrawn CPU is not waited for", || withdrawn_cpu_is_not_waited_for(other))?,
        None => log::info!("{CELL}: one CPU: the withdrawn-CPU check needs two"),
    }
    step(CELL, "stack traces of exiting tasks", || traces_of_exiting_tasks(target))?;
    step(CELL, "shootdown round trip", round_trip)?;
    Ok(())
}

/// A CPU other than the caller's, if there is one.
fn other_cpu() -> Option<usize> {
    let me = scheduler::current_cpu();
    scheduler::online_cpus().find(|&cpu| cpu != me)
}

/// What a probe task and the test share.
struct Probe {
    /// The probed virtual address (mapped whenever the task touches it: see the phases).
    address: usize,
    phase: AtomicU32,
    /// What the task read (or wrote) first and second.
    seen: [AtomicU64; 2],
}

impl Probe {
    fn new(address: usize) -> Arc<Probe> {
        Arc::new(Probe { address, phase: AtomicU32::new(0), seen: [AtomicU64::new(0), AtomicU64::new(0)] })
    }

    /// On the task: waits until the test says go (true) or abort (false), without yielding when the task has its
    /// CPU to itself (anything else running there could evict the translation under test).
    fn wait_for_go(&self, yield_between_polls: bool) -> bool {
        loop {
            match self.phase.load(Ordering::Acquire) {
                GO => return true,
                ABORT => return false,
                _ if yield_between_polls => scheduler::yield_now(),
                _ => core::hint::spin_loop(),
            }
        }
    }
}

/// A value that differs between runs and between the two frames.
fn pattern(tag: u64) -> u64 {
    0x7E57_0000_0000_0000 | (tag << 40) | (tsc::now_ns() & 0xFF_FFFF_FFFF)
}

fn write_word(pages: &mut MappedPages, value: u64) -> Result<(), String> {
    *pages.as_type_mut::<u64>(0).map_err(|error| format!("write: {error:?}"))? = value;
    Ok(())
}

fn read_word(pages: &MappedPages) -> Result<u64, String> {
    pages.as_type::<u64>(0).copied().map_err(|error| format!("read: {error:?}"))
}

fn unmap_and_replace(target: usize) -> Result<(), String> {
    let mut first = memory::map_new(4096, Permissions::ReadWrite).map_err(|error| format!("map: {error:?}"))?;
    let (old_value, new_value) = (pattern(1), pattern(2));
    write_word(&mut first, old_value)?;
    let address = first.start_address();
    let probe = Probe::new(address.value());
    let shared = probe.clone();
    let same_cpu = target == scheduler::current_cpu();
    let reader = TaskBuilder::new("tlb-reader")
        .pin(target)
        .spawn(move || {
            let pointer = shared.address as *const u64;
            // SAFETY: the test keeps the page mapped (readable, 8-byte aligned word 0) until it sees TOUCHED.
            shared.seen[0].store(unsafe { pointer.read_volatile() }, Ordering::Release);
            shared.phase.store(TOUCHED, Ordering::Release);
            if shared.wait_for_go(same_cpu) {
                // SAFETY: GO is only set once the page is mapped again (to the second frame).
                shared.seen[1].store(unsafe { pointer.read_volatile() }, Ordering::Release);
            }
            shared.phase.store(DONE, Ordering::Release);
        })
        .map_err(spawn_error)?;
    let touched = wait_for(2000, || probe.phase.load(Ordering::Acquire) == TOUCHED);
    let replaced = if touched { replace_frame(first, new_value) } else { Err(String::from("the reader never ran")) };
    probe.phase.store(if replaced.is_ok() { GO } else { ABORT }, Ordering::Release);
    let joined = reader.join().map_err(|error| format!("join: {error:?}"));
    let second = replaced?;
    ensure!(matches!(joined?, ExitValue::Completed(())), "the reader did not complete");
    ensure!(probe.seen[0].load(Ordering::Acquire) == old_value, "the reader's first read missed the first frame");
    let seen = probe.seen[1].load(Ordering::Acquire);
    ensure!(
        seen == new_value,
        "CPU {target} read {seen:#x} at {:#x} after it was remapped to a frame holding {new_value:#x} (the old frame \
         held {old_value:#x}): a stale translation survived the unmap",
        address.value()
    );
    drop(second);
    Ok(())
}

/// Unmaps `first` (freeing its page and frame) and maps a different frame holding `value` at the same page.
fn replace_frame(first: MappedPages, value: u64) -> Result<MappedPages, String> {
    let address = first.start_address();
    // Taken while `first` still holds its frame, so it is surely another one.
    let frame = memory::allocate_frames(1).map_err(|error| format!("frame: {error:?}"))?;
    drop(first);
    let pages = memory::allocate_pages_at(address, 1)
        .map_err(|error| format!("the freed page {:#x} was taken meanwhile: {error:?}", address.value()))?;
    let mut second =
        memory::map_allocated(pages, frame, Permissions::ReadWrite).map_err(|error| format!("remap: {error:?}"))?;
    write_word(&mut second, value)?;
    Ok(second)
}

fn narrowed_write_faults(target: usize) -> Result<(), String> {
    let mut pages = memory::map_new(4096, Permissions::ReadWrite).map_err(|error| format!("map: {error:?}"))?;
    write_word(&mut pages, 0)?;
    let (written, refused) = (pattern(3), pattern(4));
    let probe = Probe::new(pages.start_address().value());
    let shared = probe.clone();
    let same_cpu = target == scheduler::current_cpu();
    let writer = TaskBuilder::new("tlb-writer")
        .pin(target)
        .spawn(move || {
            let pointer = shared.address as *mut u64;
            // SAFETY: the page is mapped writable until the test sees TOUCHED; nothing else accesses word 0 then.
            unsafe { pointer.write_volatile(written) };
            shared.phase.store(TOUCHED, Ordering::Release);
            if shared.wait_for_go(same_cpu) {
                // SAFETY: the page stays mapped (read-only from GO on: this write must fault, and fault recovery
                // unwinds the task). `memset` with a count the compiler cannot see is a call into nano_core, so
                // the faulting instruction lies there (see the crate documentation).
                unsafe {
                    core::ptr::write_bytes(pointer.cast::<u8>(), (refused & 0xFF) as u8, core::hint::black_box(8))
                };
                shared.seen[1].store(1, Ordering::Release);
            }
            shared.phase.store(DONE, Ordering::Release);
        })
        .map_err(spawn_error)?;
    let touched = wait_for(2000, || probe.phase.load(Ordering::Acquire) == TOUCHED);
    let remapped = if touched {
        pages.remap(Permissions::ReadOnly).map_err(|error| format!("remap: {error:?}"))
    } else {
        Err(String::from("the writer never ran"))
    };
    probe.phase.store(if remapped.is_ok() { GO } else { ABORT }, Ordering::Release);
    let joined = writer.join().map_err(|error| format!("join: {error:?}"))?;
    remapped?;
    let value = read_word(&pages)?;
    ensure!(value == written, "the page holds {value:#x}, not the writer's {written:#x}");
    let address = pages.start_address();
    match joined {
        ExitValue::Failed(FailureReason::Exception { kind: ExceptionKind::PageFault(_), fault_address, .. })
            if fault_address == Some(address) =>
        {
            Ok(())
        }
        ExitValue::Completed(()) => Err(format!(
            "CPU {target} wrote to {:#x} after it was remapped read-only: a stale writable translation survived",
            address.value()
        )),
        other => Err(format!("the writer ended with {other:?}, not a page fault at {:#x}", address.value())),
    }
}

fn withdrawn_cpu_is_not_waited_for(other: usize) -> Result<(), String> {
    let online_before = cpu::count();
    let withdrawn = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let (flag, go) = (withdrawn.clone(), release.clone());
    let parked = TaskBuilder::new("tlb-withdrawn")
        .pin(other)
        .spawn(move || {
            let token = smp::withdraw_current_cpu();
            flag.store(true, Ordering::Release);
            // Interrupts are off and the CPU is out of both sets, as a halted CPU; bounded in case the test fails.
            let deadline = tsc::now_ns() + 10_000_000_000;
            while !go.load(Ordering::Acquire) && tsc::now_ns() < deadline {
                core::hint::spin_loop();
            }
            token.rejoin();
        })
        .map_err(spawn_error)?;
    let result = if wait_for(2000, || withdrawn.load(Ordering::Acquire)) {
        check_without_withdrawn_cpu(online_before)
    } else {
        Err(String::from("the task never withdrew its CPU"))
    };
    release.store(true, Ordering::Release);
    let joined = parked.join().map_err(|error| format!("join: {error:?}"))?;
    result?;
    ensure!(matches!(joined, ExitValue::Completed(())), "the withdrawn task ended {joined:?}");
    ensure!(cpu::count() == online_before, "{} CPUs online after rejoining, {online_before} before", cpu::count());
    Ok(())
}

/// With one CPU withdrawn: the online count dropped by one; stop-the-world and a shootdown round (a `remap`, which
/// waits for its round) finish well before their timeouts (1 s, 2 s), and the round was acknowledged.
fn check_without_withdrawn_cpu(online_before: usize) -> Result<(), String> {
    ensure!(cpu::count() == online_before - 1, "{} CPUs online with one withdrawn (of {online_before})", cpu::count());
    let started = tsc::now_ns();
    smp::run_with_other_cpus_stopped(&mut || {}).map_err(|error| format!("stop-the-world: {error:?}"))?;
    let stop_us = (tsc::now_ns() - started) / 1000;
    let mut pages = memory::map_new(4096, Permissions::ReadWrite).map_err(|error| format!("map: {error:?}"))?;
    let started = tsc::now_ns();
    let remapped = pages.remap(Permissions::ReadOnly);
    let remap_us = (tsc::now_ns() - started) / 1000;
    log::info!("{CELL}: with a CPU withdrawn: stop-the-world {stop_us} us, remap (one round) {remap_us} us");
    ensure!(stop_us < 500_000, "stop-the-world took {stop_us} us with a CPU withdrawn");
    remapped.map_err(|error| format!("remap with a CPU withdrawn: {error:?}"))?;
    ensure!(remap_us < 500_000, "the remap took {remap_us} us with a CPU withdrawn");
    Ok(())
}

/// Counts the bytes of a stack trace instead of printing it.
struct CountingSink(usize);

impl core::fmt::Write for CountingSink {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        self.0 += text.len();
        Ok(())
    }
}

/// Tasks spawned by [`traces_of_exiting_tasks`], and how long it keeps taking traces at least.
const EXITING_TASKS: usize = 64;
const TRACE_WINDOW_MS: u64 = 200;

fn traces_of_exiting_tasks(target: usize) -> Result<(), String> {
    let mut handles = alloc::collections::VecDeque::new();
    let (mut traced, mut refused, mut spawned) = (0usize, 0usize, 0usize);
    let deadline = tsc::now_ns() + TRACE_WINDOW_MS * 1_000_000;
    while tsc::now_ns() < deadline || !handles.is_empty() {
        if spawned < EXITING_TASKS && handles.len() < 8 {
            let handle = TaskBuilder::new("tlb-exiting")
                .pin(target)
                .spawn(move || {
                    for _ in 0..(spawned % 5) {
                        scheduler::yield_now();
                    }
                })
                .map_err(spawn_error)?;
            spawned += 1;
            handles.push_back(handle);
        }
        for handle in &handles {
            let mut sink = CountingSink(0);
            match fault_recovery::write_backtrace_of(&mut sink, handle.id()) {
                Ok(_) => traced += 1,
                Err(_) => refused += 1,
            }
        }
        if (handles.len() >= 8 || spawned == EXITING_TASKS)
            && let Some(handle) = handles.pop_front()
        {
            let value = handle.join().map_err(|error| format!("join: {error:?}"))?;
            ensure!(matches!(value, ExitValue::Completed(())), "an exiting task ended {value:?}");
        }
    }
    log::info!("{CELL}: {spawned} exiting tasks: {traced} stack traces taken, {refused} refused (running or gone)");
    ensure!(traced > 0, "no stack trace of a switched-out task was taken ({refused} refused)");
    Ok(())
}

fn round_trip() -> Result<(), String> {
    let mut pages = memory::map_new(4096, Permissions::ReadWrite).map_err(|error| format!("map: {error:?}"))?;
    let before = memory::shootdown_stats();
    let mut samples: Vec<u64> = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let permissions = if round % 2 == 0 { Permissions::ReadOnly } else { Permissions::ReadWrite };
        let started = tsc::now_ns();
        pages.remap(permissions).map_err(|error| format!("remap: {error:?}"))?;
        samples.push(tsc::now_ns() - started);
    }
    let rounds = memory::shootdown_stats().rounds - before.rounds;
    samples.sort_unstable();
    let cpus = cpu::count();
    log::info!(
        "{CELL}: shootdown round trip (one-page remap) on {cpus} CPUs: median {} ns, min {} ns, max {} ns over \
         {ROUNDS} rounds ({rounds} with IPIs)",
        samples[ROUNDS / 2],
        samples[0],
        samples[ROUNDS - 1]
    );
    // Every remap is one round with the other CPUs when there are any (more if other code unmapped meanwhile).
    ensure!(cpus == 1 || rounds >= ROUNDS as u64, "only {rounds} shootdown rounds for {ROUNDS} remaps on {cpus} CPUs");
    Ok(())
}
