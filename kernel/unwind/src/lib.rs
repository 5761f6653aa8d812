//! The unwinder: DWARF call-frame information, LSDAs and landing pads, for panics and CPU exceptions in cells.
//!
//! Every loaded cell keeps its `.eh_frame` (CIEs and FDEs) and `.gcc_except_table` (LSDAs); the base image keeps
//! its own between linker symbols. This crate maps a PC to the FDE describing it, evaluates the CFI with gimli in
//! fixed-size storage (no heap on the fault path), walks frames across cells and the base image, reads LSDA
//! call-site tables, and (on x86_64) enters landing pads so that a panicking or faulting task runs every `Drop`.
//!
//! # Key types
//! - [`UnwindRegistry`] / [`UnwindInfo`] / [`UnwindInfoDescription`]: unwind info per code range, sorted, with a
//!   sorted FDE index each; [`global_registry`] is the kernel's.
//! - [`Registers`] (DWARF numbering, psABI 3.6.2), [`StackReader`] ([`DirectMemory`], [`SliceStack`]).
//! - [`CfiContext`] ([`FixedStorage`]), [`caller_registers`]: one CFI step.
//! - [`FrameIter`] / [`Frame`] / [`FrameCursor`]: the frame walker; [`EndReason`], [`UnwindError`].
//! - [`find_action`] / [`EhAction`]: the LSDA and the personality decision.
//! - [`backtrace`] / [`write_backtrace`] with a [`Symbolizer`]: stack traces.
//! - [`UnwindCause`]: why a task unwinds.
//! - Runtime (x86_64): [`start_unwinding`], [`start_unwinding_past_abort`], [`start_unwinding_from`],
//!   [`start_unwinding_at`],
//!   [`resume_unwinding`], [`catch_unwind`], [`set_end_handler`], [`set_unwind_hooks`],
//!   [`with_current_registers`], [`write_current_backtrace`]; see `runtime/mod.rs` for the landing-pad protocol.
//!
//! # Control flow
//! 1. At boot nano_core registers the base image (`__text_*`, `__eh_frame_*`, `__gcc_except_table_*`); the
//!    namespace glue registers every cell as it loads (text region, `.eh_frame`, `.gcc_except_table*`) and
//!    unregisters it on unload. Registration indexes the FDEs (there is no `.eh_frame_hdr` in `ET_REL` objects).
//! 2. A walk looks up each PC (a return address minus 1, or an exact faulting PC): binary search over the code
//!    ranges, then over the FDE index; gimli evaluates the row; the caller's registers follow from its rules.
//! 3. A panic or fault starts the runtime, which enters each frame's landing pads in turn (`_Unwind_Resume`
//!    continues), until `catch_unwind` catches it or the end handler ends the task.
//!
//! # What must be in nano_core
//! The crate is a dependency of nano_core (so in the base image): `_Unwind_Resume` and the panic handler live in
//! nano_core and must reach it before any cell is loaded, and the registry must exist before the first cell
//! registers. Cells above (the task layer, the exception handlers, `bt`) use it through nano_core's copy.
#![cfg_attr(not(test), no_std)]
#![feature(core_intrinsics)]
#![allow(internal_features, reason = "catch_unwind is built on core::intrinsics::catch_unwind, like std's")]

extern crate alloc;

mod backtrace;
mod cause;
mod cfi;
mod frames;
mod lsda;
mod memory;
mod registers;
mod registry;
#[cfg(target_arch = "x86_64")]
mod runtime;
#[cfg(target_os = "none")]
mod self_test;

pub use backtrace::{BacktraceLine, BacktraceSummary, SymbolInfo, Symbolizer, backtrace, write_backtrace};
pub use cause::{ExceptionCause, FILE_NAME_CAPACITY, FixedText, PANIC_MESSAGE_CAPACITY, PanicCause, UnwindCause};
pub use cfi::{
    CallerState, CfiContext, CfiRow, FdeDetails, FixedStorage, MAX_REGISTER_RULES, MAX_REMEMBERED_STATES, StepError,
    caller_registers, new_context, row_for_address,
};
pub use frames::{DEFAULT_FRAME_LIMIT, EndReason, Frame, FrameCursor, FrameIter, UnwindError};
pub use lsda::{CatchType, EhAction, LsdaError, find_action};
pub use memory::{DirectMemory, MemoryReadError, SliceStack, StackReader};
pub use registers::{
    CALLEE_SAVED, R8, R9, R10, R11, R12, R13, R14, R15, RA, RAX, RBP, RBX, RCX, RDI, RDX, REGISTER_COUNT, RSI, RSP,
    Registers,
};
pub use registry::{
    FdeRecord, LookupError, RegisterError, UnwindInfo, UnwindInfoDescription, UnwindInfoId, UnwindRegistry,
};
#[cfg(target_arch = "x86_64")]
pub use runtime::{
    EXCEPTION_CLASS, EndHandler, EndOfUnwind, ExceptionObject, POOL_SIZE, StopPoint, UnwindEnd, UnwindOptions,
    catch_unwind, is_own_exception, pool_in_use, resume_unwind, resume_unwinding, set_end_handler, set_unwind_hooks,
    start_unwinding, start_unwinding_at, start_unwinding_from, start_unwinding_past_abort, with_current_registers,
    write_current_backtrace,
};
#[cfg(target_os = "none")]
pub use self_test::{SelfTestError, self_test};

/// The kernel's registry: the base image and every loaded cell.
pub fn global_registry() -> &'static UnwindRegistry {
    static REGISTRY: UnwindRegistry = UnwindRegistry::new();
    &REGISTRY
}
