//! The whole build, step by step (see the crate docs for the numbered flow).

use crate::cargo::{self, Artifact, BuildOptions};
use crate::corrupt::{self, CorruptionMode};
use crate::elf::{self, ObjectSymbols};
use crate::error::{Context, Error, Result};
use crate::iso::{self, ModuleFile};
use crate::manifest::{self, CellRecord};
use crate::symfile;
use crate::tools;
use crate::workspace::{BASE_PACKAGE, CellKind, Package, Workspace};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Everything `cellbuild build` can be told.
#[derive(Debug, Clone)]
pub struct Options {
    /// The kernel workspace root.
    pub root: PathBuf,
    /// Target spec relative to the root.
    pub target_spec: PathBuf,
    /// Linker script relative to the root.
    pub linker_script: PathBuf,
    /// Output directory (`build`), relative to the root unless absolute.
    pub out_dir: PathBuf,
    /// Kernel command line written into grub.cfg.
    pub cmdline: String,
    /// Also build `theseus-corrupt.iso` with this cell's object damaged this way.
    pub corrupt: Option<(String, CorruptionMode)>,
    /// Extra `cargo build` arguments.
    pub cargo_args: Vec<String>,
    /// Extra `ld` arguments for the nano_core link (e.g. `--emit-relocs`).
    pub ld_args: Vec<String>,
    /// Build the ISO(s); without it, stop after the manifest.
    pub make_iso: bool,
    /// Report unresolved or duplicate symbols as warnings and go on (for work in progress; the loader will then
    /// fail at run time on what is missing).
    pub allow_unresolved: bool,
}

/// Numbers reported at the end of a build.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Kernel cells emitted.
    pub kernel_cells: usize,
    /// Application cells emitted.
    pub application_cells: usize,
    /// Third-party crates among the cells (kernel or application).
    pub third_party_cells: usize,
    /// Total size of the cell object files (bytes).
    pub object_bytes: u64,
    /// Total relocation entries in the cell objects.
    pub relocations: usize,
    /// Symbols in nano_core.syms.
    pub base_symbols: usize,
    /// Size of nano_core.elf in the ISO (bytes).
    pub kernel_bytes: u64,
    /// ISO files written, with sizes (bytes).
    pub isos: Vec<(PathBuf, u64)>,
    /// Wall time of the whole build (seconds).
    pub seconds: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "cellbuild: {} cells ({} kernel, {} applications; {} of them third-party), {} bytes of objects, {} relocations",
            self.kernel_cells + self.application_cells,
            self.kernel_cells,
            self.application_cells,
            self.third_party_cells,
            self.object_bytes,
            self.relocations
        )?;
        writeln!(
            f,
            "cellbuild: nano_core.elf {} bytes (stripped), {} base symbols",
            self.kernel_bytes, self.base_symbols
        )?;
        for (path, size) in &self.isos {
            writeln!(f, "cellbuild: {} {:.1} MB", path.display(), *size as f64 / 1e6)?;
        }
        write!(f, "cellbuild: done in {:.1} s", self.seconds)
    }
}

/// A cell object on disk plus its manifest record.
pub(crate) struct BuiltCell {
    /// What the manifest says about it (symbols defined and needed).
    pub(crate) record: CellRecord,
    /// The stripped object file.
    pub(crate) path: PathBuf,
    third_party: bool,
}

/// Runs the whole pipeline.
///
/// # Errors
/// Any step failing; the message names the cell, object, section or symbol at fault.
pub fn build(options: &Options) -> Result<Summary> {
    let started = Instant::now();
    let root = &options.root;
    let out = root.join(&options.out_dir);
    let cells_dir = out.join("cells");
    std::fs::create_dir_all(&cells_dir).context(cells_dir.display())?;

    // 1. Metadata and the application rules.
    let workspace = Workspace::load(root)?;
    workspace.check_applications_forbid_unsafe()?;
    workspace.check_application_dependencies()?;
    let base_package = workspace
        .member(BASE_PACKAGE)
        .ok_or_else(|| Error(format!("the workspace has no `{BASE_PACKAGE}` package")))?;
    let base_closure = workspace.closure(&base_package.id);

    // 2. One cargo build.
    let artifacts = cargo::build_workspace(&BuildOptions {
        root: root.clone(),
        target_spec: options.target_spec.clone(),
        extra_args: options.cargo_args.clone(),
    })?;
    let by_package = libraries_by_package(&artifacts);

    // 3. Link nano_core.
    let staticlib =
        by_package.get(base_package.id.as_str()).and_then(|a| a.file_ending_with(".a")).ok_or_else(|| {
            Error(format!("cargo produced no staticlib for `{BASE_PACKAGE}` (crate-type = [\"staticlib\"]?)"))
        })?;
    let kernel_elf = out.join("nano_core.elf");
    tools::run(
        Command::new("ld")
            .current_dir(root)
            .arg("-n")
            .arg("-T")
            .arg(&options.linker_script)
            .args(["--no-gc-sections", "--no-warn-rwx-segments"])
            .args(&options.ld_args)
            .arg("-o")
            .arg(&kernel_elf)
            .arg("--whole-archive")
            .arg(staticlib),
    )?;
    let kernel_stripped = out.join("nano_core.stripped.elf");
    tools::strip_debug(&kernel_elf, &kernel_stripped)?;

    // 4. nano_core.syms.
    let kernel_bytes = std::fs::read(&kernel_elf).context(kernel_elf.display())?;
    let base_symbols = elf::base_symbols(&kernel_bytes).context(kernel_elf.display())?;
    let syms_text = symfile::write(&base_symbols, "nano_core.elf");
    std::fs::write(out.join("nano_core.syms"), &syms_text).context("nano_core.syms")?;
    let base_names: HashSet<String> = base_symbols.iter().map(|s| s.name.clone()).collect();

    // 5. Cell objects from workspace members.
    let scratch = out.join("cells/raw");
    let mut cells: Vec<BuiltCell> = Vec::new();
    for package in workspace.cell_packages() {
        cells.push(cell_of_member(&workspace, package, &by_package, &cells_dir, &scratch)?);
    }

    // 5b. Third-party crates that cells need and nano_core lacks.
    // Candidates include build-std crates (core, alloc...): if nano_core does not use alloc, its staticlib lacks
    // it, and cells that allocate need it as a cell of its own.
    let candidates: Vec<&Artifact> = by_package
        .values()
        .copied()
        .filter(|a| !base_closure.contains(&a.package_id) && !workspace.members.contains(&a.package_id))
        .filter(|a| a.file_ending_with(".rlib").is_some())
        .collect();
    add_third_party_cells(&workspace, candidates, &base_names, &mut cells, &cells_dir, &scratch)?;

    // 6. Resolve and write the manifest.
    let records: Vec<CellRecord> = cells.iter().map(|c| c.record.clone()).collect();
    let resolution = manifest::resolve(&records, &base_names);
    for warning in &resolution.warnings {
        eprintln!("cellbuild: warning: {warning}");
    }
    if !resolution.errors.is_empty() {
        let message = format!("cannot resolve cell symbols:\n  {}", resolution.errors.join("\n  "));
        if !options.allow_unresolved {
            return Err(Error(message));
        }
        eprintln!("cellbuild: warning (--allow-unresolved): {message}");
    }
    let manifest_text = manifest::write(&records, &resolution.dependencies);
    std::fs::write(out.join("cells.manifest"), &manifest_text).context("cells.manifest")?;

    let mut summary = Summary {
        kernel_cells: records.iter().filter(|r| r.kind == CellKind::Kernel).count(),
        application_cells: records.iter().filter(|r| r.kind == CellKind::Application).count(),
        third_party_cells: cells.iter().filter(|c| c.third_party).count(),
        relocations: records.iter().map(|r| r.relocations).sum(),
        base_symbols: base_symbols.len(),
        kernel_bytes: std::fs::metadata(&kernel_stripped)?.len(),
        ..Summary::default()
    };

    // 7. ISO(s).
    let mut modules = vec![
        ModuleFile { name: "cells.manifest".into(), bytes: manifest_text.into_bytes() },
        ModuleFile { name: "nano_core.syms".into(), bytes: syms_text.into_bytes() },
    ];
    for cell in &cells {
        let bytes = std::fs::read(&cell.path).context(cell.path.display())?;
        summary.object_bytes += bytes.len() as u64;
        modules.push(ModuleFile { name: cell.record.object_file.clone(), bytes });
    }
    if options.make_iso {
        let template_path = root.join("grub.cfg");
        let template = std::fs::read_to_string(&template_path).context(template_path.display())?;
        let iso_path = out.join("theseus.iso");
        let archive = iso::pack(&modules)?;
        std::fs::write(out.join(iso::ARCHIVE_MODULE), &archive.bytes).context(iso::ARCHIVE_MODULE)?;
        iso::assemble(&out.join("iso"), &iso_path, &kernel_stripped, &template, &options.cmdline, &[archive])?;
        summary.isos.push((iso_path.clone(), std::fs::metadata(&iso_path)?.len()));
        if let Some((cell_name, mode)) = &options.corrupt {
            let cell = cells.iter().find(|c| &c.record.name == cell_name).ok_or_else(|| {
                let names: Vec<&str> = cells.iter().map(|c| c.record.name.as_str()).collect();
                Error(format!("--corrupt: no cell named `{cell_name}` (cells: {})", names.join(", ")))
            })?;
            let module =
                modules.iter_mut().find(|m| m.name == cell.record.object_file).expect("every cell has a module");
            module.bytes = corrupt::corrupt(&module.bytes, *mode).context(&module.name)?;
            let corrupt_iso = out.join("theseus-corrupt.iso");
            iso::assemble(
                &out.join("iso-corrupt"),
                &corrupt_iso,
                &kernel_stripped,
                &template,
                &options.cmdline,
                &[iso::pack(&modules)?],
            )?;
            eprintln!("cellbuild: {} has a damaged {} ({mode:?})", corrupt_iso.display(), cell.record.object_file);
            summary.isos.push((corrupt_iso.clone(), std::fs::metadata(&corrupt_iso)?.len()));
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The artifacts that are libraries (rlib or staticlib), by package id.
pub(crate) fn libraries_by_package(artifacts: &[Artifact]) -> BTreeMap<&str, &Artifact> {
    let mut by_package: BTreeMap<&str, &Artifact> = BTreeMap::new();
    for artifact in artifacts {
        if artifact.file_ending_with(".rlib").is_some() || artifact.file_ending_with(".a").is_some() {
            by_package.insert(&artifact.package_id, artifact);
        }
    }
    by_package
}

/// The cell object of workspace member `package` from the build's artifacts (by package id), written to
/// `cells_dir` (raw extraction under `scratch`).
pub(crate) fn cell_of_member(
    workspace: &Workspace,
    package: &Package,
    by_package: &BTreeMap<&str, &Artifact>,
    cells_dir: &Path,
    scratch: &Path,
) -> Result<BuiltCell> {
    let kind = workspace.kind_of(package);
    let artifact = by_package
        .get(package.id.as_str())
        .ok_or_else(|| Error(format!("cargo produced no library for cell `{}`", package.name)))?;
    let rlib = artifact.rlib().ok_or_else(|| Error(format!("cell `{}` is not built as an rlib", package.name)))?;
    let cargo_dependencies = package
        .normal_dependencies
        .iter()
        .filter_map(|id| workspace.packages.get(id))
        .map(|p| p.name.clone())
        .collect();
    make_cell(&package.name, kind, &artifact.target_name, &rlib, cargo_dependencies, cells_dir, scratch)
}

/// Extracts, strips and checks one cell object; returns it with its manifest record.
fn make_cell(
    name: &str,
    kind: CellKind,
    crate_name: &str,
    rlib: &Path,
    cargo_dependencies: Vec<String>,
    cells_dir: &Path,
    scratch: &Path,
) -> Result<BuiltCell> {
    let object_file = kind.object_file_name(name);
    let raw = extract_object(rlib, &scratch.join(name), &object_file)?;
    let path = cells_dir.join(&object_file);
    tools::strip_debug(&raw, &path)?;
    let bytes = std::fs::read(&path).context(path.display())?;
    let (symbols, forbidden): (ObjectSymbols, _) = elf::read_object(&bytes).context(&object_file)?;
    if let Some(first) = forbidden.first() {
        let list: Vec<String> = forbidden
            .iter()
            .map(|f| format!("{} x{} in section {}", elf::relocation_name(f.relocation_type), f.count, f.section))
            .collect();
        return Err(Error(format!(
            "{object_file} (cell `{name}`): relocation type {} in section `{}` is not supported by the loader \
             (allowed: R_X86_64_NONE, 64, PC32, PLT32, 32, 32S, PC64); all offending: {}",
            elf::relocation_name(first.relocation_type),
            first.section,
            list.join("; ")
        )));
    }
    Ok(BuiltCell {
        record: CellRecord {
            name: name.to_string(),
            kind,
            object_file,
            crate_name: crate_name.to_string(),
            defined: symbols.defined,
            undefined: symbols.undefined,
            cargo_dependencies,
            allocated_bytes: symbols.allocated_bytes,
            relocations: symbols.relocations,
        },
        path,
        third_party: false,
    })
}

/// Writes the single object of `rlib` (or all of them combined with `ld -r`) into `dir`; returns its path.
fn extract_object(rlib: &Path, dir: &Path, object_file: &str) -> Result<PathBuf> {
    let archive = std::fs::read(rlib).context(rlib.display())?;
    let objects = elf::archive_objects(&archive).context(rlib.display())?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).context(dir.display())?;
    }
    std::fs::create_dir_all(dir).context(dir.display())?;
    let combined = dir.join(object_file);
    match objects.as_slice() {
        [] => Err(Error(format!("{}: no object file inside (empty crate?)", rlib.display()))),
        [(_, bytes)] => {
            std::fs::write(&combined, bytes).context(combined.display())?;
            Ok(combined)
        }
        many => {
            let mut command = Command::new("ld");
            command.arg("-r").arg("-o").arg(&combined);
            for (index, (_, bytes)) in many.iter().enumerate() {
                let part = dir.join(format!("part{index}.o"));
                std::fs::write(&part, bytes).context(part.display())?;
                command.arg(part);
            }
            tools::run(&mut command)?;
            Ok(combined)
        }
    }
}

/// Undefined symbols of any cell that neither the base image nor any cell defines.
fn unresolved_symbols(cells: &[BuiltCell], base: &HashSet<String>) -> BTreeSet<String> {
    let defined: HashSet<&str> = cells.iter().flat_map(|c| c.record.defined.iter().map(|d| d.name.as_str())).collect();
    cells
        .iter()
        .flat_map(|c| c.record.undefined.iter())
        .filter(|s| !base.contains(*s) && !defined.contains(s.as_str()))
        .cloned()
        .collect()
}

/// The symbols of `wanted` that some object in `rlib` defines.
fn rlib_defines(rlib: &Path, wanted: &BTreeSet<String>) -> Result<BTreeSet<String>> {
    let archive = std::fs::read(rlib).context(rlib.display())?;
    let mut found = BTreeSet::new();
    for (member, bytes) in elf::archive_objects(&archive).context(rlib.display())? {
        let (symbols, _) = elf::read_object(&bytes).context(format_args!("{}({member})", rlib.display()))?;
        found.extend(symbols.defined.into_iter().map(|d| d.name).filter(|name| wanted.contains(name)));
    }
    Ok(found)
}

/// Step 5b: emits each third-party crate (of `candidates`) that defines a symbol some cell needs and nothing else
/// defines, as a cell of its own, until no more are needed. Its kind follows the cells that need it: an
/// application cell (`a-<crate>.o`, application namespace) when only application cells use its symbols (a registry
/// crate an application depends on, such as `crc32fast` for `checksum`), otherwise a kernel cell (`k-<crate>.o`),
/// which both namespaces reach. Crates a third-party cell needs in turn are decided by the same rule.
fn add_third_party_cells(
    workspace: &Workspace,
    mut candidates: Vec<&Artifact>,
    base_names: &HashSet<String>,
    cells: &mut Vec<BuiltCell>,
    cells_dir: &Path,
    scratch: &Path,
) -> Result<()> {
    loop {
        let unresolved = unresolved_symbols(cells, base_names);
        if unresolved.is_empty() || candidates.is_empty() {
            return Ok(());
        }
        let mut added = false;
        let mut remaining = Vec::new();
        for artifact in candidates {
            let rlib = artifact.rlib().expect("filtered above");
            let provided = rlib_defines(&rlib, &unresolved)?;
            if provided.is_empty() {
                remaining.push(artifact);
                continue;
            }
            let only_applications_need_it = cells
                .iter()
                .filter(|cell| cell.record.undefined.iter().any(|symbol| provided.contains(symbol)))
                .all(|cell| cell.record.kind == CellKind::Application);
            let kind = if only_applications_need_it { CellKind::Application } else { CellKind::Kernel };
            let package = workspace.packages.get(&artifact.package_id);
            let name = package.map(|p| p.name.clone()).unwrap_or_else(|| artifact.target_name.clone());
            let name = if cells.iter().any(|c| c.record.name == name) {
                format!("{name}-{}", package.map(|p| p.version.as_str()).unwrap_or("dup"))
            } else {
                name
            };
            let article = if kind == CellKind::Application { "an" } else { "a" };
            eprintln!(
                "cellbuild: cells need third-party crate `{name}`; emitting it as {article} {} cell",
                kind.as_str()
            );
            let mut cell = make_cell(&name, kind, &artifact.target_name, &rlib, Vec::new(), cells_dir, scratch)?;
            cell.third_party = true;
            cells.push(cell);
            added = true;
        }
        candidates = remaining;
        if !added {
            return Ok(());
        }
    }
}
