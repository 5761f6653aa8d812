//! The writer (host side: `scripts/cellbuild`).

use alloc::vec::Vec;

use crate::{DATA_ALIGNMENT, HEADER_LENGTH, MAGIC, MAX_ENTRIES, MAX_NAME_LENGTH, TABLE_ENTRY_LENGTH, VERSION};

/// Why [`write`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// More entries than [`MAX_ENTRIES`].
    TooManyEntries {
        /// The number of entries given.
        count: usize,
    },
    /// A name is empty, longer than [`MAX_NAME_LENGTH`] bytes, or contains a NUL byte (the table pads with NULs).
    InvalidName {
        /// The entry's index.
        index: usize,
        /// The offending name.
        name: alloc::string::String,
    },
    /// Two entries have the same name.
    DuplicateName {
        /// The repeated name.
        name: alloc::string::String,
    },
}

impl core::fmt::Display for WriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WriteError::TooManyEntries { count } => write!(f, "{count} entries (at most {MAX_ENTRIES})"),
            WriteError::InvalidName { index, name } => {
                write!(f, "entry {index}: name {name:?} is empty, over {MAX_NAME_LENGTH} bytes or holds a NUL")
            }
            WriteError::DuplicateName { name } => write!(f, "two entries are named {name:?}"),
        }
    }
}

/// Packs `entries` (name, bytes), in this order, into one archive laid out as the crate documentation says.
///
/// # Errors
/// [`WriteError`] for too many entries, an invalid name, or a repeated name.
pub fn write(entries: &[(&str, &[u8])]) -> Result<Vec<u8>, WriteError> {
    if entries.len() > MAX_ENTRIES {
        return Err(WriteError::TooManyEntries { count: entries.len() });
    }
    for (index, (name, _)) in entries.iter().enumerate() {
        if name.is_empty() || name.len() > MAX_NAME_LENGTH || name.contains('\0') {
            return Err(WriteError::InvalidName { index, name: (*name).into() });
        }
        if entries[..index].iter().any(|(earlier, _)| earlier == name) {
            return Err(WriteError::DuplicateName { name: (*name).into() });
        }
    }
    let table_end = HEADER_LENGTH + entries.len() * TABLE_ENTRY_LENGTH;
    let mut offsets = Vec::with_capacity(entries.len());
    let mut end = table_end;
    for (_, bytes) in entries {
        let offset = end.next_multiple_of(DATA_ALIGNMENT);
        offsets.push(offset);
        end = offset + bytes.len();
    }
    let mut archive = Vec::with_capacity(end);
    archive.extend_from_slice(&MAGIC);
    archive.extend_from_slice(&VERSION.to_le_bytes());
    archive.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    archive.extend_from_slice(&(end as u64).to_le_bytes());
    for ((name, bytes), offset) in entries.iter().zip(&offsets) {
        let mut field = [0u8; MAX_NAME_LENGTH];
        field[..name.len()].copy_from_slice(name.as_bytes());
        archive.extend_from_slice(&field);
        archive.extend_from_slice(&(*offset as u64).to_le_bytes());
        archive.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    }
    for ((_, bytes), offset) in entries.iter().zip(&offsets) {
        archive.resize(*offset, 0);
        archive.extend_from_slice(bytes);
    }
    Ok(archive)
}
