//! The load transaction: staged cells are loaded and relocated in private, then built and published at once.
//!
//! Steps (each may fail; a failure drops the [`Transaction`], which frees every staged region, and nothing was
//! published):
//! 1. [`Transaction::stage`]: find the object, parse it, lay its sections out in three regions, allocate them, copy
//!    the bytes, zero the bss, and note its exported symbols (not yet visible to anyone else).
//! 2. [`Transaction::resolve_all`]: for each undefined symbol of each staged cell, in order: the staged cells, the
//!    symbol maps of the namespace and its parents, then the cell the manifest names as the definer, which is
//!    staged too and joins the worklist (so a cycle A <-> B resolves with both staged).
//! 3. [`Transaction::relocate_all`]: apply every relocation of every staged cell, noting cross-cell edges.
//! 4. [`Transaction::finalize_all`]: apply the final W^X permissions.
//! 5. [`Transaction::check_conflicts`]: no exported symbol may clash with a visible one (weak ones excepted).
//!
//! Then, infallibly: [`Transaction::build`] makes the `LoadedCell`s and records the dependency edges, and
//! [`Transaction::publish`] inserts the cells and their symbols into their namespaces (both in `publish.rs`).

mod publish;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use crate::locks::TransactionGuard;
use cell_loader::{
    ObjectFile, RelocationType, SectionIndex, SectionKind, SectionType, Symbol, SymbolBinding, SymbolDefinition,
    SymbolIndex, apply_relocation,
};
use memory_structs::{PAGE_SIZE, VirtualAddress};

use crate::cell::{CellSizes, LoadedCell, LoadedSection, RelocationEntry};
use crate::profile::{LoadPhase, PhaseClock};
use crate::{CellNamespace, LoadError, ManifestEntry, MemoryError, MemoryRegion, RegionKind};

/// Where one loaded section of a staged cell sits.
#[derive(Clone, Copy)]
struct Placement {
    region: RegionKind,
    offset: usize,
    size: usize,
    address: VirtualAddress,
}

/// What an undefined symbol of a staged cell was bound to.
#[derive(Clone)]
pub(crate) enum Resolution {
    /// A section of a staged cell (by index into the transaction's staged cells).
    Staged { cell: usize, section: SectionIndex, offset: usize },
    /// A section of a published cell.
    Published { section: Arc<LoadedSection>, offset: usize },
    /// An undefined weak symbol: address 0.
    Zero,
}

/// The source end of a cross-cell dependency edge. No `Arc`: an edge costs no reference-count traffic until `build`
/// records it (once per edge, on the sections that keep it).
#[derive(Clone, Copy)]
enum EdgeSource {
    Staged {
        cell: usize,
        section: SectionIndex,
    },
    /// The published section that undefined symbol `.0` of the edge's own cell resolved to
    /// ([`Resolution::Published`] in its `resolutions`).
    Published(SymbolIndex),
}

/// A cross-cell dependency found while relocating.
struct Edge {
    target: SectionIndex,
    source: EdgeSource,
    relocation: RelocationEntry,
}

/// A cell loaded into memory but not yet visible in any namespace.
pub(crate) struct StagedCell {
    /// Index into the transaction's namespace chain of the namespace it will be published in.
    pub(crate) depth: usize,
    pub(crate) entry: ManifestEntry,
    object: ObjectFile<'static>,
    regions: [Option<Box<dyn MemoryRegion>>; 3],
    placements: Vec<Option<Placement>>,
    /// Exported symbol name -> its symbol table index.
    pub(crate) exports: BTreeMap<&'static str, SymbolIndex>,
    /// Symbol table index -> what that undefined symbol was bound to (`None`: not an undefined symbol a
    /// relocation uses, or not resolved yet). A table, not a map: relocate looks it up once per relocation.
    resolutions: Vec<Option<Resolution>>,
    edges: Vec<Edge>,
    sizes: CellSizes,
    relocation_count: usize,
    /// The object file's bytes.
    pub(crate) bytes: &'static [u8],
    /// How long staging this cell took (parse, allocate, copy), in nanoseconds of the transaction's clock.
    stage_ns: Option<u64>,
}

impl StagedCell {
    /// The exported symbol `name` as a resolution, with its section and offset.
    fn export(&self, cell: usize, name: &str) -> Option<Resolution> {
        let symbol = self.object.symbol(*self.exports.get(name)?)?;
        let SymbolDefinition::Section(section) = symbol.definition else { return None };
        Some(Resolution::Staged { cell, section, offset: symbol.value as usize })
    }

    /// The exported symbol `name` as (section index, offset in section).
    pub(crate) fn export_location(&self, name: &str) -> Option<(SectionIndex, usize)> {
        match self.export(0, name)? {
            Resolution::Staged { section, offset, .. } => Some((section, offset)),
            _ => None,
        }
    }

    /// The address of `offset` bytes into section `section`.
    pub(crate) fn address_of(&self, section: SectionIndex, offset: usize) -> Option<u64> {
        let placement = self.placements.get(section.as_usize())?.as_ref()?;
        Some((placement.address.value() as u64).wrapping_add(offset as u64))
    }

    /// The kind and size of exported symbol `name`.
    pub(crate) fn export_kind(&self, name: &str) -> Option<crate::ExportKind> {
        Some(crate::ExportKind::of(self.object.symbol(*self.exports.get(name)?)?))
    }

    fn is_weak(&self, name: &str) -> bool {
        let symbol = self.exports.get(name).and_then(|&index| self.object.symbol(index));
        symbol.is_some_and(|symbol| symbol.binding == SymbolBinding::Weak)
    }
}

/// What a lookup in the published symbol maps found.
enum Published {
    Found {
        section: Arc<LoadedSection>,
        offset: usize,
    },
    /// Only a cell that is being replaced defines it.
    InReplacedCell(String),
    NotFound,
}

/// One load (or swap staging) in progress. Holds the transaction locks of the namespace and its ancestors.
pub(crate) struct Transaction<'a> {
    /// The namespace the transaction started in, then its parent, and so on.
    chain: Vec<&'a CellNamespace>,
    _guards: Vec<TransactionGuard<'a>>,
    pub(crate) staged: Vec<StagedCell>,
    resolved_up_to: usize,
    /// Cells a swap is replacing: nothing staged may bind to them.
    replaced: Vec<Arc<LoadedCell>>,
    clock: Option<&'a dyn Fn() -> u64>,
}

fn region_for(kind: SectionKind) -> Option<RegionKind> {
    match kind {
        SectionKind::Text => Some(RegionKind::Text),
        SectionKind::ReadOnlyData | SectionKind::EhFrame | SectionKind::GccExceptTable => {
            Some(RegionKind::ReadOnlyData)
        }
        SectionKind::Data | SectionKind::Bss => Some(RegionKind::Data),
        SectionKind::NotLoaded => None,
    }
}

/// A symbol's name for error messages and dependency edges: its own name, or for section symbols the section's name.
fn display_name<'o>(object: &ObjectFile<'o>, symbol: &Symbol<'o>) -> &'o str {
    match symbol.definition {
        SymbolDefinition::Section(index) if symbol.name.is_empty() => {
            object.section(index).map(|section| section.name).unwrap_or_default()
        }
        _ => symbol.name,
    }
}

impl<'a> Transaction<'a> {
    /// Starts a transaction in `namespace`: takes the transaction locks (child first, then each parent).
    pub(crate) fn begin(
        namespace: &'a CellNamespace,
        replaced: Vec<Arc<LoadedCell>>,
        clock: Option<&'a dyn Fn() -> u64>,
    ) -> Self {
        let (chain, guards) = namespace.lock_chain();
        Self { chain, _guards: guards, staged: Vec::new(), resolved_up_to: 0, replaced, clock }
    }

    /// Sets the cells a swap replaces: nothing staged may bind to them, and their symbols do not clash.
    pub(crate) fn set_replaced(&mut self, replaced: Vec<Arc<LoadedCell>>) {
        self.replaced = replaced;
    }

    /// The namespace the transaction started in.
    pub(crate) fn namespace(&self) -> &'a CellNamespace {
        self.chain[0]
    }

    /// The cell `name` if it is published in the namespace at `depth` or an ancestor.
    pub(crate) fn find_loaded(&self, name: &str, depth: usize) -> Option<Arc<LoadedCell>> {
        let chain = self.chain.get(depth..).unwrap_or_default();
        chain.iter().find_map(|namespace| namespace.state.read().cells.get(name).cloned())
    }

    /// The manifest entry of cell `name` in the namespace at `depth` or an ancestor.
    pub(crate) fn find_manifest_cell(&self, name: &str, depth: usize) -> Option<ManifestEntry> {
        let chain = self.chain.get(depth..).unwrap_or_default();
        chain.iter().find_map(|namespace| namespace.manifest.read().cell(name).cloned())
    }

    fn find_defining_cell(&self, symbol: &str, depth: usize) -> Option<ManifestEntry> {
        let chain = self.chain.get(depth..).unwrap_or_default();
        chain.iter().find_map(|namespace| namespace.manifest.read().defining_cell(symbol).cloned())
    }

    /// The depth of the nearest namespace, from `depth` up, whose directory holds `entry`'s object file.
    pub(crate) fn owner_depth(&self, entry: &ManifestEntry, depth: usize) -> Result<usize, LoadError> {
        (depth..self.chain.len())
            .find(|&index| self.chain[index].directory.read().get(&entry.object_file).is_some())
            .ok_or(LoadError::ObjectNotFound { cell: entry.name.clone(), object_file: entry.object_file.clone() })
    }

    fn is_replaced(&self, cell: &Arc<LoadedCell>) -> bool {
        self.replaced.iter().any(|replaced| Arc::ptr_eq(replaced, cell))
    }

    /// Looks `name` up in the published symbol maps from `depth` up, skipping dead entries.
    fn find_published(&self, name: &str, depth: usize) -> Published {
        for namespace in self.chain.get(depth..).unwrap_or_default() {
            // One upgrade of the entry's weak reference under the read lock (no copy of the entry): this runs once
            // per undefined symbol of every load.
            let found = namespace.state.read().symbol_map.get(name).and_then(|target| {
                let (section, _) = target.address()?;
                Some((section, target.offset))
            });
            let Some((section, offset)) = found else { continue };
            if !self.replaced.is_empty()
                && let Some(cell) = section.parent_cell()
                && self.is_replaced(&cell)
            {
                return Published::InReplacedCell(cell.name.clone());
            }
            return Published::Found { section, offset };
        }
        Published::NotFound
    }

    /// Step 1: loads cell `entry` into fresh regions, to be published in the namespace at `depth`. Returns its
    /// index among the staged cells.
    pub(crate) fn stage(&mut self, entry: ManifestEntry, depth: usize) -> Result<usize, LoadError> {
        let started = self.clock.map(|clock| clock());
        let phases = PhaseClock::new(self.clock);
        let lap = phases.now();
        let cell = entry.name.clone();
        let chain = self.chain.get(depth..).unwrap_or_default();
        let bytes = chain
            .iter()
            .find_map(|namespace| namespace.directory.read().get(&entry.object_file))
            .ok_or(LoadError::ObjectNotFound { cell: cell.clone(), object_file: entry.object_file.clone() })?;
        let object = ObjectFile::parse(bytes).map_err(|error| LoadError::Parse { cell: cell.clone(), error })?;
        let lap = phases.lap(LoadPhase::Parse, lap);

        // Lay the sections out: one region per kind, each section at its alignment; in an application cell, a
        // text section of at most a page never straddles a page boundary (it starts on the next page instead).
        // Under QEMU's TCG a jump between two pages is not chained from one translated block to the next, so a hot
        // loop laid across a boundary goes through the block lookup on every iteration: the bench's heap loop
        // measured 42-43 ns per allocation across one and 28-29 ns within a page. Kernel cells stay packed: the
        // same rule for them moved the context switch path from 215-231 ns to 267-285 ns (more of its small hot
        // functions on pages of their own). Real CPUs do not care; the padding costs at most one section per page.
        let mut cursors = [0_usize; 3];
        let mut sizes = CellSizes::default();
        let mut layout = vec![None; object.sections().len()];
        for section in object.sections() {
            let Some(region) = region_for(section.kind) else { continue };
            let too_large = || LoadError::SectionTooLarge { cell: cell.clone(), section: section.name.to_string() };
            let size = usize::try_from(section.size).map_err(|_| too_large())?;
            let cursor = &mut cursors[region.index()];
            let mut offset = cursor.checked_next_multiple_of(section.alignment as usize).ok_or_else(too_large)?;
            if region == RegionKind::Text
                && entry.kind == crate::CellKind::Application
                && (1..=PAGE_SIZE).contains(&size)
                && offset / PAGE_SIZE != (offset + size - 1) / PAGE_SIZE
            {
                offset = offset.next_multiple_of(PAGE_SIZE);
            }
            *cursor = offset.checked_add(size).ok_or_else(too_large)?;
            match region {
                RegionKind::Text => sizes.text += size,
                RegionKind::ReadOnlyData => sizes.read_only_data += size,
                RegionKind::Data => sizes.data += size,
            }
            layout[section.index.as_usize()] = Some((region, offset, size));
        }

        // Allocate and clear the regions.
        let memory_error = |error| LoadError::Memory { cell: cell.clone(), error };
        let mut regions: [Option<Box<dyn MemoryRegion>>; 3] = Default::default();
        for kind in RegionKind::ALL {
            let size = cursors[kind.index()];
            if size == 0 {
                continue;
            }
            let mut region = self.chain[depth].memory().allocate(size, kind).map_err(memory_error)?;
            let start = region.start_address();
            if start.value() % PAGE_SIZE != 0 {
                return Err(memory_error(MemoryError::MisalignedRegion { start }));
            }
            let region_size = region.size_in_bytes();
            let bytes = region.as_mut_slice().ok_or_else(|| memory_error(MemoryError::NotWritable { kind }))?;
            if region_size < size || bytes.len() < size {
                return Err(memory_error(MemoryError::OutOfBounds { offset: 0, length: size, region_size }));
            }
            bytes.fill(0);
            regions[kind.index()] = Some(region);
        }
        let lap = phases.lap(LoadPhase::AllocateAndMap, lap);

        // Copy the sections (bss stays zero) and note their addresses.
        let mut placements = vec![None; layout.len()];
        for (index, slot) in layout.iter().enumerate() {
            let Some((region_kind, offset, size)) = *slot else { continue };
            if size == 0 && regions[region_kind.index()].is_none() {
                // An empty section in a region that is empty as a whole (e.g. the empty `.text` of a data-only
                // crate such as a font, whose functions are all inlined into its users): nothing to copy and no
                // memory to place it in. It stays unplaced, like a non-allocated section.
                continue;
            }
            let out_of_bounds =
                MemoryError::OutOfBounds { offset, length: size, region_size: cursors[region_kind.index()] };
            // Errors are built only on failure: each clones the cell name, and this runs once per section.
            let region = regions[region_kind.index()].as_mut().ok_or_else(|| memory_error(out_of_bounds))?;
            let address = VirtualAddress::try_new(region.start_address().value().wrapping_add(offset))
                .map_err(|_| memory_error(out_of_bounds))?;
            let section = &object.sections()[index];
            if section.section_type != SectionType::NoBits {
                let not_writable = || memory_error(MemoryError::NotWritable { kind: region_kind });
                let bytes = region.as_mut_slice().ok_or_else(not_writable)?;
                let destination = bytes.get_mut(offset..offset + size).ok_or_else(|| memory_error(out_of_bounds))?;
                let source = section.data.get(..size).ok_or_else(|| memory_error(out_of_bounds))?;
                destination.copy_from_slice(source);
            }
            placements[index] = Some(Placement { region: region_kind, offset, size, address });
        }
        phases.lap(LoadPhase::Copy, lap);
        phases.count_cell();

        let object_symbols = object.symbols().len();
        let mut exports = BTreeMap::new();
        for (index, symbol) in object.exported_symbols() {
            exports.entry(symbol.name).or_insert(index);
        }
        self.staged.push(StagedCell {
            depth,
            entry,
            object,
            regions,
            placements,
            exports,
            resolutions: vec![None; object_symbols],
            edges: Vec::new(),
            sizes,
            relocation_count: 0,
            bytes,
            stage_ns: self.clock.zip(started).map(|(clock, started)| clock().saturating_sub(started)),
        });
        Ok(self.staged.len() - 1)
    }

    /// Step 2: binds every undefined symbol of every staged cell, staging the defining cells the manifest names.
    pub(crate) fn resolve_all(&mut self) -> Result<(), LoadError> {
        while self.resolved_up_to < self.staged.len() {
            let index = self.resolved_up_to;
            self.resolved_up_to += 1;
            // Each distinct undefined symbol once, in the order of its first use (which names the section in an
            // error): a relocation's symbol is looked up in the symbol maps only the first time it is seen.
            let cell = &self.staged[index];
            let mut seen = vec![false; cell.object.symbols().len()];
            let mut needed = Vec::new();
            for relocations in cell.object.relocation_sections() {
                let section = cell.object.section(relocations.target).map_or("", |section| section.name);
                for relocation in cell.object.relocations(relocations) {
                    let Some(symbol) = cell.object.symbol(relocation.symbol) else { continue };
                    let relevant = relocation.relocation_type != RelocationType::None
                        && symbol.definition == SymbolDefinition::Undefined
                        && !symbol.name.is_empty();
                    let Some(seen) = seen.get_mut(relocation.symbol.as_usize()) else { continue };
                    if relevant && !*seen {
                        *seen = true;
                        needed.push((relocation.symbol, symbol.name, section, symbol.binding == SymbolBinding::Weak));
                    }
                }
            }
            for (symbol_index, name, section, weak) in needed {
                let resolution = self.resolve(index, name, section, weak)?;
                if let Some(slot) = self.staged[index].resolutions.get_mut(symbol_index.as_usize()) {
                    *slot = Some(resolution);
                }
            }
        }
        Ok(())
    }

    fn find_staged_export(&self, name: &str, depth: usize) -> Option<Resolution> {
        let mut visible = self.staged.iter().enumerate().filter(|(_, cell)| cell.depth >= depth);
        visible.find_map(|(index, cell)| cell.export(index, name))
    }

    fn resolve(&mut self, index: usize, name: &str, section: &str, weak: bool) -> Result<Resolution, LoadError> {
        let depth = self.staged[index].depth;
        if let Some(resolution) = self.find_staged_export(name, depth) {
            return Ok(resolution);
        }
        let published = self.find_published(name, depth);
        if let Published::Found { section, offset } = published {
            return Ok(Resolution::Published { section, offset });
        }
        // Only past the two common cases (staged, published) is the cell's name needed, for errors.
        let cell = self.staged[index].entry.name.clone();
        let replaced_error = |replaced_cell| LoadError::BindsToReplacedCell {
            cell: cell.clone(),
            symbol: name.to_string(),
            replaced_cell,
        };
        if let Published::InReplacedCell(replaced_cell) = published {
            return Err(replaced_error(replaced_cell));
        }
        if let Some(entry) = self.find_defining_cell(name, depth) {
            let staged = self.staged.iter().any(|staged| staged.entry.name == entry.name);
            if let Some(replaced) = self.replaced.iter().find(|replaced| replaced.name == entry.name) {
                return Err(replaced_error(replaced.name.clone()));
            }
            // A definer that is already staged or published but lacks the symbol is a manifest error: undefined.
            if !staged && self.find_loaded(&entry.name, depth).is_none() {
                let owner = self.owner_depth(&entry, depth)?;
                let new_index = self.stage(entry, owner)?;
                if let Some(resolution) = self.staged[new_index].export(new_index, name) {
                    return Ok(resolution);
                }
            }
        }
        if weak {
            return Ok(Resolution::Zero);
        }
        Err(LoadError::UndefinedSymbol { cell, section: section.to_string(), symbol: name.to_string() })
    }

    /// The address `S` of relocation symbol `symbol_index` of staged cell `index`, and the cross-cell source.
    fn symbol_address(&self, index: usize, symbol_index: SymbolIndex) -> Option<(u64, Option<EdgeSource>, usize)> {
        let cell = &self.staged[index];
        let symbol = cell.object.symbol(symbol_index)?;
        match symbol.definition {
            SymbolDefinition::Section(section) => {
                Some((cell.address_of(section, symbol.value as usize)?, None, symbol.value as usize))
            }
            SymbolDefinition::Absolute => Some((symbol.value, None, 0)),
            SymbolDefinition::Undefined if symbol.name.is_empty() => Some((0, None, 0)),
            SymbolDefinition::Undefined => match cell.resolutions.get(symbol_index.as_usize())?.as_ref()? {
                Resolution::Staged { cell: source_cell, section, offset } => {
                    let address = self.staged.get(*source_cell)?.address_of(*section, *offset)?;
                    let source =
                        (*source_cell != index).then_some(EdgeSource::Staged { cell: *source_cell, section: *section });
                    Some((address, source, *offset))
                }
                Resolution::Published { section, offset } => {
                    let address = (section.address().value() as u64).wrapping_add(*offset as u64);
                    Some((address, Some(EdgeSource::Published(symbol_index)), *offset))
                }
                Resolution::Zero => Some((0, None, 0)),
            },
        }
    }

    /// Step 3: applies every relocation of every staged cell.
    pub(crate) fn relocate_all(&mut self) -> Result<(), LoadError> {
        for index in 0..self.staged.len() {
            let mut regions = core::mem::take(&mut self.staged[index].regions);
            let result = self.relocate_cell(index, &mut regions);
            self.staged[index].regions = regions;
            let (edges, count) = result?;
            self.staged[index].edges = edges;
            self.staged[index].relocation_count = count;
        }
        Ok(())
    }

    fn relocate_cell(
        &self,
        index: usize,
        regions: &mut [Option<Box<dyn MemoryRegion>>; 3],
    ) -> Result<(Vec<Edge>, usize), LoadError> {
        let cell = &self.staged[index];
        let name = &cell.entry.name;
        let object = &cell.object;
        let symbol_name = |symbol: SymbolIndex| object.symbol(symbol).map(|symbol| display_name(object, symbol));
        let symbol_name = |symbol| symbol_name(symbol).unwrap_or_default();
        // Sized once for the worst case (every relocation crosses cells); it lives only until `build`.
        let mut edges = Vec::with_capacity(object.relocation_count());
        let mut count = 0;
        for relocations in object.relocation_sections() {
            let section_name = || object.section(relocations.target).map_or("", |section| section.name).to_string();
            let Some(target) = cell.placements.get(relocations.target.as_usize()).copied().flatten() else { continue };
            let not_writable =
                || LoadError::Memory { cell: name.clone(), error: MemoryError::NotWritable { kind: target.region } };
            let region = regions[target.region.index()].as_mut().ok_or_else(not_writable)?;
            let bytes = region.as_mut_slice().ok_or_else(not_writable)?;
            for relocation in object.relocations(relocations) {
                if relocation.relocation_type == RelocationType::None {
                    continue;
                }
                // Errors (and their strings) are built only on failure.
                let undefined = || LoadError::UndefinedSymbol {
                    cell: name.clone(),
                    section: section_name(),
                    symbol: symbol_name(relocation.symbol).to_string(),
                };
                let (symbol_address, source, symbol_offset) =
                    self.symbol_address(index, relocation.symbol).ok_or_else(undefined)?;
                // The parser checked that the field lies inside the section, and the section inside the region.
                let place_offset = target.offset + relocation.offset as usize;
                let place = bytes.get_mut(place_offset..target.offset + target.size).ok_or_else(undefined)?;
                let place_address = (target.address.value() as u64).wrapping_add(relocation.offset);
                apply_relocation(relocation.relocation_type, place, place_address, symbol_address, relocation.addend)
                    .map_err(|error| LoadError::Relocation {
                    cell: name.clone(),
                    section: section_name(),
                    symbol: symbol_name(relocation.symbol).to_string(),
                    error,
                })?;
                count += 1;
                if let Some(source) = source {
                    let relocation = RelocationEntry {
                        relocation_type: relocation.relocation_type,
                        offset: relocation.offset as usize,
                        addend: relocation.addend,
                        symbol: symbol_name(relocation.symbol),
                        symbol_offset,
                    };
                    edges.push(Edge { target: relocations.target, source, relocation });
                }
            }
        }
        Ok((edges, count))
    }

    /// Step 4: applies the final permissions to every staged region.
    pub(crate) fn finalize_all(&mut self) -> Result<(), LoadError> {
        for cell in &mut self.staged {
            for region in cell.regions.iter_mut().flatten() {
                region.finalize().map_err(|error| LoadError::Memory { cell: cell.entry.name.clone(), error })?;
            }
        }
        Ok(())
    }

    /// Step 5: checks that no staged export clashes with another (weak symbols may be defined twice; the first
    /// definition wins). Symbols of replaced cells do not count.
    pub(crate) fn check_conflicts(&self) -> Result<(), LoadError> {
        for (index, cell) in self.staged.iter().enumerate() {
            for &name in cell.exports.keys() {
                let duplicate = |existing_cell: &str| LoadError::DuplicateSymbol {
                    cell: cell.entry.name.clone(),
                    symbol: name.to_string(),
                    existing_cell: existing_cell.to_string(),
                };
                let weak = cell.is_weak(name);
                for other in self.staged[..index].iter().filter(|other| other.depth == cell.depth) {
                    if other.exports.contains_key(name) && !weak && !other.is_weak(name) {
                        return Err(duplicate(&other.entry.name));
                    }
                }
                if let Published::Found { section, .. } = self.find_published(name, cell.depth) {
                    let owner = section.parent_cell();
                    let owner_weak = owner
                        .as_ref()
                        .is_some_and(|owner| owner.exports.iter().any(|export| export.name == name && export.weak));
                    if !weak && !owner_weak {
                        return Err(duplicate(owner.as_ref().map_or("?", |owner| owner.name.as_str())));
                    }
                }
            }
        }
        Ok(())
    }
}
