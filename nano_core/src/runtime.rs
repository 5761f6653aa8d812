//! Language items that a `no_std` kernel built with `panic=unwind` must provide, and the unwinder's boot glue.
//!
//! A panic unwinds the current stack with the `unwind` crate: every frame's landing pads run (so every `Drop` runs)
//! until a `unwind::catch_unwind` catches it (the scheduler wraps every task body in one) or the unwind ends, in
//! which case the end handler (a default here: report and stop; the task layer installs its own) takes over.
//! A panic that must not unwind (`PanicInfo::can_unwind()` false: a panic inside a drop during unwinding, or out
//! of a `nounwind` function) prints and stops.
//!
//! Registration: [`init_unwinding`] registers the base image (`__text_*`, `__eh_frame_*`,
//! `__gcc_except_table_*`); [`register_loaded_cells`] the cells loaded at boot; [`UnwindRegistration`], the
//! namespace's [`cell_namespace::CellObserver`], every cell published or removed later (loads, swaps).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use cell_loader::SectionKind;
use cell_namespace::LoadedCell;
use memory_structs::VirtualAddress;

/// Set once the base image's unwind info is registered (after the heap exists).
static UNWINDING_READY: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    serial::write_fmt(format_args!("\nPANIC: {info}\n"));
    if !info.can_unwind() || !UNWINDING_READY.load(Ordering::Acquire) {
        serial::write_str("cannot unwind; stopping\n");
        power::exit(power::ExitCode::Failure)
    }
    let cause = unwind::UnwindCause::Panic(unwind::PanicCause::from_panic_info(info));
    unwind::start_unwinding(cause, unwind::UnwindOptions::default())
}

/// The personality routine. The `unwind` runtime reads LSDAs itself and never calls it; it exists because the
/// compiler names it in every CIE with landing pads.
#[lang = "eh_personality"]
extern "C" fn eh_personality() {}

/// Called by a cleanup landing pad, with the exception object it received in RAX, to continue unwinding.
///
/// # Safety
/// Only compiler-generated landing pads call it, with the pointer the unwinder gave them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_Resume(exception: *mut u8) -> ! {
    // SAFETY: the caller is a landing pad entered by the unwind runtime, passing on its exception pointer.
    unsafe { unwind::resume_unwinding(exception) }
}

/// The default end of an uncaught unwind (outside any task): report and stop the machine.
fn end_of_unwind(end: unwind::UnwindEnd) -> ! {
    serial::write_fmt(format_args!(
        "\nunwinding ended without a catch: {} ({:?}; {} frames, {} landing pads); stopping\n",
        end.cause, end.end, end.frames, end.landing_pads
    ));
    power::exit(power::ExitCode::Failure)
}

/// Registers the base image's unwind info (`.text`, `.eh_frame`, `.gcc_except_table` from the linker script) and
/// installs the default end handler. Call once after the heap is up (registration builds the FDE index).
/// Returns the number of FDEs indexed.
///
/// # Errors
/// The registry's error if the base image's `.eh_frame` does not parse.
pub fn init_unwinding() -> Result<usize, unwind::RegisterError> {
    unsafe extern "C" {
        static __text_start: u8;
        static __text_end: u8;
        static __eh_frame_start: u8;
        static __eh_frame_end: u8;
        static __gcc_except_table_start: u8;
        static __gcc_except_table_end: u8;
    }
    // Linker symbols: only their addresses are used, never their (non-existent) contents.
    let address = |symbol: *const u8| VirtualAddress::try_new(symbol as usize).unwrap_or_default();
    let except_table = address(&raw const __gcc_except_table_start)..address(&raw const __gcc_except_table_end);
    let description = unwind::UnwindInfoDescription {
        name: String::from("nano_core"),
        text: address(&raw const __text_start)..address(&raw const __text_end),
        eh_frame: address(&raw const __eh_frame_start)..address(&raw const __eh_frame_end),
        gcc_except_tables: if except_table.is_empty() { Vec::new() } else { alloc::vec![except_table] },
        owner: None,
    };
    unwind::set_end_handler(end_of_unwind);
    // SAFETY: the base image's .eh_frame and .gcc_except_table are in its read-only data, mapped and never changed.
    let info = unsafe { unwind::global_registry().register(description) }?;
    UNWINDING_READY.store(true, Ordering::Release);
    Ok(info.fdes().len())
}

/// The registration of a loaded cell: its text sections' span, its `.eh_frame` and `.gcc_except_table*`; `None`
/// for the base image and for a cell without text or `.eh_frame`. The entry keeps the cell (and so its memory)
/// alive until unregistered.
fn cell_unwind_description(cell: &Arc<LoadedCell>) -> Option<unwind::UnwindInfoDescription> {
    if cell.is_base_image() {
        return None;
    }
    let range = |start: usize, size: usize| VirtualAddress::new(start)..VirtualAddress::new(start + size);
    let text = cell.sections().iter().filter(|section| section.kind() == SectionKind::Text);
    let start = text.clone().map(|section| section.address().value()).min()?;
    let end = text.map(|section| section.address().value() + section.size_in_bytes()).max()?;
    let eh_frame = cell.eh_frames().next()?;
    Some(unwind::UnwindInfoDescription {
        name: String::from(cell.name()),
        text: VirtualAddress::new(start)..VirtualAddress::new(end),
        eh_frame: range(eh_frame.address().value(), eh_frame.size_in_bytes()),
        gcc_except_tables: cell
            .gcc_except_tables()
            .map(|table| range(table.address().value(), table.size_in_bytes()))
            .collect(),
        owner: Some(cell.clone()),
    })
}

/// Registers every loaded cell of `namespace` that is not registered yet (the cells loaded before the observer
/// was installed). Returns how many were registered.
pub fn register_loaded_cells(namespace: &cell_namespace::CellNamespace) -> usize {
    let mut registered = 0;
    for cell in namespace.loaded_cells() {
        let text_start = match cell_unwind_description(&cell) {
            Some(description) => description.text.start.value() as u64,
            None => continue,
        };
        if unwind::global_registry().find(text_start).ok().flatten().is_some() {
            continue;
        }
        if UnwindRegistration::register(&cell) {
            registered += 1;
        }
    }
    registered
}

/// The namespace observer that keeps the unwinder's registry in step with the loaded cells.
pub struct UnwindRegistration;

/// Protects: which cell (by `Arc` address; unique while registered, since the registry entry owns the `Arc`) has
/// which registry id.
static REGISTERED: spin::Mutex<Vec<(usize, unwind::UnwindInfoId)>> = spin::Mutex::new(Vec::new());

impl UnwindRegistration {
    /// Registers `cell`'s unwind info; returns whether it was registered.
    fn register(cell: &Arc<LoadedCell>) -> bool {
        let Some(description) = cell_unwind_description(cell) else { return false };
        // SAFETY: the cell's sections are loaded, relocated and finalized; they only change by swap patching of
        // relocations in text and data (never .eh_frame or .gcc_except_table), and `owner` keeps them alive.
        match unsafe { unwind::global_registry().register(description) } {
            Ok(info) => {
                REGISTERED.lock().push((Arc::as_ptr(cell) as usize, info.id()));
                true
            }
            Err(error) => {
                log::warn!("unwind info of cell {} not registered: {error}", cell.name());
                false
            }
        }
    }
}

impl cell_namespace::CellObserver for UnwindRegistration {
    fn loaded(&self, cell: &Arc<LoadedCell>) {
        Self::register(cell);
    }

    fn holds_reference(&self, cell: &Arc<LoadedCell>) -> bool {
        REGISTERED.lock().iter().any(|(key, _)| *key == Arc::as_ptr(cell) as usize)
    }

    fn removed(&self, cell: &Arc<LoadedCell>) {
        let mut registered = REGISTERED.lock();
        if let Some(index) = registered.iter().position(|(key, _)| *key == Arc::as_ptr(cell) as usize) {
            let (_, id) = registered.swap_remove(index);
            drop(registered);
            unwind::global_registry().unregister(id);
        }
    }
}
