//! Real ELF fixtures, assembled and linked by binutils (`as`, `ld`: prerequisites of the build anyway):
//! relocation checks, symbol extraction, the base symbol file and object corruption.

use cellbuild::corrupt::{self, CorruptionMode};
use cellbuild::elf;
use cellbuild::symfile::SymbolKind;
use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCE: &str = r#"
    .section .text.cell_entry,"ax",@progbits
    .globl cell_entry
    .type cell_entry,@function
cell_entry:
    call external_function
    movq counter(%rip), %rax
    movq $table, %rbx
    ret
    .size cell_entry, .-cell_entry

    .section .text.local_helper,"ax",@progbits
    .type local_helper,@function
local_helper:
    ret
    .size local_helper, .-local_helper

    .section .rodata.table,"a",@progbits
    .globl table
    .type table,@object
table:
    .quad cell_entry
    .size table, 8

    .section .bss.counter,"aw",@nobits
    .weak counter
    .type counter,@object
counter:
    .zero 8
    .size counter, 8
"#;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cellbuild-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assemble(dir: &Path, name: &str, source: &str) -> PathBuf {
    let source_path = dir.join(format!("{name}.s"));
    let object = dir.join(format!("{name}.o"));
    std::fs::write(&source_path, source).unwrap();
    let status = Command::new("as").arg("--64").arg("-o").arg(&object).arg(&source_path).status().unwrap();
    assert!(status.success(), "as failed");
    object
}

#[test]
fn reads_symbols_and_accepts_kernel_model_relocations() {
    let dir = scratch("symbols");
    let object = std::fs::read(assemble(&dir, "cell", SOURCE)).unwrap();
    let (symbols, forbidden) = elf::read_object(&object).unwrap();
    assert!(forbidden.is_empty(), "{forbidden:?}");
    let defined: Vec<(&str, bool)> = symbols.defined.iter().map(|d| (d.name.as_str(), d.weak)).collect();
    assert_eq!(defined, [("cell_entry", false), ("counter", true), ("table", false)]);
    assert_eq!(symbols.undefined, ["external_function"]);
    assert_eq!(symbols.relocations, 4);
}

#[test]
fn flags_got_relocations() {
    let dir = scratch("got");
    let source = ".text\n.globl f\n.type f,@function\nf:\n movq ext@GOTPCREL(%rip), %rax\n ret\n";
    let object = std::fs::read(assemble(&dir, "got", source)).unwrap();
    let (_, forbidden) = elf::read_object(&object).unwrap();
    assert_eq!(forbidden.len(), 1);
    assert_eq!(forbidden[0].section, ".text");
    assert!(elf::relocation_name(forbidden[0].relocation_type).contains("GOTPCREL"));
}

#[test]
fn base_symbols_of_a_linked_image() {
    let dir = scratch("base");
    let object =
        assemble(&dir, "cell", &format!("{SOURCE}\n.text\n.globl external_function\nexternal_function:\n ret\n"));
    let image = dir.join("image.elf");
    let status = Command::new("ld")
        .args(["-e", "cell_entry", "--no-warn-rwx-segments", "-o"])
        .arg(&image)
        .arg(&object)
        .status()
        .unwrap();
    assert!(status.success());
    let symbols = elf::base_symbols(&std::fs::read(&image).unwrap()).unwrap();
    let find = |name: &str| symbols.iter().find(|s| s.name == name).map(|s| (s.kind, s.size));
    assert_eq!(find("cell_entry").map(|f| f.0), Some(SymbolKind::Text));
    assert_eq!(find("local_helper").map(|f| f.0), Some(SymbolKind::Text), "local functions are kept");
    assert_eq!(find("table"), Some((SymbolKind::ReadOnly, 8)));
    assert_eq!(find("counter"), Some((SymbolKind::Bss, 8)));
    assert_eq!(find("external_function").map(|f| f.0), Some(SymbolKind::Text), "global NOTYPE kept");
    assert!(symbols.windows(2).all(|w| w[0].address <= w[1].address));
}

#[test]
fn corrupted_objects_are_unreadable_or_carry_a_bogus_relocation() {
    let dir = scratch("corrupt");
    let object = std::fs::read(assemble(&dir, "cell", SOURCE)).unwrap();
    let shdr = corrupt::corrupt(&object, CorruptionMode::SectionHeaders).unwrap();
    assert!(elf::read_object(&shdr).is_err());
    let reloc = corrupt::corrupt(&object, CorruptionMode::Relocations).unwrap();
    let (_, forbidden) = elf::read_object(&reloc).unwrap();
    assert!(forbidden.iter().all(|f| f.relocation_type == corrupt::BOGUS_RELOCATION_TYPE));
    assert_eq!(forbidden.iter().map(|f| f.count).sum::<usize>(), 4);
}
