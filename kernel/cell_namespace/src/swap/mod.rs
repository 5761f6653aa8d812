//! Live swapping: replace loaded cells with new ones while the system runs.
//!
//! # Consistency model
//! A swap of `(old, new)` pairs is one transaction in five phases (timed in [`SwapReport`]):
//! 1. **Load** (stage): the new cells are loaded, resolved, relocated and finalized privately. They must not bind
//!    to the cells they replace ([`LoadError::BindsToReplacedCell`]).
//! 2. **Verify**: every symbol an old cell's dependents use must have an equivalent in the new cell (same
//!    hash-free demangled name) of a compatible kind: an export that is also exported by the new cell may not turn
//!    from function into data or back, and a data object may not change size ([`SwapError::ExportMismatch`]). The
//!    state plan matches the old cell's data objects to the new cell's (below) and refuses a swap that would drop
//!    state ([`SwapError::StateDropped`]) unless [`SwapOptions::fresh`] or the new cell has a transfer function.
//!    Every store is precomputed: the rewrite of each dependent's relocation (the same relocation type and addend
//!    at the recorded place, with the new `S`), and each redirect (below).
//! 3. **State transfer**, inside the quiesced phase (below): unless `fresh`, each matched object is copied from
//!    the old cell into the new one and the pointers in the copies are translated (below); then each new cell's
//!    `<crate>::cell_state_transfer` runs. Only new-cell memory is written so far: an error (the transfer function
//!    failing, or dropped state it did not mark as transferred) aborts the swap with nothing changed.
//! 4. **Quiesce + rewrite** (the commit point is the first patch): the dependents' relocations are rewritten, then
//!    the old cells' own references to their matched objects are redirected to the new copies, then every retired
//!    cell's references that earlier swaps redirected into those old objects are redirected again to the new
//!    copies (below), then the [`PinFinder`] is asked what still refers to each old cell. A patch failure restores
//!    every store already made and returns [`SwapError::Patch`].
//! 5. **Cleanup**, under the namespace's transaction lock: the dependency records move from the old sections to
//!    the new ones, the old cells' symbol-map entries (and the aliases that pointed into them) are replaced by the
//!    new cells' symbols, the new cells are published, and each old cell is freed or retired (below).
//!
//! Before the commit point nothing is visible: any error drops the new cells (freeing their memory, undoing their
//! dependency edges on published sections) and the namespace, every dependent and every old cell are exactly as
//! before.
//!
//! **Quiescence.** [`CellNamespace::swap_quiesced`] runs phases 3 and 4 inside a caller-given [`RunQuiesced`]
//! function that stops every other CPU (a stop-the-world IPI) around them; if it cannot, it returns a
//! [`QuiesceError`] and the swap fails with [`SwapError::Quiesce`] having changed nothing: a swap never patches
//! with other CPUs running. Inside, no namespace lock is taken and nothing is logged (a stopped CPU may hold those
//! locks); allocation is allowed (the kernel heap's lock is IRQ-safe), and the caller's `clock` must be lock-free.
//! Each relocated value is written with one store of its width ([`MemoryRegion::patch`]). [`CellNamespace::swap`]
//! runs them directly (one CPU, host tests).
//!
//! **State.** A cell's state is every named object of its writable `.data*`/`.bss*` sections (not
//! `.data.rel.ro*`, which is only written by the loader), local symbols included (see `transfer.rs`). An old
//! object is *matched* by the new object with the same hash-free path and the same size. Unmatched old objects are
//! dropped state; objects only the new cell has start from their initial values. A transfer function sees both
//! cells' objects through [`StateTransfer`](crate::StateTransfer) and marks what it carried over itself.
//!
//! **Pointers in copied state.** Every 8-byte-aligned word of a copied object whose value lies inside an old cell
//! of the swap is taken for a pointer (an integer that happens to have such a value is translated too: kernel
//! cell addresses are in the top 2 GiB, so that would be an unusual integer). It is translated by symbol: find the
//! old cell's named symbol (any section, local symbols included) containing it and the new cell's symbol of the
//! same hash-free path; a pointer to the start of a function, or anywhere into a data object of unchanged size
//! (a static, a vtable with a stable name), becomes the same offset into the new symbol. Any other pointer (into
//! an anonymous constant such as a string literal or most vtables, whose names carry a crate hash; into the middle
//! of a function; into an object that changed size) is left as is and *pins* the old cell as a
//! [`Pin::Pointer`]: the old cell is retired, not freed, until that word no longer points into it.
//!
//! **Old cells: freed or retired.** After the commit no dependent refers to an old cell through a recorded
//! relocation and the namespace forgets it. It is freed (its memory regions returned, its unwind info
//! unregistered through the [`CellObserver`](crate::CellObserver)) only if nothing pins it: no pin from the
//! [`PinFinder`] (task frames, interrupted contexts, task entries, stored pointers the kernel scans for), no
//! untranslated pointer in copied state, and no `Arc<LoadedCell>`/`Arc<LoadedSection>` held outside the namespace
//! (including the dependency records of another retired cell that calls it). Otherwise it is *retired*: kept
//! mapped and executable, its unwind info kept, listed by [`CellNamespace::retired`] with its pins, and freed by a
//! later [`CellNamespace::reclaim_retired`] that finds it unpinned. References held by other retired cells of
//! the namespace (the dependency records of their code, linked to this cell when they were loaded, and their
//! state links, below) are listed as [`Pin::RetiredCells`](crate::Pin::RetiredCells), naming those cells, apart
//! from [`Pin::References`](crate::Pin::References) (holders outside the namespace); they are genuine (that code
//! still calls this copy), and go away when those cells are freed (a reclaim then frees this one in the same
//! pass). A retired cell is not re-linked when a cell it calls is swapped later: doing so would let that cell's
//! old copy be freed while objects it created live on in the heap, which nothing scans (a task's exit value, a
//! `Box<dyn Any>` whose vtable lies in the old `spawn`, faulted the shell that way when tried).
//!
//! **Old code still running shares the new state.** Code of a retired cell may still run (a task returning into
//! it, a stored function pointer). So that it does not diverge from the new cell, every relocation in the old
//! cell's text and read-only data that refers to one of its own matched objects (and its cross-cell references to
//! matched objects of other old cells of the swap) is rewritten, inside the quiesced phase, to the new copy. Old
//! and new code then read and write one state. The retired cell keeps a record of each redirected reference, and
//! every later swap of the cell that now holds the object (the same rules: precomputed, applied inside the
//! quiesced phase with the other rewrites, restored with them on a patch failure; a place that cannot take the
//! new value fails the swap in its verify phase, changing nothing) redirects it again to the newest copy: a chain
//! of retired copies of one cell (swapped back to back while CPUs still run the older copies) always shares the
//! newest copy's state. A retired cell whose references were redirected holds the cells its records point into
//! (`RetiredCellInfo::keeps_alive`: the newest copy; an older copy only while a record still points into it), so
//! a later swap of those retires them instead of unmapping the state the old code uses. Limits: references to
//! unmatched objects (dropped with `fresh`, or carried by a transfer function under another name) keep the old
//! copy; pointers the old code computed before the swap and keeps in registers or on its stack still point to the
//! old copy; a retired cell is not re-linked by later swaps of the *other* cells it calls (it keeps calling their
//! copies of the time, and their state; see above for why).
//!
//! **What cannot be found**, and why the system stays safe. Captured function and vtable pointers outside any
//! relocation (a hook or an IDT entry registered at run time, a trait object or closure in the heap, a function
//! pointer in another cell's data) are not rewritten. They keep calling old code. That is safe only while the old
//! cell stays mapped: the kernel's `PinFinder` must report such pointers (by scanning the memory it knows of) or
//! the caller must not swap such a cell; a cell that registered hooks should re-register them in its
//! `cell_state_transfer`, through [`StateTransfer::after_commit`](crate::StateTransfer::after_commit): the
//! deferred actions run inside the quiesced phase once every patch succeeded (the swap can no longer fail), before
//! the pin search, and are dropped unrun if it aborts. This crate cannot scan the heap; with [`NoPins`](crate::NoPins) it frees any old cell
//! without outside references.
//!
//! **Observers.** The [`CellObserver`](crate::CellObserver) hears `removed` for each old cell that is freed (at the
//! swap, or later at a reclaim), then `loaded` for each new one, inside the transaction.
//!
//! **Names after a swap.** The old cells' exported names stay in the symbol map as aliases of the new cells'
//! equivalents (by hash-free name), so a cell loaded later that was built against an old cell binds to its
//! replacement instead of loading the old cell again through the manifest; loading the old cell itself fails
//! with [`LoadError::DuplicateSymbol`]. Swapping a cell with itself (`swap X X`) reloads a fresh copy of its code
//! from its object file and, unless `fresh`, carries its state over: fault recovery's repair of a faulting cell.

mod plan;
mod report;
pub(crate) mod retire;
pub(crate) mod rollback;
mod state;

use alloc::collections::BTreeSet;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::cell::{LoadedCell, hash_free_name};
use crate::namespace::SymbolTarget;
use crate::stage::Transaction;
use crate::{CellNamespace, LoadError, NoPins, PinFinder, QuiesceError, SwapError};
use plan::{Patch, Redirect, Rewrite};
pub use report::SwapReport;
use retire::{RedirectRecord, RetiredCell, StoredPointer};
pub use rollback::{SwapFaultPoint, SwapPhase, SwapRollback, TransactionRecovery, inject_swap_fault};
use rollback::{SwapJournal, SwapUnwindGuard};
use state::{CellState, Transferred, Translator};

/// How a swap treats state.
#[derive(Clone, Copy, Debug, Default)]
pub struct SwapOptions {
    /// Start the new cells from their initial `.data`/`.bss` (no state transfer; no refusal for dropped state).
    pub fresh: bool,
}

/// Runs its argument exactly once with every other CPU stopped, or returns an error without running it.
pub type RunQuiesced<'a> = &'a dyn Fn(&mut dyn FnMut()) -> Result<(), QuiesceError>;

/// What the quiesced closure found.
#[derive(Default)]
struct QuiescedOutcome {
    ran: bool,
    error: Option<SwapError>,
    transferred: Transferred,
    transfer_ns: u64,
    /// Pins found per old cell.
    pins: Vec<Vec<crate::Pin>>,
}

impl CellNamespace {
    /// Replaces each loaded cell `old` by cell `new` for every `(old, new)` pair, with state transfer, running the
    /// commit directly (no other CPU to stop: one CPU, host tests) and finding no pins ([`NoPins`]).
    ///
    /// # Errors
    /// As for [`swap_quiesced`](Self::swap_quiesced).
    pub fn swap(&self, pairs: &[(&str, &str)], clock: &dyn Fn() -> u64) -> Result<SwapReport, SwapError> {
        let direct = |commit: &mut dyn FnMut()| -> Result<(), QuiesceError> {
            commit();
            Ok(())
        };
        self.swap_quiesced(pairs, &SwapOptions::default(), clock, &direct, &NoPins)
    }

    /// Replaces each loaded cell `old` by cell `new` (a manifest cell whose object is in the directory) for every
    /// `(old, new)` pair, as one transaction; `clock` is a lock-free monotonic nanosecond clock used to time the
    /// phases. The state transfer and the patching run inside `run_quiesced` (every other CPU stopped), which also
    /// asks `pins` what still refers to each old cell; see the module documentation for the consistency model.
    ///
    /// # Errors
    /// A [`SwapError`]; except for [`SwapError::Patch`] (see there) the namespace and all code are unchanged.
    pub fn swap_quiesced(
        &self,
        pairs: &[(&str, &str)],
        options: &SwapOptions,
        clock: &dyn Fn() -> u64,
        run_quiesced: RunQuiesced<'_>,
        pins: &dyn PinFinder,
    ) -> Result<SwapReport, SwapError> {
        let start = clock();
        let mut transaction = Transaction::begin(self, Vec::new(), Some(clock));
        // Declared after the transaction, so an unwind rolls back before the transaction lock is released.
        let mut guard = SwapUnwindGuard { namespace: self, run_quiesced, armed: true };
        SwapPhase::enter(&self.swap_phase, SwapPhase::Staging);
        let result = self.swap_in_transaction(&mut transaction, pairs, options, clock, run_quiesced, pins, start);
        rollback::fault_point(SwapFaultPoint::Completed);
        guard.armed = false;
        *self.swap_journal.lock() = None;
        SwapPhase::enter(&self.swap_phase, SwapPhase::Idle);
        result
    }

    /// [`swap_quiesced`](Self::swap_quiesced) inside its transaction (a frame of its own, so that a fault in it
    /// leaves the caller's [`SwapUnwindGuard`] to roll back).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn swap_in_transaction(
        &self,
        transaction: &mut Transaction<'_>,
        pairs: &[(&str, &str)],
        options: &SwapOptions,
        clock: &dyn Fn() -> u64,
        run_quiesced: RunQuiesced<'_>,
        pins: &dyn PinFinder,
        start: u64,
    ) -> Result<SwapReport, SwapError> {
        let (olds, crate_names) = stage_new_cells(transaction, pairs)?;
        rollback::fault_point(SwapFaultPoint::Staged);
        let staged_at = clock();
        let (built, plan) = verify(transaction, &olds, &crate_names, options)?;
        *self.swap_journal.lock() = Some(SwapJournal {
            built: built.iter().map(|(_, cell)| cell.clone()).collect(),
            rewrites: plan.all_rewrites().cloned().collect(),
        });
        SwapPhase::enter(&self.swap_phase, SwapPhase::Built);
        rollback::fault_point(SwapFaultPoint::Built);
        let verified_at = clock();
        let outcome = match quiesced_commit(&plan, options, clock, run_quiesced, pins, &self.swap_phase) {
            Ok(outcome) => outcome,
            Err(error) => return Err(discard(&built, error)),
        };
        SwapPhase::enter(&self.swap_phase, SwapPhase::Cleanup);
        // Past the commit point nothing is undone. The journal keeps only the new cells, for a fault inside the
        // cleanup (its rollback publishes those not published yet); its rewrites go: their references to the old
        // cells' sections (the redirects' targets) must not count as outside references when the old cells are
        // freed or retired.
        if let Some(journal) = self.swap_journal.lock().as_mut() {
            journal.rewrites = Vec::new();
            journal.built.truncate(olds.len());
        }
        let committed_at = clock();
        let transfer_ns = outcome.transfer_ns;
        let mut report = self.cleanup(transaction, olds, &built, plan, outcome);
        *self.swap_journal.lock() = None;
        let end = clock();
        report.stage_ns = staged_at.saturating_sub(start);
        report.verify_ns = verified_at.saturating_sub(staged_at);
        report.state_transfer_ns = transfer_ns;
        report.quiesce_ns = committed_at.saturating_sub(verified_at).saturating_sub(transfer_ns);
        report.cleanup_ns = end.saturating_sub(committed_at);
        report.total_ns = end.saturating_sub(start);
        let names: Vec<String> = pairs.iter().map(|(old, new)| alloc::format!("{old} -> {new}")).collect();
        log::info!("namespace {}: swapped {}: {report}", self.name(), names.join(", "));
        Ok(report)
    }

    /// Phase 5 (infallible): moves the dependency records, removes the old cells, frees or retires each, publishes
    /// the new cells and aliases the old names. Returns the report's counts (its times are the caller's).
    fn cleanup(
        &self,
        transaction: &mut Transaction<'_>,
        olds: Vec<Arc<LoadedCell>>,
        built: &[(usize, Arc<LoadedCell>)],
        plan: SwapPlan,
        outcome: QuiescedOutcome,
    ) -> SwapReport {
        for patch in &plan.patches {
            plan::move_dependency(patch, &built[patch.new_cell].1);
        }
        for old in &olds {
            plan::detach(old);
        }
        let new_cells: Vec<Arc<LoadedCell>> = built.iter().take(olds.len()).map(|(_, cell)| cell.clone()).collect();
        let carried = self.unpublish(&olds);
        rollback::fault_point(SwapFaultPoint::Cleanup);
        let patches = &plan.patches;
        let mut report = SwapReport {
            relocations_rewritten: patches.len(),
            dependent_sections: count_distinct(patches.iter().map(|patch| Arc::as_ptr(&patch.rewrite.target) as usize)),
            dependent_cells: count_distinct(
                patches
                    .iter()
                    .filter_map(|patch| patch.rewrite.target.parent_cell())
                    .map(|cell| Arc::as_ptr(&cell) as usize),
            ),
            cells_loaded: built.len(),
            objects_transferred: outcome.transferred.objects,
            bytes_transferred: outcome.transferred.bytes,
            pointers_translated: outcome.transferred.pointers_translated,
            references_redirected: plan.redirects.len() + plan.chain.len(),
            ..SwapReport::default()
        };
        state::commit_chain_redirects(&mut self.retired.lock(), &plan.states);
        let SwapPlan { patches, states, redirects, chain, translator } = plan;
        let records = records_per_old_cell(&olds, redirects);
        // Drop every reference the plan holds to the old cells before counting the outside ones.
        drop((patches, states, chain, translator));
        transaction.set_replaced(Vec::new());
        let candidates = retire_candidates(olds, outcome, &new_cells, records);
        // The other retired cells, taken out of the lock for the count (the transaction lock keeps every reclaim
        // out meanwhile), then put back with the newly retired ones.
        let others = core::mem::take(&mut *self.retired.lock());
        let (freed, retired) = retire::settle(candidates, &others);
        report.cells_freed = freed.len();
        report.cells_retired = retired.len();
        let mut list = self.retired.lock();
        list.extend(others);
        list.extend(retired);
        drop(list);
        transaction.publish(built);
        self.alias(&carried, &new_cells);
        report
    }

    /// Removes the old cells and their symbol-map entries (their exports and the aliases pointing into them).
    /// Returns, per old cell, the names it carried (its exports and aliases), to alias to the new cell.
    fn unpublish(&self, olds: &[Arc<LoadedCell>]) -> Vec<Vec<String>> {
        let mut state = self.state.write();
        let mut carried = Vec::new();
        for old in olds {
            let mut names: Vec<String> = old.exports.iter().map(|export| export.name.clone()).collect();
            names.extend(state.aliases.remove(&old.name).unwrap_or_default());
            for name in &names {
                let points_into_old = state.symbol_map.get(name.as_str()).is_some_and(|target| {
                    let owner = target.section.upgrade().and_then(|section| section.parent_cell());
                    owner.is_none_or(|owner| Arc::ptr_eq(old, &owner))
                });
                if points_into_old {
                    state.symbol_map.remove(name.as_str());
                }
            }
            state.cells.remove(&old.name);
            carried.push(names);
        }
        carried
    }

    /// Points each carried name of an old cell that is now free in the symbol map at the new cell's export of the
    /// same hash-free name, and remembers it as an alias of the new cell.
    fn alias(&self, carried: &[Vec<String>], new_cells: &[Arc<LoadedCell>]) {
        let mut state = self.state.write();
        for (names, new) in carried.iter().zip(new_cells) {
            let mut aliases = Vec::new();
            for name in names {
                let taken = state.symbol_map.get(name).is_some_and(|target| target.section.strong_count() > 0);
                if taken {
                    continue;
                }
                let path = hash_free_name(name);
                let Some(export) = new.exports.iter().find(|export| hash_free_name(&export.name) == path) else {
                    continue;
                };
                let Some(section) = new.sections.get(export.section) else { continue };
                let target = SymbolTarget { section: Arc::downgrade(section), offset: export.offset };
                state.symbol_map.insert(name.clone(), target);
                aliases.push(name.clone());
            }
            if !aliases.is_empty() {
                state.aliases.entry(new.name.clone()).or_default().extend(aliases);
            }
        }
    }
}

/// Checks the pairs, finds the old cells and stages the new ones (resolve, relocate, finalize). Returns the old
/// cells and the new cells' crate names, in pair order (the new cells are the first staged cells, in that order).
fn stage_new_cells(
    transaction: &mut Transaction<'_>,
    pairs: &[(&str, &str)],
) -> Result<(Vec<Arc<LoadedCell>>, Vec<String>), SwapError> {
    let namespace = transaction.namespace();
    let mut olds: Vec<Arc<LoadedCell>> = Vec::new();
    let mut news = Vec::new();
    for &(old, new) in pairs {
        let duplicate = olds.iter().any(|cell| cell.name == old)
            || news.iter().any(|entry: &crate::ManifestEntry| entry.name == new);
        if duplicate {
            return Err(SwapError::DuplicateCell { cell: old.to_string() });
        }
        let cell = namespace.state.read().cells.get(old).cloned();
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
    let crate_names = news.iter().map(|entry| entry.crate_name.clone()).collect();
    for entry in news {
        transaction.stage(entry, 0).map_err(SwapError::Stage)?;
    }
    transaction.resolve_all().map_err(SwapError::Stage)?;
    transaction.relocate_all().map_err(SwapError::Stage)?;
    transaction.finalize_all().map_err(SwapError::Stage)?;
    Ok((olds, crate_names))
}

/// The built cells of a swap as (namespace depth, cell), the new cells first in pair order.
type BuiltCells = Vec<(usize, Arc<LoadedCell>)>;

/// Everything the quiesced phase writes, precomputed by the verify phase.
struct SwapPlan {
    /// The rewrites of the dependents' relocations.
    patches: Vec<Patch>,
    /// The state plan of each pair.
    states: Vec<CellState>,
    /// The redirects of the old cells' references to their matched objects.
    redirects: Vec<Redirect>,
    /// The redirects, again, of retired cells' references into the old cells' matched objects (an older copy of
    /// a swapped cell, still running, follows the state to the newest copy).
    chain: Vec<Rewrite>,
    translator: Translator,
}

impl SwapPlan {
    /// Every store of the quiesced phase, in the order applied: the dependents' rewrites, the redirects, the chain.
    fn all_rewrites(&self) -> impl Iterator<Item = &Rewrite> {
        self.patches
            .iter()
            .map(|patch| &patch.rewrite)
            .chain(self.redirects.iter().map(|redirect| &redirect.rewrite))
            .chain(self.chain.iter())
    }
}

/// Phase 2: checks exports and dependents' symbols and plans the patches (on the staged cells), then builds the
/// new cells and plans the state transfer and redirects. After `build`, an error undoes it (`discard`).
fn verify(
    transaction: &mut Transaction<'_>,
    olds: &[Arc<LoadedCell>],
    crate_names: &[String],
    options: &SwapOptions,
) -> Result<(BuiltCells, SwapPlan), SwapError> {
    let mut patches = Vec::new();
    for (new_cell, old) in olds.iter().enumerate() {
        plan::check_exports(old, &transaction.staged[new_cell])?;
        plan::plan_patches(olds, old, &transaction.staged[new_cell], new_cell, &mut patches)?;
    }
    transaction.check_conflicts().map_err(SwapError::Stage)?;
    let (built, _) = transaction.build(&crate::profile::PhaseClock::new(None), None);
    let planned = plan_state(olds, &built, crate_names, options).and_then(|(states, redirects)| {
        let mut chain = Vec::new();
        state::plan_chain_redirects(&transaction.namespace().retired.lock(), &states, &mut chain)?;
        Ok((states, redirects, chain))
    });
    match planned {
        Ok((states, redirects, chain)) => {
            let translator = Translator::new(&states);
            Ok((built, SwapPlan { patches, states, redirects, chain, translator }))
        }
        Err(error) => Err(discard(&built, error)),
    }
}

/// Plans the state transfer of every pair and the redirects of the old cells' data references; refuses dropped
/// state that no transfer function may carry (unless `fresh`).
fn plan_state(
    olds: &[Arc<LoadedCell>],
    built: &[(usize, Arc<LoadedCell>)],
    crate_names: &[String],
    options: &SwapOptions,
) -> Result<(Vec<CellState>, Vec<Redirect>), SwapError> {
    let mut states = Vec::new();
    for ((old, (_, new)), crate_name) in olds.iter().zip(built).zip(crate_names) {
        let state = CellState::plan(old, new, crate_name)?;
        if !options.fresh && !state.has_transfer_function() {
            state.check_dropped(&BTreeSet::new())?;
        }
        states.push(state);
    }
    let mut redirects = Vec::new();
    for state in &states {
        state.plan_redirects(&states, &mut redirects)?;
    }
    Ok((states, redirects))
}

/// Phases 3 and 4 inside `run_quiesced`: state transfer, patches, redirects, pins.
fn quiesced_commit(
    plan: &SwapPlan,
    options: &SwapOptions,
    clock: &dyn Fn() -> u64,
    run_quiesced: RunQuiesced<'_>,
    pins: &dyn PinFinder,
    phase: &core::sync::atomic::AtomicU8,
) -> Result<QuiescedOutcome, SwapError> {
    let (states, translator) = (&plan.states, &plan.translator);
    let rewrites: Vec<&Rewrite> = plan.all_rewrites().collect();
    let targets: Vec<(String, Vec<crate::AddressRange>)> =
        states.iter().map(|state| (state.old.name.clone(), state.old.address_ranges())).collect();
    let mut outcome = QuiescedOutcome::default();
    let result = run_quiesced(&mut || {
        outcome.ran = true;
        SwapPhase::enter(phase, SwapPhase::Transfer);
        let started = clock();
        let mut after_commit = Vec::new();
        if !options.fresh {
            for state in states {
                state.copy(translator, &mut outcome.transferred);
            }
            for state in states {
                match state.run_transfer_function() {
                    Ok(actions) => after_commit.extend(actions),
                    Err(error) => {
                        outcome.error = Some(error);
                        return;
                    }
                }
            }
        }
        outcome.transfer_ns = clock().saturating_sub(started);
        rollback::fault_point(SwapFaultPoint::Transfer);
        SwapPhase::enter(phase, SwapPhase::Patching);
        if let Err((index, error)) = plan::apply(&rewrites) {
            let dependent = rewrites[index].target.name().to_string();
            outcome.error = Some(SwapError::Patch { dependent, error });
            return;
        }
        SwapPhase::enter(phase, SwapPhase::Patched);
        rollback::fault_point(SwapFaultPoint::Patched);
        // Committed: the transfer functions' deferred actions (`StateTransfer::after_commit`), before the pin search.
        if !after_commit.is_empty() {
            SwapPhase::enter(phase, SwapPhase::Actions);
        }
        for action in after_commit {
            action();
        }
        outcome.pins = targets.iter().map(|(name, ranges)| pins.find_pins(name, ranges)).collect();
    });
    result.map_err(SwapError::Quiesce)?;
    if !outcome.ran {
        return Err(SwapError::Quiesce(QuiesceError { reason: String::from("the quiesced function did not run") }));
    }
    match outcome.error.take() {
        Some(error) => Err(error),
        None => Ok(outcome),
    }
}

/// Undoes a built but uncommitted swap: the new cells forget their edges on published sections and are dropped
/// with `built` by the caller. Returns `error` for the caller to return.
fn discard(built: &[(usize, Arc<LoadedCell>)], error: SwapError) -> SwapError {
    for (_, cell) in built {
        plan::detach(cell);
    }
    error
}

/// The records of the redirects, per old cell (in `olds` order).
fn records_per_old_cell(olds: &[Arc<LoadedCell>], redirects: Vec<Redirect>) -> Vec<Vec<RedirectRecord>> {
    let mut records: Vec<Vec<RedirectRecord>> = olds.iter().map(|_| Vec::new()).collect();
    for redirect in redirects {
        let owner = redirect.rewrite.target.parent_cell();
        let index = olds.iter().position(|old| owner.as_ref().is_some_and(|owner| Arc::ptr_eq(owner, old)));
        if let Some(index) = index {
            records[index].push(redirect.record);
        }
    }
    records
}

/// One retirement candidate per old cell, with the pins found in the quiesced phase, the untranslated pointers
/// into it that the state copy left in the new cells, and the records of its redirected references.
fn retire_candidates(
    olds: Vec<Arc<LoadedCell>>,
    outcome: QuiescedOutcome,
    new_cells: &[Arc<LoadedCell>],
    records: Vec<Vec<RedirectRecord>>,
) -> Vec<RetiredCell> {
    let mut found = outcome.pins.into_iter();
    let untranslated = outcome.transferred.untranslated;
    olds.into_iter()
        .zip(records)
        .map(|(cell, redirects)| {
            let ranges = cell.address_ranges();
            let pointers = untranslated
                .iter()
                .filter(|(value, _)| {
                    memory_structs::VirtualAddress::try_new(*value)
                        .is_ok_and(|address| ranges.iter().any(|range| range.contains(address)))
                })
                .filter_map(|(_, pin)| {
                    let crate::Pin::Pointer { location, .. } = pin else { return None };
                    let section = new_cells.iter().find_map(|new| new.section_containing(*location))?;
                    Some(StoredPointer { section: Arc::downgrade(section), location: *location, pin: pin.clone() })
                })
                .collect();
            let shared = if redirects.is_empty() { Vec::new() } else { new_cells.to_vec() };
            let found = found.next().unwrap_or_default();
            RetiredCell { cell, found, pins: Vec::new(), pointers, shared, redirects }
        })
        .collect()
}

fn count_distinct(values: impl Iterator<Item = usize>) -> usize {
    values.collect::<BTreeSet<usize>>().len()
}
