//! cellbuild: turns the kernel workspace into a bootable ISO of cells.
//!
//! The kernel is one statically linked base image (`nano_core`) plus one relocatable object file per cell,
//! loaded at run time. This crate holds the host-side pipeline that produces them; the binary
//! (`src/main.rs`) is a thin command-line front.
//!
//! Key types: [`cargo::Artifact`] (one `compiler-artifact` message), [`workspace::Workspace`] (what
//! `cargo metadata` says), [`elf::ObjectSymbols`] (what a cell object defines and needs),
//! [`symfile::BaseSymbol`] (one line of `nano_core.syms`), [`manifest::CellRecord`] (one cell of `cells.manifest`).
//!
//! Control flow of `cellbuild build` ([`pipeline::build`]):
//! 1. `cargo metadata`: workspace members, nano_core's dependency closure; refuse applications without
//!    `#![forbid(unsafe_code)]`, and applications that depend on a crate not marked app-facing
//!    (`[package.metadata.cell] app-facing = true`, or for a third-party crate, listed under the workspace's
//!    `[workspace.metadata.cell] app-facing-third-party`).
//! 2. One `cargo build --workspace` for the kernel target (one crate hash per crate), reading the JSON
//!    `compiler-artifact` messages to find every rlib and nano_core's staticlib.
//! 3. Link `build/nano_core.elf` with `ld --whole-archive`, no section garbage collection.
//! 4. Write `build/nano_core.syms` from its symbol table.
//! 5. Extract one object per cell from its rlib (`ld -r` if several), strip `.debug*`, check relocation types,
//!    add third-party crates that cells need but nano_core lacks (application cells when only applications need
//!    them, kernel cells otherwise).
//! 6. Resolve every cell's undefined symbols to nano_core or a cell; write `build/cells.manifest`.
//! 7. Stage `build/iso`, generate `grub.cfg` from the template, run `grub-mkrescue`; optionally a second ISO
//!    with one object deliberately corrupted.
//!
//! `cellbuild push` ([`push::push`]) runs steps 1, 2 and 5 for one cell and sends its object into a running guest.

pub mod cargo;
pub mod corrupt;
pub mod elf;
pub mod error;
pub mod iso;
pub mod manifest;
pub mod pipeline;
pub mod push;
pub mod symfile;
pub mod tools;
pub mod workspace;

pub use error::{Error, Result};
