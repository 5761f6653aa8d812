//! `cells.manifest`: which object is which cell, what it needs and what it provides.
//!
//! Format (text; `#` starts a comment line; no blank lines; fields separated by one space):
//! ```text
//! cell <cell name> <kernel|application> <object file name> <crate name>
//! dep <cell name or nano_core>      (zero or more, after their cell line)
//! sym <mangled symbol>              (zero or more, after the dep lines)
//! ```
//! `dep` lines list the cells (or `nano_core`) that define the object's undefined symbols; `sym` lines the
//! object's defined `STB_GLOBAL`/`STB_WEAK` `STT_FUNC`/`STT_OBJECT` symbols. The loader uses `sym` to find
//! which cell to load for a missing symbol, without guessing from demangled paths.
//!
//! [`resolve`] computes the `dep` lines and checks that every undefined symbol is defined exactly once.

use crate::elf::{DefinedSymbol, demangle};
use crate::workspace::CellKind;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The name under which the base image appears in `dep` lines.
pub const BASE_CELL: &str = "nano_core";

/// One cell as the manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellRecord {
    /// The cell name (the package name, e.g. `greeting_v1`).
    pub name: String,
    /// Kernel or application.
    pub kind: CellKind,
    /// The object's file name in `/modules` (`k-greeting_v1.o`).
    pub object_file: String,
    /// The crate (library target) name (`greeting`).
    pub crate_name: String,
    /// Global symbols the object defines.
    pub defined: Vec<DefinedSymbol>,
    /// Symbols the object uses but does not define.
    pub undefined: Vec<String>,
    /// Cell names of the package's direct cargo dependencies, used to choose between cells that define the
    /// same symbol (two versions of a swappable cell exporting the same `no_mangle` name).
    pub cargo_dependencies: Vec<String>,
    /// Bytes of allocated sections, for the summary comment.
    pub allocated_bytes: u64,
    /// Number of relocation entries, for the summary comment.
    pub relocations: usize,
}

/// The outcome of [`resolve`]: per cell (same order as the input), the cells it depends on; plus warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// `dependencies[i]` are the `dep` names of cell `i`: `nano_core` first, then cell names sorted.
    pub dependencies: Vec<Vec<String>>,
    /// Things worth a look that do not stop the build.
    pub warnings: Vec<String>,
    /// Problems that stop the build: undefined symbols defined nowhere (naming the cell and the symbol, mangled
    /// and demangled), and true duplicate definitions.
    pub errors: Vec<String>,
}

/// Where symbols of the base image can be looked up.
pub trait BaseSymbols {
    /// Whether the base image defines `name` exactly once.
    fn defines(&self, name: &str) -> bool;
}

impl BaseSymbols for BTreeSet<String> {
    fn defines(&self, name: &str) -> bool {
        self.contains(name)
    }
}

impl BaseSymbols for std::collections::HashSet<String> {
    fn defines(&self, name: &str) -> bool {
        self.contains(name)
    }
}

/// Computes each cell's dependencies from its undefined symbols.
///
/// A symbol resolves to the base image if it defines it, otherwise to the cell that defines it. Two cells with
/// different crate names both defining a symbol strongly is an error; if one definition is weak, or both cells
/// are versions of one crate (same crate name: alternatives for a swap), it is a warning.
///
/// Problems are collected in [`Resolution::errors`] rather than stopping at the first, so a build can report all
/// of them (or, with `--allow-unresolved`, go on).
pub fn resolve(cells: &[CellRecord], base: &impl BaseSymbols) -> Resolution {
    let mut definers: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, cell) in cells.iter().enumerate() {
        for symbol in &cell.defined {
            definers.entry(symbol.name.as_str()).or_default().push(index);
        }
    }
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for (symbol, cell_indices) in &definers {
        if base.defines(symbol) {
            let names: Vec<&str> = cell_indices.iter().map(|&i| cells[i].name.as_str()).collect();
            warnings.push(format!(
                "symbol `{symbol}` ({}) is defined by nano_core and by cell(s) {}; cells will bind to nano_core's",
                demangle(symbol),
                names.join(", ")
            ));
        }
        for (position, &first) in cell_indices.iter().enumerate() {
            for &second in &cell_indices[position + 1..] {
                let (a, b) = (&cells[first], &cells[second]);
                let weak = [a, b].iter().any(|cell| cell.defined.iter().any(|d| d.name == *symbol && d.weak));
                let message = format!(
                    "symbol `{symbol}` ({}) is defined by both cell `{}` and cell `{}`",
                    demangle(symbol),
                    a.name,
                    b.name
                );
                if weak || a.crate_name == b.crate_name {
                    warnings.push(message);
                } else {
                    errors.push(message);
                }
            }
        }
    }
    let mut dependencies = Vec::with_capacity(cells.len());
    for (index, cell) in cells.iter().enumerate() {
        let mut uses_base = false;
        let mut uses: BTreeSet<&str> = BTreeSet::new();
        for symbol in &cell.undefined {
            if base.defines(symbol) {
                uses_base = true;
                continue;
            }
            let candidates: Vec<usize> = definers
                .get(symbol.as_str())
                .map(|list| list.iter().copied().filter(|&i| i != index).collect())
                .unwrap_or_default();
            let chosen = candidates
                .iter()
                .copied()
                .find(|&i| cell.cargo_dependencies.contains(&cells[i].name))
                .or_else(|| candidates.first().copied());
            match chosen {
                Some(definer) => {
                    uses.insert(cells[definer].name.as_str());
                }
                None => errors.push(format!(
                    "cell `{}`: undefined symbol `{symbol}` ({}) is defined neither by nano_core nor by any cell",
                    cell.name,
                    demangle(symbol)
                )),
            }
        }
        let mut list = Vec::with_capacity(uses.len() + 1);
        if uses_base {
            list.push(BASE_CELL.to_string());
        }
        list.extend(uses.into_iter().map(String::from));
        dependencies.push(list);
    }
    Resolution { dependencies, warnings, errors }
}

/// Renders `cells.manifest`. `dependencies[i]` belongs to `cells[i]` (see [`Resolution`]).
pub fn write(cells: &[CellRecord], dependencies: &[Vec<String>]) -> String {
    let mut text = String::new();
    text.push_str("# cells.manifest: generated by scripts/cellbuild; do not edit.\n");
    text.push_str("# cell <cell name> <kernel|application> <object file> <crate name>\n");
    text.push_str("# dep <cell name or nano_core>   (cells whose symbols the object uses)\n");
    text.push_str("# sym <mangled symbol>          (global symbols the object defines)\n");
    for (cell, dependencies) in cells.iter().zip(dependencies) {
        let _ = writeln!(
            text,
            "# {}: {} bytes allocated, {} relocations, {} symbols defined, {} undefined",
            cell.object_file,
            cell.allocated_bytes,
            cell.relocations,
            cell.defined.len(),
            cell.undefined.len()
        );
        let _ = writeln!(text, "cell {} {} {} {}", cell.name, cell.kind.as_str(), cell.object_file, cell.crate_name);
        for dependency in dependencies {
            let _ = writeln!(text, "dep {dependency}");
        }
        for symbol in &cell.defined {
            let _ = writeln!(text, "sym {}", symbol.name);
        }
    }
    text
}

/// One cell as read back from a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedCell {
    /// `cell` line fields: name, kind, object file, crate name.
    pub fields: [String; 4],
    /// `dep` names.
    pub dependencies: Vec<String>,
    /// `sym` names.
    pub symbols: Vec<String>,
}

/// Parses a manifest (used by tests and checks; the kernel has its own parser).
///
/// # Errors
/// Returns the 1-based number of the first malformed line.
pub fn parse(text: &str) -> Result<Vec<ParsedCell>, usize> {
    let mut cells: Vec<ParsedCell> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        match (fields.as_slice(), cells.last_mut()) {
            (["cell", name, kind @ ("kernel" | "application"), object, crate_name], _) => {
                cells.push(ParsedCell {
                    fields: [name, kind, object, crate_name].map(|s| s.to_string()),
                    ..ParsedCell::default()
                });
            }
            (["dep", name], Some(cell)) if cell.symbols.is_empty() => cell.dependencies.push(name.to_string()),
            (["sym", name], Some(cell)) => cell.symbols.push(name.to_string()),
            _ => return Err(number + 1),
        }
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(name: &str, crate_name: &str, defined: &[&str], undefined: &[&str]) -> CellRecord {
        CellRecord {
            name: name.into(),
            kind: if name == "hello" { CellKind::Application } else { CellKind::Kernel },
            object_file: if name == "hello" { format!("a-{name}.o") } else { format!("k-{name}.o") },
            crate_name: crate_name.into(),
            defined: defined.iter().map(|s| DefinedSymbol { name: s.to_string(), weak: false }).collect(),
            undefined: undefined.iter().map(|s| s.to_string()).collect(),
            cargo_dependencies: Vec::new(),
            allocated_bytes: 100,
            relocations: 7,
        }
    }

    fn base() -> BTreeSet<String> {
        ["_RNvCsA_4core3fmt", "memcpy"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn resolves_dependencies_to_base_and_cells() {
        let cells = [
            cell("greeting_v1", "greeting", &["_RNvCs1_8greeting5greet"], &["memcpy"]),
            cell("greeting_v2", "greeting", &["_RNvCs2_8greeting5greet"], &["memcpy"]),
            cell("hello", "hello", &["_RNvCs3_5hello4main"], &["_RNvCs1_8greeting5greet", "_RNvCsA_4core3fmt"]),
        ];
        let resolution = resolve(&cells, &base());
        assert!(resolution.errors.is_empty());
        assert_eq!(resolution.dependencies[0], ["nano_core"]);
        assert_eq!(resolution.dependencies[2], ["nano_core", "greeting_v1"]);
        assert!(resolution.warnings.is_empty());
    }

    #[test]
    fn reports_missing_symbol_with_demangled_name() {
        let cells = [cell("hello", "hello", &[], &["_RNvCs9_8greeting5greet"])];
        let errors = resolve(&cells, &base()).errors;
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("cell `hello`"), "{}", errors[0]);
        assert!(errors[0].contains("_RNvCs9_8greeting5greet") && errors[0].contains("greeting::greet"));
    }

    #[test]
    fn duplicate_symbols_error_unless_same_crate_or_weak() {
        let same_crate =
            [cell("greeting_v1", "greeting", &["greet"], &[]), cell("greeting_v2", "greeting", &["greet"], &[])];
        assert_eq!(resolve(&same_crate, &base()).warnings.len(), 1);
        let different = [cell("a", "a", &["dup"], &[]), cell("b", "b", &["dup"], &[])];
        assert!(resolve(&different, &base()).errors[0].contains("both cell `a` and cell `b`"));
        let mut weak = different.clone();
        weak[1].defined[0].weak = true;
        assert_eq!(resolve(&weak, &base()).warnings.len(), 1);
    }

    #[test]
    fn prefers_cargo_dependency_among_alternatives() {
        let mut user = cell("user", "user", &[], &["greet"]);
        user.cargo_dependencies = vec!["greeting_v2".into()];
        let cells =
            [cell("greeting_v1", "greeting", &["greet"], &[]), cell("greeting_v2", "greeting", &["greet"], &[]), user];
        assert_eq!(resolve(&cells, &base()).dependencies[2], ["greeting_v2"]);
    }

    #[test]
    fn writes_documented_format_and_parses_back() {
        let cells = [
            cell("captain", "captain", &["_RNvCs4_7captain4init"], &["memcpy"]),
            cell("hello", "hello", &["_RNvCs3_5hello4main"], &["_RNvCs4_7captain4init"]),
        ];
        let resolution = resolve(&cells, &base());
        assert!(resolution.errors.is_empty());
        let text = write(&cells, &resolution.dependencies);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "cell captain kernel k-captain.o captain",
                "dep nano_core",
                "sym _RNvCs4_7captain4init",
                "cell hello application a-hello.o hello",
                "dep captain",
                "sym _RNvCs3_5hello4main",
            ]
        );
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed[1].fields, ["hello", "application", "a-hello.o", "hello"].map(String::from));
        assert_eq!(parsed[1].dependencies, ["captain"]);
        assert_eq!(parse("dep x\n"), Err(1));
        assert_eq!(parse("cell a weird a.o a\n"), Err(1));
    }
}
