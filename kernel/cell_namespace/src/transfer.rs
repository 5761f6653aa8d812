//! State transfer during a swap: the writable data objects of a cell, and the [`StateTransfer`] handle a new cell's
//! optional `cell_state_transfer` function receives.
//!
//! A cell's *state* is every named object (a symbol with a size, local symbols included) in a writable data section
//! (`.data*` other than `.data.rel.ro*`, and `.bss*`). `.data.rel.ro*` is writable in the object file only so that
//! the loader can relocate it (vtables, tables of pointers): it is never written at run time, so it is code-like and
//! not state. Objects are matched by hash-free demangled path (`task::registry::TASKS`), which two builds of the
//! same crate share.

use alloc::collections::BTreeSet;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use cell_loader::{ObjectFile, SectionKind, SymbolDefinition};
use memory_structs::VirtualAddress;

use crate::LoadedCell;
use crate::cell::hash_free_name;

/// Where one data object of a cell lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectLocation {
    /// Its first byte.
    pub address: VirtualAddress,
    /// Its size in bytes.
    pub size: usize,
}

/// One named writable data object of a loaded cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DataObject {
    /// Its hash-free demangled path.
    pub(crate) path: String,
    pub(crate) location: ObjectLocation,
}

/// Whether an ELF section of this kind and name holds run-time state (see the module documentation).
pub(crate) fn is_state_section(kind: SectionKind, name: &str) -> bool {
    match kind {
        SectionKind::Bss => true,
        SectionKind::Data => !name.starts_with(".data.rel.ro"),
        _ => false,
    }
}

/// `cell`'s object file, parsed again; `None` for the base image. It parsed when the cell was loaded, and its
/// bytes are `'static` and never written, so it parses again.
pub(crate) fn parse_again(cell: &LoadedCell) -> Option<ObjectFile<'static>> {
    ObjectFile::parse(cell.object_bytes?).ok()
}

/// The named writable data objects of `cell` (whose object file is `object`), sorted by address, one per address
/// range (aliases at the same address keep the first name). Objects of size 0 are skipped (nothing to copy).
pub(crate) fn data_objects(cell: &LoadedCell, object: Option<&ObjectFile<'static>>) -> Vec<DataObject> {
    let Some(object) = object else { return Vec::new() };
    data_objects_of(object, |section| cell.loaded_section(section.as_usize()).map(|loaded| loaded.address()))
}

/// The named writable data objects of `object`, whose ELF section `index` was loaded at `address_of(index)`.
pub(crate) fn data_objects_of(
    object: &ObjectFile<'_>,
    address_of: impl Fn(cell_loader::SectionIndex) -> Option<VirtualAddress>,
) -> Vec<DataObject> {
    let mut objects: Vec<DataObject> = Vec::new();
    for symbol in object.symbols() {
        let SymbolDefinition::Section(index) = symbol.definition else { continue };
        let Some(section) = object.section(index) else { continue };
        let named = !symbol.name.is_empty() && symbol.size > 0;
        let object_like =
            matches!(symbol.symbol_type, cell_loader::SymbolType::Object | cell_loader::SymbolType::NoType);
        if !named || !object_like || !is_state_section(section.kind, section.name) {
            continue;
        }
        let Some(start) = address_of(index) else { continue };
        let Ok(address) = VirtualAddress::try_new(start.value().wrapping_add(symbol.value as usize)) else { continue };
        let Ok(size) = usize::try_from(symbol.size) else { continue };
        objects.push(DataObject { path: hash_free_name(symbol.name), location: ObjectLocation { address, size } });
    }
    objects.sort_by_key(|object| object.location.address);
    objects.dedup_by_key(|object| object.location.address);
    objects
}

/// What a new cell's `cell_state_transfer` function gets: both cells, their data objects by path, and a way to
/// say which old objects it carried over itself.
///
/// It runs inside the swap's quiesced phase, after the default copy (so every object with an equal path and size
/// already holds the old value), before any dependent is patched. It may allocate (the heap lock is IRQ-safe) but
/// must not log, print or take a namespace lock, and it must not write the old cell's objects (a failed swap
/// leaves the old cell running).
pub struct StateTransfer<'a> {
    pub(crate) old: &'a LoadedCell,
    pub(crate) new: &'a LoadedCell,
    pub(crate) old_objects: &'a [DataObject],
    pub(crate) new_objects: &'a [DataObject],
    pub(crate) transferred: RefCell<BTreeSet<String>>,
    pub(crate) after_commit: RefCell<Vec<CommitAction>>,
}

/// An action a transfer function defers until the swap has committed ([`StateTransfer::after_commit`]).
pub type CommitAction = alloc::boxed::Box<dyn FnOnce()>;

impl StateTransfer<'_> {
    /// The cell being replaced.
    pub fn old_cell(&self) -> &LoadedCell {
        self.old
    }

    /// Its replacement (loaded, not yet published).
    pub fn new_cell(&self) -> &LoadedCell {
        self.new
    }

    /// The old cell's data object with hash-free demangled path `path` (e.g. `task::registry::TASKS`).
    pub fn old_object(&self, path: &str) -> Option<ObjectLocation> {
        find_object(self.old_objects, path)
    }

    /// The new cell's data object with hash-free demangled path `path`.
    pub fn new_object(&self, path: &str) -> Option<ObjectLocation> {
        find_object(self.new_objects, path)
    }

    /// Records that the old object `path` was carried over (or deliberately dropped) by the transfer function, so
    /// the swap does not refuse it as dropped state.
    pub fn mark_transferred(&self, path: &str) {
        self.transferred.borrow_mut().insert(path.to_string());
    }

    /// Defers `action` until the swap can no longer fail: it runs inside the same quiesced phase, on the same CPU,
    /// right after every dependent was patched (in the order registered, cells in pair order), and is dropped
    /// unrun if the swap aborts. For effects outside the new cell, such as re-registering an interrupt handler or
    /// a hook at this copy's functions: done in the transfer function itself, an abort would leave them pointing
    /// into the discarded new cell. The same rules apply as to the transfer function (no lock others may hold, no
    /// logging).
    pub fn after_commit(&self, action: CommitAction) {
        self.after_commit.borrow_mut().push(action);
    }
}

fn find_object(objects: &[DataObject], path: &str) -> Option<ObjectLocation> {
    objects.iter().find(|object| object.path == path).map(|object| object.location)
}

/// The signature of a cell's `cell_state_transfer` function.
pub(crate) type StateTransferFunction = fn(&StateTransfer<'_>) -> Result<(), String>;
