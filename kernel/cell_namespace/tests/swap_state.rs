//! State transfer, export checks, retire/reclaim, names after a swap, rollback and leaks, with real rustc objects.

mod common;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use cell_namespace::{
    AddressRange, CellNamespace, ExportKind, NoPins, Pin, PinFinder, QuiesceError, StateTransfer, SwapError,
    SwapOptions,
};
use common::{HostMemory, function, getter, namespace, snapshot};

fn clock() -> impl Fn() -> u64 {
    let start = Instant::now();
    move || start.elapsed().as_nanos() as u64
}

fn direct(commit: &mut dyn FnMut()) -> Result<(), QuiesceError> {
    commit();
    Ok(())
}

fn swap_with(
    namespace: &CellNamespace,
    pairs: &[(&str, &str)],
    fresh: bool,
    pins: &dyn PinFinder,
) -> Result<cell_namespace::SwapReport, SwapError> {
    namespace.swap_quiesced(pairs, &SwapOptions { fresh }, &clock(), &direct, pins)
}

/// A sum over every relocated word of every loaded cell's sections that depend on another cell: the bytes each
/// dependency record's place holds (as a u64 of up to 8 bytes), mixed with the place's address.
fn relocated_words_checksum(namespace: &CellNamespace) -> u64 {
    let mut sum = 0_u64;
    for cell in namespace.loaded_cells() {
        for section in cell.sections() {
            for dependency in section.dependencies() {
                let place = section.address().value() + dependency.relocation.offset;
                let mut bytes = [0_u8; 8];
                let length = if dependency.relocation.relocation_type == cell_loader::RelocationType::Absolute64 {
                    8
                } else {
                    4
                };
                // SAFETY: the place lies inside a loaded, mapped (readable) section of a live cell.
                unsafe { std::ptr::copy_nonoverlapping(place as *const u8, bytes.as_mut_ptr(), length) };
                sum = sum.rotate_left(7) ^ u64::from_le_bytes(bytes) ^ place as u64;
            }
        }
    }
    sum
}

#[test]
fn state_is_carried_over_and_pointers_to_the_cell_itself_are_translated() {
    let (namespace, _memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let compute = function(&namespace, "fixture_a", "fixture_a::compute");
    let calls = getter(&namespace, "fixture_a", "fixture_a::calls_of_b");
    let through_pointer = getter(&namespace, "fixture_a", "fixture_a::pointer_calls_of_b");
    compute(3);
    assert_eq!((calls(), through_pointer()), (1001, 1001));
    let report = namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock()).unwrap();
    assert_eq!(report.objects_transferred, 5, "CALLS, TOTAL, EVENTS, CALLS_POINTER, NAME: {report}");
    assert_eq!(report.pointers_translated, 1, "CALLS_POINTER");
    compute(3);
    assert_eq!(calls(), 1002);
    // Without the translation, the copied CALLS_POINTER would still point at the freed old CALLS (a crash).
    assert_eq!(through_pointer(), 1002, "the copied pointer was translated to the new CALLS");
}

#[test]
fn dropped_state_is_refused_naming_cell_and_symbols_and_changes_nothing_unless_fresh() {
    let (namespace, memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let compute = function(&namespace, "fixture_a", "fixture_a::compute");
    let version = getter(&namespace, "fixture_a", "fixture_a::version_of_b");
    compute(1);
    let before = (snapshot(&namespace), memory.live_regions(), relocated_words_checksum(&namespace));
    let error = namespace.swap(&[("fixture_b", "fixture_b_renamed")], &clock()).unwrap_err();
    let SwapError::StateDropped { cell, symbols } = &error else { panic!("{error:?}") };
    assert_eq!(cell, "fixture_b");
    assert_eq!(symbols, &["fixture_b::CALLS (8 bytes, no equivalent)"], "{error}");
    assert!(error.to_string().contains("fixture_b::CALLS"), "{error}");
    assert_eq!((snapshot(&namespace), memory.live_regions(), relocated_words_checksum(&namespace)), before);
    assert_eq!(version(), 1);

    swap_with(&namespace, &[("fixture_b", "fixture_b_renamed")], true, &NoPins).unwrap();
    assert_eq!(version(), 2);
    let calls = getter(&namespace, "fixture_a", "fixture_a::calls_of_b");
    assert_eq!(calls(), 2000, "fresh: INVOCATIONS starts at its initial value");
}

#[test]
fn a_data_object_that_changes_size_or_a_function_that_becomes_data_is_refused() {
    let (namespace, memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let before = (snapshot(&namespace), memory.live_regions(), relocated_words_checksum(&namespace));
    for fresh in [false, true] {
        let error = swap_with(&namespace, &[("fixture_b", "fixture_b_resized")], fresh, &NoPins).unwrap_err();
        assert_eq!(
            error,
            SwapError::ExportMismatch {
                cell: "fixture_b".into(),
                symbol: "fixture_b::EVENTS".into(),
                old: ExportKind::Data { size_in_bytes: 8 },
                new: ExportKind::Data { size_in_bytes: 16 },
            }
        );
        let error = swap_with(&namespace, &[("fixture_b", "fixture_b_retyped")], fresh, &NoPins).unwrap_err();
        let SwapError::ExportMismatch { symbol, old, new, .. } = &error else { panic!("{error:?}") };
        assert_eq!(symbol, "fixture_b::version");
        assert!(matches!((old, new), (ExportKind::Function { .. }, ExportKind::Data { size_in_bytes: 8 })), "{error}");
    }
    assert_eq!((snapshot(&namespace), memory.live_regions(), relocated_words_checksum(&namespace)), before);
}

/// Pins the cells named in `pinned`.
struct TestPins {
    pinned: RefCell<Vec<String>>,
    calls: RefCell<usize>,
}

impl TestPins {
    fn pinning(cells: &[&str]) -> Self {
        Self { pinned: RefCell::new(cells.iter().map(|cell| cell.to_string()).collect()), calls: RefCell::new(0) }
    }
}

impl PinFinder for TestPins {
    fn find_pins(&self, cell: &str, ranges: &[AddressRange]) -> Vec<Pin> {
        *self.calls.borrow_mut() += 1;
        assert!(!ranges.is_empty());
        if self.pinned.borrow().iter().any(|pinned| pinned == cell) {
            vec![Pin::Frame { task: 7, task_name: "test".into(), address: ranges[0].start }]
        } else {
            Vec::new()
        }
    }
}

#[test]
fn a_pinned_cell_is_retired_shares_the_new_state_and_is_freed_once_unpinned() {
    let (namespace, memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let compute = function(&namespace, "fixture_a", "fixture_a::compute");
    let calls = getter(&namespace, "fixture_a", "fixture_a::calls_of_b");
    // A function pointer straight into the old cell (as a task returning into it would run it).
    let old_calls = getter(&namespace, "fixture_b", "fixture_b::calls");
    compute(1);
    let regions_with_v1 = memory.live_regions();
    let pins = TestPins::pinning(&["fixture_b"]);
    let report = swap_with(&namespace, &[("fixture_b", "fixture_b_v2")], false, &pins).unwrap();
    assert_eq!((report.cells_retired, report.cells_freed), (1, 0), "{report}");
    assert!(report.references_redirected > 0, "{report}");
    let retired = namespace.retired();
    assert_eq!(retired.len(), 1);
    assert_eq!(retired[0].name, "fixture_b");
    assert!(matches!(retired[0].pins[..], [Pin::Frame { task: 7, .. }]), "{:?}", retired[0].pins);
    assert_eq!(memory.live_regions(), regions_with_v1 + 3, "old and new cell both mapped");

    // Old code still runs and sees the new state (its CALLS reference was redirected to the new copy).
    compute(1);
    assert_eq!(calls(), 1002);
    assert_eq!(old_calls(), 1002, "the retired cell's code reads the new cell's CALLS");

    // Still pinned: a reclaim keeps it.
    let report = namespace.reclaim_retired(&direct, &pins);
    assert_eq!((report.freed.len(), report.still_retired.len()), (0, 1), "{report}");
    assert_eq!(memory.live_regions(), regions_with_v1 + 3);
    assert_eq!(namespace.retired()[0].keeps_alive, ["fixture_b_v2"]);

    // Swapping v2 out (for a fresh copy of v1) while the old v1 is retired redirects the old v1 again, to the
    // newest copy's CALLS; v2, which nothing else pins, is freed (the call below would read unmapped memory if
    // the old v1 still used v2's CALLS).
    let report = namespace.swap(&[("fixture_b_v2", "fixture_b")], &clock()).unwrap();
    assert_eq!((report.cells_retired, report.cells_freed), (0, 1), "{report}");
    assert_eq!(old_calls(), 1002, "the newest copy's CALLS, carried over");
    assert_eq!(calls(), 1002, "carried into the new v1");
    assert_eq!(memory.live_regions(), regions_with_v1 + 3);
    assert_eq!(namespace.retired()[0].keeps_alive, ["fixture_b"], "the newest copy");
    // A failed quiesce frees nothing.
    pins.pinned.borrow_mut().clear();
    let failing = |_: &mut dyn FnMut()| Err(QuiesceError { reason: "test".into() });
    let report = namespace.reclaim_retired(&failing, &pins);
    assert!(report.quiesce_error.is_some() && report.freed.is_empty(), "{report}");
    assert_eq!(namespace.retired().len(), 1);
    // Unpinned: the old v1 is freed; its regions are returned.
    let report = namespace.reclaim_retired(&direct, &pins);
    assert_eq!(report.freed, ["fixture_b"], "{report}");
    assert!(namespace.retired().is_empty());
    assert_eq!(memory.live_regions(), regions_with_v1, "the old cells' regions were returned");
}

#[test]
fn a_chain_of_retired_copies_shares_the_newest_copy_state() {
    let (namespace, memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let compute = function(&namespace, "fixture_a", "fixture_a::compute");
    let calls = getter(&namespace, "fixture_a", "fixture_a::calls_of_b");
    let regions = memory.live_regions();
    // Function pointers straight into each copy that will be retired (as tasks returning into them would run).
    let oldest_calls = getter(&namespace, "fixture_b", "fixture_b::calls");
    let pins = TestPins::pinning(&["fixture_b", "fixture_b_v2"]);
    swap_with(&namespace, &[("fixture_b", "fixture_b_v2")], false, &pins).unwrap();
    let second_calls = getter(&namespace, "fixture_b_v2", "fixture_b::calls");
    swap_with(&namespace, &[("fixture_b_v2", "fixture_b")], false, &pins).unwrap();
    let third_calls = getter(&namespace, "fixture_b", "fixture_b::calls");
    let report = swap_with(&namespace, &[("fixture_b", "fixture_b_v2")], false, &pins).unwrap();
    assert!(report.references_redirected > 0, "{report}");
    let retired: Vec<String> = namespace.retired().into_iter().map(|info| info.name).collect();
    assert_eq!(retired, ["fixture_b", "fixture_b_v2", "fixture_b"], "three pinned copies, oldest first");

    // The newest copy counts (through fixture_a); every retired copy's code reads the newest copy's CALLS.
    compute(1);
    compute(2);
    assert_eq!(calls(), 1002);
    assert_eq!(oldest_calls(), 1002, "the oldest copy (retired three swaps ago) sees the newest state");
    assert_eq!(second_calls(), 1002, "the second copy sees the newest state");
    assert_eq!(third_calls(), 1002, "the third copy sees the newest state");
    for info in namespace.retired() {
        assert_eq!(info.keeps_alive, ["fixture_b_v2"], "each retired copy keeps only the newest copy alive");
    }

    // Unpinned, every copy is freed and every region returned.
    pins.pinned.borrow_mut().clear();
    let report = namespace.reclaim_retired(&direct, &pins);
    assert_eq!(report.freed.len(), 3, "{report}");
    assert_eq!(memory.live_regions(), regions);
}

#[test]
fn references_from_retired_cells_are_named_apart_from_outside_references() {
    let (namespace, memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let regions = memory.live_regions();
    let pins = TestPins::pinning(&["fixture_a"]);
    swap_with(&namespace, &[("fixture_a", "fixture_a")], false, &pins).unwrap();
    // The retired fixture_a still calls the old fixture_b (its dependency records), so swapping fixture_b
    // retires the old one, pinned by that retired cell, and by nothing outside the namespace.
    let report = swap_with(&namespace, &[("fixture_b", "fixture_b_v2")], false, &pins).unwrap();
    assert_eq!((report.cells_retired, report.cells_freed), (1, 0), "{report}");
    let retired = namespace.retired();
    assert_eq!(retired[1].name, "fixture_b");
    let [Pin::RetiredCells { count, cells }] = &retired[1].pins[..] else {
        panic!("expected one RetiredCells pin: {:?}", retired[1].pins)
    };
    assert!(*count > 0);
    assert_eq!(cells, &["fixture_a"]);
    assert!(retired[0].pins.iter().all(|pin| !matches!(pin, Pin::References { .. })), "{:?}", retired[0].pins);
    // Once the retired fixture_a is unpinned, both are freed in one reclaim (fixture_a first, which frees b).
    pins.pinned.borrow_mut().clear();
    assert_eq!(namespace.reclaim_retired(&direct, &pins).freed, ["fixture_a", "fixture_b"]);
    assert_eq!(memory.live_regions(), regions);
}

#[test]
fn an_untranslatable_pointer_in_copied_state_keeps_the_old_cell_retired_until_it_is_gone() {
    let (namespace, memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let remember = function(&namespace, "fixture_a", "fixture_a::remember_name_in_b");
    let regions = memory.live_regions();
    assert_eq!(remember(1), 12, "NAME now points at v1's string literal (anonymous rodata)");
    let report = namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock()).unwrap();
    assert_eq!(report.cells_retired, 1, "{report}");
    let retired = namespace.retired();
    assert!(matches!(retired[0].pins[..], [Pin::Pointer { .. }]), "{:?}", retired[0].pins);
    assert_eq!(namespace.reclaim_retired(&direct, &NoPins).freed.len(), 0, "NAME still points into it");
    remember(0);
    assert_eq!(namespace.reclaim_retired(&direct, &NoPins).freed, ["fixture_b"]);
    assert_eq!(memory.live_regions(), regions);
}

#[test]
fn an_outside_reference_retires_the_old_cell_until_dropped() {
    let (namespace, memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let regions = memory.live_regions();
    let held = namespace.cell("fixture_b").unwrap();
    let report = namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock()).unwrap();
    assert_eq!(report.cells_retired, 1, "{report}");
    assert!(matches!(namespace.retired()[0].pins[..], [Pin::References { count: 1 }]));
    assert!(namespace.reclaim_retired(&direct, &NoPins).freed.is_empty());
    drop(held);
    assert_eq!(namespace.reclaim_retired(&direct, &NoPins).freed, ["fixture_b"]);
    assert_eq!(memory.live_regions(), regions);
}

#[test]
fn a_failed_quiesce_changes_nothing() {
    let (namespace, memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let before = (snapshot(&namespace), memory.live_regions(), relocated_words_checksum(&namespace));
    let failing = |_: &mut dyn FnMut()| Err(QuiesceError { reason: "CPU 2 did not stop".into() });
    let error = namespace
        .swap_quiesced(&[("fixture_b", "fixture_b_v2")], &SwapOptions::default(), &clock(), &failing, &NoPins)
        .unwrap_err();
    assert_eq!(error, SwapError::Quiesce(QuiesceError { reason: "CPU 2 did not stop".into() }));
    assert_eq!((snapshot(&namespace), memory.live_regions(), relocated_words_checksum(&namespace)), before);
    let v1 = namespace.cell("fixture_b").unwrap();
    assert!(v1.dependent_cells().contains("fixture_a"));
    // The discarded new cell left no dependency edge on fixture_a's fixture_a_offset.
    let a = namespace.cell("fixture_a").unwrap();
    let offset = a.sections().iter().find(|section| section.name() == "fixture_a_offset").unwrap();
    assert_eq!(offset.dependents().len(), 1, "only fixture_b v1 calls it");
}

#[test]
fn a_cell_loaded_after_a_swap_binds_to_the_new_cell() {
    let (namespace, _memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock()).unwrap();
    let user_version = getter(&namespace, "fixture_user", "fixture_user::user_version");
    assert_eq!(user_version(), 2, "fixture_user (built against v1) binds to v2");
    assert!(namespace.cell("fixture_b").is_none(), "v1 was not loaded again");
    // Loading the replaced cell itself is refused: its names belong to v2 now.
    let error = namespace.load_cell("fixture_b").unwrap_err();
    assert!(
        matches!(&error, cell_namespace::LoadError::DuplicateSymbol { cell, existing_cell, .. } if cell == "fixture_b" && existing_cell == "fixture_b_v2"),
        "{error:?}"
    );
    let v2 = namespace.cell("fixture_b_v2").unwrap();
    assert!(v2.dependent_cells().contains("fixture_user"));
    // And after swapping back and forth, a chain of aliases still leads to the current cell.
    namespace.swap(&[("fixture_b_v2", "fixture_b")], &clock()).unwrap();
    assert_eq!(user_version(), 1);
    namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock()).unwrap();
    assert_eq!(user_version(), 2);
}

#[test]
fn a_multi_cell_swap_whose_last_cell_lacks_a_symbol_changes_nothing() {
    let (namespace, memory) = namespace();
    namespace.load_cell("fixture_user").unwrap();
    let user_version = getter(&namespace, "fixture_user", "fixture_user::user_version");
    let user_c = getter(&namespace, "fixture_user", "fixture_user::user_c");
    assert_eq!((user_version(), user_c()), (1, 61));
    let before = (snapshot(&namespace), memory.live_regions(), relocated_words_checksum(&namespace));
    // The first pair plans fine (fixture_a and fixture_user are patched for fixture_b); the last one fails.
    let error =
        namespace.swap(&[("fixture_b", "fixture_b_v2"), ("fixture_c", "fixture_c_partial")], &clock()).unwrap_err();
    let SwapError::MissingSymbol { old_cell, symbol, dependent, .. } = &error else { panic!("{error:?}") };
    assert_eq!((old_cell.as_str(), symbol.as_str()), ("fixture_c", "fixture_c::c_value"));
    assert_eq!(cell_namespace::hash_free_name(dependent), "fixture_user::user_c");
    assert_eq!((snapshot(&namespace), memory.live_regions(), relocated_words_checksum(&namespace)), before);
    assert_eq!((user_version(), user_c()), (1, 61));
    // The same swap with a complete second cell succeeds, and changes the checksum (so it can fail).
    namespace.swap(&[("fixture_b", "fixture_b_v2"), ("fixture_c", "fixture_c")], &clock()).unwrap();
    assert_ne!(relocated_words_checksum(&namespace), before.2);
    assert_eq!((user_version(), user_c()), (2, 61));
}

/// Runs `test` with `hook` as fixture_b_transfer's transfer function.
fn with_transfer_hook(hook: fn(&StateTransfer<'_>) -> u64, test: impl FnOnce()) {
    let _serial = common::TRANSFER_HOOK_USERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *common::TRANSFER_HOOK.lock().unwrap() = Some(hook);
    test();
    *common::TRANSFER_HOOK.lock().unwrap() = None;
}

/// Copies the old CALLS into the new INVOCATIONS (after checking that the default copy already ran) and marks it.
fn carry_calls(transfer: &StateTransfer<'_>) -> u64 {
    let (Some(old_total), Some(new_total)) =
        (transfer.old_object("fixture_b::TOTAL"), transfer.new_object("fixture_b::TOTAL"))
    else {
        return 10;
    };
    // SAFETY: both are live 8-byte statics of the old and new cells; the swap is quiesced.
    let totals = unsafe { (*(old_total.address.value() as *const u64), *(new_total.address.value() as *const u64)) };
    if totals.0 != totals.1 || totals.0 == 0 {
        return 11; // The default copy did not run first.
    }
    let (Some(old), Some(new)) =
        (transfer.old_object("fixture_b::CALLS"), transfer.new_object("fixture_b::INVOCATIONS"))
    else {
        return 12;
    };
    assert_eq!(
        (old.size, new.size, transfer.old_cell().name(), transfer.new_cell().name()),
        (8, 8, "fixture_b", "fixture_b_transfer")
    );
    // SAFETY: as above.
    unsafe { *(new.address.value() as *mut u64) = *(old.address.value() as *const u64) };
    transfer.mark_transferred("fixture_b::CALLS");
    0
}

#[test]
fn a_cell_state_transfer_function_carries_renamed_state() {
    with_transfer_hook(carry_calls, || {
        let (namespace, _memory) = namespace();
        namespace.load_cell("fixture_a").unwrap();
        let compute = function(&namespace, "fixture_a", "fixture_a::compute");
        let calls = getter(&namespace, "fixture_a", "fixture_a::calls_of_b");
        compute(4);
        namespace.swap(&[("fixture_b", "fixture_b_transfer")], &clock()).unwrap();
        assert_eq!(calls(), 1001, "INVOCATIONS holds the old CALLS");
        compute(4);
        assert_eq!(calls(), 1002);
    });
}

#[test]
fn a_failing_or_incomplete_transfer_function_changes_nothing() {
    for (hook, expected) in [
        ((|_| 1) as fn(&StateTransfer<'_>) -> u64, "fails"),
        ((|_| 0) as fn(&StateTransfer<'_>) -> u64, "marks nothing"),
    ] {
        with_transfer_hook(hook, || {
            let (namespace, memory) = namespace();
            namespace.load_cell("fixture_a").unwrap();
            let compute = function(&namespace, "fixture_a", "fixture_a::compute");
            compute(4);
            let before = (snapshot(&namespace), memory.live_regions(), relocated_words_checksum(&namespace));
            let error = namespace.swap(&[("fixture_b", "fixture_b_transfer")], &clock()).unwrap_err();
            match expected {
                "fails" => assert_eq!(
                    error,
                    SwapError::StateTransfer { cell: "fixture_b_transfer".into(), reason: String::new() }
                ),
                _ => assert!(
                    matches!(&error, SwapError::StateDropped { cell, symbols } if cell == "fixture_b" && symbols[0].starts_with("fixture_b::CALLS")),
                    "{error:?}"
                ),
            }
            assert_eq!((snapshot(&namespace), memory.live_regions(), relocated_words_checksum(&namespace)), before);
            let version = getter(&namespace, "fixture_a", "fixture_a::version_of_b");
            assert_eq!(version(), 1);
        });
    }
}

#[test]
fn two_hundred_swaps_back_and_forth_return_every_region() {
    let (namespace, memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let compute = function(&namespace, "fixture_a", "fixture_a::compute");
    let calls = getter(&namespace, "fixture_a", "fixture_a::calls_of_b");
    let baseline = memory.live_regions();
    for round in 0..100 {
        namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock()).unwrap();
        compute(1);
        namespace.swap(&[("fixture_b_v2", "fixture_b")], &clock()).unwrap();
        compute(1);
        assert_eq!(memory.live_regions(), baseline, "round {round}");
    }
    assert_eq!(calls(), 1200, "every call counted across 200 swaps");
    assert!(namespace.retired().is_empty());
    let _: Arc<HostMemory> = memory;
}

/// Commits seen by [`defer_commit_action`]'s action (only the test below uses it).
static COMMITS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Defers an action that counts a commit.
fn defer_commit_action(transfer: &StateTransfer<'_>) {
    transfer.after_commit(Box::new(|| {
        COMMITS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }));
}

#[test]
fn an_action_deferred_to_the_commit_runs_once_if_the_swap_commits_and_never_if_it_aborts() {
    use std::sync::atomic::Ordering::SeqCst;
    let aborting: fn(&StateTransfer<'_>) -> u64 = |transfer| {
        defer_commit_action(transfer);
        0 // Marks nothing: the swap aborts after this function, with CALLS dropped.
    };
    with_transfer_hook(aborting, || {
        let (namespace, _memory) = namespace();
        namespace.load_cell("fixture_a").unwrap();
        let before = COMMITS.load(SeqCst);
        let error = namespace.swap(&[("fixture_b", "fixture_b_transfer")], &clock()).unwrap_err();
        assert!(matches!(error, SwapError::StateDropped { .. }), "{error:?}");
        assert_eq!(COMMITS.load(SeqCst), before, "the action of an aborted swap ran");
    });
    let committing: fn(&StateTransfer<'_>) -> u64 = |transfer| {
        defer_commit_action(transfer);
        carry_calls(transfer)
    };
    with_transfer_hook(committing, || {
        let (namespace, _memory) = namespace();
        namespace.load_cell("fixture_a").unwrap();
        function(&namespace, "fixture_a", "fixture_a::compute")(4); // `carry_calls` checks that state exists.
        let before = COMMITS.load(SeqCst);
        namespace.swap(&[("fixture_b", "fixture_b_transfer")], &clock()).unwrap();
        assert_eq!(COMMITS.load(SeqCst), before + 1, "the action of a committed swap did not run exactly once");
    });
}
