//! In-kernel tests of TLB shootdown (`memory`'s `shootdown` module, the `smp` cell's IPI), run by the shell's
//! `test` builtin through [`run`].
//!
//! Each check has a task pinned to another CPU (the same CPU on a one-CPU machine, which then checks the local
//! flush only) touch a page first, so that CPU caches its translation, then changes the mapping on this CPU and
//! lets the task touch the page again:
//! 1. unmap and replace: the page is unmapped and the same virtual page mapped to another frame with other
//!    contents (`allocate_pages_at`); the task must read the new contents (a stale translation reads the old frame);
//! 2. narrow: the page is remapped read-only; the task's write must fault (a stale writable translation lets it
//!    through). The write goes through `memset` (nano_core), so fault recovery unwinds the task and does not count
//!    the fault against this cell (no reload of `test_tlb` however often the test runs);
//! 3. a withdrawn CPU (interrupts off, out of the online set, as a CPU halted by the fault path): stop-the-world
//!    and an unmap on this CPU complete at once instead of timing out waiting for it (needs 2 CPUs);
//! 4. the round-trip time of one shootdown (a one-page `remap`), median of [`ROUNDS`], logged.
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

/// With one CPU withdrawn: the online count dropped by one; stop-the-world and an unmap finish well before their
/// timeouts (1 s, 2 s) and the unmap's round was acknowledged (no timeout counted).
fn check_without_withdrawn_cpu(online_before: usize) -> Result<(), String> {
    ensure!(cpu::count() == online_before - 1, "{} CPUs online with one withdrawn (of {online_before})", cpu::count());
    let started = tsc::now_ns();
    smp::run_with_other_cpus_stopped(&mut || {}).map_err(|error| format!("stop-the-world: {error:?}"))?;
    let stop_us = (tsc::now_ns() - started) / 1000;
    let before = memory::shootdown_stats();
    let started = tsc::now_ns();
    drop(memory::map_new(4096, Permissions::ReadWrite).map_err(|error| format!("map: {error:?}"))?);
    let unmap_us = (tsc::now_ns() - started) / 1000;
    let after = memory::shootdown_stats();
    log::info!("{CELL}: with a CPU withdrawn: stop-the-world {stop_us} us, unmap {unmap_us} us");
    ensure!(stop_us < 500_000, "stop-the-world took {stop_us} us with a CPU withdrawn");
    ensure!(after.timeouts == before.timeouts, "the unmap's shootdown timed out waiting for the withdrawn CPU");
    ensure!(unmap_us < 500_000, "the unmap took {unmap_us} us with a CPU withdrawn");
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
