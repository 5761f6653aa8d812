//! A bounds-checked reader of the MADT's interrupt controller structures, and ISA IRQ routing from it.
//!
//! Layout: ACPI 6.5 specification, 5.2.12 "Multiple APIC Description Table (MADT)": after the 36-byte SDT header
//! come the local interrupt controller address (u32) and flags (u32), then variable-length structures, each starting
//! with a type byte and a length byte (Table 5.21). Every length and field is checked: a malformed table yields a
//! [`MadtError`], never a panic or an endless loop.

use alloc::vec::Vec;
use memory_structs::PhysicalAddress;

/// Offset of the first interrupt controller structure in the MADT (SDT header + address + flags).
pub const MADT_ENTRIES_OFFSET: usize = 44;

/// One processor's local APIC (type 0, 5.2.12.2) or local x2APIC (type 9, 5.2.12.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processor {
    /// The local APIC id (8 bits for type 0, 32 bits for type 9).
    pub apic_id: u32,
    /// The ACPI processor id or UID.
    pub acpi_processor_id: u32,
    /// Flags bit 0: the processor is usable now.
    pub enabled: bool,
    /// Flags bit 1: the processor can be enabled at run time (only meaningful when not enabled).
    pub online_capable: bool,
}

/// One I/O APIC (type 1, 5.2.12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApic {
    /// Its I/O APIC id.
    pub id: u8,
    /// Physical address of its registers (IOREGSEL; IOWIN is at +0x10).
    pub address: PhysicalAddress,
    /// The first global system interrupt (GSI) its input 0 receives.
    pub gsi_base: u32,
}

/// Polarity of an interrupt input (MPS INTI flags bits 0-1, Table 5.26).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// Asserted when high.
    ActiveHigh,
    /// Asserted when low.
    ActiveLow,
}

/// Trigger mode of an interrupt input (MPS INTI flags bits 2-3, Table 5.26).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerMode {
    /// Edge-triggered.
    Edge,
    /// Level-triggered.
    Level,
}

/// An ISA IRQ that is wired to a different GSI, or with non-ISA polarity or trigger (type 2, 5.2.12.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterruptSourceOverride {
    /// The ISA IRQ (bus-relative source).
    pub isa_irq: u8,
    /// The GSI it is wired to.
    pub gsi: u32,
    /// Its polarity ("conforms to the bus" resolved to ISA's active high).
    pub polarity: Polarity,
    /// Its trigger mode ("conforms to the bus" resolved to ISA's edge).
    pub trigger: TriggerMode,
}

/// Where an ISA IRQ arrives: the answer of [`MadtInfo::route_isa_irq`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsaRoute {
    /// The global system interrupt.
    pub gsi: u32,
    /// The polarity to program.
    pub polarity: Polarity,
    /// The trigger mode to program.
    pub trigger: TriggerMode,
}

/// The facts of the MADT that interrupt routing and CPU bring-up need.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MadtInfo {
    /// Physical address of the local APICs' registers (the 64-bit override, type 5, if present).
    pub local_apic_address: PhysicalAddress,
    /// Flags bit 0 (PCAT_COMPAT): the machine also has dual 8259 PICs, which must be masked.
    pub has_legacy_pics: bool,
    /// Every processor listed, in table order (enabled or not).
    pub processors: Vec<Processor>,
    /// Every I/O APIC.
    pub io_apics: Vec<IoApic>,
    /// Every ISA interrupt source override.
    pub overrides: Vec<InterruptSourceOverride>,
}

/// Why the MADT could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MadtError {
    /// The table is shorter than its fixed part (bytes given).
    TooShort(usize),
    /// A structure at this byte offset has a length below 2 or beyond the table's end.
    BadEntryLength {
        /// Byte offset of the structure in the table.
        offset: usize,
        /// Its length byte.
        length: u8,
    },
    /// A structure of this type at this offset is shorter than its type requires.
    EntryTooShort {
        /// Byte offset of the structure.
        offset: usize,
        /// Its type byte.
        entry_type: u8,
    },
    /// An interrupt source override with reserved polarity or trigger bits (`10b`), at this offset.
    BadInterruptFlags {
        /// Byte offset of the structure.
        offset: usize,
        /// The flags.
        flags: u16,
    },
}

fn read_u16(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([bytes[offset], bytes[offset + 1]])
}

fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes([bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3]])
}

fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    (read_u32(bytes, offset) as u64) | ((read_u32(bytes, offset + 4) as u64) << 32)
}

/// Decodes MPS INTI flags (Table 5.26) for an ISA source; `None` for the reserved value `10b` in either field.
fn decode_inti_flags(flags: u16) -> Option<(Polarity, TriggerMode)> {
    let polarity = match flags & 0b11 {
        0b00 | 0b01 => Polarity::ActiveHigh,
        0b11 => Polarity::ActiveLow,
        _ => return None,
    };
    let trigger = match (flags >> 2) & 0b11 {
        0b00 | 0b01 => TriggerMode::Edge,
        0b11 => TriggerMode::Level,
        _ => return None,
    };
    Some((polarity, trigger))
}

/// Reads a whole MADT (`table` starts at its SDT header and is exactly its length long; the checksum is the
/// caller's business). Unknown structure types are skipped.
///
/// # Errors
/// A [`MadtError`] naming the first malformed part.
pub fn parse_madt(table: &[u8]) -> Result<MadtInfo, MadtError> {
    if table.len() < MADT_ENTRIES_OFFSET {
        return Err(MadtError::TooShort(table.len()));
    }
    let mut info = MadtInfo {
        local_apic_address: PhysicalAddress::new(read_u32(table, 36) as usize),
        has_legacy_pics: read_u32(table, 40) & 1 != 0,
        ..MadtInfo::default()
    };
    let mut offset = MADT_ENTRIES_OFFSET;
    while offset < table.len() {
        if offset + 2 > table.len() {
            return Err(MadtError::BadEntryLength { offset, length: 0 });
        }
        let entry_type = table[offset];
        let length = table[offset + 1];
        if length < 2 || offset + length as usize > table.len() {
            return Err(MadtError::BadEntryLength { offset, length });
        }
        let entry = &table[offset..offset + length as usize];
        let need = |minimum: usize| {
            if entry.len() < minimum { Err(MadtError::EntryTooShort { offset, entry_type }) } else { Ok(()) }
        };
        match entry_type {
            0 => {
                need(8)?;
                let flags = read_u32(entry, 4);
                info.processors.push(Processor {
                    apic_id: entry[3] as u32,
                    acpi_processor_id: entry[2] as u32,
                    enabled: flags & 1 != 0,
                    online_capable: flags & 2 != 0,
                });
            }
            1 => {
                need(12)?;
                info.io_apics.push(IoApic {
                    id: entry[2],
                    address: PhysicalAddress::new(read_u32(entry, 4) as usize),
                    gsi_base: read_u32(entry, 8),
                });
            }
            2 => {
                need(10)?;
                let flags = read_u16(entry, 8);
                let (polarity, trigger) =
                    decode_inti_flags(flags).ok_or(MadtError::BadInterruptFlags { offset, flags })?;
                // Bus 0 is ISA, the only bus the specification defines for overrides.
                if entry[2] == 0 {
                    info.overrides.push(InterruptSourceOverride {
                        isa_irq: entry[3],
                        gsi: read_u32(entry, 4),
                        polarity,
                        trigger,
                    });
                }
            }
            5 => {
                need(12)?;
                let address = read_u64(entry, 4);
                if let Ok(address) = PhysicalAddress::try_new(address as usize) {
                    info.local_apic_address = address;
                }
            }
            9 => {
                need(16)?;
                let flags = read_u32(entry, 8);
                info.processors.push(Processor {
                    apic_id: read_u32(entry, 4),
                    acpi_processor_id: read_u32(entry, 12),
                    enabled: flags & 1 != 0,
                    online_capable: flags & 2 != 0,
                });
            }
            _ => {}
        }
        offset += length as usize;
    }
    Ok(info)
}

impl MadtInfo {
    /// The enabled processors' APIC ids, in table order, without duplicates.
    pub fn enabled_apic_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = Vec::new();
        for processor in self.processors.iter().filter(|processor| processor.enabled) {
            if !ids.contains(&processor.apic_id) {
                ids.push(processor.apic_id);
            }
        }
        ids
    }

    /// Where ISA IRQ `irq` arrives: the override's GSI, polarity and trigger if the MADT has one, else the identity
    /// mapping (GSI = IRQ) with ISA's defaults, edge-triggered and active high (ACPI 6.5, 5.2.12.5).
    pub fn route_isa_irq(&self, irq: u8) -> IsaRoute {
        match self.overrides.iter().find(|entry| entry.isa_irq == irq) {
            Some(entry) => IsaRoute { gsi: entry.gsi, polarity: entry.polarity, trigger: entry.trigger },
            None => IsaRoute { gsi: irq as u32, polarity: Polarity::ActiveHigh, trigger: TriggerMode::Edge },
        }
    }

    /// The I/O APIC whose inputs include `gsi`, given how many inputs each has (`input_count(io_apic)`, read from its
    /// version register), with the input number: `(io_apic, gsi - gsi_base)`.
    pub fn io_apic_for_gsi(&self, gsi: u32, input_count: impl Fn(&IoApic) -> u32) -> Option<(IoApic, u32)> {
        self.io_apics.iter().find_map(|io_apic| {
            let input = gsi.checked_sub(io_apic.gsi_base)?;
            (input < input_count(io_apic)).then_some((*io_apic, input))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// A MADT as QEMU's q35/i440fx firmware builds it for 2 CPUs (the second disabled), one I/O APIC, and the usual
    /// overrides (IRQ 0 -> GSI 2; IRQ 9 level, active high).
    fn qemu_like_table() -> Vec<u8> {
        let mut table = vec![0u8; 36];
        table[0..4].copy_from_slice(b"APIC");
        table.extend_from_slice(&0xFEE0_0000u32.to_le_bytes());
        table.extend_from_slice(&1u32.to_le_bytes());
        table.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]); // CPU 0, APIC id 0, enabled
        table.extend_from_slice(&[0, 8, 1, 1, 0, 0, 0, 0]); // CPU 1, APIC id 1, disabled
        table.extend_from_slice(&[1, 12, 0, 0, 0x00, 0x00, 0xC0, 0xFE, 0, 0, 0, 0]); // I/O APIC at 0xFEC00000
        table.extend_from_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]); // IRQ 0 -> GSI 2, conforming
        table.extend_from_slice(&[2, 10, 0, 9, 9, 0, 0, 0, 0x0D, 0]); // IRQ 9, active high, level
        table.extend_from_slice(&[4, 6, 0xFF, 5, 0, 1]); // local APIC NMI: skipped
        table
    }

    #[test]
    fn reads_processors_io_apics_and_overrides() {
        let info = parse_madt(&qemu_like_table()).unwrap();
        assert_eq!(info.local_apic_address, PhysicalAddress::new(0xFEE0_0000));
        assert!(info.has_legacy_pics);
        assert_eq!(info.processors.len(), 2);
        assert_eq!(info.enabled_apic_ids(), vec![0]);
        assert_eq!(info.io_apics, vec![IoApic { id: 0, address: PhysicalAddress::new(0xFEC0_0000), gsi_base: 0 }]);
        assert_eq!(info.overrides.len(), 2);
    }

    #[test]
    fn routes_isa_irqs_through_overrides() {
        let info = parse_madt(&qemu_like_table()).unwrap();
        assert_eq!(
            info.route_isa_irq(0),
            IsaRoute { gsi: 2, polarity: Polarity::ActiveHigh, trigger: TriggerMode::Edge }
        );
        assert_eq!(
            info.route_isa_irq(9),
            IsaRoute { gsi: 9, polarity: Polarity::ActiveHigh, trigger: TriggerMode::Level }
        );
        assert_eq!(
            info.route_isa_irq(4),
            IsaRoute { gsi: 4, polarity: Polarity::ActiveHigh, trigger: TriggerMode::Edge }
        );
        let (io_apic, input) = info.io_apic_for_gsi(4, |_| 24).unwrap();
        assert_eq!((io_apic.id, input), (0, 4));
        assert!(info.io_apic_for_gsi(24, |_| 24).is_none());
    }

    #[test]
    fn x2apic_entries_and_address_override() {
        let mut table = qemu_like_table();
        table.extend_from_slice(&[9, 16, 0, 0, 0x00, 0x01, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0]); // x2APIC id 256
        table.extend_from_slice(&[5, 12, 0, 0, 0, 0, 0xD0, 0xFE, 0, 0, 0, 0]);
        let info = parse_madt(&table).unwrap();
        assert_eq!(info.enabled_apic_ids(), vec![0, 256]);
        assert_eq!(info.local_apic_address, PhysicalAddress::new(0xFED0_0000));
    }

    #[test]
    fn malformed_tables_are_errors_not_panics() {
        assert_eq!(parse_madt(&[0; 10]), Err(MadtError::TooShort(10)));
        let mut zero_length = qemu_like_table();
        zero_length.extend_from_slice(&[0, 0]);
        assert!(matches!(parse_madt(&zero_length), Err(MadtError::BadEntryLength { length: 0, .. })));
        let mut overlong = qemu_like_table();
        overlong.extend_from_slice(&[1, 200, 0]);
        assert!(matches!(parse_madt(&overlong), Err(MadtError::BadEntryLength { length: 200, .. })));
        let mut short = qemu_like_table();
        short.extend_from_slice(&[1, 4, 0, 0]);
        assert!(matches!(parse_madt(&short), Err(MadtError::EntryTooShort { entry_type: 1, .. })));
        let mut odd_byte = qemu_like_table();
        odd_byte.push(0);
        assert!(matches!(parse_madt(&odd_byte), Err(MadtError::BadEntryLength { .. })));
        let mut bad_flags = qemu_like_table();
        bad_flags.extend_from_slice(&[2, 10, 0, 5, 5, 0, 0, 0, 0b10, 0]);
        assert!(matches!(parse_madt(&bad_flags), Err(MadtError::BadInterruptFlags { flags: 2, .. })));
        // Every truncation of a valid table is an error or a shorter valid table, never a panic.
        let table = qemu_like_table();
        for length in 0..table.len() {
            let _ = parse_madt(&table[..length]);
        }
    }
}
