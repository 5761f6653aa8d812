//! Live swapping: replace loaded cells with new ones while the system runs.
//!
//! # Consistency model
//! - **Quiescence is the caller's job.** Patching happens only in the commit phase. [`CellNamespace::swap`] patches
//!   directly (enough on one CPU with interrupts off); [`CellNamespace::swap_quiesced`] runs the patch loop inside
//!   a caller-given function that stops every other CPU (a stop-the-world IPI) around it. Callers must also make sure
//!   that no task is preempted *inside* old code that other code reaches only through patched relocations (e.g. a
//!   scheduler policy, called only with interrupts disabled, is never in that state).
//! - **Before the commit point nothing is visible.** The stage and verify phases work on private copies; any error
//!   there drops the staged cells (freeing their memory) and the namespace, every dependent and every old cell are
//!   exactly as before.
//! - **The commit** rewrites each dependent's relocation (re-applying the same relocation type and addend at the
//!   recorded place with the new `S`, through [`MemoryRegion::patch`](crate::MemoryRegion::patch)), moves the
//!   dependency records from the old sections to the new ones, replaces the old cells' symbol-map entries with the
//!   new cells' and removes the old cells. A patch failure restores the patches already made and returns
//!   [`SwapError::Patch`].
//! - **State is not transferred**: the new cell starts with its own `.data`/`.bss` initial values.
//! - **Old code and memory.** After the commit no dependent refers to an old cell, and the namespace forgets it, so
//!   its memory is reclaimed when the last `Arc` to it or its sections goes away. A task that is still executing
//!   old code (a return address into an old cell on some stack, or an `Arc<LoadedCell>` held by a caller) keeps
//!   running the old code against the old cell's state; if only a return address refers to it, the memory may be
//!   reclaimed under it. A function pointer taken into the old cell before the swap dangles the same way (the
//!   fault-recovery tests call through their own closures for that reason). This is a known limitation until the
//!   unwinder walks task stacks to find such addresses (and defers reclamation).
//! - **Observers.** The [`CellObserver`](crate::CellObserver) hears `removed` for each old cell, then `loaded` for
//!   each new one, inside the transaction (the kernel unregisters and registers unwind info there). Swapping a cell
//!   with itself (`swap X X`) reloads a fresh copy from its object file: fault recovery's repair of a cell that
//!   keeps faulting.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

use cell_loader::{RelocatedValue, compute_relocation};

use crate::cell::{LoadedCell, LoadedSection, RelocationEntry, StrongDependency, WeakDependent, hash_free_name};
use crate::stage::Transaction;
use crate::{CellNamespace, LoadError, MemoryError, MemoryRegion, SwapError};

/// What a successful swap did and how long each phase took (nanoseconds of the caller's clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwapReport {
    /// Staging the new cells: load, resolve, relocate, finalize.
    pub stage_ns: u64,
    /// Verifying that every symbol the dependents use is provided, and precomputing the patches.
    pub verify_ns: u64,
    /// Patching dependents, moving dependency records, updating the symbol map and cell list.
    pub commit_ns: u64,
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
}

/// One precomputed rewrite of a dependent's relocation.
struct Patch {
    /// The dependent section holding the place.
    target: Arc<LoadedSection>,
    /// The old cell's section the place points into now.
    old_source: Arc<LoadedSection>,
    /// The relocation as recorded.
    relocation: RelocationEntry,
    /// Index of the new cell among the staged cells.
    new_cell: usize,
    /// The new cell's equivalent symbol (mangled) and its offset in its section.
    new_symbol: String,
    new_symbol_offset: usize,
    /// Where to write: the dependent's region and the offset of the place in it.
    region: Arc<dyn MemoryRegion>,
    region_offset: usize,
    new_value: RelocatedValue,
    old_value: RelocatedValue,
}

impl CellNamespace {
    /// Replaces each loaded cell `old` by cell `new` (a manifest cell whose object is in the directory) for every
    /// `(old, new)` pair, as one transaction; `clock` is a monotonic nanosecond clock used to time the phases.
    ///
    /// See the module documentation for the consistency model; the caller must quiesce other CPUs and tasks.
    ///
    /// # Errors
    /// A [`SwapError`]; except for [`SwapError::Patch`] (see there) the namespace and all code are unchanged.
    pub fn swap(&self, pairs: &[(&str, &str)], clock: &dyn Fn() -> u64) -> Result<SwapReport, SwapError> {
        self.swap_quiesced(pairs, clock, &|patch_all: &mut dyn FnMut()| patch_all())
    }

    /// Like [`swap`](Self::swap), but runs the patching of dependents (the commit point) inside `run_quiesced`,
    /// which must call its argument exactly once with every other CPU stopped (e.g. a stop-the-world IPI) and
    /// return afterwards. Only code bytes are written inside it: no lock is taken and nothing is allocated, so a
    /// CPU stopped while holding a namespace or heap lock cannot deadlock the swap. The symbol map and cell list are
    /// updated after `run_quiesced` returns, under the namespace's transaction lock.
    ///
    /// # Errors
    /// As for [`swap`](Self::swap).
    pub fn swap_quiesced(
        &self,
        pairs: &[(&str, &str)],
        clock: &dyn Fn() -> u64,
        run_quiesced: &dyn Fn(&mut dyn FnMut()),
    ) -> Result<SwapReport, SwapError> {
        let start = clock();
        let mut transaction = Transaction::begin(self, Vec::new(), Some(clock));

        // Check the pairs and find the old cells.
        let mut olds: Vec<Arc<LoadedCell>> = Vec::new();
        let mut news = Vec::new();
        for &(old, new) in pairs {
            let duplicate = olds.iter().any(|cell| cell.name == old)
                || news.iter().any(|entry: &crate::ManifestEntry| entry.name == new);
            let error = if duplicate { Some(SwapError::DuplicateCell { cell: old.to_string() }) } else { None };
            if let Some(error) = error {
                return Err(error);
            }
            let cell = self.state.read().cells.get(old).cloned();
            let cell = cell.ok_or(SwapError::OldCellNotLoaded { cell: old.to_string() })?;
            if cell.is_base_image() {
                return Err(SwapError::BaseImage { cell: old.to_string() });
            }
            let entry = transaction
                .find_manifest_cell(new, 0)
                .ok_or(SwapError::Stage(LoadError::NotInManifest { cell: new.to_string() }))?;
            olds.push(cell);
            news.push(entry);
        }
        for entry in &news {
            let replacing_same_name = olds.iter().any(|old| old.name == entry.name);
            if !replacing_same_name && transaction.find_loaded(&entry.name, 0).is_some() {
                return Err(SwapError::NewCellAlreadyLoaded { cell: entry.name.clone() });
            }
        }
        transaction.set_replaced(olds.clone());

        // Phase 1, stage: load the new cells privately; they must not bind to the old ones.
        for entry in news {
            transaction.stage(entry, 0).map_err(SwapError::Stage)?;
        }
        transaction.resolve_all().map_err(SwapError::Stage)?;
        transaction.relocate_all().map_err(SwapError::Stage)?;
        transaction.finalize_all().map_err(SwapError::Stage)?;
        let staged_at = clock();

        // Phase 2, verify: every symbol a dependent uses has an equivalent in the new cell; precompute patches.
        let mut patches = Vec::new();
        for (new_cell, old) in olds.iter().enumerate() {
            self.plan_patches(&transaction, &olds, old, new_cell, &mut patches)?;
        }
        transaction.check_conflicts().map_err(SwapError::Stage)?;
        let verified_at = clock();

        // Phase 3, commit (the commit point is the first patch).
        let mut failed_patch: Option<(usize, MemoryError)> = None;
        run_quiesced(&mut || {
            for (done, patch) in patches.iter().enumerate() {
                // SAFETY: the caller quiesced every CPU and task that could run the dependent (see the consistency
                // model), and the bytes are the relocation recomputed for exactly this place with the new symbol.
                let result = unsafe { patch.region.patch(patch.region_offset, patch.new_value.as_bytes()) };
                if let Err(error) = result {
                    for applied in patches[..done].iter().rev() {
                        // SAFETY: as above; restores the value this place held before the swap.
                        let _ = unsafe { applied.region.patch(applied.region_offset, applied.old_value.as_bytes()) };
                    }
                    failed_patch = Some((done, error));
                    return;
                }
            }
        });
        if let Some((index, error)) = failed_patch {
            return Err(SwapError::Patch { dependent: patches[index].target.name().to_string(), error });
        }
        let built = transaction.build();
        for patch in &patches {
            move_dependency(patch, &built[patch.new_cell].1);
        }
        for old in &olds {
            detach(old);
        }
        {
            let mut state = self.state.write();
            // Only the old cells' own exports can point into them: remove those entries (O(exports), not a scan of
            // the whole symbol map), keeping any that another cell has taken over.
            for old in &olds {
                for export in &old.exports {
                    let points_into_old = state.symbol_map.get(export.name.as_str()).is_some_and(|target| {
                        let owner = target.section.upgrade().and_then(|section| section.parent_cell());
                        owner.is_none_or(|owner| Arc::ptr_eq(old, &owner))
                    });
                    if points_into_old {
                        state.symbol_map.remove(export.name.as_str());
                    }
                }
            }
            for old in &olds {
                state.cells.remove(&old.name);
            }
        }
        for old in &olds {
            crate::observer::notify_removed(old);
        }
        transaction.publish(&built);
        let committed_at = clock();

        let dependent_sections: BTreeSet<*const LoadedSection> =
            patches.iter().map(|patch| Arc::as_ptr(&patch.target)).collect();
        let dependent_cells: BTreeSet<String> =
            patches.iter().filter_map(|patch| patch.target.parent_cell()).map(|cell| cell.name.clone()).collect();
        let report = SwapReport {
            stage_ns: staged_at.saturating_sub(start),
            verify_ns: verified_at.saturating_sub(staged_at),
            commit_ns: committed_at.saturating_sub(verified_at),
            total_ns: committed_at.saturating_sub(start),
            relocations_rewritten: patches.len(),
            dependent_sections: dependent_sections.len(),
            dependent_cells: dependent_cells.len(),
            cells_loaded: built.len(),
        };
        let names: Vec<String> = pairs.iter().map(|(old, new)| alloc::format!("{old} -> {new}")).collect();
        log::info!("namespace {}: swapped {}: {:?}", self.name(), names.join(", "), report);
        Ok(report)
    }

    /// Verifies one old cell against its staged replacement and appends the patches its dependents need.
    fn plan_patches(
        &self,
        transaction: &Transaction<'_>,
        olds: &[Arc<LoadedCell>],
        old: &Arc<LoadedCell>,
        new_cell: usize,
        patches: &mut Vec<Patch>,
    ) -> Result<(), SwapError> {
        let staged = &transaction.staged[new_cell];
        let mut equivalents: BTreeMap<String, &'static str> = BTreeMap::new();
        for &name in staged.exports.keys() {
            equivalents.entry(hash_free_name(name)).or_insert(name);
        }
        for section in &old.sections {
            for dependent in section.dependents() {
                let Some(target) = dependent.section.upgrade() else { continue };
                let target_cell = target.parent_cell();
                if target_cell.is_some_and(|cell| olds.iter().any(|old| Arc::ptr_eq(old, &cell))) {
                    continue; // A dependent that is itself being replaced is dropped, not patched.
                }
                let relocation = dependent.relocation;
                let symbol = hash_free_name(&relocation.symbol);
                let missing = || SwapError::MissingSymbol {
                    old_cell: old.name.clone(),
                    new_cell: staged.entry.name.clone(),
                    symbol: symbol.clone(),
                    dependent: target.name().to_string(),
                };
                let new_symbol = *equivalents.get(&symbol).ok_or_else(missing)?;
                let (new_section, new_symbol_offset) = staged.export_location(new_symbol).ok_or_else(missing)?;
                let new_address = staged.address_of(new_section, new_symbol_offset).ok_or_else(missing)?;
                let place = (target.address().value() as u64).wrapping_add(relocation.offset as u64);
                let old_address = (section.address().value() as u64).wrapping_add(relocation.symbol_offset as u64);
                let relocation_error = |error| SwapError::Relocation {
                    dependent: target.name().to_string(),
                    symbol: new_symbol.to_string(),
                    error,
                };
                let new_value = compute_relocation(relocation.relocation_type, place, new_address, relocation.addend)
                    .map_err(relocation_error)?;
                let old_value = compute_relocation(relocation.relocation_type, place, old_address, relocation.addend)
                    .map_err(relocation_error)?;
                let memory = target.memory.clone().ok_or(SwapError::Patch {
                    dependent: target.name().to_string(),
                    error: MemoryError::NotWritable { kind: crate::RegionKind::Text },
                })?;
                let region_offset = memory.offset + relocation.offset;
                let region_size = memory.region.size_in_bytes();
                if region_offset + new_value.as_bytes().len() > region_size {
                    let error = MemoryError::OutOfBounds {
                        offset: region_offset,
                        length: new_value.as_bytes().len(),
                        region_size,
                    };
                    return Err(SwapError::Patch { dependent: target.name().to_string(), error });
                }
                patches.push(Patch {
                    target: target.clone(),
                    old_source: section.clone(),
                    relocation,
                    new_cell,
                    new_symbol: new_symbol.to_string(),
                    new_symbol_offset,
                    region: memory.region,
                    region_offset,
                    new_value,
                    old_value,
                });
            }
        }
        Ok(())
    }
}

/// Moves one dependency record from the old source section to the new cell's equivalent section.
fn move_dependency(patch: &Patch, new_cell: &Arc<LoadedCell>) {
    let Some(export) = new_cell.exports.iter().find(|export| export.name == patch.new_symbol) else { return };
    let Some(new_section) = new_cell.sections.get(export.section) else { return };
    let relocation = RelocationEntry {
        symbol: patch.new_symbol.clone(),
        symbol_offset: patch.new_symbol_offset,
        ..patch.relocation.clone()
    };
    {
        let mut dependencies = patch.target.dependencies.lock();
        let old = dependencies.iter_mut().find(|dependency| {
            Arc::ptr_eq(&dependency.section, &patch.old_source) && dependency.relocation == patch.relocation
        });
        let record = StrongDependency { section: new_section.clone(), relocation: relocation.clone() };
        match old {
            Some(old) => *old = record,
            None => dependencies.push(record),
        }
    }
    new_section.dependents.lock().push(WeakDependent { section: Arc::downgrade(&patch.target), relocation });
}

/// Cuts an old cell out of the dependency graph: the sections it depends on forget it as a dependent, and its own
/// dependents list is cleared (they were all moved to the new cell).
fn detach(old: &Arc<LoadedCell>) {
    for section in &old.sections {
        let pointer = Arc::as_ptr(section);
        for dependency in section.dependencies.lock().iter() {
            dependency.section.dependents.lock().retain(|dependent| dependent.section.as_ptr() != pointer);
        }
        section.dependents.lock().clear();
    }
}
