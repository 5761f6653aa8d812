//! `sections [CELL]`: where loaded cells' sections are in memory, for the host-side fault-injection campaign
//! (`qemu_harness faults`), which corrupts words there and places breakpoints on functions.
//!
//! Without an argument: one line per loaded cell of both namespaces and section kind, the kind's sections merged
//! into one range (`section CELL KIND START END`; the loader allocates each kind's sections in one region, so the
//! range holds only that cell's bytes of that kind plus alignment padding). With a cell name: one line per
//! section of that cell (`section CELL KIND START SIZE NAME`, NAME the mangled symbol or ELF section name).
//! Addresses are hexadecimal, sizes decimal bytes. The base image (`nano_core`) has no loaded sections and is
//! not listed.

use alloc::string::String;
use alloc::vec::Vec;

use cell_namespace::LoadedCell;

/// The `sections` builtin.
pub fn sections(words: &[String]) {
    let Some(namespaces) = namespace_cells() else {
        crate::console::write_str("sections: the system namespaces are not installed\n");
        return;
    };
    match words {
        [_] => {
            for cell in &namespaces {
                print_ranges(cell);
            }
        }
        [_, name] => match namespaces.iter().find(|cell| cell.name() == name.as_str()) {
            Some(cell) => print_every_section(cell),
            None => crate::console::write_fmt(format_args!("sections: no loaded cell named {name}\n")),
        },
        _ => crate::console::write_str("usage: sections [CELL]\n"),
    }
}

/// Every loaded cell (not the base image) of the kernel and application namespaces.
fn namespace_cells() -> Option<Vec<alloc::sync::Arc<LoadedCell>>> {
    let kernel = system_namespaces::kernel_namespace()?;
    let application = system_namespaces::application_namespace()?;
    Some(
        [kernel, application]
            .iter()
            .flat_map(|namespace| namespace.loaded_cells())
            .filter(|cell| !cell.is_base_image())
            .collect(),
    )
}

/// One line per section kind: the lowest start and highest end of the cell's sections of that kind.
fn print_ranges(cell: &LoadedCell) {
    // (kind as printed, start, end), in order of first appearance.
    let mut ranges: Vec<(String, usize, usize)> = Vec::new();
    for section in cell.sections().iter().filter(|section| section.size_in_bytes() > 0) {
        let kind = alloc::format!("{:?}", section.kind());
        let start = section.address().value();
        let end = start.saturating_add(section.size_in_bytes());
        match ranges.iter_mut().find(|(known, _, _)| *known == kind) {
            Some((_, low, high)) => {
                *low = (*low).min(start);
                *high = (*high).max(end);
            }
            None => ranges.push((kind, start, end)),
        }
    }
    for (kind, start, end) in ranges {
        crate::console::write_fmt(format_args!("section {} {kind} {start:#x} {end:#x}\n", cell.name()));
    }
}

/// One line per non-empty section of `cell`.
fn print_every_section(cell: &LoadedCell) {
    for section in cell.sections().iter().filter(|section| section.size_in_bytes() > 0) {
        crate::console::write_fmt(format_args!(
            "section {} {:?} {:#x} {} {}\n",
            cell.name(),
            section.kind(),
            section.address().value(),
            section.size_in_bytes(),
            section.name()
        ));
    }
}
