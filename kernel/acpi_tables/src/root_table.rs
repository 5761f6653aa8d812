//! The system description tables listed by the RSDT or XSDT (ACPI 6.5, 5.2.7 and 5.2.8): a bounds-checked
//! parser of the root table's entries (host-tested) and, in the kernel, the list of tables with their signatures,
//! lengths and checksums (for the shell's `machine` command).
//!
//! Layout: a 36-byte SDT header (5.2.6: signature 4, length u32 at 4, revision, checksum at 9, ...) followed by
//! 32-bit (RSDT) or 64-bit (XSDT) physical addresses.

use alloc::vec::Vec;

/// The SDT header's size (ACPI 6.5, 5.2.6, Table 5.4).
pub const SDT_HEADER_SIZE: usize = 36;

/// Why a root table could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootTableError {
    /// The signature is neither `RSDT` nor `XSDT` (the four bytes found).
    BadSignature([u8; 4]),
    /// The length field is below the header size, beyond the bytes given, or not a whole number of entries.
    BadLength {
        /// The length field.
        length: u32,
        /// The bytes available.
        available: usize,
    },
    /// The bytes do not sum to 0 (the sum found).
    BadChecksum(u8),
}

/// One table found through the root table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSummary {
    /// The four-character signature (`APIC`, `FACP`, `HPET`...), as found (not necessarily ASCII).
    pub signature: [u8; 4],
    /// Its physical address.
    pub address: u64,
    /// Its length field, in bytes.
    pub length: u32,
    /// Whether its bytes sum to 0 (ACPI 6.5, 5.2.6).
    pub checksum_valid: bool,
}

/// The byte sum of `bytes` (0 for a valid ACPI table).
pub fn byte_sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte))
}

/// The length field of an SDT header (`None` if `header` is shorter than 8 bytes).
pub fn sdt_length(header: &[u8]) -> Option<u32> {
    let field = header.get(4..8)?;
    Some(u32::from_le_bytes([field[0], field[1], field[2], field[3]]))
}

/// The table addresses listed by a root table (`bytes` holds at least its `length` bytes). Entries are 4 bytes
/// wide for `RSDT`, 8 for `XSDT`; zero entries are skipped.
///
/// # Errors
/// A [`RootTableError`]; nothing panics on malformed bytes.
pub fn root_table_entries(bytes: &[u8]) -> Result<Vec<u64>, RootTableError> {
    let signature: [u8; 4] = bytes.get(..4).and_then(|field| field.try_into().ok()).unwrap_or([0; 4]);
    let entry_size = match &signature {
        b"RSDT" => 4,
        b"XSDT" => 8,
        _ => return Err(RootTableError::BadSignature(signature)),
    };
    let length = sdt_length(bytes).unwrap_or(0);
    let table = bytes
        .get(..length as usize)
        .filter(|table| table.len() >= SDT_HEADER_SIZE && (table.len() - SDT_HEADER_SIZE).is_multiple_of(entry_size))
        .ok_or(RootTableError::BadLength { length, available: bytes.len() })?;
    match byte_sum(table) {
        0 => {}
        sum => return Err(RootTableError::BadChecksum(sum)),
    }
    let entries = table[SDT_HEADER_SIZE..].chunks_exact(entry_size).map(|entry| {
        let mut value = [0u8; 8];
        value[..entry_size].copy_from_slice(entry);
        u64::from_le_bytes(value)
    });
    Ok(entries.filter(|&address| address != 0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_table(signature: &[u8; 4], entries: &[u64], entry_size: usize) -> Vec<u8> {
        let mut bytes = signature.to_vec();
        let length = (SDT_HEADER_SIZE + entries.len() * entry_size) as u32;
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(b"BOCHS BXPC    ");
        bytes.resize(SDT_HEADER_SIZE, 0);
        for entry in entries {
            bytes.extend_from_slice(&entry.to_le_bytes()[..entry_size]);
        }
        bytes[9] = 0u8.wrapping_sub(byte_sum(&bytes));
        bytes
    }

    #[test]
    fn rsdt_and_xsdt_entries_are_listed() {
        let rsdt = root_table(b"RSDT", &[0x7fe_14a0, 0, 0x7fe_1594], 4);
        assert_eq!(root_table_entries(&rsdt), Ok(vec![0x7fe_14a0, 0x7fe_1594]));
        let xsdt = root_table(b"XSDT", &[0x1_0000_0000, 0x7fe_1594], 8);
        let mut longer = xsdt.clone();
        longer.extend_from_slice(&[0xff; 8]); // bytes past `length` are ignored
        assert_eq!(root_table_entries(&longer), Ok(vec![0x1_0000_0000, 0x7fe_1594]));
    }

    #[test]
    fn malformed_root_tables_are_errors() {
        let mut rsdt = root_table(b"RSDT", &[0x1000], 4);
        assert_eq!(root_table_entries(b"FACP"), Err(RootTableError::BadSignature(*b"FACP")));
        assert_eq!(root_table_entries(&[]), Err(RootTableError::BadSignature([0; 4])));
        assert_eq!(root_table_entries(&rsdt[..39]), Err(RootTableError::BadLength { length: 40, available: 39 }));
        rsdt[20] ^= 0x10;
        assert_eq!(root_table_entries(&rsdt), Err(RootTableError::BadChecksum(0x10)));
        // An XSDT whose length is not a whole number of 8-byte entries; a length below the header.
        let mut xsdt = root_table(b"XSDT", &[0x1000], 8);
        xsdt[4] = 40;
        assert_eq!(root_table_entries(&xsdt), Err(RootTableError::BadLength { length: 40, available: 44 }));
        xsdt[4] = 8;
        assert_eq!(root_table_entries(&xsdt), Err(RootTableError::BadLength { length: 8, available: 44 }));
    }
}
