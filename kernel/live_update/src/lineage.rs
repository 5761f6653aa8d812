//! Lineage: which cell each retired cell's own references were redirected into.
//!
//! When a swap retires an old cell, `cell_namespace` redirects the old cell's references to its own data objects
//! to the new cell's copies, so old code that still runs (a task returning through it, an idle loop) works on the
//! live state. Those redirected references are rip-relative displacements in the retired cell's *text*: no data
//! scan can see them. So when the successor is itself swapped out later, the retired predecessor would still
//! reach into it; freeing the successor then would make the predecessor's next access fault. The gate therefore
//! records, for every cell it retires, the address ranges of its successor, and the pin finder reports a
//! [`Pin::Pointer`](cell_namespace::Pin::Pointer) on a successor while its predecessor is retired.
//!
//! This keeps memory safe, not state consistent: a predecessor that runs again after its successor was swapped
//! out reads the successor's (now stale) copy of the state. The remedy belongs to the namespace (re-redirecting
//! retired cells whose successor is swapped, to the newest copy); until then, code that runs forever (idle loops)
//! hands itself over to the newest copy (see the scheduler's idle loop).

use alloc::string::String;
use alloc::vec::Vec;

use cell_namespace::{AddressRange, CellNamespace, RetiredCellInfo};
use task::IrqSafeMutex;

/// A retired cell and the cell its references were redirected into.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    /// The retired cell's name and memory (its identity among retired cells of the same name).
    pub(crate) retired_name: String,
    pub(crate) retired_ranges: Vec<AddressRange>,
    /// The successor's name and memory at the time of the swap.
    pub(crate) successor_name: String,
    pub(crate) successor_ranges: Vec<AddressRange>,
}

/// Every link whose retired cell may still be retired; pruned at each snapshot. The lock protects the list only
/// (IRQ-safe, taken alone).
static LINKS: IrqSafeMutex<Vec<Link>> = IrqSafeMutex::new(Vec::new());

/// Records a link for each cell in `newly_retired` (retired by the swap of `pairs`) to the cell that replaced it.
pub(crate) fn record(kernel: &CellNamespace, pairs: &[(&str, &str)], newly_retired: &[RetiredCellInfo]) {
    let mut links = Vec::new();
    for info in newly_retired {
        let Some((_, new)) = pairs.iter().find(|(old, _)| *old == info.name) else { continue };
        let Some(successor) = kernel.cell(new) else { continue };
        links.push(Link {
            retired_name: info.name.clone(),
            retired_ranges: info.ranges.clone(),
            successor_name: String::from(*new),
            successor_ranges: successor.address_ranges(),
        });
    }
    LINKS.lock().extend(links);
}

/// The links whose retired cell is still in `retired`; the others are dropped for good (that cell was freed).
pub(crate) fn live_links(retired: &[RetiredCellInfo]) -> Vec<Link> {
    let mut links = LINKS.lock();
    links
        .retain(|link| retired.iter().any(|info| info.name == link.retired_name && info.ranges == link.retired_ranges));
    links.clone()
}
