//! Reading ELF: rlib members, a cell object's symbols and relocations, and the base image's symbol table.
//!
//! Layouts follow the System V ABI (gABI chapter 4, "Object Files") and its x86-64 supplement (relocation types,
//! section 4.4).

use crate::error::{Context, Error, Result};
use crate::symfile::{BaseSymbol, SymbolKind};
use object::elf;
use object::read::archive::ArchiveFile;
use object::read::elf::{ElfFile64, FileHeader, SectionHeader, Sym};
use object::{LittleEndian, SectionIndex};
use std::collections::BTreeMap;

/// Relocation types a cell object may contain (x86-64 psABI, table 4.9). The loader applies exactly these.
pub const ALLOWED_RELOCATIONS: [(u32, &str); 7] = [
    (elf::R_X86_64_NONE, "R_X86_64_NONE"),
    (elf::R_X86_64_64, "R_X86_64_64"),
    (elf::R_X86_64_PC32, "R_X86_64_PC32"),
    (elf::R_X86_64_PLT32, "R_X86_64_PLT32"),
    (elf::R_X86_64_32, "R_X86_64_32"),
    (elf::R_X86_64_32S, "R_X86_64_32S"),
    (elf::R_X86_64_PC64, "R_X86_64_PC64"),
];

/// The object files (`*.o`) inside an archive (an rlib or a staticlib), as `(member name, bytes)`.
///
/// # Errors
/// The archive cannot be parsed.
pub fn archive_objects(archive: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let file = ArchiveFile::parse(archive).context("not an archive")?;
    let mut objects = Vec::new();
    for member in file.members() {
        let member = member.context("bad archive member")?;
        let name = String::from_utf8_lossy(member.name()).into_owned();
        if name.ends_with(".o") {
            objects.push((name, member.data(archive).context("bad archive member")?.to_vec()));
        }
    }
    Ok(objects)
}

/// A global symbol defined by a cell object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DefinedSymbol {
    /// The mangled name.
    pub name: String,
    /// `STB_WEAK` rather than `STB_GLOBAL`.
    pub weak: bool,
}

/// What a relocatable object defines, needs and contains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSymbols {
    /// Defined `STB_GLOBAL`/`STB_WEAK` symbols of type `STT_FUNC`/`STT_OBJECT`, sorted by name.
    pub defined: Vec<DefinedSymbol>,
    /// Names of undefined symbols (referenced, defined elsewhere), sorted, without duplicates.
    pub undefined: Vec<String>,
    /// Number of relocation entries in all `SHT_RELA`/`SHT_REL` sections.
    pub relocations: usize,
    /// Bytes of allocated sections (`SHF_ALLOC`: text, rodata, data, bss).
    pub allocated_bytes: u64,
}

/// A relocation type outside [`ALLOWED_RELOCATIONS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForbiddenRelocation {
    /// The section the relocation applies to (e.g. `.text._RNv...`).
    pub section: String,
    /// The raw `r_type`.
    pub relocation_type: u32,
    /// How many entries of that section have this type.
    pub count: usize,
}

/// Reads a relocatable object's symbols and relocation counts, and lists any forbidden relocation types.
///
/// # Errors
/// The bytes are not a little-endian ELF64 `ET_REL` x86-64 file, or its tables are malformed.
pub fn read_object(data: &[u8]) -> Result<(ObjectSymbols, Vec<ForbiddenRelocation>)> {
    let file = ElfFile64::<LittleEndian>::parse(data).context("not an ELF64 little-endian object")?;
    let endian = file.endian();
    let header = file.elf_header();
    if header.e_type(endian) != elf::ET_REL {
        return Err(Error::new("not a relocatable object (e_type is not ET_REL)"));
    }
    if header.e_machine(endian) != elf::EM_X86_64 {
        return Err(Error::new("not an x86-64 object"));
    }
    let sections = file.elf_section_table();
    let symbols = file.elf_symbol_table();
    let mut result = ObjectSymbols::default();
    let mut forbidden: BTreeMap<(String, u32), usize> = BTreeMap::new();
    for section in sections.iter() {
        if section.sh_flags(endian) & u64::from(elf::SHF_ALLOC) != 0 {
            result.allocated_bytes += section.sh_size(endian);
        }
        let types: Vec<u32> = match section.sh_type(endian) {
            elf::SHT_RELA => section
                .rela(endian, data)
                .context("bad relocation section")?
                .map(|(entries, _)| entries.iter().map(|r| r.r_type(endian, false)).collect())
                .unwrap_or_default(),
            elf::SHT_REL => section
                .rel(endian, data)
                .context("bad relocation section")?
                .map(|(entries, _)| entries.iter().map(|r| r.r_type(endian)).collect())
                .unwrap_or_default(),
            _ => continue,
        };
        result.relocations += types.len();
        for relocation_type in types {
            if !ALLOWED_RELOCATIONS.iter().any(|(allowed, _)| *allowed == relocation_type) {
                let target = sections
                    .section(SectionIndex(section.sh_info(endian) as usize))
                    .and_then(|target| sections.section_name(endian, target))
                    .map(|name| String::from_utf8_lossy(name).into_owned())
                    .unwrap_or_else(|_| format!("section #{}", section.sh_info(endian)));
                *forbidden.entry((target, relocation_type)).or_default() += 1;
            }
        }
    }
    let mut undefined = Vec::new();
    for (index, symbol) in symbols.enumerate() {
        let name = symbols.symbol_name(endian, symbol).context("bad symbol name")?;
        if name.is_empty() {
            continue;
        }
        let name = String::from_utf8_lossy(name).into_owned();
        if symbols.symbol_section(endian, symbol, index).context("bad symbol section")?.is_none()
            && symbol.st_shndx(endian) == elf::SHN_UNDEF
        {
            undefined.push(name);
            continue;
        }
        let global = matches!(symbol.st_bind(), elf::STB_GLOBAL | elf::STB_WEAK);
        let typed = matches!(symbol.st_type(), elf::STT_FUNC | elf::STT_OBJECT);
        if global && typed {
            result.defined.push(DefinedSymbol { name, weak: symbol.st_bind() == elf::STB_WEAK });
        }
    }
    result.defined.sort();
    undefined.sort();
    undefined.dedup();
    result.undefined = undefined;
    let forbidden = forbidden
        .into_iter()
        .map(|((section, relocation_type), count)| ForbiddenRelocation { section, relocation_type, count })
        .collect();
    Ok((result, forbidden))
}

/// The symbols of a linked image for `nano_core.syms`: `STT_FUNC`/`STT_OBJECT` of any binding and `STT_NOTYPE`
/// globals, defined in an allocated section; names that occur more than once are dropped (a cell could not
/// tell which one it means). Sorted by address, then name.
///
/// # Errors
/// The bytes are not an ELF64 little-endian file or its tables are malformed.
pub fn base_symbols(data: &[u8]) -> Result<Vec<BaseSymbol>> {
    let file = ElfFile64::<LittleEndian>::parse(data).context("not an ELF64 little-endian file")?;
    let endian = file.endian();
    let sections = file.elf_section_table();
    let symbols = file.elf_symbol_table();
    let mut found: Vec<BaseSymbol> = Vec::new();
    let mut occurrences: BTreeMap<String, usize> = BTreeMap::new();
    for (index, symbol) in symbols.enumerate() {
        let name = symbols.symbol_name(endian, symbol).context("bad symbol name")?;
        if name.is_empty() {
            continue;
        }
        let name = String::from_utf8_lossy(name).into_owned();
        let wanted = match symbol.st_type() {
            elf::STT_FUNC | elf::STT_OBJECT => true,
            elf::STT_NOTYPE => matches!(symbol.st_bind(), elf::STB_GLOBAL | elf::STB_WEAK),
            _ => false,
        };
        if !wanted {
            continue;
        }
        // Only section-relative definitions: skip undefined, absolute and common symbols.
        let shndx = symbol.st_shndx(endian);
        if shndx == elf::SHN_ABS || shndx == elf::SHN_COMMON {
            continue;
        }
        let Some(section_index) = symbols.symbol_section(endian, symbol, index).context("bad symbol section")? else {
            continue;
        };
        let section = sections.section(section_index).context("bad symbol section")?;
        let Some(kind) = kind_of_section(section.sh_flags(endian), section.sh_type(endian)) else {
            continue;
        };
        *occurrences.entry(name.clone()).or_default() += 1;
        found.push(BaseSymbol { address: symbol.st_value(endian), size: symbol.st_size(endian), kind, name });
    }
    found.retain(|symbol| occurrences[&symbol.name] == 1);
    found.sort_by(|a, b| (a.address, &a.name).cmp(&(b.address, &b.name)));
    Ok(found)
}

/// The symbol kind implied by a section's flags and type; `None` for non-allocated sections.
pub fn kind_of_section(flags: u64, section_type: u32) -> Option<SymbolKind> {
    if flags & u64::from(elf::SHF_ALLOC) == 0 {
        return None;
    }
    Some(if flags & u64::from(elf::SHF_EXECINSTR) != 0 {
        SymbolKind::Text
    } else if section_type == elf::SHT_NOBITS {
        SymbolKind::Bss
    } else if flags & u64::from(elf::SHF_WRITE) != 0 {
        SymbolKind::Data
    } else {
        SymbolKind::ReadOnly
    })
}

/// A readable name for relocation type `relocation_type`.
pub fn relocation_name(relocation_type: u32) -> String {
    const OTHERS: [(u32, &str); 12] = [
        (elf::R_X86_64_GOT32, "R_X86_64_GOT32"),
        (elf::R_X86_64_COPY, "R_X86_64_COPY"),
        (elf::R_X86_64_GLOB_DAT, "R_X86_64_GLOB_DAT"),
        (elf::R_X86_64_JUMP_SLOT, "R_X86_64_JUMP_SLOT"),
        (elf::R_X86_64_RELATIVE, "R_X86_64_RELATIVE"),
        (elf::R_X86_64_GOTPCREL, "R_X86_64_GOTPCREL"),
        (elf::R_X86_64_TPOFF32, "R_X86_64_TPOFF32"),
        (elf::R_X86_64_DTPOFF32, "R_X86_64_DTPOFF32"),
        (elf::R_X86_64_TLSLD, "R_X86_64_TLSLD"),
        (elf::R_X86_64_TLSGD, "R_X86_64_TLSGD"),
        (elf::R_X86_64_GOTPCRELX, "R_X86_64_GOTPCRELX"),
        (elf::R_X86_64_REX_GOTPCRELX, "R_X86_64_REX_GOTPCRELX"),
    ];
    ALLOWED_RELOCATIONS
        .iter()
        .chain(OTHERS.iter())
        .find(|(value, _)| *value == relocation_type)
        .map(|(_, name)| (*name).to_string())
        .unwrap_or_else(|| format!("unknown relocation type {relocation_type}"))
}

/// Demangles a symbol name for display (v0 and legacy Rust names; others are returned unchanged).
pub fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_kinds() {
        let alloc = u64::from(elf::SHF_ALLOC);
        let exec = u64::from(elf::SHF_EXECINSTR);
        let write = u64::from(elf::SHF_WRITE);
        assert_eq!(kind_of_section(alloc | exec, elf::SHT_PROGBITS), Some(SymbolKind::Text));
        assert_eq!(kind_of_section(alloc, elf::SHT_PROGBITS), Some(SymbolKind::ReadOnly));
        assert_eq!(kind_of_section(alloc | write, elf::SHT_PROGBITS), Some(SymbolKind::Data));
        assert_eq!(kind_of_section(alloc | write, elf::SHT_NOBITS), Some(SymbolKind::Bss));
        assert_eq!(kind_of_section(0, elf::SHT_PROGBITS), None);
    }

    #[test]
    fn relocation_names() {
        assert_eq!(relocation_name(elf::R_X86_64_PLT32), "R_X86_64_PLT32");
        assert_eq!(relocation_name(elf::R_X86_64_GOTPCREL), "R_X86_64_GOTPCREL");
        assert_eq!(relocation_name(200), "unknown relocation type 200");
    }

    #[test]
    fn rejects_non_elf() {
        assert!(read_object(b"not an elf file at all, just some bytes....................").is_err());
    }

    #[test]
    fn demangles_v0() {
        assert_eq!(demangle("_RNvCs1234_5hello4main"), "hello::main");
        assert_eq!(demangle("memcpy"), "memcpy");
    }
}
