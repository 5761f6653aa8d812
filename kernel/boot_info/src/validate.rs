//! Structural validation of the raw Multiboot2 information bytes, before any typed parser touches them.
//!
//! Checks, per Multiboot2 specification 2.0, 3.6.1 and 3.6.2: `total_size` is sane; every tag header lies within the
//! structure; every tag's `size` is at least 8 and at least the fixed part of its type; tags start 8-byte aligned; the
//! list ends with the end tag (type 0, size 8) as its last 8 bytes. Also records where the tags that we read without
//! `multiboot2` are (the ACPI RSDP copies).

use crate::types::{BootInfoError, MAX_BOOT_INFO_SIZE};

/// Tag type numbers from the specification (3.6.x) that the validation treats specially.
pub mod tag_type {
    /// 3.6.2: terminates the tag list.
    pub const END: u32 = 0;
    /// 3.6.6: a boot module.
    pub const MODULE: u32 = 3;
    /// 3.6.8: memory map.
    pub const MEMORY_MAP: u32 = 6;
    /// 3.6.16: copy of the ACPI 1.0 RSDP.
    pub const ACPI_OLD_RSDP: u32 = 14;
    /// 3.6.17: copy of the ACPI 2.0+ RSDP.
    pub const ACPI_NEW_RSDP: u32 = 15;
    /// 3.6.12: framebuffer info.
    pub const FRAMEBUFFER: u32 = 8;
    /// 3.6.13: EFI 32-bit system table pointer.
    pub const EFI32_SYSTEM_TABLE: u32 = 11;
    /// 3.6.14: EFI 64-bit system table pointer.
    pub const EFI64_SYSTEM_TABLE: u32 = 12;
    /// 3.6.19: EFI memory map.
    pub const EFI_MEMORY_MAP: u32 = 17;
    /// 3.6.20: EFI boot services not terminated.
    pub const EFI_BOOT_SERVICES_NOT_TERMINATED: u32 = 18;
    /// 3.6.21: EFI 32-bit image handle pointer.
    pub const EFI32_IMAGE_HANDLE: u32 = 19;
    /// 3.6.22: EFI 64-bit image handle pointer.
    pub const EFI64_IMAGE_HANDLE: u32 = 20;
}

/// Size of the fixed header of the boot information and of every tag header, in bytes.
const HEADER_SIZE: usize = 8;
/// Size of one memory-map entry of entry version 0 (base u64, length u64, type u32, reserved u32).
pub const MEMORY_MAP_ENTRY_SIZE: u32 = 24;
/// Size of an ACPI 1.0 RSDP (ACPI 6.5, 5.2.5.3).
const RSDP_V1_SIZE: usize = 20;
/// Size of an ACPI 2.0+ RSDP (ACPI 6.5, 5.2.5.3).
const RSDP_V2_SIZE: usize = 36;

/// Where the tags of interest are, as byte offsets of the tag headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TagDirectory {
    /// Offset of the first memory-map tag.
    pub memory_map: Option<usize>,
    /// Number of module tags.
    pub module_count: usize,
    /// Offset of the first ACPI 1.0 RSDP tag.
    pub acpi_old_rsdp: Option<usize>,
    /// Offset of the first ACPI 2.0+ RSDP tag.
    pub acpi_new_rsdp: Option<usize>,
    /// Offset and size of the first EFI memory-map tag (shape checked).
    pub efi_memory_map: Option<(usize, usize)>,
    /// Offset and size of the first framebuffer tag (3.6.12; parsed by `crate::framebuffer`).
    pub framebuffer: Option<(usize, usize)>,
    /// Whether any EFI tag (11, 12, 17, 18, 19, 20) is present: the machine booted through UEFI.
    pub efi_tag_seen: bool,
    /// Whether tag 18 says that the bootloader did not call `ExitBootServices()`.
    pub boot_services_not_terminated: bool,
}

pub(crate) fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let field = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes([field[0], field[1], field[2], field[3]]))
}

/// Reads and checks `total_size` from the first 8 bytes: at least 16, a multiple of 8, at most
/// [`MAX_BOOT_INFO_SIZE`].
///
/// # Errors
/// [`BootInfoError::InvalidTotalSize`] otherwise (with `total_size` 0 if `header` is shorter than 4 bytes).
pub fn total_size(header: &[u8]) -> Result<usize, BootInfoError> {
    let total_size = read_u32(header, 0).ok_or(BootInfoError::InvalidTotalSize { total_size: 0 })? as usize;
    if total_size < 2 * HEADER_SIZE || !total_size.is_multiple_of(8) || total_size > MAX_BOOT_INFO_SIZE {
        return Err(BootInfoError::InvalidTotalSize { total_size });
    }
    Ok(total_size)
}

/// The minimum `size` of a tag of `tag_type`, in bytes (its fixed part), for the types we read.
fn minimum_tag_size(tag_type: u32) -> usize {
    match tag_type {
        tag_type::MODULE | tag_type::MEMORY_MAP => 16,
        tag_type::ACPI_OLD_RSDP => HEADER_SIZE + RSDP_V1_SIZE,
        tag_type::ACPI_NEW_RSDP => HEADER_SIZE + RSDP_V2_SIZE,
        tag_type::EFI_MEMORY_MAP => crate::firmware::EFI_MEMORY_MAP_HEADER_SIZE,
        _ => HEADER_SIZE,
    }
}

/// Whether `tag_type` exists only in boot information passed under UEFI.
fn is_efi_tag(tag_type: u32) -> bool {
    matches!(
        tag_type,
        tag_type::EFI32_SYSTEM_TABLE
            | tag_type::EFI64_SYSTEM_TABLE
            | tag_type::EFI_MEMORY_MAP
            | tag_type::EFI_BOOT_SERVICES_NOT_TERMINATED
            | tag_type::EFI32_IMAGE_HANDLE
            | tag_type::EFI64_IMAGE_HANDLE
    )
}

/// Validates the structure of `bytes` (the whole boot information, 8-byte aligned) and returns the tag directory.
///
/// # Errors
/// Any structural [`BootInfoError`]: `InvalidTotalSize`, `TagTooSmall`, `TagOutOfBounds`, `MissingEndTag`,
/// `EndTagNotLast`, `MalformedMemoryMap`, `MalformedEfiMemoryMap`.
pub fn tag_directory(bytes: &[u8]) -> Result<TagDirectory, BootInfoError> {
    let total_size = total_size(bytes)?;
    if total_size > bytes.len() {
        return Err(BootInfoError::InvalidTotalSize { total_size });
    }
    let mut directory = TagDirectory::default();
    let mut offset = HEADER_SIZE;
    while offset < total_size {
        // `offset` is 8-aligned and `total_size` a multiple of 8, so a whole tag header fits.
        let (Some(tag_type), Some(size)) = (read_u32(bytes, offset), read_u32(bytes, offset + 4)) else {
            return Err(BootInfoError::MissingEndTag);
        };
        if (size as usize) < minimum_tag_size(tag_type) {
            return Err(BootInfoError::TagTooSmall { offset, tag_type, size });
        }
        let end = offset + size as usize;
        if end > total_size {
            return Err(BootInfoError::TagOutOfBounds { offset, tag_type, size });
        }
        if is_efi_tag(tag_type) {
            directory.efi_tag_seen = true;
        }
        if tag_type == tag_type::EFI_BOOT_SERVICES_NOT_TERMINATED {
            directory.boot_services_not_terminated = true;
        }
        match tag_type {
            tag_type::END => {
                if size as usize != HEADER_SIZE {
                    return Err(BootInfoError::TagTooSmall { offset, tag_type, size });
                }
                if end != total_size {
                    return Err(BootInfoError::EndTagNotLast { offset });
                }
                return Ok(directory);
            }
            tag_type::MEMORY_MAP => {
                let entry_size = read_u32(bytes, offset + 8).unwrap_or(0);
                let entries_size = size as usize - 16;
                if entry_size != MEMORY_MAP_ENTRY_SIZE || !entries_size.is_multiple_of(MEMORY_MAP_ENTRY_SIZE as usize) {
                    return Err(BootInfoError::MalformedMemoryMap { entry_size, tag_size: size });
                }
                directory.memory_map.get_or_insert(offset);
            }
            tag_type::MODULE => directory.module_count += 1,
            tag_type::ACPI_OLD_RSDP => _ = directory.acpi_old_rsdp.get_or_insert(offset),
            tag_type::ACPI_NEW_RSDP => _ = directory.acpi_new_rsdp.get_or_insert(offset),
            tag_type::EFI_MEMORY_MAP => {
                crate::firmware::check_efi_memory_map(&bytes[offset..end])?;
                directory.efi_memory_map.get_or_insert((offset, size as usize));
            }
            tag_type::FRAMEBUFFER => _ = directory.framebuffer.get_or_insert((offset, size as usize)),
            _ => {}
        }
        // Tags start 8-byte aligned (3.6.2). `end <= total_size` and `total_size` is a multiple of 8, so this stays
        // within bounds.
        offset = end.next_multiple_of(8);
    }
    Err(BootInfoError::MissingEndTag)
}
