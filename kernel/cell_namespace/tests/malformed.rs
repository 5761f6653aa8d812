//! Malformed objects get a typed error, never a panic, and leave the namespace unchanged.

mod common;

use cell_loader::{ParseError, RelocationType, SectionIndex};
use cell_namespace::LoadError;
use common::{leak_aligned, namespace_with, snapshot};

/// Offsets inside ELF-64 structures (System V gABI).
const E_SHOFF: usize = 40;
const E_SHNUM: usize = 60;
const SH_SIZE: usize = 64;
const SH_TYPE: usize = 4;
const SH_OFFSET: usize = 24;
const SH_SIZE_FIELD: usize = 32;
const SH_INFO: usize = 44;
const SH_LINK: usize = 40;
const SYMBOL_SIZE: usize = 24;
const SHT_SYMTAB: u32 = 2;
const SHT_RELA: u32 = 4;

fn u16_at(bytes: &[u8], offset: usize) -> usize {
    u16::from_le_bytes(bytes[offset..offset + 2].try_into().unwrap()) as usize
}
fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
}
fn u64_at(bytes: &[u8], offset: usize) -> usize {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap()) as usize
}

/// File offsets of the section headers of `bytes` whose `sh_type` is `section_type`.
fn headers_of_type(bytes: &[u8], section_type: u32) -> Vec<usize> {
    let table = u64_at(bytes, E_SHOFF);
    (0..u16_at(bytes, E_SHNUM))
        .map(|index| table + index * SH_SIZE)
        .filter(|&header| u32_at(bytes, header + SH_TYPE) == section_type)
        .collect()
}

/// The file offset of the first relocation of the first `.rela.text.*` section.
fn first_text_relocation(bytes: &[u8]) -> usize {
    let header = headers_of_type(bytes, SHT_RELA)[0];
    u64_at(bytes, header + SH_OFFSET)
}

/// The file offsets of the symbol string table and of symbol `index`'s entry (`Elf64_Sym`, `st_name` first).
fn symbol_entry(bytes: &[u8], index: usize) -> (usize, usize) {
    let symtab = headers_of_type(bytes, SHT_SYMTAB)[0];
    let table = u64_at(bytes, E_SHOFF);
    let strings = table + u32_at(bytes, symtab + SH_LINK) as usize * SH_SIZE;
    (u64_at(bytes, strings + SH_OFFSET), u64_at(bytes, symtab + SH_OFFSET) + index * SYMBOL_SIZE)
}

/// Loads `fixture_a` from `object` (with the pristine `fixture_b`) and returns the error, after checking that the
/// namespace is unchanged and every staged region was freed.
fn load_error(object: Vec<u8>) -> LoadError {
    let (namespace, memory) = namespace_with(leak_aligned(&object), true);
    let before = snapshot(&namespace);
    let error = namespace.load_cell("fixture_a").expect_err("the malformed object must be rejected");
    assert_eq!(snapshot(&namespace), before, "a failed load changed the namespace");
    assert_eq!(memory.live_regions(), 0, "a failed load leaked staged memory");
    error
}

fn parse_error(object: Vec<u8>) -> ParseError {
    match load_error(object) {
        LoadError::Parse { cell, error } => {
            assert_eq!(cell, "fixture_a");
            error
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn pristine() -> Vec<u8> {
    common::fixtures().a.to_vec()
}

#[test]
fn truncated_files_are_rejected() {
    let full = pristine();
    assert_eq!(parse_error(Vec::new()), ParseError::Truncated { needed: 64, file_length: 0 });
    assert_eq!(parse_error(full[..63].to_vec()), ParseError::Truncated { needed: 64, file_length: 63 });
    // The section header table is at the end of the file: cutting anything off loses part of it.
    for length in [64, full.len() / 2, full.len() - 1] {
        let error = parse_error(full[..length].to_vec());
        assert!(matches!(error, ParseError::SectionHeadersOutOfBounds { .. }), "length {length}: {error:?}");
    }
}

#[test]
fn wrong_identification_type_and_machine_are_rejected() {
    let mut object = pristine();
    object[0] = 0x7e;
    assert_eq!(parse_error(object), ParseError::NotElf);
    let mut object = pristine();
    object[4] = 1;
    assert_eq!(parse_error(object), ParseError::WrongClass { class: 1 });
    let mut object = pristine();
    object[5] = 2;
    assert_eq!(parse_error(object), ParseError::WrongEncoding { encoding: 2 });
    let mut object = pristine();
    object[16..18].copy_from_slice(&2_u16.to_le_bytes()); // ET_EXEC
    assert_eq!(parse_error(object), ParseError::NotRelocatable { file_type: 2 });
    let mut object = pristine();
    object[18..20].copy_from_slice(&3_u16.to_le_bytes()); // EM_386
    assert_eq!(parse_error(object), ParseError::WrongMachine { machine: 3 });
}

#[test]
fn section_indices_out_of_range_are_rejected() {
    // A relocation section whose target (sh_info) does not exist.
    let mut object = pristine();
    let header = headers_of_type(&object, SHT_RELA)[0];
    object[header + SH_INFO..header + SH_INFO + 4].copy_from_slice(&999_u32.to_le_bytes());
    let error = parse_error(object);
    assert!(matches!(error, ParseError::SectionIndexOutOfRange { index: 999, .. }), "{error:?}");

    // A symbol defined in a section that does not exist (st_shndx at offset 6 of the last symbol).
    let mut object = pristine();
    let symtab = headers_of_type(&object, SHT_SYMTAB)[0];
    let symbols_end = u64_at(&object, symtab + SH_OFFSET) + u64_at(&object, symtab + SH_SIZE_FIELD);
    let last_symbol = symbols_end - 24;
    object[last_symbol + 6..last_symbol + 8].copy_from_slice(&0x1234_u16.to_le_bytes());
    let error = parse_error(object);
    assert!(matches!(error, ParseError::SymbolSectionOutOfRange { index: 0x1234, .. }), "{error:?}");

    // The section-name string table index (e_shstrndx) out of range.
    let mut object = pristine();
    object[62..64].copy_from_slice(&0x0fff_u16.to_le_bytes());
    assert_eq!(parse_error(object), ParseError::SectionIndexOutOfRange { referrer: SectionIndex(0), index: 0x0fff });
}

#[test]
fn symbol_index_out_of_range_is_rejected() {
    let mut object = pristine();
    let relocation = first_text_relocation(&object);
    // r_info = (symbol << 32) | type, at offset 8 of Elf64_Rela.
    let info = (0xffff_u64 << 32) | u64::from(RelocationType::Plt32.raw());
    object[relocation + 8..relocation + 16].copy_from_slice(&info.to_le_bytes());
    let error = parse_error(object);
    assert!(
        matches!(&error, ParseError::RelocationSymbolOutOfRange { section, symbol, .. }
            if section.starts_with(".text.") && symbol.0 == 0xffff),
        "{error:?}"
    );
}

#[test]
fn unknown_relocation_type_is_rejected_naming_type_cell_and_section() {
    let mut object = pristine();
    let relocation = first_text_relocation(&object);
    object[relocation + 8..relocation + 12].copy_from_slice(&200_u32.to_le_bytes());
    let error = load_error(object);
    let LoadError::Parse { cell, error: ParseError::UnsupportedRelocation { section, relocation_type, .. } } = &error
    else {
        panic!("unexpected {error:?}")
    };
    assert_eq!(cell, "fixture_a");
    assert!(section.starts_with(".text._R"), "{section}");
    assert_eq!(*relocation_type, RelocationType::Unknown(200));
    let message = error.to_string();
    assert!(message.contains("fixture_a") && message.contains("200") && message.contains(".text."), "{message}");

    // A known but unsupported type (R_X86_64_GOTPCREL) is rejected by name.
    let mut object = pristine();
    object[relocation + 8..relocation + 12].copy_from_slice(&9_u32.to_le_bytes());
    assert!(load_error(object).to_string().contains("R_X86_64_GOTPCREL"));
}

#[test]
fn misaligned_bytes_are_rejected() {
    let padded = leak_aligned(&[&[0_u8][..], &pristine()].concat());
    assert!(matches!(cell_loader::ObjectFile::parse(&padded[1..]), Err(ParseError::MisalignedInput { .. })));
}

#[test]
fn a_relocation_overflow_is_an_error_naming_cell_section_and_symbol() {
    // Turn a PLT32 call into an R_X86_64_32 against a symbol whose address is below 2^32: fine. Against an
    // absolute symbol at 2^40 it overflows. Simplest real overflow: point the relocation at the FILE symbol
    // (index 1, absolute 0) with an addend of -1 as R_X86_64_32, which must zero-extend.
    let mut object = pristine();
    let relocation = first_text_relocation(&object);
    let info = (1_u64 << 32) | u64::from(RelocationType::Absolute32.raw());
    object[relocation + 8..relocation + 16].copy_from_slice(&info.to_le_bytes());
    object[relocation + 16..relocation + 24].copy_from_slice(&(-1_i64).to_le_bytes());
    let error = load_error(object);
    let LoadError::Relocation { cell, section, symbol, error } = &error else { panic!("unexpected {error:?}") };
    assert_eq!(cell, "fixture_a");
    assert!(section.starts_with(".text."));
    assert!(symbol.starts_with("fixture_a."), "the FILE symbol: {symbol}");
    assert_eq!(
        *error,
        cell_loader::RelocationError::Overflow { relocation_type: RelocationType::Absolute32, value: -1 }
    );
}

#[test]
fn names_must_be_utf8_but_unused_strings_need_not_be() {
    // A name in use (the FILE symbol's, index 1) with a byte that is not UTF-8: rejected, naming the offset.
    let mut object = pristine();
    let (strings, symbol) = symbol_entry(&object, 1);
    let name = u32_at(&object, symbol);
    object[strings + name as usize] = 0xff;
    let error = parse_error(object);
    assert!(matches!(error, ParseError::BadString { offset, .. } if offset == name), "{error:?}");

    // The same byte in a string that no symbol uses any more (the FILE symbol renamed to the empty string): the
    // table is not UTF-8 as a whole, but every name read from it is, so the object loads as before.
    let mut object = pristine();
    let (strings, symbol) = symbol_entry(&object, 1);
    let name = u32_at(&object, symbol) as usize;
    object[symbol..symbol + 4].copy_from_slice(&0_u32.to_le_bytes());
    object[strings + name] = 0xff;
    let (namespace, _memory) = namespace_with(leak_aligned(&object), true);
    namespace.load_cell("fixture_a").expect("bytes of a string table that no name uses need not be UTF-8");
}
