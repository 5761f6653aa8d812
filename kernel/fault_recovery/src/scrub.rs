//! The read-only scrub: after a task failed of a CPU exception or a panic, every loaded cell's code and constants
//! are compared with their object files and repaired in place (`cell_namespace::CellNamespace::check_all_cells`).
//!
//! Why every cell and not only the faulting one: damaged code often faults elsewhere (a flipped call target or
//! constant in cell A makes nano_core's allocator fault on a wild argument), and the damaged cell would fault again
//! at its next call. Repairing at the first fault, instead of reloading the cell after [`crate::REPEATED_FAULT_LIMIT`]
//! faults, keeps every later caller working. Cost: one pass over every cell's read-only bytes (the `faults`
//! listing and the log line give its duration). Damage to data and bss cannot be detected this way.

use alloc::string::String;
use alloc::vec::Vec;

use cell_namespace::IntegrityMode;

/// One cell the scrub found damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairedCell {
    /// The cell.
    pub cell: String,
    /// Damaged bytes found (and, if `repaired`, written back).
    pub damaged_bytes: usize,
    /// Damaged ranges.
    pub ranges: usize,
    /// Whether the write-back succeeded.
    pub repaired: bool,
}

/// The outcome of one scrub.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Cells checked.
    pub cells: usize,
    /// Read-only bytes compared.
    pub bytes: usize,
    /// The damaged cells.
    pub damaged: Vec<RepairedCell>,
    /// Cells that could not be checked (their object does not parse, or a write-back failed), with the error.
    pub errors: Vec<String>,
    /// Duration in nanoseconds (TSC).
    pub duration_ns: u64,
}

/// Checks and repairs every loaded cell of the kernel and application namespaces (see the module docs); logs each
/// damaged cell. `mode` [`IntegrityMode::Check`] only reports.
pub fn scrub_read_only(mode: IntegrityMode) -> ScrubReport {
    let start = tsc::now_ns();
    let mut report = ScrubReport::default();
    let namespaces = [system_namespaces::kernel_namespace(), system_namespaces::application_namespace()];
    for namespace in namespaces.into_iter().flatten() {
        let results = match namespace.check_all_cells(mode) {
            Ok(results) => results,
            Err(error) => {
                log::warn!("integrity: namespace {} not scrubbed: {error}", namespace.name());
                report.errors.push(alloc::format!("{error}"));
                continue;
            }
        };
        for (cell, result) in results {
            report.cells += 1;
            match result {
                Ok(integrity) => {
                    report.bytes += integrity.bytes;
                    if !integrity.is_intact() {
                        if let Some(first) = integrity.damaged.first() {
                            log::warn!(
                                "integrity: cell {cell}: {} bytes damaged in {} ranges (first at {:#x}, {:?} section \
                                 {}+{:#x}){}",
                                integrity.damaged_bytes(),
                                integrity.damaged.len(),
                                first.address.value(),
                                first.kind,
                                first.section,
                                first.offset,
                                if integrity.repaired { "; repaired from its object file" } else { "" }
                            );
                        }
                        report.damaged.push(RepairedCell {
                            cell,
                            damaged_bytes: integrity.damaged_bytes(),
                            ranges: integrity.damaged.len(),
                            repaired: integrity.repaired,
                        });
                    }
                }
                Err(error) => {
                    log::error!("integrity: {error}");
                    report.errors.push(alloc::format!("{error}"));
                }
            }
        }
    }
    report.duration_ns = tsc::now_ns().saturating_sub(start);
    report
}
