//! The bus scan (see the crate documentation for the order) and the per-function facts it reports.
//!
//! Configuration header offsets (PCI Local Bus Specification 3.0, 6.1, Figure 6-1): vendor id 0x00, device id
//! 0x02, revision 0x08, programming interface 0x09, subclass 0x0A, class 0x0B, header type 0x0E; for a
//! PCI-to-PCI bridge (header type 1) the secondary bus number at 0x19 (PCI-to-PCI Bridge Architecture 1.2, 3.2).

use alloc::vec::Vec;
use core::fmt;

use crate::class::class_name;
use crate::config::{ConfigSpace, PortConfigSpace};

/// A PCI function's location: bus (0-255), device (0-31), function (0-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PciAddress {
    /// The bus number.
    pub bus: u8,
    /// The device number, 0-31.
    pub device: u8,
    /// The function number, 0-7.
    pub function: u8,
}

impl fmt::Display for PciAddress {
    /// `bb:dd.f` in hexadecimal, as `lspci` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{:x}", self.bus, self.device, self.function)
    }
}

/// The configuration header's layout (header type bits 6:0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderType {
    /// 0: a general device.
    General,
    /// 1: a PCI-to-PCI bridge.
    PciBridge,
    /// 2: a CardBus bridge.
    CardBusBridge,
    /// Any other layout number.
    Unknown(u8),
}

impl HeaderType {
    fn from_raw(raw: u8) -> Self {
        match raw & 0x7F {
            0 => Self::General,
            1 => Self::PciBridge,
            2 => Self::CardBusBridge,
            other => Self::Unknown(other),
        }
    }

    /// The layout number (0, 1, 2...).
    pub fn number(self) -> u8 {
        match self {
            Self::General => 0,
            Self::PciBridge => 1,
            Self::CardBusBridge => 2,
            Self::Unknown(other) => other,
        }
    }
}

/// One PCI function found by the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciFunction {
    /// Where it is.
    pub address: PciAddress,
    /// Vendor id (never 0xFFFF).
    pub vendor_id: u16,
    /// Device id.
    pub device_id: u16,
    /// Class code (byte 0x0B).
    pub class: u8,
    /// Subclass (byte 0x0A).
    pub subclass: u8,
    /// Programming interface (byte 0x09).
    pub programming_interface: u8,
    /// Revision id.
    pub revision: u8,
    /// The header layout.
    pub header_type: HeaderType,
    /// Header type bit 7: the device has functions besides 0 (meaningful on function 0).
    pub multifunction: bool,
    /// The secondary bus number, for PCI-to-PCI bridges.
    pub secondary_bus: Option<u8>,
}

impl fmt::Display for PciFunction {
    /// One `lspci`-like line: `00:1f.2 8086:2922 SATA controller (AHCI) [01:06.01, header 0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:04x}:{:04x} {} [{:02x}:{:02x}.{:02x}, header {}]",
            self.address,
            self.vendor_id,
            self.device_id,
            class_name(self.class, self.subclass, self.programming_interface),
            self.class,
            self.subclass,
            self.programming_interface,
            self.header_type.number()
        )?;
        if let Some(bus) = self.secondary_bus {
            write!(f, " -> bus {bus:02x}")?;
        }
        Ok(())
    }
}

/// Vendor id of an absent function.
const NO_VENDOR: u16 = 0xFFFF;

/// Reads the function at `address`, or `None` if there is none.
fn read_function(space: &mut impl ConfigSpace, address: PciAddress) -> Option<PciFunction> {
    let ids = space.read_u32(address, 0x00);
    let vendor_id = ids as u16;
    if vendor_id == NO_VENDOR {
        return None;
    }
    let class_word = space.read_u32(address, 0x08);
    let header_raw = (space.read_u32(address, 0x0C) >> 16) as u8;
    let header_type = HeaderType::from_raw(header_raw);
    let secondary_bus = (header_type == HeaderType::PciBridge).then(|| (space.read_u32(address, 0x18) >> 8) as u8);
    Some(PciFunction {
        address,
        vendor_id,
        device_id: (ids >> 16) as u16,
        class: (class_word >> 24) as u8,
        subclass: (class_word >> 16) as u8,
        programming_interface: (class_word >> 8) as u8,
        revision: class_word as u8,
        header_type,
        multifunction: header_raw & 0x80 != 0,
        secondary_bus,
    })
}

/// Scans `bus` and, recursively, the buses behind its bridges, appending to `found`; `scanned` marks bus numbers
/// already visited.
fn scan_bus(space: &mut impl ConfigSpace, bus: u8, scanned: &mut [bool; 256], found: &mut Vec<PciFunction>) {
    if core::mem::replace(&mut scanned[bus as usize], true) {
        return;
    }
    for device in 0..32 {
        let Some(first) = read_function(space, PciAddress { bus, device, function: 0 }) else { continue };
        let functions = if first.multifunction { 8 } else { 1 };
        let rest = (1..functions).filter_map(|function| read_function(space, PciAddress { bus, device, function }));
        let device_functions: Vec<PciFunction> = core::iter::once(first).chain(rest).collect();
        for function in device_functions {
            found.push(function);
            if let Some(secondary) = function.secondary_bus.filter(|&secondary| secondary != 0) {
                scan_bus(space, secondary, scanned, found);
            }
        }
    }
}

/// Enumerates every function reachable through `space` (see the crate documentation for the order), sorted by
/// address.
pub fn scan_with(space: &mut impl ConfigSpace) -> Vec<PciFunction> {
    let mut found = Vec::new();
    let mut scanned = [false; 256];
    let host = PciAddress { bus: 0, device: 0, function: 0 };
    let roots: Vec<u8> = match read_function(space, host) {
        Some(bridge) if bridge.multifunction => {
            (0..8u8).filter(|&function| read_function(space, PciAddress { function, ..host }).is_some()).collect()
        }
        _ => alloc::vec![0],
    };
    for bus in roots {
        scan_bus(space, bus, &mut scanned, &mut found);
    }
    found.sort_by_key(|function| function.address);
    found
}

/// Enumerates the machine's PCI functions through configuration mechanism 1 ([`PortConfigSpace`]).
pub fn scan() -> Vec<PciFunction> {
    scan_with(&mut PortConfigSpace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    /// A fake configuration space: a list of functions with their header words.
    struct FakeSpace {
        functions: Vec<(PciAddress, [u32; 7])>,
        reads: usize,
    }

    fn address(bus: u8, device: u8, function: u8) -> PciAddress {
        PciAddress { bus, device, function }
    }

    /// Header words 0x00..0x18 for ids, class code and header type, with `secondary` at 0x19 for bridges.
    fn header(vendor: u16, device: u16, class: [u8; 3], header_type: u8, secondary: u8) -> [u32; 7] {
        let class_word = (u32::from(class[0]) << 24) | (u32::from(class[1]) << 16) | (u32::from(class[2]) << 8) | 2;
        [
            u32::from(vendor) | (u32::from(device) << 16),
            0,
            class_word,
            u32::from(header_type) << 16,
            0,
            0,
            u32::from(secondary) << 8,
        ]
    }

    impl ConfigSpace for FakeSpace {
        fn read_u32(&mut self, address: PciAddress, offset: u8) -> u32 {
            self.reads += 1;
            self.functions
                .iter()
                .find(|(at, _)| *at == address)
                .map_or(u32::MAX, |(_, words)| words[usize::from(offset / 4)])
        }
    }

    #[test]
    fn bridges_are_followed_and_multifunction_devices_expanded() {
        let mut space = FakeSpace {
            functions: vec![
                (address(0, 0, 0), header(0x8086, 0x29c0, [6, 0, 0], 0, 0)),
                (address(0, 0x1c, 0), header(0x8086, 0x2940, [6, 4, 0], 0x81, 2)), // bridge to bus 2, multi-function
                (address(0, 0x1c, 3), header(0x8086, 0x2946, [6, 4, 0], 0x01, 5)), // bridge to bus 5
                (address(0, 0x1f, 2), header(0x8086, 0x2922, [1, 6, 1], 0, 0)), // not reached: device 0x1f fn 0 absent
                (address(2, 0, 0), header(0x1b36, 0x000d, [0x0c, 3, 0x30], 0, 0)),
                (address(5, 3, 0), header(0x8086, 0x100e, [2, 0, 0], 0, 0)),
                (address(7, 0, 0), header(0x1af4, 0x1000, [2, 0, 0], 0, 0)), // behind no bridge: not found
            ],
            reads: 0,
        };
        let found = scan_with(&mut space);
        let lines: Vec<_> = found.iter().map(|function| function.to_string()).collect();
        assert_eq!(
            lines,
            [
                "00:00.0 8086:29c0 Host bridge [06:00.00, header 0]",
                "00:1c.0 8086:2940 PCI bridge [06:04.00, header 1] -> bus 02",
                "00:1c.3 8086:2946 PCI bridge [06:04.00, header 1] -> bus 05",
                "02:00.0 1b36:000d USB controller (xHCI) [0c:03.30, header 0]",
                "05:03.0 8086:100e Ethernet controller [02:00.00, header 0]",
            ]
        );
        // Single-function devices cost one read per slot: 32 slots on buses 0, 2, 5, plus the functions' headers.
        assert!(space.reads < 3 * 32 + 8 + 5 * 4 + 8, "{} reads", space.reads);
    }

    #[test]
    fn bridge_loops_and_a_bridge_to_bus_0_terminate() {
        let mut space = FakeSpace {
            functions: vec![
                (address(0, 0, 0), header(0x8086, 0x1237, [6, 0, 0], 0, 0)),
                (address(0, 1, 0), header(0x8086, 0x0001, [6, 4, 0], 1, 0)), // to bus 0: ignored
                (address(0, 2, 0), header(0x8086, 0x0002, [6, 4, 0], 1, 1)),
                (address(1, 0, 0), header(0x8086, 0x0003, [6, 4, 0], 1, 1)), // to its own bus: a loop
            ],
            reads: 0,
        };
        assert_eq!(scan_with(&mut space).len(), 4);
    }

    #[test]
    fn a_multifunction_host_bridge_gives_several_root_buses() {
        let mut space = FakeSpace {
            functions: vec![
                (address(0, 0, 0), header(0x1022, 0x1450, [6, 0, 0], 0x80, 0)),
                (address(0, 0, 1), header(0x1022, 0x1451, [6, 0, 0], 0x80, 0)),
                (address(1, 4, 0), header(0x10de, 0x1c82, [3, 0, 0], 0, 0)),
            ],
            reads: 0,
        };
        let found = scan_with(&mut space);
        assert_eq!(
            found.iter().map(|function| function.address).collect::<Vec<_>>(),
            [address(0, 0, 0), address(0, 0, 1), address(1, 4, 0)]
        );
        assert_eq!(found[2].to_string(), "01:04.0 10de:1c82 VGA compatible controller [03:00.00, header 0]");
    }

    #[test]
    fn the_config_address_encodes_mechanism_1() {
        assert_eq!(crate::config::config_address(address(0, 0x1f, 2), 0x0B), 0x8000_FA08);
        assert_eq!(crate::config::config_address(address(0xff, 0x3f, 9), 0), 0x80FF_F900);
    }
}
