//! `machine`: what the OS found on this machine, one topic per line, each line starting with its topic and a
//! colon so that users and tests can grep it (`firmware:`, `cpu:`, `cpu features:`, `cpus:`, `memory:`,
//! `acpi:`, `pci:` followed by one `lspci`-like line per function, `framebuffer:`, `consoles:`). This is what a
//! user photographs when reporting a boot on new hardware.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use boot_info::{FramebufferKind, MemoryAreaKind};
use raw_cpuid::{CpuId as RawCpuId, CpuIdReaderNative};

/// CPUID through the native instruction.
type Cpuid = RawCpuId<CpuIdReaderNative>;

/// `machine`: prints the report.
pub fn machine(words: &[String]) {
    let mut report = String::new();
    match words.get(1).map(String::as_str) {
        None => {}
        Some("--memory-map") if words.len() == 2 => {
            memory_map_lines(&mut report);
            crate::console::write_str(&report);
            return;
        }
        Some(_) => {
            crate::console::write_str("usage: machine [--memory-map]\n");
            return;
        }
    }
    firmware_line(&mut report);
    cpu_lines(&mut report);
    cpus_line(&mut report);
    memory_line(&mut report);
    acpi_line(&mut report);
    pci_lines(&mut report);
    framebuffer_line(&mut report);
    consoles_line(&mut report);
    crate::console::write_str(&report);
}

// Writing into a `String` cannot fail: the `let _ =` below drop an always-`Ok` `fmt::Result`.

fn firmware_line(report: &mut String) {
    match boot_info::global() {
        Some(info) => {
            _ = writeln!(report, "firmware: {} (loader \"{}\")", info.firmware().name(), info.bootloader_name())
        }
        None => report.push_str("firmware: unknown (no boot information)\n"),
    }
}

/// The CPU features reported, as (name, present) pairs, in the order printed.
fn cpu_features(cpuid: &Cpuid) -> Vec<(&'static str, bool)> {
    let mut features = Vec::new();
    if let Some(info) = cpuid.get_feature_info() {
        features.extend([
            ("fpu", info.has_fpu()),
            ("tsc", info.has_tsc()),
            ("msr", info.has_msr()),
            ("pae", info.has_pae()),
            ("apic", info.has_apic()),
            ("x2apic", info.has_x2apic()),
            ("tsc-deadline", info.has_tsc_deadline()),
            ("pge", info.has_pge()),
            ("pat", info.has_pat()),
            ("sse", info.has_sse()),
            ("sse2", info.has_sse2()),
            ("sse3", info.has_sse3()),
            ("ssse3", info.has_ssse3()),
            ("sse4.1", info.has_sse41()),
            ("sse4.2", info.has_sse42()),
            ("popcnt", info.has_popcnt()),
            ("aes", info.has_aesni()),
            ("xsave", info.has_xsave()),
            ("avx", info.has_avx()),
            ("rdrand", info.has_rdrand()),
            ("hypervisor", info.has_hypervisor()),
        ]);
    }
    if let Some(info) = cpuid.get_extended_feature_info() {
        features.extend([
            ("fsgsbase", info.has_fsgsbase()),
            ("avx2", info.has_avx2()),
            ("smep", info.has_smep()),
            ("smap", info.has_smap()),
        ]);
    }
    if let Some(info) = cpuid.get_extended_processor_and_feature_identifiers() {
        features.extend([
            ("nx", info.has_execute_disable()),
            ("1g-pages", info.has_1gib_pages()),
            ("rdtscp", info.has_rdtscp()),
            ("syscall", info.has_syscall_sysret()),
        ]);
    }
    if let Some(info) = cpuid.get_advanced_power_mgmt_info() {
        features.push(("invariant-tsc", info.has_invariant_tsc()));
    }
    features
}

fn cpu_lines(report: &mut String) {
    let cpuid = Cpuid::new();
    let vendor = cpuid.get_vendor_info();
    let brand = cpuid.get_processor_brand_string();
    let vendor = vendor.as_ref().map_or("unknown-vendor", |vendor| vendor.as_str());
    let brand = brand.as_ref().map_or("(no brand string)", |brand| brand.as_str().trim());
    match cpuid.get_feature_info() {
        Some(info) => {
            _ = writeln!(
                report,
                "cpu: {vendor} {brand} family {:#x} model {:#x} stepping {}",
                info.family_id(),
                info.model_id(),
                info.stepping_id()
            )
        }
        None => _ = writeln!(report, "cpu: {vendor} {brand} (no family/model information)"),
    }
    report.push_str("cpu features:");
    for (name, _) in cpu_features(&cpuid).into_iter().filter(|(_, present)| *present) {
        report.push(' ');
        report.push_str(name);
    }
    report.push('\n');
}

fn cpus_line(report: &mut String) {
    let ids: Vec<u32> = cpu::online().filter_map(cpu::apic_id).map(|id| id.0).collect();
    let _ = write!(report, "cpus: {} started (APIC ids", ids.len());
    for id in &ids {
        let _ = write!(report, " {id}");
    }
    let supported = Cpuid::new().get_feature_info().is_some_and(|info| info.has_x2apic());
    let _ = writeln!(report, "), x2APIC {}, APIC mode {}", if supported { "yes" } else { "no" }, apic::mode().name());
}

fn memory_line(report: &mut String) {
    let Some(info) = boot_info::global() else {
        report.push_str("memory: unknown (no boot information)\n");
        return;
    };
    let areas = info.memory_areas();
    let usable: usize = areas
        .iter()
        .filter(|area| area.kind == MemoryAreaKind::Available)
        .map(|area| area.region.size_in_bytes())
        .sum();
    // RAM of any kind (free, ACPI, NVS, defective), not reserved ranges: those include MMIO windows (QEMU reports
    // 12 GiB reserved at 0xfd_0000_0000 on AMD CPU models) that would swamp the total.
    let ram_kinds = |kind| {
        matches!(
            kind,
            MemoryAreaKind::Available
                | MemoryAreaKind::AcpiReclaimable
                | MemoryAreaKind::Nvs
                | MemoryAreaKind::Defective
        )
    };
    let total: usize = areas.iter().filter(|area| ram_kinds(area.kind)).map(|area| area.region.size_in_bytes()).sum();
    let _ = writeln!(
        report,
        "memory: {} MiB usable of {} MiB in {} regions ({} map)",
        usable >> 20,
        total >> 20,
        areas.len(),
        info.memory_map_source().name()
    );
}

/// `machine --memory-map`: every memory area, as converted from the firmware's map.
fn memory_map_lines(report: &mut String) {
    let Some(info) = boot_info::global() else {
        report.push_str("memory map: unknown (no boot information)\n");
        return;
    };
    let _ = writeln!(report, "memory map ({} map tag):", info.memory_map_source().name());
    for area in info.memory_areas() {
        let (start, end) = (area.region.start.value(), area.region.end.value());
        let _ = writeln!(report, "  {start:#014x}-{end:#014x} {:>8} KiB {:?}", (end - start) >> 10, area.kind);
    }
}

fn acpi_line(report: &mut String) {
    match acpi_tables::tables() {
        Ok((rsdp, tables)) => {
            let _ = write!(
                report,
                "acpi: RSDP v{} at {:#x} ({}), tables:",
                rsdp.revision,
                rsdp.address.value(),
                rsdp.source.description()
            );
            for table in tables {
                report.push(' ');
                report.extend(
                    table.signature.iter().map(|&byte| if byte.is_ascii_graphic() { byte as char } else { '?' }),
                );
                if !table.checksum_valid {
                    report.push_str("(bad checksum)");
                }
            }
            report.push('\n');
        }
        Err(error) => _ = writeln!(report, "acpi: none ({error:?})"),
    }
}

fn pci_lines(report: &mut String) {
    let functions = pci::scan();
    let _ = writeln!(report, "pci: {} devices", functions.len());
    for function in functions {
        let _ = writeln!(report, "  {function}");
    }
}

/// The framebuffer line, from the bootloader's framebuffer tag (`boot_info::framebuffer()`).
fn framebuffer_line(report: &mut String) {
    match boot_info::framebuffer() {
        Some(mode) if mode.kind != FramebufferKind::EgaText => {
            let kind = match mode.kind {
                FramebufferKind::Rgb { .. } => String::from("direct RGB"),
                FramebufferKind::Indexed { colors } => alloc::format!("indexed, {colors} colours"),
                FramebufferKind::EgaText => String::from("EGA text"),
                FramebufferKind::Unknown(kind) => alloc::format!("unknown type {kind}"),
            };
            _ = writeln!(
                report,
                "framebuffer: {}x{}x{} at {:#x} ({kind}, pitch {} bytes)",
                mode.width,
                mode.height,
                mode.bits_per_pixel,
                mode.address.value(),
                mode.pitch
            )
        }
        Some(_) => report.push_str("framebuffer: none (VGA text)\n"),
        None if boot_info::global().is_some_and(|info| info.firmware() == boot_info::Firmware::Uefi) => {
            report.push_str("framebuffer: none (no framebuffer tag from the bootloader)\n")
        }
        None => report.push_str("framebuffer: none (VGA text)\n"),
    }
}

fn consoles_line(report: &mut String) {
    let screen = match screen_console::mode() {
        Some(screen_console::ScreenMode::Framebuffer(_)) => "framebuffer",
        Some(screen_console::ScreenMode::VgaText) => "VGA text",
        None => "none",
    };
    let keyboard = if ps2_keyboard::scancode_set().is_some() { "PS/2" } else { "none" };
    let _ = writeln!(report, "consoles: serial COM1, screen {screen}, keyboard {keyboard}");
}
