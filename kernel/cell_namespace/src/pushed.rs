//! Objects pushed into a running system: a manifest entry derived from the object itself, stored under a new
//! version name so that `swap <cell> <new name>` can apply it.
//!
//! [`CellNamespace::add_pushed_object`] is the guest half of `make push` (the `push_receiver` cell calls it for each
//! valid frame). Unlike [`CellNamespace::add_object`], whose caller supplies the manifest entry, it derives the entry
//! from the object, so a host cannot describe an object as something it is not:
//! 1. parse the bytes as the loader would (ELF64, little-endian, `ET_REL`, x86-64, every table in range);
//! 2. its exported (global or weak, defined) symbols become the entry's `sym` list;
//! 3. every undefined non-weak symbol must be defined by a manifest cell or the symbol map (the base image
//!    included): those cells become its `dep` list; a symbol defined nowhere refuses the object;
//! 4. the name is `<cell>@<n>`, the smallest n >= 2 not taken (or `<cell>` itself if no such cell exists yet);
//! 5. the object and its entry are added together. A new version of a crate shares its mangled symbols with the
//!    older versions (one build, one crate hash), so symbols shared with entries *of the same crate* are allowed;
//!    the newest entry is the one the manifest then names for them (a later load of a not-yet-loaded dependent
//!    gets the newest version). A symbol of another crate's entry is refused.
//!
//! Any error leaves the directory and the manifest unchanged.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use cell_loader::{ObjectFile, ParseError, SymbolBinding, SymbolDefinition};

use crate::{CellKind, CellNamespace, Manifest, ManifestEntry};

/// Why a pushed object was not stored. The directory and the manifest are unchanged after each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushedObjectError {
    /// The cell name is empty or holds a character other than ASCII letters, digits, `_` and `-`.
    BadCellName {
        /// The name given.
        cell: String,
    },
    /// The manifest's cell of that name belongs to another crate.
    CrateMismatch {
        /// The cell name given.
        cell: String,
        /// The crate name given.
        crate_name: String,
        /// The crate the manifest says the cell is.
        manifest_crate: String,
    },
    /// The manifest's cell of that name is an application; only kernel cells can be pushed.
    Application {
        /// The cell name given.
        cell: String,
    },
    /// The bytes are not an object the loader accepts.
    Parse {
        /// The cell name given.
        cell: String,
        /// What is wrong.
        error: ParseError,
    },
    /// The object needs a symbol that no manifest cell, no loaded cell and not the base image defines.
    UnresolvedSymbol {
        /// The cell name given.
        cell: String,
        /// The mangled symbol.
        symbol: String,
    },
    /// The object exports a symbol that a cell of another crate already claims.
    DuplicateSymbol {
        /// The cell name given.
        cell: String,
        /// The mangled symbol.
        symbol: String,
        /// The cell that claims it.
        existing_cell: String,
    },
}

impl fmt::Display for PushedObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadCellName { cell } => write!(f, "bad cell name {cell:?}"),
            Self::CrateMismatch { cell, crate_name, manifest_crate } => {
                write!(f, "cell {cell} is crate {manifest_crate}, not {crate_name}")
            }
            Self::Application { cell } => write!(f, "cell {cell} is an application; only kernel cells can be pushed"),
            Self::Parse { cell, error } => write!(f, "object for {cell} rejected: {error}"),
            Self::UnresolvedSymbol { cell, symbol } => write!(
                f,
                "object for {cell} needs {symbol} ({:#}), which the running system does not define",
                rustc_demangle::demangle(symbol)
            ),
            Self::DuplicateSymbol { cell, symbol, existing_cell } => {
                write!(f, "object for {cell} exports {symbol}, already defined by cell {existing_cell}")
            }
        }
    }
}

/// Whether `cell` is a usable base name for pushed versions.
fn is_valid_cell_name(cell: &str) -> bool {
    !cell.is_empty() && cell.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// The first free version name for `cell`: `cell` itself if the manifest has no such cell, else `cell@n`.
fn version_name(manifest: &Manifest, cell: &str) -> String {
    if manifest.cell(cell).is_none() {
        return cell.to_string();
    }
    (2_usize..)
        .map(|version| format!("{cell}@{version}"))
        .find(|name| manifest.cell(name).is_none())
        .unwrap_or_else(|| format!("{cell}@new"))
}

impl CellNamespace {
    /// Stores object `bytes`, pushed from the host as a new version of kernel cell `cell` (crate `crate_name`),
    /// under a new version name, with a manifest entry derived from the object (see the module docs). Returns the
    /// entry stored (its `name` is what `swap` takes). Cells already loaded are not affected.
    ///
    /// `bytes` must start 8-byte aligned and live forever (the loader reads tables in place, and a loaded cell keeps
    /// referring to its object).
    ///
    /// # Errors
    /// [`PushedObjectError`]; the directory and the manifest are then unchanged.
    pub fn add_pushed_object(
        &self,
        cell: &str,
        crate_name: &str,
        bytes: &'static [u8],
    ) -> Result<ManifestEntry, PushedObjectError> {
        if !is_valid_cell_name(cell) {
            return Err(PushedObjectError::BadCellName { cell: cell.to_string() });
        }
        let object =
            ObjectFile::parse(bytes).map_err(|error| PushedObjectError::Parse { cell: cell.to_string(), error })?;
        // The transaction lock serializes every writer of the manifest and the directory; the checks run on a
        // snapshot, outside the interrupt-safe manifest lock, and the new manifest is swapped in at the end.
        let _transaction = self.transaction.lock();
        let manifest = self.manifest.read().clone();
        if let Some(existing) = manifest.cell(cell) {
            if existing.kind == CellKind::Application {
                return Err(PushedObjectError::Application { cell: cell.to_string() });
            }
            if existing.crate_name != crate_name {
                return Err(PushedObjectError::CrateMismatch {
                    cell: cell.to_string(),
                    crate_name: crate_name.to_string(),
                    manifest_crate: existing.crate_name.clone(),
                });
            }
        }
        let symbols: BTreeSet<String> = object.exported_symbols().map(|(_, symbol)| symbol.name.to_string()).collect();
        for symbol in &symbols {
            let owner = manifest.defining_cell(symbol).filter(|owner| owner.crate_name != crate_name);
            if let Some(owner) = owner {
                return Err(PushedObjectError::DuplicateSymbol {
                    cell: cell.to_string(),
                    symbol: symbol.clone(),
                    existing_cell: owner.name.clone(),
                });
            }
        }
        let dependencies = self.dependencies_of(&object, &manifest, cell)?;
        let name = version_name(&manifest, cell);
        let entry = ManifestEntry {
            object_file: format!("k-{name}.o"),
            name,
            kind: CellKind::Kernel,
            crate_name: crate_name.to_string(),
            dependencies,
            symbols: symbols.into_iter().collect(),
        };
        let mut entries = manifest.entries().to_vec();
        entries.push(entry.clone());
        let updated = Arc::new(Manifest::from_entries(entries));
        // Both published together (lock order: manifest, then directory), as in `add_object`.
        let mut published = self.manifest.write();
        self.directory.write().insert(&entry.object_file, bytes);
        *published = updated;
        drop(published);
        log::info!(
            "namespace {}: stored pushed object {} for cell {} ({} bytes, {} symbols, deps {})",
            self.name(),
            entry.object_file,
            entry.name,
            bytes.len(),
            entry.symbols.len(),
            entry.dependencies.join(",")
        );
        Ok(entry)
    }

    /// The cells that define `object`'s undefined non-weak symbols: manifest cells, else the owners of symbol-map
    /// entries (the base image among them); sorted, without duplicates.
    fn dependencies_of(
        &self,
        object: &ObjectFile<'_>,
        manifest: &Manifest,
        cell: &str,
    ) -> Result<Vec<String>, PushedObjectError> {
        let mut dependencies = BTreeSet::new();
        for symbol in object.symbols() {
            let needed = symbol.definition == SymbolDefinition::Undefined
                && !symbol.name.is_empty()
                && symbol.binding != SymbolBinding::Weak;
            if !needed {
                continue;
            }
            let definer = match manifest.defining_cell(symbol.name) {
                Some(entry) => Some(entry.name.clone()),
                None => self
                    .lookup_symbol(symbol.name)
                    .and_then(|found| found.section.parent_cell())
                    .map(|owner| owner.name.clone()),
            };
            let definer = definer.ok_or_else(|| PushedObjectError::UnresolvedSymbol {
                cell: cell.to_string(),
                symbol: symbol.name.to_string(),
            })?;
            dependencies.insert(definer);
        }
        Ok(dependencies.into_iter().collect())
    }
}
