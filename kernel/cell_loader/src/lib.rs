//! Cell objects in, validated sections, symbols and relocations out: the ELF half of the cell loader.
//!
//! Every crate above `nano_core` is built into one relocatable ELF object (`ET_REL`, `EM_X86_64`, one section per
//! function or static). This crate turns the untrusted bytes of such an object into a validated view, and does the
//! x86_64 relocation arithmetic. It knows nothing about memory, namespaces or other cells: `cell_namespace` uses it
//! to place sections, resolve symbols and patch code. It is host-testable (`no_std` outside tests).
//!
//! # Key types
//! - [`ObjectFile`]: the validated view. Every section, symbol and relocation index inside it is in range, every
//!   relocation type is supported, and every relocation's field lies inside the section it patches.
//! - [`Section`] with its [`SectionKind`] (text, read-only data, data, bss, `.eh_frame`, `.gcc_except_table`, or not
//!   loaded), [`Symbol`], [`RelocationSection`] and [`Relocation`].
//! - [`SectionIndex`] and [`SymbolIndex`]: distinct index types per table.
//! - [`RelocationType`], [`SectionType`], [`SymbolBinding`], [`SymbolType`]: raw numbers parsed into enums with an
//!   `Unknown(raw)` arm.
//! - [`apply_relocation`] / [`compute_relocation`]: psABI 4.4 arithmetic with overflow checks.
//! - [`ParseError`] and [`RelocationError`]: one error enum per operation.
//!
//! # Control flow of [`ObjectFile::parse`]
//! 1. Check the ELF identification (magic, 64-bit, little-endian), `ET_REL`, `EM_X86_64`, and that the section
//!    header table lies inside the file.
//! 2. Read every section header; read its name; classify it into a [`SectionKind`]; reject TLS sections, unknown
//!    allocated section types, and alignments above 4 KiB.
//! 3. Read the single symbol table; reject common, TLS, and out-of-range symbols.
//! 4. Read every `SHT_RELA` section that patches a loaded section; reject unsupported relocation types, symbol
//!    indices out of range, and fields outside their section. Relocations of unloaded sections are skipped.
//!
//! The loader then places the loaded sections, and for each [`Relocation`] computes `S` (the symbol's address)
//! and calls [`apply_relocation`] with the place's address `P` and the addend `A`.
//!
//! Parsing never panics, whatever the bytes (the `cell_namespace` tests mutate real objects thousands of times).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod error;
mod parse;
mod relocate;
mod types;

pub use error::ParseError;
pub use parse::{MAX_SECTION_ALIGNMENT, ObjectFile, Relocation, RelocationSection, Section, Symbol};
pub use relocate::{RelocatedValue, RelocationError, apply_relocation, compute_relocation};
pub use types::{
    RelocationType, SHF_ALLOC, SHF_EXECINSTR, SHF_TLS, SHF_WRITE, SectionIndex, SectionKind, SectionType,
    SymbolBinding, SymbolDefinition, SymbolIndex, SymbolType,
};
