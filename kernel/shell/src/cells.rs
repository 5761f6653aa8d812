//! What the shell does with cells: list them, list object files, swap them, and run applications.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use cell_namespace::{CellKind, CellNamespace, SwapOptions};

fn namespaces() -> Option<[&'static Arc<CellNamespace>; 2]> {
    Some([system_namespaces::kernel_namespace()?, system_namespaces::application_namespace()?])
}

/// Names of the applications in the application namespace's directory, sorted.
pub fn names() -> Vec<String> {
    let Some(application) = system_namespaces::application_namespace() else { return Vec::new() };
    let mut names: Vec<String> = application.objects().into_iter().filter_map(|object| object.cell).collect();
    names.sort();
    names
}

/// Names of every cell in either namespace's directory and of every loaded cell, sorted, without duplicates.
pub fn cell_names() -> Vec<String> {
    let Some(namespaces) = namespaces() else { return Vec::new() };
    let mut names: Vec<String> = Vec::new();
    for namespace in namespaces {
        names.extend(namespace.objects().into_iter().filter_map(|object| object.cell));
        names.extend(namespace.cells().into_iter().map(|cell| cell.name));
    }
    names.sort();
    names.dedup();
    names
}

/// File names of every object in either namespace's directory (`k-serial.o`, `a-hello.o`...), sorted.
pub fn file_names() -> Vec<String> {
    let Some(namespaces) = namespaces() else { return Vec::new() };
    let mut names: Vec<String> =
        namespaces.iter().flat_map(|namespace| namespace.objects()).map(|object| object.file_name).collect();
    names.sort();
    names.dedup();
    names
}

/// Prints one table of the loaded cells of both namespaces.
pub fn print_cells() {
    let Some(namespaces) = namespaces() else {
        crate::console::write_str("ns: the system namespaces are not installed\n");
        return;
    };
    let rows: Vec<(&str, cell_namespace::CellInfo)> = namespaces
        .iter()
        .flat_map(|namespace| namespace.cells().into_iter().map(|cell| (namespace.name(), cell)))
        .collect();
    // Columns as wide as their longest entry (or heading), so long cell names do not shift the table.
    let namespace_width = rows.iter().map(|(namespace, _)| namespace.len()).chain([9]).max().unwrap_or(9);
    let cell_width = rows.iter().map(|(_, cell)| cell.name.len()).chain([4]).max().unwrap_or(4);
    crate::console::write_fmt(format_args!(
        "{:<namespace_width$} {:<cell_width$} {:<6} {:>8} {:>8} {:>8} {:>7} {:>5} {:>10}\n",
        "NAMESPACE", "CELL", "KIND", "TEXT", "RODATA", "DATA", "RELOCS", "DEPS", "DEPENDENTS"
    ));
    let count = rows.len();
    for (namespace, cell) in rows {
        let kind = match cell.kind {
            CellKind::Application => "app",
            _ if cell.object_file.is_none() => "base",
            _ => "kernel",
        };
        crate::console::write_fmt(format_args!(
            "{:<namespace_width$} {:<cell_width$} {:<6} {:>8} {:>8} {:>8} {:>7} {:>5} {:>10}\n",
            namespace,
            cell.name,
            kind,
            cell.sizes.text,
            cell.sizes.read_only_data,
            cell.sizes.data,
            cell.relocation_count,
            cell.dependency_count,
            cell.dependent_count
        ));
    }
    crate::console::write_fmt(format_args!("{count} cells loaded\n"));
}

/// Prints the object files of both namespaces' directories.
pub fn print_files() {
    let Some(namespaces) = namespaces() else {
        crate::console::write_str("ls: the system namespaces are not installed\n");
        return;
    };
    for namespace in namespaces {
        crate::console::write_fmt(format_args!("{} namespace:\n", namespace.name()));
        for object in namespace.objects() {
            let loaded = match &object.cell {
                Some(cell) if namespace.cell(cell).is_some() => "loaded",
                _ => "",
            };
            crate::console::write_fmt(format_args!(
                "  {:<28} {:>8} bytes  {}\n",
                object.file_name, object.size_in_bytes, loaded
            ));
        }
    }
}

/// The namespace one swap of `pairs` runs in: the application namespace if every old cell is loaded there and none
/// in the kernel namespace (an application and the application-kind cells it uses), otherwise the kernel namespace
/// (whose swap reports any old cell that is not loaded). One transaction works in one namespace, so a swap whose old
/// cells are loaded in both is refused with `Err` naming one of each.
fn swap_namespace(pairs: &[(&str, &str)]) -> Result<&'static Arc<CellNamespace>, String> {
    let [kernel, application] = namespaces().ok_or_else(|| String::from("the system namespaces are not installed"))?;
    let in_kernel = pairs.iter().map(|(old, _)| *old).find(|old| kernel.cell(old).is_some());
    // `cell` also looks in the parent namespace: an application-namespace cell is one the kernel does not have.
    let in_application =
        pairs.iter().map(|(old, _)| *old).find(|old| kernel.cell(old).is_none() && application.cell(old).is_some());
    match (in_kernel, in_application) {
        (Some(kernel_cell), Some(application_cell)) => Err(format!(
            "{kernel_cell} is loaded in the kernel namespace and {application_cell} in the application namespace; \
             one swap works in one namespace"
        )),
        (None, Some(_)) => Ok(application),
        _ => Ok(kernel),
    }
}

/// Swaps each `(old, new)` pair in one transaction, in the namespace that holds the old cells (see
/// [`swap_namespace`]), through the kernel's swap gate (`live_update`: state carried over unless `options.fresh`,
/// the commit run with every other CPU stopped, old cells still in use retired rather than freed) and prints the
/// time of each phase.
pub fn swap(pairs: &[(&str, &str)], options: &SwapOptions) {
    let namespace = match swap_namespace(pairs) {
        Ok(namespace) => namespace,
        Err(reason) => {
            crate::console::write_fmt(format_args!("swap: error: {reason}; nothing was changed\n"));
            return;
        }
    };
    match live_update::swap_in(namespace, pairs, options) {
        Ok(report) => {
            for (phase, ns, what) in report.phases() {
                crate::console::write_fmt(format_args!(
                    "swap: {phase:<16} {:>6}.{} us ({what})\n",
                    ns / 1000,
                    (ns % 1000) / 100
                ));
            }
            crate::console::write_fmt(format_args!("swap: done in {} us total\n", report.total_ns / 1000));
        }
        Err(error) => crate::console::write_fmt(format_args!("swap: error: {error}; nothing was changed\n")),
    }
}

/// `swap --all`: swaps every loaded kernel cell for a fresh copy of itself, one at a time, printing one line per
/// cell and a summary with each refusal's reason.
pub fn swap_everything() {
    let report = live_update::swap_everything(&mut |cell, result| match result {
        Ok(report) => crate::console::write_fmt(format_args!(
            "swap --all: {cell}: swapped in {} us ({} retired)\n",
            report.total_ns / 1000,
            report.cells_retired
        )),
        Err(error) => crate::console::write_fmt(format_args!("swap --all: {cell}: refused: {error}\n")),
    });
    crate::console::write_fmt(format_args!(
        "swap --all: {} of {} cells swapped, {} refused, {} retired\n",
        report.swapped.len(),
        report.loaded,
        report.refused.len(),
        report.retired
    ));
    for refusal in &report.refused {
        crate::console::write_fmt(format_args!("swap --all: refused {}: {}\n", refusal.cell, refusal.reason));
    }
}

/// `ns -a`: the retired cells (swapped out, still pinned) and what pins each, after a fresh re-check.
pub fn print_retired() {
    let report = live_update::reclaim();
    if !report.freed.is_empty() {
        crate::console::write_fmt(format_args!("freed now: {}\n", report.freed.join(", ")));
    }
    let retired = live_update::retired();
    crate::console::write_fmt(format_args!("{} retired cells\n", retired.len()));
    for info in retired {
        let bytes = info.sizes.text + info.sizes.read_only_data + info.sizes.data;
        crate::console::write_fmt(format_args!("retired {} ({bytes} bytes), {} pins:\n", info.name, info.pins.len()));
        for pin in &info.pins {
            crate::console::write_fmt(format_args!("  {pin}\n"));
        }
    }
}

/// Runs `<crate>::run() -> Result<(), String>` of every kernel cell whose name starts with `prefix` (or only the
/// cells named in `selected`, which may omit the prefix), printing one line per cell. Returns (passed, failed).
pub fn run_cell_entries(prefix: &str, selected: &[String]) -> (usize, usize) {
    let Some(kernel) = system_namespaces::kernel_namespace() else {
        crate::console::write_str("error: the system namespaces are not installed\n");
        return (0, 1);
    };
    let mut names: Vec<String> =
        kernel.objects().into_iter().filter_map(|object| object.cell).filter(|name| name.starts_with(prefix)).collect();
    names.sort();
    if !selected.is_empty() {
        let wanted =
            |name: &String| selected.iter().any(|choice| choice == name || format!("{prefix}{choice}") == *name);
        for choice in selected {
            if !names.iter().any(|name| name == choice || *name == format!("{prefix}{choice}")) {
                crate::console::write_fmt(format_args!("{choice}: no such cell ({prefix}*)\n"));
            }
        }
        names.retain(wanted);
    }
    let (mut passed, mut failed) = (0, 0);
    for name in names {
        let Some(entry) = kernel.manifest_entry(&name) else { continue };
        let path = format!("{}::run", entry.crate_name);
        let result = kernel.find_function(&name, &path).map_err(|error| format!("{error}")).and_then(|address| {
            let run: fn() -> Result<(), String> =
                // SAFETY: test and bench cells export `pub fn run() -> Result<(), String>` by convention (the name
                // prefix selects them); one build, one compiler: the Rust ABI matches; the namespace keeps the cell.
                unsafe { core::mem::transmute::<usize, fn() -> Result<(), String>>(address.value()) };
            crate::console::write_fmt(format_args!("{name}: running\n"));
            let started = tsc::now_ns();
            let result = run();
            crate::console::write_fmt(format_args!(
                "{name}: finished in {} ms\n",
                (tsc::now_ns() - started) / 1_000_000
            ));
            result
        });
        match result {
            Ok(()) => {
                passed += 1;
                crate::console::write_fmt(format_args!("{name}: ok\n"));
            }
            Err(reason) => {
                failed += 1;
                crate::console::write_fmt(format_args!("{name}: FAILED: {reason}\n"));
            }
        }
    }
    (passed, failed)
}
