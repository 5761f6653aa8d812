//! Names of PCI class codes, after the PCI-SIG "PCI Code and ID Assignment Specification" revision 1.15 (section 1,
//! "Class code" tables; the wording follows `lspci`'s, which users compare against).

use core::fmt;

/// Base classes: (class, name).
const CLASSES: &[(u8, &str)] = &[
    (0x00, "Unclassified device"),
    (0x01, "Mass storage controller"),
    (0x02, "Network controller"),
    (0x03, "Display controller"),
    (0x04, "Multimedia controller"),
    (0x05, "Memory controller"),
    (0x06, "Bridge"),
    (0x07, "Communication controller"),
    (0x08, "Generic system peripheral"),
    (0x09, "Input device controller"),
    (0x0A, "Docking station"),
    (0x0B, "Processor"),
    (0x0C, "Serial bus controller"),
    (0x0D, "Wireless controller"),
    (0x0E, "Intelligent controller"),
    (0x0F, "Satellite communications controller"),
    (0x10, "Encryption controller"),
    (0x11, "Signal processing controller"),
    (0x12, "Processing accelerators"),
    (0x13, "Non-Essential Instrumentation"),
    (0x40, "Coprocessor"),
    (0xFF, "Unassigned class"),
];

/// Subclasses: (class, subclass, name). Subclass 0x80 ("other") takes the class's name.
const SUBCLASSES: &[(u8, u8, &str)] = &[
    (0x00, 0x00, "Non-VGA unclassified device"),
    (0x00, 0x01, "VGA compatible unclassified device"),
    (0x01, 0x00, "SCSI storage controller"),
    (0x01, 0x01, "IDE interface"),
    (0x01, 0x02, "Floppy disk controller"),
    (0x01, 0x03, "IPI bus controller"),
    (0x01, 0x04, "RAID bus controller"),
    (0x01, 0x05, "ATA controller"),
    (0x01, 0x06, "SATA controller"),
    (0x01, 0x07, "Serial Attached SCSI controller"),
    (0x01, 0x08, "Non-Volatile memory controller"),
    (0x01, 0x09, "Universal Flash Storage controller"),
    (0x02, 0x00, "Ethernet controller"),
    (0x02, 0x01, "Token ring network controller"),
    (0x02, 0x02, "FDDI network controller"),
    (0x02, 0x03, "ATM network controller"),
    (0x02, 0x04, "ISDN controller"),
    (0x02, 0x05, "WorldFip controller"),
    (0x02, 0x06, "PICMG controller"),
    (0x02, 0x07, "Infiniband controller"),
    (0x02, 0x08, "Fabric controller"),
    (0x03, 0x00, "VGA compatible controller"),
    (0x03, 0x01, "XGA compatible controller"),
    (0x03, 0x02, "3D controller"),
    (0x04, 0x00, "Multimedia video controller"),
    (0x04, 0x01, "Multimedia audio controller"),
    (0x04, 0x02, "Computer telephony device"),
    (0x04, 0x03, "Audio device"),
    (0x05, 0x00, "RAM memory"),
    (0x05, 0x01, "FLASH memory"),
    (0x05, 0x02, "CXL"),
    (0x06, 0x00, "Host bridge"),
    (0x06, 0x01, "ISA bridge"),
    (0x06, 0x02, "EISA bridge"),
    (0x06, 0x03, "MicroChannel bridge"),
    (0x06, 0x04, "PCI bridge"),
    (0x06, 0x05, "PCMCIA bridge"),
    (0x06, 0x06, "NuBus bridge"),
    (0x06, 0x07, "CardBus bridge"),
    (0x06, 0x08, "RACEway bridge"),
    (0x06, 0x09, "Semi-transparent PCI-to-PCI bridge"),
    (0x06, 0x0A, "InfiniBand to PCI host bridge"),
    (0x07, 0x00, "Serial controller"),
    (0x07, 0x01, "Parallel controller"),
    (0x07, 0x02, "Multiport serial controller"),
    (0x07, 0x03, "Modem"),
    (0x07, 0x04, "GPIB controller"),
    (0x07, 0x05, "Smart Card controller"),
    (0x08, 0x00, "PIC"),
    (0x08, 0x01, "DMA controller"),
    (0x08, 0x02, "Timer"),
    (0x08, 0x03, "RTC"),
    (0x08, 0x04, "PCI Hot-plug controller"),
    (0x08, 0x05, "SD Host controller"),
    (0x08, 0x06, "IOMMU"),
    (0x09, 0x00, "Keyboard controller"),
    (0x09, 0x01, "Digitizer Pen"),
    (0x09, 0x02, "Mouse controller"),
    (0x09, 0x03, "Scanner controller"),
    (0x09, 0x04, "Gameport controller"),
    (0x0A, 0x00, "Generic Docking Station"),
    (0x0B, 0x00, "386"),
    (0x0B, 0x01, "486"),
    (0x0B, 0x02, "Pentium"),
    (0x0B, 0x10, "Alpha"),
    (0x0B, 0x20, "Power PC"),
    (0x0B, 0x30, "MIPS"),
    (0x0B, 0x40, "Co-processor"),
    (0x0C, 0x00, "FireWire (IEEE 1394)"),
    (0x0C, 0x01, "ACCESS Bus"),
    (0x0C, 0x02, "SSA"),
    (0x0C, 0x03, "USB controller"),
    (0x0C, 0x04, "Fibre Channel"),
    (0x0C, 0x05, "SMBus"),
    (0x0C, 0x06, "InfiniBand"),
    (0x0C, 0x07, "IPMI Interface"),
    (0x0C, 0x08, "SERCOS interface"),
    (0x0C, 0x09, "CANBUS"),
    (0x0D, 0x00, "IRDA controller"),
    (0x0D, 0x01, "Consumer IR controller"),
    (0x0D, 0x10, "RF controller"),
    (0x0D, 0x11, "Bluetooth"),
    (0x0D, 0x12, "Broadband"),
    (0x0D, 0x20, "802.1a controller"),
    (0x0D, 0x21, "802.1b controller"),
    (0x0E, 0x00, "I2O"),
    (0x10, 0x00, "Network and computing encryption device"),
    (0x10, 0x10, "Entertainment encryption device"),
    (0x11, 0x00, "DPIO module"),
    (0x11, 0x01, "Performance counters"),
    (0x11, 0x10, "Communication synchronizer"),
    (0x11, 0x20, "Signal processing management"),
];

/// Programming interfaces worth naming: (class, subclass, interface, name).
const INTERFACES: &[(u8, u8, u8, &str)] = &[
    (0x01, 0x06, 0x01, "AHCI"),
    (0x01, 0x06, 0x02, "Serial Storage Bus"),
    (0x01, 0x08, 0x01, "NVMHCI"),
    (0x01, 0x08, 0x02, "NVM Express"),
    (0x03, 0x00, 0x01, "8514"),
    (0x0C, 0x03, 0x00, "UHCI"),
    (0x0C, 0x03, 0x10, "OHCI"),
    (0x0C, 0x03, 0x20, "EHCI"),
    (0x0C, 0x03, 0x30, "xHCI"),
    (0x0C, 0x03, 0x40, "USB4"),
    (0x0C, 0x03, 0xFE, "USB Device"),
    (0x0C, 0x00, 0x10, "OHCI"),
    (0x07, 0x00, 0x02, "16550"),
];

/// The base class's name, or `None` for an unassigned class code.
fn base_class_name(class: u8) -> Option<&'static str> {
    CLASSES.iter().find(|(code, _)| *code == class).map(|(_, name)| *name)
}

/// The subclass's name (`SATA controller`); subclass 0x80 and unknown subclasses of a known class give the
/// class's name (`Bridge`); an unknown class gives `None`.
pub fn subclass_name(class: u8, subclass: u8) -> Option<&'static str> {
    SUBCLASSES
        .iter()
        .find(|(code, sub, _)| (*code, *sub) == (class, subclass))
        .map(|(_, _, name)| *name)
        .or_else(|| base_class_name(class))
}

/// The programming interface's name (`AHCI`, `xHCI`), where one is defined and worth showing.
pub fn programming_interface_name(class: u8, subclass: u8, interface: u8) -> Option<&'static str> {
    INTERFACES
        .iter()
        .find(|(code, sub, prog_if, _)| (*code, *sub, *prog_if) == (class, subclass, interface))
        .map(|(_, _, _, name)| *name)
}

/// A function's class description for display: the subclass name, with the programming interface's name in
/// parentheses when it has one (`SATA controller (AHCI)`, `USB controller (xHCI)`); `Unknown class 0xNN` for
/// a class code the specification does not assign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassName {
    class: u8,
    subclass: Option<&'static str>,
    interface: Option<&'static str>,
}

impl fmt::Display for ClassName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.subclass {
            Some(name) => f.write_str(name)?,
            None => write!(f, "Unknown class {:#04x}", self.class)?,
        }
        match self.interface {
            Some(interface) => write!(f, " ({interface})"),
            None => Ok(()),
        }
    }
}

/// The display name of class code `class`:`subclass`:`interface` (see [`ClassName`]).
pub fn class_name(class: u8, subclass: u8, interface: u8) -> ClassName {
    ClassName {
        class,
        subclass: subclass_name(class, subclass),
        interface: programming_interface_name(class, subclass, interface),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn names_of_the_devices_qemu_emulates() {
        // q35: host bridge, ISA bridge, AHCI, SMBus; pc: PIIX IDE, PIIX4 ACPI ("other" bridge), VGA, e1000; xHCI.
        let cases = [
            ((0x06, 0x00, 0x00), "Host bridge"),
            ((0x06, 0x01, 0x00), "ISA bridge"),
            ((0x01, 0x06, 0x01), "SATA controller (AHCI)"),
            ((0x0C, 0x05, 0x00), "SMBus"),
            ((0x01, 0x01, 0x80), "IDE interface"),
            ((0x06, 0x80, 0x00), "Bridge"),
            ((0x03, 0x00, 0x00), "VGA compatible controller"),
            ((0x02, 0x00, 0x00), "Ethernet controller"),
            ((0x0C, 0x03, 0x30), "USB controller (xHCI)"),
            ((0x01, 0x08, 0x02), "Non-Volatile memory controller (NVM Express)"),
        ];
        for ((class, subclass, interface), expected) in cases {
            assert_eq!(class_name(class, subclass, interface).to_string(), expected);
        }
    }

    #[test]
    fn unknown_codes_fall_back() {
        assert_eq!(class_name(0x02, 0x42, 0).to_string(), "Network controller");
        assert_eq!(class_name(0x0C, 0x03, 0x99).to_string(), "USB controller");
        assert_eq!(class_name(0x77, 0x00, 0x00).to_string(), "Unknown class 0x77");
        assert_eq!(subclass_name(0x77, 0), None);
        assert_eq!(programming_interface_name(0x01, 0x06, 0x00), None);
    }

    #[test]
    fn tables_have_no_duplicate_keys() {
        for (index, (class, subclass, _)) in SUBCLASSES.iter().enumerate() {
            assert!(SUBCLASSES[..index].iter().all(|(c, s, _)| (c, s) != (class, subclass)));
            assert!(base_class_name(*class).is_some(), "subclass of an unknown class {class:#x}");
        }
        for (index, (class, subclass, interface, _)) in INTERFACES.iter().enumerate() {
            assert!(INTERFACES[..index].iter().all(|(c, s, i, _)| (c, s, i) != (class, subclass, interface)));
        }
        for (index, (class, _)) in CLASSES.iter().enumerate() {
            assert!(CLASSES[..index].iter().all(|(c, _)| c != class));
        }
    }
}
