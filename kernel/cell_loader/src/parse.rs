//! Validation of an untrusted relocatable ELF object into an [`ObjectFile`] view.
//!
//! `xmas-elf` reads the headers and tables, but it asserts (panics) on misaligned or out-of-range input, so every
//! precondition of each `xmas-elf` call is checked here first: the bytes start 8-byte aligned, the section header
//! table and every table lie inside the file at 8-byte offsets with the right entry size, and every index read from
//! the file is range-checked before use. Strings are read here (not by `xmas-elf`, which panics on bad UTF-8).
//! Layouts: System V gABI (ELF-64), "ELF Header", "Sections", "Symbol Table", "Relocation".

use alloc::string::ToString;
use alloc::vec::Vec;

use xmas_elf::ElfFile;
use xmas_elf::header::{Machine, Type};
use xmas_elf::sections::{SectionData, SectionHeader};
use xmas_elf::symbol_table::Entry;

use crate::{
    ParseError, RelocationType, SHF_ALLOC, SHF_EXECINSTR, SHF_TLS, SHF_WRITE, SectionIndex, SectionKind, SectionType,
    SymbolBinding, SymbolDefinition, SymbolIndex, SymbolType,
};

/// The largest section alignment the loader honours, in bytes: regions start on 4 KiB page boundaries.
pub const MAX_SECTION_ALIGNMENT: u64 = 4096;

/// Size of `Elf64_Ehdr` in bytes.
const ELF_HEADER_SIZE: usize = 64;
/// Size of `Elf64_Shdr` in bytes.
const SECTION_HEADER_SIZE: u64 = 64;
/// Size of `Elf64_Sym` in bytes.
const SYMBOL_SIZE: u64 = 24;
/// Size of `Elf64_Rela` in bytes.
const RELA_SIZE: u64 = 24;
/// Alignment `xmas-elf` requires of every table it reads (that of `u64`).
const TABLE_ALIGNMENT: u64 = 8;
/// `SHN_LORESERVE`: section indices from here up are reserved, and `xmas-elf` refuses to read such headers.
const SHN_LORESERVE: u32 = 0xff00;
/// `SHN_ABS`.
const SHN_ABS: u16 = 0xfff1;
/// `SHN_COMMON`.
const SHN_COMMON: u16 = 0xfff2;

/// One section of an object file.
#[derive(Clone, Debug)]
pub struct Section<'a> {
    /// Its index in the section header table.
    pub index: SectionIndex,
    /// Its name from the section-name string table, e.g. `.text._RNvCs..._5hello4main`.
    pub name: &'a str,
    /// Its `sh_type`.
    pub section_type: SectionType,
    /// Its `sh_flags` (see [`SHF_ALLOC`] and friends).
    pub flags: u64,
    /// What the loader does with it.
    pub kind: SectionKind,
    /// Its size in memory, in bytes.
    pub size: u64,
    /// Its required alignment in bytes: a power of two, at most [`MAX_SECTION_ALIGNMENT`] for loaded sections.
    pub alignment: u64,
    /// Its bytes in the file (empty for `SHT_NOBITS` and `SHT_NULL`).
    pub data: &'a [u8],
}

/// One symbol table entry.
#[derive(Clone, Debug)]
pub struct Symbol<'a> {
    /// Its name (the mangled name for Rust items; empty for the null symbol and most section symbols).
    pub name: &'a str,
    /// Its binding.
    pub binding: SymbolBinding,
    /// Its type.
    pub symbol_type: SymbolType,
    /// Where it is defined.
    pub definition: SymbolDefinition,
    /// Its offset in bytes within its section (or its value, for [`SymbolDefinition::Absolute`]).
    pub value: u64,
    /// Its size in bytes.
    pub size: u64,
}

impl Symbol<'_> {
    /// Whether other cells may bind to it: global or weak binding, defined here, and not a section or file symbol.
    pub fn is_exported(&self) -> bool {
        matches!(self.binding, SymbolBinding::Global | SymbolBinding::Weak)
            && !matches!(self.definition, SymbolDefinition::Undefined)
            && !matches!(self.symbol_type, SymbolType::Section | SymbolType::File)
            && !self.name.is_empty()
    }
}

/// One relocation entry (`Elf64_Rela`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relocation {
    /// Offset of the place in bytes from the start of the target section; the field lies inside the section.
    pub offset: u64,
    /// Its type, always one that [`RelocationType::is_supported`].
    pub relocation_type: RelocationType,
    /// The symbol whose address is `S`; always a valid index into [`ObjectFile::symbols`].
    pub symbol: SymbolIndex,
    /// The addend `A`.
    pub addend: i64,
}

/// The relocations of one `SHT_RELA` section whose target section is loaded.
#[derive(Clone, Debug)]
pub struct RelocationSection {
    /// The index of the `.rela.*` section itself.
    pub index: SectionIndex,
    /// The section the relocations patch (`sh_info`); always a loaded section that has bytes.
    pub target: SectionIndex,
    /// Where its entries lie in the object's one relocation table ([`ObjectFile::relocations`]), in file order.
    entries: core::ops::Range<usize>,
}

/// A validated view of one relocatable x86_64 ELF object: every index in it is in range.
#[derive(Clone, Debug)]
pub struct ObjectFile<'a> {
    sections: Vec<Section<'a>>,
    symbols: Vec<Symbol<'a>>,
    relocation_sections: Vec<RelocationSection>,
    /// Every relocation entry of every section in `relocation_sections`, back to back (one allocation per object
    /// instead of one per section: `-ffunction-sections` objects have hundreds of small `.rela` sections).
    relocations: Vec<Relocation>,
}

impl<'a> ObjectFile<'a> {
    /// Parses and validates `bytes` as an `ET_REL`, `EM_X86_64`, ELFCLASS64, little-endian object.
    ///
    /// `bytes` must start at an 8-byte-aligned address (boot modules are page-aligned).
    ///
    /// # Errors
    /// A [`ParseError`] describing the first problem found. Never panics, whatever the bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        let file = parse_header(bytes)?;
        let sections = parse_sections(&file)?;
        let (symbol_table, symbols) = parse_symbols(&file, &sections)?;
        let (relocation_sections, relocations) = parse_relocations(&file, &sections, symbol_table, &symbols)?;
        Ok(Self { sections, symbols, relocation_sections, relocations })
    }

    /// Every section, indexed by [`SectionIndex`].
    pub fn sections(&self) -> &[Section<'a>] {
        &self.sections
    }

    /// The section at `index`, if it exists.
    pub fn section(&self, index: SectionIndex) -> Option<&Section<'a>> {
        self.sections.get(index.as_usize())
    }

    /// Every symbol table entry, indexed by [`SymbolIndex`] (entry 0 is the null symbol; empty without a table).
    pub fn symbols(&self) -> &[Symbol<'a>] {
        &self.symbols
    }

    /// The symbol at `index`, if it exists.
    pub fn symbol(&self, index: SymbolIndex) -> Option<&Symbol<'a>> {
        self.symbols.get(index.as_usize())
    }

    /// The relocation sections that patch loaded sections.
    pub fn relocation_sections(&self) -> &[RelocationSection] {
        &self.relocation_sections
    }

    /// The entries of relocation section `section` (one of [`relocation_sections`](Self::relocation_sections)),
    /// in file order; empty for a section of another object.
    pub fn relocations(&self, section: &RelocationSection) -> &[Relocation] {
        self.relocations.get(section.entries.clone()).unwrap_or_default()
    }

    /// The total number of relocation entries that patch loaded sections.
    pub fn relocation_count(&self) -> usize {
        self.relocations.len()
    }

    /// The symbols other cells may bind to (see [`Symbol::is_exported`]), defined in loaded sections.
    pub fn exported_symbols(&self) -> impl Iterator<Item = (SymbolIndex, &Symbol<'a>)> + '_ {
        self.symbols.iter().enumerate().filter_map(move |(index, symbol)| {
            let SymbolDefinition::Section(section) = symbol.definition else { return None };
            let loaded = self.section(section).is_some_and(|section| section.kind.is_loaded());
            (symbol.is_exported() && loaded).then_some((SymbolIndex(index as u32), symbol))
        })
    }
}

fn read_u16(bytes: &[u8], offset: usize) -> u16 {
    let mut raw = [0; 2];
    if let Some(field) = bytes.get(offset..offset + 2) {
        raw.copy_from_slice(field);
    }
    u16::from_le_bytes(raw)
}

/// A string table (`SHT_STRTAB`), checked for UTF-8 as a whole once if it can be, so that each string read from it
/// is not checked again (this runs for every section and every symbol).
struct StringTable<'a> {
    bytes: &'a [u8],
    /// `bytes` as text, if all of it is UTF-8 (rustc's tables are: mangled names are ASCII).
    text: Option<&'a str>,
    index: SectionIndex,
}

impl<'a> StringTable<'a> {
    fn new(bytes: &'a [u8], index: SectionIndex) -> Self {
        Self { bytes, text: core::str::from_utf8(bytes).ok(), index }
    }

    /// Reads the NUL-terminated UTF-8 string at `offset`.
    fn read(&self, offset: u32) -> Result<&'a str, ParseError> {
        let bad = || ParseError::BadString { table: self.index, offset };
        let start = offset as usize;
        let rest = self.bytes.get(start..).ok_or_else(bad)?;
        // `CStr` finds the NUL a word at a time (a byte loop is slow under emulation).
        let length = core::ffi::CStr::from_bytes_until_nul(rest).map_err(|_| bad())?.count_bytes();
        match self.text {
            // A valid table: the string is valid if it starts on a character boundary (it ends on the NUL, which
            // is one); `get` checks exactly that.
            Some(text) => text.get(start..start + length).ok_or_else(bad),
            // Otherwise only the strings actually read must be valid.
            None => core::str::from_utf8(&rest[..length]).map_err(|_| bad()),
        }
    }
}

/// Checks that `count` entries of `entry_size` bytes at `offset` lie inside the file at an aligned offset.
fn check_table(file_length: usize, offset: u64, size: u64, section: SectionIndex) -> Result<(), ParseError> {
    let end = offset.checked_add(size);
    if end.is_none_or(|end| end > file_length as u64) {
        return Err(ParseError::SectionOutOfBounds { section, offset, size, file_length });
    }
    if !offset.is_multiple_of(TABLE_ALIGNMENT) {
        return Err(ParseError::MisalignedTable { section, offset });
    }
    Ok(())
}

/// ELF header checks (gABI "ELF Header"; `e_ident` bytes 0..16, `e_type` at 16, `e_machine` at 18).
fn parse_header(bytes: &[u8]) -> Result<ElfFile<'_>, ParseError> {
    if !(bytes.as_ptr() as usize).is_multiple_of(TABLE_ALIGNMENT as usize) {
        return Err(ParseError::MisalignedInput { address: bytes.as_ptr() as usize });
    }
    if bytes.len() < ELF_HEADER_SIZE {
        return Err(ParseError::Truncated { needed: ELF_HEADER_SIZE as u64, file_length: bytes.len() });
    }
    if bytes[..4] != [0x7f, b'E', b'L', b'F'] {
        return Err(ParseError::NotElf);
    }
    if bytes[4] != 2 {
        return Err(ParseError::WrongClass { class: bytes[4] });
    }
    if bytes[5] != 1 {
        return Err(ParseError::WrongEncoding { encoding: bytes[5] });
    }
    // The checks above are exactly what `parse_header` needs to succeed; the error arm is unreachable in practice.
    let file = ElfFile::new(bytes).map_err(|_| ParseError::NotElf)?;
    if file.header.pt2.type_().as_type() != Type::Relocatable {
        return Err(ParseError::NotRelocatable { file_type: read_u16(bytes, 16) });
    }
    if file.header.pt2.machine().as_machine() != Machine::X86_64 {
        return Err(ParseError::WrongMachine { machine: read_u16(bytes, 18) });
    }
    let entry_size = file.header.pt2.sh_entry_size();
    if u64::from(entry_size) != SECTION_HEADER_SIZE {
        return Err(ParseError::BadSectionHeaderSize { entry_size });
    }
    let count = file.header.pt2.sh_count();
    let names = file.header.pt2.sh_str_index();
    if count == 0 || u32::from(count) > SHN_LORESERVE || u32::from(names) >= SHN_LORESERVE {
        return Err(ParseError::ExtendedSectionNumbering { section_count: count });
    }
    let offset = file.header.pt2.sh_offset();
    let size = u64::from(count) * SECTION_HEADER_SIZE;
    check_table(bytes.len(), offset, size, SectionIndex(0)).map_err(|_| ParseError::SectionHeadersOutOfBounds {
        offset,
        count,
        file_length: bytes.len(),
    })?;
    if names >= count {
        return Err(ParseError::SectionIndexOutOfRange { referrer: SectionIndex(0), index: u32::from(names) });
    }
    Ok(file)
}

fn section_header<'a>(file: &ElfFile<'a>, index: SectionIndex) -> Result<SectionHeader<'a>, ParseError> {
    // `index` < sh_count <= SHN_LORESERVE and the table is inside the file (checked by `parse_header`).
    let raw =
        u16::try_from(index.0).map_err(|_| ParseError::SectionIndexOutOfRange { referrer: index, index: index.0 })?;
    file.section_header(raw).map_err(|_| ParseError::SectionIndexOutOfRange { referrer: index, index: index.0 })
}

/// Classifies an allocated section (see [`SectionKind`]).
fn classify(name: &str, section_type: SectionType, flags: u64) -> Result<SectionKind, ParseError> {
    if flags & SHF_ALLOC == 0 || section_type == SectionType::Null {
        return Ok(SectionKind::NotLoaded);
    }
    if flags & SHF_TLS != 0 {
        return Err(ParseError::ThreadLocalSection { section: name.to_string() });
    }
    let kind = match section_type {
        SectionType::X86_64Unwind => SectionKind::EhFrame,
        SectionType::ProgramBits if name == ".eh_frame" => SectionKind::EhFrame,
        SectionType::ProgramBits if name.starts_with(".gcc_except_table") => SectionKind::GccExceptTable,
        SectionType::NoBits => SectionKind::Bss,
        SectionType::ProgramBits | SectionType::InitArray | SectionType::FiniArray | SectionType::Note => {
            if flags & SHF_EXECINSTR != 0 {
                SectionKind::Text
            } else if flags & SHF_WRITE != 0 {
                SectionKind::Data
            } else {
                SectionKind::ReadOnlyData
            }
        }
        other => return Err(ParseError::UnsupportedSectionType { section: name.to_string(), section_type: other }),
    };
    Ok(kind)
}

fn parse_sections<'a>(file: &ElfFile<'a>) -> Result<Vec<Section<'a>>, ParseError> {
    let count = u32::from(file.header.pt2.sh_count());
    let names_index = SectionIndex(u32::from(file.header.pt2.sh_str_index()));
    let names_header = section_header(file, names_index)?;
    if SectionType::from(raw_section_type(file, names_index)) != SectionType::StringTable {
        return Err(ParseError::NotAStringTable { section: names_index });
    }
    let names = StringTable::new(section_bytes(file, &names_header, names_index)?, names_index);

    let mut sections = Vec::with_capacity(count as usize);
    for raw_index in 0..count {
        let index = SectionIndex(raw_index);
        let header = section_header(file, index)?;
        let section_type = SectionType::from(raw_section_type(file, index));
        let flags = header.flags();
        let name = if section_type == SectionType::Null { "" } else { names.read(header.name())? };
        let kind = classify(name, section_type, flags)?;
        let alignment = header.align();
        let alignment_ok = alignment == 0 || alignment.is_power_of_two();
        if !alignment_ok || (kind.is_loaded() && alignment > MAX_SECTION_ALIGNMENT) {
            return Err(ParseError::BadAlignment { section: name.to_string(), alignment });
        }
        let data = match section_type {
            SectionType::Null | SectionType::NoBits => &[][..],
            _ => section_bytes(file, &header, index)?,
        };
        sections.push(Section {
            index,
            name,
            section_type,
            flags,
            kind,
            size: header.size(),
            alignment: alignment.max(1),
            data,
        });
    }
    Ok(sections)
}

/// The bytes of a section that has bytes in the file, bounds-checked.
fn section_bytes<'a>(
    file: &ElfFile<'a>,
    header: &SectionHeader<'a>,
    index: SectionIndex,
) -> Result<&'a [u8], ParseError> {
    let (offset, size) = (header.offset(), header.size());
    // Built only on failure: this runs for every section.
    let out_of_bounds =
        || ParseError::SectionOutOfBounds { section: index, offset, size, file_length: file.input.len() };
    let end = offset.checked_add(size).ok_or_else(out_of_bounds)?;
    let (start, end) = (usize::try_from(offset), usize::try_from(end));
    match (start, end) {
        (Ok(start), Ok(end)) => file.input.get(start..end).ok_or_else(out_of_bounds),
        _ => Err(out_of_bounds()),
    }
}

/// Finds the single `SHT_SYMTAB` section and reads every symbol. Returns the table's index (if any) and the symbols.
fn parse_symbols<'a>(
    file: &ElfFile<'a>,
    sections: &[Section<'a>],
) -> Result<(Option<SectionIndex>, Vec<Symbol<'a>>), ParseError> {
    let mut tables = sections.iter().filter(|section| section.section_type == SectionType::SymbolTable);
    let Some(table) = tables.next() else { return Ok((None, Vec::new())) };
    if let Some(second) = tables.next() {
        return Err(ParseError::MultipleSymbolTables { first: table.index, second: second.index });
    }
    let header = section_header(file, table.index)?;
    let entry_size = header.entry_size();
    if u64::from(entry_size) != SYMBOL_SIZE || header.size() % SYMBOL_SIZE != 0 {
        return Err(ParseError::BadEntrySize { section: table.index, entry_size: u64::from(entry_size) });
    }
    check_table(file.input.len(), header.offset(), header.size(), table.index)?;
    let strings_index = SectionIndex(header.link());
    let strings = sections
        .get(strings_index.as_usize())
        .ok_or(ParseError::SectionIndexOutOfRange { referrer: table.index, index: strings_index.0 })?;
    if strings.section_type != SectionType::StringTable {
        return Err(ParseError::NotAStringTable { section: strings_index });
    }
    let strings = StringTable::new(strings.data, strings_index);
    // Type, bounds, size multiple and alignment were checked above, which is everything `get_data` asserts.
    let Ok(SectionData::SymbolTable64(entries)) = header.get_data(file) else {
        return Err(ParseError::NotASymbolTable { section: table.index });
    };

    let mut symbols = Vec::with_capacity(entries.len());
    for (raw_index, entry) in entries.iter().enumerate() {
        let index = SymbolIndex(raw_index as u32);
        let name = strings.read(entry.name())?;
        let binding = SymbolBinding::from(entry.info() >> 4);
        let symbol_type = SymbolType::from(entry.info() & 0xf);
        let definition = match entry.shndx() {
            0 => SymbolDefinition::Undefined,
            SHN_ABS => SymbolDefinition::Absolute,
            SHN_COMMON => return Err(ParseError::CommonSymbol { symbol: name.to_string() }),
            raw if u32::from(raw) >= SHN_LORESERVE => {
                return Err(ParseError::UnsupportedSymbolSection { symbol: name.to_string(), section_index: raw });
            }
            raw => {
                let section = sections
                    .get(usize::from(raw))
                    .ok_or(ParseError::SymbolSectionOutOfRange { symbol: index, index: u32::from(raw) })?;
                if section.kind.is_loaded() && entry.value() > section.size {
                    return Err(ParseError::SymbolOutsideSection {
                        symbol: name.to_string(),
                        value: entry.value(),
                        section_size: section.size,
                    });
                }
                SymbolDefinition::Section(section.index)
            }
        };
        match (binding, symbol_type) {
            (SymbolBinding::Unknown(raw), _) => {
                return Err(ParseError::UnknownSymbolBinding { symbol: name.to_string(), binding: raw });
            }
            (_, SymbolType::ThreadLocal) => return Err(ParseError::ThreadLocalSymbol { symbol: name.to_string() }),
            (_, SymbolType::Common) => return Err(ParseError::CommonSymbol { symbol: name.to_string() }),
            _ => {}
        }
        symbols.push(Symbol { name, binding, symbol_type, definition, value: entry.value(), size: entry.size() });
    }
    Ok((Some(table.index), symbols))
}

fn parse_relocations<'a>(
    file: &ElfFile<'a>,
    sections: &[Section<'a>],
    symbol_table: Option<SectionIndex>,
    symbols: &[Symbol<'a>],
) -> Result<(Vec<RelocationSection>, Vec<Relocation>), ParseError> {
    // Sized from the `.rela` sections' file sizes (an upper bound: unloaded targets are skipped), so neither
    // vector grows while parsing.
    let rela_sections = sections.iter().filter(|section| section.section_type == SectionType::RelocationsWithAddend);
    let (count, entries) = rela_sections
        .fold((0, 0), |(count, entries), section| (count + 1, entries + section.data.len() / RELA_SIZE as usize));
    let mut result = Vec::with_capacity(count);
    let mut relocations = Vec::with_capacity(entries);
    for section in sections {
        let is_rela = match section.section_type {
            SectionType::RelocationsWithAddend => true,
            SectionType::Relocations => false,
            _ => continue,
        };
        let header = section_header(file, section.index)?;
        let target_index = SectionIndex(header.info());
        let target = sections
            .get(target_index.as_usize())
            .ok_or(ParseError::SectionIndexOutOfRange { referrer: section.index, index: target_index.0 })?;
        if !target.kind.is_loaded() {
            // Relocations of `.debug*` and other unloaded sections are irrelevant at run time.
            continue;
        }
        if !is_rela {
            return Err(ParseError::RelSectionUnsupported { section: section.name.to_string() });
        }
        if target.section_type == SectionType::NoBits {
            return Err(ParseError::RelocationsForNoBits { section: target.name.to_string() });
        }
        if symbol_table != Some(SectionIndex(header.link())) {
            return Err(ParseError::SectionIndexOutOfRange { referrer: section.index, index: header.link() });
        }
        let entry_size = u64::from(header.entry_size());
        if entry_size != RELA_SIZE || header.size() % RELA_SIZE != 0 {
            return Err(ParseError::BadEntrySize { section: section.index, entry_size });
        }
        check_table(file.input.len(), header.offset(), header.size(), section.index)?;
        // Type, bounds, size multiple and alignment were checked above, which is everything `get_data` asserts.
        let Ok(SectionData::Rela64(entries)) = header.get_data(file) else {
            return Err(ParseError::BadEntrySize { section: section.index, entry_size });
        };

        let first = relocations.len();
        for entry in entries {
            let relocation_type = RelocationType::from(entry.get_type());
            let symbol = SymbolIndex(entry.get_symbol_table_index());
            let relocation =
                Relocation { offset: entry.get_offset(), relocation_type, symbol, addend: entry.get_addend() as i64 };
            check_relocation(&relocation, target, sections, symbols)?;
            relocations.push(relocation);
        }
        result.push(RelocationSection {
            index: section.index,
            target: target_index,
            entries: first..relocations.len(),
        });
    }
    Ok((result, relocations))
}

fn check_relocation(
    relocation: &Relocation,
    target: &Section<'_>,
    sections: &[Section<'_>],
    symbols: &[Symbol<'_>],
) -> Result<(), ParseError> {
    let relocation_type = relocation.relocation_type;
    // Errors are built only on failure (`ok_or_else`): this runs once per relocation, and each error allocates.
    let width = relocation_type.width_in_bytes().ok_or_else(|| ParseError::UnsupportedRelocation {
        section: target.name.to_string(),
        relocation_type,
        offset: relocation.offset,
    })?;
    let symbol = symbols.get(relocation.symbol.as_usize()).ok_or_else(|| ParseError::RelocationSymbolOutOfRange {
        section: target.name.to_string(),
        offset: relocation.offset,
        symbol: relocation.symbol,
    })?;
    let end = relocation.offset.checked_add(width as u64);
    if end.is_none_or(|end| end > target.size) {
        return Err(ParseError::RelocationOutsideSection {
            section: target.name.to_string(),
            offset: relocation.offset,
            section_size: target.size,
        });
    }
    if relocation_type != RelocationType::None
        && let SymbolDefinition::Section(index) = symbol.definition
        && sections.get(index.as_usize()).is_none_or(|section| !section.kind.is_loaded())
    {
        return Err(ParseError::RelocationToUnloadedSection {
            section: target.name.to_string(),
            symbol: symbol.name.to_string(),
        });
    }
    Ok(())
}

/// The raw `sh_type` (offset 4 in `Elf64_Shdr`) of section `index`, read from the table `parse_header` bounds-checked.
///
/// `xmas-elf` keeps the raw value private and reports values outside its known ranges only as an error string.
fn raw_section_type(file: &ElfFile<'_>, index: SectionIndex) -> u32 {
    let offset = file.header.pt2.sh_offset() + u64::from(index.0) * SECTION_HEADER_SIZE + 4;
    let mut raw = [0; 4];
    if let Some(field) = usize::try_from(offset).ok().and_then(|offset| file.input.get(offset..offset + 4)) {
        raw.copy_from_slice(field);
    }
    u32::from_le_bytes(raw)
}
