//! Reclaiming retired cells: at each swap, on demand (`ns -a`, tests), and when a task that pinned one exits.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use cell_namespace::{CellNamespace, Pin, ReclaimReport, RetiredCellInfo};
use task::{IrqSafeMutex, TaskRef};

use crate::{GATE, KernelPinFinder, run_quiesced};

/// Ids of the tasks whose frames or entry pin a retired cell (as of the last check). The lock protects the set
/// only; it is IRQ-safe and taken alone.
static PINNING_TASKS: IrqSafeMutex<BTreeSet<u64>> = IrqSafeMutex::new(BTreeSet::new());

/// Installs the scheduler's exit hook. Call once tasking runs.
pub fn init() {
    scheduler::set_exit_hook(on_task_exit);
}

/// The exit hook: if the exiting task pinned a retired cell, re-check the retired cells now (on the exiting task,
/// with interrupts enabled; its body's frames are gone). If a swap or reclaim holds the gate, nothing is done
/// here: that holder re-checks the retired cells itself (every swap starts with a reclaim).
fn on_task_exit(task: &TaskRef) {
    let pinned = PINNING_TASKS.lock().remove(&task.id().value());
    if !pinned {
        return;
    }
    let Some(kernel) = system_namespaces::kernel_namespace() else { return };
    if let Some(_gate) = GATE.try_lock() {
        reclaim_locked(kernel);
    }
}

/// Re-checks every retired cell of the kernel namespace (with the other CPUs stopped) and frees those no longer
/// pinned. Returns the namespace's report (an empty one before the namespaces exist).
pub fn reclaim() -> ReclaimReport {
    let Some(kernel) = system_namespaces::kernel_namespace() else { return ReclaimReport::default() };
    let _gate = GATE.lock();
    reclaim_locked(kernel)
}

/// Like [`reclaim`], for the retired cells of `namespace` (e.g. the application namespace, whose retired cells
/// the exit hook does not re-check). The pinning tasks noted for the exit hook stay those of the kernel namespace.
pub fn reclaim_in(namespace: &CellNamespace) -> ReclaimReport {
    let _gate = GATE.lock();
    let finder = KernelPinFinder::snapshot();
    namespace.reclaim_retired(&run_quiesced, &finder)
}

/// [`reclaim`] with the gate held.
pub(crate) fn reclaim_locked(kernel: &CellNamespace) -> ReclaimReport {
    let finder = KernelPinFinder::snapshot();
    let report = kernel.reclaim_retired(&run_quiesced, &finder);
    note_pinning_tasks(&report.still_retired);
    report
}

/// The retired cells of the kernel namespace with their pins as last computed.
pub fn retired() -> Vec<RetiredCellInfo> {
    system_namespaces::kernel_namespace().map(|kernel| kernel.retired()).unwrap_or_default()
}

/// Records the tasks that pin any of `retired` through a frame or their entry (the ones whose exit may free it).
pub(crate) fn note_pinning_tasks(retired: &[RetiredCellInfo]) {
    let tasks: BTreeSet<u64> = retired
        .iter()
        .flat_map(|info| info.pins.iter())
        .filter_map(|pin| match pin {
            Pin::Frame { task, .. } | Pin::TaskEntry { task, .. } | Pin::Unwalkable { task, .. } => Some(*task),
            _ => None,
        })
        .collect();
    *PINNING_TASKS.lock() = tasks;
}
