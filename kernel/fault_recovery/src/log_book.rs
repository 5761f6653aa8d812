//! The fault log and the repeated-fault policy.
//!
//! Every failed task adds one [`FaultRecord`] (the log keeps the last [`FAULT_LOG_CAPACITY`]). A CPU exception
//! whose instruction lies in a loaded cell counts against that cell; the [`REPEATED_FAULT_LIMIT`]th reloads a fresh
//! copy of the cell from its object file ([`reload_cell`]: `live_update::reload`, the kernel's one swap gate, with
//! the cell as both old and new: the commit runs with every other CPU stopped, and the old copy is retired rather
//! than freed while any task's frames, a stopped CPU or a stored pointer still refer to it), re-linking its
//! dependents, and resets its count.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use owned_spin::OwnedSpinLock;
use task::{FailureReason, TaskId, TaskRef};

/// Records kept in the fault log (the oldest are dropped first).
pub const FAULT_LOG_CAPACITY: usize = 64;
/// Faults of one cell that trigger its reload.
pub const REPEATED_FAULT_LIMIT: usize = 3;

/// One failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRecord {
    /// The failed task.
    pub task: TaskId,
    /// Its name.
    pub task_name: String,
    /// The cell whose code faulted (for CPU exceptions in loaded cells).
    pub cell: Option<String>,
    /// The faulting instruction (CPU exceptions).
    pub address: Option<u64>,
    /// The failure.
    pub reason: FailureReason,
    /// When, in TSC nanoseconds since boot.
    pub time_ns: u64,
    /// If this fault triggered a reload of `cell` that succeeded: the reload's duration in nanoseconds.
    pub reload_ns: Option<u64>,
    /// Cells whose read-only sections the scrub after this failure found damaged (and repaired).
    pub repaired: Vec<crate::RepairedCell>,
}

/// The log and the per-cell fault counts.
struct Book {
    records: VecDeque<FaultRecord>,
    counts: BTreeMap<String, usize>,
}

/// Protects: the fault log and the per-cell counters (never held across a reload). An `OwnedSpinLock`, so a task
/// that faults while holding it (say, `faults` copying a damaged log) has it released by the fault path
/// ([`release_book_if_held_within`]) instead of every later failure hook spinning on it.
static BOOK: OwnedSpinLock<Book> = OwnedSpinLock::new(Book { records: VecDeque::new(), counts: BTreeMap::new() });

/// Runs `f` with the fault log locked (the holder token is an address in this frame, on the caller's stack).
fn with_book<R>(f: impl FnOnce(&mut Book) -> R) -> R {
    let anchor = 0u8;
    let token = core::ptr::addr_of!(anchor) as usize;
    loop {
        if let Some(mut book) = BOOK.try_lock_as(token) {
            return f(&mut book);
        }
        core::hint::spin_loop();
    }
}

/// Releases the fault log's lock if its holder token lies on `stack`; returns whether it did.
///
/// # Safety
/// `stack` must be the stack of a task that faulted and will never resume the faulting code.
pub(crate) unsafe fn release_book_if_held_within(stack: core::ops::Range<usize>) -> bool {
    // SAFETY: the caller guarantees the holder is dead to its critical section; a half-pushed record is accepted.
    unsafe { BOOK.force_release_if(|token| stack.contains(&token)) }.is_some()
}

/// The failure hook (`scheduler::set_failure_hook`): logs `reason` for `task` and applies the repeated-fault
/// policy. Runs on the failed task, after its stack was unwound.
pub fn record_failure(task: &TaskRef, reason: &FailureReason) {
    // The task's unwind is over: a later exception of it is a new fault, not one inside this one's handling.
    crate::fault_path::leave(task.id());
    // First: a swap the task died in is rolled back and its locks released (the scrub below needs them), while
    // the swap's frames on the task's stack are still untouched.
    crate::recover_swap_of(task);
    let address = match reason {
        FailureReason::Exception { instruction_pointer, .. } => Some(instruction_pointer.value() as u64),
        _ => None,
    };
    // Without waiting: the failed task may have died holding a namespace's cell table.
    let cell = address
        .and_then(|address| {
            // Tracked per CPU with interrupts off: a lookup that faults here is not repeated by later reports.
            let were_enabled = task::interrupts::disable();
            let found = system_namespaces::try_cell_containing_on_cpu(cpu::current_id().index(), address);
            task::interrupts::restore(were_enabled);
            found.ok().flatten()
        })
        .map(|name| name.as_str().to_string())
        .filter(|cell| cell != "nano_core");
    let scrub = matches!(reason, FailureReason::Exception { .. } | FailureReason::Panic(_))
        .then(|| crate::scrub_read_only(cell_namespace::IntegrityMode::Repair));
    let repaired = scrub.as_ref().map(|scrub| scrub.damaged.clone()).unwrap_or_default();
    if let Some(scrub) = scrub.as_ref().filter(|scrub| !scrub.damaged.is_empty()) {
        log::warn!(
            "integrity: {} of {} cells damaged and repaired after task {}'s failure (scrub of {} bytes took {} us)",
            scrub.damaged.len(),
            scrub.cells,
            task.id(),
            scrub.bytes,
            scrub.duration_ns / 1000
        );
    }
    // A fault explained by damage that was just repaired does not count towards reloading the cell.
    let explained = cell.as_ref().is_some_and(|cell| repaired.iter().any(|damaged| &damaged.cell == cell));
    let record = FaultRecord {
        task: task.id(),
        task_name: task.name().to_string(),
        cell: cell.clone(),
        address,
        reason: reason.clone(),
        time_ns: tsc::now_ns(),
        reload_ns: None,
        repaired,
    };
    let reload = with_book(|book| {
        let reload = cell.as_ref().filter(|_| !explained).is_some_and(|cell| {
            let count = book.counts.entry(cell.clone()).or_insert(0);
            *count += 1;
            *count >= REPEATED_FAULT_LIMIT
        });
        if book.records.len() == FAULT_LOG_CAPACITY {
            book.records.pop_front();
        }
        book.records.push_back(record);
        reload
    });
    if let (true, Some(cell)) = (reload, cell) {
        log::warn!("cell {cell} faulted {REPEATED_FAULT_LIMIT} times; reloading a fresh copy through the swap gate");
        match reload_cell(&cell) {
            Ok(report) => {
                log::info!(
                    "cell {cell} reloaded in {} us ({} old cells retired)",
                    report.total_ns / 1000,
                    report.cells_retired
                );
                with_book(|book| {
                    let record = book.records.iter_mut().rev().find(|record| record.task == task.id());
                    if let Some(record) = record {
                        record.reload_ns = Some(report.total_ns);
                    }
                });
            }
            Err(error) => log::error!("reloading cell {cell} failed: {error}"),
        }
    }
}

/// Why [`reload_cell`] failed: the swap gate's error (nothing was changed, except as `SwapError::Patch` documents).
pub type ReloadError = live_update::GateError;

/// Replaces kernel cell `cell` by a fresh copy loaded from its object file through the swap gate (state carried
/// over, dependents re-linked, the commit run with every other CPU stopped, the old copy retired while pinned),
/// and resets its fault count. Returns the swap's report.
///
/// # Errors
/// [`ReloadError`].
pub fn reload_cell(cell: &str) -> Result<cell_namespace::SwapReport, ReloadError> {
    let report = live_update::reload(cell)?;
    with_book(|book| book.counts.remove(cell));
    Ok(report)
}

/// A copy of the fault log, oldest first.
pub fn fault_log() -> Vec<FaultRecord> {
    with_book(|book| book.records.iter().cloned().collect())
}

/// Calls `f` while holding the fault log's lock, for fault-path tests: `f` must not fail a task or read the log
/// (it would spin on the lock forever), and may fault, which the fault path must survive (it releases the lock).
pub fn with_fault_log_lock_held(f: fn()) {
    with_book(|_book| f());
}

/// Faults counted against `cell` since its last reload.
pub fn fault_count(cell: &str) -> usize {
    with_book(|book| book.counts.get(cell).copied().unwrap_or(0))
}

/// Prints the fault log on the serial console (the shell's `faults`): one line per failure.
pub fn print_fault_log() {
    let records = fault_log();
    serial::write_fmt(format_args!("{} faults logged\n", records.len()));
    print_watchdog_stalls();
    for record in records {
        serial::write_fmt(format_args!(
            "[{:>6}.{:06}] task {} \"{}\" cell {} address {} {}{}{}\n",
            record.time_ns / 1_000_000_000,
            (record.time_ns / 1000) % 1_000_000,
            record.task,
            record.task_name,
            record.cell.as_deref().unwrap_or("-"),
            record.address.map(|address| alloc::format!("{address:#x}")).unwrap_or_else(|| "-".to_string()),
            record.reason,
            record.reload_ns.map(|ns| alloc::format!(" (cell reloaded in {} us)", ns / 1000)).unwrap_or_default(),
            repaired_note(&record.repaired),
        ));
    }
}

/// The `faults` line's note on the cells repaired after a failure (empty if none).
fn repaired_note(repaired: &[crate::RepairedCell]) -> String {
    let mut note = String::new();
    for damaged in repaired {
        let verb = if damaged.repaired { "repaired" } else { "found damaged" };
        note.push_str(&alloc::format!(" ({verb} cell {}: {} bytes)", damaged.cell, damaged.damaged_bytes));
    }
    note
}

/// Prints the watchdog's records (`apic::watchdog`): one line per CPU stall detected.
fn print_watchdog_stalls() {
    let count = apic::watchdog::stall_count();
    if count == 0 {
        return;
    }
    serial::write_fmt(format_args!("{count} CPU stalls seen by the watchdog\n"));
    apic::watchdog::for_each_stall(|stall| {
        serial::write_fmt(format_args!(
            "watchdog: {} stopped answering since [{:>6}.{:06}] (tick {}), seen by {} {} ms later\n",
            stall.cpu,
            stall.since_ns / 1_000_000_000,
            (stall.since_ns / 1000) % 1_000_000,
            stall.last_ticks,
            stall.detected_by,
            stall.detected_ns.saturating_sub(stall.since_ns) / 1_000_000,
        ));
    });
}
