//! Integrity checks of loaded cells' read-only sections: an intact cell reports no damage (also after a swap
//! re-linked its calls), a flipped code byte and a damaged relocation field are found and repaired, and the
//! repaired code runs right again.

mod common;

use std::time::Instant;

use cell_loader::SectionKind;
use cell_namespace::{IntegrityError, IntegrityMode};
use common::{function, namespace};

fn clock() -> impl Fn() -> u64 {
    let start = Instant::now();
    move || start.elapsed().as_nanos() as u64
}

#[test]
fn intact_cells_report_no_damage_also_after_a_swap() {
    let (namespace, _memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let before = namespace.check_all_cells(IntegrityMode::Check).unwrap();
    assert!(before.iter().any(|(cell, _)| cell == "fixture_a") && before.iter().any(|(cell, _)| cell == "fixture_b"));
    for (cell, report) in &before {
        let report = report.as_ref().unwrap_or_else(|error| panic!("{cell}: {error}"));
        assert!(report.is_intact(), "{cell}: {report:?}");
        assert!(report.sections > 0 && report.bytes > 0, "{cell}: nothing compared: {report:?}");
    }
    // The swap rewrites fixture_a's calls into fixture_b: the check must follow the moved edges.
    namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock()).unwrap();
    let report = namespace.check_cell("fixture_a", IntegrityMode::Check).unwrap();
    assert!(report.is_intact(), "after the swap: {report:?}");
    assert_eq!(
        namespace.check_cell("nano_core", IntegrityMode::Check),
        Err(IntegrityError::BaseImage { cell: "nano_core".into() })
    );
    assert!(matches!(
        namespace.check_cell("no_such_cell", IntegrityMode::Check),
        Err(IntegrityError::NotLoaded { .. })
    ));
}

#[test]
fn damaged_code_and_relocation_fields_are_found_and_repaired() {
    let (namespace, _memory) = namespace();
    let a = namespace.load_cell("fixture_a").unwrap();
    let compute = function(&namespace, "fixture_a", "fixture_a::compute");
    let expected = compute(5);

    // A section of fixture_a's text with a call into fixture_b (a cross-cell relocation field).
    let section = a
        .sections()
        .iter()
        .find(|section| section.kind() == SectionKind::Text && !section.dependencies().is_empty())
        .expect("fixture_a calls fixture_b")
        .clone();
    let field = section.dependencies()[0].relocation.offset;
    // SAFETY: the section is mapped readable; nothing writes it concurrently in this test.
    let read = |offset: usize| unsafe { *((section.address().value() + offset) as *const u8) };
    let (original_field, original_first) = (read(field), read(0));
    // SAFETY: no thread runs fixture_a's code while it is damaged.
    unsafe {
        section.patch_bytes(field, &[original_field ^ 0x10]).unwrap();
        section.patch_bytes(0, &[original_first ^ 0x01]).unwrap();
    }

    let found = namespace.check_cell("fixture_a", IntegrityMode::Check).unwrap();
    let offsets: Vec<(usize, usize)> = found.damaged.iter().map(|range| (range.offset, range.length)).collect();
    let covers = |offset: usize| offsets.iter().any(|&(start, length)| (start..start + length).contains(&offset));
    assert!(covers(0) && covers(field), "damage at 0 and {field} not both found: {found:?}");
    assert!(found.damaged.iter().all(|range| range.section == section.name()), "{found:?}");
    assert!(!found.repaired);
    assert_eq!((read(field), read(0)), (original_field ^ 0x10, original_first ^ 0x01), "Check must not write");

    let repaired = namespace.check_cell("fixture_a", IntegrityMode::Repair).unwrap();
    assert!(repaired.repaired && repaired.damaged == found.damaged, "{repaired:?}");
    assert_eq!((read(field), read(0)), (original_field, original_first));
    assert!(namespace.check_cell("fixture_a", IntegrityMode::Check).unwrap().is_intact());
    assert_eq!(compute(5), expected, "the repaired code computes as before");
}
