//! The USB boot matrix: the ISO written raw to an emulated USB stick (xHCI), booted under SeaBIOS and OVMF on
//! both machine types, with 1 and 4 CPUs and 128 MiB and 2 GiB of memory.
//!
//! The full cross product is 16 boots. [`MATRIX`] runs 8: under each firmware, a 4-boot orthogonal array over
//! (machine, CPUs, memory), so every value of every axis is booted twice and every pair of values once per
//! firmware; the two firmwares take complementary halves, so each (machine, CPUs, memory) triple is booted exactly
//! once. Each boot reaches the prompt with no missing GRUB file on the way, logs the memory and CPUs it was given
//! (and, under OVMF, that it started the USB stick), answers `ns` and `hello`, and `machine` reports the right
//! firmware and CPU count. The
//! 128 MiB boots also pass every in-kernel test cell and leak no frame.
//!
//! The runner ([`crate::runner`]) finds a scenario's [`Hardware`] here by name ([`hardware`]); every other
//! scenario boots from the CD-ROM on QEMU's default machine.

use crate::expected as e;
use crate::qemu::{BootMedium, Firmware, QemuConfig};
use crate::scenarios::{Image, Scenario, Step, command};

/// The emulated machine of one matrix boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hardware {
    /// QEMU machine type: `pc` (i440FX, PIIX) or `q35` (ICH9, PCIe).
    pub machine: &'static str,
    /// Guest memory in MiB.
    pub memory_mib: u32,
}

impl Hardware {
    /// Applies this hardware to `qemu`: the machine type, the memory, and the image on a USB stick.
    pub fn apply(&self, qemu: &mut QemuConfig) {
        qemu.machine = Some(self.machine.to_string());
        qemu.memory = format!("{}M", self.memory_mib);
        qemu.medium = BootMedium::UsbStick;
    }
}

/// One boot of the matrix: its scenario (firmware, CPUs, steps) and its hardware.
#[derive(Debug, Clone, Copy)]
pub struct MatrixBoot {
    /// The scenario; its `cpus` is always set.
    pub scenario: Scenario,
    /// Machine type and memory.
    pub hardware: Hardware,
}

/// One matrix boot named `usb-<firmware>-<machine>-<cpus>cpu-<memory>`, with its steps: the prompt (no GRUB
/// `error: file ... not found` before it), the `boot` steps (kernel boot lines), `ns`, `hello`, the `extra` steps,
/// then `machine`, then `exit`.
macro_rules! matrix_boot {
    ($name:literal, $firmware:expr, $machine:literal, $cpus:literal, $memory_mib:literal, boot: [$($boot:expr),*],
     extra: [$($extra:expr),*], machine: [$($machine_line:expr),*]) => {
        MatrixBoot {
            scenario: Scenario {
                name: $name,
                firmware: $firmware,
                image: Image::Normal,
                steps: &[
                    Step::Prompt,
                    Step::BootLogLacks(e::GRUB_MISSING_FILE),
                    $(Step::ExpectAnywhere($boot),)*
                    command("ns", &[e::NS_LISTS_CAPTAIN]),
                    command("hello", &[e::HELLO_V1]),
                    $($extra,)*
                    command("machine", &[$($machine_line),*]),
                    Step::Exit { line: e::EXIT_COMMAND, status: e::EXIT_STATUS_SUCCESS },
                ],
                cpus: Some($cpus),
            },
            hardware: Hardware { machine: $machine, memory_mib: $memory_mib },
        }
    };
}

/// The 128 MiB boots also run every in-kernel test cell (`test`: 1,000 spawn/exit cycles back to the memory
/// baseline, a 1 GiB allocation refused, the kill-safety rounds, ...) where frames and heap are scarcest, then
/// `mem` (free frames left, nothing leaked).
const TESTS: Step = Step::AllTestsPass;
const MEM: Step = command("mem", e::MEM_LINES);
/// `machine`'s CPU count line.
const CPUS_1: &str = r"^cpus: 1\b";
const CPUS_4: &str = r"^cpus: 4\b";

/// The 8 boots, in the order `test` runs them (after [`crate::scenarios::SCENARIOS`]).
#[rustfmt::skip]
pub const MATRIX: &[MatrixBoot] = &[
    matrix_boot!("usb-bios-pc-1cpu-128m", Firmware::Bios, "pc", 1, 128,
        boot: [e::BOOT_MEMORY_128M, e::BOOT_ONE_CPU], extra: [TESTS, MEM], machine: [e::MACHINE_FIRMWARE_BIOS, CPUS_1]),
    matrix_boot!("usb-bios-pc-4cpu-2g", Firmware::Bios, "pc", 4, 2048,
        boot: [e::BOOT_MEMORY_2G, e::BOOT_FOUR_CPUS], extra: [], machine: [e::MACHINE_FIRMWARE_BIOS, CPUS_4]),
    matrix_boot!("usb-bios-q35-1cpu-2g", Firmware::Bios, "q35", 1, 2048,
        boot: [e::BOOT_MEMORY_2G, e::BOOT_ONE_CPU], extra: [], machine: [e::MACHINE_FIRMWARE_BIOS, CPUS_1]),
    matrix_boot!("usb-bios-q35-4cpu-128m", Firmware::Bios, "q35", 4, 128,
        boot: [e::BOOT_MEMORY_128M, e::BOOT_FOUR_CPUS], extra: [TESTS, MEM], machine: [e::MACHINE_FIRMWARE_BIOS, CPUS_4]),
    matrix_boot!("usb-uefi-pc-1cpu-2g", Firmware::Uefi, "pc", 1, 2048,
        boot: [e::OVMF_BOOTS_USB_STICK, e::BOOT_MEMORY_2G, e::BOOT_ONE_CPU], extra: [],
        machine: [e::MACHINE_FIRMWARE_UEFI, CPUS_1]),
    matrix_boot!("usb-uefi-pc-4cpu-128m", Firmware::Uefi, "pc", 4, 128,
        boot: [e::OVMF_BOOTS_USB_STICK, e::BOOT_MEMORY_128M, e::BOOT_FOUR_CPUS], extra: [TESTS, MEM],
        machine: [e::MACHINE_FIRMWARE_UEFI, CPUS_4]),
    matrix_boot!("usb-uefi-q35-1cpu-128m", Firmware::Uefi, "q35", 1, 128,
        boot: [e::OVMF_BOOTS_USB_STICK, e::BOOT_MEMORY_128M, e::BOOT_ONE_CPU], extra: [TESTS, MEM],
        machine: [e::MACHINE_FIRMWARE_UEFI, CPUS_1]),
    matrix_boot!("usb-uefi-q35-4cpu-2g", Firmware::Uefi, "q35", 4, 2048,
        boot: [e::OVMF_BOOTS_USB_STICK, e::BOOT_MEMORY_2G, e::BOOT_FOUR_CPUS], extra: [],
        machine: [e::MACHINE_FIRMWARE_UEFI, CPUS_4]),
];

/// The hardware of the matrix scenario named `name`; `None` for every other scenario.
pub fn hardware(name: &str) -> Option<Hardware> {
    MATRIX.iter().find(|boot| boot.scenario.name == name).map(|boot| boot.hardware)
}

/// The matrix's scenarios.
pub fn scenarios() -> impl Iterator<Item = &'static Scenario> {
    MATRIX.iter().map(|boot| &boot.scenario)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Names say what they boot; under each firmware every pair of axis values is booted; the two firmwares
    /// together boot each (machine, CPUs, memory) triple once.
    #[test]
    fn matrix_covers_every_pair_per_firmware_and_every_triple_once() {
        let mut triples = BTreeSet::new();
        for boot in MATRIX {
            let (s, h) = (&boot.scenario, &boot.hardware);
            let cpus = s.cpus.expect("matrix boots set their CPU count");
            let memory =
                if h.memory_mib >= 1024 { format!("{}g", h.memory_mib / 1024) } else { format!("{}m", h.memory_mib) };
            assert_eq!(s.name, format!("usb-{}-{}-{cpus}cpu-{memory}", s.firmware.name(), h.machine));
            assert!(triples.insert((h.machine, cpus, h.memory_mib)), "{} repeats a triple", s.name);
        }
        assert_eq!(triples.len(), 8);
        for firmware in [Firmware::Bios, Firmware::Uefi] {
            let boots: Vec<_> = MATRIX.iter().filter(|b| b.scenario.firmware == firmware).collect();
            let pairs =
                |f: &dyn Fn(&MatrixBoot) -> (String, String)| boots.iter().map(|b| f(b)).collect::<BTreeSet<_>>();
            let machine_cpus = pairs(&|b| (b.hardware.machine.into(), format!("{:?}", b.scenario.cpus)));
            let machine_memory = pairs(&|b| (b.hardware.machine.into(), b.hardware.memory_mib.to_string()));
            let cpus_memory = pairs(&|b| (format!("{:?}", b.scenario.cpus), b.hardware.memory_mib.to_string()));
            for set in [machine_cpus, machine_memory, cpus_memory] {
                assert_eq!(set.len(), 4, "{firmware:?}: {set:?}");
            }
        }
    }

    /// The `machine` patterns compile.
    #[test]
    fn machine_patterns_compile() {
        for pattern in [e::MACHINE_FIRMWARE_BIOS, e::MACHINE_FIRMWARE_UEFI, CPUS_1, CPUS_4] {
            regex::Regex::new(pattern).unwrap();
        }
    }

    #[test]
    fn hardware_is_found_by_name_and_applied() {
        assert_eq!(hardware("usb-uefi-q35-4cpu-2g"), Some(Hardware { machine: "q35", memory_mib: 2048 }));
        assert_eq!(hardware("shell"), None);
        let mut qemu = QemuConfig::default();
        Hardware { machine: "pc", memory_mib: 128 }.apply(&mut qemu);
        assert_eq!(
            (qemu.machine.as_deref(), qemu.memory.as_str(), qemu.medium),
            (Some("pc"), "128M", BootMedium::UsbStick)
        );
    }
}
