//! The QEMU command line for a headless TCG boot of the ISO: as a CD-ROM (the default) or written raw to an
//! emulated USB stick on an xHCI controller ([`BootMedium`]), on QEMU's default machine or a chosen one.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Which firmware boots the ISO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS (QEMU's default): GRUB's El Torito BIOS image.
    Bios,
    /// OVMF: GRUB's EFI image.
    Uefi,
}

impl Firmware {
    /// `bios` or `uefi`.
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

/// How the image is attached to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMedium {
    /// `-cdrom`: the El Torito boot images (BIOS) and the EFI system partition image (UEFI).
    Cdrom,
    /// The ISO as the raw contents of a USB mass-storage device on an xHCI controller, the boot device (`bootindex=0`),
    /// read-only: what a stick written by `make usb` looks like to the firmware (the hybrid MBR and GPT).
    UsbStick,
}

/// Everything needed to start one guest.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// The emulator binary.
    pub binary: PathBuf,
    /// The OVMF image for UEFI boots.
    pub ovmf: PathBuf,
    /// Guest memory (QEMU `-m` syntax).
    pub memory: String,
    /// Number of CPUs (`-smp`).
    pub cpus: u32,
    /// The machine type (`-machine`, e.g. `pc` or `q35`), or `None` for QEMU's default (`pc`).
    pub machine: Option<String>,
    /// How the image is attached.
    pub medium: BootMedium,
    /// Extra arguments appended at the end.
    pub extra: Vec<String>,
}

impl Default for QemuConfig {
    fn default() -> Self {
        QemuConfig {
            binary: PathBuf::from("qemu-system-x86_64"),
            ovmf: PathBuf::from("/usr/share/ovmf/OVMF.fd"),
            memory: "512M".into(),
            cpus: 1,
            machine: None,
            medium: BootMedium::Cdrom,
            extra: Vec::new(),
        }
    }
}

/// The I/O port of QEMU's `isa-debug-exit` device; a write of `v` makes QEMU exit with `(v << 1) | 1`.
pub const DEBUG_EXIT_PORT: &str = "0xf4";

impl QemuConfig {
    /// The arguments (without the binary) for booting `iso` under `firmware`, serial console on stdio.
    pub fn arguments(&self, iso: &Path, firmware: Firmware) -> Vec<String> {
        let mut arguments: Vec<String> = match self.medium {
            BootMedium::Cdrom => vec!["-cdrom".into(), iso.display().to_string()],
            BootMedium::UsbStick => vec![
                "-drive".into(),
                format!("if=none,id=stick,format=raw,readonly=on,file={}", iso.display()),
                "-device".into(),
                "qemu-xhci,id=xhci".into(),
                "-device".into(),
                "usb-storage,bus=xhci.0,drive=stick,bootindex=0".into(),
            ],
        };
        if let Some(machine) = &self.machine {
            arguments.extend(["-machine".into(), machine.clone()]);
        }
        arguments.extend([
            "-m".into(),
            self.memory.clone(),
            "-display".into(),
            "none".into(),
            "-serial".into(),
            "stdio".into(),
            "-no-reboot".into(),
            "-device".into(),
            format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT},iosize=0x04"),
            "-monitor".into(),
            "none".into(),
            "-accel".into(),
            "tcg".into(),
        ]);
        if self.cpus > 1 {
            arguments.extend(["-smp".into(), self.cpus.to_string()]);
        }
        if firmware == Firmware::Uefi {
            arguments.extend(["-bios".into(), self.ovmf.display().to_string()]);
        }
        arguments.extend(self.extra.iter().cloned());
        arguments
    }

    /// A ready-to-spawn command.
    pub fn command(&self, iso: &Path, firmware: Firmware) -> Command {
        let mut command = Command::new(&self.binary);
        command.args(self.arguments(iso, firmware));
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bios_and_uefi_arguments() {
        let config = QemuConfig::default();
        let bios = config.arguments(Path::new("build/theseus.iso"), Firmware::Bios).join(" ");
        assert_eq!(
            bios,
            "-cdrom build/theseus.iso -m 512M -display none -serial stdio -no-reboot \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 -monitor none -accel tcg"
        );
        let uefi = QemuConfig { cpus: 2, ..QemuConfig::default() }.arguments(Path::new("x.iso"), Firmware::Uefi);
        assert!(uefi.ends_with(&["-smp".into(), "2".into(), "-bios".into(), "/usr/share/ovmf/OVMF.fd".into()]));
    }

    #[test]
    fn usb_stick_and_machine_arguments() {
        let config = QemuConfig {
            medium: BootMedium::UsbStick,
            machine: Some("q35".into()),
            memory: "128M".into(),
            ..QemuConfig::default()
        };
        let usb = config.arguments(Path::new("build/theseus.iso"), Firmware::Bios).join(" ");
        assert!(
            usb.starts_with(
                "-drive if=none,id=stick,format=raw,readonly=on,file=build/theseus.iso -device qemu-xhci,id=xhci \
                 -device usb-storage,bus=xhci.0,drive=stick,bootindex=0 -machine q35 -m 128M "
            ),
            "{usb}"
        );
        assert!(!usb.contains("-cdrom"), "{usb}");
    }
}
