//! The bounds-checked parser (kernel side: nano_core's module intake). Never panics, whatever the bytes.

use crate::{DATA_ALIGNMENT, HEADER_LENGTH, MAGIC, MAX_ENTRIES, MAX_NAME_LENGTH, TABLE_ENTRY_LENGTH, VERSION};

/// What is wrong with an entry's name field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// The field starts with NUL.
    Empty,
    /// A non-NUL byte follows the first NUL (the padding must be all NUL).
    GarbageAfterNul,
    /// The bytes before the first NUL are not UTF-8.
    NotUtf8,
}

/// Why bytes are not a valid archive. Offsets and lengths are in bytes; `index` is the entry's table position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveError {
    /// Fewer bytes than the fixed header.
    TooShort {
        /// The number of bytes given.
        length: usize,
    },
    /// The first 8 bytes are not [`MAGIC`].
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// A layout version this parser does not know.
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// More entries than [`MAX_ENTRIES`].
    TooManyEntries {
        /// The count found.
        count: u32,
    },
    /// The header's total length exceeds the bytes given (the archive was cut short), or is below the header.
    Truncated {
        /// The total length the header declares.
        declared: u64,
        /// The number of bytes given.
        actual: usize,
    },
    /// The table of `count` entries does not fit in the declared total length.
    TableOutOfBounds {
        /// The entry count.
        count: u32,
        /// The declared total length.
        total: u64,
    },
    /// An entry's name field is invalid.
    InvalidName {
        /// The entry's index.
        index: usize,
        /// What is wrong.
        problem: NameProblem,
    },
    /// An entry's data does not start on a [`DATA_ALIGNMENT`] boundary.
    MisalignedData {
        /// The entry's index.
        index: usize,
        /// The data's offset.
        offset: u64,
    },
    /// An entry's data lies (partly) outside the archive.
    DataOutOfBounds {
        /// The entry's index.
        index: usize,
        /// The data's offset.
        offset: u64,
        /// The data's length.
        length: u64,
    },
    /// An entry's data starts before the end of the table or of the previous entry's data.
    OverlappingData {
        /// The entry's index.
        index: usize,
        /// The data's offset.
        offset: u64,
        /// The first offset it could have used.
        earliest: u64,
    },
    /// Two entries have the same name.
    DuplicateName {
        /// The later entry's index.
        index: usize,
        /// The earlier entry's index.
        first: usize,
    },
}

impl core::fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ArchiveError::TooShort { length } => {
                write!(f, "{length} bytes, shorter than the {HEADER_LENGTH}-byte header")
            }
            ArchiveError::BadMagic { found } => write!(f, "bad magic {found:02x?}"),
            ArchiveError::UnsupportedVersion { version } => write!(f, "unsupported version {version} (want {VERSION})"),
            ArchiveError::TooManyEntries { count } => write!(f, "{count} entries (at most {MAX_ENTRIES})"),
            ArchiveError::Truncated { declared, actual } => {
                write!(f, "declares {declared} bytes but {actual} were loaded")
            }
            ArchiveError::TableOutOfBounds { count, total } => {
                write!(f, "a table of {count} entries does not fit in {total} bytes")
            }
            ArchiveError::InvalidName { index, problem } => write!(f, "entry {index}: invalid name ({problem:?})"),
            ArchiveError::MisalignedData { index, offset } => {
                write!(f, "entry {index}: data offset {offset} is not {DATA_ALIGNMENT}-byte aligned")
            }
            ArchiveError::DataOutOfBounds { index, offset, length } => {
                write!(f, "entry {index}: data {offset}+{length} lies outside the archive")
            }
            ArchiveError::OverlappingData { index, offset, earliest } => {
                write!(f, "entry {index}: data offset {offset} overlaps earlier bytes (first free offset {earliest})")
            }
            ArchiveError::DuplicateName { index, first } => {
                write!(f, "entry {index} repeats the name of entry {first}")
            }
        }
    }
}

/// One file of an archive, borrowed from the archive's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The file's name (1 to [`MAX_NAME_LENGTH`] bytes of UTF-8).
    pub name: &'a str,
    /// The file's bytes, starting on a [`DATA_ALIGNMENT`] boundary of the archive.
    pub bytes: &'a [u8],
}

/// A validated archive: every entry's name and bounds were checked by [`Archive::parse`].
#[derive(Debug, Clone, Copy)]
pub struct Archive<'a> {
    /// The archive's bytes, cut to its declared total length.
    bytes: &'a [u8],
    /// The number of entries.
    count: usize,
}

/// Reads the little-endian integer of `N` bytes at `offset`; `None` if out of bounds.
fn read_bytes<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    bytes.get(offset..offset.checked_add(N)?)?.try_into().ok()
}

fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    read_bytes(bytes, offset).map(u32::from_le_bytes)
}

fn read_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    read_bytes(bytes, offset).map(u64::from_le_bytes)
}

/// An entry's table fields, decoded but with its data not yet bounds-checked.
struct TableEntry<'a> {
    name: &'a str,
    offset: u64,
    length: u64,
}

impl<'a> Archive<'a> {
    /// Checks `bytes` as an archive: header, table, every name, and every entry's data bounds (aligned, in order,
    /// no overlap, inside the declared total length). Bytes after the declared total length are ignored (a loader
    /// may pad a module).
    ///
    /// # Errors
    /// The first [`ArchiveError`] found, scanning header, then the table in order.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ArchiveError> {
        let too_short = ArchiveError::TooShort { length: bytes.len() };
        let magic: [u8; 8] = read_bytes(bytes, 0).ok_or(too_short)?;
        let version = read_u32(bytes, 8).ok_or(too_short)?;
        let count = read_u32(bytes, 12).ok_or(too_short)?;
        let total = read_u64(bytes, 16).ok_or(too_short)?;
        if magic != MAGIC {
            return Err(ArchiveError::BadMagic { found: magic });
        }
        if version != VERSION {
            return Err(ArchiveError::UnsupportedVersion { version });
        }
        if count as usize > MAX_ENTRIES {
            return Err(ArchiveError::TooManyEntries { count });
        }
        let truncated = ArchiveError::Truncated { declared: total, actual: bytes.len() };
        let total_length = usize::try_from(total).map_err(|_| truncated)?;
        if total_length < HEADER_LENGTH {
            return Err(truncated);
        }
        let bytes = bytes.get(..total_length).ok_or(truncated)?;
        // `count` is at most MAX_ENTRIES, so this cannot overflow.
        let table_end = HEADER_LENGTH + count as usize * TABLE_ENTRY_LENGTH;
        if table_end > total_length {
            return Err(ArchiveError::TableOutOfBounds { count, total });
        }
        let archive = Self { bytes, count: count as usize };
        let mut earliest = table_end as u64;
        for index in 0..archive.count {
            let entry = archive.table_entry(index)?;
            if entry.offset % DATA_ALIGNMENT as u64 != 0 {
                return Err(ArchiveError::MisalignedData { index, offset: entry.offset });
            }
            if entry.offset < earliest {
                return Err(ArchiveError::OverlappingData { index, offset: entry.offset, earliest });
            }
            let end = entry.offset.checked_add(entry.length).filter(|&end| end <= total);
            let Some(end) = end else {
                return Err(ArchiveError::DataOutOfBounds { index, offset: entry.offset, length: entry.length });
            };
            earliest = end;
            for first in 0..index {
                if archive.table_entry(first)?.name == entry.name {
                    return Err(ArchiveError::DuplicateName { index, first });
                }
            }
        }
        Ok(archive)
    }

    /// Decodes table entry `index` (which must be below `count`, so the table read is in bounds).
    fn table_entry(&self, index: usize) -> Result<TableEntry<'a>, ArchiveError> {
        let start = HEADER_LENGTH + index * TABLE_ENTRY_LENGTH;
        let bounds = ArchiveError::TableOutOfBounds { count: self.count as u32, total: self.bytes.len() as u64 };
        let field: [u8; MAX_NAME_LENGTH] = read_bytes(self.bytes, start).ok_or(bounds)?;
        let offset = read_u64(self.bytes, start + MAX_NAME_LENGTH).ok_or(bounds)?;
        let length = read_u64(self.bytes, start + MAX_NAME_LENGTH + 8).ok_or(bounds)?;
        let invalid = |problem| ArchiveError::InvalidName { index, problem };
        let name_length = field.iter().position(|&byte| byte == 0).unwrap_or(MAX_NAME_LENGTH);
        if name_length == 0 {
            return Err(invalid(NameProblem::Empty));
        }
        if field[name_length..].iter().any(|&byte| byte != 0) {
            return Err(invalid(NameProblem::GarbageAfterNul));
        }
        let name_bytes = self.bytes.get(start..start + name_length).ok_or(bounds)?;
        let name = core::str::from_utf8(name_bytes).map_err(|_| invalid(NameProblem::NotUtf8))?;
        Ok(TableEntry { name, offset, length })
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the archive has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entries, in table order.
    pub fn entries(&self) -> Entries<'a> {
        Entries { archive: *self, next: 0 }
    }

    /// The entry named `name`, if any.
    pub fn entry(&self, name: &str) -> Option<Entry<'a>> {
        self.entries().find(|entry| entry.name == name)
    }
}

/// The iterator of [`Archive::entries`].
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    archive: Archive<'a>,
    next: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        while self.next < self.archive.count {
            let index = self.next;
            self.next += 1;
            // `parse` validated every entry, so these lookups succeed; an entry that did not would be skipped
            // rather than panic.
            let Ok(entry) = self.archive.table_entry(index) else { continue };
            let start = usize::try_from(entry.offset).ok();
            let end =
                start.zip(usize::try_from(entry.length).ok()).and_then(|(start, length)| start.checked_add(length));
            if let Some(bytes) = start.zip(end).and_then(|(start, end)| self.archive.bytes.get(start..end)) {
                return Some(Entry { name: entry.name, bytes });
            }
        }
        None
    }
}
