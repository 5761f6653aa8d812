//! The verify phase of a swap: compare exports, plan the rewrite of every dependent's relocation, and the
//! infallible bookkeeping after the commit (moving dependency records, detaching old cells).

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

use cell_loader::{RelocatedValue, compute_relocation};

use crate::cell::{LoadedCell, LoadedSection, RelocationEntry, StrongDependency, WeakDependent, hash_free_name};
use crate::stage::StagedCell;
use crate::{MemoryError, MemoryRegion, SwapError};

/// One precomputed store: the value a place holds now and the value it gets.
#[derive(Clone)]
pub(super) struct Rewrite {
    /// The region holding the place and the place's offset in it.
    pub(super) region: Arc<dyn MemoryRegion>,
    pub(super) region_offset: usize,
    pub(super) new_value: RelocatedValue,
    pub(super) old_value: RelocatedValue,
    /// The section holding the place (for error messages).
    pub(super) target: Arc<LoadedSection>,
}

/// One precomputed redirect of an old (or retired) cell's reference to a state object, with the record the
/// retired cell keeps of it (so that later swaps can redirect it again).
pub(super) struct Redirect {
    pub(super) rewrite: Rewrite,
    pub(super) record: super::retire::RedirectRecord,
}

/// Plans a redirect: as [`plan_rewrite`], also recording the relocation (see [`Redirect`]).
pub(super) fn plan_redirect(
    target: &Arc<LoadedSection>,
    offset: usize,
    relocation_type: cell_loader::RelocationType,
    addend: i64,
    (old_address, new_address): (u64, u64),
    symbol: &str,
) -> Result<Redirect, SwapError> {
    let rewrite = plan_rewrite(target, offset, relocation_type, addend, (old_address, new_address), symbol)?;
    let record = super::retire::RedirectRecord {
        section: Arc::downgrade(target),
        offset,
        relocation_type,
        addend,
        symbol: symbol.to_string(),
        address: new_address,
    };
    Ok(Redirect { rewrite, record })
}

/// One precomputed rewrite of a dependent's relocation, with what is needed to move its dependency record.
pub(super) struct Patch {
    pub(super) rewrite: Rewrite,
    /// The old cell's section the place points into now.
    pub(super) old_source: Arc<LoadedSection>,
    /// The relocation as recorded.
    pub(super) relocation: RelocationEntry,
    /// Index of the new cell among the new cells.
    pub(super) new_cell: usize,
    /// The new cell's equivalent symbol (mangled) and its offset in its section.
    pub(super) new_symbol: &'static str,
    pub(super) new_symbol_offset: usize,
}

/// Writes every rewrite's new value in order; on a failure restores the ones already written (newest first) and
/// returns the index of the failed one with its error. Runs inside the quiesced phase: no lock, no allocation.
pub(super) fn apply(rewrites: &[&Rewrite]) -> Result<(), (usize, MemoryError)> {
    for (done, rewrite) in rewrites.iter().enumerate() {
        // SAFETY: the caller quiesced every CPU and task that could run the place's code (see the consistency
        // model), and the value is the relocation recomputed for exactly this place.
        let result = unsafe { rewrite.region.patch(rewrite.region_offset, rewrite.new_value.as_bytes()) };
        if let Err(error) = result {
            restore(&rewrites[..done]);
            return Err((done, error));
        }
        if done == 0 {
            super::rollback::fault_point(super::rollback::SwapFaultPoint::Patching);
        }
    }
    Ok(())
}

/// Writes back the old values of `rewrites`, newest first.
pub(super) fn restore(rewrites: &[&Rewrite]) {
    for rewrite in rewrites.iter().rev() {
        // SAFETY: as in `apply`; restores the value this place held before the swap. Its result is ignored: the
        // same range of the same region was just written successfully (or, for the failed rewrite itself, not at
        // all), so restoring cannot fail on bounds; `SwapError::Patch` documents the residual risk.
        let _ = unsafe { rewrite.region.patch(rewrite.region_offset, rewrite.old_value.as_bytes()) };
    }
}

/// Plans one store of relocation `relocation_type`/`addend` at byte `offset` of `target`, changing `S` from
/// `old_address` to `new_address`.
pub(super) fn plan_rewrite(
    target: &Arc<LoadedSection>,
    offset: usize,
    relocation_type: cell_loader::RelocationType,
    addend: i64,
    (old_address, new_address): (u64, u64),
    symbol: &str,
) -> Result<Rewrite, SwapError> {
    let place = (target.address().value() as u64).wrapping_add(offset as u64);
    let relocation_error =
        |error| SwapError::Relocation { dependent: target.name().to_string(), symbol: symbol.to_string(), error };
    let new_value = compute_relocation(relocation_type, place, new_address, addend).map_err(relocation_error)?;
    let old_value = compute_relocation(relocation_type, place, old_address, addend).map_err(relocation_error)?;
    let memory = target.memory.clone().ok_or(SwapError::Patch {
        dependent: target.name().to_string(),
        error: MemoryError::NotWritable { kind: crate::RegionKind::Text },
    })?;
    let region_offset = memory.offset + offset;
    let region_size = memory.region.size_in_bytes();
    if region_offset + new_value.as_bytes().len() > region_size {
        let error = MemoryError::OutOfBounds { offset: region_offset, length: new_value.as_bytes().len(), region_size };
        return Err(SwapError::Patch { dependent: target.name().to_string(), error });
    }
    Ok(Rewrite { region: memory.region, region_offset, new_value, old_value, target: target.clone() })
}

/// Hash-free name -> mangled name of every export of a staged cell (the first mangled name wins).
fn equivalents(staged: &StagedCell) -> BTreeMap<String, &'static str> {
    let mut equivalents = BTreeMap::new();
    for &name in staged.exports.keys() {
        equivalents.entry(hash_free_name(name)).or_insert(name);
    }
    equivalents
}

/// Refuses a swap where an export of `old` that `staged` also exports (by hash-free name) changed kind: a
/// function became data or back, or a data object changed size.
pub(super) fn check_exports(old: &LoadedCell, staged: &StagedCell) -> Result<(), SwapError> {
    let equivalents = equivalents(staged);
    for export in &old.exports {
        let symbol = hash_free_name(&export.name);
        let Some(new_kind) = equivalents.get(&symbol).and_then(|name| staged.export_kind(name)) else { continue };
        if !export.kind.is_compatible_with(new_kind) {
            return Err(SwapError::ExportMismatch { cell: old.name.clone(), symbol, old: export.kind, new: new_kind });
        }
    }
    Ok(())
}

/// Verifies one old cell against its staged replacement and appends the patches its dependents need.
pub(super) fn plan_patches(
    olds: &[Arc<LoadedCell>],
    old: &Arc<LoadedCell>,
    staged: &StagedCell,
    new_cell: usize,
    patches: &mut Vec<Patch>,
) -> Result<(), SwapError> {
    let equivalents = equivalents(staged);
    for section in &old.sections {
        for dependent in section.dependents() {
            let Some(target) = dependent.section.upgrade() else { continue };
            let target_cell = target.parent_cell();
            if target_cell.is_some_and(|cell| olds.iter().any(|old| Arc::ptr_eq(old, &cell))) {
                continue; // A dependent that is itself being replaced is dropped, not patched.
            }
            let relocation = dependent.relocation;
            let symbol = hash_free_name(relocation.symbol);
            let missing = || SwapError::MissingSymbol {
                old_cell: old.name.clone(),
                new_cell: staged.entry.name.clone(),
                symbol: symbol.clone(),
                dependent: target.name().to_string(),
            };
            let new_symbol = *equivalents.get(&symbol).ok_or_else(missing)?;
            let (new_section, new_symbol_offset) = staged.export_location(new_symbol).ok_or_else(missing)?;
            let new_address = staged.address_of(new_section, new_symbol_offset).ok_or_else(missing)?;
            let old_address = (section.address().value() as u64).wrapping_add(relocation.symbol_offset as u64);
            let rewrite = plan_rewrite(
                &target,
                relocation.offset,
                relocation.relocation_type,
                relocation.addend,
                (old_address, new_address),
                new_symbol,
            )?;
            patches.push(Patch {
                rewrite,
                old_source: section.clone(),
                relocation,
                new_cell,
                new_symbol,
                new_symbol_offset,
            });
        }
    }
    Ok(())
}

/// Moves one dependency record from the old source section to the new cell's equivalent section.
pub(super) fn move_dependency(patch: &Patch, new_cell: &Arc<LoadedCell>) {
    let Some(export) = new_cell.exports.iter().find(|export| export.name == patch.new_symbol) else { return };
    let Some(new_section) = new_cell.sections.get(export.section) else { return };
    let relocation =
        RelocationEntry { symbol: patch.new_symbol, symbol_offset: patch.new_symbol_offset, ..patch.relocation };
    let target = &patch.rewrite.target;
    {
        let mut dependencies = target.dependencies.lock();
        let old = dependencies.iter_mut().find(|dependency| {
            Arc::ptr_eq(&dependency.section, &patch.old_source) && dependency.relocation == patch.relocation
        });
        let record = StrongDependency { section: new_section.clone(), relocation };
        match old {
            Some(old) => *old = record,
            None => dependencies.push(record),
        }
    }
    new_section.dependents.lock().push(WeakDependent { section: Arc::downgrade(target), relocation });
}

/// Cuts a cell out of the dependency graph: the sections it depends on forget it as a dependent, and its own
/// dependents list is cleared (for an old cell they were all moved to the new cell; for a discarded new cell
/// there are none).
pub(super) fn detach(cell: &Arc<LoadedCell>) {
    for section in &cell.sections {
        let pointer = Arc::as_ptr(section);
        for dependency in section.dependencies.lock().iter() {
            dependency.section.dependents.lock().retain(|dependent| dependent.section.as_ptr() != pointer);
        }
        section.dependents.lock().clear();
    }
}
