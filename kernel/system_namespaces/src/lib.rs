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
