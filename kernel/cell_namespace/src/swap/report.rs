//! [`SwapReport`]: what a successful swap did and how long each phase took, with a readable `Display`.

use core::fmt;

/// What a successful swap did and how long each phase took (nanoseconds of the caller's clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwapReport {
    /// Load: staging the new cells (parse, allocate, copy, resolve, relocate, finalize W^X).
    pub stage_ns: u64,
    /// Verify: every symbol the dependents use is provided with a compatible kind, the state can be carried
    /// over, and every patch is precomputed.
    pub verify_ns: u64,
    /// State transfer: the default copy of `.data`/`.bss` objects, the pointer translation in the copies and the
    /// cells' `cell_state_transfer` functions (inside the quiesced phase).
    pub state_transfer_ns: u64,
    /// Quiesce + rewrite: stopping the other CPUs, patching the dependents, redirecting the old cells' data
    /// references and finding pins, minus the state transfer done meanwhile.
    pub quiesce_ns: u64,
    /// Cleanup: moving dependency records, updating the symbol map and cell list, notifying the observer, freeing
    /// or retiring the old cells.
    pub cleanup_ns: u64,
    /// The whole swap.
    pub total_ns: u64,
    /// Relocations rewritten in dependents.
    pub relocations_rewritten: usize,
    /// Distinct dependent sections patched.
    pub dependent_sections: usize,
    /// Distinct dependent cells patched.
    pub dependent_cells: usize,
    /// Cells loaded by the swap: the new cells plus any cell they needed that was not loaded yet.
    pub cells_loaded: usize,
    /// Data objects copied from old cells into new ones (default copy; the transfer functions' own copies are not
    /// counted).
    pub objects_transferred: usize,
    /// Bytes copied by the default copy.
    pub bytes_transferred: usize,
    /// Pointers inside copied objects translated from an old cell to the new cell's equivalent.
    pub pointers_translated: usize,
    /// Old cells' own references to their data rewritten to the new cells' copies (so that old code still running
    /// shares the new state).
    pub references_redirected: usize,
    /// Old cells kept mapped because something still pins them (see [`CellNamespace::retired`]).
    ///
    /// [`CellNamespace::retired`]: crate::CellNamespace::retired
    pub cells_retired: usize,
    /// Old cells freed at once.
    pub cells_freed: usize,
}

/// Nanoseconds as microseconds with one decimal (`12.3 us`).
struct Micros(u64);

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} us", self.0 / 1000, (self.0 % 1000) / 100)
    }
}

impl SwapReport {
    /// The report as `(phase, duration in ns, what it did)` rows, in phase order.
    pub fn phases(&self) -> [(&'static str, u64, alloc::string::String); 5] {
        use alloc::format;
        [
            ("load", self.stage_ns, format!("{} cells staged and relocated", self.cells_loaded)),
            (
                "verify",
                self.verify_ns,
                format!("symbols, kinds and state checked; {} patches planned", self.relocations_rewritten),
            ),
            (
                "state transfer",
                self.state_transfer_ns,
                format!(
                    "{} objects ({} bytes) copied, {} pointers translated",
                    self.objects_transferred, self.bytes_transferred, self.pointers_translated
                ),
            ),
            (
                "quiesce+rewrite",
                self.quiesce_ns,
                format!(
                    "{} relocations in {} sections of {} cells, {} old references redirected",
                    self.relocations_rewritten,
                    self.dependent_sections,
                    self.dependent_cells,
                    self.references_redirected
                ),
            ),
            (
                "cleanup",
                self.cleanup_ns,
                format!("{} old cells freed, {} retired", self.cells_freed, self.cells_retired),
            ),
        ]
    }
}

/// One line: `load 1.2 us (...), verify ... ; total 5.0 us`.
impl fmt::Display for SwapReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (phase, ns, what)) in self.phases().iter().enumerate() {
            let separator = if index == 0 { "" } else { ", " };
            write!(f, "{separator}{phase} {} ({what})", Micros(*ns))?;
        }
        write!(f, "; total {}", Micros(self.total_ns))
    }
}
