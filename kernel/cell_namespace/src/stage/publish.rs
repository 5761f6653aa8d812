//! The infallible end of a load transaction: build the `LoadedCell`s, record the dependency edges, publish.

use alloc::borrow::Cow;
use alloc::string::ToString;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use crate::locks::IrqSafeMutex;
use cell_loader::{SectionIndex, SymbolBinding, SymbolDefinition};

use super::{EdgeSource, StagedCell, Transaction};
use crate::MemoryRegion;
use crate::cell::{ExportedSymbol, LoadedCell, LoadedSection, SectionMemory, StrongDependency, WeakDependent};
use crate::namespace::SymbolTarget;
use crate::profile::{LoadPhase, PhaseClock};

impl Transaction<'_> {
    /// Builds the `LoadedCell`s of all staged cells and records their dependency edges (on published sections
    /// too). Infallible. Returns (depth, cell) pairs in staging order, and the time after the last phase timed
    /// with `phases` since `lap` ([`LoadPhase::Build`], then [`LoadPhase::Link`]).
    pub(crate) fn build(
        &mut self,
        phases: &PhaseClock<'_>,
        lap: Option<u64>,
    ) -> (Vec<(usize, Arc<LoadedCell>)>, Option<u64>) {
        let mut staged = core::mem::take(&mut self.staged);
        let mut built: Vec<(Arc<LoadedCell>, Vec<Option<usize>>)> = Vec::with_capacity(staged.len());
        for cell in &mut staged {
            let regions = core::mem::take(&mut cell.regions).map(|region| region.map(Arc::<dyn MemoryRegion>::from));
            let mut slots = vec![None; cell.placements.len()];
            let cell = &*cell;
            let names = section_names(cell);
            let loaded = Arc::new_cyclic(|parent| {
                let mut sections = Vec::with_capacity(cell.placements.iter().flatten().count());
                for (index, placement) in cell.placements.iter().enumerate() {
                    let (Some(placement), Some(section)) = (placement, cell.object.sections().get(index)) else {
                        continue;
                    };
                    let memory = regions[placement.region.index()]
                        .clone()
                        .map(|region| SectionMemory { region, offset: placement.offset });
                    slots[index] = Some(sections.len());
                    sections.push(Arc::new(LoadedSection {
                        name: Cow::Borrowed(names.get(index).copied().flatten().unwrap_or(section.name)),
                        kind: section.kind,
                        address: placement.address,
                        size_in_bytes: placement.size,
                        parent: parent.clone(),
                        memory,
                        dependencies: IrqSafeMutex::new(Vec::new()),
                        dependents: IrqSafeMutex::new(Vec::new()),
                    }));
                }
                let exports = cell
                    .exports
                    .iter()
                    .filter_map(|(&name, &symbol_index)| {
                        let symbol = cell.object.symbol(symbol_index)?;
                        let SymbolDefinition::Section(section) = symbol.definition else { return None };
                        Some(ExportedSymbol {
                            name: name.to_string(),
                            section: (*slots.get(section.as_usize())?)?,
                            offset: symbol.value as usize,
                            weak: symbol.binding == SymbolBinding::Weak,
                            kind: crate::ExportKind::of(symbol),
                        })
                    })
                    .collect();
                LoadedCell {
                    name: cell.entry.name.clone(),
                    kind: cell.entry.kind,
                    object_file: Some(cell.entry.object_file.clone()),
                    sections,
                    exports,
                    sizes: cell.sizes,
                    relocation_count: cell.relocation_count,
                    load_duration_ns: cell.stage_ns,
                    object_bytes: Some(cell.bytes),
                    section_slots: slots.clone(),
                    entry_memo: core::sync::atomic::AtomicUsize::new(0),
                }
            });
            built.push((loaded, slots));
        }

        let lap = phases.lap(LoadPhase::Build, lap);
        let section_at = |cell: usize, section: SectionIndex| -> Option<Arc<LoadedSection>> {
            let (loaded, slots) = built.get(cell)?;
            loaded.sections.get((*slots.get(section.as_usize())?)?).cloned()
        };
        for (index, cell) in staged.iter().enumerate() {
            // `relocate_cell` records edges section by section, so the edges of one target are adjacent: each
            // target's list is locked and grown once per run, not once per edge.
            for run in cell.edges.chunk_by(|a, b| a.target == b.target) {
                // Never skips: an edge is recorded only for a relocation whose target section was placed
                // (`relocate_cell`), and every placed section got a slot above.
                let Some(target) = run.first().and_then(|edge| section_at(index, edge.target)) else { continue };
                let weak_target = Arc::downgrade(&target);
                let mut dependencies = Vec::with_capacity(run.len());
                for edge in run {
                    let source = match edge.source {
                        EdgeSource::Staged { cell, section } => section_at(cell, section),
                        EdgeSource::Published(symbol) => match cell.resolutions.get(symbol.as_usize()) {
                            Some(Some(super::Resolution::Published { section, .. })) => Some(section.clone()),
                            _ => None,
                        },
                    };
                    // Never skips: a staged source is a symbol's placed section, a published one the resolution the
                    // relocation was applied with.
                    let Some(source) = source else { continue };
                    let relocation = edge.relocation;
                    source.dependents.lock().push(WeakDependent { section: weak_target.clone(), relocation });
                    dependencies.push(StrongDependency { section: source, relocation });
                }
                let mut list = target.dependencies.lock();
                if list.is_empty() {
                    // A new section's first run (the usual case): the list becomes this one, no second allocation.
                    *list = dependencies;
                } else {
                    list.append(&mut dependencies);
                }
            }
        }
        let cells = staged.iter().zip(built).map(|(cell, (loaded, _))| (cell.depth, loaded)).collect();
        // Freed here so that the time is counted (in `Link`): the parsed objects, edges and resolution tables.
        drop(staged);
        (cells, phases.lap(LoadPhase::Link, lap))
    }

    /// Publishes built cells and their exported symbols in their namespaces (ancestors first). Infallible.
    pub(crate) fn publish(&self, built: &[(usize, Arc<LoadedCell>)]) {
        let mut order: Vec<&(usize, Arc<LoadedCell>)> = built.iter().collect();
        order.sort_by_key(|(depth, _)| core::cmp::Reverse(*depth));
        for (depth, cell) in order {
            let namespace = self.chain[*depth];
            let mut state = namespace.state.write();
            if crate::swap::SwapPhase::current(&namespace.swap_phase) == crate::swap::SwapPhase::Cleanup {
                crate::swap::rollback::fault_point(crate::swap::SwapFaultPoint::Publishing);
            }
            for export in &cell.exports {
                // Never skips: `export.section` is a slot index taken from `cell.sections` when it was built.
                let Some(section) = cell.sections.get(export.section) else { continue };
                let taken = state.symbol_map.get(&export.name).is_some_and(|target| target.section.strong_count() > 0);
                if !taken {
                    let target = SymbolTarget { section: Arc::downgrade(section), offset: export.offset };
                    state.symbol_map.insert(export.name.clone(), target);
                }
            }
            state.cells.insert(cell.name.clone(), cell.clone());
            drop(state);
            crate::observer::notify_loaded(cell);
            let sizes = cell.sizes;
            log::info!(
                "namespace {}: loaded cell {} from {}: text {} B, rodata {} B, data {} B, {} relocations{}",
                namespace.name(),
                cell.name,
                cell.object_file.as_deref().unwrap_or("?"),
                sizes.text,
                sizes.read_only_data,
                sizes.data,
                cell.relocation_count,
                cell.load_duration_ns.map(|ns| alloc::format!(", staged in {} us", ns / 1000)).unwrap_or_default(),
            );
        }
    }
}

/// Each ELF section's name for its `LoadedSection` (indexed by section index; `None`: no exported symbol in it):
/// the exported symbol at its start, preferably non-weak, or else any exported symbol in it; among equals the first
/// by name. One pass over the exports.
fn section_names(cell: &StagedCell) -> Vec<Option<&'static str>> {
    // Lower ranks are better: (not at offset 0, weak).
    let mut best: Vec<Option<(&'static str, (bool, bool))>> = vec![None; cell.placements.len()];
    for (&name, &index) in &cell.exports {
        let Some(symbol) = cell.object.symbol(index) else { continue };
        let SymbolDefinition::Section(section) = symbol.definition else { continue };
        let Some(slot) = best.get_mut(section.as_usize()) else { continue };
        let rank = (symbol.value != 0, symbol.binding == SymbolBinding::Weak);
        // `exports` iterates by name, so keeping the first of equal rank keeps the first by name.
        if slot.is_none_or(|(_, best_rank)| rank < best_rank) {
            *slot = Some((name, rank));
        }
    }
    best.into_iter().map(|slot| slot.map(|(name, _)| name)).collect()
}
