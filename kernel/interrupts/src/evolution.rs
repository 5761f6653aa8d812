//! How the IDT, and the handlers other cells registered in it, survive live swaps.
//!
//! **A swap of this cell** (`swap interrupts interrupts`). Every CPU's IDTR holds the address of the IDT, a static
//! of this cell: a captured address, not a relocation. The default state copy carries the IDT and the handler
//! table into the new copy, then [`cell_state_transfer`] (on the new copy, inside the swap's stop-the-world)
//! re-points the new IDT's own entries (exception stubs, spurious interrupt) at the new copy and defers until the
//! commit ([`cell_namespace::StateTransfer::after_commit`]) the `lidt` of the new IDT on the swapping CPU. Every
//! other CPU is spinning in the stop-IPI handler with interrupts disabled; on its way out, after its serializing
//! instruction, that handler calls [`load`](crate::load) through a relocation into this cell, which the commit
//! rewrote, so each CPU loads the new copy's IDT before it can take another interrupt (the old copy is freed, if
//! nothing else pins it, only after every CPU has left the stop). A swap that aborts never runs the deferred
//! `lidt`, and the stopped CPUs reload the old IDT, which is still the current one.
//!
//! **A swap of a cell that registered handlers** (`apic`, `smp`, `tasking`, `serial_input`, `push_receiver`): the
//! gates hold the old copy's handler addresses. Its `cell_state_transfer` calls [`move_handlers_at_commit`] with
//! its own handlers; at the commit, each vector whose handler lies in the old copy gets the new copy's (with every
//! other CPU stopped, so no gate is read half-written). Vectors registered by anyone else are left alone.
//!
//! Limit: a CPU parked for good (`smp::park_current_cpu`) is never stopped and never reloads; it runs with
//! interrupts disabled forever, and this kernel sends no NMIs, the only interrupt that could still reach it.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use cell_namespace::{AddressRange, StateTransfer};
use memory_structs::VirtualAddress;

use crate::InterruptHandler;
use crate::table::{self, RegisterError};

/// The body of `crate::cell_state_transfer`.
pub(crate) fn transfer(transfer: &StateTransfer<'_>) -> Result<(), String> {
    match table::adopt_copied_table() {
        Ok(()) => {}
        Err(RegisterError::NotInitialized) => return Ok(()),
        Err(error) => return Err(alloc::format!("cannot adopt the copied IDT: {error:?}")),
    }
    transfer.after_commit(Box::new(table::load));
    Ok(())
}

/// For the `cell_state_transfer` of a cell that registered interrupt handlers: at the swap's commit, every vector
/// of `handlers` whose registered handler lies in the old copy of the cell is given the new copy's handler (the
/// one listed). Vectors not registered, or registered by another cell, are left alone.
pub fn move_handlers_at_commit(transfer: &StateTransfer<'_>, handlers: &[(u8, InterruptHandler)]) {
    let old_copy = transfer.old_cell().address_ranges();
    let handlers: Vec<(u8, InterruptHandler)> = handlers.to_vec();
    transfer.after_commit(Box::new(move || {
        let in_old_copy = |address: usize| in_ranges(&old_copy, address);
        // After the commit nothing can be reported or undone: an error (no IDT yet, or a listed vector that is not
        // a device vector: a bug of the caller) leaves the old handler registered, which keeps the old copy
        // retired (the pin finder sees the gate), so it stays safe.
        let _ = table::move_handlers(&handlers, &in_old_copy);
    }));
}

/// Whether `address` lies in one of `ranges`.
fn in_ranges(ranges: &[AddressRange], address: usize) -> bool {
    VirtualAddress::try_new(address).is_ok_and(|address| ranges.iter().any(|range| range.contains(address)))
}
