//! The state-transfer part of a swap: match the old and new cells' data objects, copy them inside the quiesced
//! phase, translate the pointers the copies hold into old cells, call the new cells' `cell_state_transfer`
//! functions, and plan the redirection of the old cells' own data references to the new copies.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;

use cell_loader::{ObjectFile, SymbolDefinition};
use memory_structs::VirtualAddress;

use super::plan::{Redirect, Rewrite, plan_redirect, plan_rewrite};
use super::retire::RetiredCell;
use crate::cell::{LoadedCell, hash_free_name};
use crate::transfer::{
    CommitAction, DataObject, StateTransfer, StateTransferFunction, data_objects, is_state_section, parse_again,
};
use crate::{AddressRange, ExportKind, ObjectLocation, Pin, SwapError};

/// The state plan of one `(old, new)` pair.
pub(super) struct CellState {
    pub(super) old: Arc<LoadedCell>,
    pub(super) new: Arc<LoadedCell>,
    /// Their object files, parsed once for the whole plan.
    old_object: Option<ObjectFile<'static>>,
    new_object: Option<ObjectFile<'static>>,
    old_objects: Vec<DataObject>,
    new_objects: Vec<DataObject>,
    /// Old objects with an equal-path, equal-size new object: (old, new).
    pub(super) matched: Vec<(ObjectLocation, ObjectLocation)>,
    /// Old objects without one: (path, why).
    dropped: Vec<(String, String)>,
    transfer: Option<StateTransferFunction>,
}

/// What the quiesced state transfer did.
#[derive(Default)]
pub(super) struct Transferred {
    pub(super) objects: usize,
    pub(super) bytes: usize,
    pub(super) pointers_translated: usize,
    /// Copied words that still point into an old cell (no equivalent found): they pin that cell.
    pub(super) untranslated: Vec<(usize, Pin)>,
}

impl CellState {
    /// Matches the data objects of `old` and `new` and finds `new`'s transfer function (`crate_name` is the new
    /// cell's crate).
    pub(super) fn plan(old: &Arc<LoadedCell>, new: &Arc<LoadedCell>, crate_name: &str) -> Result<Self, SwapError> {
        let old_object = parse_again(old);
        let new_object = parse_again(new);
        let old_objects = data_objects(old, old_object.as_ref());
        let new_objects = data_objects(new, new_object.as_ref());
        let mut matched = Vec::new();
        let mut dropped = Vec::new();
        for object in &old_objects {
            let same_path: Vec<&DataObject> = new_objects.iter().filter(|new| new.path == object.path).collect();
            match same_path.iter().find(|new| new.location.size == object.location.size) {
                Some(new) => matched.push((object.location, new.location)),
                None => {
                    let why = match same_path.first() {
                        Some(new) => format!("{} bytes, now {}", object.location.size, new.location.size),
                        None => format!("{} bytes, no equivalent", object.location.size),
                    };
                    dropped.push((object.path.clone(), why));
                }
            }
        }
        let transfer = transfer_function(new, crate_name)?;
        Ok(Self {
            old: old.clone(),
            new: new.clone(),
            old_object,
            new_object,
            old_objects,
            new_objects,
            matched,
            dropped,
            transfer,
        })
    }

    /// The refusal for dropped state, if any is dropped and no transfer function may still carry it.
    pub(super) fn check_dropped(&self, marked: &BTreeSet<String>) -> Result<(), SwapError> {
        let symbols: Vec<String> = self
            .dropped
            .iter()
            .filter(|(path, _)| !marked.contains(path))
            .map(|(path, why)| format!("{path} ({why})"))
            .collect();
        if symbols.is_empty() {
            return Ok(());
        }
        Err(SwapError::StateDropped { cell: self.old.name.clone(), symbols })
    }

    /// Whether the pair has a transfer function.
    pub(super) fn has_transfer_function(&self) -> bool {
        self.transfer.is_some()
    }

    /// Copies every matched object from the old cell to the new one and translates pointers in the copies.
    /// Runs inside the quiesced phase: no lock; allocates only for untranslated-pointer pins.
    pub(super) fn copy(&self, translator: &Translator, done: &mut Transferred) {
        for &(old, new) in &self.matched {
            // SAFETY: both ranges are whole data objects of loaded, mapped, writable data regions (the old cell is
            // still in the namespace and the new one is held by the swap); they are distinct regions, so they do
            // not overlap; every other CPU is stopped, so nothing writes the old object meanwhile.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    old.address.value() as *const u8,
                    new.address.value() as *mut u8,
                    old.size,
                )
            };
            done.objects += 1;
            done.bytes += old.size;
            translator.translate_words(new, done);
        }
    }

    /// Calls the new cell's transfer function, then checks for dropped state; returns the actions it deferred
    /// until the commit. Runs inside the quiesced phase.
    pub(super) fn run_transfer_function(&self) -> Result<Vec<CommitAction>, SwapError> {
        let mut deferred = Vec::new();
        let marked = match self.transfer {
            Some(function) => {
                let transfer = StateTransfer {
                    old: &self.old,
                    new: &self.new,
                    old_objects: &self.old_objects,
                    new_objects: &self.new_objects,
                    transferred: RefCell::new(BTreeSet::new()),
                    after_commit: RefCell::new(Vec::new()),
                };
                function(&transfer)
                    .map_err(|reason| SwapError::StateTransfer { cell: self.new.name.clone(), reason })?;
                deferred = transfer.after_commit.into_inner();
                transfer.transferred.into_inner()
            }
            None => BTreeSet::new(),
        };
        self.check_dropped(&marked)?;
        Ok(deferred)
    }

    /// Plans the redirection of the old cell's own references to its matched objects (relocations in its text
    /// and read-only data, and its cross-cell references into other old cells of this swap) to the new copies.
    /// References held in its writable data are left: old code reads its statics through code, and the old
    /// copies are dead after the swap.
    pub(super) fn plan_redirects(&self, all: &[CellState], rewrites: &mut Vec<Redirect>) -> Result<(), SwapError> {
        let translate = |address: u64| translate_state(all, address);
        let Some(object) = &self.old_object else { return Ok(()) };
        for relocations in object.relocation_sections() {
            let Some(target_section) = object.section(relocations.target) else { continue };
            if is_state_section(target_section.kind, target_section.name) {
                continue;
            }
            let Some(target) = self.old.loaded_section(relocations.target.as_usize()) else { continue };
            for relocation in object.relocations(relocations) {
                let Some(symbol) = object.symbol(relocation.symbol) else { continue };
                let SymbolDefinition::Section(section) = symbol.definition else { continue };
                let Some(source) = object.section(section) else { continue };
                if !is_state_section(source.kind, source.name) {
                    continue;
                }
                let Some(loaded) = self.old.loaded_section(section.as_usize()) else { continue };
                let old_address = (loaded.address().value() as u64).wrapping_add(symbol.value);
                let Some(new_address) = translate(old_address) else { continue };
                let name = if symbol.name.is_empty() { source.name } else { symbol.name };
                rewrites.push(plan_redirect(
                    target,
                    relocation.offset as usize,
                    relocation.relocation_type,
                    relocation.addend,
                    (old_address, new_address),
                    name,
                )?);
            }
        }
        for target in &self.old.sections {
            for dependency in target.dependencies() {
                let in_swap = dependency
                    .section
                    .parent_cell()
                    .is_some_and(|cell| all.iter().any(|state| Arc::ptr_eq(&state.old, &cell)));
                if !in_swap
                    || !matches!(
                        dependency.section.kind(),
                        cell_loader::SectionKind::Data | cell_loader::SectionKind::Bss
                    )
                {
                    continue;
                }
                let relocation = &dependency.relocation;
                let old_address =
                    (dependency.section.address().value() as u64).wrapping_add(relocation.symbol_offset as u64);
                let Some(new_address) = translate(old_address) else { continue };
                rewrites.push(plan_redirect(
                    target,
                    relocation.offset,
                    relocation.relocation_type,
                    relocation.addend,
                    (old_address, new_address),
                    relocation.symbol,
                )?);
            }
        }
        Ok(())
    }
}

/// The new address of `address` if it lies inside a matched old object of the swap (`all`): the same offset into
/// the new copy.
pub(super) fn translate_state(all: &[CellState], address: u64) -> Option<u64> {
    all.iter().flat_map(|state| state.matched.iter()).find_map(|(old, new)| {
        let start = old.address.value() as u64;
        (address >= start && address < start + old.size as u64)
            .then(|| (new.address.value() as u64) + (address - start))
    })
}

/// Plans the redirection, again, of every retired cell's recorded references that point into a matched object of
/// this swap's old cells (the copies an earlier swap redirected them to), to the new copies: a chain of retired
/// copies of one cell then always shares the newest copy's state. The same rules as [`CellState::plan_redirects`]
/// (one store per place, precomputed; applied inside the quiesced phase with the other rewrites, and restored
/// with them on a patch failure).
///
/// # Errors
/// [`SwapError::Relocation`] or [`SwapError::Patch`] if a place cannot take the new value; nothing is changed.
pub(super) fn plan_chain_redirects(
    retired: &[RetiredCell],
    all: &[CellState],
    rewrites: &mut Vec<Rewrite>,
) -> Result<(), SwapError> {
    for cell in retired {
        for record in &cell.redirects {
            let Some(new_address) = translate_state(all, record.address) else { continue };
            let Some(section) = record.section.upgrade() else { continue };
            rewrites.push(plan_rewrite(
                &section,
                record.offset,
                record.relocation_type,
                record.addend,
                (record.address, new_address),
                &record.symbol,
            )?);
        }
    }
    Ok(())
}

/// After a committed swap: updates each retired cell's records that [`plan_chain_redirects`] redirected, and
/// makes it keep alive the new cells its records now point into instead of the old ones they no longer point
/// into (an old cell that a record still points into, an object the new cell did not match, stays kept).
pub(super) fn commit_chain_redirects(retired: &mut [RetiredCell], all: &[CellState]) {
    let ranges: Vec<(Vec<AddressRange>, Vec<AddressRange>)> =
        all.iter().map(|state| (state.old.address_ranges(), state.new.address_ranges())).collect();
    let inside = |ranges: &[AddressRange], address: u64| {
        VirtualAddress::try_new(address as usize)
            .is_ok_and(|address| ranges.iter().any(|range| range.contains(address)))
    };
    for cell in retired.iter_mut() {
        let mut moved = false;
        for record in &mut cell.redirects {
            if let Some(new_address) = translate_state(all, record.address) {
                record.address = new_address;
                moved = true;
            }
        }
        if !moved {
            continue;
        }
        for (state, (old_ranges, new_ranges)) in all.iter().zip(&ranges) {
            let uses_old = cell.redirects.iter().any(|record| inside(old_ranges, record.address));
            let uses_new = cell.redirects.iter().any(|record| inside(new_ranges, record.address));
            if !uses_old {
                cell.shared.retain(|shared| !Arc::ptr_eq(shared, &state.old));
            }
            if uses_new && !cell.shared.iter().any(|shared| Arc::ptr_eq(shared, &state.new)) {
                cell.shared.push(state.new.clone());
            }
        }
    }
}

/// The new cell's `<crate>::cell_state_transfer`, checked to be a function.
fn transfer_function(new: &LoadedCell, crate_name: &str) -> Result<Option<StateTransferFunction>, SwapError> {
    let path = format!("{crate_name}::cell_state_transfer");
    let Some(export) = new.exports.iter().find(|export| hash_free_name(&export.name) == path) else { return Ok(None) };
    let is_text =
        new.sections.get(export.section).is_some_and(|section| section.kind() == cell_loader::SectionKind::Text);
    if !matches!(export.kind, ExportKind::Function { .. }) || !is_text {
        let reason = format!("{path} is {}, not a function", export.kind);
        return Err(SwapError::StateTransfer { cell: new.name.clone(), reason });
    }
    let address = new
        .symbol_address(&export.name)
        .ok_or_else(|| SwapError::StateTransfer { cell: new.name.clone(), reason: format!("{path} has no address") })?;
    // The symbol is an `STT_FUNC` in a relocated, finalized text section of the new cell, which the swap keeps
    // alive while the pointer is used. By the state-transfer convention (the crate docs) a cell exports
    // `cell_state_transfer` with exactly this signature, built by the same compiler against this crate's
    // `StateTransfer`.
    // SAFETY: a live function of this exact signature and Rust ABI (see above).
    Ok(Some(unsafe { core::mem::transmute::<usize, StateTransferFunction>(address.value()) }))
}

/// Maps addresses in old cells to the new cells' equivalents, symbol by symbol (hash-free path).
pub(super) struct Translator {
    /// (old start, old size, function?, new start, new size), sorted by old start.
    symbols: Vec<(usize, usize, bool, usize, usize)>,
    /// The old cells' address ranges, with their names.
    names: Vec<(AddressRange, String)>,
}

impl Translator {
    /// The translator for every `(old, new)` pair of a swap.
    pub(super) fn new(states: &[CellState]) -> Self {
        let mut names = Vec::new();
        let mut symbols = Vec::new();
        for state in states {
            for range in state.old.address_ranges() {
                names.push((range, state.old.name.clone()));
            }
            let old = named_symbols(&state.old, state.old_object.as_ref());
            let new = named_symbols(&state.new, state.new_object.as_ref());
            for (path, start, size, function) in old {
                if let Some((_, new_start, new_size, _)) = new.iter().find(|(new_path, ..)| *new_path == path) {
                    symbols.push((start, size, function, *new_start, *new_size));
                }
            }
        }
        symbols.sort_unstable();
        Self { symbols, names }
    }

    /// The new address for `value`, an address inside an old cell: the same offset into the new equivalent of the
    /// old symbol containing it, for a data object of unchanged size, or for the start of a function.
    fn translate(&self, value: usize) -> Option<usize> {
        let index = self.symbols.partition_point(|&(start, ..)| start <= value).checked_sub(1)?;
        let (start, size, function, new_start, new_size) = self.symbols[index];
        let offset = value - start;
        let inside = offset < size.max(1);
        let allowed = if function { offset == 0 } else { size == new_size };
        (inside && allowed).then_some(new_start + offset)
    }

    fn old_cell_of(&self, value: usize) -> Option<&str> {
        let address = VirtualAddress::try_new(value).ok()?;
        self.names.iter().find(|(range, _)| range.contains(address)).map(|(_, name)| name.as_str())
    }

    /// Translates every 8-byte-aligned word of `object` whose value points into an old cell.
    fn translate_words(&self, object: ObjectLocation, done: &mut Transferred) {
        let start = object.address.value().next_multiple_of(8);
        let end = object.address.value() + object.size;
        let mut word = start;
        while word + 8 <= end {
            // SAFETY: the word lies inside the new cell's data object, which is mapped and writable, and 8-byte
            // aligned; every other CPU is stopped.
            let value = unsafe { core::ptr::read_volatile(word as *const usize) };
            if let Some(cell) = VirtualAddress::try_new(value).ok().and_then(|_| self.old_cell_of(value)) {
                match self.translate(value) {
                    Some(new) => {
                        // SAFETY: as above.
                        unsafe { core::ptr::write_volatile(word as *mut usize, new) };
                        done.pointers_translated += 1;
                    }
                    None => {
                        let location = VirtualAddress::new(word);
                        let what = format!("copied static holds {value:#x} in old {cell}, with no equivalent");
                        done.untranslated.push((value, Pin::Pointer { location, what }));
                    }
                }
            }
            word += 8;
        }
    }
}

/// Every named symbol of a loaded cell with a loaded section: (hash-free path, address, size, function?).
fn named_symbols(cell: &LoadedCell, object: Option<&ObjectFile<'static>>) -> Vec<(String, usize, usize, bool)> {
    let Some(object) = object else { return Vec::new() };
    let mut symbols = Vec::new();
    for symbol in object.symbols() {
        let SymbolDefinition::Section(section) = symbol.definition else { continue };
        if symbol.name.is_empty() {
            continue;
        }
        let Some(loaded) = cell.loaded_section(section.as_usize()) else { continue };
        let function = symbol.symbol_type == cell_loader::SymbolType::Function;
        let size = usize::try_from(symbol.size).unwrap_or(0);
        symbols.push((hash_free_name(symbol.name), loaded.address().value() + symbol.value as usize, size, function));
    }
    symbols
}
