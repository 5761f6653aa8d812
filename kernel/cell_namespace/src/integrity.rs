//! Integrity of a loaded cell's read-only sections: checked against the object file it was loaded from, and
//! repaired in place.
//!
//! A transient fault can flip bits of a cell's code or constants (text, read-only data, `.eh_frame`,
//! `.gcc_except_table`); every later call then runs the damaged bytes, so unwinding the one task that faulted does
//! not recover the system. The loaded cell keeps its object file's bytes, so the bytes each read-only section must
//! hold can be rebuilt at any time:
//!
//! 1. Parse the object again (the parser validates every index, so a damaged object is an `Err`, never a panic).
//! 2. For each loaded read-only section, start from its bytes in the object and re-apply each relocation whose
//!    place lies in it, with the symbol's address as it is *now*: a symbol of this cell is where the cell's own
//!    section was placed; a symbol of another cell is where the section's dependency edge points (a swap moves
//!    those edges when it re-links a dependent, so this follows swaps). A relocation whose symbol can be located
//!    neither way (a weak symbol bound to nothing, a self-resolved undefined symbol) leaves its field unverified.
//! 3. Compare with memory, byte by byte; each run of differing bytes is a [`DamagedRange`].
//! 4. To repair, write the expected bytes of each damaged range back through [`LoadedSection::patch_bytes`]
//!    (the provider lifts the write protection for the write).
//!
//! Concurrency: [`CellNamespace::check_cell`] holds the transaction locks of the cell's namespace and of each
//! ancestor for the whole check, so no load or swap re-links any of the compared places meanwhile (a swap patches
//! dependents only under those locks). Data and bss are not checked: their bytes change by design.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use cell_loader::{ObjectFile, ParseError, RelocationType, SectionKind, SymbolDefinition, compute_relocation};
use memory_structs::VirtualAddress;

use crate::MemoryError;
use crate::cell::{LoadedCell, LoadedSection};
use crate::namespace::CellNamespace;

/// Polls of a taken lock before the check gives up on it (see [`IntegrityError::Busy`]): bounded, because the
/// check runs on fault paths where the holder may be the faulted task itself.
const LOCK_ATTEMPTS: usize = 1 << 20;

/// Takes `mutex` within [`LOCK_ATTEMPTS`] polls.
fn try_lock_within<T>(mutex: &crate::locks::IrqSafeMutex<T>) -> Option<irq_safe::IrqSafeMutexGuard<'_, T>> {
    (0..LOCK_ATTEMPTS).find_map(|_| {
        let guard = mutex.try_lock();
        if guard.is_none() {
            core::hint::spin_loop();
        }
        guard
    })
}

/// Two damaged runs closer than this many bytes are reported (and repaired) as one range.
const MERGE_GAP: usize = 8;

/// What to do with the damage [`CellNamespace::check_cell`] finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntegrityMode {
    /// Only report it.
    Check,
    /// Report it and write the expected bytes back.
    Repair,
}

/// One run of bytes of a read-only section that differ from what the object file and the relocations give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedRange {
    /// The section's name (its global symbol, or its ELF section name).
    pub section: String,
    /// The section's kind.
    pub kind: SectionKind,
    /// The first damaged byte's address.
    pub address: VirtualAddress,
    /// Offset of the first damaged byte from the section start, in bytes.
    pub offset: usize,
    /// Bytes from the first to the last damaged byte of the run, inclusive.
    pub length: usize,
}

/// The outcome of one check of a cell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Read-only sections compared.
    pub sections: usize,
    /// Bytes compared.
    pub bytes: usize,
    /// Bytes of relocation fields that could not be verified (symbol not located; see the module docs).
    pub unverified_bytes: usize,
    /// The damaged runs found (empty: intact).
    pub damaged: Vec<DamagedRange>,
    /// Whether the damaged runs were written back ([`IntegrityMode::Repair`]).
    pub repaired: bool,
}

impl IntegrityReport {
    /// Whether no damage was found.
    pub fn is_intact(&self) -> bool {
        self.damaged.is_empty()
    }

    /// The damaged bytes in total (sum of the ranges' lengths).
    pub fn damaged_bytes(&self) -> usize {
        self.damaged.iter().map(|range| range.length).sum()
    }
}

/// Why a cell could not be checked or repaired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntegrityError {
    /// No cell of this name is loaded in this namespace (parents are not searched).
    NotLoaded {
        /// The cell name asked for.
        cell: String,
    },
    /// A transaction lock (a load or swap in progress, or left taken by a faulted holder) or the cell table stayed
    /// taken for the bounded wait: nothing was checked.
    Busy,
    /// The cell is the statically linked base image, which keeps no object file to compare with.
    BaseImage {
        /// The cell name.
        cell: String,
    },
    /// The cell's object file no longer parses (its bytes were damaged too).
    Parse {
        /// The cell.
        cell: String,
        /// The parser's error.
        error: ParseError,
    },
    /// Writing a damaged range back failed; ranges before it were repaired.
    Patch {
        /// The cell.
        cell: String,
        /// The section.
        section: String,
        /// The provider's error.
        error: MemoryError,
    },
}

impl fmt::Display for IntegrityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLoaded { cell } => write!(f, "cell {cell} is not loaded in this namespace"),
            Self::Busy => write!(f, "a load or swap holds the namespace: not checked"),
            Self::BaseImage { cell } => write!(f, "cell {cell} is the base image: no object file to compare with"),
            Self::Parse { cell, error } => write!(f, "the object file of cell {cell} does not parse: {error}"),
            Self::Patch { cell, section, error } => {
                write!(f, "writing back section {section} of cell {cell} failed: {error}")
            }
        }
    }
}

/// Whether sections of `kind` are read-only once loaded (and so must equal their rebuilt bytes).
fn is_read_only(kind: SectionKind) -> bool {
    matches!(kind, SectionKind::Text | SectionKind::ReadOnlyData | SectionKind::EhFrame | SectionKind::GccExceptTable)
}

/// The bytes section `section` (ELF index `elf_index` of `object`) must hold, and which of them are verifiable
/// (`false`: a relocation field whose symbol could not be located).
fn expected_bytes(
    cell: &LoadedCell,
    object: &ObjectFile<'_>,
    elf_index: usize,
    section: &LoadedSection,
) -> Option<(Vec<u8>, Vec<bool>)> {
    let source = object.sections().get(elf_index)?;
    let mut expected = source.data.get(..section.size_in_bytes)?.to_vec();
    let mut known = vec![true; expected.len()];
    // Where each place of this section bound to another cell points now: offset -> S.
    // A dependencies lock that stays taken (its holder faulted inside it) leaves the cross-cell fields unverified.
    let edges: Option<BTreeMap<usize, u64>> = try_lock_within(&section.dependencies).map(|dependencies| {
        dependencies
            .iter()
            .map(|edge| {
                let symbol = (edge.section.address.value() as u64).wrapping_add(edge.relocation.symbol_offset as u64);
                (edge.relocation.offset, symbol)
            })
            .collect()
    });
    let relocations =
        object.relocation_sections().iter().filter(|relocations| relocations.target.as_usize() == elf_index);
    for relocation in relocations.flat_map(|relocations| object.relocations(relocations).iter()) {
        let Some(width) = relocation.relocation_type.width_in_bytes() else { continue };
        if relocation.relocation_type == RelocationType::None || width == 0 {
            continue;
        }
        let offset = relocation.offset as usize;
        let Some(field) = expected.get_mut(offset..offset + width) else { continue };
        let place = (section.address.value() as u64).wrapping_add(relocation.offset);
        let symbol = object.symbol(relocation.symbol).and_then(|symbol| match symbol.definition {
            SymbolDefinition::Section(index) => cell
                .loaded_section(index.as_usize())
                .map(|defining| (defining.address.value() as u64).wrapping_add(symbol.value)),
            SymbolDefinition::Absolute => Some(symbol.value),
            SymbolDefinition::Undefined => edges.as_ref().and_then(|edges| edges.get(&offset).copied()),
        });
        let value = symbol
            .and_then(|symbol| compute_relocation(relocation.relocation_type, place, symbol, relocation.addend).ok());
        match value {
            Some(value) if value.as_bytes().len() == width => field.copy_from_slice(value.as_bytes()),
            _ => known[offset..offset + width].fill(false),
        }
    }
    Some((expected, known))
}

/// The runs of `actual` that differ from `expected` where `known`, merged across gaps below [`MERGE_GAP`], as
/// `(offset, length)`.
fn damaged_runs(actual: &[u8], expected: &[u8], known: &[bool]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let differs = actual.iter().zip(expected).zip(known).enumerate();
    for (offset, ((actual, expected), known)) in differs {
        if !*known || actual == expected {
            continue;
        }
        match runs.last_mut() {
            Some((start, length)) if offset - (*start + *length) < MERGE_GAP => *length = offset - *start + 1,
            _ => runs.push((offset, 1)),
        }
    }
    runs
}

impl LoadedCell {
    /// Checks every read-only section of this cell against its object file (see the module docs) and, in
    /// [`IntegrityMode::Repair`], writes the damaged ranges back. The caller holds the transaction locks that keep
    /// relocations from being re-linked meanwhile ([`CellNamespace::check_cell`] does).
    fn check_read_only(&self, mode: IntegrityMode) -> Result<IntegrityReport, IntegrityError> {
        let cell = || self.name.clone();
        let bytes = self.object_bytes.ok_or_else(|| IntegrityError::BaseImage { cell: cell() })?;
        let object = ObjectFile::parse(bytes).map_err(|error| IntegrityError::Parse { cell: cell(), error })?;
        let mut report = IntegrityReport::default();
        for (elf_index, slot) in self.section_slots.iter().enumerate() {
            let Some(section) = slot.and_then(|slot| self.sections.get(slot)) else { continue };
            if !is_read_only(section.kind) || section.memory.is_none() {
                continue;
            }
            let Some((expected, known)) = expected_bytes(self, &object, elf_index, section) else { continue };
            // SAFETY: the section's bytes lie in its memory region, mapped readable while the section (held here
            // through `self`) is alive; read-only sections change only through `patch_bytes`, under the
            // transaction locks the caller holds, and a concurrent bit flip only makes the copy stale.
            let actual = unsafe { core::slice::from_raw_parts(section.address.value() as *const u8, expected.len()) };
            report.sections += 1;
            report.bytes += expected.len();
            report.unverified_bytes += known.iter().filter(|known| !**known).count();
            for (offset, length) in damaged_runs(actual, &expected, &known) {
                if mode == IntegrityMode::Repair {
                    // SAFETY: writes back the bytes the loader wrote at load time (object bytes, relocations as
                    // linked now); code running the damaged bytes can only be helped by it.
                    unsafe { section.patch_bytes(offset, &expected[offset..offset + length]) }.map_err(|error| {
                        IntegrityError::Patch { cell: cell(), section: section.name.to_string(), error }
                    })?;
                }
                report.damaged.push(DamagedRange {
                    section: section.name.to_string(),
                    kind: section.kind,
                    address: VirtualAddress::try_new(section.address.value().wrapping_add(offset))
                        .unwrap_or(section.address),
                    offset,
                    length,
                });
            }
        }
        report.repaired = mode == IntegrityMode::Repair && !report.damaged.is_empty();
        Ok(report)
    }
}

/// One cell's outcome in [`CellNamespace::check_all_cells`]: its name and its report or error.
pub type CellIntegrity = (String, Result<IntegrityReport, IntegrityError>);

impl CellNamespace {
    /// Checks the read-only sections (text, read-only data, `.eh_frame`, `.gcc_except_table`) of cell `cell_name`,
    /// loaded in this namespace, against its object file, with every relocation re-computed as linked now; in
    /// [`IntegrityMode::Repair`] writes each damaged range back. Holds this namespace's and its ancestors'
    /// transaction locks meanwhile (waits a bounded time for a running load or swap, then gives up: the check
    /// runs on fault paths, where the holder may be the faulted task).
    ///
    /// # Errors
    /// [`IntegrityError`] as documented on its variants.
    pub fn check_cell(&self, cell_name: &str, mode: IntegrityMode) -> Result<IntegrityReport, IntegrityError> {
        let (_chain, _guards) = self.try_lock_chain(LOCK_ATTEMPTS).ok_or(IntegrityError::Busy)?;
        let cell = self.state.try_read().ok_or(IntegrityError::Busy)?.cells.get(cell_name).cloned();
        let cell = cell.ok_or_else(|| IntegrityError::NotLoaded { cell: cell_name.to_string() })?;
        cell.check_read_only(mode)
    }

    /// [`check_cell`](Self::check_cell) for every cell loaded in this namespace (not its parents) except the base
    /// image, sorted by name: a scrub.
    ///
    /// # Errors
    /// [`IntegrityError::Busy`] for the whole namespace if its locks stayed taken; otherwise per cell.
    pub fn check_all_cells(&self, mode: IntegrityMode) -> Result<Vec<CellIntegrity>, IntegrityError> {
        let (_chain, _guards) = self.try_lock_chain(LOCK_ATTEMPTS).ok_or(IntegrityError::Busy)?;
        let state = self.state.try_read().ok_or(IntegrityError::Busy)?;
        let cells: Vec<_> = state.cells.values().filter(|cell| !cell.is_base_image()).cloned().collect();
        drop(state);
        Ok(cells.into_iter().map(|cell| (cell.name.clone(), cell.check_read_only(mode))).collect())
    }
}
