//! The cell manifest: which object file holds which cell, and which cell defines which global symbol.
//!
//! Text format (one directive per line; `#` starts a comment line; blank lines are ignored):
//! ```text
//! cell <cell_name> <kernel|application> <object_file_name> <crate_name>
//! dep <cell_name>          # zero or more: cells whose symbols this cell's object uses (may be nano_core)
//! sym <mangled_symbol>     # zero or more: global symbols this cell's object defines
//! ```
//! `dep` and `sym` lines belong to the preceding `cell` line.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Whether a cell belongs to the kernel or is an application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CellKind {
    /// A kernel cell (object files named `k-<crate>.o`).
    Kernel,
    /// An application (object files named `a-<app>.o`).
    Application,
}

impl fmt::Display for CellKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CellKind::Kernel => "kernel",
            CellKind::Application => "application",
        })
    }
}

/// One `cell` line of the manifest with its `dep` and `sym` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// The cell name.
    pub name: String,
    /// Kernel cell or application.
    pub kind: CellKind,
    /// The object file's name in the object directory, e.g. `k-captain.o`.
    pub object_file: String,
    /// The crate name (the `[lib] name`), the first path segment of its demangled symbols.
    pub crate_name: String,
    /// Cells whose symbols the object uses.
    pub dependencies: Vec<String>,
    /// Global symbols the object defines (mangled).
    pub symbols: Vec<String>,
}

/// A parsed manifest with indices by cell name and by symbol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    entries: Vec<ManifestEntry>,
    by_name: BTreeMap<String, usize>,
    /// Hashed: a load asks it for each symbol the symbol maps lack (mangled names share long prefixes).
    by_symbol: hashbrown::HashMap<String, usize>,
}

/// What is wrong with one manifest line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestErrorKind {
    /// The first word is not `cell`, `dep` or `sym`.
    UnknownDirective(String),
    /// A `dep` or `sym` line before any `cell` line.
    NoCurrentCell,
    /// Too few words; names the missing field.
    MissingField(&'static str),
    /// Too many words; holds the first extra one.
    ExtraField(String),
    /// The kind is neither `kernel` nor `application`.
    UnknownKind(String),
    /// A second `cell` line with the same name.
    DuplicateCell(String),
    /// A second definition of a symbol; holds the symbol and the cell that defined it first.
    DuplicateSymbol {
        /// The symbol.
        symbol: String,
        /// The cell whose `sym` line came first.
        first_cell: String,
    },
}

/// A manifest line the parser rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// The line number, counting from 1.
    pub line: usize,
    /// What is wrong with it.
    pub kind: ManifestErrorKind,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "manifest line {}: ", self.line)?;
        match &self.kind {
            ManifestErrorKind::UnknownDirective(word) => write!(f, "unknown directive `{word}`"),
            ManifestErrorKind::NoCurrentCell => f.write_str("`dep`/`sym` before any `cell` line"),
            ManifestErrorKind::MissingField(field) => write!(f, "missing {field}"),
            ManifestErrorKind::ExtraField(word) => write!(f, "unexpected `{word}`"),
            ManifestErrorKind::UnknownKind(kind) => write!(f, "unknown cell kind `{kind}`"),
            ManifestErrorKind::DuplicateCell(name) => write!(f, "cell `{name}` listed twice"),
            ManifestErrorKind::DuplicateSymbol { symbol, first_cell } => {
                write!(f, "symbol `{symbol}` already defined by cell `{first_cell}`")
            }
        }
    }
}

impl Manifest {
    /// An empty manifest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the manifest text.
    ///
    /// # Errors
    /// The first bad line as a [`ManifestError`] with its 1-based line number.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let mut manifest = Self::new();
        for (number, line) in text.lines().enumerate() {
            let line_number = number + 1;
            let error = |kind| ManifestError { line: line_number, kind };
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let mut words = trimmed.split_whitespace();
            let directive = words.next().unwrap_or_default();
            let mut field = |name: &'static str| words.next().ok_or(error(ManifestErrorKind::MissingField(name)));
            match directive {
                "cell" => {
                    let name = field("cell name")?;
                    let kind = match field("cell kind")? {
                        "kernel" => CellKind::Kernel,
                        "application" => CellKind::Application,
                        other => return Err(error(ManifestErrorKind::UnknownKind(other.to_string()))),
                    };
                    let object_file = field("object file name")?;
                    let crate_name = field("crate name")?;
                    let entry = ManifestEntry {
                        name: name.to_string(),
                        kind,
                        object_file: object_file.to_string(),
                        crate_name: crate_name.to_string(),
                        dependencies: Vec::new(),
                        symbols: Vec::new(),
                    };
                    if manifest.by_name.contains_key(name) {
                        return Err(error(ManifestErrorKind::DuplicateCell(name.to_string())));
                    }
                    manifest.by_name.insert(entry.name.clone(), manifest.entries.len());
                    manifest.entries.push(entry);
                }
                "dep" | "sym" => {
                    let value = field(if directive == "dep" { "cell name" } else { "symbol" })?.to_string();
                    let index = manifest.entries.len().checked_sub(1).ok_or(error(ManifestErrorKind::NoCurrentCell))?;
                    if directive == "dep" {
                        manifest.entries[index].dependencies.push(value);
                    } else {
                        if let Some(&first) = manifest.by_symbol.get(&value) {
                            let first_cell = manifest.entries[first].name.clone();
                            return Err(error(ManifestErrorKind::DuplicateSymbol { symbol: value, first_cell }));
                        }
                        manifest.by_symbol.insert(value.clone(), index);
                        manifest.entries[index].symbols.push(value);
                    }
                }
                other => return Err(error(ManifestErrorKind::UnknownDirective(other.to_string()))),
            }
            if let Some(extra) = words.next() {
                return Err(error(ManifestErrorKind::ExtraField(extra.to_string())));
            }
        }
        Ok(manifest)
    }

    /// A manifest of already-validated entries (unique names and symbols; for a duplicate, the later entry wins).
    pub(crate) fn from_entries(entries: Vec<ManifestEntry>) -> Self {
        let mut manifest = Self::new();
        for (index, entry) in entries.iter().enumerate() {
            manifest.by_name.insert(entry.name.clone(), index);
            for symbol in &entry.symbols {
                manifest.by_symbol.insert(symbol.clone(), index);
            }
        }
        manifest.entries = entries;
        manifest
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[ManifestEntry] {
        &self.entries
    }

    /// The entry of cell `name`.
    pub fn cell(&self, name: &str) -> Option<&ManifestEntry> {
        self.by_name.get(name).map(|&index| &self.entries[index])
    }

    /// The entry of the cell that defines `symbol` (mangled).
    pub fn defining_cell(&self, symbol: &str) -> Option<&ManifestEntry> {
        self.by_symbol.get(symbol).map(|&index| &self.entries[index])
    }

    /// The entry of the cell whose object file is `object_file`.
    pub fn cell_for_object(&self, object_file: &str) -> Option<&ManifestEntry> {
        self.entries.iter().find(|entry| entry.object_file == object_file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cells_with_dependencies_and_symbols() {
        let text = "# image manifest\n\ncell captain kernel k-captain.o captain\ndep nano_core\nsym _RNv1\nsym _RNv2\n\
                    cell hello application a-hello.o hello\n  dep captain  \nsym _RNv3\n";
        let manifest = Manifest::parse(text).unwrap();
        assert_eq!(manifest.entries().len(), 2);
        let captain = manifest.cell("captain").unwrap();
        assert_eq!(captain.kind, CellKind::Kernel);
        assert_eq!(captain.object_file, "k-captain.o");
        assert_eq!(captain.dependencies, ["nano_core"]);
        assert_eq!(captain.symbols, ["_RNv1", "_RNv2"]);
        assert_eq!(manifest.defining_cell("_RNv3").unwrap().name, "hello");
        assert_eq!(manifest.cell_for_object("a-hello.o").unwrap().kind, CellKind::Application);
        assert!(manifest.defining_cell("_RNv4").is_none());
    }

    #[test]
    fn rejects_bad_lines_with_their_numbers() {
        let cases: [(&str, usize, ManifestErrorKind); 8] = [
            ("cell a kernel a.o a\nfrob x\n", 2, ManifestErrorKind::UnknownDirective("frob".into())),
            ("\nsym _R\n", 2, ManifestErrorKind::NoCurrentCell),
            ("cell a kernel a.o\n", 1, ManifestErrorKind::MissingField("crate name")),
            ("cell a kernel a.o a\ndep\n", 2, ManifestErrorKind::MissingField("cell name")),
            ("cell a kernel a.o a extra\n", 1, ManifestErrorKind::ExtraField("extra".into())),
            ("cell a driver a.o a\n", 1, ManifestErrorKind::UnknownKind("driver".into())),
            ("cell a kernel a.o a\n#\ncell a kernel b.o b\n", 3, ManifestErrorKind::DuplicateCell("a".into())),
            (
                "cell a kernel a.o a\nsym s\ncell b kernel b.o b\nsym s\n",
                4,
                ManifestErrorKind::DuplicateSymbol { symbol: "s".into(), first_cell: "a".into() },
            ),
        ];
        for (text, line, kind) in cases {
            assert_eq!(Manifest::parse(text), Err(ManifestError { line, kind }), "{text:?}");
        }
    }
}
