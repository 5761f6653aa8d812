//! Where the running system's two `CellNamespace`s are kept.
//!
//! nano_core builds the kernel namespace (kernel cells, layered on the base image) and the application namespace
//! (applications, layered on the kernel namespace) from the boot modules, then [`install`]s them here, once. Cells such
//! as the shell reach them through [`kernel_namespace`] and [`application_namespace`].
//!
//! This is shared state by necessity (there is one running system); it is written once at boot and never changed.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::sync::Arc;
use cell_namespace::CellNamespace;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Once;

/// The running system's namespaces.
pub struct SystemNamespaces {
    /// Kernel cells, layered on the base image (nano_core).
    pub kernel: Arc<CellNamespace>,
    /// Applications, layered on `kernel`.
    pub application: Arc<CellNamespace>,
}

/// Written once by nano_core before the first cell runs; read-only afterwards.
static NAMESPACES: Once<SystemNamespaces> = Once::new();

/// Records the system's namespaces. Only the first call has an effect; returns whether this call installed them.
pub fn install(namespaces: SystemNamespaces) -> bool {
    let mut installed = false;
    NAMESPACES.call_once(|| {
        installed = true;
        namespaces
    });
    installed
}

/// The kernel namespace, or `None` before nano_core installed it.
pub fn kernel_namespace() -> Option<&'static Arc<CellNamespace>> {
    NAMESPACES.get().map(|namespaces| &namespaces.kernel)
}

/// The application namespace, or `None` before nano_core installed it.
pub fn application_namespace() -> Option<&'static Arc<CellNamespace>> {
    NAMESPACES.get().map(|namespaces| &namespaces.application)
}

/// A cell name copied into fixed storage (64 bytes, cut at a character boundary), so a fault report can name a
/// cell without allocating the name.
#[derive(Clone, Copy)]
pub struct CellName {
    bytes: [u8; 64],
    length: usize,
}

impl CellName {
    fn new(name: &str) -> Self {
        let mut cell_name = CellName { bytes: [0; 64], length: 0 };
        let mut length = name.len().min(cell_name.bytes.len());
        while !name.is_char_boundary(length) {
            length -= 1;
        }
        cell_name.bytes[..length].copy_from_slice(&name.as_bytes()[..length]);
        cell_name.length = length;
        cell_name
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.length]).unwrap_or("?")
    }
}

/// Names the loaded cell (kernel namespace first, then the application namespace) one of whose sections contains
/// `address` (`nano_core` for a symbol of the base image); `None` for an address in no section, or before the
/// namespaces are installed.
///
/// Takes the namespaces' read locks: a fault report calling this hangs if the fault happened while one of them was
/// write-locked on this CPU.
pub fn cell_containing(address: u64) -> Option<CellName> {
    let address = memory_structs::VirtualAddress::try_new(address as usize).ok()?;
    [kernel_namespace()?, application_namespace()?].into_iter().find_map(|namespace| {
        namespace
            .loaded_cells()
            .into_iter()
            .find(|cell| cell.section_containing(address).is_some())
            .map(|cell| CellName::new(cell.name()))
    })
}

/// Like [`cell_containing`], but never waits and never allocates (for the CPU-exception report): the kernel
/// namespace first, then the application namespace.
///
/// # Errors
/// [`cell_namespace::NamespaceBusy`] if a namespace's cell table is write-locked right now (the address was not
/// found in the namespaces checked before it), or lookups are distrusted ([`lookups_distrusted`]).
pub fn try_cell_containing(address: u64) -> Result<Option<CellName>, cell_namespace::NamespaceBusy> {
    if lookups_distrusted() {
        return Err(cell_namespace::NamespaceBusy);
    }
    let Ok(address) = memory_structs::VirtualAddress::try_new(address as usize) else { return Ok(None) };
    for namespace in [kernel_namespace(), application_namespace()].into_iter().flatten() {
        if let Some(name) = namespace.try_cell_containing(address, CellName::new)? {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// CPUs whose lookups [`try_cell_containing_on_cpu`] tracks (a CPU index beyond this is looked up untracked).
const TRACKED_CPUS: usize = 64;

/// Per CPU: a tracked lookup is in flight (set and cleared by [`try_cell_containing_on_cpu`]).
static IN_LOOKUP: [AtomicBool; TRACKED_CPUS] = [const { AtomicBool::new(false) }; TRACKED_CPUS];

/// Set once a lookup was found to have faulted: the namespaces' cell tables are damaged (e.g. a wild write by a
/// faulty task over the heap), and every later lookup is skipped.
static DISTRUSTED: AtomicBool = AtomicBool::new(false);

/// Whether cell lookups are skipped because one faulted (the namespaces' in-memory cell tables are damaged).
/// Once set, it stays set: the damage is not repaired.
pub fn lookups_distrusted() -> bool {
    DISTRUSTED.load(Ordering::Acquire)
}

/// [`try_cell_containing`] for the CPU-exception report and fault recovery, on CPU `cpu` with interrupts
/// disabled (so no other lookup of this CPU can start meanwhile, but an exception inside this one): a lookup
/// whose reading of a damaged cell table faulted never returns, so the next lookup on the same CPU (the report
/// of that fault, or its recovery) finds this CPU's lookup still in flight. It then distrusts every later
/// lookup ([`lookups_distrusted`]) instead of faulting in the same place again, which in the fault-injection
/// campaign looped between the report and the task layer until the machine hung.
///
/// # Errors
/// [`cell_namespace::NamespaceBusy`] if a namespace's cell table is write-locked right now, or lookups are
/// distrusted (including from this call on).
pub fn try_cell_containing_on_cpu(cpu: usize, address: u64) -> Result<Option<CellName>, cell_namespace::NamespaceBusy> {
    let Some(in_lookup) = IN_LOOKUP.get(cpu) else { return try_cell_containing(address) };
    if in_lookup.swap(true, Ordering::AcqRel) {
        // This CPU's previous lookup never finished: it faulted (interrupts were off, so nothing else ran here).
        DISTRUSTED.store(true, Ordering::Release);
        in_lookup.store(false, Ordering::Release);
        return Err(cell_namespace::NamespaceBusy);
    }
    let result = try_cell_containing(address);
    in_lookup.store(false, Ordering::Release);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_left_in_flight_distrusts_every_later_one() {
        // No namespaces installed: a lookup finds nothing, and is trusted.
        assert_eq!(try_cell_containing_on_cpu(3, 0xffff_ffff_8010_0000).map(|name| name.is_some()), Ok(false));
        assert!(!lookups_distrusted());
        // CPU 3's lookup faulted: its flag stays set.
        IN_LOOKUP[3].store(true, Ordering::Release);
        assert_eq!(
            try_cell_containing_on_cpu(3, 0xffff_ffff_8010_0000).map(|_| ()),
            Err(cell_namespace::NamespaceBusy)
        );
        assert!(lookups_distrusted());
        assert!(try_cell_containing(0xffff_ffff_8010_0000).is_err());
        assert!(try_cell_containing_on_cpu(4, 0xffff_ffff_8010_0000).is_err());
    }
}
