//! Retiring and reclaiming old cells: an old cell that something still pins stays mapped (and executable) in the
//! namespace's retired list until a later check finds it unpinned.

use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use memory_structs::VirtualAddress;

use crate::cell::{LoadedCell, LoadedSection};
use crate::{CellNamespace, Pin, PinFinder, QuiesceError, ReclaimReport, RetiredCellInfo, RunQuiesced};

/// A word in some (new) cell's data that still points into a retired cell: re-read at each check.
pub(crate) struct StoredPointer {
    /// The section holding the word (weak: if it is gone, so is the pointer).
    pub(crate) section: Weak<LoadedSection>,
    pub(crate) location: VirtualAddress,
    pub(crate) pin: Pin,
}

impl StoredPointer {
    /// Whether the word still points into one of `cell`'s ranges.
    fn still_points_into(&self, cell: &LoadedCell) -> bool {
        let Some(section) = self.section.upgrade() else { return false };
        if !section.contains(self.location) || !self.location.value().is_multiple_of(8) {
            return false;
        }
        // SAFETY: the word is 8-byte aligned and lies inside a live (upgraded) data section, which stays mapped
        // while `section` is held; a racing writer can only make the answer stale, never unsound (a `usize` has no
        // invalid values), and staleness is re-checked at the next reclaim.
        let value = unsafe { core::ptr::read_volatile(self.location.value() as *const usize) };
        VirtualAddress::try_new(value)
            .is_ok_and(|address| cell.address_ranges().iter().any(|range| range.contains(address)))
    }
}

/// One reference in a retired cell's text or read-only data that a swap redirected to a matched state object
/// of the cell that replaced it (or of another cell of that swap). Later swaps of that object's cell redirect it
/// again, to the newest copy, so the retired code always shares the newest state.
pub(crate) struct RedirectRecord {
    /// The retired cell's section holding the place (weak: it is the retired cell's own section).
    pub(crate) section: Weak<LoadedSection>,
    /// The place's offset from the section start, in bytes.
    pub(crate) offset: usize,
    pub(crate) relocation_type: cell_loader::RelocationType,
    pub(crate) addend: i64,
    /// The symbol it was bound through (for error messages).
    pub(crate) symbol: String,
    /// The address `S` the place refers to now (inside the newest copy's object).
    pub(crate) address: u64,
}

/// A swapped-out cell kept alive because something pinned it.
pub(crate) struct RetiredCell {
    pub(crate) cell: Arc<LoadedCell>,
    /// What the pin finder found at the last check.
    pub(crate) found: Vec<Pin>,
    /// Every pin found at the last check (`found`, stored pointers, references).
    pub(crate) pins: Vec<Pin>,
    /// Untranslated pointers into it stored in other cells' data.
    pub(crate) pointers: Vec<StoredPointer>,
    /// The new cells its data references were redirected to: kept alive while it may run (so a later swap of
    /// them retires them too, instead of unmapping the state this cell's code uses).
    pub(crate) shared: Vec<Arc<LoadedCell>>,
    /// Its references redirected into the state of the cells in `shared`.
    pub(crate) redirects: Vec<RedirectRecord>,
}

impl RetiredCell {
    fn info(&self) -> RetiredCellInfo {
        RetiredCellInfo {
            name: self.cell.name.clone(),
            sizes: self.cell.sizes,
            ranges: self.cell.address_ranges(),
            pins: self.pins.clone(),
            keeps_alive: self.shared.iter().map(|cell| cell.name.clone()).collect(),
        }
    }
}

/// `Arc<LoadedCell>` / `Arc<LoadedSection>` references to `cell` beyond `own` references to the cell, the
/// observer's one (if it holds one) and each section's one reference from its cell.
pub(crate) fn outside_references(cell: &Arc<LoadedCell>, own: usize) -> usize {
    let sections: usize = cell.sections.iter().map(|section| Arc::strong_count(section).saturating_sub(1)).sum();
    let own = own + crate::observer::observer_references(cell);
    Arc::strong_count(cell).saturating_sub(own) + sections
}

/// The references to `cell` that other retired cells (`holders`) hold: one per dependency record of their
/// sections on its sections, and one per state link (`shared`) to it. Returns the count and the holders' names.
fn retired_holders<'a>(cell: &Arc<LoadedCell>, holders: impl Iterator<Item = &'a RetiredCell>) -> (usize, Vec<String>) {
    let (mut count, mut names) = (0, Vec::new());
    for holder in holders {
        if Arc::ptr_eq(&holder.cell, cell) {
            continue;
        }
        let records: usize = holder
            .cell
            .sections
            .iter()
            .map(|section| {
                let dependencies = section.dependencies.lock();
                dependencies.iter().filter(|record| Weak::as_ptr(&record.section.parent) == Arc::as_ptr(cell)).count()
            })
            .sum();
        let links = holder.shared.iter().filter(|shared| Arc::ptr_eq(shared, cell)).count();
        if records + links > 0 {
            count += records + links;
            if !names.contains(&holder.cell.name) {
                names.push(holder.cell.name.clone());
            }
        }
    }
    (count, names)
}

/// Recomputes `candidate.pins`: what the pin finder found, its stored pointers that still point into it, the
/// references other retired cells hold (`held`, from [`retired_holders`]), and the remaining outside references
/// (beyond `own` references to the cell).
fn complete_pins(candidate: &mut RetiredCell, own: usize, held: (usize, Vec<String>)) {
    candidate.pointers.retain(|pointer| pointer.still_points_into(&candidate.cell));
    candidate.pins = candidate.found.clone();
    candidate.pins.extend(candidate.pointers.iter().map(|pointer| pointer.pin.clone()));
    let (from_retired, cells) = held;
    if from_retired > 0 {
        candidate.pins.push(Pin::RetiredCells { count: from_retired, cells });
    }
    let count = outside_references(&candidate.cell, own).saturating_sub(from_retired);
    if count > 0 {
        candidate.pins.push(Pin::References { count });
    }
}

/// Splits `candidates` (each held once, by the vector) into freed and retired: frees every cell with no pins,
/// repeating while a freed cell's references were what pinned another (an old cell depending on another old cell
/// of the same swap, or a retired cell that called it). `others` are the namespace's other retired cells (their
/// references are told apart from outside ones). Notifies the observer of each freed cell. Returns the freed
/// names and the retired cells.
pub(crate) fn settle(mut candidates: Vec<RetiredCell>, others: &[RetiredCell]) -> (Vec<String>, Vec<RetiredCell>) {
    let mut freed = Vec::new();
    loop {
        let mut changed = false;
        let mut kept = Vec::new();
        let held: Vec<(usize, Vec<String>)> = candidates
            .iter()
            .map(|candidate| retired_holders(&candidate.cell, candidates.iter().chain(others)))
            .collect();
        for (mut candidate, held) in candidates.into_iter().zip(held) {
            complete_pins(&mut candidate, 1, held);
            if candidate.pins.is_empty() {
                crate::observer::notify_removed(&candidate.cell);
                freed.push(candidate.cell.name.clone());
                changed = true;
            } else {
                kept.push(candidate);
            }
        }
        candidates = kept;
        if !changed {
            return (freed, candidates);
        }
    }
}

impl CellNamespace {
    /// Retired cells (swapped out but still pinned), with their current pins as last computed.
    pub fn retired(&self) -> Vec<RetiredCellInfo> {
        self.retired.lock().iter().map(RetiredCell::info).collect()
    }

    /// Re-checks every retired cell and frees those no longer pinned: runs `pins` for each inside `run_quiesced`
    /// (so no task can move into or out of a retired cell meanwhile), then re-reads the stored pointers into it
    /// and counts outside references.
    ///
    /// If quiescing fails, nothing is freed and the report says why.
    pub fn reclaim_retired(&self, run_quiesced: RunQuiesced<'_>, pins: &dyn PinFinder) -> ReclaimReport {
        let (_chain, _guards) = self.lock_chain();
        let mut retired = core::mem::take(&mut *self.retired.lock());
        if retired.is_empty() {
            return ReclaimReport::default();
        }
        let targets: Vec<(String, Vec<crate::AddressRange>)> =
            retired.iter().map(|retired| (retired.cell.name.clone(), retired.cell.address_ranges())).collect();
        let mut found: Vec<Vec<Pin>> = Vec::new();
        let result = run_quiesced(&mut || {
            found = targets.iter().map(|(name, ranges)| pins.find_pins(name, ranges)).collect();
        });
        if let Err(error) = result {
            let report = ReclaimReport {
                freed: Vec::new(),
                still_retired: retired.iter().map(RetiredCell::info).collect(),
                quiesce_error: Some(error),
            };
            self.retired.lock().extend(retired);
            return report;
        }
        if found.len() != retired.len() {
            // The quiesced function did not run although `run_quiesced` said it did: a broken caller. Keep every
            // cell (freeing unchecked ones could unmap running code).
            let error = QuiesceError { reason: String::from("the quiesced function did not run") };
            let still_retired = retired.iter().map(RetiredCell::info).collect();
            self.retired.lock().extend(retired);
            return ReclaimReport { freed: Vec::new(), still_retired, quiesce_error: Some(error) };
        }
        for (cell, pins) in retired.iter_mut().zip(found) {
            cell.found = pins;
        }
        let (freed, kept) = settle(retired, &[]);
        let still_retired = kept.iter().map(RetiredCell::info).collect();
        self.retired.lock().extend(kept);
        if !freed.is_empty() {
            log::info!("namespace {}: reclaimed retired cells {}", self.name(), freed.join(", "));
        }
        ReclaimReport { freed, still_retired, quiesce_error: None }
    }
}
