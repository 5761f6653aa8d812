//! boot_archive: every boot file (cell objects, `cells.manifest`, `nano_core.syms`) in one boot module.
//!
//! # Purpose
//! GRUB opens, reads and records each `module2` file on its own, and with some 80 files that was most of the time
//! between GRUB's menu and the kernel's first line (issue 11). The build (`scripts/cellbuild`) therefore packs the
//! files into one archive that GRUB loads with a single `module2` line, and nano_core splits it back into the same
//! named files the namespaces used before. Host and kernel share this crate, so both agree on one layout; it depends
//! on nothing in-tree, uses no `unsafe`, and its tests run on the host.
//!
//! # Layout (all integers little-endian)
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 8 | [`MAGIC`] `THCELLAR` |
//! | 8 | 4 | [`VERSION`] (1) |
//! | 12 | 4 | entry count N, at most [`MAX_ENTRIES`] |
//! | 16 | 8 | total length of the archive in bytes (header, table and data) |
//! | 24 | N x 80 | the table: per entry a name of [`MAX_NAME_LENGTH`] bytes (UTF-8, NUL-padded), then its data's offset (8 bytes, from the archive's start) and length (8 bytes) |
//! | 24 + 80N | ... | the data, each entry's bytes starting on an 8-byte boundary ([`DATA_ALIGNMENT`]), zero padding between |
//!
//! The total length catches an archive cut short by a loader; offsets must lie after the table, in order, without
//! overlap, so a damaged table cannot alias one file onto another.
//!
//! # Key items
//! [`write`] ([`WriteError`]); [`Archive::parse`] ([`ArchiveError`]; never panics); [`Archive::entries`] /
//! [`Archive::entry`] ([`Entry`]).
//!
//! # Control flow
//! 1. `cellbuild` calls [`write`] with every boot file and puts the result into the ISO as `cells.archive`.
//! 2. nano_core finds that module and calls [`Archive::parse`], which checks the header, the table and every
//!    entry's bounds before anything is returned.
//! 3. nano_core reads [`Archive::entries`]; each [`Entry`] borrows its bytes from the module.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod parse;
#[cfg(test)]
mod tests;
mod write;

pub use parse::{Archive, ArchiveError, Entries, Entry, NameProblem};
pub use write::{WriteError, write};

/// The first 8 bytes of every archive.
pub const MAGIC: [u8; 8] = *b"THCELLAR";
/// The layout version this crate writes and reads.
pub const VERSION: u32 = 1;
/// Size of the fixed header (magic, version, count, total length), in bytes.
pub const HEADER_LENGTH: usize = 24;
/// The longest entry name, in bytes (UTF-8); the name field of a table entry has exactly this size.
pub const MAX_NAME_LENGTH: usize = 64;
/// Size of one table entry (name field, offset, length), in bytes.
pub const TABLE_ENTRY_LENGTH: usize = MAX_NAME_LENGTH + 16;
/// Alignment of each entry's data within the archive, in bytes (ELF headers want 8).
pub const DATA_ALIGNMENT: usize = 8;
/// The most entries an archive may have (a sanity bound against a damaged count).
pub const MAX_ENTRIES: usize = 4096;
