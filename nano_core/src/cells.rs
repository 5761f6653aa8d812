//! Building the system's namespaces from the boot modules, and launching the first cell.
//!
//! The ISO carries one Multiboot2 module, `cells.archive` (layout: the `boot_archive` crate), which holds every cell
//! object (`k-<cell>.o` kernel cells, `a-<app>.o` applications), the build-time cell manifest (`cells.manifest`) and
//! the base image's symbol file (`nano_core.syms`). One module instead of one per file saves GRUB most of its
//! loading time (issue 11). The module's memory stays reserved from the frame allocator (`memory::init` reserves
//! every module), so the files borrowed from it live for the kernel's lifetime.
//!
//! Control flow of [`start_captain`]:
//! 1. check the archive's structure (a damaged header or table stops the boot with a [`StartError::Archive`] naming
//!    the fault); parse the manifest and the base symbol file;
//! 2. check every object file's ELF structure, logging (and keeping out of the directory) any that is malformed,
//!    so a corrupted object is reported at boot and boot continues;
//! 3. create the kernel namespace (base image + kernel cells) and the application namespace layered on it, and
//!    install both in `system_namespaces`;
//! 4. load `captain` by name (which loads, on demand, every cell it needs) and report the load;
//! 5. find `captain::init` and call it; it never returns.

use alloc::sync::Arc;
use alloc::vec::Vec;

use boot_info::BootInfo;
use cell_namespace::{CellKind, CellMemory, CellNamespace, Manifest, ObjectDirectory};

use crate::cell_memory::KernelCellMemory;

/// Name of the boot module holding every boot file.
const ARCHIVE_MODULE: &str = "cells.archive";
/// Name of the cell manifest file.
const MANIFEST_MODULE: &str = "cells.manifest";
/// Name of the base symbol file.
const BASE_SYMBOLS_MODULE: &str = "nano_core.syms";
/// Name of the first cell.
const FIRST_CELL: &str = "captain";
/// Path of the first cell's entry function (hash-free demangled).
const FIRST_CELL_ENTRY: &str = "captain::init";

/// Why the system could not be brought up from its cells.
#[derive(Debug)]
pub enum StartError {
    /// A required boot module is missing (or not among the modules `memory::init` reserved).
    MissingModule(&'static str),
    /// The boot archive's structure is damaged.
    Archive(boot_archive::ArchiveError),
    /// A required file is not in the boot archive.
    MissingFile(&'static str),
    /// A file is not valid UTF-8 text.
    NotText(&'static str),
    /// The manifest is malformed.
    Manifest(cell_namespace::ManifestError),
    /// The base symbol file is malformed.
    BaseSymbols(cell_namespace::BaseSymbolError),
    /// The base image could not be added to the kernel namespace.
    BaseImage(cell_namespace::BaseImageError),
    /// The first cell could not be loaded or has no entry function.
    FirstCell(cell_namespace::FindFunctionError),
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::MissingModule(name) => write!(f, "boot module {name} is missing"),
            StartError::Archive(error) => write!(f, "boot module {ARCHIVE_MODULE}: {error}"),
            StartError::MissingFile(name) => write!(f, "{ARCHIVE_MODULE} holds no file {name}"),
            StartError::NotText(name) => write!(f, "boot module {name} is not UTF-8 text"),
            StartError::Manifest(error) => write!(f, "{MANIFEST_MODULE}: {error}"),
            StartError::BaseSymbols(error) => write!(f, "{BASE_SYMBOLS_MODULE}: {error}"),
            StartError::BaseImage(error) => write!(f, "adding the base image: {error}"),
            StartError::FirstCell(error) => write!(f, "first cell {FIRST_CELL}: {error}"),
        }
    }
}

/// The boot archive, checked (header, table, every entry's bounds), borrowing the reserved module memory.
fn boot_archive(boot_info: &BootInfo) -> Result<boot_archive::Archive<'static>, StartError> {
    let module = boot_info.module_named(ARCHIVE_MODULE).ok_or(StartError::MissingModule(ARCHIVE_MODULE))?;
    let bytes = memory::module_bytes(module).ok_or(StartError::MissingModule(ARCHIVE_MODULE))?;
    boot_archive::Archive::parse(bytes).map_err(StartError::Archive)
}

/// The text file `name` of the boot archive.
fn text_file(archive: &boot_archive::Archive<'static>, name: &'static str) -> Result<&'static str, StartError> {
    let entry = archive.entry(name).ok_or(StartError::MissingFile(name))?;
    core::str::from_utf8(entry.bytes).map_err(|_| StartError::NotText(name))
}

/// Builds the namespaces, loads `captain` and calls its entry.
///
/// # Errors
/// [`StartError`] if the boot archive, the manifest, the base symbol file or the first cell is unusable; a malformed object that
/// the first cell does not need is only logged.
pub fn start_captain(boot_info: &'static BootInfo) -> Result<core::convert::Infallible, StartError> {
    let started = tsc::now_ns();
    let archive = boot_archive(boot_info)?;
    let manifest = Manifest::parse(text_file(&archive, MANIFEST_MODULE)?).map_err(StartError::Manifest)?;
    let base_symbols = cell_namespace::parse_base_symbols(text_file(&archive, BASE_SYMBOLS_MODULE)?)
        .map_err(StartError::BaseSymbols)?;

    let mut kernel_directory = ObjectDirectory::new();
    let mut application_directory = ObjectDirectory::new();
    let mut rejected = 0usize;
    for file in archive.entries() {
        let (name, bytes) = (file.name, file.bytes);
        let Some(entry) = manifest.cell_for_object(name) else { continue };
        if let Err(error) = cell_loader::ObjectFile::parse(bytes) {
            log::error!("rejected object {name} (cell {}): {error}", entry.name);
            rejected += 1;
            continue;
        }
        let directory = match entry.kind {
            CellKind::Application => &mut application_directory,
            _ => &mut kernel_directory,
        };
        directory.insert(name, bytes);
    }

    let memory: Arc<dyn CellMemory> = Arc::new(KernelCellMemory);
    let kernel = Arc::new(CellNamespace::new("kernel", memory.clone(), kernel_directory, manifest.clone(), None));
    kernel.set_clock(tsc::now_ns);
    kernel.add_base_image("nano_core", &base_symbols).map_err(StartError::BaseImage)?;
    let application =
        Arc::new(CellNamespace::new("application", memory, application_directory, manifest, Some(kernel.clone())));
    application.set_clock(tsc::now_ns);
    system_namespaces::install(system_namespaces::SystemNamespaces {
        kernel: kernel.clone(),
        application: application.clone(),
    });
    log::info!(
        "namespaces ready: {} base symbols, {} kernel objects, {} application objects, {rejected} rejected",
        base_symbols.len(),
        kernel.objects().len(),
        application.objects().len()
    );

    // Cells published from now on (loads, swaps) get their unwind info registered by the observer.
    cell_namespace::set_cell_observer(&crate::runtime::UnwindRegistration);
    let load_started = tsc::now_ns();
    let entry = kernel.find_function(FIRST_CELL, FIRST_CELL_ENTRY).map_err(StartError::FirstCell)?;
    let load_finished = tsc::now_ns();
    let registered =
        crate::runtime::register_loaded_cells(&kernel) + crate::runtime::register_loaded_cells(&application);
    let unwindable = kernel.loaded_cells().len() + application.loaded_cells().len();
    log::info!("unwinder: {unwindable} cells loaded with unwind info registered ({registered} registered late)");
    let loaded: Vec<_> = kernel.cells().into_iter().filter(|cell| cell.object_file.is_some()).collect();
    let total_bytes: usize =
        loaded.iter().map(|cell| cell.sizes.text + cell.sizes.read_only_data + cell.sizes.data).sum();
    let total_relocations: usize = loaded.iter().map(|cell| cell.relocation_count).sum();
    log::info!(
        "loaded {} cells at boot: {total_bytes} bytes, {total_relocations} relocations, in {} us ({} us since namespace setup began)",
        loaded.len(),
        (load_finished - load_started) / 1000,
        (load_finished - started) / 1000
    );
    log::info!("calling {FIRST_CELL_ENTRY} at {entry}");
    // SAFETY: `entry` is the address of the exported function `captain::init`, whose Rust signature is
    // `fn() -> !`; the cell is loaded, relocated and mapped executable, and stays loaded (the namespace holds it) for
    // as long as it runs. Cells and nano_core come from one build with one compiler, so the Rust ABI matches.
    let captain_init: fn() -> ! = unsafe { core::mem::transmute::<usize, fn() -> !>(entry.value()) };
    captain_init()
}
