//! The error of [`ObjectFile::parse`](crate::ObjectFile::parse).

use alloc::string::String;
use core::fmt;

use crate::{RelocationType, SectionIndex, SectionType, SymbolIndex};

/// Why bytes are not a relocatable x86_64 ELF object the loader accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The bytes do not start on an 8-byte boundary (`xmas-elf` reads tables in place).
    MisalignedInput {
        /// The start address of the bytes.
        address: usize,
    },
    /// The file is shorter than its ELF header.
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        file_length: usize,
    },
    /// No ELF magic number (`\x7fELF`).
    NotElf,
    /// `EI_CLASS` is not `ELFCLASS64` (2).
    WrongClass {
        /// The raw `EI_CLASS` byte.
        class: u8,
    },
    /// `EI_DATA` is not `ELFDATA2LSB` (1).
    WrongEncoding {
        /// The raw `EI_DATA` byte.
        encoding: u8,
    },
    /// `e_type` is not `ET_REL` (1): executables and shared objects are not cells.
    NotRelocatable {
        /// The raw `e_type`.
        file_type: u16,
    },
    /// `e_machine` is not `EM_X86_64` (62).
    WrongMachine {
        /// The raw `e_machine`.
        machine: u16,
    },
    /// `e_shentsize` is not 64.
    BadSectionHeaderSize {
        /// The raw `e_shentsize`.
        entry_size: u16,
    },
    /// `e_shnum` is 0 or above `SHN_LORESERVE`, or `e_shstrndx` is reserved: extended section numbering is
    /// not supported (a cell would need more than 65,280 sections).
    ExtendedSectionNumbering {
        /// The raw `e_shnum`.
        section_count: u16,
    },
    /// The section header table does not lie inside the file at an 8-byte-aligned offset.
    SectionHeadersOutOfBounds {
        /// `e_shoff`.
        offset: u64,
        /// `e_shnum`.
        count: u16,
        /// File length in bytes.
        file_length: usize,
    },
    /// A section index read from the file (`e_shstrndx`, `sh_link`, `sh_info`) is out of range.
    SectionIndexOutOfRange {
        /// The section whose header holds the index (section 0 for the ELF header).
        referrer: SectionIndex,
        /// The offending index.
        index: u32,
    },
    /// A section's bytes do not lie inside the file.
    SectionOutOfBounds {
        /// The section.
        section: SectionIndex,
        /// Its `sh_offset`.
        offset: u64,
        /// Its `sh_size`.
        size: u64,
        /// File length in bytes.
        file_length: usize,
    },
    /// A symbol or relocation table does not start at an 8-byte-aligned file offset.
    MisalignedTable {
        /// The table's section.
        section: SectionIndex,
        /// Its `sh_offset`.
        offset: u64,
    },
    /// A table's `sh_entsize` or `sh_size` does not fit its entry type.
    BadEntrySize {
        /// The table's section.
        section: SectionIndex,
        /// Its `sh_entsize`.
        entry_size: u64,
    },
    /// A section that must be a string table is not `SHT_STRTAB`.
    NotAStringTable {
        /// The section.
        section: SectionIndex,
    },
    /// The symbol table could not be read as one.
    NotASymbolTable {
        /// The section.
        section: SectionIndex,
    },
    /// A string offset is outside its table, or the string is unterminated or not UTF-8.
    BadString {
        /// The string table.
        table: SectionIndex,
        /// The offset into it.
        offset: u32,
    },
    /// A section's alignment is not a power of two, or a loaded section needs more than 4 KiB alignment.
    BadAlignment {
        /// The section name.
        section: String,
        /// Its `sh_addralign`.
        alignment: u64,
    },
    /// An allocated section has a type the loader does not know how to place.
    UnsupportedSectionType {
        /// The section name.
        section: String,
        /// Its type.
        section_type: SectionType,
    },
    /// A section holds thread-local storage (`SHF_TLS`), which cells do not support.
    ThreadLocalSection {
        /// The section name.
        section: String,
    },
    /// More than one `SHT_SYMTAB` section.
    MultipleSymbolTables {
        /// The first table.
        first: SectionIndex,
        /// The second table.
        second: SectionIndex,
    },
    /// A symbol's `st_shndx` is out of range.
    SymbolSectionOutOfRange {
        /// The symbol.
        symbol: SymbolIndex,
        /// The offending section index.
        index: u32,
    },
    /// A symbol's `st_shndx` is a reserved index other than `SHN_UNDEF`/`SHN_ABS` (e.g. `SHN_XINDEX`).
    UnsupportedSymbolSection {
        /// The symbol name.
        symbol: String,
        /// The raw `st_shndx`.
        section_index: u16,
    },
    /// A common symbol (`SHN_COMMON` or `STT_COMMON`): the compiler should have allocated it in `.bss`.
    CommonSymbol {
        /// The symbol name.
        symbol: String,
    },
    /// A thread-local symbol (`STT_TLS`), which cells do not support.
    ThreadLocalSymbol {
        /// The symbol name.
        symbol: String,
    },
    /// A symbol binding other than local, global or weak.
    UnknownSymbolBinding {
        /// The symbol name.
        symbol: String,
        /// The raw binding.
        binding: u8,
    },
    /// A symbol's value lies beyond the end of its (loaded) section.
    SymbolOutsideSection {
        /// The symbol name.
        symbol: String,
        /// Its `st_value`.
        value: u64,
        /// The section size in bytes.
        section_size: u64,
    },
    /// An `SHT_REL` section (no addends) patches a loaded section; x86_64 uses only `SHT_RELA`.
    RelSectionUnsupported {
        /// The relocation section's name.
        section: String,
    },
    /// Relocations patch an `SHT_NOBITS` section, which has no bytes to patch.
    RelocationsForNoBits {
        /// The target section's name.
        section: String,
    },
    /// A relocation type the loader does not implement.
    UnsupportedRelocation {
        /// The section being patched.
        section: String,
        /// The type.
        relocation_type: RelocationType,
        /// The place's offset in the section.
        offset: u64,
    },
    /// A relocation names a symbol index outside the symbol table.
    RelocationSymbolOutOfRange {
        /// The section being patched.
        section: String,
        /// The place's offset in the section.
        offset: u64,
        /// The offending symbol index.
        symbol: SymbolIndex,
    },
    /// A relocation's field does not lie inside the section it patches.
    RelocationOutsideSection {
        /// The section being patched.
        section: String,
        /// The place's offset in the section.
        offset: u64,
        /// The section size in bytes.
        section_size: u64,
    },
    /// A loaded section refers to a symbol in a section that is not loaded (e.g. `.debug_*`).
    RelocationToUnloadedSection {
        /// The section being patched.
        section: String,
        /// The symbol.
        symbol: String,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MisalignedInput { address } => write!(f, "object bytes at {address:#x} are not 8-byte aligned"),
            Self::Truncated { needed, file_length } => {
                write!(f, "truncated: {file_length} bytes, at least {needed} needed")
            }
            Self::NotElf => f.write_str("not an ELF file (bad magic)"),
            Self::WrongClass { class } => write!(f, "ELF class {class}, expected 2 (64-bit)"),
            Self::WrongEncoding { encoding } => write!(f, "ELF data encoding {encoding}, expected 1 (little-endian)"),
            Self::NotRelocatable { file_type } => write!(f, "ELF type {file_type}, expected 1 (ET_REL)"),
            Self::WrongMachine { machine } => write!(f, "ELF machine {machine}, expected 62 (x86_64)"),
            Self::BadSectionHeaderSize { entry_size } => write!(f, "section header size {entry_size}, expected 64"),
            Self::ExtendedSectionNumbering { section_count } => {
                write!(f, "{section_count} sections: extended section numbering is not supported")
            }
            Self::SectionHeadersOutOfBounds { offset, count, file_length } => {
                write!(f, "{count} section headers at offset {offset:#x} do not fit a {file_length}-byte file aligned")
            }
            Self::SectionIndexOutOfRange { referrer, index } => {
                write!(f, "{referrer} refers to section index {index}, which is out of range")
            }
            Self::SectionOutOfBounds { section, offset, size, file_length } => {
                write!(f, "{section}: {size} bytes at offset {offset:#x} lie outside the {file_length}-byte file")
            }
            Self::MisalignedTable { section, offset } => {
                write!(f, "{section}: table offset {offset:#x} not 8-byte aligned")
            }
            Self::BadEntrySize { section, entry_size } => write!(f, "{section}: bad entry size {entry_size}"),
            Self::NotAStringTable { section } => write!(f, "{section} is not a string table"),
            Self::NotASymbolTable { section } => write!(f, "{section} is not a readable symbol table"),
            Self::BadString { table, offset } => write!(f, "bad string at offset {offset} of {table}"),
            Self::BadAlignment { section, alignment } => {
                write!(f, "section {section}: unsupported alignment {alignment}")
            }
            Self::UnsupportedSectionType { section, section_type } => {
                write!(f, "allocated section {section} has unsupported type {section_type:?}")
            }
            Self::ThreadLocalSection { section } => write!(f, "section {section} is thread-local (unsupported)"),
            Self::MultipleSymbolTables { first, second } => write!(f, "two symbol tables: {first} and {second}"),
            Self::SymbolSectionOutOfRange { symbol, index } => {
                write!(f, "{symbol} is in section {index}, out of range")
            }
            Self::UnsupportedSymbolSection { symbol, section_index } => {
                write!(f, "symbol {symbol} has unsupported section index {section_index:#x}")
            }
            Self::CommonSymbol { symbol } => write!(f, "symbol {symbol} is a common symbol (unsupported)"),
            Self::ThreadLocalSymbol { symbol } => write!(f, "symbol {symbol} is thread-local (unsupported)"),
            Self::UnknownSymbolBinding { symbol, binding } => {
                write!(f, "symbol {symbol} has unknown binding {binding}")
            }
            Self::SymbolOutsideSection { symbol, value, section_size } => {
                write!(f, "symbol {symbol} at offset {value:#x} lies outside its {section_size}-byte section")
            }
            Self::RelSectionUnsupported { section } => write!(f, "{section}: SHT_REL relocations are not supported"),
            Self::RelocationsForNoBits { section } => write!(f, "relocations patch NOBITS section {section}"),
            Self::UnsupportedRelocation { section, relocation_type, offset } => {
                write!(f, "section {section} offset {offset:#x}: {relocation_type} is not supported")
            }
            Self::RelocationSymbolOutOfRange { section, offset, symbol } => {
                write!(f, "section {section} offset {offset:#x}: relocation names {symbol}, out of range")
            }
            Self::RelocationOutsideSection { section, offset, section_size } => {
                write!(f, "relocation at offset {offset:#x} lies outside section {section} ({section_size} bytes)")
            }
            Self::RelocationToUnloadedSection { section, symbol } => {
                write!(f, "section {section} refers to symbol {symbol} in a section that is not loaded")
            }
        }
    }
}
