//! Configuration-space access: the [`ConfigSpace`] trait the scan reads through, and configuration mechanism 1.

use crate::scan::PciAddress;

/// Reads 32-bit words of PCI configuration space.
pub trait ConfigSpace {
    /// The 32-bit word at byte `offset` (a multiple of 4, below 256) of `address`'s configuration space. An
    /// absent function reads as all ones (PCI 3.0, 6.1: "vendor ID 0xFFFF").
    fn read_u32(&mut self, address: PciAddress, offset: u8) -> u32;
}

/// Configuration mechanism 1 (PCI Local Bus Specification 3.0, 3.2.2.3.2): write the enable bit, bus, device,
/// function and register to port 0xCF8, then read the word from port 0xCFC.
#[derive(Debug, Default)]
pub struct PortConfigSpace;

/// The address/data port pair: one access at a time. The lock protects the pair from two CPUs interleaving an
/// address write and a data read; it is a leaf lock, held with interrupts disabled for two port accesses.
static PORTS: spin::Mutex<()> = spin::Mutex::new(());

/// CONFIG_ADDRESS (0xCF8) bit 31: enable configuration space mapping.
const ENABLE: u32 = 1 << 31;

/// The CONFIG_ADDRESS value for `address` and register `offset` (bits 7:2; bits 1:0 must be 0).
pub(crate) fn config_address(address: PciAddress, offset: u8) -> u32 {
    ENABLE
        | (u32::from(address.bus) << 16)
        | (u32::from(address.device & 0x1F) << 11)
        | (u32::from(address.function & 0x7) << 8)
        | u32::from(offset & 0xFC)
}

impl ConfigSpace for PortConfigSpace {
    fn read_u32(&mut self, address: PciAddress, offset: u8) -> u32 {
        let mut address_port: x86_64::instructions::port::Port<u32> = x86_64::instructions::port::Port::new(0xCF8);
        let mut data_port: x86_64::instructions::port::Port<u32> = x86_64::instructions::port::Port::new(0xCFC);
        x86_64::instructions::interrupts::without_interrupts(|| {
            let _pair = PORTS.lock();
            // SAFETY: ports 0xCF8/0xCFC are the PCI configuration mechanism 1 registers, used by nothing else in
            // this kernel; the lock keeps the address write and the data read together. Reading configuration
            // space has no side effects on the registers enumeration reads (ids, class, header type, bus numbers).
            unsafe {
                address_port.write(config_address(address, offset));
                data_port.read()
            }
        })
    }
}
