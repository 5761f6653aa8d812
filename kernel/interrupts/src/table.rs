//! The IDT itself, its loading on each CPU, and handler registration for vectors 32-255.

use core::cell::UnsafeCell;
use spin::{Mutex, Once};
use x86_64::VirtAddr;
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::structures::DescriptorTablePointer;
use x86_64::structures::idt::{Entry, HandlerFunc, InterruptDescriptorTable, InterruptStackFrame};

use crate::{FIRST_DEVICE_VECTOR, SPURIOUS_VECTOR, exceptions};

/// A handler for a device or IPI vector. It runs with interrupts disabled (interrupt gate) and must send the local
/// APIC its end-of-interrupt itself (`apic::end_of_interrupt`).
pub type InterruptHandler = extern "x86-interrupt" fn(InterruptStackFrame);

/// Why a handler could not be registered or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// Vectors 0-31 are the CPU's exceptions; this crate owns them.
    ExceptionVector(u8),
    /// The vector is reserved by this crate (the spurious-interrupt vector).
    ReservedVector(u8),
    /// The vector already has a handler (at this address); deregister it first or use `replace_handler`.
    AlreadyRegistered {
        /// The vector.
        vector: u8,
        /// The address of the handler in place.
        existing: usize,
    },
    /// `deregister_handler` on a vector without a handler.
    NotRegistered(u8),
    /// [`init_bsp`] has not run.
    NotInitialized,
    /// The registration lock is held (only [`move_handlers`] and a swap's state transfer try it instead of waiting).
    Busy,
}

/// The IDT. The hardware reads it on every CPU at any time; Rust code touches it only under [`REGISTRATION`].
struct IdtCell(UnsafeCell<InterruptDescriptorTable>);

// SAFETY: the only Rust access to the inner table is through `with_table`, which holds the REGISTRATION lock (with
// interrupts disabled), so accesses are serialised; the CPUs' own reads of the IDT are hardware accesses.
unsafe impl Sync for IdtCell {}

/// The one IDT, built once by [`init_bsp`]; it stays at this address (a `static`) for every CPU's IDTR.
static IDT: Once<IdtCell> = Once::new();

/// Which device/IPI vectors have a handler (and which). The lock protects this table and every write to the IDT.
static REGISTRATION: Mutex<[Option<InterruptHandler>; 256]> = Mutex::new([None; 256]);

/// Runs `f` on the IDT and the registration table, under the lock, with interrupts disabled on this CPU.
fn with_table<R>(
    f: impl FnOnce(&mut InterruptDescriptorTable, &mut [Option<InterruptHandler>; 256]) -> R,
) -> Result<R, RegisterError> {
    let cell = IDT.get().ok_or(RegisterError::NotInitialized)?;
    Ok(without_interrupts(|| {
        let mut registered = REGISTRATION.lock();
        // SAFETY: the REGISTRATION lock is held, so this is the only Rust reference to the table (see `IdtCell`).
        let table = unsafe { &mut *cell.0.get() };
        f(table, &mut registered)
    }))
}

/// Builds the IDT (exception stubs, IST stacks for #DF, #PF and NMI, the spurious-interrupt handler) and loads it on
/// the calling CPU. Call once, on the bootstrap CPU, after `cpu::init_current` (the IST slots live in its TSS).
/// Later calls only load the table.
pub fn init_bsp() {
    IDT.call_once(|| {
        let mut table = InterruptDescriptorTable::new();
        exceptions::install(&mut table);
        table[SPURIOUS_VECTOR].set_handler_fn(spurious_interrupt);
        IdtCell(UnsafeCell::new(table))
    });
    load();
}

/// Loads the shared IDT into the calling CPU's IDTR. Does nothing before [`init_bsp`].
pub fn load() {
    let Some(cell) = IDT.get() else { return };
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<InterruptDescriptorTable>() - 1) as u16,
        base: VirtAddr::from_ptr(cell.0.get()),
    };
    // SAFETY: the pointer describes the whole 'static IDT, whose entries are valid handlers or not-present entries.
    unsafe { x86_64::instructions::tables::lidt(&pointer) };
}

fn check_vector(vector: u8) -> Result<(), RegisterError> {
    if vector < FIRST_DEVICE_VECTOR {
        Err(RegisterError::ExceptionVector(vector))
    } else if vector == SPURIOUS_VECTOR {
        Err(RegisterError::ReservedVector(vector))
    } else {
        Ok(())
    }
}

/// Installs `handler` for `vector` on every CPU (the IDT is shared). Register before unmasking the interrupt
/// source: an interrupt arriving while the entry is being written could see a torn entry.
///
/// # Errors
/// [`RegisterError::ExceptionVector`], [`RegisterError::ReservedVector`], [`RegisterError::AlreadyRegistered`],
/// [`RegisterError::NotInitialized`].
pub fn register_handler(vector: u8, handler: InterruptHandler) -> Result<(), RegisterError> {
    check_vector(vector)?;
    with_table(|table, registered| {
        if let Some(existing) = registered[vector as usize] {
            return Err(RegisterError::AlreadyRegistered { vector, existing: existing as usize });
        }
        table[vector].set_handler_fn(handler);
        registered[vector as usize] = Some(handler);
        Ok(())
    })?
}

/// Installs `handler` for `vector` whether or not one is registered, returning the previous one. The entry is
/// rewritten with interrupts disabled on this CPU; another CPU taking this vector meanwhile could see a torn entry,
/// so replace handlers of sources that are quiet or routed to this CPU.
///
/// # Errors
/// [`RegisterError::ExceptionVector`], [`RegisterError::ReservedVector`], [`RegisterError::NotInitialized`].
pub fn replace_handler(vector: u8, handler: InterruptHandler) -> Result<Option<InterruptHandler>, RegisterError> {
    check_vector(vector)?;
    with_table(|table, registered| {
        table[vector].set_handler_fn(handler);
        registered[vector as usize].replace(handler)
    })
}

/// Removes the handler of `vector`, returning it; the entry becomes not-present (an interrupt on it then raises #NP,
/// which is reported). Mask the source first.
///
/// # Errors
/// [`RegisterError::NotRegistered`], [`RegisterError::ExceptionVector`], [`RegisterError::ReservedVector`],
/// [`RegisterError::NotInitialized`].
pub fn deregister_handler(vector: u8) -> Result<InterruptHandler, RegisterError> {
    check_vector(vector)?;
    with_table(|table, registered| {
        let handler = registered[vector as usize].take().ok_or(RegisterError::NotRegistered(vector))?;
        table[vector] = Entry::<HandlerFunc>::missing();
        Ok(handler)
    })?
}

/// For a live swap of this cell (`crate::cell_state_transfer`, on the new copy): the default copy carried the IDT
/// and the handler table over, so every device and IPI gate is already right, but the gates of this cell's own
/// entries (the exception stubs, the spurious-interrupt handler) still point into the old copy. Re-points them at
/// this copy's. Writes only this copy's IDT, which no CPU uses yet.
///
/// # Errors
/// [`RegisterError::NotInitialized`] before [`init_bsp`] (nothing to adopt); [`RegisterError::Busy`] if the copied
/// registration lock says "held" (cannot happen inside a stop-the-world: it is only held with interrupts disabled).
pub(crate) fn adopt_copied_table() -> Result<(), RegisterError> {
    let cell = IDT.get().ok_or(RegisterError::NotInitialized)?;
    let _registered = REGISTRATION.try_lock().ok_or(RegisterError::Busy)?;
    // SAFETY: the REGISTRATION lock is held (see `IdtCell`); no CPU's IDTR points at this copy's table yet.
    let table = unsafe { &mut *cell.0.get() };
    exceptions::install(table);
    table[SPURIOUS_VECTOR].set_handler_fn(spurious_interrupt);
    Ok(())
}

/// Replaces the handler of each `(vector, handler)` whose registered handler lies in `old_copy` (an old copy of
/// the registering cell), leaving vectors registered by anyone else, or not registered, alone. Returns how many it
/// replaced. Meant for a cell's state transfer (see [`crate::move_handlers_at_commit`]), inside a stop-the-world,
/// so no other CPU can take the vector while its entry is rewritten; elsewhere the caveat of [`replace_handler`]
/// applies.
///
/// # Errors
/// [`RegisterError::NotInitialized`]; [`RegisterError::Busy`] if the registration lock is held (never inside a
/// stop-the-world, see [`adopt_copied_table`]); the vector errors of [`register_handler`].
pub fn move_handlers(
    handlers: &[(u8, InterruptHandler)],
    old_copy: &dyn Fn(usize) -> bool,
) -> Result<usize, RegisterError> {
    for &(vector, _) in handlers {
        check_vector(vector)?;
    }
    let cell = IDT.get().ok_or(RegisterError::NotInitialized)?;
    let mut registered = REGISTRATION.try_lock().ok_or(RegisterError::Busy)?;
    // SAFETY: the REGISTRATION lock is held, so this is the only Rust reference to the table (see `IdtCell`); the
    // CPUs' own reads of the entries are hardware accesses (a torn read is the caller's concern, see above).
    let table = unsafe { &mut *cell.0.get() };
    let mut moved = 0;
    for &(vector, handler) in handlers {
        if registered[vector as usize].is_some_and(|existing| old_copy(existing as usize)) {
            table[vector].set_handler_fn(handler);
            registered[vector as usize] = Some(handler);
            moved += 1;
        }
    }
    Ok(moved)
}

/// The local APIC's spurious interrupt: nothing to do, and no end-of-interrupt (SDM Vol. 3A 10.9).
extern "x86-interrupt" fn spurious_interrupt(_frame: InterruptStackFrame) {}
