//! A failure of the swapping task inside a swap (issue 12): the swap is rolled back as a failed verification would
//! be, and the next swap works. On the host an injected fault is a panic (unwinding: the swap's landing pad rolls
//! back); a task that dies without unwinding is modelled by a thread parked for good inside the swap, recovered
//! from another thread with `recover_failed_task` and the parked thread's stack range.

mod common;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use cell_namespace::{NoPins, QuiesceError, SwapFaultPoint, SwapOptions, SwapPhase, inject_swap_fault};
use common::{function, getter, namespace, snapshot};

fn clock() -> impl Fn() -> u64 {
    let start = Instant::now();
    move || start.elapsed().as_nanos() as u64
}

/// Serializes the tests that arm a fault point (process-wide) or swap (a swap passes every fault point).
static ARMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn direct(commit: &mut dyn FnMut()) -> Result<(), QuiesceError> {
    commit();
    Ok(())
}

/// One test for every point: the armed point is process-wide.
#[test]
fn a_fault_at_any_point_before_the_end_of_the_quiesced_phase_rolls_the_swap_back() {
    let _arming = ARMING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for point in [
        SwapFaultPoint::Staged,
        SwapFaultPoint::Built,
        SwapFaultPoint::Transfer,
        SwapFaultPoint::Patching,
        SwapFaultPoint::Patched,
    ] {
        let (namespace, memory) = namespace();
        namespace.load_cell("fixture_a").unwrap();
        let compute = function(&namespace, "fixture_a", "fixture_a::compute");
        let version = getter(&namespace, "fixture_a", "fixture_a::version_of_b");
        assert_eq!((version(), compute(5)), (1, 16));
        let before = snapshot(&namespace);
        let regions = memory.live_regions();
        inject_swap_fault(point);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock())
        }));
        assert!(outcome.is_err(), "{point:?}: the injected fault did not strike: {outcome:?}");
        assert_eq!(snapshot(&namespace), before, "{point:?}: the namespace changed");
        assert_eq!((version(), compute(5)), (1, 16), "{point:?}: the dependent no longer runs version 1");
        assert_eq!(memory.live_regions(), regions, "{point:?}: the new cell was not freed");
        let b = namespace.cell("fixture_b").unwrap();
        assert_eq!(b.dependent_cells().into_iter().collect::<Vec<_>>(), ["fixture_a"], "{point:?}");
        // The locks are free and the swap works now.
        namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock()).unwrap_or_else(|e| panic!("{point:?}: {e}"));
        assert_eq!(version(), 2, "{point:?}");
    }
}

/// A fault after the swap completed (in the swap's own frame, past the commit point) undoes nothing.
#[test]
fn a_fault_after_the_commit_keeps_the_swap() {
    let _arming = ARMING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (namespace, _memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let version = getter(&namespace, "fixture_a", "fixture_a::version_of_b");
    inject_swap_fault(SwapFaultPoint::Completed);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock())
    }));
    assert!(outcome.is_err(), "the injected fault did not strike");
    assert_eq!(version(), 2);
    let names: Vec<String> = snapshot(&namespace).0;
    assert_eq!(names, ["fixture_a", "fixture_b_v2", "nano_core"]);
    namespace.swap(&[("fixture_b_v2", "fixture_b")], &clock()).unwrap();
    assert_eq!(version(), 1);
}

/// A fault inside the cleanup, after the old cell left the namespace and before the new one was published (the
/// campaign's skipped instruction in `CellNamespace::cleanup`): the dependents already run the new cell, so the
/// rollback publishes it instead of dropping it (before, the namespace had neither version, later swaps of
/// either failed with "not loaded", and the new cell's memory was freed under its callers).
#[test]
fn a_fault_inside_the_cleanup_publishes_the_new_cell() {
    let _arming = ARMING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (namespace, _memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let version = getter(&namespace, "fixture_a", "fixture_a::version_of_b");
    let compute = function(&namespace, "fixture_a", "fixture_a::compute");
    inject_swap_fault(SwapFaultPoint::Cleanup);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock())
    }));
    assert!(outcome.is_err(), "the injected fault did not strike");
    assert_eq!(version(), 2, "the dependent runs the new cell");
    let names: Vec<String> = snapshot(&namespace).0;
    assert_eq!(names, ["fixture_a", "fixture_b_v2", "nano_core"], "the new cell is published, the old one gone");
    assert!(namespace.cell("fixture_b_v2").is_some());
    // It can be swapped again, both ways, and the dependent follows.
    namespace.swap(&[("fixture_b_v2", "fixture_b")], &clock()).unwrap();
    assert_eq!((version(), compute(5)), (1, 16));
    namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock()).unwrap();
    assert_eq!(version(), 2);
}

/// The swapping thread stops for good inside the quiesced phase, after every store (its guard never drops, as
/// for a task ended without unwinding); recovery from another thread with its stack range undoes the stores
/// and frees the transaction lock.
#[test]
fn a_holder_that_never_unwinds_is_recovered_from_its_stack_range() {
    // Its swaps pass the fault points too: one armed by a test running beside it would strike here instead.
    let _arming = ARMING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (namespace, _memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let namespace = Arc::new(namespace);
    let version = getter(&namespace, "fixture_a", "fixture_a::version_of_b");
    let compute = function(&namespace, "fixture_a", "fixture_a::compute");
    let before = snapshot(&namespace);
    let (sender, receiver) = mpsc::channel();
    let swapping = namespace.clone();
    std::thread::spawn(move || {
        let marker = 0u8;
        let here = std::ptr::addr_of!(marker) as usize;
        let park = |commit: &mut dyn FnMut()| -> Result<(), QuiesceError> {
            commit();
            sender.send(here).unwrap();
            loop {
                std::thread::park();
            }
        };
        let _ =
            swapping.swap_quiesced(&[("fixture_b", "fixture_b_v2")], &SwapOptions::default(), &clock(), &park, &NoPins);
    });
    let here = receiver.recv().unwrap();
    assert_eq!(version(), 2, "the stores were made before the thread stopped");
    // A range around the parked thread's stack frames (its stack is below `here`, the first frame's local).
    let stack = here - 512 * 1024..here + 4096;
    // SAFETY: the thread never resumes the swap (it is parked for good inside it); its stack stays as it is.
    let recovery = unsafe { namespace.recover_failed_task(stack, &direct) }.expect("the dead holder is found");
    let rollback = recovery.rollback.expect("a swap was in progress");
    assert_eq!(rollback.phase, SwapPhase::Patched);
    assert!(rollback.stores_restored >= 7 && rollback.quiesced, "{rollback:?}");
    assert_eq!((version(), compute(5)), (1, 16), "the stores were undone");
    assert_eq!(snapshot(&namespace), before);
    // SAFETY: as above; nothing is held any more, so nothing is found.
    assert!(unsafe { namespace.recover_failed_task(here - 512 * 1024..here + 4096, &direct) }.is_none());
    namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock()).unwrap();
    assert_eq!(version(), 2);
}
