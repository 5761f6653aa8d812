//! Typed views of the raw numbers in an ELF object: table indices and enums with an `Unknown(raw)` arm.
//!
//! Constants come from the System V gABI (ELF-64 Object File Format, version 1.5, "Sections" and "Symbol Table")
//! and the x86_64 psABI (version 1.0, section 4.4 "Relocation", table 4.10).

use core::fmt;

/// The index of a section header in one object's section header table (`st_shndx`, `sh_info`, `sh_link`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SectionIndex(pub u32);

impl SectionIndex {
    /// The index as a `usize`, for indexing a table.
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for SectionIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "section #{}", self.0)
    }
}

/// The index of an entry in one object's symbol table (`ELF64_R_SYM(r_info)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SymbolIndex(pub u32);

impl SymbolIndex {
    /// The index as a `usize`, for indexing a table.
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for SymbolIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "symbol #{}", self.0)
    }
}

/// A section header's `sh_type` (gABI "Section Types"), plus the x86_64 unwind table type (psABI 4.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionType {
    /// `SHT_NULL` (0): an unused header.
    Null,
    /// `SHT_PROGBITS` (1): bytes stored in the file.
    ProgramBits,
    /// `SHT_SYMTAB` (2): the symbol table.
    SymbolTable,
    /// `SHT_STRTAB` (3): a string table.
    StringTable,
    /// `SHT_RELA` (4): relocations with explicit addends.
    RelocationsWithAddend,
    /// `SHT_NOTE` (7): notes.
    Note,
    /// `SHT_NOBITS` (8): zero-filled memory with no bytes in the file (`.bss`).
    NoBits,
    /// `SHT_REL` (9): relocations without addends (never used on x86_64).
    Relocations,
    /// `SHT_INIT_ARRAY` (14).
    InitArray,
    /// `SHT_FINI_ARRAY` (15).
    FiniArray,
    /// `SHT_GROUP` (17): a section group (COMDAT).
    Group,
    /// `SHT_SYMTAB_SHNDX` (18): extended section indices.
    SymbolTableIndices,
    /// `SHT_X86_64_UNWIND` (0x7000_0001): `.eh_frame`.
    X86_64Unwind,
    /// `SHT_LLVM_ADDRSIG` (0x6fff_4c03): LLVM's address-significance table.
    LlvmAddressSignificance,
    /// Any other value.
    Unknown(u32),
}

impl From<u32> for SectionType {
    fn from(raw: u32) -> Self {
        match raw {
            0 => Self::Null,
            1 => Self::ProgramBits,
            2 => Self::SymbolTable,
            3 => Self::StringTable,
            4 => Self::RelocationsWithAddend,
            7 => Self::Note,
            8 => Self::NoBits,
            9 => Self::Relocations,
            14 => Self::InitArray,
            15 => Self::FiniArray,
            17 => Self::Group,
            18 => Self::SymbolTableIndices,
            0x7000_0001 => Self::X86_64Unwind,
            0x6fff_4c03 => Self::LlvmAddressSignificance,
            other => Self::Unknown(other),
        }
    }
}

/// Section flag `SHF_WRITE`: writable at run time.
pub const SHF_WRITE: u64 = 0x1;
/// Section flag `SHF_ALLOC`: occupies memory at run time.
pub const SHF_ALLOC: u64 = 0x2;
/// Section flag `SHF_EXECINSTR`: machine instructions.
pub const SHF_EXECINSTR: u64 = 0x4;
/// Section flag `SHF_TLS`: thread-local storage (unsupported by the loader).
pub const SHF_TLS: u64 = 0x400;

/// What the loader does with a section: where it goes in memory, or that it is not loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SectionKind {
    /// Executable code (`SHF_EXECINSTR`); goes in the text region (read + execute).
    Text,
    /// Allocated, not writable (`.rodata.*`); goes in the read-only region.
    ReadOnlyData,
    /// Allocated, writable, with bytes (`.data.*`); goes in the data region (read + write, no execute).
    Data,
    /// Allocated, writable, zero-filled (`SHT_NOBITS`, `.bss.*`); goes in the data region.
    Bss,
    /// `.eh_frame`: call-frame information; goes in the read-only region and is kept for the unwinder.
    EhFrame,
    /// `.gcc_except_table*`: LSDAs for landing pads; goes in the read-only region and is kept for the unwinder.
    GccExceptTable,
    /// Not loaded: no `SHF_ALLOC` (symbol and string tables, relocations, `.comment`, `.note*`, `.debug*`, ...).
    NotLoaded,
}

impl SectionKind {
    /// Whether sections of this kind occupy memory in a loaded cell.
    pub const fn is_loaded(self) -> bool {
        !matches!(self, Self::NotLoaded)
    }
}

/// A symbol's binding (`ELF64_ST_BIND(st_info)`, gABI "Symbol Binding").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolBinding {
    /// `STB_LOCAL` (0): visible only inside this object.
    Local,
    /// `STB_GLOBAL` (1): visible to every cell.
    Global,
    /// `STB_WEAK` (2): global, but a duplicate definition is not an error and may stay undefined.
    Weak,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for SymbolBinding {
    fn from(raw: u8) -> Self {
        match raw {
            0 => Self::Local,
            1 => Self::Global,
            2 => Self::Weak,
            other => Self::Unknown(other),
        }
    }
}

/// A symbol's type (`ELF64_ST_TYPE(st_info)`, gABI "Symbol Types").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolType {
    /// `STT_NOTYPE` (0).
    NoType,
    /// `STT_OBJECT` (1): a data object (a static).
    Object,
    /// `STT_FUNC` (2): a function.
    Function,
    /// `STT_SECTION` (3): the section itself (relocations against `.rodata..L...` use these).
    Section,
    /// `STT_FILE` (4): the source file name.
    File,
    /// `STT_COMMON` (5): an unallocated common block (rejected).
    Common,
    /// `STT_TLS` (6): a thread-local variable (rejected).
    ThreadLocal,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for SymbolType {
    fn from(raw: u8) -> Self {
        match raw {
            0 => Self::NoType,
            1 => Self::Object,
            2 => Self::Function,
            3 => Self::Section,
            4 => Self::File,
            5 => Self::Common,
            6 => Self::ThreadLocal,
            other => Self::Unknown(other),
        }
    }
}

/// Where a symbol is defined (`st_shndx`, gABI "Special Section Indexes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolDefinition {
    /// `SHN_UNDEF`: defined by another cell (or by nothing: the null symbol).
    Undefined,
    /// `SHN_ABS`: an absolute value that is not relocated.
    Absolute,
    /// Defined in this object's section.
    Section(SectionIndex),
}

/// An x86_64 relocation type (`ELF64_R_TYPE(r_info)`, psABI 4.4, table 4.10).
///
/// Only [`None`](Self::None), [`Absolute64`](Self::Absolute64), [`Pc32`](Self::Pc32), [`Plt32`](Self::Plt32),
/// [`Absolute32`](Self::Absolute32), [`Absolute32Signed`](Self::Absolute32Signed) and [`Pc64`](Self::Pc64) are
/// supported (see [`is_supported`](Self::is_supported)); the other named types exist for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelocationType {
    /// `R_X86_64_NONE` (0): no relocation; ignored.
    None,
    /// `R_X86_64_64` (1): `S + A`, 64 bits.
    Absolute64,
    /// `R_X86_64_PC32` (2): `S + A - P`, sign-extended 32 bits.
    Pc32,
    /// `R_X86_64_GOT32` (3).
    Got32,
    /// `R_X86_64_PLT32` (4): `L + A - P`; with no PLT, `L = S`.
    Plt32,
    /// `R_X86_64_GOTPCREL` (9).
    GotPcRelative,
    /// `R_X86_64_32` (10): `S + A`, zero-extended 32 bits.
    Absolute32,
    /// `R_X86_64_32S` (11): `S + A`, sign-extended 32 bits.
    Absolute32Signed,
    /// `R_X86_64_TPOFF32` (23): thread-local, local-exec.
    ThreadPointerOffset32,
    /// `R_X86_64_PC64` (24): `S + A - P`, 64 bits.
    Pc64,
    /// `R_X86_64_GOTPCRELX` (41).
    GotPcRelativeRelaxable,
    /// `R_X86_64_REX_GOTPCRELX` (42).
    RexGotPcRelativeRelaxable,
    /// Any other value.
    Unknown(u32),
}

impl From<u32> for RelocationType {
    fn from(raw: u32) -> Self {
        match raw {
            0 => Self::None,
            1 => Self::Absolute64,
            2 => Self::Pc32,
            3 => Self::Got32,
            4 => Self::Plt32,
            9 => Self::GotPcRelative,
            10 => Self::Absolute32,
            11 => Self::Absolute32Signed,
            23 => Self::ThreadPointerOffset32,
            24 => Self::Pc64,
            41 => Self::GotPcRelativeRelaxable,
            42 => Self::RexGotPcRelativeRelaxable,
            other => Self::Unknown(other),
        }
    }
}

impl RelocationType {
    /// The raw `ELF64_R_TYPE` value.
    pub const fn raw(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Absolute64 => 1,
            Self::Pc32 => 2,
            Self::Got32 => 3,
            Self::Plt32 => 4,
            Self::GotPcRelative => 9,
            Self::Absolute32 => 10,
            Self::Absolute32Signed => 11,
            Self::ThreadPointerOffset32 => 23,
            Self::Pc64 => 24,
            Self::GotPcRelativeRelaxable => 41,
            Self::RexGotPcRelativeRelaxable => 42,
            Self::Unknown(raw) => raw,
        }
    }

    /// Whether [`apply_relocation`](crate::apply_relocation) implements this type.
    pub const fn is_supported(self) -> bool {
        matches!(
            self,
            Self::None
                | Self::Absolute64
                | Self::Pc32
                | Self::Plt32
                | Self::Absolute32
                | Self::Absolute32Signed
                | Self::Pc64
        )
    }

    /// How many bytes at the place a supported type writes (0 for `R_X86_64_NONE`); `None` if unsupported.
    pub const fn width_in_bytes(self) -> Option<usize> {
        match self {
            Self::None => Some(0),
            Self::Absolute64 | Self::Pc64 => Some(8),
            Self::Pc32 | Self::Plt32 | Self::Absolute32 | Self::Absolute32Signed => Some(4),
            _ => None,
        }
    }
}

impl fmt::Display for RelocationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::None => "R_X86_64_NONE",
            Self::Absolute64 => "R_X86_64_64",
            Self::Pc32 => "R_X86_64_PC32",
            Self::Got32 => "R_X86_64_GOT32",
            Self::Plt32 => "R_X86_64_PLT32",
            Self::GotPcRelative => "R_X86_64_GOTPCREL",
            Self::Absolute32 => "R_X86_64_32",
            Self::Absolute32Signed => "R_X86_64_32S",
            Self::ThreadPointerOffset32 => "R_X86_64_TPOFF32",
            Self::Pc64 => "R_X86_64_PC64",
            Self::GotPcRelativeRelaxable => "R_X86_64_GOTPCRELX",
            Self::RexGotPcRelativeRelaxable => "R_X86_64_REX_GOTPCRELX",
            Self::Unknown(raw) => return write!(f, "unknown relocation type {raw}"),
        };
        f.write_str(name)
    }
}
