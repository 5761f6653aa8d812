//! ACPI table discovery: from the RSDP to the MADT's processors, I/O APICs and ISA interrupt overrides.
//!
//! # Purpose
//! Interrupt routing and CPU bring-up need three facts that only the firmware knows: which local APIC ids belong to
//! usable processors, where the I/O APICs are and which global system interrupts (GSIs) they serve, and how ISA IRQs
//! are wired to GSIs. The ACPI MADT lists them (ACPI 6.5 specification, 5.2.12). The `acpi` crate finds and
//! checksums the tables (RSDP 5.2.5, RSDT/XSDT 5.2.7-5.2.8); this crate reads the MADT's structures itself with
//! bounds checks ([`parse_madt`]), because firmware tables are untrusted input and must never make the kernel panic.
//!
//! # Key types
//! - [`madt`] (cached) and [`discover`] return a [`MadtInfo`] or an [`AcpiTablesError`].
//! - [`rsdp`] (cached) and [`tables`] (the RSDT/XSDT's tables as [`TableSummary`]s, for `machine`).
//! - [`MadtInfo`] with [`Processor`], [`IoApic`], [`InterruptSourceOverride`]; [`MadtInfo::route_isa_irq`] gives an
//!   [`IsaRoute`] (GSI, [`Polarity`], [`TriggerMode`]).
//!
//! # Control flow of [`discover`]
//! 1. Find the RSDP ([`rsdp`]): the boot information's checksummed copy (GRUB copies it into a Multiboot2 tag
//!    under both BIOS and UEFI), else, under BIOS only, the BIOS-area scan (EBDA, 0xE0000-0xFFFFF).
//! 2. `acpi::AcpiTables::from_rsdp` validates the RSDP and maps the RSDT or XSDT through [`KernelAcpiHandler`]: the
//!    direct map for RAM, ACPI and low memory (always mapped), `memory::map_device_memory` for anything else (e.g.
//!    SeaBIOS's tables in a "reserved" area), unmapped again when the `acpi` crate drops the mapping.
//! 3. Find the MADT (signature and checksum checked by `acpi`), then [`parse_madt`] its bytes.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[cfg(target_os = "none")]
mod handler;
mod madt;
mod root_table;
#[cfg(target_os = "none")]
mod tables;

pub use madt::{
    InterruptSourceOverride, IoApic, IsaRoute, MADT_ENTRIES_OFFSET, MadtError, MadtInfo, Polarity, Processor,
    TriggerMode, parse_madt,
};

#[cfg(target_os = "none")]
pub use handler::KernelAcpiHandler;
pub use root_table::{RootTableError, SDT_HEADER_SIZE, TableSummary, root_table_entries};
#[cfg(target_os = "none")]
pub use tables::{rsdp, tables};

/// Why the MADT could not be obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiTablesError {
    /// nano_core has not published the boot information.
    NoBootInformation,
    /// No valid RSDP: the boot information's tags are missing or invalid (and, under BIOS, the BIOS-area scan
    /// found none either).
    Rsdp(boot_info::RsdpError),
    /// The RSDT/XSDT cannot be mapped or is malformed.
    RootTable(RootTableError),
    /// The `acpi` crate rejected the RSDP, the root table, or found no valid MADT.
    Tables(TablesError),
    /// The MADT's mapping is shorter than its header's length (bytes mapped, bytes claimed).
    Truncated {
        /// Bytes mapped.
        mapped: usize,
        /// The table's length field.
        claimed: usize,
    },
    /// The MADT's structures are malformed.
    Madt(MadtError),
}

/// What the `acpi` crate rejected (its `AcpiError`, reduced to plain data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TablesError {
    /// The RSDP's signature, OEM id or checksum is wrong (ACPI 6.5, 5.2.5.3).
    InvalidRsdp,
    /// A table with this signature has a bad signature, OEM id, table id or checksum (5.2.6).
    InvalidTable([u8; 4]),
    /// No valid table with this signature exists.
    TableMissing([u8; 4]),
    /// Another error of the `acpi` crate.
    Other,
}

impl TablesError {
    fn signature_bytes(signature: &acpi::sdt::Signature) -> [u8; 4] {
        let mut bytes = [b'?'; 4];
        for (byte, value) in bytes.iter_mut().zip(signature.as_str().bytes()) {
            *byte = value;
        }
        bytes
    }
}

impl From<acpi::AcpiError> for TablesError {
    fn from(error: acpi::AcpiError) -> Self {
        use acpi::AcpiError;
        match error {
            AcpiError::NoValidRsdp
            | AcpiError::RsdpIncorrectSignature
            | AcpiError::RsdpInvalidOemId
            | AcpiError::RsdpInvalidChecksum => TablesError::InvalidRsdp,
            AcpiError::SdtInvalidSignature(signature)
            | AcpiError::SdtInvalidOemId(signature)
            | AcpiError::SdtInvalidTableId(signature)
            | AcpiError::SdtInvalidChecksum(signature) => TablesError::InvalidTable(Self::signature_bytes(&signature)),
            AcpiError::TableMissing(signature) => TablesError::TableMissing(Self::signature_bytes(&signature)),
            _ => TablesError::Other,
        }
    }
}

/// The MADT as read by the first successful [`madt`] call; read-only afterwards.
#[cfg(target_os = "none")]
static MADT: spin::Once<MadtInfo> = spin::Once::new();

/// The system's MADT facts: read by the first call (see the crate documentation for the steps), then cached.
///
/// # Errors
/// An [`AcpiTablesError`] naming the missing or malformed part (a failed read is retried by the next call);
/// nothing panics on bad tables.
#[cfg(target_os = "none")]
pub fn madt() -> Result<&'static MadtInfo, AcpiTablesError> {
    if let Some(info) = MADT.get() {
        return Ok(info);
    }
    let info = discover()?;
    Ok(MADT.call_once(|| info))
}

/// Finds and reads the MADT, without caching (see [`madt`]).
///
/// # Errors
/// As [`madt`].
#[cfg(target_os = "none")]
pub fn discover() -> Result<MadtInfo, AcpiTablesError> {
    let rsdp = rsdp()?;
    // SAFETY: the address is the RSDP copy inside the boot information (Multiboot2 tag 14/15, which stays reserved
    // and direct-mapped) or one in low memory found by the BIOS-area scan (always direct-mapped); both were
    // checksummed, and `from_rsdp` validates the signature and checksum again before following it.
    let tables = unsafe { acpi::AcpiTables::from_rsdp(KernelAcpiHandler, rsdp.address.value()) }
        .map_err(|error| AcpiTablesError::Tables(error.into()))?;
    let madt = tables.find_table::<acpi::madt::Madt>().map_err(|error| AcpiTablesError::Tables(error.into()))?;
    let claimed = madt.get().header.length as usize;
    let mapped = madt.region_length();
    if mapped < claimed {
        return Err(AcpiTablesError::Truncated { mapped, claimed });
    }
    // SAFETY: the mapping covers `claimed` bytes from its start (checked above), lives until `madt` is dropped at
    // the end of this function, and ACPI tables are not written while we read them.
    let bytes = unsafe { core::slice::from_raw_parts(madt.virtual_start().as_ptr() as *const u8, claimed) };
    parse_madt(bytes).map_err(AcpiTablesError::Madt)
}
