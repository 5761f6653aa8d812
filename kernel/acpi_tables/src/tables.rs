//! Kernel side of table discovery: finding the RSDP (boot information tags, else the BIOS-area scan under BIOS)
//! and listing the tables of the RSDT/XSDT through [`KernelAcpiHandler`] mappings.

use acpi::AcpiHandler;
use alloc::vec::Vec;
use boot_info::{Firmware, Rsdp, RsdpError, RsdpSource};
use memory::layout::PHYSICAL_MEMORY_OFFSET;
use memory_structs::PhysicalAddress;

use crate::root_table::{RootTableError, SDT_HEADER_SIZE, TableSummary, byte_sum, root_table_entries, sdt_length};
use crate::{AcpiTablesError, KernelAcpiHandler};

/// Physical address of the BIOS data area word holding the EBDA's real-mode segment (ACPI 6.5, 5.2.5.1).
const EBDA_SEGMENT_POINTER: usize = 0x40E;
/// The EBDA part that is scanned: its first 1 KiB.
const EBDA_SCAN_LENGTH: usize = 1024;
/// The BIOS read-only memory area scanned second: 0xE0000..0x100000.
const BIOS_AREA: core::ops::Range<usize> = 0xE_0000..0x10_0000;
/// Tables longer than this are not mapped to be checksummed (ACPI tables other than the DSDT are a few KiB).
const MAXIMUM_TABLE_LENGTH: u32 = 1 << 20;

/// The RSDP as found by the first successful [`rsdp`] call; read-only afterwards.
static RSDP: spin::Once<Rsdp> = spin::Once::new();

/// Reads `length` bytes of low memory (below 1 MiB, which the kernel always direct-maps).
fn low_memory(start: usize, length: usize) -> &'static [u8] {
    debug_assert!(start + length <= memory::layout::LOW_MEMORY_SIZE);
    // SAFETY: physical 0..1 MiB is direct-mapped readable for the kernel's lifetime (memory::layout), callers pass
    // ranges inside it, and firmware areas there are not written by the kernel.
    unsafe { core::slice::from_raw_parts((PHYSICAL_MEMORY_OFFSET + start) as *const u8, length) }
}

/// The BIOS-area scan (ACPI 6.5, 5.2.5.1): the first KiB of the EBDA, then 0xE0000-0xFFFFF.
fn scan_bios_area() -> Option<Rsdp> {
    let pointer = low_memory(EBDA_SEGMENT_POINTER, 2);
    let ebda = (u16::from_le_bytes([pointer[0], pointer[1]]) as usize) << 4;
    let mut areas = [(0usize, 0usize); 2];
    if (0x8_0000..BIOS_AREA.start - EBDA_SCAN_LENGTH).contains(&ebda) {
        areas[0] = (ebda, EBDA_SCAN_LENGTH);
    }
    areas[1] = (BIOS_AREA.start, BIOS_AREA.len());
    areas.iter().filter(|(_, length)| *length > 0).find_map(|&(start, length)| {
        let (offset, revision) = boot_info::scan_for_rsdp(low_memory(start, length))?;
        Some(Rsdp { address: PhysicalAddress::new(start + offset), revision, source: RsdpSource::BiosScan })
    })
}

/// The system's RSDP: from the boot information's tags (checksummed by `boot_info`), else, under BIOS only, from
/// the BIOS-area scan. Cached after the first success.
///
/// # Errors
/// [`AcpiTablesError::NoBootInformation`]; [`AcpiTablesError::Rsdp`] with the tags' problem (or
/// [`RsdpError::NotFound`]) when no valid RSDP was found.
pub fn rsdp() -> Result<Rsdp, AcpiTablesError> {
    if let Some(rsdp) = RSDP.get() {
        return Ok(*rsdp);
    }
    let boot_info = boot_info::global().ok_or(AcpiTablesError::NoBootInformation)?;
    let found = match boot_info.acpi_rsdp() {
        Ok(rsdp) => rsdp,
        // Under UEFI the legacy BIOS areas hold nothing trustworthy (ACPI 6.5, 5.2.5.2): only the tags count.
        Err(error) if boot_info.firmware() == Firmware::Uefi => return Err(AcpiTablesError::Rsdp(error)),
        Err(error) => {
            let scanned = scan_bios_area().ok_or(AcpiTablesError::Rsdp(error))?;
            if error != RsdpError::NotFound {
                log::warn!("acpi_tables: RSDP tag rejected ({error:?}); using the BIOS-area scan's");
            }
            scanned
        }
    };
    Ok(*RSDP.call_once(|| found))
}

/// Maps `length` bytes at `physical` and passes them to `read`; `None` if the mapping came back shorter (the
/// handler's zero-page fallback when mapping failed).
fn with_bytes<R>(physical: usize, length: usize, read: impl FnOnce(&[u8]) -> R) -> Option<R> {
    // SAFETY: the handler maps RAM through the direct map and anything else as read-only uncached device memory;
    // only bytes are read (no type with invariants), and the mapping lives until the end of this function.
    let mapping = unsafe { KernelAcpiHandler.map_physical_region::<u8>(physical, length) };
    if mapping.region_length() < length || mapping.physical_start() != physical {
        return None;
    }
    // SAFETY: the mapping covers `length` readable bytes from its start (checked above); firmware tables are not
    // written while we read them.
    let bytes = unsafe { core::slice::from_raw_parts(mapping.virtual_start().as_ptr() as *const u8, length) };
    Some(read(bytes))
}

/// The root table's physical address: the XSDT for revision 2+ RSDPs with a non-zero XSDT address, else the RSDT.
fn root_table_address(rsdp: Rsdp) -> Option<usize> {
    let length = if rsdp.revision >= 2 && rsdp.source != RsdpSource::OldTag { 36 } else { 20 };
    with_bytes(rsdp.address.value(), length, |bytes| {
        let xsdt = bytes.get(24..32).map(|field| u64::from_le_bytes(field.try_into().unwrap_or([0; 8])));
        let rsdt = u32::from_le_bytes(bytes[16..20].try_into().unwrap_or([0; 4]));
        match xsdt {
            Some(xsdt) if xsdt != 0 => usize::try_from(xsdt).ok(),
            _ => Some(rsdt as usize),
        }
    })?
}

/// Every table that the root table lists, in its order, with signature, length and checksum validity. The
/// root table itself is checksummed too.
///
/// # Errors
/// As [`rsdp`]; [`AcpiTablesError::RootTable`] if the RSDT/XSDT cannot be mapped or is malformed.
pub fn tables() -> Result<(Rsdp, Vec<TableSummary>), AcpiTablesError> {
    let rsdp = rsdp()?;
    let unmappable = AcpiTablesError::RootTable(RootTableError::BadLength { length: 0, available: 0 });
    let root = root_table_address(rsdp).ok_or(unmappable)?;
    let length = with_bytes(root, SDT_HEADER_SIZE, |header| sdt_length(header).unwrap_or(0)).ok_or(unmappable)?;
    if length > MAXIMUM_TABLE_LENGTH {
        return Err(AcpiTablesError::RootTable(RootTableError::BadLength { length, available: 0 }));
    }
    let entries =
        with_bytes(root, length as usize, root_table_entries).ok_or(unmappable)?.map_err(AcpiTablesError::RootTable)?;
    Ok((rsdp, entries.into_iter().map(summarize).collect()))
}

/// Reads one table's header and checksums its bytes (a table that cannot be mapped, or is too long, is reported
/// with an invalid checksum).
fn summarize(address: u64) -> TableSummary {
    let physical = usize::try_from(address).unwrap_or(usize::MAX);
    let header = with_bytes(physical, SDT_HEADER_SIZE, |header| {
        let mut signature = [0u8; 4];
        signature.copy_from_slice(&header[..4]);
        (signature, sdt_length(header).unwrap_or(0))
    });
    let Some((signature, length)) = header else {
        return TableSummary { signature: *b"????", address, length: 0, checksum_valid: false };
    };
    let checksum_valid = (SDT_HEADER_SIZE as u32..=MAXIMUM_TABLE_LENGTH).contains(&length)
        && with_bytes(physical, length as usize, |bytes| byte_sum(bytes) == 0).unwrap_or(false);
    TableSummary { signature, address, length, checksum_valid }
}
