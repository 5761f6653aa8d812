//! The fault log and the repeated-fault policy.
//!
//! Every failed task adds one [`FaultRecord`] (the log keeps the last [`FAULT_LOG_CAPACITY`]). A CPU exception
//! whose instruction lies in a loaded cell counts against that cell; the [`REPEATED_FAULT_LIMIT`]th reloads a fresh
//! copy of the cell from its object file ([`reload_cell`]: `CellNamespace::swap_quiesced` with the cell as both
//! old and new, the commit run with every other CPU stopped), re-linking its dependents, and resets its count.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

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
}

/// The log and the per-cell fault counts.
struct Book {
    records: VecDeque<FaultRecord>,
    counts: BTreeMap<String, usize>,
}

/// Protects: the fault log and the per-cell counters (never held across a reload).
static BOOK: spin::Mutex<Book> = spin::Mutex::new(Book { records: VecDeque::new(), counts: BTreeMap::new() });

/// The failure hook (`scheduler::set_failure_hook`): logs `reason` for `task` and applies the repeated-fault
/// policy. Runs on the failed task, after its stack was unwound.
pub fn record_failure(task: &TaskRef, reason: &FailureReason) {
    let address = match reason {
        FailureReason::Exception { instruction_pointer, .. } => Some(instruction_pointer.value() as u64),
        _ => None,
    };
    let cell = address.and_then(crate::cell_containing).filter(|cell| cell != "nano_core");
    let reload = {
        let mut book = BOOK.lock();
        let reload = cell.as_ref().is_some_and(|cell| {
            let count = book.counts.entry(cell.clone()).or_insert(0);
            *count += 1;
            *count >= REPEATED_FAULT_LIMIT
        });
        if book.records.len() == FAULT_LOG_CAPACITY {
            book.records.pop_front();
        }
        book.records.push_back(FaultRecord {
            task: task.id(),
            task_name: task.name().to_string(),
            cell: cell.clone(),
            address,
            reason: reason.clone(),
            time_ns: tsc::now_ns(),
            reload_ns: None,
        });
        reload
    };
    if let (true, Some(cell)) = (reload, cell) {
        let users = crate::tasks_in_cell(&cell);
        log::warn!(
            "cell {cell} faulted {REPEATED_FAULT_LIMIT} times; reloading a fresh copy (other tasks in its code: {:?}, \
             running elsewhere: {:?})",
            users.tasks,
            users.uncertain
        );
        let started = tsc::now_ns();
        match reload_cell(&cell) {
            Ok(_) => {
                let elapsed = tsc::now_ns() - started;
                log::info!("cell {cell} reloaded in {} us", elapsed / 1000);
                let mut book = BOOK.lock();
                let record = book.records.iter_mut().rev().find(|record| record.task == task.id());
                if let Some(record) = record {
                    record.reload_ns = Some(elapsed);
                }
            }
            Err(error) => log::error!("reloading cell {cell} failed: {error}"),
        }
    }
}

/// Why [`reload_cell`] failed.
#[derive(Debug)]
pub enum ReloadError {
    /// The system namespaces are not installed.
    NoNamespaces,
    /// The swap failed (nothing was changed, except as `SwapError::Patch` documents).
    Swap(cell_namespace::SwapError),
}

impl core::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoNamespaces => write!(f, "the system namespaces are not installed"),
            Self::Swap(error) => write!(f, "{error}"),
        }
    }
}

/// Replaces kernel cell `cell` by a fresh copy loaded from its object file, re-linking its dependents (the
/// commit runs with every other CPU stopped), and resets its fault count. Returns the swap's total time in ns.
///
/// # Errors
/// [`ReloadError`].
pub fn reload_cell(cell: &str) -> Result<u64, ReloadError> {
    let kernel = system_namespaces::kernel_namespace().ok_or(ReloadError::NoNamespaces)?;
    // The commit runs with every other CPU stopped, or not at all: a failed stop fails the reload unchanged.
    let stop_the_world = |commit: &mut dyn FnMut()| {
        smp::run_with_other_cpus_stopped(commit)
            .map_err(|error| cell_namespace::QuiesceError { reason: alloc::format!("{error:?}") })
    };
    let options = cell_namespace::SwapOptions::default();
    let report = kernel
        .swap_quiesced(&[(cell, cell)], &options, &tsc::now_ns, &stop_the_world, &cell_namespace::NoPins)
        .map_err(ReloadError::Swap)?;
    BOOK.lock().counts.remove(cell);
    Ok(report.total_ns)
}

/// A copy of the fault log, oldest first.
pub fn fault_log() -> Vec<FaultRecord> {
    BOOK.lock().records.iter().cloned().collect()
}

/// Faults counted against `cell` since its last reload.
pub fn fault_count(cell: &str) -> usize {
    BOOK.lock().counts.get(cell).copied().unwrap_or(0)
}

/// Prints the fault log on the serial console (the shell's `faults`): one line per failure.
pub fn print_fault_log() {
    let records = fault_log();
    serial::write_fmt(format_args!("{} faults logged\n", records.len()));
    for record in records {
        serial::write_fmt(format_args!(
            "[{:>6}.{:06}] task {} \"{}\" cell {} address {} {}{}\n",
            record.time_ns / 1_000_000_000,
            (record.time_ns / 1000) % 1_000_000,
            record.task,
            record.task_name,
            record.cell.as_deref().unwrap_or("-"),
            record.address.map(|address| alloc::format!("{address:#x}")).unwrap_or_else(|| "-".to_string()),
            record.reason,
            record.reload_ns.map(|ns| alloc::format!(" (cell reloaded in {} us)", ns / 1000)).unwrap_or_default(),
        ));
    }
}
