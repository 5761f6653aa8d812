//! I/O APICs: map them, and route ISA IRQs (with the MADT's overrides) to a vector on one CPU.
//!
//! Registers: Intel 82093AA I/O APIC datasheet, 3.0: IOREGSEL at offset 0x00 selects a register, IOWIN at 0x10 reads
//! or writes it; register 0x01 is the version (bits 23:16 = highest redirection entry), registers 0x10 + 2n and
//! 0x11 + 2n are redirection entry n's low and high halves (3.2.4).

use acpi_tables::{MadtInfo, Polarity, TriggerMode};
use alloc::vec::Vec;
use cpu::CpuId;
use memory::{MappedPages, Permissions};
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;

use crate::{ApicError, RouteError};

const REGISTER_SELECT: usize = 0x00;
const REGISTER_WINDOW: usize = 0x10;
const VERSION: u32 = 0x01;
const REDIRECTION_TABLE: u32 = 0x10;
/// Redirection entry bits (82093AA 3.2.4): 13 polarity (1 = active low), 15 trigger (1 = level), 16 mask.
const ACTIVE_LOW: u32 = 1 << 13;
const LEVEL_TRIGGERED: u32 = 1 << 15;
const MASKED: u32 = 1 << 16;

/// One mapped I/O APIC.
struct IoApicRegisters {
    /// The MADT entry it came from.
    entry: acpi_tables::IoApic,
    /// Its inputs (redirection entries).
    input_count: u32,
    /// Its register page (uncached).
    pages: MappedPages,
}

impl IoApicRegisters {
    fn read(&self, register: u32) -> u32 {
        let base = self.pages.start_address().value() + (self.entry.address.value() % 4096);
        // SAFETY: `base` lies in this I/O APIC's uncached register mapping; IOREGSEL and IOWIN are 32-bit registers
        // accessed with aligned 32-bit volatile operations, and the IO_APICS lock serialises the select/access pair.
        unsafe {
            core::ptr::write_volatile((base + REGISTER_SELECT) as *mut u32, register);
            core::ptr::read_volatile((base + REGISTER_WINDOW) as *const u32)
        }
    }

    fn write(&self, register: u32, value: u32) {
        let base = self.pages.start_address().value() + (self.entry.address.value() % 4096);
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::write_volatile((base + REGISTER_SELECT) as *mut u32, register);
            core::ptr::write_volatile((base + REGISTER_WINDOW) as *mut u32, value);
        }
    }
}

/// The mapped I/O APICs. The lock protects their register-select/window pairs (taken with interrupts disabled).
static IO_APICS: Mutex<Vec<IoApicRegisters>> = Mutex::new(Vec::new());

/// Maps every I/O APIC of the MADT and masks all their inputs. Returns how many inputs they have in total.
///
/// # Errors
/// [`ApicError::Map`].
pub(crate) fn init(madt: &MadtInfo) -> Result<u32, ApicError> {
    let mut mapped = Vec::new();
    for entry in &madt.io_apics {
        // SAFETY: the I/O APIC's register page is device memory named by the MADT, mapped nowhere else, accessed with
        // aligned 32-bit volatile operations only.
        let pages = unsafe { memory::map_device_memory(entry.address, 0x20, Permissions::ReadWrite) }
            .map_err(ApicError::Map)?;
        let mut registers = IoApicRegisters { entry: *entry, input_count: 0, pages };
        registers.input_count = ((registers.read(VERSION) >> 16) & 0xFF) + 1;
        for input in 0..registers.input_count {
            registers.write(REDIRECTION_TABLE + 2 * input, MASKED);
        }
        mapped.push(registers);
    }
    let total = mapped.iter().map(|registers| registers.input_count).sum();
    without_interrupts(|| *IO_APICS.lock() = mapped);
    Ok(total)
}

/// The low half of a redirection entry: fixed delivery, physical destination mode, unmasked.
fn redirection_low(vector: u8, polarity: Polarity, trigger: TriggerMode) -> u32 {
    let mut low = vector as u32;
    if polarity == Polarity::ActiveLow {
        low |= ACTIVE_LOW;
    }
    if trigger == TriggerMode::Level {
        low |= LEVEL_TRIGGERED;
    }
    low
}

/// Routes ISA IRQ `irq` to `vector` on CPU `target`, honouring the MADT's interrupt source overrides (GSI, polarity,
/// trigger), and unmasks it. Register the vector's handler first.
///
/// # Errors
/// [`RouteError::CpuNotOnline`], [`RouteError::ApicIdOutOfRange`], [`RouteError::NoIoApicForGsi`],
/// [`RouteError::InvalidVector`], [`RouteError::Madt`].
pub fn route_isa_irq(irq: u8, vector: u8, target: CpuId) -> Result<(), RouteError> {
    if vector < interrupts::FIRST_DEVICE_VECTOR || vector == interrupts::SPURIOUS_VECTOR {
        return Err(RouteError::InvalidVector(vector));
    }
    program_isa_route(irq, target, |route| redirection_low(vector, route.polarity, route.trigger))
}

/// Delivery mode NMI in a redirection entry's bits 10:8 (82093AA 3.2.4); the vector field is ignored.
const DELIVERY_NMI: u32 = 0b100 << 8;

/// Routes ISA IRQ `irq` to CPU `target` as a non-maskable interrupt (delivery mode NMI, edge-triggered as that
/// mode requires; the MADT's polarity is honoured), and unmasks it: the NMI watchdog's timer.
///
/// # Errors
/// [`RouteError::CpuNotOnline`], [`RouteError::ApicIdOutOfRange`], [`RouteError::NoIoApicForGsi`],
/// [`RouteError::Madt`].
pub fn route_isa_irq_as_nmi(irq: u8, target: CpuId) -> Result<(), RouteError> {
    program_isa_route(irq, target, |route| {
        let polarity = if route.polarity == Polarity::ActiveLow { ACTIVE_LOW } else { 0 };
        DELIVERY_NMI | polarity
    })
}

/// Writes the redirection entry of ISA IRQ `irq` (after the MADT's overrides): destination `target`, low half
/// from `low` (unmasked unless `low` masks it).
fn program_isa_route(
    irq: u8,
    target: CpuId,
    low: impl FnOnce(&acpi_tables::IsaRoute) -> u32,
) -> Result<(), RouteError> {
    let madt = acpi_tables::madt().map_err(RouteError::Madt)?;
    let apic_id = cpu::apic_id(target).ok_or(RouteError::CpuNotOnline(target))?;
    if apic_id.0 > 0xFF {
        return Err(RouteError::ApicIdOutOfRange(apic_id));
    }
    let route = madt.route_isa_irq(irq);
    without_interrupts(|| {
        let io_apics = IO_APICS.lock();
        let registers = io_apics
            .iter()
            .find(|registers| {
                route.gsi.checked_sub(registers.entry.gsi_base).is_some_and(|input| input < registers.input_count)
            })
            .ok_or(RouteError::NoIoApicForGsi(route.gsi))?;
        let input = route.gsi - registers.entry.gsi_base;
        registers.write(REDIRECTION_TABLE + 2 * input + 1, apic_id.0 << 24);
        registers.write(REDIRECTION_TABLE + 2 * input, low(&route));
        Ok(())
    })
}

/// Masks ISA IRQ `irq` (after the MADT's overrides) again.
///
/// # Errors
/// [`RouteError::NoIoApicForGsi`], [`RouteError::Madt`].
pub fn mask_isa_irq(irq: u8) -> Result<(), RouteError> {
    let madt = acpi_tables::madt().map_err(RouteError::Madt)?;
    let gsi = madt.route_isa_irq(irq).gsi;
    without_interrupts(|| {
        let io_apics = IO_APICS.lock();
        let registers = io_apics
            .iter()
            .find(|registers| {
                gsi.checked_sub(registers.entry.gsi_base).is_some_and(|input| input < registers.input_count)
            })
            .ok_or(RouteError::NoIoApicForGsi(gsi))?;
        let input = gsi - registers.entry.gsi_base;
        registers.write(REDIRECTION_TABLE + 2 * input, MASKED);
        Ok(())
    })
}
