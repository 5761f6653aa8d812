//! The unwind-info registry: which `.eh_frame` and `.gcc_except_table` bytes describe which code.
//!
//! One [`UnwindInfo`] per code range: a loaded cell's text region, or the base image's `.text`. Entries are kept
//! sorted by code start, so a PC is mapped to its entry by binary search. Relocatable objects have no
//! `.eh_frame_hdr`, so every entry gets its own sorted FDE index at registration (a `Vec` of
//! `(function start, function end, FDE offset)`), and a PC is mapped to its FDE by a second binary search.
//! Registration allocates; lookups ([`UnwindRegistry::find`], [`UnwindInfo::fde_for`]) never do.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::fmt;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use gimli::{BaseAddresses, CieOrFde, EhFrame, EhFrameOffset, EndianSlice, LittleEndian, UnwindSection};
use memory_structs::VirtualAddress;

/// The reader type over registered section bytes.
pub(crate) type SectionReader<'a> = EndianSlice<'a, LittleEndian>;

/// Identifies one registration in a registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnwindInfoId(pub u64);

/// What to register: one code range and the unwind sections that describe it.
pub struct UnwindInfoDescription {
    /// A name for reports (the cell name, or `nano_core`).
    pub name: String,
    /// The code the `.eh_frame` describes (start inclusive, end exclusive): a cell's text region or the base
    /// image's `.text`. FDEs for functions outside it are skipped (and counted).
    pub text: Range<VirtualAddress>,
    /// The `.eh_frame` section, relocated to its run-time addresses.
    pub eh_frame: Range<VirtualAddress>,
    /// Every `.gcc_except_table*` section (LSDAs). An LSDA is read only if it lies inside one of them.
    pub gcc_except_tables: Vec<Range<VirtualAddress>>,
    /// Kept alive as long as the entry exists (e.g. the `Arc<LoadedCell>` owning the sections' memory).
    pub owner: Option<Arc<dyn Any + Send + Sync>>,
}

/// One FDE of an index: the function it covers and where it is in `.eh_frame`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdeRecord {
    /// The first address of the function.
    pub function_start: u64,
    /// The address after its last byte.
    pub function_end: u64,
    /// Offset of the FDE from the start of `.eh_frame`, in bytes.
    pub offset: usize,
}

/// Why a registration was refused. Nothing was registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// The text range or a section range is empty or reversed.
    EmptyRange {
        /// Which range: `"text"`, `"eh_frame"` or `"gcc_except_table"`.
        which: &'static str,
    },
    /// The text range overlaps a registered entry's.
    Overlap {
        /// The entry it overlaps.
        existing: UnwindInfoId,
        /// That entry's name.
        existing_name: String,
    },
    /// `.eh_frame` could not be parsed.
    EhFrame {
        /// The offset of the entry being parsed, in bytes from the section start.
        offset: usize,
        /// gimli's error.
        error: gimli::Error,
    },
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyRange { which } => write!(f, "the {which} range is empty"),
            Self::Overlap { existing, existing_name } => {
                write!(f, "text range overlaps registered unwind info {existing_name} ({existing:?})")
            }
            Self::EhFrame { offset, error } => write!(f, ".eh_frame entry at offset {offset:#x}: {error}"),
        }
    }
}

/// Why a lookup failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// The registry stayed write-locked for the whole bounded wait (a registration interrupted on this CPU).
    Busy,
}

/// How many times a lookup retries a write-locked registry before giving up with [`LookupError::Busy`].
const LOOKUP_SPINS: usize = 1 << 22;

/// Unwind information for one code range, with its FDE index.
pub struct UnwindInfo {
    id: UnwindInfoId,
    name: String,
    text: Range<u64>,
    eh_frame_address: u64,
    eh_frame: &'static [u8],
    except_tables: Vec<Range<u64>>,
    fdes: Vec<FdeRecord>,
    skipped_fdes: usize,
    _owner: Option<Arc<dyn Any + Send + Sync>>,
}

impl UnwindInfo {
    /// Its registration id.
    pub fn id(&self) -> UnwindInfoId {
        self.id
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The code range it describes (start inclusive, end exclusive).
    pub fn text(&self) -> Range<u64> {
        self.text.clone()
    }

    /// The FDE index, sorted by function start.
    pub fn fdes(&self) -> &[FdeRecord] {
        &self.fdes
    }

    /// How many FDEs were skipped at registration because they cover no code inside the text range.
    pub fn skipped_fdes(&self) -> usize {
        self.skipped_fdes
    }

    /// The FDE covering `address`, by binary search.
    pub fn fde_for(&self, address: u64) -> Option<FdeRecord> {
        let index = self.fdes.partition_point(|fde| fde.function_start <= address).checked_sub(1)?;
        let fde = self.fdes[index];
        (address < fde.function_end).then_some(fde)
    }

    /// The bytes from `address` to the end of the `.gcc_except_table` section containing it: where an LSDA at
    /// `address` may be read. `None` if `address` is in no registered except table.
    pub fn lsda_bytes(&self, address: u64) -> Option<&[u8]> {
        let table = self.except_tables.iter().find(|table| table.contains(&address))?;
        let length = usize::try_from(table.end - address).ok()?;
        // SAFETY: `register`'s contract: every registered except-table range is readable and unchanged while this
        // entry lives; the slice lies inside one such range.
        Some(unsafe { core::slice::from_raw_parts(address as usize as *const u8, length) })
    }

    /// The `.eh_frame` section as gimli reads it.
    pub(crate) fn eh_frame(&self) -> EhFrame<SectionReader<'_>> {
        let mut eh_frame = EhFrame::new(self.eh_frame, LittleEndian);
        eh_frame.set_address_size(8);
        eh_frame
    }

    /// The base addresses its pointer encodings are relative to.
    pub(crate) fn bases(&self) -> BaseAddresses {
        BaseAddresses::default().set_eh_frame(self.eh_frame_address).set_text(self.text.start)
    }
}

impl fmt::Debug for UnwindInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnwindInfo")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("text", &format_args!("{:#x}..{:#x}", self.text.start, self.text.end))
            .field("fdes", &self.fdes.len())
            .field("skipped_fdes", &self.skipped_fdes)
            .finish_non_exhaustive()
    }
}

/// Builds the sorted FDE index of `eh_frame`, keeping FDEs whose function lies inside `text`.
///
/// Returns the index and the number of skipped FDEs.
///
/// # Errors
/// [`RegisterError::EhFrame`] on the first entry gimli cannot parse.
pub(crate) fn index_fdes(
    eh_frame: &EhFrame<SectionReader<'_>>,
    bases: &BaseAddresses,
    text: &Range<u64>,
) -> Result<(Vec<FdeRecord>, usize), RegisterError> {
    let mut fdes = Vec::new();
    let mut skipped = 0;
    let mut entries = eh_frame.entries(bases);
    let mut offset = 0;
    loop {
        let entry = entries.next().map_err(|error| RegisterError::EhFrame { offset, error })?;
        let Some(entry) = entry else { break };
        match entry {
            CieOrFde::Cie(cie) => offset = cie.offset() + cie.entry_len() + 4,
            CieOrFde::Fde(partial) => {
                let fde = partial
                    .parse(|section, bases, cie_offset: EhFrameOffset| section.cie_from_offset(bases, cie_offset))
                    .map_err(|error| RegisterError::EhFrame { offset, error })?;
                offset = fde.offset() + fde.entry_len() + 4;
                let start = fde.initial_address();
                let end = start.checked_add(fde.len());
                match end {
                    Some(end) if start < end && text.start <= start && end <= text.end => {
                        fdes.push(FdeRecord { function_start: start, function_end: end, offset: fde.offset() })
                    }
                    _ => skipped += 1,
                }
            }
        }
    }
    fdes.sort_unstable_by_key(|fde| fde.function_start);
    Ok((fdes, skipped))
}

/// The registry: every registered [`UnwindInfo`], sorted by code start.
pub struct UnwindRegistry {
    /// Protects: the entry list and its order (sorted by `text.start`, ranges disjoint). Written by
    /// register/unregister (cell load and unload), read by every lookup, including the fault path.
    entries: spin::RwLock<Vec<Arc<UnwindInfo>>>,
    next_id: AtomicU64,
}

impl Default for UnwindRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl UnwindRegistry {
    /// An empty registry.
    pub const fn new() -> Self {
        Self { entries: spin::RwLock::new(Vec::new()), next_id: AtomicU64::new(1) }
    }

    /// Registers unwind information for one code range and builds its FDE index.
    ///
    /// # Safety
    /// The `.eh_frame` range and every `.gcc_except_table` range must be readable and must not change while the
    /// entry exists: until [`unregister`](Self::unregister) and the drop of every `Arc<UnwindInfo>` handed out by
    /// [`find`](Self::find), or for as long as `owner` is alive if `owner` owns that memory. The code in `text`
    /// need not be readable (it is never read).
    ///
    /// # Errors
    /// [`RegisterError`]: an empty range, a text range overlapping a registered one, or malformed `.eh_frame`.
    pub unsafe fn register(&self, description: UnwindInfoDescription) -> Result<Arc<UnwindInfo>, RegisterError> {
        let UnwindInfoDescription { name, text, eh_frame, gcc_except_tables, owner } = description;
        let raw = |range: &Range<VirtualAddress>| range.start.value() as u64..range.end.value() as u64;
        let text = raw(&text);
        let eh_frame_range = raw(&eh_frame);
        if text.is_empty() {
            return Err(RegisterError::EmptyRange { which: "text" });
        }
        if eh_frame_range.is_empty() {
            return Err(RegisterError::EmptyRange { which: "eh_frame" });
        }
        let except_tables: Vec<Range<u64>> = gcc_except_tables.iter().map(raw).collect();
        if except_tables.iter().any(Range::is_empty) {
            return Err(RegisterError::EmptyRange { which: "gcc_except_table" });
        }
        let length = (eh_frame_range.end - eh_frame_range.start) as usize;
        // SAFETY: the caller guarantees the range is readable and unchanged while the entry (which holds the
        // slice, and `owner`) lives; the slice never escapes the entry with a longer lifetime than `&self`.
        let bytes: &'static [u8] =
            unsafe { core::slice::from_raw_parts(eh_frame_range.start as usize as *const u8, length) };
        let id = UnwindInfoId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut info = UnwindInfo {
            id,
            name,
            text,
            eh_frame_address: eh_frame_range.start,
            eh_frame: bytes,
            except_tables,
            fdes: Vec::new(),
            skipped_fdes: 0,
            _owner: owner,
        };
        let (fdes, skipped) = index_fdes(&info.eh_frame(), &info.bases(), &info.text)?;
        info.fdes = fdes;
        info.skipped_fdes = skipped;
        let info = Arc::new(info);
        let mut entries = self.entries.write();
        let index = entries.partition_point(|entry| entry.text.start < info.text.start);
        let neighbours = [index.checked_sub(1).and_then(|i| entries.get(i)), entries.get(index)];
        if let Some(existing) = neighbours
            .into_iter()
            .flatten()
            .find(|existing| existing.text.start < info.text.end && info.text.start < existing.text.end)
        {
            return Err(RegisterError::Overlap { existing: existing.id, existing_name: existing.name.clone() });
        }
        entries.insert(index, info.clone());
        Ok(info)
    }

    /// Removes a registration (when its cell unloads) and returns it; `None` if `id` is not registered.
    pub fn unregister(&self, id: UnwindInfoId) -> Option<Arc<UnwindInfo>> {
        let mut entries = self.entries.write();
        let index = entries.iter().position(|entry| entry.id == id)?;
        Some(entries.remove(index))
    }

    /// The entry whose code range contains `address`, by binary search. Never allocates.
    ///
    /// # Errors
    /// [`LookupError::Busy`] if the registry stays write-locked for a bounded wait (which happens only when a
    /// registration on this CPU was interrupted by the fault being unwound).
    pub fn find(&self, address: u64) -> Result<Option<Arc<UnwindInfo>>, LookupError> {
        let mut spins = 0;
        let entries = loop {
            if let Some(entries) = self.entries.try_read() {
                break entries;
            }
            spins += 1;
            if spins >= LOOKUP_SPINS {
                return Err(LookupError::Busy);
            }
            core::hint::spin_loop();
        };
        let index = entries.partition_point(|entry| entry.text.start <= address);
        let Some(entry) = index.checked_sub(1).and_then(|index| entries.get(index)) else { return Ok(None) };
        Ok((address < entry.text.end).then(|| entry.clone()))
    }

    /// A snapshot of every entry, sorted by code start.
    pub fn entries(&self) -> Vec<Arc<UnwindInfo>> {
        self.entries.read().clone()
    }
}
