//! Cells in memory: `CellNamespace`, `LoadedCell` and `LoadedSection`, with transactional loading and live swapping.
//!
//! A *cell* is one crate, built into one relocatable ELF object and loaded at run time into its own text,
//! read-only data and data regions. A [`CellNamespace`] owns a directory of object files, the build-time
//! [`Manifest`] (which cell defines which symbol), the loaded cells and a *symbol map* (mangled name -> section).
//! Every section of a loaded cell is a [`LoadedSection`] with its bounds and its cross-cell dependency edges, so a
//! cell can later be swapped for a new version and its dependents re-pointed. The base image (`nano_core`) is
//! modelled as a cell whose sections are the symbols of the base symbol file. The crate knows nothing about
//! paging: memory comes from a [`CellMemory`] provider (`MappedPages` in the kernel, `mmap` in host tests).
//!
//! # Key types
//! - [`CellNamespace`]: load ([`CellNamespace::load_cell`]), query, swap ([`CellNamespace::swap_quiesced`] with
//!   [`SwapOptions`], a [`RunQuiesced`] stop-the-world function and a [`PinFinder`]; [`SwapReport`]), and the
//!   retired cells ([`CellNamespace::retired`], [`CellNamespace::reclaim_retired`], [`Pin`], [`RetiredCellInfo`]).
//! - State transfer: [`StateTransfer`] and [`ObjectLocation`], given to a new cell's `cell_state_transfer`.
//! - [`LoadedCell`], [`LoadedSection`], [`StrongDependency`] / [`WeakDependent`] with [`RelocationEntry`].
//! - Locks: see `locks.rs` (kinds, lock order); [`set_preemption_hooks`] connects the transaction lock to the
//!   scheduler's preemption-disable count.
//! - Integrity: [`CellNamespace::check_cell`] / [`CellNamespace::check_all_cells`] compare a cell's read-only
//!   sections with its object file (relocations re-applied as linked now) and repair them
//!   ([`IntegrityMode`], [`IntegrityReport`], [`DamagedRange`], [`IntegrityError`]; see `integrity.rs`).
//! - [`CellObserver`] / [`set_cell_observer`]: the hook told about every cell published or removed (the
//!   unwinder's registration of cell unwind info).
//! - [`CellMemory`] / [`MemoryRegion`] / [`RegionKind`]: the memory provider.
//! - [`Manifest`], [`ObjectDirectory`], [`BaseSymbol`] and their parsers; [`CellNamespace::add_pushed_object`]
//!   ([`PushedObjectError`]) for objects pushed from the host into a running system.
//! - Errors: [`LoadError`], [`SwapError`] (with [`QuiesceError`], [`ExportKind`]), [`FindFunctionError`], [`BaseImageError`], [`ManifestError`],
//!   [`BaseSymbolError`], [`MemoryError`].
//!
//! # Control flow
//! 1. The kernel parses the manifest and the base symbol file, fills an [`ObjectDirectory`] from boot modules,
//!    creates the kernel namespace and adds the base image with [`CellNamespace::add_base_image`].
//! 2. [`CellNamespace::load_cell`] runs one transaction: stage the cell (parse, allocate, copy, zero bss); resolve
//!    each undefined symbol (staged cells, symbol maps of the namespace and its parents, else the cell the manifest
//!    names, which is staged too); apply every relocation, recording dependencies; finalize W^X permissions; then
//!    publish every staged cell and its symbols. Any failure frees the staged cells and changes nothing.
//! 3. The shell lists cells ([`CellNamespace::cells`]) and objects ([`CellNamespace::objects`]), looks up
//!    symbols, and finds an application's entry by path ([`CellNamespace::find_function`]).
//! 4. [`CellNamespace::swap_quiesced`] stages new cells, verifies that they provide every symbol the old cells'
//!    dependents use with a compatible kind and that no state would be dropped, then, with every other CPU
//!    stopped, copies the old cells' `.data`/`.bss` objects into the new ones (translating pointers), runs the new
//!    cells' transfer functions, patches the dependents and redirects the old cells' data references; finally it
//!    moves the dependency records, replaces the symbol-map entries (keeping the old names as aliases), and frees or
//!    retires each old cell. Its consistency model is documented in `swap/mod.rs`.
//!
//! # State transfer convention
//! A new cell may export `pub fn cell_state_transfer(transfer: &cell_namespace::StateTransfer<'_>) ->
//! Result<(), String>` (hash-free path `<crate>::cell_state_transfer`, an `STT_FUNC`). The swap calls it inside
//! the quiesced phase, after the default copy of every same-named, same-sized object and before any dependent is
//! patched; an `Err` aborts the swap with nothing changed. It finds objects by hash-free path
//! ([`StateTransfer::old_object`], [`StateTransfer::new_object`]) and marks the old objects it carried over
//! ([`StateTransfer::mark_transferred`]); an unmatched, unmarked old object makes the swap fail with
//! [`SwapError::StateDropped`] unless [`SwapOptions::fresh`]. Effects outside the new cell (re-registering an
//! interrupt handler or hook at the new copy's functions) go into [`StateTransfer::after_commit`], which runs them
//! once every dependent is patched and drops them if the swap aborts.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod base_image;
mod cell;
mod error;
mod integrity;
mod locks;
mod manifest;
mod memory;
mod namespace;
mod observer;
mod pins;
mod profile;
mod pushed;
mod stage;
mod swap;
mod transfer;

pub use base_image::{BaseSymbol, BaseSymbolError, BaseSymbolErrorKind, parse_base_symbols};
pub use cell::{
    CellSizes, ExportKind, ExportedSymbol, LoadedCell, LoadedSection, RelocationEntry, StrongDependency, WeakDependent,
    hash_free_name,
};
pub use error::{BaseImageError, FindFunctionError, LoadError, QuiesceError, SwapError};
pub use integrity::{CellIntegrity, DamagedRange, IntegrityError, IntegrityMode, IntegrityReport};
pub use locks::set_preemption_hooks;
pub use manifest::{CellKind, Manifest, ManifestEntry, ManifestError, ManifestErrorKind};
pub use memory::{CellMemory, MemoryError, MemoryRegion, RegionKind};
pub use namespace::{CellInfo, CellNamespace, NamespaceBusy, ObjectDirectory, ObjectInfo, SymbolInfo};
pub use observer::{CellObserver, set_cell_observer};
pub use pins::{AddressRange, NoPins, Pin, PinFinder, ReclaimReport, RetiredCellInfo};
pub use profile::{LoadPhase, LoadProfile, set_load_profiling, take_load_profile};
pub use pushed::PushedObjectError;
pub use swap::{
    RunQuiesced, SwapFaultPoint, SwapOptions, SwapPhase, SwapReport, SwapRollback, TransactionRecovery,
    inject_swap_fault,
};
pub use transfer::{CommitAction, ObjectLocation, StateTransfer};
