//! The cell observer sees every published and removed cell (its own test binary: the observer is global).

mod common;

use std::sync::{Arc, Mutex};

use cell_namespace::{CellObserver, LoadedCell, set_cell_observer};
use common::{function, namespace};

/// Every event, as "+name" (loaded) or "-name" (removed), in order.
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The cells the recorder holds, as the unwinder's registration does (one `Arc` from `loaded` to `removed`).
static HELD: Mutex<Vec<Arc<LoadedCell>>> = Mutex::new(Vec::new());

struct Recorder;

impl CellObserver for Recorder {
    fn loaded(&self, cell: &Arc<LoadedCell>) {
        EVENTS.lock().unwrap().push(format!("+{}", cell.name()));
        HELD.lock().unwrap().push(cell.clone());
    }
    fn removed(&self, cell: &Arc<LoadedCell>) {
        EVENTS.lock().unwrap().push(format!("-{}", cell.name()));
        HELD.lock().unwrap().retain(|held| !Arc::ptr_eq(held, cell));
    }
    fn holds_reference(&self, cell: &Arc<LoadedCell>) -> bool {
        HELD.lock().unwrap().iter().any(|held| Arc::ptr_eq(held, cell))
    }
}

fn take_events() -> Vec<String> {
    std::mem::take(&mut *EVENTS.lock().unwrap())
}

#[test]
fn observer_sees_loads_swaps_and_same_name_reloads() {
    set_cell_observer(&Recorder);
    let (namespace, _memory) = namespace();
    namespace.load_cell("fixture_a").unwrap();
    let mut loaded = take_events();
    loaded.sort();
    assert_eq!(loaded, ["+fixture_a", "+fixture_b"], "one event per cell of the load transaction");

    let compute = function(&namespace, "fixture_a", "fixture_a::compute");
    let before = compute(5);
    let clock = || 0;
    namespace.swap(&[("fixture_b", "fixture_b_v2")], &clock).unwrap();
    // The recorder's own reference does not pin the old cell: it is freed (and reported) at once.
    assert_eq!(take_events(), ["-fixture_b", "+fixture_b_v2"], "removal first, then the new cell");
    assert!(namespace.retired().is_empty());

    // A failed swap reports nothing.
    assert!(namespace.swap(&[("fixture_b_v2", "no_such_cell")], &clock).is_err());
    assert!(take_events().is_empty());

    // Swapping a cell with itself reloads a fresh copy from its object file; dependents are re-linked to it.
    let old = Arc::downgrade(&namespace.cell("fixture_b_v2").unwrap());
    namespace.swap(&[("fixture_b_v2", "fixture_b_v2")], &clock).unwrap();
    assert_eq!(take_events(), ["-fixture_b_v2", "+fixture_b_v2"]);
    assert!(old.upgrade().is_none(), "the old copy is gone");
    assert_ne!(compute(5), before, "still version 2 after the reload");
    assert_eq!(compute(5), 5 * 3 + 200 + 1);
}
