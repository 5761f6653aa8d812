//! The boot ISO: `grub.cfg` from the template, the staging tree, and `grub-mkrescue`.
//!
//! Tree (`build/iso`):
//! ```text
//! boot/nano_core.elf        base image without .debug* sections
//! boot/grub/grub.cfg        generated from /grub.cfg
//! modules/cells.archive     the one GRUB module2: every cell object, cells.manifest and nano_core.syms
//!                           packed by [`pack`] (layout: the `boot_archive` crate)
//! ```

use crate::error::{Context, Error, Result};
use crate::tools;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Placeholder for the kernel command line in the template.
pub const CMDLINE_PLACEHOLDER: &str = "@CMDLINE@";
/// Placeholder for the module lines; the whole line is replaced, keeping its indentation.
pub const MODULES_PLACEHOLDER: &str = "@MODULES@";

/// GRUB modules copied into the image (with their dependencies): enough for Multiboot2 from the ISO, on a CD or
/// written raw to a USB stick, on a serial console, under BIOS and UEFI. `all_video` brings the drivers a framebuffer
/// handover needs (`efi_gop`/`efi_uga` under UEFI, `vbe` under BIOS; `grub.cfg` loads it under UEFI only), `test` grub.cfg's
/// firmware check.
pub const GRUB_INSTALL_MODULES: &str = "multiboot2 normal serial terminal iso9660 part_msdos part_gpt all_video test";

/// GRUB modules built into the core images. grub-mkrescue's EFI core image runs `insmod` for every partition map
/// GRUB has (its `partmap.lst`) from the EFI system partition, where no module lies, so each missing one prints
/// `error: file .../part_X.mod not found` on the screen before the menu; preloading them makes those `insmod`s
/// no-ops (about 20 KiB per core image). `part_gpt`, `part_msdos` and `part_apple` are preloaded by grub-mkrescue.
pub const GRUB_PRELOAD_MODULES: &str =
    "part_acorn part_amiga part_bsd part_dfly part_dvh part_plan part_sun part_sunpc";

/// Fills in the template: `@CMDLINE@` with `cmdline`, and each line holding `@MODULES@` with one
/// `module2 /modules/<file> <file>` line per module (same indentation as the placeholder line).
///
/// # Errors
/// A placeholder is missing, or a name or the command line contains a character GRUB would misread.
pub fn render_grub_cfg(template: &str, cmdline: &str, modules: &[String]) -> Result<String> {
    for placeholder in [CMDLINE_PLACEHOLDER, MODULES_PLACEHOLDER] {
        if !template.contains(placeholder) {
            return Err(Error(format!("grub.cfg template lacks the {placeholder} placeholder")));
        }
    }
    let unsafe_char = |c: char| c.is_control() || matches!(c, '"' | '\'' | '\\' | ';' | '$' | '{' | '}');
    if cmdline.chars().any(unsafe_char) {
        return Err(Error(format!(
            "kernel command line {cmdline:?} contains quotes, `;`, `$`, braces or control characters"
        )));
    }
    if let Some(bad) =
        modules.iter().find(|m| m.is_empty() || m.chars().any(|c| unsafe_char(c) || c.is_whitespace() || c == '/'))
    {
        return Err(Error(format!("module file name {bad:?} is not a plain file name")));
    }
    let mut out = String::with_capacity(template.len() + modules.len() * 64);
    for line in template.lines() {
        if line.contains(MODULES_PLACEHOLDER) {
            let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
            for module in modules {
                out.push_str(&format!("{indent}module2 /modules/{module} {module}\n"));
            }
        } else {
            out.push_str(line.replace(CMDLINE_PLACEHOLDER, cmdline).trim_end());
            out.push('\n');
        }
    }
    Ok(out)
}

/// One file to put in `/modules`.
#[derive(Debug, Clone)]
pub struct ModuleFile {
    /// Name inside the ISO (and the module's GRUB command line).
    pub name: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// Name of the one boot module that holds every boot file (see the `boot_archive` crate).
pub const ARCHIVE_MODULE: &str = "cells.archive";

/// Packs `files` (cell objects, `cells.manifest`, `nano_core.syms`) into the one boot module [`ARCHIVE_MODULE`]:
/// GRUB then reads one file instead of one per cell.
///
/// # Errors
/// A name the archive cannot hold (empty, too long, repeated) or too many files.
pub fn pack(files: &[ModuleFile]) -> Result<ModuleFile> {
    let entries: Vec<(&str, &[u8])> = files.iter().map(|file| (file.name.as_str(), file.bytes.as_slice())).collect();
    let bytes = boot_archive::write(&entries).map_err(|error| Error(format!("{ARCHIVE_MODULE}: {error}")))?;
    Ok(ModuleFile { name: ARCHIVE_MODULE.into(), bytes })
}

/// Stages `staging` (emptied first) and runs `grub-mkrescue` to produce `iso`.
///
/// # Errors
/// File system errors, a bad template, or `grub-mkrescue` failing.
pub fn assemble(
    staging: &Path,
    iso: &Path,
    kernel_elf_stripped: &Path,
    template: &str,
    cmdline: &str,
    modules: &[ModuleFile],
) -> Result<()> {
    if staging.exists() {
        std::fs::remove_dir_all(staging).context(staging.display())?;
    }
    let grub_dir = staging.join("boot/grub");
    let module_dir = staging.join("modules");
    for dir in [&grub_dir, &module_dir] {
        std::fs::create_dir_all(dir).context(dir.display())?;
    }
    std::fs::copy(kernel_elf_stripped, staging.join("boot/nano_core.elf")).context(kernel_elf_stripped.display())?;
    let names: Vec<String> = modules.iter().map(|m| m.name.clone()).collect();
    let config = render_grub_cfg(template, cmdline, &names)?;
    std::fs::write(grub_dir.join("grub.cfg"), config).context("grub.cfg")?;
    for module in modules {
        let path: PathBuf = module_dir.join(&module.name);
        std::fs::write(&path, &module.bytes).context(path.display())?;
    }
    tools::run(
        Command::new("grub-mkrescue")
            .arg("-o")
            .arg(iso)
            .arg(staging)
            .arg(format!("--install-modules={GRUB_INSTALL_MODULES}"))
            .arg(format!("--modules={GRUB_PRELOAD_MODULES}"))
            // No fonts, translations or themes (serial and text consoles only); GRUB's own files xz-compressed
            // (GRUB decompresses them itself; 0.5 MiB smaller).
            .args(["--fonts=", "--locales=", "--themes=", "--compress=xz"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "set timeout=0\nmenuentry \"Theseus\" {\n    multiboot2 /boot/nano_core.elf @CMDLINE@\n    @MODULES@\n    boot\n}\n";

    #[test]
    fn renders_module_lines_with_indentation() {
        let modules = vec!["cells.manifest".to_string(), "k-captain.o".to_string()];
        let config = render_grub_cfg(TEMPLATE, "log=debug", &modules).unwrap();
        assert_eq!(
            config,
            "set timeout=0\nmenuentry \"Theseus\" {\n    multiboot2 /boot/nano_core.elf log=debug\n    module2 /modules/cells.manifest cells.manifest\n    module2 /modules/k-captain.o k-captain.o\n    boot\n}\n"
        );
    }

    #[test]
    fn empty_cmdline_leaves_no_trailing_space() {
        let config = render_grub_cfg(TEMPLATE, "", &[]).unwrap();
        assert!(config.contains("multiboot2 /boot/nano_core.elf\n"));
        assert!(!config.contains("module2"));
    }

    /// The project's template loads the video drivers only under UEFI: under BIOS the kernel stays in EGA text mode
    /// and `insmod all_video` only costs boot time (VBE probing under TCG).
    #[test]
    fn project_template_loads_video_drivers_only_under_uefi() {
        let template = include_str!("../../../grub.cfg");
        let insmods: Vec<&str> = template.lines().filter(|l| l.contains("insmod all_video")).collect();
        assert_eq!(insmods, ["if [ \"$grub_platform\" = \"efi\" ]; then insmod all_video; fi"]);
        render_grub_cfg(template, "", &["k-captain.o".to_string()]).unwrap();
    }

    #[test]
    fn pack_makes_one_archive_module_that_parses_back() {
        let files = vec![
            ModuleFile { name: "cells.manifest".into(), bytes: b"manifest".to_vec() },
            ModuleFile { name: "k-captain.o".into(), bytes: vec![0x7f, b'E', b'L', b'F', 1, 2, 3] },
        ];
        let module = pack(&files).unwrap();
        assert_eq!(module.name, ARCHIVE_MODULE);
        let archive = boot_archive::Archive::parse(&module.bytes).unwrap();
        let entries: Vec<(&str, &[u8])> = archive.entries().map(|e| (e.name, e.bytes)).collect();
        let expected: Vec<(&str, &[u8])> = files.iter().map(|f| (f.name.as_str(), f.bytes.as_slice())).collect();
        assert_eq!(entries, expected);
        let duplicate = vec![files[0].clone(), files[0].clone()];
        assert!(pack(&duplicate).is_err());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(render_grub_cfg("no placeholders", "", &[]).is_err());
        assert!(render_grub_cfg(TEMPLATE, "a;b", &[]).is_err());
        assert!(render_grub_cfg(TEMPLATE, "", &["a b.o".to_string()]).is_err());
        assert!(render_grub_cfg(TEMPLATE, "", &["../x.o".to_string()]).is_err());
    }

    #[test]
    fn project_template_renders() {
        let template = include_str!("../../../grub.cfg");
        let config = render_grub_cfg(template, "", &["k-captain.o".to_string()]).unwrap();
        for expected in [
            "set timeout=0",
            "serial --unit=0 --speed=115200",
            "terminal_input serial console",
            "terminal_output serial console",
            "multiboot2 /boot/nano_core.elf",
            "module2 /modules/k-captain.o k-captain.o",
            "boot",
        ] {
            assert!(config.contains(expected), "missing {expected:?} in\n{config}");
        }
    }
}
