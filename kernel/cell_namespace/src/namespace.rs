//! `CellNamespace`: the object directory, the manifest, the loaded cells and the symbol map, plus the queries the
//! shell needs.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use hashbrown::HashMap;

use cell_loader::SectionKind;
use memory_structs::VirtualAddress;

use crate::cell::{CellSizes, ExportedSymbol, LoadedCell, LoadedSection, hash_free_name};
use crate::locks::{IrqSafeMutex, IrqSafeRwLock, TransactionGuard, TransactionLock};
use crate::profile::{self, LoadPhase, PhaseClock};
use crate::stage::Transaction;
use crate::{BaseImageError, BaseSymbol, CellKind, CellMemory, FindFunctionError, LoadError, Manifest};

/// The object files a namespace can load cells from: file name -> bytes.
///
/// The kernel fills it from boot modules; bytes must start 8-byte aligned (boot modules are page-aligned).
#[derive(Clone, Debug, Default)]
pub struct ObjectDirectory {
    objects: BTreeMap<String, &'static [u8]>,
}

impl ObjectDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces object `file_name`; returns the bytes it replaced.
    pub fn insert(&mut self, file_name: &str, bytes: &'static [u8]) -> Option<&'static [u8]> {
        self.objects.insert(file_name.to_string(), bytes)
    }

    /// The bytes of object `file_name`.
    pub fn get(&self, file_name: &str) -> Option<&'static [u8]> {
        self.objects.get(file_name).copied()
    }

    /// Every object as (file name, bytes), sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'static [u8])> {
        self.objects.iter().map(|(name, bytes)| (name.as_str(), *bytes))
    }
}

/// Where a symbol-map entry points: a section and the symbol's offset in it.
#[derive(Clone, Debug)]
pub(crate) struct SymbolTarget {
    pub(crate) section: Weak<LoadedSection>,
    pub(crate) offset: usize,
}

impl SymbolTarget {
    pub(crate) fn address(&self) -> Option<(Arc<LoadedSection>, VirtualAddress)> {
        let section = self.section.upgrade()?;
        let address = VirtualAddress::try_new(section.address().value().wrapping_add(self.offset)).ok()?;
        Some((section, address))
    }
}

/// The loaded cells and the symbol map of one namespace; they change together.
#[derive(Default)]
pub(crate) struct NamespaceState {
    pub(crate) cells: BTreeMap<String, Arc<LoadedCell>>,
    /// Mangled symbol name -> the section defining it. Weak: the cell owns its sections. A hash map: a load looks
    /// every undefined symbol up here, and mangled names of one crate share long prefixes, which made each
    /// ordered-map lookup dozens of long string comparisons (and its cost grow with the map).
    pub(crate) symbol_map: HashMap<String, SymbolTarget>,
    /// Cell name -> the names of swapped-out cells' symbols that the symbol map points at that cell's
    /// equivalents (see "Names after a swap" in `swap/mod.rs`).
    pub(crate) aliases: BTreeMap<String, Vec<String>>,
}

/// [`CellNamespace::try_cell_containing`] found the cell table write-locked (a load or swap is publishing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespaceBusy;

/// One row of [`CellNamespace::cells`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellInfo {
    /// The cell name.
    pub name: String,
    /// Kernel cell or application.
    pub kind: CellKind,
    /// The object file; `None` for the base image.
    pub object_file: Option<String>,
    /// Byte sizes of text, read-only data and data.
    pub sizes: CellSizes,
    /// Relocations applied at load.
    pub relocation_count: usize,
    /// How many other cells it depends on.
    pub dependency_count: usize,
    /// How many other cells depend on it.
    pub dependent_count: usize,
}

/// One row of [`CellNamespace::objects`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object file name.
    pub file_name: String,
    /// Its size in bytes.
    pub size_in_bytes: usize,
    /// The cell the manifest says it holds.
    pub cell: Option<String>,
}

/// The result of a symbol lookup.
#[derive(Clone, Debug)]
pub struct SymbolInfo {
    /// The section defining the symbol.
    pub section: Arc<LoadedSection>,
    /// The symbol's address.
    pub address: VirtualAddress,
}

/// A set of loaded cells with one symbol map, optionally layered on a parent namespace.
///
/// The kernel namespace holds kernel cells and the base image; the application namespace is layered on it: its
/// lookups fall back to the parent, and a cell whose object file only the parent's directory holds is loaded into
/// the parent. Lock order: a transaction takes its own namespace's `transaction` lock, then each ancestor's.
pub struct CellNamespace {
    name: String,
    memory: Arc<dyn CellMemory>,
    parent: Option<Arc<CellNamespace>>,
    /// Protects: the object directory. Written only by [`add_object`](Self::add_object). Interrupt-safe (short
    /// sections); lock order: after `manifest`, before `state` (all lock kinds and the order: `locks.rs`).
    pub(crate) directory: IrqSafeRwLock<ObjectDirectory>,
    /// Protects: the manifest, shared so that interrupts are masked only while a reader copies the `Arc` or looks
    /// one entry up, and while [`add_object`](Self::add_object) (its only writer, under `transaction`) swaps in a
    /// manifest it built outside the lock. Interrupt-safe; after `transaction`, before `directory`.
    pub(crate) manifest: IrqSafeRwLock<Arc<Manifest>>,
    /// Serializes transactions (loads, swaps, adding the base image): held for a whole transaction, by this
    /// namespace's transactions and by those of child namespaces, which may stage cells into this one. Held for
    /// milliseconds, so not interrupt-safe: its holder runs with preemption disabled (a [`TransactionLock`]).
    /// First in the lock order (this namespace's, then each ancestor's).
    pub(crate) transaction: TransactionLock,
    /// Protects: the loaded cells and the symbol map. Read by lookups; written only at a transaction's publish or
    /// commit step, while the `transaction` lock is held. Interrupt-safe; after `directory`, before any section's
    /// dependency locks.
    pub(crate) state: IrqSafeRwLock<NamespaceState>,
    /// Protects: the optional clock used to time loads (nanoseconds, monotonic). Interrupt-safe; a leaf.
    clock: IrqSafeRwLock<Option<fn() -> u64>>,
    /// Protects: the retired cells (swapped out, still pinned). Interrupt-safe; taken after the transaction locks,
    /// never inside a quiesced function; holds no other lock.
    pub(crate) retired: IrqSafeMutex<Vec<crate::swap::retire::RetiredCell>>,
    /// How far the swap in progress got (a `SwapPhase`; lock-free, also written inside the quiesced phase), for
    /// the rollback of a swap whose task failed (`swap/rollback.rs`). Written only by the transaction holder.
    pub(crate) swap_phase: core::sync::atomic::AtomicU8,
    /// Protects: what that rollback needs (the built cells, the precomputed stores). Interrupt-safe; taken alone,
    /// by the transaction holder (and by the recovery of a dead holder, with a try-lock), never inside a quiesced
    /// function.
    pub(crate) swap_journal: IrqSafeMutex<Option<crate::swap::rollback::SwapJournal>>,
}

impl CellNamespace {
    /// A namespace named `name` with no loaded cells, allocating cell memory from `memory`.
    pub fn new(
        name: &str,
        memory: Arc<dyn CellMemory>,
        directory: ObjectDirectory,
        manifest: Manifest,
        parent: Option<Arc<CellNamespace>>,
    ) -> Self {
        Self {
            name: name.to_string(),
            memory,
            parent,
            directory: IrqSafeRwLock::new(directory),
            manifest: IrqSafeRwLock::new(Arc::new(manifest)),
            transaction: TransactionLock::new(),
            state: IrqSafeRwLock::new(NamespaceState::default()),
            clock: IrqSafeRwLock::new(None),
            retired: IrqSafeMutex::new(Vec::new()),
            swap_phase: core::sync::atomic::AtomicU8::new(0),
            swap_journal: IrqSafeMutex::new(None),
        }
    }

    /// A new, empty namespace named `name` whose parent is `self`, allocating from the same cell memory and timing
    /// loads with the same clock. With [`add_object`](Self::add_object) it can load a private copy of a cell that
    /// the parent has not loaded (a benchmark does this to time loads); dropping it frees that copy.
    pub fn child(self: &Arc<Self>, name: &str) -> CellNamespace {
        let child =
            CellNamespace::new(name, self.memory.clone(), ObjectDirectory::new(), Manifest::new(), Some(self.clone()));
        *child.clock.write() = self.clock();
        child
    }

    /// Drops this namespace and tells the cell observer (e.g. the unwinder's registry) that each of its cells is
    /// gone, so the observer's references do not keep them loaded. For a namespace like [`child`](Self::child)'s
    /// whose cells nobody runs or depends on (a benchmark's private copies): the observer forgets their unwind
    /// information, so a fault in their code could no longer be unwound; the sections they depend on forget them as
    /// dependents.
    pub fn discard(self) {
        let cells: Vec<Arc<LoadedCell>> = self.state.write().cells.values().cloned().collect();
        for cell in &cells {
            crate::observer::notify_removed(cell);
            for section in &cell.sections {
                // The sources' back-references to this section would stay behind as dead entries (each keeping
                // its allocation), growing the sources' lists with every discarded copy: remove them. One lock at
                // a time: this section's dependencies (copied), then each source's dependents.
                let mut sources: Vec<Arc<LoadedSection>> =
                    section.dependencies.lock().iter().map(|dependency| dependency.section.clone()).collect();
                // Many edges share a source (every call to one function): prune each source's list once.
                sources.sort_unstable_by_key(Arc::as_ptr);
                sources.dedup_by(|a, b| Arc::ptr_eq(a, b));
                let this = Arc::downgrade(section);
                for source in sources {
                    source.dependents.lock().retain(|dependent| !Weak::ptr_eq(&dependent.section, &this));
                }
            }
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parent namespace, if layered.
    pub fn parent(&self) -> Option<&Arc<CellNamespace>> {
        self.parent.as_ref()
    }

    pub(crate) fn memory(&self) -> &dyn CellMemory {
        &*self.memory
    }

    /// Sets the monotonic nanosecond clock used to time loads ([`LoadedCell::load_duration_ns`]).
    pub fn set_clock(&self, clock: fn() -> u64) {
        *self.clock.write() = Some(clock);
    }

    pub(crate) fn clock(&self) -> Option<fn() -> u64> {
        *self.clock.read()
    }

    /// Adds object file `file_name` for the cell described by `entry` (e.g. one pushed from the host), replacing
    /// any object of that name. Cells already loaded are not affected.
    ///
    /// # Errors
    /// [`LoadError::DuplicateSymbol`] if another manifest entry already claims one of `entry`'s symbols (the
    /// manifest is then unchanged).
    pub fn add_object(&self, entry: crate::ManifestEntry, bytes: &'static [u8]) -> Result<(), LoadError> {
        // The transaction lock serializes every writer of the manifest and the directory: the new manifest is
        // built from a snapshot, outside the interrupt-safe lock, and swapped in at the end.
        let _transaction = self.transaction.lock();
        let current = self.manifest.read().clone();
        let mut entries: Vec<_> = current.entries().iter().filter(|old| old.name != entry.name).cloned().collect();
        for symbol in &entry.symbols {
            if let Some(other) = entries.iter().find(|other| other.symbols.contains(symbol)) {
                return Err(LoadError::DuplicateSymbol {
                    cell: entry.name.clone(),
                    symbol: symbol.clone(),
                    existing_cell: other.name.clone(),
                });
            }
        }
        let file_name = entry.object_file.clone();
        entries.push(entry);
        let manifest = Arc::new(Manifest::from_entries(entries));
        // Both published together (lock order: manifest, then directory), so `objects` never sees one without the other.
        let mut published = self.manifest.write();
        self.directory.write().insert(&file_name, bytes);
        *published = manifest;
        Ok(())
    }

    /// Locks this namespace's transaction lock, then every ancestor's (the lock order).
    pub(crate) fn lock_chain(&self) -> (Vec<&CellNamespace>, Vec<TransactionGuard<'_>>) {
        let mut chain = Vec::new();
        let mut guards = Vec::new();
        let mut namespace = Some(self);
        while let Some(current) = namespace {
            guards.push(current.transaction.lock());
            chain.push(current);
            namespace = current.parent.as_deref();
        }
        (chain, guards)
    }

    /// Like [`lock_chain`](Self::lock_chain), but gives up (releasing what it took) if a transaction lock stays
    /// taken for `attempts` polls: for callers that may run where the holder cannot (a fault path with
    /// interrupts off, or a dead holder).
    pub(crate) fn try_lock_chain(&self, attempts: usize) -> Option<(Vec<&CellNamespace>, Vec<TransactionGuard<'_>>)> {
        let mut chain = Vec::new();
        let mut guards = Vec::new();
        let mut namespace = Some(self);
        while let Some(current) = namespace {
            guards.push(current.transaction.try_lock_within(attempts)?);
            chain.push(current);
            namespace = current.parent.as_deref();
        }
        Some((chain, guards))
    }

    /// Adds the statically linked base image as cell `cell_name` (normally `nano_core`): one section per symbol,
    /// no owned memory, and every symbol published in the symbol map.
    ///
    /// # Errors
    /// [`BaseImageError`] if the cell is already loaded or a symbol name is defined twice.
    pub fn add_base_image(&self, cell_name: &str, symbols: &[BaseSymbol]) -> Result<Arc<LoadedCell>, BaseImageError> {
        let _transaction = self.transaction.lock();
        let mut state = self.state.write();
        if state.cells.contains_key(cell_name) {
            return Err(BaseImageError::AlreadyLoaded { cell: cell_name.to_string() });
        }
        let mut seen = hashbrown::HashSet::with_capacity(symbols.len());
        for symbol in symbols {
            if !seen.insert(symbol.name.as_str()) || state.symbol_map.contains_key(&symbol.name) {
                return Err(BaseImageError::DuplicateSymbol { symbol: symbol.name.clone() });
            }
        }
        let cell = Arc::new_cyclic(|parent: &Weak<LoadedCell>| {
            let mut sizes = CellSizes::default();
            let sections = symbols
                .iter()
                .map(|symbol| {
                    match symbol.kind {
                        SectionKind::Text => sizes.text += symbol.size_in_bytes,
                        SectionKind::Data | SectionKind::Bss => sizes.data += symbol.size_in_bytes,
                        _ => sizes.read_only_data += symbol.size_in_bytes,
                    }
                    Arc::new(LoadedSection {
                        name: alloc::borrow::Cow::Owned(symbol.name.clone()),
                        kind: symbol.kind,
                        address: symbol.address,
                        size_in_bytes: symbol.size_in_bytes,
                        parent: parent.clone(),
                        memory: None,
                        dependencies: IrqSafeMutex::new(Vec::new()),
                        dependents: IrqSafeMutex::new(Vec::new()),
                    })
                })
                .collect();
            let exports = symbols
                .iter()
                .enumerate()
                .map(|(index, symbol)| ExportedSymbol {
                    name: symbol.name.clone(),
                    section: index,
                    offset: 0,
                    weak: false,
                    kind: match symbol.kind {
                        SectionKind::Text => crate::ExportKind::Function { size_in_bytes: symbol.size_in_bytes },
                        _ => crate::ExportKind::Data { size_in_bytes: symbol.size_in_bytes },
                    },
                })
                .collect();
            LoadedCell {
                name: cell_name.to_string(),
                kind: CellKind::Kernel,
                object_file: None,
                sections,
                exports,
                sizes,
                relocation_count: 0,
                load_duration_ns: None,
                object_bytes: None,
                section_slots: Vec::new(),
                entry_memo: core::sync::atomic::AtomicUsize::new(0),
            }
        });
        state.symbol_map.reserve(symbols.len());
        for (symbol, section) in symbols.iter().zip(cell.sections.iter()) {
            state.symbol_map.insert(symbol.name.clone(), SymbolTarget { section: Arc::downgrade(section), offset: 0 });
        }
        state.cells.insert(cell_name.to_string(), cell.clone());
        log::info!("namespace {}: base image {} with {} symbols", self.name, cell_name, symbols.len());
        Ok(cell)
    }

    /// Loads cell `cell_name` (and every cell it needs that is not loaded yet) and returns it; returns the loaded
    /// cell at once if it is already loaded here or in a parent.
    ///
    /// Transactional: on error nothing is published and all memory allocated for the load is freed.
    ///
    /// # Errors
    /// A [`LoadError`] naming the cell and the section, symbol or relocation type at fault.
    pub fn load_cell(&self, cell_name: &str) -> Result<Arc<LoadedCell>, LoadError> {
        if let Some(cell) = self.cell(cell_name) {
            return Ok(cell);
        }
        let clock = self.clock();
        let clock = clock.as_ref().map(|clock| clock as &dyn Fn() -> u64);
        let mut transaction = Transaction::begin(self, Vec::new(), clock);
        if let Some(cell) = transaction.find_loaded(cell_name, 0) {
            // Loaded by another task between the check above and taking the lock.
            return Ok(cell);
        }
        let entry = transaction
            .find_manifest_cell(cell_name, 0)
            .ok_or(LoadError::NotInManifest { cell: cell_name.to_string() })?;
        let depth = transaction.owner_depth(&entry, 0)?;
        let phases = PhaseClock::new(clock);
        let index = transaction.stage(entry, depth)?;
        let (lap, staged_before) = (phases.now(), profile::staging_total_ns());
        transaction.resolve_all()?;
        let lap = phases.lap_excluding(LoadPhase::Resolve, lap, profile::staging_total_ns() - staged_before);
        transaction.relocate_all()?;
        let lap = phases.lap(LoadPhase::Relocate, lap);
        transaction.finalize_all()?;
        let lap = phases.lap(LoadPhase::Remap, lap);
        transaction.check_conflicts()?;
        let lap = phases.lap(LoadPhase::Conflicts, lap);
        let (built, lap) = transaction.build(&phases, lap);
        let cell = built[index].1.clone();
        transaction.publish(&built);
        phases.lap(LoadPhase::Publish, lap);
        phases.count_load();
        Ok(cell)
    }

    /// The cell `cell_name` if it is loaded in this namespace or a parent.
    pub fn cell(&self, cell_name: &str) -> Option<Arc<LoadedCell>> {
        let own = self.state.read().cells.get(cell_name).cloned();
        own.or_else(|| self.parent.as_ref().and_then(|parent| parent.cell(cell_name)))
    }

    /// Every cell loaded in this namespace (not its parents), sorted by name.
    pub fn loaded_cells(&self) -> Vec<Arc<LoadedCell>> {
        self.state.read().cells.values().cloned().collect()
    }

    /// [`Self::loaded_cells`] without waiting (for a fault report's stack trace).
    ///
    /// # Errors
    /// [`NamespaceBusy`] if the cell table is write-locked right now (by this CPU, e.g. a frame the fault left, or
    /// another).
    pub fn try_loaded_cells(&self) -> Result<Vec<Arc<LoadedCell>>, NamespaceBusy> {
        let state = self.state.try_read().ok_or(NamespaceBusy)?;
        Ok(state.cells.values().cloned().collect())
    }

    /// Calls `found` with the name of the cell loaded in this namespace (not its parents) one of whose sections
    /// contains `address`, without waiting and without allocating (for a fault report).
    ///
    /// # Errors
    /// [`NamespaceBusy`] if the cell table is write-locked right now (by this CPU or another).
    pub fn try_cell_containing<R>(
        &self,
        address: VirtualAddress,
        found: impl FnOnce(&str) -> R,
    ) -> Result<Option<R>, NamespaceBusy> {
        let state = self.state.try_read().ok_or(NamespaceBusy)?;
        let cell = state.cells.values().find(|cell| cell.section_containing(address).is_some());
        Ok(cell.map(|cell| found(cell.name())))
    }

    /// One row per cell loaded in this namespace (not its parents), sorted by name.
    pub fn cells(&self) -> Vec<CellInfo> {
        self.loaded_cells()
            .iter()
            .map(|cell| CellInfo {
                name: cell.name.clone(),
                kind: cell.kind,
                object_file: cell.object_file.clone(),
                sizes: cell.sizes,
                relocation_count: cell.relocation_count,
                dependency_count: cell.dependency_cells().len(),
                dependent_count: cell.dependent_cells().len(),
            })
            .collect()
    }

    /// One row per object file in this namespace's directory (not its parents'), sorted by name.
    pub fn objects(&self) -> Vec<ObjectInfo> {
        let manifest = self.manifest.read();
        self.directory
            .read()
            .iter()
            .map(|(file_name, bytes)| ObjectInfo {
                file_name: file_name.to_string(),
                size_in_bytes: bytes.len(),
                cell: manifest.cell_for_object(file_name).map(|entry| entry.name.clone()),
            })
            .collect()
    }

    /// The bytes of object file `file_name` in this namespace's directory (not its parents'), if it has one.
    pub fn object_bytes(&self, file_name: &str) -> Option<&'static [u8]> {
        self.directory.read().get(file_name)
    }

    /// Every entry of this namespace's manifest (not its parents'), in manifest order.
    pub fn manifest_entries(&self) -> Vec<crate::ManifestEntry> {
        self.manifest.read().entries().to_vec()
    }

    /// The crate name of cell `cell_name` if this namespace's manifest (not its parents') names it and its object
    /// file is in this namespace's directory: what [`objects`](Self::objects) plus
    /// [`manifest_entry`](Self::manifest_entry) tell, without copying every row and the entry's symbol list.
    pub fn object_crate_name(&self, cell_name: &str) -> Option<String> {
        let manifest = self.manifest.read();
        let entry = manifest.cell(cell_name)?;
        let owner = manifest.cell_for_object(&entry.object_file)?;
        if owner.name != entry.name || self.directory.read().get(&entry.object_file).is_none() {
            return None;
        }
        Some(entry.crate_name.clone())
    }

    /// The manifest entry of cell `cell_name` in this namespace's manifest (not its parents'), if any.
    pub fn manifest_entry(&self, cell_name: &str) -> Option<crate::ManifestEntry> {
        self.manifest.read().cell(cell_name).cloned()
    }

    /// Looks up mangled symbol `name` in this namespace's symbol map, then in its parents'.
    pub fn lookup_symbol(&self, name: &str) -> Option<SymbolInfo> {
        let own = self.state.read().symbol_map.get(name).and_then(SymbolTarget::address);
        own.map(|(section, address)| SymbolInfo { section, address })
            .or_else(|| self.parent.as_ref().and_then(|parent| parent.lookup_symbol(name)))
    }

    /// Every (mangled name, address) pair in this namespace's own symbol map, sorted by name.
    pub fn symbols(&self) -> Vec<(String, VirtualAddress)> {
        let state = self.state.read();
        let entries = state.symbol_map.iter();
        let mut symbols: Vec<(String, VirtualAddress)> =
            entries.filter_map(|(name, target)| target.address().map(|(_, address)| (name.clone(), address))).collect();
        drop(state);
        symbols.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        symbols
    }

    /// Finds the exported function of cell `cell_name` whose hash-free demangled path is `path` (e.g.
    /// `hello::main`; non-Rust names compare exactly), loading the cell first if needed.
    ///
    /// # Errors
    /// [`FindFunctionError::Load`] if the cell cannot be loaded; [`FindFunctionError::NotFound`] if it has no
    /// such function.
    pub fn find_function(&self, cell_name: &str, path: &str) -> Result<VirtualAddress, FindFunctionError> {
        self.find_export(cell_name, path, true).map(|(address, _)| address)
    }

    /// Finds the exported data object (a `static`) of cell `cell_name` whose hash-free demangled path is `path`
    /// (e.g. `hello::APPLICATION_ENTRY`), loading the cell first if needed. Returns its address and how many bytes
    /// of its section follow it (an upper bound on the object's size, for a caller that checks a layout).
    ///
    /// # Errors
    /// As [`CellNamespace::find_function`]; [`FindFunctionError::NotFound`] also when `path` names a function.
    pub fn find_data(&self, cell_name: &str, path: &str) -> Result<(VirtualAddress, usize), FindFunctionError> {
        self.find_export(cell_name, path, false)
    }

    /// The export of `cell_name` at `path` in a text section (`text`) or a data section (`!text`): its address
    /// and the bytes from it to the end of its section.
    fn find_export(
        &self,
        cell_name: &str,
        path: &str,
        text: bool,
    ) -> Result<(VirtualAddress, usize), FindFunctionError> {
        let cell = self.load_cell(cell_name).map_err(FindFunctionError::Load)?;
        cell.exports
            .iter()
            .filter(|export| hash_free_name(&export.name) == path)
            .find_map(|export| {
                let section = cell.sections.get(export.section)?;
                if (section.kind == SectionKind::Text) != text {
                    return None;
                }
                let address = cell.symbol_address(&export.name)?;
                Some((address, section.size_in_bytes.saturating_sub(export.offset)))
            })
            .ok_or(FindFunctionError::NotFound { cell: cell_name.to_string(), path: path.to_string() })
    }
}
