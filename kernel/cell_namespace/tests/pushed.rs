//! Objects pushed into a running namespace: derived manifest entries, version names, rejections, and a swap to
//! the pushed version.

mod common;

use cell_loader::ParseError;
use cell_namespace::PushedObjectError;
use common::{exports, fixtures, function, leak_aligned, namespace};

fn listing(namespace: &cell_namespace::CellNamespace) -> Vec<(String, usize, Option<String>)> {
    namespace.objects().into_iter().map(|object| (object.file_name, object.size_in_bytes, object.cell)).collect()
}

#[test]
fn a_pushed_version_gets_a_derived_entry_and_can_be_swapped_in() {
    let (namespace, _memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let b_v2 = leak_aligned(fixtures().b_v2);
    let entry = namespace.add_pushed_object("fixture_b", "fixture_b", b_v2).unwrap();
    assert_eq!(entry.name, "fixture_b@2");
    assert_eq!(entry.object_file, "k-fixture_b@2.o");
    assert_eq!(entry.crate_name, "fixture_b");
    let mut expected_symbols = exports(fixtures().b_v2);
    expected_symbols.sort();
    assert_eq!(entry.symbols, expected_symbols);
    assert_eq!(entry.dependencies, ["fixture_a"], "fixture_b calls back fixture_a_offset");
    assert_eq!(namespace.manifest_entry("fixture_b@2"), Some(entry));
    // The next push of the same cell takes the next version number.
    let again = namespace.add_pushed_object("fixture_b", "fixture_b", leak_aligned(fixtures().b)).unwrap();
    assert_eq!(again.name, "fixture_b@3");
    // The pushed version replaces the running one through the ordinary swap.
    let compute = function(&namespace, "fixture_a", "fixture_a::compute");
    let before = compute(5);
    namespace.swap(&[("fixture_b", "fixture_b@2")], &|| 0).unwrap();
    assert!(namespace.cell("fixture_b@2").is_some());
    assert_ne!(compute(5), before, "fixture_b_v2 computes differently");
}

#[test]
fn a_new_cell_keeps_its_own_name() {
    let (namespace, _memory) = namespace();
    let entry = namespace.add_pushed_object("fixture_fresh_name", "fixture_b", leak_aligned(fixtures().b_v2));
    // fixture_b_v2's symbols belong to crate fixture_b's cells only: allowed for crate fixture_b.
    assert_eq!(entry.unwrap().name, "fixture_fresh_name");
}

#[test]
fn bad_pushes_are_rejected_and_change_nothing() {
    let (namespace, _memory) = namespace();
    let before = listing(&namespace);
    let not_elf = leak_aligned(
        b"this is not an ELF object, just text pushed by mistake, long enough to hold an ELF header........",
    );
    assert_eq!(
        namespace.add_pushed_object("fixture_b", "fixture_b", not_elf),
        Err(PushedObjectError::Parse { cell: "fixture_b".into(), error: ParseError::NotElf })
    );
    let b = leak_aligned(fixtures().b);
    assert!(matches!(
        namespace.add_pushed_object("fixture_b", "other_crate", b),
        Err(PushedObjectError::CrateMismatch { .. })
    ));
    assert!(matches!(
        namespace.add_pushed_object("fixture_a", "fixture_a", b),
        Err(PushedObjectError::DuplicateSymbol { existing_cell, .. }) if existing_cell.starts_with("fixture_b")
    ));
    assert!(matches!(
        namespace.add_pushed_object("bad name", "fixture_b", b),
        Err(PushedObjectError::BadCellName { .. })
    ));
    assert_eq!(listing(&namespace), before);
}

#[test]
fn an_object_needing_an_undefined_symbol_is_refused() {
    // Without the base image, fixture_a's outside symbols (core's panic_cannot_unwind, the personality) are
    // defined nowhere.
    let (namespace, _memory) = common::namespace_with(fixtures().a, false);
    let before = listing(&namespace);
    let result = namespace.add_pushed_object("fixture_a", "fixture_a", leak_aligned(fixtures().a));
    assert!(matches!(result, Err(PushedObjectError::UnresolvedSymbol { .. })), "{result:?}");
    assert_eq!(listing(&namespace), before);
}
