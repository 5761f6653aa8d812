//! The cell observer: a registration hook through which a higher layer learns when cells enter or leave a
//! namespace (nano_core uses it to register each cell's unwind info with the unwinder).
//!
//! The hook is global (one per system, like the unwinder's registry it feeds) and called inside the transaction
//! that changes the namespace, after the change is published, while the namespace's transaction lock is held: a
//! cell is therefore reported as loaded before any other transaction can swap it out, and reported as removed
//! before a later transaction can load a cell of the same name. An observer must not call back into a namespace
//! (it would deadlock on the transaction lock); it may allocate and take its own locks.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::LoadedCell;

/// Learns about cells entering and leaving namespaces.
pub trait CellObserver: Send + Sync {
    /// `cell` was just published (a load transaction, or the new cell of a swap).
    fn loaded(&self, cell: &Arc<LoadedCell>);
    /// `cell` was freed: it left its namespace (the old cell of a swap), and nothing pins it any more. A retired
    /// cell (see `swap/mod.rs`) is reported only when a later reclaim frees it, so its unwind info stays
    /// registered while its code may still run.
    fn removed(&self, cell: &Arc<LoadedCell>);

    /// Whether the observer holds an `Arc` to `cell` (at most one, from `loaded` until `removed`; the unwinder's
    /// registration does). A swap does not count that reference as one that pins the old cell.
    fn holds_reference(&self, _cell: &Arc<LoadedCell>) -> bool {
        false
    }
}

/// The installed observer: a leaked `&'static dyn CellObserver` boxed once more to fit a thin pointer; null = none.
static OBSERVER: AtomicPtr<&'static dyn CellObserver> = AtomicPtr::new(core::ptr::null_mut());

/// Installs `observer` (replacing any previous one, which is leaked: observers are static singletons).
pub fn set_cell_observer(observer: &'static dyn CellObserver) {
    let pointer = alloc::boxed::Box::into_raw(alloc::boxed::Box::new(observer));
    OBSERVER.store(pointer, Ordering::Release);
}

fn observer() -> Option<&'static dyn CellObserver> {
    let pointer = OBSERVER.load(Ordering::Acquire);
    // SAFETY: non-null values come only from `set_cell_observer`, which leaks a `Box<&'static dyn CellObserver>`:
    // the box is never freed, so the pointer stays valid forever.
    (!pointer.is_null()).then(|| unsafe { *pointer })
}

/// Reports a published cell to the observer, if any.
pub(crate) fn notify_loaded(cell: &Arc<LoadedCell>) {
    if let Some(observer) = observer() {
        observer.loaded(cell);
    }
}

/// How many references to `cell` the observer holds (0 or 1).
pub(crate) fn observer_references(cell: &Arc<LoadedCell>) -> usize {
    observer().is_some_and(|observer| observer.holds_reference(cell)).into()
}

/// Reports a removed cell to the observer, if any.
pub(crate) fn notify_removed(cell: &Arc<LoadedCell>) {
    if let Some(observer) = observer() {
        observer.removed(cell);
    }
}
