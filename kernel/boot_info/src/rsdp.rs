//! The ACPI Root System Description Pointer: validation of a copy from a Multiboot2 tag (3.6.16 "ACPI old RSDP",
//! 3.6.17 "ACPI new RSDP") or of a candidate found by the BIOS-area scan (ACPI 6.5, 5.2.5.1 "Finding the RSDP on
//! IA-PC Systems"), and the scan itself. Pure byte logic, host-tested; the kernel side (`acpi_tables`) supplies
//! the low-memory bytes for the scan.
//!
//! Layout (ACPI 6.5, 5.2.5.3, Table 5.3): signature `RSD PTR ` (8 bytes), checksum (1: the first 20 bytes sum to
//! 0), OEM id (6), revision (1: 0 for ACPI 1.0, 2 for 2.0 and later), RSDT address (u32) — 20 bytes for ACPI 1.0;
//! then length (u32, the whole structure, 36), XSDT address (u64), extended checksum (1: all `length` bytes sum
//! to 0), reserved (3).

use memory_structs::PhysicalAddress;

/// `RSD PTR ` (ACPI 6.5, 5.2.5.3).
pub const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// Bytes covered by the ACPI 1.0 checksum.
pub const RSDP_V1_LENGTH: usize = 20;
/// The ACPI 2.0+ structure's size.
pub const RSDP_V2_LENGTH: usize = 36;
/// The scan's candidates lie on 16-byte boundaries (ACPI 6.5, 5.2.5.1).
pub const RSDP_SCAN_ALIGNMENT: usize = 16;

/// Where an RSDP was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsdpSource {
    /// Multiboot2 tag 15, GRUB's copy of an ACPI 2.0+ RSDP.
    NewTag,
    /// Multiboot2 tag 14, GRUB's copy of an ACPI 1.0 RSDP.
    OldTag,
    /// The BIOS-area scan (EBDA, then 0xE0000-0xFFFFF).
    BiosScan,
}

impl RsdpSource {
    /// A short description for logs and `machine`.
    pub const fn description(self) -> &'static str {
        match self {
            Self::NewTag => "multiboot2 new RSDP tag",
            Self::OldTag => "multiboot2 old RSDP tag",
            Self::BiosScan => "BIOS area scan",
        }
    }
}

/// A validated RSDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rsdp {
    /// The physical address of the structure (of the copy inside the boot information, for the tag sources).
    pub address: PhysicalAddress,
    /// Its revision field (0: ACPI 1.0, RSDT only; 2 or more: XSDT too).
    pub revision: u8,
    /// Where it was found.
    pub source: RsdpSource,
}

/// Why no valid RSDP was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsdpError {
    /// The boot information has no RSDP tag (the BIOS-area scan may still find one under BIOS).
    NotFound,
    /// The bytes do not start with `RSD PTR `.
    BadSignature(RsdpSource),
    /// The first 20 bytes sum to `sum`, not 0.
    BadChecksum {
        /// Where the candidate came from.
        source: RsdpSource,
        /// The byte sum found.
        sum: u8,
    },
    /// A revision 2+ structure's length is below 36 or beyond the bytes available.
    BadLength {
        /// Where the candidate came from.
        source: RsdpSource,
        /// The length field.
        length: u32,
        /// The bytes available.
        available: usize,
    },
    /// A revision 2+ structure's `length` bytes sum to `sum`, not 0.
    BadExtendedChecksum {
        /// Where the candidate came from.
        source: RsdpSource,
        /// The byte sum found.
        sum: u8,
    },
    /// The new-RSDP tag holds a revision 0 structure (ACPI 1.0 belongs in the old tag).
    RevisionTooOld {
        /// The revision field.
        revision: u8,
    },
}

fn byte_sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte))
}

/// Validates the RSDP at the start of `bytes` (which may extend past it) and returns its revision.
///
/// Revision 0 needs 20 valid bytes; revision 2 and later also a length of at least 36 within `bytes` and a valid
/// extended checksum — except from the old tag (and the scan of an ACPI 1.0 table), where only the 20-byte
/// checksum applies if `bytes` holds no more than 20 bytes.
///
/// # Errors
/// [`RsdpError::BadSignature`], [`RsdpError::BadChecksum`], [`RsdpError::BadLength`],
/// [`RsdpError::BadExtendedChecksum`]; [`RsdpError::RevisionTooOld`] for a revision-0 structure from the new tag.
pub fn validate_rsdp(bytes: &[u8], source: RsdpSource) -> Result<u8, RsdpError> {
    let Some(v1) = bytes.get(..RSDP_V1_LENGTH) else {
        return Err(RsdpError::BadLength { source, length: RSDP_V1_LENGTH as u32, available: bytes.len() });
    };
    if &v1[..8] != RSDP_SIGNATURE {
        return Err(RsdpError::BadSignature(source));
    }
    let sum = byte_sum(v1);
    if sum != 0 {
        return Err(RsdpError::BadChecksum { source, sum });
    }
    let revision = v1[15];
    if revision == 0 {
        return if source == RsdpSource::NewTag { Err(RsdpError::RevisionTooOld { revision }) } else { Ok(0) };
    }
    if source == RsdpSource::OldTag && bytes.len() <= RSDP_V1_LENGTH {
        return Ok(revision); // GRUB copies only the ACPI 1.0 part into the old tag
    }
    let length = bytes.get(20..24).map_or(0, |field| u32::from_le_bytes([field[0], field[1], field[2], field[3]]));
    let whole = bytes.get(..length as usize).filter(|_| length as usize >= RSDP_V2_LENGTH);
    let Some(whole) = whole else {
        return Err(RsdpError::BadLength { source, length, available: bytes.len() });
    };
    match byte_sum(whole) {
        0 => Ok(revision),
        sum => Err(RsdpError::BadExtendedChecksum { source, sum }),
    }
}

/// Scans `area` (physical memory starting at a 16-byte aligned address) for the first valid RSDP on a 16-byte
/// boundary; returns its offset in `area` and its revision.
pub fn scan_for_rsdp(area: &[u8]) -> Option<(usize, u8)> {
    (0..area.len())
        .step_by(RSDP_SCAN_ALIGNMENT)
        .find_map(|offset| validate_rsdp(&area[offset..], RsdpSource::BiosScan).ok().map(|revision| (offset, revision)))
}
