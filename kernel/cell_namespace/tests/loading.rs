//! Loading real rustc objects into host memory, resolving across cells, and calling them.

mod common;

use std::sync::Arc;

use cell_loader::{RelocationType, SectionKind};
use cell_namespace::{CellKind, LoadError, hash_free_name};
use common::{function, getter, namespace, namespace_with, snapshot};

#[test]
fn loads_two_cells_resolves_across_them_and_calls_through() {
    let (namespace, _memory) = namespace();
    let a = namespace.load_cell("fixture_a").unwrap();
    // fixture_a needs fixture_b, which the manifest names: both are loaded in one transaction.
    let b = namespace.cell("fixture_b").expect("fixture_b was loaded as a dependency");
    assert_eq!(a.kind(), CellKind::Kernel);
    assert_eq!(a.object_file(), Some(common::OBJECT_A));

    let compute = function(&namespace, "fixture_a", "fixture_a::compute");
    // transform(5) = 5 * 2 + TABLE[5 % 4] = 10 + 5; compute adds 1.
    assert_eq!(compute(5), 16);
    assert_eq!(compute(6), 12 + 7 + 1);
    // Statics in .data (starts at 1000) and .bss of fixture_b, read through fixture_a.
    assert_eq!(getter(&namespace, "fixture_a", "fixture_a::calls_of_b")(), 1002);
    assert_eq!(getter(&namespace, "fixture_a", "fixture_a::events_of_b")(), 2);
    assert_eq!(getter(&namespace, "fixture_a", "fixture_a::version_of_b")(), 1);
    // A -> B -> A: fixture_b calls back fixture_a_offset (7).
    assert_eq!(function(&namespace, "fixture_a", "fixture_a::round_trip")(10), 17);

    // The global static is one object: the address fixture_a reads is the one fixture_b exports.
    let events = b.exports().iter().find(|export| hash_free_name(&export.name) == "fixture_b::EVENTS").unwrap();
    let address = namespace.lookup_symbol(&events.name).unwrap().address;
    // SAFETY: EVENTS is a live, 8-byte-aligned AtomicU64 in fixture_b's data region.
    let events_value = unsafe {
        (*(address.value() as *const std::sync::atomic::AtomicU64)).load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(events_value, 2);
}

#[test]
fn loading_is_idempotent() {
    let (namespace, _memory) = namespace();
    let first = namespace.load_cell("fixture_a").unwrap();
    let before = snapshot(&namespace);
    let second = namespace.load_cell("fixture_a").unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(snapshot(&namespace), before);
}

#[test]
fn a_cycle_loads_from_either_end() {
    let (namespace, _memory) = namespace();
    // fixture_b needs fixture_a_offset from fixture_a, which needs fixture_b: a cycle, staged together.
    namespace.load_cell("fixture_b").unwrap();
    assert!(namespace.cell("fixture_a").is_some());
    assert_eq!(function(&namespace, "fixture_a", "fixture_a::round_trip")(1), 8);
    let names: Vec<String> = namespace.cells().into_iter().map(|cell| cell.name).collect();
    assert_eq!(names, ["fixture_a", "fixture_b", "nano_core"]);
}

#[test]
fn records_cross_cell_dependencies_both_ways() {
    let (namespace, _memory) = namespace();
    let a = namespace.load_cell("fixture_a").unwrap();
    let compute = a.sections().iter().find(|section| hash_free_name(section.name()) == "fixture_a::compute").unwrap();
    let dependencies = compute.dependencies();
    let transform = dependencies
        .iter()
        .find(|dependency| hash_free_name(dependency.section.name()) == "fixture_b::transform")
        .expect("compute depends on fixture_b::transform");
    assert_eq!(transform.relocation.relocation_type, RelocationType::Plt32);
    assert_eq!(transform.section.parent_cell().unwrap().name(), "fixture_b");
    // The source holds a weak back-reference to the target.
    let dependents = transform.section.dependents();
    assert!(dependents.iter().any(|dependent| Arc::ptr_eq(&dependent.section.upgrade().unwrap(), compute)));
    // Base-image sections get dependents too (the panic_cannot_unwind trap).
    let nano_core = namespace.cell("nano_core").unwrap();
    assert!(nano_core.sections().iter().any(|section| !section.dependents().is_empty()));

    let info = namespace.cells();
    let a_info = info.iter().find(|cell| cell.name == "fixture_a").unwrap();
    assert_eq!((a_info.dependency_count, a_info.dependent_count), (2, 1), "a uses b and nano_core; b uses a");
    assert!(a_info.relocation_count >= 10);
    assert!(a_info.sizes.text > 0 && a_info.sizes.read_only_data > 0);
    let b_info = info.iter().find(|cell| cell.name == "fixture_b").unwrap();
    assert!(b_info.sizes.data >= 24, "CALLS, TOTAL and EVENTS");
}

#[test]
fn keeps_unwind_sections_and_applies_w_xor_x() {
    let (namespace, _memory) = namespace();
    let a = namespace.load_cell("fixture_a").unwrap();
    assert_eq!(a.eh_frames().count(), 1);
    // One LSDA per extern "C" function that calls another cell (compute, round_trip, version_of_b, calls_of_b,
    // pointer_calls_of_b, remember_name_in_b).
    assert_eq!(a.gcc_except_tables().count(), 6);
    let b = namespace.cell("fixture_b").unwrap();

    // Check the final permissions of each region in /proc/self/maps.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let permissions = |address: usize| -> String {
        maps.lines()
            .find_map(|line| {
                let (range, rest) = line.split_once(' ')?;
                let (start, end) = range.split_once('-')?;
                let (start, end) = (usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?);
                (start..end).contains(&address).then(|| rest[..4].to_string())
            })
            .unwrap_or_default()
    };
    for section in a.sections().iter().chain(b.sections()) {
        let expected = match section.kind() {
            SectionKind::Text => "r-xp",
            SectionKind::Data | SectionKind::Bss => "rw-p",
            _ => "r--p",
        };
        if section.size_in_bytes() > 0 {
            assert_eq!(permissions(section.address().value()), expected, "{}", section.name());
        }
    }
}

#[test]
fn queries_list_objects_and_find_symbols() {
    let (namespace, _memory) = namespace();
    let objects = namespace.objects();
    assert_eq!(objects.len(), 11);
    assert!(objects.iter().all(|object| object.size_in_bytes > 0 && object.cell.is_some()));
    assert_eq!(namespace.lookup_symbol("fixture_a_offset").map(|_| ()), None, "not loaded yet");
    namespace.load_cell("fixture_a").unwrap();
    let offset = namespace.lookup_symbol("fixture_a_offset").expect("non-Rust names are exported too");
    assert_eq!(offset.section.name(), "fixture_a_offset");
    assert_eq!(offset.address, offset.section.address());
    assert_eq!(getter(&namespace, "fixture_a", "fixture_a_offset")(), 7);
    let missing = namespace.find_function("fixture_a", "fixture_a::nothing").unwrap_err();
    assert!(matches!(missing, cell_namespace::FindFunctionError::NotFound { .. }));
    assert_eq!(
        namespace.load_cell("no_such_cell").unwrap_err(),
        LoadError::NotInManifest { cell: "no_such_cell".into() }
    );
}

#[test]
fn an_undefined_symbol_fails_and_changes_nothing() {
    // Without the base image, panic_cannot_unwind and rust_eh_personality are defined nowhere.
    let (namespace, memory) = namespace_with(common::fixtures().a, false);
    let before = snapshot(&namespace);
    let error = namespace.load_cell("fixture_a").unwrap_err();
    let LoadError::UndefinedSymbol { cell, section, symbol } = &error else { panic!("unexpected {error:?}") };
    assert_eq!(cell, "fixture_a");
    assert!(section.starts_with(".text.") || section == ".eh_frame", "{section}");
    assert!(symbol.contains("panic_cannot_unwind") || symbol == "rust_eh_personality", "{symbol}");
    assert_eq!(snapshot(&namespace), before);
    assert_eq!(memory.live_regions(), 0, "staged regions were freed");
}

fn monotonic_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}

#[test]
fn records_load_time_when_a_clock_is_given() {
    let (namespace, _memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    assert_eq!(namespace.cell("fixture_a").unwrap().load_duration_ns(), None);

    let (namespace, _memory) = common::namespace();
    namespace.set_clock(monotonic_ns);
    let before = monotonic_ns();
    let a = namespace.load_cell("fixture_a").unwrap();
    let whole = monotonic_ns() - before;
    let a_ns = a.load_duration_ns().expect("timed");
    let b_ns = namespace.cell("fixture_b").unwrap().load_duration_ns().expect("timed");
    assert!(a_ns > 0 && b_ns > 0);
    // Per cell: the two staging intervals are disjoint parts of the one transaction (formerly each cell repeated
    // the whole transaction's time, so the sum exceeded it).
    assert!(a_ns + b_ns <= whole, "{a_ns} + {b_ns} > {whole}");
}

#[test]
fn an_application_namespace_falls_back_to_and_loads_into_its_parent() {
    let (kernel, _memory) = namespace();
    let kernel = Arc::new(kernel);
    let memory = Arc::new(common::HostMemory::default());
    let application = cell_namespace::CellNamespace::new(
        "applications",
        memory.clone(),
        cell_namespace::ObjectDirectory::new(),
        cell_namespace::Manifest::new(),
        Some(kernel.clone()),
    );
    // The kernel cells' objects are only in the kernel directory: they are loaded into the kernel namespace.
    let round_trip = function(&application, "fixture_a", "fixture_a::round_trip");
    assert_eq!(round_trip(1), 8);
    assert!(application.cells().is_empty());
    assert!(kernel.cells().iter().any(|cell| cell.name == "fixture_a"));
    assert_eq!(memory.live_regions(), 0, "kernel cells use the kernel namespace's memory");
    // Lookups fall back to the parent.
    assert_eq!(
        application.lookup_symbol("fixture_a_offset").unwrap().address,
        kernel.lookup_symbol("fixture_a_offset").unwrap().address
    );
    assert!(Arc::ptr_eq(&application.cell("fixture_b").unwrap(), &kernel.cell("fixture_b").unwrap()));
}

#[test]
fn a_kernel_cell_never_binds_to_an_application_cell() {
    // fixture_a is an application object here; the fixture_b it needs is a kernel object that calls back
    // fixture_a_offset, which a kernel cell must not take from an application: the load fails, nothing changes.
    let fixtures = common::fixtures();
    let mut kernel_directory = cell_namespace::ObjectDirectory::new();
    kernel_directory.insert(common::OBJECT_B, fixtures.b);
    let full = cell_namespace::Manifest::parse(&common::manifest_text()).unwrap();
    let only = |name: &str| {
        let entry = full.cell(name).unwrap();
        let mut text = format!("cell {} {} {} {}\n", entry.name, entry.kind, entry.object_file, entry.crate_name);
        entry.symbols.iter().for_each(|symbol| text.push_str(&format!("sym {symbol}\n")));
        cell_namespace::Manifest::parse(&text).unwrap()
    };
    let kernel_memory = Arc::new(common::HostMemory::default());
    let kernel = Arc::new(cell_namespace::CellNamespace::new(
        "kernel",
        kernel_memory.clone(),
        kernel_directory,
        only("fixture_b"),
        None,
    ));
    let symbols = cell_namespace::parse_base_symbols(&common::base_symbol_file()).unwrap();
    kernel.add_base_image("nano_core", &symbols).unwrap();
    let mut application_directory = cell_namespace::ObjectDirectory::new();
    application_directory.insert(common::OBJECT_A, fixtures.a);
    let application = cell_namespace::CellNamespace::new(
        "applications",
        kernel_memory.clone(),
        application_directory,
        only("fixture_a"),
        Some(kernel.clone()),
    );

    let (kernel_before, application_before) = (snapshot(&kernel), snapshot(&application));
    let error = application.load_cell("fixture_a").unwrap_err();
    assert!(
        matches!(&error, LoadError::UndefinedSymbol { cell, symbol, .. } if cell == "fixture_b" && symbol == "fixture_a_offset"),
        "{error:?}"
    );
    assert_eq!((snapshot(&kernel), snapshot(&application)), (kernel_before, application_before));
    assert_eq!(kernel_memory.live_regions(), 0);
}
