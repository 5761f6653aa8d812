//! The running system's one `BootInfo`, published once by nano_core for cells that need boot facts later
//! (the ACPI RSDP for interrupt and CPU bring-up, the kernel command line for test modes).

use spin::Once;

use crate::BootInfo;

/// Written once by nano_core after conversion; read-only afterwards.
static GLOBAL: Once<&'static BootInfo> = Once::new();

/// Publishes `info` as the system's boot information. Only the first call has an effect; returns whether this call
/// published it.
pub fn install_global(info: &'static BootInfo) -> bool {
    let mut installed = false;
    GLOBAL.call_once(|| {
        installed = true;
        info
    });
    installed
}

/// The system's boot information, or `None` before nano_core published it.
pub fn global() -> Option<&'static BootInfo> {
    GLOBAL.get().copied()
}
