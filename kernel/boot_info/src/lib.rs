//! The boot-protocol boundary: reads the Multiboot2 boot information once and converts it into our own types.
//!
//! # Purpose
//! This is the only crate that imports `multiboot2` (see STYLE.md, "Convert boot-protocol types at one boundary
//! crate"). Everything else in the kernel sees [`BootInfo`]: memory areas, boot modules (cell objects, the manifest,
//! the symbol table), the kernel command line, the bootloader name and the boot information's own physical range.
//! The conversion copies everything into fixed-capacity arrays, so it needs no heap (it runs before the heap exists)
//! and the result stays valid after the boot information's memory is unmapped or reused.
//!
//! The boot information is untrusted input: every size, offset and string is checked, and a malformed structure
//! yields a [`BootInfoError`] naming the problem; nothing here panics on bad input. Because `multiboot2` itself
//! asserts on some malformed tags, the `validate` module walks the raw tag list first and rejects anything that
//! could reach those assertions.
//!
//! # Key types
//! - [`BootInfo`]: the converted information (about 30 KiB; keep it in a `static`, see below).
//! - [`MemoryArea`] with [`MemoryAreaKind`], [`Module`], [`PhysicalRegion`], [`BoundedString`].
//! - [`BootInfoError`]: why the boot information was rejected.
//! - [`Firmware`], [`MemoryMapSource`], [`EfiMemoryType`]; [`Rsdp`] / [`RsdpError`] with [`validate_rsdp`] and
//!   [`scan_for_rsdp`]; [`FramebufferInfo`] with [`FramebufferKind`] ([`framebuffer()`]).
//!
//! # Control flow
//! 1. The caller (nano_core) holds a `BootInfo::new()` in a `static` (it is `const`), because the structure is too
//!    large to move around on a small boot stack.
//! 2. It calls [`BootInfo::load_from_physical`] with the physical address that the bootloader put in `EBX` and the
//!    virtual offset at which physical memory is currently mapped.
//! 3. `validate::tag_directory` checks the fixed header and every tag's bounds and minimum size (Multiboot2
//!    specification 2.0, 3.6.1 "Boot information format" and 3.6.2 "Basic tags structure").
//! 4. The memory map: the EFI memory map (3.6.19, parsed here, EFI types converted in `firmware`) when present,
//!    else the BIOS map (3.6.8, read by `multiboot2`). The firmware is UEFI when any EFI tag is present.
//! 5. The `multiboot2` crate reads the modules (3.6.6), command line (3.6.5) and bootloader name (3.6.9); this
//!    crate copies them into bounded arrays and strings, failing if a capacity is exceeded.
//! 6. The ACPI RSDP copies (3.6.16-3.6.17) are checksummed (`rsdp`); an invalid one is recorded as an
//!    [`RsdpError`], not a failure of the whole conversion. The framebuffer tag is read
//!    (`framebuffer`).
//!
//! References: "Multiboot2 Specification version 2.0", <https://www.gnu.org/software/grub/manual/multiboot2/>.
#![cfg_attr(not(test), no_std)]

mod convert;
mod firmware;
mod framebuffer;
mod global;
mod rsdp;
mod types;
mod validate;

pub use firmware::{EfiMemoryType, Firmware, MemoryMapSource};
pub use framebuffer::{ColorField, FramebufferInfo, FramebufferKind, framebuffer};
pub use global::{global, install_global};
pub use rsdp::{Rsdp, RsdpError, RsdpSource, scan_for_rsdp, validate_rsdp};
pub use types::{
    BootInfo, BootInfoError, BoundedString, MAX_BOOT_INFO_SIZE, MAX_BOOTLOADER_NAME_LENGTH, MAX_COMMAND_LINE_LENGTH,
    MAX_MEMORY_AREAS, MAX_MODULE_NAME_LENGTH, MAX_MODULES, MemoryArea, MemoryAreaKind, Module, PhysicalRegion,
    StringProblem,
};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_firmware;
