//! The firmware type and the EFI memory map (Multiboot2 specification 2.0, 3.6.11-3.6.13 and 3.6.20-3.6.22).
//!
//! Under UEFI, GRUB passes the firmware's own memory map (tag 17) beside the BIOS-style map (tag 6) it derives
//! from it. We prefer the EFI map: it is the firmware's word, with its finer types. Its descriptors are converted
//! into [`MemoryAreaKind`]s here (UEFI specification 2.10, 7.2 "EFI_BOOT_SERVICES.GetMemoryMap()", Table 7-6, and
//! its "Memory Type Usage after ExitBootServices()" table): boot services code and data become usable once boot
//! services have ended, runtime services code/data, MMIO, reserved and PAL code stay reserved.

use crate::types::{BootInfoError, MemoryArea, MemoryAreaKind, PhysicalRegion};
use memory_structs::PhysicalAddress;

/// Which firmware started the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Firmware {
    /// A PC BIOS (or a UEFI compatibility module): no EFI tag in the boot information.
    #[default]
    Bios,
    /// UEFI: the boot information holds an EFI system table, EFI memory map, EFI image handle or "boot services
    /// not terminated" tag (types 11, 12, 17, 18, 19, 20).
    Uefi,
}

impl Firmware {
    /// `BIOS` or `UEFI`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Bios => "BIOS",
            Self::Uefi => "UEFI",
        }
    }
}

/// Which Multiboot2 tag the memory map came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryMapSource {
    /// Tag 6, the BIOS-style (E820-typed) memory map.
    #[default]
    Bios,
    /// Tag 17, the firmware's EFI memory map.
    Efi,
}

impl MemoryMapSource {
    /// `BIOS` or `EFI`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Bios => "BIOS",
            Self::Efi => "EFI",
        }
    }
}

/// An EFI memory type (UEFI 2.10, Table 7-6 `EFI_MEMORY_TYPE`). Unknown values (OEM and OS ranges, later
/// additions) are kept as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EfiMemoryType {
    /// 0 `EfiReservedMemoryType`.
    Reserved,
    /// 1 `EfiLoaderCode`: the bootloader's code (GRUB; dead once the kernel runs).
    LoaderCode,
    /// 2 `EfiLoaderData`: the bootloader's data (it holds the kernel, modules and boot information, which the
    /// kernel reserves separately).
    LoaderData,
    /// 3 `EfiBootServicesCode`.
    BootServicesCode,
    /// 4 `EfiBootServicesData`.
    BootServicesData,
    /// 5 `EfiRuntimeServicesCode`: must be preserved.
    RuntimeServicesCode,
    /// 6 `EfiRuntimeServicesData`: must be preserved.
    RuntimeServicesData,
    /// 7 `EfiConventionalMemory`: free RAM.
    Conventional,
    /// 8 `EfiUnusableMemory`: memory with errors.
    Unusable,
    /// 9 `EfiACPIReclaimMemory`: ACPI tables.
    AcpiReclaim,
    /// 10 `EfiACPIMemoryNVS`.
    AcpiNvs,
    /// 11 `EfiMemoryMappedIO`.
    MemoryMappedIo,
    /// 12 `EfiMemoryMappedIOPortSpace`.
    MemoryMappedIoPortSpace,
    /// 13 `EfiPalCode`.
    PalCode,
    /// 14 `EfiPersistentMemory`: non-volatile RAM, not for general use here.
    Persistent,
    /// Any other value.
    Unknown(u32),
}

impl EfiMemoryType {
    /// Converts the raw descriptor type.
    pub const fn from_raw(raw: u32) -> Self {
        match raw {
            0 => Self::Reserved,
            1 => Self::LoaderCode,
            2 => Self::LoaderData,
            3 => Self::BootServicesCode,
            4 => Self::BootServicesData,
            5 => Self::RuntimeServicesCode,
            6 => Self::RuntimeServicesData,
            7 => Self::Conventional,
            8 => Self::Unusable,
            9 => Self::AcpiReclaim,
            10 => Self::AcpiNvs,
            11 => Self::MemoryMappedIo,
            12 => Self::MemoryMappedIoPortSpace,
            13 => Self::PalCode,
            14 => Self::Persistent,
            other => Self::Unknown(other),
        }
    }

    /// What the kernel may do with memory of this type. `boot_services_ended` says whether the bootloader called
    /// `ExitBootServices()` (it did unless tag 18 is present): only then are boot services code and data free.
    /// Unknown types are treated as reserved.
    pub const fn kind(self, boot_services_ended: bool) -> MemoryAreaKind {
        match self {
            Self::LoaderCode | Self::LoaderData | Self::Conventional => MemoryAreaKind::Available,
            Self::BootServicesCode | Self::BootServicesData if boot_services_ended => MemoryAreaKind::Available,
            Self::AcpiReclaim => MemoryAreaKind::AcpiReclaimable,
            Self::AcpiNvs => MemoryAreaKind::Nvs,
            Self::Unusable => MemoryAreaKind::Defective,
            _ => MemoryAreaKind::Reserved,
        }
    }
}

/// The smallest EFI memory descriptor (UEFI 2.10, 7.2 `EFI_MEMORY_DESCRIPTOR`): type u32, padding u32,
/// physical start u64, virtual start u64, number of pages u64, attribute u64.
pub const EFI_DESCRIPTOR_MINIMUM_SIZE: u32 = 40;
/// EFI pages are 4 KiB (UEFI 2.10, 7.2 `AllocatePages`).
const EFI_PAGE_SIZE: u64 = 4096;
/// Offset of the descriptors in tag 17 (tag header 8, descriptor size u32, descriptor version u32).
pub const EFI_MEMORY_MAP_HEADER_SIZE: usize = 16;

fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let field = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes([field[0], field[1], field[2], field[3]]))
}

fn read_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from(read_u32(bytes, offset)?) | (u64::from(read_u32(bytes, offset + 4)?) << 32))
}

/// Checks the shape of an EFI memory-map tag (`tag` is the whole tag, header included): descriptor size at least
/// [`EFI_DESCRIPTOR_MINIMUM_SIZE`] and a multiple of 8, and a whole number of descriptors.
///
/// # Errors
/// [`BootInfoError::MalformedEfiMemoryMap`].
pub fn check_efi_memory_map(tag: &[u8]) -> Result<(), BootInfoError> {
    let tag_size = tag.len() as u32;
    let descriptor_size = read_u32(tag, 8).unwrap_or(0);
    let malformed = BootInfoError::MalformedEfiMemoryMap { descriptor_size, tag_size };
    if descriptor_size < EFI_DESCRIPTOR_MINIMUM_SIZE || !descriptor_size.is_multiple_of(8) {
        return Err(malformed);
    }
    let entries = tag.len().checked_sub(EFI_MEMORY_MAP_HEADER_SIZE).ok_or(malformed)?;
    if !entries.is_multiple_of(descriptor_size as usize) {
        return Err(malformed);
    }
    Ok(())
}

/// The EFI memory-map tag's descriptors converted into memory areas (see [`EfiMemoryType::kind`]), clipped with
/// `clip` and with adjacent areas of one kind merged (firmware maps are fragmented: OVMF reports a hundred
/// descriptors, most of them boot services data next to conventional memory). Empty areas are dropped. Each
/// area is passed to `push`, which fails when the caller's capacity is exceeded.
///
/// # Errors
/// [`BootInfoError::MalformedEfiMemoryMap`] (from [`check_efi_memory_map`]), or `push`'s error.
pub fn efi_memory_areas(
    tag: &[u8],
    boot_services_ended: bool,
    clip: fn(u64) -> PhysicalAddress,
    mut push: impl FnMut(MemoryArea, bool) -> Result<(), BootInfoError>,
) -> Result<(), BootInfoError> {
    check_efi_memory_map(tag)?;
    let descriptor_size = read_u32(tag, 8).unwrap_or(EFI_DESCRIPTOR_MINIMUM_SIZE) as usize;
    let mut previous: Option<MemoryArea> = None;
    for descriptor in tag[EFI_MEMORY_MAP_HEADER_SIZE..].chunks_exact(descriptor_size) {
        let (Some(raw_type), Some(start), Some(pages)) =
            (read_u32(descriptor, 0), read_u64(descriptor, 8), read_u64(descriptor, 24))
        else {
            continue; // unreachable: every chunk holds at least EFI_DESCRIPTOR_MINIMUM_SIZE bytes
        };
        let (start_address, end_address) =
            (clip(start), clip(start.saturating_add(pages.saturating_mul(EFI_PAGE_SIZE))));
        if start_address >= end_address {
            continue; // empty, or entirely beyond the physical address space
        }
        let area = MemoryArea {
            region: PhysicalRegion { start: start_address, end: end_address },
            kind: EfiMemoryType::from_raw(raw_type).kind(boot_services_ended),
        };
        let merged = previous.filter(|last| last.kind == area.kind && last.region.end == area.region.start);
        match merged {
            Some(last) => {
                let grown =
                    MemoryArea { region: PhysicalRegion { start: last.region.start, end: area.region.end }, ..last };
                push(grown, true)?;
                previous = Some(grown);
            }
            None => {
                push(area, false)?;
                previous = Some(area);
            }
        }
    }
    Ok(())
}
