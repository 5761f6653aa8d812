//! Error types of the namespace operations: one per operation.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use cell_loader::{ParseError, RelocationError};

use crate::MemoryError;

/// Why loading a cell failed. After any of these, the namespace is exactly as it was before the load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// No manifest entry (in this namespace or its parents) for the cell.
    NotInManifest {
        /// The cell name asked for.
        cell: String,
    },
    /// The manifest names an object file that no object directory (this namespace's or its parents') holds.
    ObjectNotFound {
        /// The cell.
        cell: String,
        /// The object file name.
        object_file: String,
    },
    /// The cell's object file is malformed or uses something the loader does not support.
    Parse {
        /// The cell.
        cell: String,
        /// What is wrong (names the section, symbol or relocation type).
        error: ParseError,
    },
    /// A section does not fit in memory (its size or the region size overflows).
    SectionTooLarge {
        /// The cell.
        cell: String,
        /// The section name.
        section: String,
    },
    /// The memory provider failed, or gave a region that is too small, misaligned or not writable.
    Memory {
        /// The cell.
        cell: String,
        /// What failed.
        error: MemoryError,
    },
    /// A symbol the cell needs is defined nowhere: not in the cell, not in the namespace or its parents, and not by
    /// any cell the manifest names.
    UndefinedSymbol {
        /// The cell that needs it.
        cell: String,
        /// The section whose relocation refers to it.
        section: String,
        /// The mangled symbol name.
        symbol: String,
    },
    /// A relocation could not be applied (unsupported type, or the value overflows its field).
    Relocation {
        /// The cell being relocated.
        cell: String,
        /// The section holding the place.
        section: String,
        /// The symbol the relocation refers to (a section name for section symbols).
        symbol: String,
        /// The arithmetic error (names the relocation type).
        error: RelocationError,
    },
    /// The cell exports a (non-weak) global symbol that another loaded or staged cell already exports.
    DuplicateSymbol {
        /// The cell being loaded.
        cell: String,
        /// The mangled symbol name.
        symbol: String,
        /// The cell that already exports it.
        existing_cell: String,
    },
    /// During a swap, a new cell needs a symbol only the cell it replaces provides.
    BindsToReplacedCell {
        /// The cell being staged.
        cell: String,
        /// The mangled symbol name.
        symbol: String,
        /// The cell being replaced.
        replaced_cell: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInManifest { cell } => write!(f, "cell {cell}: not in the manifest"),
            Self::ObjectNotFound { cell, object_file } => write!(f, "cell {cell}: object file {object_file} not found"),
            Self::Parse { cell, error } => write!(f, "cell {cell}: {error}"),
            Self::SectionTooLarge { cell, section } => write!(f, "cell {cell}: section {section} is too large"),
            Self::Memory { cell, error } => write!(f, "cell {cell}: {error}"),
            Self::UndefinedSymbol { cell, section, symbol } => {
                write!(f, "cell {cell}: section {section} needs undefined symbol {symbol}")
            }
            Self::Relocation { cell, section, symbol, error } => {
                write!(f, "cell {cell}: section {section}, symbol {symbol}: {error}")
            }
            Self::DuplicateSymbol { cell, symbol, existing_cell } => {
                write!(f, "cell {cell}: symbol {symbol} is already exported by cell {existing_cell}")
            }
            Self::BindsToReplacedCell { cell, symbol, replaced_cell } => {
                write!(f, "cell {cell}: symbol {symbol} is only provided by {replaced_cell}, which is being replaced")
            }
        }
    }
}

/// Why the base image could not be added to a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseImageError {
    /// A cell with that name is already loaded.
    AlreadyLoaded {
        /// The cell name.
        cell: String,
    },
    /// Two base symbols, or a base symbol and a loaded cell's symbol, have the same name.
    DuplicateSymbol {
        /// The mangled symbol name.
        symbol: String,
    },
}

impl fmt::Display for BaseImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyLoaded { cell } => write!(f, "cell {cell} is already loaded"),
            Self::DuplicateSymbol { symbol } => write!(f, "base symbol {symbol} is defined twice"),
        }
    }
}

/// Why [`CellNamespace::find_function`](crate::CellNamespace::find_function) found nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FindFunctionError {
    /// The cell could not be loaded.
    Load(LoadError),
    /// The cell exports no function (or, for `find_data`, no data object) with that hash-free demangled path.
    NotFound {
        /// The cell.
        cell: String,
        /// The path asked for, e.g. `hello::main`.
        path: String,
    },
}

impl fmt::Display for FindFunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Load(error) => error.fmt(f),
            Self::NotFound { cell, path } => write!(f, "cell {cell} exports no {path}"),
        }
    }
}

/// The caller could not quiesce the other CPUs; the swap (or reclaim) changed nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuiesceError {
    /// Why (e.g. which CPUs did not acknowledge the stop request).
    pub reason: String,
}

impl fmt::Display for QuiesceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not stop the other CPUs: {}", self.reason)
    }
}

/// Why a swap failed. Every variant except [`SwapError::Patch`] leaves the namespace and all code unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwapError {
    /// The old cell is not loaded in this namespace.
    OldCellNotLoaded {
        /// The cell name.
        cell: String,
    },
    /// The base image cannot be swapped.
    BaseImage {
        /// The cell name.
        cell: String,
    },
    /// A cell appears twice as old or twice as new.
    DuplicateCell {
        /// The cell name.
        cell: String,
    },
    /// A new cell's name is already loaded (and is not one of the cells being replaced).
    NewCellAlreadyLoaded {
        /// The cell name.
        cell: String,
    },
    /// Staging a new cell failed.
    Stage(LoadError),
    /// A dependent of the old cell uses a symbol the new cell does not provide (compared by hash-free name).
    MissingSymbol {
        /// The cell being replaced.
        old_cell: String,
        /// Its replacement.
        new_cell: String,
        /// The symbol, as its hash-free demangled name.
        symbol: String,
        /// The dependent section that uses it.
        dependent: String,
    },
    /// Re-applying a dependent's relocation with the new symbol address fails (e.g. overflow).
    Relocation {
        /// The dependent section holding the place.
        dependent: String,
        /// The new symbol (mangled).
        symbol: String,
        /// The arithmetic error (names the relocation type).
        error: RelocationError,
    },
    /// The other CPUs could not be quiesced: nothing was patched, the staged cells were dropped.
    Quiesce(QuiesceError),
    /// The old cell has state (named objects in writable `.data`/`.bss`) that the new cell has no object of the
    /// same path and size for, and its transfer function (if any) did not mark as transferred. Refused unless the
    /// swap asks for a fresh start ([`SwapOptions::fresh`](crate::SwapOptions::fresh)).
    StateDropped {
        /// The cell being replaced.
        cell: String,
        /// The objects that would be dropped, as hash-free paths (with their sizes, and why).
        symbols: Vec<String>,
    },
    /// An exported symbol that the new cell also exports (by hash-free name) changed kind: a function became data
    /// or back, or a data object changed size.
    ExportMismatch {
        /// The cell being replaced.
        cell: String,
        /// The symbol, as its hash-free demangled name.
        symbol: String,
        /// What it is in the old cell.
        old: crate::ExportKind,
        /// What it is in the new cell.
        new: crate::ExportKind,
    },
    /// The new cell's `cell_state_transfer` function failed (or is not a function); nothing was changed.
    StateTransfer {
        /// The new cell.
        cell: String,
        /// The function's error, or what is wrong with the symbol.
        reason: String,
    },
    /// Patching a dependent failed during the commit; patches already made were restored (best effort) and the
    /// namespace is unchanged, but if restoring failed too, the dependent's code may be inconsistent.
    Patch {
        /// The dependent section.
        dependent: String,
        /// The provider's error.
        error: MemoryError,
    },
}

impl fmt::Display for SwapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OldCellNotLoaded { cell } => write!(f, "cell {cell} is not loaded in this namespace"),
            Self::BaseImage { cell } => write!(f, "cell {cell} is the base image and cannot be swapped"),
            Self::DuplicateCell { cell } => write!(f, "cell {cell} appears twice in the swap"),
            Self::NewCellAlreadyLoaded { cell } => write!(f, "new cell {cell} is already loaded"),
            Self::Stage(error) => write!(f, "staging failed: {error}"),
            Self::MissingSymbol { old_cell, new_cell, symbol, dependent } => {
                let dependent = crate::hash_free_name(dependent);
                write!(f, "{new_cell} does not provide symbol {symbol}, which {dependent} uses from {old_cell}")
            }
            Self::Relocation { dependent, symbol, error } => write!(f, "rewriting {dependent} for {symbol}: {error}"),
            Self::Quiesce(error) => error.fmt(f),
            Self::StateDropped { cell, symbols } => write!(
                f,
                "cell {cell} has state the new cell would drop: {} (carry it over in cell_state_transfer, or swap \
                 --fresh)",
                symbols.join(", ")
            ),
            Self::ExportMismatch { cell, symbol, old, new } => {
                write!(f, "cell {cell}: {symbol} was {old} and would become {new}")
            }
            Self::StateTransfer { cell, reason } => write!(f, "state transfer into {cell} failed: {reason}"),
            Self::Patch { dependent, error } => write!(f, "patching {dependent}: {error}"),
        }
    }
}
