//! Deliberately damaged cell objects, for the test that the loader rejects a bad object with an error and the
//! boot continues. The damage is deterministic, so a failing test can be reproduced byte for byte.

use crate::error::{Error, Result};

/// How to damage an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorruptionMode {
    /// Point `e_shoff` (the section header table's file offset) past the end of the file.
    SectionHeaders,
    /// Set the type of every relocation entry (`SHT_RELA`) to 0xEE, a type no loader knows.
    Relocations,
}

impl CorruptionMode {
    /// Parses `shdr` or `reloc`.
    pub fn from_name(name: &str) -> Option<CorruptionMode> {
        match name {
            "shdr" => Some(CorruptionMode::SectionHeaders),
            "reloc" => Some(CorruptionMode::Relocations),
            _ => None,
        }
    }
}

/// The relocation type written by [`CorruptionMode::Relocations`].
pub const BOGUS_RELOCATION_TYPE: u32 = 0xEE;

/// Offset of `e_shoff` in an ELF64 header (gABI, "ELF Header").
const E_SHOFF: usize = 0x28;
const E_SHENTSIZE: usize = 0x3A;
const E_SHNUM: usize = 0x3C;
const SHT_RELA: u32 = 4;

/// Returns a damaged copy of ELF64 little-endian object `object`.
///
/// # Errors
/// The input is too short or its header tables lie outside it (nothing sensible to damage).
pub fn corrupt(object: &[u8], mode: CorruptionMode) -> Result<Vec<u8>> {
    if object.len() < 64 || &object[..4] != b"\x7fELF" || object[4] != 2 || object[5] != 1 {
        return Err(Error::new("not an ELF64 little-endian file"));
    }
    let mut bytes = object.to_vec();
    match mode {
        CorruptionMode::SectionHeaders => {
            let beyond = (bytes.len() as u64 + 0xFFFF) & !0xFFF;
            bytes[E_SHOFF..E_SHOFF + 8].copy_from_slice(&beyond.to_le_bytes());
        }
        CorruptionMode::Relocations => {
            let read = |b: &[u8], at: usize, n: usize| -> Option<u64> {
                let slice = b.get(at..at + n)?;
                let mut word = [0u8; 8];
                word[..n].copy_from_slice(slice);
                Some(u64::from_le_bytes(word))
            };
            let bad = || Error::new("section header table out of bounds");
            let table = read(&bytes, E_SHOFF, 8).ok_or_else(bad)? as usize;
            let entry_size = read(&bytes, E_SHENTSIZE, 2).ok_or_else(bad)? as usize;
            let count = read(&bytes, E_SHNUM, 2).ok_or_else(bad)? as usize;
            let mut damaged = 0usize;
            for index in 0..count {
                let header = table + index * entry_size;
                if read(&bytes, header + 4, 4).ok_or_else(bad)? as u32 != SHT_RELA {
                    continue;
                }
                let offset = read(&bytes, header + 0x18, 8).ok_or_else(bad)? as usize;
                let size = read(&bytes, header + 0x20, 8).ok_or_else(bad)? as usize;
                for entry in (offset..offset + size).step_by(24) {
                    // r_info is at +8 in Elf64_Rela; its low 32 bits are the type.
                    let slot = bytes.get_mut(entry + 8..entry + 12).ok_or_else(bad)?;
                    slot.copy_from_slice(&BOGUS_RELOCATION_TYPE.to_le_bytes());
                    damaged += 1;
                }
            }
            if damaged == 0 {
                return Err(Error::new("object has no relocation entries to damage; use the shdr mode"));
            }
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_header_offset_points_past_the_end() {
        let mut object = vec![0u8; 200];
        object[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let damaged = corrupt(&object, CorruptionMode::SectionHeaders).unwrap();
        let offset = u64::from_le_bytes(damaged[E_SHOFF..E_SHOFF + 8].try_into().unwrap());
        assert!(offset > damaged.len() as u64);
        assert_eq!(damaged, corrupt(&object, CorruptionMode::SectionHeaders).unwrap(), "deterministic");
    }

    #[test]
    fn rejects_non_elf_and_objects_without_relocations() {
        assert!(corrupt(b"short", CorruptionMode::SectionHeaders).is_err());
        let mut object = vec![0u8; 200];
        object[..6].copy_from_slice(b"\x7fELF\x02\x01");
        assert!(corrupt(&object, CorruptionMode::Relocations).is_err());
    }

    #[test]
    fn mode_names() {
        assert_eq!(CorruptionMode::from_name("shdr"), Some(CorruptionMode::SectionHeaders));
        assert_eq!(CorruptionMode::from_name("reloc"), Some(CorruptionMode::Relocations));
        assert_eq!(CorruptionMode::from_name("x"), None);
    }
}
