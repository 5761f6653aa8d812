//! The first cell: nano_core loads it by name from its object file and calls [`init`].
//!
//! Everything the captain uses is loaded on demand: its reference to `shell::run` makes the loader find the `shell`
//! cell in the manifest and load it (and, recursively, what the shell needs) before `captain` itself is published.
//!
//! Control flow of [`init`]:
//! 1. report that the system above nano_core is running from loaded cells;
//! 2. (later issues: interrupts, tasks, other CPUs, devices);
//! 3. run the serial shell, which never returns.
#![no_std]

/// Entry point called by nano_core once the kernel namespace exists. Never returns.
#[inline(never)]
pub fn init() -> ! {
    log::info!("captain: running from a loaded cell; starting the serial shell");
    shell::run()
}
