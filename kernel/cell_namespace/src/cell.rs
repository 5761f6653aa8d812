//! `LoadedCell` and `LoadedSection`: a cell in memory, with per-section bounds and dependency edges.
//!
//! Dependency edges exist only between sections of different cells (a relocation inside one cell never needs
//! rewriting, and an intra-cell edge would be an `Arc` cycle). The target section (which holds the relocation's
//! place) owns a [`StrongDependency`] on the source section (which holds the symbol); the source keeps a
//! [`WeakDependent`] back-reference. A section keeps its memory region alive, so a cell's memory is reclaimed when
//! its last section is dropped: when the namespace forgets the cell and no other cell depends on it.

use alloc::borrow::Cow;
use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::AtomicUsize;

use crate::locks::IrqSafeMutex;
use cell_loader::{RelocationType, SectionKind};
use memory_structs::VirtualAddress;
use rustc_demangle::try_demangle;

use crate::{CellKind, MemoryRegion};

/// One relocation that binds a place in a target section to a symbol in a source section of another cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelocationEntry {
    /// The relocation type.
    pub relocation_type: RelocationType,
    /// Offset of the place from the start of the target section, in bytes.
    pub offset: usize,
    /// The addend `A`.
    pub addend: i64,
    /// The mangled name of the symbol the place was bound through, borrowed from the dependent's object file
    /// (object files stay in memory for the kernel's lifetime): recording an edge allocates nothing for it.
    pub symbol: &'static str,
    /// Offset of that symbol from the start of the source section, in bytes (`S` = source address + this).
    pub symbol_offset: usize,
}

/// An outgoing edge: the section that holds this is patched by `relocation` to point into `section`.
#[derive(Clone)]
pub struct StrongDependency {
    /// The source section (in another cell), kept alive by this edge.
    pub section: Arc<LoadedSection>,
    /// The relocation at the place.
    pub relocation: RelocationEntry,
}

/// An incoming edge: `section` (in another cell) is patched by `relocation` to point into the section holding this.
#[derive(Clone)]
pub struct WeakDependent {
    /// The target section, which holds the place.
    pub section: Weak<LoadedSection>,
    /// The relocation at the place.
    pub relocation: RelocationEntry,
}

/// Where a loaded section's bytes live, for patching.
#[derive(Clone)]
pub(crate) struct SectionMemory {
    /// The region holding the section (kept alive by the section).
    pub(crate) region: Arc<dyn MemoryRegion>,
    /// Offset of the section from the region start, in bytes.
    pub(crate) offset: usize,
}

/// One section of a loaded cell (or one symbol of the base image).
pub struct LoadedSection {
    /// Borrowed from the object file (whose bytes live as long as the kernel) for loaded cells; owned for the
    /// base image. Not a fresh `String` per section: a load makes hundreds of sections.
    pub(crate) name: Cow<'static, str>,
    pub(crate) kind: SectionKind,
    pub(crate) address: VirtualAddress,
    pub(crate) size_in_bytes: usize,
    pub(crate) parent: Weak<LoadedCell>,
    /// `None` for base-image sections, which the loader never patches.
    pub(crate) memory: Option<SectionMemory>,
    /// Protects: this section's outgoing edges (pushed at load, moved by swap). Interrupt-safe (short); lock order:
    /// after the namespace's locks, before another section's `dependents` (see `locks.rs`).
    pub(crate) dependencies: IrqSafeMutex<Vec<StrongDependency>>,
    /// Protects: this section's incoming edges (pushed when a dependent loads, moved or pruned by swap).
    /// Interrupt-safe; last in the lock order.
    pub(crate) dependents: IrqSafeMutex<Vec<WeakDependent>>,
}

impl LoadedSection {
    /// Its name: the mangled name of the global symbol it defines, or else its ELF section name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its kind (text, read-only data, data, bss, `.eh_frame`, `.gcc_except_table`).
    pub fn kind(&self) -> SectionKind {
        self.kind
    }

    /// Its first address.
    pub fn address(&self) -> VirtualAddress {
        self.address
    }

    /// Its size in bytes.
    pub fn size_in_bytes(&self) -> usize {
        self.size_in_bytes
    }

    /// Whether `address` lies inside the section (start inclusive, end exclusive).
    pub fn contains(&self, address: VirtualAddress) -> bool {
        address >= self.address && address.value() - self.address.value() < self.size_in_bytes
    }

    /// The cell it belongs to, while that cell is alive.
    pub fn parent_cell(&self) -> Option<Arc<LoadedCell>> {
        self.parent.upgrade()
    }

    /// Overwrites `bytes.len()` bytes at `offset` from the section start (e.g. fault injection: corrupting a
    /// function with `ud2` on purpose). Base-image sections cannot be patched.
    ///
    /// # Errors
    /// [`MemoryError`](crate::MemoryError) if the section has no patchable memory or the range is out of bounds.
    ///
    /// # Safety
    /// No CPU may be executing or about to execute the overwritten bytes in a way that breaks if they change, and
    /// the new bytes must be what the caller wants every later caller of this code to run.
    pub unsafe fn patch_bytes(&self, offset: usize, bytes: &[u8]) -> Result<(), crate::MemoryError> {
        let memory = self.memory.as_ref().ok_or(crate::MemoryError::NotWritable { kind: crate::RegionKind::Text })?;
        if offset + bytes.len() > self.size_in_bytes {
            return Err(crate::MemoryError::OutOfBounds {
                offset,
                length: bytes.len(),
                region_size: self.size_in_bytes,
            });
        }
        // SAFETY: the range lies inside this section's bytes of its region; the caller's contract covers the CPUs.
        unsafe { memory.region.patch(memory.offset + offset, bytes) }
    }

    /// A snapshot of its outgoing edges (sections of other cells it refers to).
    pub fn dependencies(&self) -> Vec<StrongDependency> {
        self.dependencies.lock().clone()
    }

    /// A snapshot of its live incoming edges (sections of other cells that refer to it).
    pub fn dependents(&self) -> Vec<WeakDependent> {
        self.dependents.lock().iter().filter(|dependent| dependent.section.strong_count() > 0).cloned().collect()
    }
}

impl fmt::Debug for LoadedSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedSection")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("address", &self.address)
            .field("size_in_bytes", &self.size_in_bytes)
            .finish_non_exhaustive()
    }
}

/// A global symbol a cell exports.
#[derive(Clone, Debug)]
pub struct ExportedSymbol {
    /// The mangled name.
    pub name: String,
    /// Index of the defining section in [`LoadedCell::sections`].
    pub section: usize,
    /// Offset from the section start, in bytes.
    pub offset: usize,
    /// Weak binding: another definition may take precedence.
    pub weak: bool,
    /// What it is (from `st_type`) and its size (`st_size`).
    pub kind: ExportKind,
}

/// What an exported symbol is, from its ELF symbol type (`st_type`), with its size in bytes (`st_size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    /// `STT_FUNC`: a function.
    Function {
        /// Its size in bytes (0 if unknown).
        size_in_bytes: usize,
    },
    /// `STT_OBJECT`: a data object (a static).
    Data {
        /// Its size in bytes.
        size_in_bytes: usize,
    },
    /// Any other type (`STT_NOTYPE`, e.g. an assembly label).
    Untyped {
        /// Its size in bytes (0 if unknown).
        size_in_bytes: usize,
    },
}

impl ExportKind {
    /// The kind of a parsed symbol.
    pub fn of(symbol: &cell_loader::Symbol<'_>) -> Self {
        let size_in_bytes = usize::try_from(symbol.size).unwrap_or(usize::MAX);
        match symbol.symbol_type {
            cell_loader::SymbolType::Function => Self::Function { size_in_bytes },
            cell_loader::SymbolType::Object => Self::Data { size_in_bytes },
            _ => Self::Untyped { size_in_bytes },
        }
    }

    /// Whether a dependent bound to a symbol of kind `self` may be re-bound to one of kind `new`: both functions
    /// (of any size), both data objects of the same size, or both untyped.
    pub fn is_compatible_with(self, new: ExportKind) -> bool {
        match (self, new) {
            (Self::Function { .. }, Self::Function { .. }) | (Self::Untyped { .. }, Self::Untyped { .. }) => true,
            (Self::Data { size_in_bytes: old }, Self::Data { size_in_bytes: new }) => old == new,
            _ => false,
        }
    }
}

impl fmt::Display for ExportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Function { size_in_bytes } => write!(f, "a function of {size_in_bytes} bytes"),
            Self::Data { size_in_bytes } => write!(f, "a data object of {size_in_bytes} bytes"),
            Self::Untyped { size_in_bytes } => write!(f, "an untyped symbol of {size_in_bytes} bytes"),
        }
    }
}

/// Sizes of a cell's three regions, in bytes (the sum of its sections' sizes, without alignment padding).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CellSizes {
    /// Text bytes.
    pub text: usize,
    /// Read-only data bytes, including `.eh_frame` and `.gcc_except_table`.
    pub read_only_data: usize,
    /// Data and bss bytes.
    pub data: usize,
}

/// A cell in memory: its sections, exported symbols and metadata. The base image is one too (`nano_core`).
pub struct LoadedCell {
    pub(crate) name: String,
    pub(crate) kind: CellKind,
    pub(crate) object_file: Option<String>,
    pub(crate) sections: Vec<Arc<LoadedSection>>,
    pub(crate) exports: Vec<ExportedSymbol>,
    pub(crate) sizes: CellSizes,
    pub(crate) relocation_count: usize,
    pub(crate) load_duration_ns: Option<u64>,
    /// The object file's bytes (`None` for the base image), parsed again by a swap for state transfer.
    pub(crate) object_bytes: Option<&'static [u8]>,
    /// ELF section index -> index into `sections` (empty for the base image).
    pub(crate) section_slots: Vec<Option<usize>>,
    /// See [`LoadedCell::entry_memo`].
    pub(crate) entry_memo: AtomicUsize,
}

impl LoadedCell {
    /// Its name (from the manifest; `nano_core` for the base image).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A word (0 when the cell is loaded) in which a client may remember an address it derived from this cell's
    /// contents and checked, so later uses skip the lookup: `spawn` keeps the application entry function it
    /// found and validated here. It lives and dies with this loaded cell, so a swapped-in or reloaded cell starts
    /// with 0 again.
    pub fn entry_memo(&self) -> &AtomicUsize {
        &self.entry_memo
    }

    /// Kernel cell or application.
    pub fn kind(&self) -> CellKind {
        self.kind
    }

    /// The object file it was loaded from; `None` for the base image.
    pub fn object_file(&self) -> Option<&str> {
        self.object_file.as_deref()
    }

    /// Whether it is the statically linked base image.
    pub fn is_base_image(&self) -> bool {
        self.object_file.is_none()
    }

    /// Every loaded section (for the base image: one per symbol).
    pub fn sections(&self) -> &[Arc<LoadedSection>] {
        &self.sections
    }

    /// Its exported global symbols.
    pub fn exports(&self) -> &[ExportedSymbol] {
        &self.exports
    }

    /// The byte sizes of its text, read-only data and data.
    pub fn sizes(&self) -> CellSizes {
        self.sizes
    }

    /// How many relocations were applied when it was loaded.
    pub fn relocation_count(&self) -> usize {
        self.relocation_count
    }

    /// Duration of staging this cell (parse, allocate, copy; not resolving, relocating or other cells of the same
    /// transaction), in nanoseconds of the clock given to the load; `None` without a clock.
    pub fn load_duration_ns(&self) -> Option<u64> {
        self.load_duration_ns
    }

    /// The loaded section made from ELF section `index` of its object file.
    pub(crate) fn loaded_section(&self, index: usize) -> Option<&Arc<LoadedSection>> {
        self.sections.get((*self.section_slots.get(index)?)?)
    }

    /// The address ranges of its memory regions (its sections, merged where they touch); empty for the base image.
    pub fn address_ranges(&self) -> Vec<crate::AddressRange> {
        let mut ranges: Vec<crate::AddressRange> = Vec::new();
        let mut regions: Vec<(usize, usize)> = self
            .sections
            .iter()
            .filter_map(|section| section.memory.as_ref())
            .map(|memory| {
                let start = memory.region.start_address().value();
                (start, start.saturating_add(memory.region.size_in_bytes()))
            })
            .collect();
        regions.sort_unstable();
        regions.dedup();
        for (start, end) in regions {
            let (Ok(start), Ok(end)) = (VirtualAddress::try_new(start), VirtualAddress::try_new(end)) else { continue };
            match ranges.last_mut() {
                Some(last) if last.end >= start => last.end = last.end.max(end),
                _ => ranges.push(crate::AddressRange { start, end }),
            }
        }
        ranges
    }

    /// Its `.eh_frame` sections (normally one), kept for the unwinder.
    pub fn eh_frames(&self) -> impl Iterator<Item = &Arc<LoadedSection>> {
        self.sections.iter().filter(|section| section.kind == SectionKind::EhFrame)
    }

    /// Its `.gcc_except_table*` sections (LSDAs), kept for the unwinder.
    pub fn gcc_except_tables(&self) -> impl Iterator<Item = &Arc<LoadedSection>> {
        self.sections.iter().filter(|section| section.kind == SectionKind::GccExceptTable)
    }

    /// The section containing `address`, if any.
    pub fn section_containing(&self, address: VirtualAddress) -> Option<&Arc<LoadedSection>> {
        self.sections.iter().find(|section| section.contains(address))
    }

    /// The address of exported symbol `name` (mangled).
    pub fn symbol_address(&self, name: &str) -> Option<VirtualAddress> {
        let export = self.exports.iter().find(|export| export.name == name)?;
        let section = self.sections.get(export.section)?;
        VirtualAddress::try_new(section.address.value().wrapping_add(export.offset)).ok()
    }

    /// Names of the other cells its sections depend on.
    pub fn dependency_cells(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for section in &self.sections {
            for dependency in section.dependencies.lock().iter() {
                if let Some(cell) = dependency.section.parent_cell() {
                    names.insert(cell.name.clone());
                }
            }
        }
        names
    }

    /// Names of the other cells whose sections depend on its sections.
    pub fn dependent_cells(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for section in &self.sections {
            for dependent in section.dependents.lock().iter() {
                if let Some(cell) = dependent.section.upgrade().and_then(|section| section.parent_cell()) {
                    names.insert(cell.name.clone());
                }
            }
        }
        names
    }
}

impl fmt::Debug for LoadedCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCell")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("object_file", &self.object_file)
            .field("sections", &self.sections.len())
            .field("sizes", &self.sizes)
            .finish_non_exhaustive()
    }
}

/// The name two builds of "the same" crate share for a symbol: the demangled path without crate hashes
/// (`format!("{:#}", demangle(name))`, e.g. `hello::main`); non-Rust names are returned unchanged.
pub fn hash_free_name(mangled: &str) -> String {
    match try_demangle(mangled) {
        Ok(demangled) => alloc::format!("{demangled:#}"),
        Err(_) => String::from(mangled),
    }
}
