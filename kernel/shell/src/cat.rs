//! `cat FILE`: an object file of a namespace directory, or the cell manifest (`cells.manifest`).
//!
//! Text is printed as it is; a binary object gets a one-line description and a hex dump of its first bytes
//! (never the raw bytes, which would garble the terminal).

use alloc::string::String;

/// The name under which `cat` shows the cell manifest.
const MANIFEST_NAME: &str = "cells.manifest";
/// Bytes of a binary file shown in the hex dump.
const HEX_DUMP_BYTES: usize = 64;
/// Bytes per hex dump row.
const HEX_ROW_BYTES: usize = 16;

/// `cat FILE`.
pub fn cat(words: &[String]) {
    let [_, name] = words else {
        crate::console::write_str("usage: cat FILE (an object file from `ls`, or cells.manifest)\n");
        return;
    };
    let Some(namespaces) =
        system_namespaces::kernel_namespace().zip(system_namespaces::application_namespace()).map(|(k, a)| [k, a])
    else {
        crate::console::write_str("cat: the system namespaces are not installed\n");
        return;
    };
    if name == MANIFEST_NAME {
        // Both namespaces are built from the one boot manifest (nano_core::cells), so the kernel's is all of it.
        for entry in namespaces[0].manifest_entries() {
            crate::console::write_fmt(format_args!(
                "{} {:?} {} crate={} deps=[{}] symbols={}\n",
                entry.name,
                entry.kind,
                entry.object_file,
                entry.crate_name,
                entry.dependencies.join(","),
                entry.symbols.len()
            ));
        }
        return;
    }
    match namespaces.iter().find_map(|namespace| namespace.object_bytes(name)) {
        Some(bytes) => print_file(name, bytes),
        None => crate::console::write_fmt(format_args!("cat: no such file: {name} (see `ls`)\n")),
    }
}

/// Whether `bytes` is UTF-8 text without control characters other than tab, newline and carriage return.
fn is_text(bytes: &[u8]) -> bool {
    core::str::from_utf8(bytes)
        .is_ok_and(|text| text.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r')))
}

/// Prints a text file, or describes a binary one with a hex dump of its start.
fn print_file(name: &str, bytes: &[u8]) {
    if is_text(bytes) {
        crate::console::write_bytes(bytes);
        if !bytes.ends_with(b"\n") {
            crate::console::write_str("\n");
        }
        return;
    }
    let kind = if bytes.starts_with(b"\x7fELF") { "an ELF object" } else { "binary data" };
    crate::console::write_fmt(format_args!(
        "cat: {name} is {kind} ({} bytes), not text; its first bytes:\n",
        bytes.len()
    ));
    for (row, chunk) in bytes[..bytes.len().min(HEX_DUMP_BYTES)].chunks(HEX_ROW_BYTES).enumerate() {
        let mut line = String::new();
        for byte in chunk {
            line.push_str(&alloc::format!("{byte:02x} "));
        }
        let printable: String = chunk.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '.' }).collect();
        crate::console::write_fmt(format_args!("  {:08x}  {line:<48} {printable}\n", row * HEX_ROW_BYTES));
    }
}
