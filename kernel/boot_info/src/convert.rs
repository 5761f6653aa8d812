//! Conversion from `multiboot2`'s views into [`BootInfo`]. The only place that names `multiboot2` types.

use crate::firmware::{Firmware, MemoryMapSource, efi_memory_areas};
use crate::rsdp::{Rsdp, RsdpError, RsdpSource, validate_rsdp};
use crate::types::{
    BootInfo, BootInfoError, BoundedString, MAX_MEMORY_AREAS, MAX_MODULES, MemoryArea, MemoryAreaKind, Module,
    PhysicalRegion, StringProblem,
};
use crate::validate::{self, TagDirectory};
use memory_structs::PhysicalAddress;
use multiboot2::{BootInformation, BootInformationHeader, StringError};

/// One past the highest physical address (2^52; Intel SDM Vol. 3A, 4.1.4).
const PHYSICAL_ADDRESS_LIMIT: u64 = 1 << 52;

fn string_problem(error: &StringError) -> StringProblem {
    match error {
        StringError::MissingNul(_) => StringProblem::MissingNul,
        StringError::Utf8(_) => StringProblem::NotUtf8,
    }
}

/// The module name within a module command line: the final `/`-separated component of its first whitespace-separated
/// word.
pub(crate) fn module_name(command_line: &str) -> &str {
    let first_word = command_line.split_whitespace().next().unwrap_or("");
    first_word.rsplit('/').next().unwrap_or(first_word)
}

/// A physical address from a 64-bit firmware value. Values at or above 2^52 become 2^52 - 1, the highest physical
/// address; a clipped area therefore loses at most its last byte, which no whole 4 KiB frame could use anyway.
fn clipped_physical(value: u64) -> PhysicalAddress {
    PhysicalAddress::try_new(value.min(PHYSICAL_ADDRESS_LIMIT - 1) as usize).unwrap_or_default()
}

impl BootInfo {
    /// Reads the Multiboot2 information at `physical_address` through the mapping `virtual = physical +
    /// physical_memory_offset`, replacing this value's contents.
    ///
    /// # Errors
    /// [`BootInfoError::NullAddress`], [`BootInfoError::Misaligned`], [`BootInfoError::AddressOverflow`], or any error
    /// of [`load_from_bytes`](Self::load_from_bytes). On error this value is left empty.
    ///
    /// # Safety
    /// The caller must guarantee that `physical_address` is the address the bootloader passed (or otherwise holds a
    /// Multiboot2 information header), and that the `total_size` bytes it announces (at most [`crate::MAX_BOOT_INFO_SIZE`])
    /// are mapped readable at `physical_address + physical_memory_offset` and not written during the call.
    pub unsafe fn load_from_physical(
        &mut self,
        physical_address: PhysicalAddress,
        physical_memory_offset: usize,
    ) -> Result<(), BootInfoError> {
        self.clear();
        let address = physical_address.value();
        if address == 0 {
            return Err(BootInfoError::NullAddress);
        }
        if !address.is_multiple_of(8) {
            return Err(BootInfoError::Misaligned { address });
        }
        let virtual_address = address
            .checked_add(physical_memory_offset)
            .ok_or(BootInfoError::AddressOverflow { physical_address: address, offset: physical_memory_offset })?;
        // SAFETY: the caller guarantees that the Multiboot2 header (8 bytes, 8-aligned as checked above) is mapped
        // readable at `virtual_address` and not concurrently written.
        let header = unsafe { core::slice::from_raw_parts(virtual_address as *const u8, 8) };
        let total_size = validate::total_size(header)?;
        // SAFETY: `total_size` is bounded by MAX_BOOT_INFO_SIZE, and the caller guarantees those bytes are mapped
        // readable and unchanged for the duration of this call; the slice does not outlive the call.
        let bytes = unsafe { core::slice::from_raw_parts(virtual_address as *const u8, total_size) };
        self.load_from_bytes(bytes, physical_address)
    }

    /// Reads the Multiboot2 information held in `bytes` (which must start 8-byte aligned and hold at least
    /// `total_size` bytes), located at physical address `physical_address`, replacing this value's contents.
    ///
    /// # Errors
    /// Any [`BootInfoError`] describing malformed input or an exceeded capacity. On error this value is left empty.
    pub fn load_from_bytes(&mut self, bytes: &[u8], physical_address: PhysicalAddress) -> Result<(), BootInfoError> {
        self.clear();
        let result = self.convert(bytes, physical_address);
        if result.is_err() {
            self.clear();
        }
        result
    }

    fn convert(&mut self, bytes: &[u8], physical_address: PhysicalAddress) -> Result<(), BootInfoError> {
        let start = bytes.as_ptr() as usize;
        if !start.is_multiple_of(8) {
            return Err(BootInfoError::Misaligned { address: start });
        }
        let directory = validate::tag_directory(bytes)?;
        // `tag_directory` checked `total_size <= bytes.len()` and every property that `multiboot2` asserts on for the
        // tags read below (tag sizes, memory-map entry size, end tag), so its accessors cannot panic.
        // SAFETY: `bytes` is a valid, 8-aligned shared slice holding the whole structure; it cannot change while
        // borrowed.
        let information = unsafe { BootInformation::load(bytes.as_ptr().cast::<BootInformationHeader>()) }
            .map_err(|_| BootInfoError::RejectedByParser)?;
        let total_size = information.total_size();
        let end = physical_address
            .value()
            .checked_add(total_size)
            .and_then(|end| PhysicalAddress::try_new(end).ok())
            .ok_or(BootInfoError::InvalidTotalSize { total_size })?;
        self.information_region = PhysicalRegion { start: physical_address, end };

        self.firmware = if directory.efi_tag_seen { Firmware::Uefi } else { Firmware::Bios };
        if let Some((offset, size)) = directory.efi_memory_map {
            self.convert_efi_memory_map(&bytes[offset..offset + size], !directory.boot_services_not_terminated)?;
        } else {
            let memory_map = information.memory_map_tag().ok_or(BootInfoError::MissingMemoryMap)?;
            self.convert_bios_memory_map(memory_map.memory_areas())?;
        }

        if directory.module_count > MAX_MODULES {
            return Err(BootInfoError::TooManyModules);
        }
        for (index, tag) in information.module_tags().enumerate() {
            let (start, end) = (tag.start_address(), tag.end_address());
            if end < start {
                return Err(BootInfoError::InvalidModuleRange { index, start, end });
            }
            let command_line = tag
                .cmdline()
                .map_err(|error| BootInfoError::InvalidModuleName { index, problem: string_problem(&error) })?;
            let name = module_name(command_line);
            let name = BoundedString::try_from_str(name)
                .ok_or(BootInfoError::ModuleNameTooLong { index, length: name.len() })?;
            let region =
                PhysicalRegion { start: PhysicalAddress::new(start as usize), end: PhysicalAddress::new(end as usize) };
            // `module_count <= MAX_MODULES` was checked against the directory, which counted the same tags.
            let slot = self.modules.get_mut(index).ok_or(BootInfoError::TooManyModules)?;
            *slot = Module { region, name };
            self.module_count = index + 1;
        }

        if let Some(tag) = information.command_line_tag() {
            let text = tag.cmdline().map_err(|error| BootInfoError::InvalidCommandLine(string_problem(&error)))?;
            self.command_line =
                BoundedString::try_from_str(text).ok_or(BootInfoError::CommandLineTooLong { length: text.len() })?;
        }
        if let Some(tag) = information.boot_loader_name_tag() {
            let text = tag.name().map_err(|error| BootInfoError::InvalidBootloaderName(string_problem(&error)))?;
            self.bootloader_name =
                BoundedString::try_from_str(text).ok_or(BootInfoError::BootloaderNameTooLong { length: text.len() })?;
        }

        self.acpi_rsdp = rsdp_from_tags(bytes, &directory, physical_address);
        // `tag_directory` checked that the tag lies within `bytes`; a tag it cannot describe leaves `None`.
        self.framebuffer =
            directory.framebuffer.and_then(|(offset, size)| crate::framebuffer::parse(&bytes[offset..offset + size]));
        Ok(())
    }

    /// Copies the BIOS memory map (tag 6), dropping empty areas.
    fn convert_bios_memory_map(&mut self, areas: &[multiboot2::MemoryArea]) -> Result<(), BootInfoError> {
        if areas.len() > MAX_MEMORY_AREAS {
            return Err(BootInfoError::TooManyMemoryAreas { count: areas.len() });
        }
        for area in areas.iter().filter(|area| area.size() > 0) {
            let start = clipped_physical(area.start_address());
            let end = clipped_physical(area.start_address().saturating_add(area.size()));
            if start >= end {
                continue; // entirely beyond the physical address space
            }
            self.memory_areas[self.memory_area_count] = MemoryArea {
                region: PhysicalRegion { start, end },
                kind: MemoryAreaKind::from_raw(u32::from(area.typ())),
            };
            self.memory_area_count += 1;
        }
        self.memory_map_source = MemoryMapSource::Bios;
        Ok(())
    }

    /// Converts the EFI memory map (tag 17, `tag` with its header), merging adjacent areas of one kind.
    fn convert_efi_memory_map(&mut self, tag: &[u8], boot_services_ended: bool) -> Result<(), BootInfoError> {
        let mut count = 0;
        let areas = &mut self.memory_areas;
        efi_memory_areas(tag, boot_services_ended, clipped_physical, |area, replaces_last| {
            if replaces_last {
                areas[count - 1] = area;
                return Ok(());
            }
            let slot = areas.get_mut(count).ok_or(BootInfoError::TooManyMemoryAreas { count: count + 1 })?;
            *slot = area;
            count += 1;
            Ok(())
        })?;
        self.memory_area_count = count;
        self.memory_map_source = MemoryMapSource::Efi;
        Ok(())
    }
}

/// The RSDP from the tags: the new tag's copy if valid, else the old tag's; the new tag's error if both are bad.
fn rsdp_from_tags(
    bytes: &[u8],
    directory: &TagDirectory,
    physical_address: PhysicalAddress,
) -> Result<Rsdp, RsdpError> {
    let candidate = |offset: Option<usize>, source: RsdpSource| -> Result<Rsdp, RsdpError> {
        let offset = offset.ok_or(RsdpError::NotFound)?;
        // `tag_directory` checked that the tag lies within `bytes` and holds at least an RSDP of its kind.
        let size = validate::read_u32(bytes, offset + 4).unwrap_or(0) as usize;
        let payload = bytes.get(offset + 8..offset + size).unwrap_or(&[]);
        let revision = validate_rsdp(payload, source)?;
        let address =
            PhysicalAddress::try_new(physical_address.value() + offset + 8).map_err(|_| RsdpError::NotFound)?;
        Ok(Rsdp { address, revision, source })
    };
    match candidate(directory.acpi_new_rsdp, RsdpSource::NewTag) {
        Ok(rsdp) => Ok(rsdp),
        Err(new_error) => match candidate(directory.acpi_old_rsdp, RsdpSource::OldTag) {
            Ok(rsdp) => Ok(rsdp),
            Err(RsdpError::NotFound) => Err(new_error),
            Err(old_error) if new_error == RsdpError::NotFound => Err(old_error),
            Err(_) => Err(new_error),
        },
    }
}
