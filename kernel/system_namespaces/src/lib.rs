//! Where the running system's two `CellNamespace`s are kept.
//!
//! nano_core builds the kernel namespace (kernel cells, layered on the base image) and the application namespace
//! (applications, layered on the kernel namespace) from the boot modules, then [`install`]s them here, once. Cells such
//! as the shell reach them through [`kernel_namespace`] and [`application_namespace`].
//!
//! This is shared state by necessity (there is one running system); it is written once at boot and never changed.
#![no_std]

extern crate alloc;

use alloc::sync::Arc;
use cell_namespace::CellNamespace;
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
/// found in the namespaces checked before it).
pub fn try_cell_containing(address: u64) -> Result<Option<CellName>, cell_namespace::NamespaceBusy> {
    let Ok(address) = memory_structs::VirtualAddress::try_new(address as usize) else { return Ok(None) };
    for namespace in [kernel_namespace(), application_namespace()].into_iter().flatten() {
        if let Some(name) = namespace.try_cell_containing(address, CellName::new)? {
            return Ok(Some(name));
        }
    }
    Ok(None)
}
