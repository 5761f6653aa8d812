//! Live swapping of real rustc objects: fixture_b -> fixture_b_v2 while fixture_a depends on it.

mod common;

use std::sync::Arc;
use std::time::Instant;

use cell_namespace::{LoadError, NoPins, QuiesceError, SwapError, SwapOptions, hash_free_name};
use common::{function, getter, namespace, snapshot};

fn clock() -> impl Fn() -> u64 {
    let start = Instant::now();
    move || start.elapsed().as_nanos() as u64
}

#[test]
fn swap_changes_behaviour_seen_through_the_dependent() {
    let (namespace, memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let compute = function(&namespace, "fixture_a", "fixture_a::compute");
    let round_trip = function(&namespace, "fixture_a", "fixture_a::round_trip");
    let version = getter(&namespace, "fixture_a", "fixture_a::version_of_b");
    let calls = getter(&namespace, "fixture_a", "fixture_a::calls_of_b");
    let events = getter(&namespace, "fixture_a", "fixture_a::events_of_b");
    assert_eq!((version(), compute(5), calls(), events(), round_trip(10)), (1, 16, 1001, 1, 17));

    let old = Arc::downgrade(&namespace.cell("fixture_b").unwrap());
    let old_transform = namespace
        .cell("fixture_b")
        .unwrap()
        .exports()
        .iter()
        .find(|e| e.name.ends_with("9transform"))
        .unwrap()
        .name
        .clone();
    let report = namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock()).unwrap();

    // The same function pointers into fixture_a now reach version 2 (new code, the old statics' values).
    assert_eq!(version(), 2);
    assert_eq!(compute(5), 5 * 3 + 200 + 1);
    assert_eq!(calls(), 1002, "version 2's .data CALLS carried over from 1001, then one more call");
    assert_eq!(events(), 1 + 2, "version 2's .bss EVENTS carried over, read through a rewritten data relocation");
    assert_eq!(round_trip(10), 3, "version 2 calls back fixture_a and subtracts");

    // Report: every call/data reference from fixture_a into fixture_b was rewritten.
    assert_eq!(report.relocations_rewritten, 7, "{report:?}");
    assert_eq!((report.dependent_sections, report.dependent_cells, report.cells_loaded), (7, 1, 1));
    assert!(
        report.total_ns
            >= report.stage_ns + report.verify_ns + report.state_transfer_ns + report.quiesce_ns + report.cleanup_ns
                - 2
    );

    // The namespace now holds fixture_b_v2 instead of fixture_b, with its symbols and dependency records.
    let names: Vec<String> = namespace.cells().into_iter().map(|cell| cell.name).collect();
    assert_eq!(names, ["fixture_a", "fixture_b_v2", "nano_core"]);
    let v2_transform = namespace
        .cell("fixture_b_v2")
        .unwrap()
        .exports()
        .iter()
        .find(|e| e.name.ends_with("9transform"))
        .unwrap()
        .name
        .clone();
    assert_eq!(
        namespace.lookup_symbol(&old_transform).map(|symbol| symbol.address),
        namespace.lookup_symbol(&v2_transform).map(|symbol| symbol.address),
        "the old name is an alias of the new cell's equivalent"
    );
    let a = namespace.cell("fixture_a").unwrap();
    let dependency_cells: Vec<String> = a.dependency_cells().into_iter().collect();
    assert_eq!(dependency_cells, ["fixture_b_v2", "nano_core"]);
    let v2 = namespace.cell("fixture_b_v2").unwrap();
    assert_eq!(v2.dependent_cells().into_iter().collect::<Vec<_>>(), ["fixture_a"]);
    let a_info = namespace.cells().into_iter().find(|cell| cell.name == "fixture_a").unwrap();
    assert_eq!(a_info.dependent_count, 1, "fixture_b_v2 calls back fixture_a_offset");
    let offset = a.sections().iter().find(|section| section.name() == "fixture_a_offset").unwrap();
    let dependents: Vec<String> = offset
        .dependents()
        .iter()
        .filter_map(|d| d.section.upgrade())
        .filter_map(|s| s.parent_cell())
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(dependents, ["fixture_b_v2"], "the old cell's back-references were removed");

    // Nothing refers to the old cell any more: it and its memory are gone.
    assert!(old.upgrade().is_none(), "old fixture_b is still alive");
    assert_eq!(memory.live_regions(), 5, "fixture_a (text, rodata: no statics) and fixture_b_v2 (text, rodata, data)");

    // And back again.
    namespace.swap(&[("fixture_b_v2", "fixture_b")], &clock()).unwrap();
    assert_eq!((version(), compute(5)), (1, 16));
    assert_eq!(calls(), 1003, "version 1 again, with the state carried back (and one more call)");
}

#[test]
fn swap_to_a_cell_lacking_a_used_symbol_fails_and_changes_nothing() {
    let (namespace, memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let compute = function(&namespace, "fixture_a", "fixture_a::compute");
    let version = getter(&namespace, "fixture_a", "fixture_a::version_of_b");
    assert_eq!(compute(1), 2 + 5 + 1);
    let before = snapshot(&namespace);
    let regions_before = memory.live_regions();

    let error = namespace.swap(&[("fixture_b", "fixture_b_partial")], &clock()).unwrap_err();
    let SwapError::MissingSymbol { old_cell, new_cell, symbol, dependent } = &error else { panic!("{error:?}") };
    assert_eq!((old_cell.as_str(), new_cell.as_str()), ("fixture_b", "fixture_b_partial"));
    assert_eq!(symbol, "fixture_b::version");
    assert_eq!(hash_free_name(dependent), "fixture_a::version_of_b");

    assert_eq!(snapshot(&namespace), before, "a failed swap changed the namespace");
    assert_eq!(memory.live_regions(), regions_before, "the staged cell was freed");
    assert_eq!((version(), compute(1)), (1, 2 + 5 + 1), "the dependent still runs version 1");
    let b = namespace.cell("fixture_b").unwrap();
    assert_eq!(b.dependent_cells().into_iter().collect::<Vec<_>>(), ["fixture_a"]);
}

#[test]
fn swap_rejects_bad_requests_without_changing_anything() {
    let (namespace, _memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let before = snapshot(&namespace);
    let clock = clock();
    assert_eq!(
        namespace.swap(&[("fixture_b_v2", "fixture_b")], &clock),
        Err(SwapError::OldCellNotLoaded { cell: "fixture_b_v2".into() })
    );
    assert_eq!(
        namespace.swap(&[("fixture_b", "no_such_cell")], &clock),
        Err(SwapError::Stage(LoadError::NotInManifest { cell: "no_such_cell".into() }))
    );
    assert_eq!(
        namespace.swap(&[("nano_core", "fixture_b_v2")], &clock),
        Err(SwapError::BaseImage { cell: "nano_core".into() })
    );
    assert_eq!(
        namespace.swap(&[("fixture_b", "fixture_a")], &clock),
        Err(SwapError::NewCellAlreadyLoaded { cell: "fixture_a".into() })
    );
    assert_eq!(snapshot(&namespace), before);
}

#[test]
fn a_cell_can_be_replaced_by_a_fresh_copy_of_itself() {
    let (namespace, _memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let compute = function(&namespace, "fixture_a", "fixture_a::compute");
    let calls = getter(&namespace, "fixture_a", "fixture_a::calls_of_b");
    compute(1);
    compute(1);
    assert_eq!(calls(), 1002);
    let old_address = namespace.cell("fixture_b").unwrap().sections()[0].address();
    // Same name, same mangled symbols: the new copy must bind to itself, not to the old cell.
    let report = namespace.swap(&[("fixture_b", "fixture_b")], &clock()).unwrap();
    assert_eq!(report.relocations_rewritten, 7);
    assert_ne!(namespace.cell("fixture_b").unwrap().sections()[0].address(), old_address);
    assert_eq!(calls(), 1002, "state carried over");
    let fresh = SwapOptions { fresh: true };
    let direct = |commit: &mut dyn FnMut()| -> Result<(), QuiesceError> {
        commit();
        Ok(())
    };
    namespace.swap_quiesced(&[("fixture_b", "fixture_b")], &fresh, &clock(), &direct, &NoPins).unwrap();
    assert_eq!(calls(), 1000, "fresh .data with --fresh");
}
