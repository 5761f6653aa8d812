//! The unwinding runtime: start an unwind, enter landing pads, continue in `_Unwind_Resume`, catch, and end.
//!
//! Single-phase, like Theseus and unlike libgcc's search-then-cleanup: the runtime interprets every frame's LSDA
//! itself and enters each landing pad as it is found. The `eh_personality` lang item is never called.
//!
//! 1. [`start_unwinding`] (panic) captures the current registers; [`start_unwinding_from`] (CPU exception)
//!    takes the faulting frame's registers. Either allocates an [`ExceptionObject`] (static pool, heap only if
//!    exhausted) holding the cause, the walk position and the options.
//! 2. The walk ([`crate::FrameIter`] over [`crate::global_registry`]) looks at each frame's LSDA
//!    ([`crate::find_action`]). For a cleanup, catch or filter landing pad it saves the position after the frame
//!    in the object and jumps to the pad with the frame's callee-saved registers and RSP, RAX = the object and
//!    RDX = the selector. A faulting (exact) frame's own pads are skipped: the compiler placed them for calls,
//!    and the fault may have left that frame's state half-built, so only its callers are cleaned up.
//! 3. A cleanup pad runs the drops and calls `_Unwind_Resume(object)`; nano_core's `_Unwind_Resume` calls
//!    [`resume_unwinding`], which continues the walk from the saved position (step 2).
//! 4. A catch pad is what `core::intrinsics::catch_unwind` emits (a catch-all clause): [`catch_unwind`]'s catch
//!    function receives the object in its `payload` argument, takes the cause out, frees the object and returns
//!    `Err(cause)`. This is the same contract as std's `panic_unwind`: the payload pointer the intrinsic hands to
//!    the catch function is whatever RAX held at the landing pad, and only the runtime that raised it knows its type.
//! 5. The unwind ends without a catch when the walk ends (no unwind info, outermost frame, frame limit), at a
//!    configured [`StopPoint`], or on an error: the object is freed and the end handler
//!    ([`set_end_handler`]) gets an [`UnwindEnd`]. The task layer installs one that ends the current task with
//!    `Failed(cause)`; nano_core installs a default that prints and stops the machine.
//!
//! Panics while unwinding: Rust wraps drops that run in cleanup pads with an abort pad (`panic_in_cleanup`, a
//! non-unwinding panic, `PanicInfo::can_unwind()` false; `extern "C"` functions get one too). nano_core's panic
//! handler unwinds it anyway with [`start_unwinding_past_abort`], from where it happened: every landing pad up to
//! and including the frame whose abort pad raised it is skipped (the panic machinery's own abort pads, and the rest
//! of that frame's cleanup, as for a faulting frame), and its callers' pads run, up to the task's catch. The
//! earlier unwinds' objects, whose pads in the frames walked past never resume, are freed when this unwind lands
//! (`exception::release_abandoned`); heap-allocated ones (more than [`POOL_SIZE`] in flight) leak.

mod arch;
mod exception;

use core::mem::ManuallyDrop;
use core::ops::Range;
use core::sync::atomic::{AtomicPtr, Ordering};

use exception::StartPoint;
pub use exception::{EXCEPTION_CLASS, ExceptionObject, POOL_SIZE, pool_in_use};

use crate::cause::UnwindCause;
use crate::frames::{DEFAULT_FRAME_LIMIT, EndReason, FrameCursor, FrameIter, UnwindError};
use crate::lsda::{LsdaError, find_action};
use crate::memory::DirectMemory;
use crate::registers::Registers;
use crate::{BacktraceSummary, Symbolizer, global_registry, write_backtrace};
use arch::{CapturedRegisters, LandingRegisters, capture_registers_and_call, land};

/// Where an unwind stops without a catch, handing the cause to the end handler instead of unwinding further.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopPoint {
    /// Stop at the first frame whose CFA is at least this address (e.g. the top of the task's stack, minus the
    /// entry trampoline's frame).
    CfaAtLeast(u64),
    /// Stop at the first frame whose instruction pointer lies in this range (e.g. the task entry trampoline).
    Function(Range<u64>),
}

/// How an unwind proceeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnwindOptions {
    /// At most this many frames are walked.
    pub frame_limit: usize,
    /// Stop before this frame; `None` = unwind until a catch or the end of the stack.
    pub stop: Option<StopPoint>,
    /// Saved registers are only read inside this range (the task's stack); `None` = anywhere.
    pub stack_bounds: Option<Range<u64>>,
}

impl Default for UnwindOptions {
    fn default() -> Self {
        Self { frame_limit: DEFAULT_FRAME_LIMIT, stop: None, stack_bounds: None }
    }
}

/// Why an unwind ended without being caught.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndOfUnwind {
    /// The walk ended (no unwind info, outermost frame, frame limit).
    Walk(EndReason),
    /// A [`StopPoint`] was reached at this frame.
    StopPoint {
        /// The frame's instruction pointer.
        instruction_pointer: u64,
        /// The frame's CFA.
        cfa: u64,
    },
    /// The walk failed.
    Error(UnwindError),
    /// A frame's LSDA is malformed.
    Lsda {
        /// The LSDA's address.
        lsda: u64,
        /// What is wrong.
        error: LsdaError,
    },
    /// A frame's LSDA lies outside every registered `.gcc_except_table`.
    LsdaOutsideTables {
        /// The LSDA's address.
        lsda: u64,
    },
    /// `_Unwind_Resume` got an object this runtime did not create.
    ForeignException,
    /// [`start_unwinding_past_abort`] found no landing pad in flight on this stack (a non-unwinding panic raised
    /// directly, not from an abort pad): nothing is walked, no drop runs.
    NoPadInFlight,
}

/// What the end handler receives.
#[derive(Clone, Debug)]
pub struct UnwindEnd {
    /// Why the unwind happened.
    pub cause: UnwindCause,
    /// Why it ended.
    pub end: EndOfUnwind,
    /// Frames walked.
    pub frames: usize,
    /// Landing pads entered.
    pub landing_pads: usize,
}

/// Called when an unwind ends without a catch. Must not return: it ends the task or stops the CPU.
pub type EndHandler = fn(UnwindEnd) -> !;

/// The installed [`EndHandler`], as a pointer; null = none.
static END_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the end handler (replacing any previous one). nano_core installs a default at boot; the task layer
/// replaces it with one that ends the current task.
pub fn set_end_handler(handler: EndHandler) {
    END_HANDLER.store(handler as *mut (), Ordering::Release);
}

fn end_unwind(end: UnwindEnd) -> ! {
    let pointer = END_HANDLER.load(Ordering::Acquire);
    if pointer.is_null() {
        // No handler installed (only before nano_core's init): nothing sensible is left to do.
        loop {
            core::hint::spin_loop();
        }
    }
    // SAFETY: the only non-null values ever stored are `EndHandler` function pointers (`set_end_handler`).
    let handler = unsafe { core::mem::transmute::<*mut (), EndHandler>(pointer) };
    handler(end)
}

/// Called when an unwind starts (null: none); see [`set_unwind_hooks`].
static START_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
/// Called when [`catch_unwind`] catches an unwind of this runtime (null: none).
static CATCH_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the functions called on this CPU when an unwind starts (panic, fault, kill) and when
/// [`catch_unwind`] catches one: the task layer counts unwinds in flight per task with them, so that a kill never
/// starts a second unwind inside a landing pad of the first. They must not panic or unwind.
pub fn set_unwind_hooks(on_start: fn(), on_catch: fn()) {
    START_HOOK.store(on_start as *mut (), Ordering::Release);
    CATCH_HOOK.store(on_catch as *mut (), Ordering::Release);
}

fn call_hook(hook: &AtomicPtr<()>) {
    let pointer = hook.load(Ordering::Acquire);
    if !pointer.is_null() {
        // SAFETY: the only non-null values ever stored are `fn()` pointers (`set_unwind_hooks`).
        let hook = unsafe { core::mem::transmute::<*mut (), fn()>(pointer) };
        hook();
    }
}

/// Frees the object and calls the end handler.
///
/// # Safety
/// `object` is a live object from `exception::allocate`, unused afterwards.
unsafe fn finish(object: *mut ExceptionObject, frames: usize, end: EndOfUnwind) -> ! {
    // SAFETY: the caller's guarantee.
    let contents = unsafe { exception::release(object) };
    end_unwind(UnwindEnd { cause: contents.cause, end, frames, landing_pads: contents.landing_pads })
}

/// What the walk in [`continue_unwinding`] found.
#[allow(clippy::large_enum_variant, reason = "a short-lived stack value on the fault path, which avoids the heap")]
enum Outcome {
    /// Enter this landing pad with the frame's registers.
    Land { registers: Registers, landing_pad: u64, selector: u64, cfa: u64 },
    /// The unwind is over.
    End(EndOfUnwind),
}

/// Walks from the object's position and enters the next landing pad, or ends the unwind.
///
/// # Safety
/// `object` is a live object from `exception::allocate`, owned by this unwind, whose cursor describes frames of
/// the current stack above the caller.
unsafe fn continue_unwinding(object: *mut ExceptionObject) -> ! {
    // SAFETY: the caller's guarantee: live and owned by this unwind.
    let state = unsafe { &mut *object };
    let memory = match state.options.stack_bounds.clone() {
        // SAFETY: the options' contract: the bounds are the unwound task's mapped stack.
        Some(bounds) => unsafe { DirectMemory::within(bounds) },
        // SAFETY: the walked frames are live frames of this stack, described by registered CFI (registration's
        // contract), so their saved-register slots are mapped.
        None => unsafe { DirectMemory::unbounded() },
    };
    let registry = global_registry();
    let mut frames = FrameIter::new(registry, memory, state.cursor).with_limit(state.options.frame_limit);
    let outcome = loop {
        let frame = match frames.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                break Outcome::End(EndOfUnwind::Walk(frames.end_reason().unwrap_or(EndReason::OutermostFrame)));
            }
            Err(error) => break Outcome::End(EndOfUnwind::Error(error)),
        };
        let stop = match &state.options.stop {
            Some(StopPoint::CfaAtLeast(bound)) => frame.cfa >= *bound,
            Some(StopPoint::Function(range)) => range.contains(&frame.lookup_address),
            None => false,
        };
        if stop {
            let end = EndOfUnwind::StopPoint { instruction_pointer: frame.instruction_pointer, cfa: frame.cfa };
            break Outcome::End(end);
        }
        let (Some(lsda), false) = (frame.lsda, frame.exact) else { continue };
        if state.skip_pads_through.is_some_and(|bound| frame.cfa <= bound) {
            continue;
        }
        let Some(info) = frames.current_unwind_info() else { continue };
        let Some(bytes) = info.lsda_bytes(lsda) else { break Outcome::End(EndOfUnwind::LsdaOutsideTables { lsda }) };
        let action = match find_action(bytes, lsda, frame.function_start, frame.lookup_address) {
            Ok(action) => action,
            Err(error) => break Outcome::End(EndOfUnwind::Lsda { lsda, error }),
        };
        // `NotFound` means the compiler thought no unwind could pass here; continuing is the kernel's best effort.
        if let Some((landing_pad, selector)) = action.landing_pad() {
            // The pad runs with the call's pushed arguments popped (`DW_CFA_GNU_args_size`), as after a return:
            // without this, a call with stack arguments entered its pad with RSP too low and the pad's RSP-relative
            // locals were read from the wrong slots (a garbage `drop` in `swap_quiesced`'s pad, issue 12).
            let mut registers = frame.registers;
            if frame.args_size != 0 {
                let adjusted = registers.stack_pointer().and_then(|rsp| rsp.checked_add(frame.args_size));
                registers.set(crate::RSP, adjusted);
            }
            break Outcome::Land { registers, landing_pad, selector, cfa: frame.cfa };
        }
    };
    let cursor = frames.cursor();
    // Nothing below runs destructors: release the registry entry now.
    drop(frames);
    match outcome {
        Outcome::Land { registers, landing_pad, selector, cfa } => {
            state.cursor = cursor;
            state.landing_pads += 1;
            if let Some(start) = state.start_stack_pointer {
                // SAFETY: `object` is ours; a panic's walk stays on the stack it started on (no frame's CFI leads
                // to another stack), so `start..cfa` is part of that one stack.
                for _ in 0..unsafe { exception::release_abandoned(object, start..cfa) } {
                    // Each freed object's unwind had started (and counted) without being caught.
                    call_hook(&CATCH_HOOK);
                }
            }
            // SAFETY: `object` is live and ours.
            unsafe { exception::note_landed(object, cfa) };
            let landing = LandingRegisters::new(&registers, landing_pad, object as u64, selector);
            // SAFETY: the frame is live on this stack above us (the walk started above our caller and the CFA
            // increases); the pad is its compiler-generated landing pad for this call site, entered with its
            // callee-saved registers and stack pointer as at the call's return. Every local here is plain data.
            unsafe { land(&landing) }
        }
        // SAFETY: live and owned; not used afterwards.
        Outcome::End(end) => unsafe { finish(object, cursor.frames(), end) },
    }
}

/// Starts unwinding the current stack with `cause`, from the caller of this function (a panic handler calls it).
/// Enters every landing pad of every frame above, until a [`catch_unwind`] catches it or the unwind ends
/// (see the module docs). Never allocates unless [`POOL_SIZE`] unwinds are already in flight.
pub fn start_unwinding(cause: UnwindCause, options: UnwindOptions) -> ! {
    start(Start { cause, options, past_abort: false })
}

/// Starts unwinding for a panic that may not unwind (`PanicInfo::can_unwind()` false), which an abort pad raised:
/// Rust's pad around a drop in a cleanup pad (`panic_in_cleanup`) or around a call in a non-unwinding function
/// (`panic_cannot_unwind`). Every landing pad up to and including the frame of the innermost pad still running on
/// this stack (the abort pad, entered by the earlier unwind) is skipped: the panic machinery's own abort pads and
/// the rest of that frame's cleanup. Its callers' pads run, up to the catch. The earlier unwinds' objects are freed
/// when this one lands (see `exception::release_abandoned`). If no pad is in flight on this stack (a non-unwinding
/// panic raised directly), nothing is walked: the end handler gets [`EndOfUnwind::NoPadInFlight`].
pub fn start_unwinding_past_abort(cause: UnwindCause) -> ! {
    start(Start { cause, options: UnwindOptions::default(), past_abort: true })
}

/// What [`start_callback`] needs.
struct Start {
    cause: UnwindCause,
    options: UnwindOptions,
    past_abort: bool,
}

fn start(start: Start) -> ! {
    let mut start = ManuallyDrop::new(start);
    // SAFETY: `start_callback` takes `data` as a `*mut Start`, which `start` is, and moves it out exactly once
    // (`start` is never dropped here).
    unsafe { capture_registers_and_call(start_callback, (&raw mut start).cast()) };
    // `start_callback` never returns.
    loop {
        core::hint::spin_loop();
    }
}

unsafe extern "C-unwind" fn start_callback(captured: *const CapturedRegisters, data: *mut u8) {
    // SAFETY: `start` passes its `Start`, moved out only here, and the captured registers, valid during this call.
    let (Start { cause, options, past_abort }, registers) =
        unsafe { (data.cast::<Start>().read(), (*captured).to_registers()) };
    call_hook(&START_HOOK);
    let start = registers.stack_pointer();
    let skip_pads_through = match (past_abort, start) {
        (false, _) => None,
        (true, Some(start)) => match exception::innermost_landed_cfa_above(start) {
            Some(cfa) => Some(cfa),
            None => end_unwind(UnwindEnd { cause, end: EndOfUnwind::NoPadInFlight, frames: 0, landing_pads: 0 }),
        },
        (true, None) => end_unwind(UnwindEnd { cause, end: EndOfUnwind::NoPadInFlight, frames: 0, landing_pads: 0 }),
    };
    let start = StartPoint { stack_pointer: start, skip_pads_through };
    let object = exception::allocate(cause, FrameCursor::after_call(registers), options, start);
    // SAFETY: a fresh object; its cursor is the frame of `start`, live and above us.
    unsafe { continue_unwinding(object) }
}

/// Starts unwinding from a faulting frame (a CPU exception): `registers` are the interrupted code's registers
/// (RA = the faulting instruction, RSP and the callee-saved registers as they were). The faulting frame's own
/// landing pads are skipped; its callers' are entered.
///
/// # Safety
/// `registers` must describe a live frame of the current stack (or of a stack this CPU may take over, e.g. the
/// task stack under an exception handler running on an IST stack), above every frame still needed; the frames
/// it leads to are abandoned or unwound. Call it with interrupts in the state the task should continue with.
pub unsafe fn start_unwinding_from(registers: &Registers, cause: UnwindCause, options: UnwindOptions) -> ! {
    call_hook(&START_HOOK);
    let object = exception::allocate(cause, FrameCursor::exact(*registers), options, StartPoint::default());
    // SAFETY: a fresh object; the caller guarantees the frames.
    unsafe { continue_unwinding(object) }
}

/// Starts unwinding at `cursor`: like [`start_unwinding_from`], but from any walk position, e.g. the first frame
/// of a stack-overflowed task that has enough stack below it to run landing pads (the frames below that one are
/// abandoned without their drops). An exact cursor's first frame has its own pads skipped; an after-call cursor's
/// does not.
///
/// # Safety
/// As for [`start_unwinding_from`]: the cursor must describe a live frame of a stack this CPU may take over,
/// above every frame still needed.
pub unsafe fn start_unwinding_at(cursor: FrameCursor, cause: UnwindCause, options: UnwindOptions) -> ! {
    call_hook(&START_HOOK);
    let object = exception::allocate(cause, cursor, options, StartPoint::default());
    // SAFETY: a fresh object; the caller guarantees the frames.
    unsafe { continue_unwinding(object) }
}

/// Continues an unwind after a cleanup landing pad: what nano_core's `_Unwind_Resume(exception)` calls.
///
/// # Safety
/// `exception` must be the RAX a landing pad entered by this runtime received (or null, or another runtime's
/// object, which end the unwind with [`EndOfUnwind::ForeignException`]), passed on by that pad's frame.
pub unsafe fn resume_unwinding(exception: *mut u8) -> ! {
    // SAFETY: the caller passes a landing pad's exception pointer: null or a readable exception object.
    if unsafe { !exception::is_ours(exception) } {
        let end =
            UnwindEnd { cause: UnwindCause::Foreign, end: EndOfUnwind::ForeignException, frames: 0, landing_pads: 0 };
        end_unwind(end)
    }
    // SAFETY: ours (class checked), live (its pad is running), and the pad's frame is above us.
    unsafe { continue_unwinding(exception.cast()) }
}

/// Runs `f`; if it unwinds (a panic, or a fault with unwinding), returns the cause instead. Built on
/// `core::intrinsics::catch_unwind`, whose catch-all landing pad ends the unwind here.
#[allow(clippy::result_large_err, reason = "the cause is an inline value so that unwinding never needs the heap")]
pub fn catch_unwind<F: FnOnce() -> R, R>(f: F) -> Result<R, UnwindCause> {
    union Data<F, R> {
        f: ManuallyDrop<F>,
        r: ManuallyDrop<R>,
        cause: UnwindCause,
    }
    #[inline]
    fn do_call<F: FnOnce() -> R, R>(data: *mut u8) {
        // SAFETY: `data` is the `Data` below, holding `f`, which is moved out once.
        unsafe {
            let data = &mut *data.cast::<Data<F, R>>();
            let f = ManuallyDrop::take(&mut data.f);
            data.r = ManuallyDrop::new(f());
        }
    }
    #[inline]
    fn do_catch<F: FnOnce() -> R, R>(data: *mut u8, payload: *mut u8) {
        // SAFETY: `data` is the `Data` below (its `f` was moved out by `do_call` or dropped by the unwind);
        // `payload` is the exception pointer of the landing pad, which this crate's runtime made.
        unsafe { (*data.cast::<Data<F, R>>()).cause = take_caught(payload) };
    }
    let mut data = Data::<F, R> { f: ManuallyDrop::new(f) };
    let data_pointer = (&raw mut data).cast::<u8>();
    // SAFETY: `do_call` and `do_catch` follow the intrinsic's contract on `data_pointer`; the union field read
    // afterwards is the one the taken path wrote.
    unsafe {
        if core::intrinsics::catch_unwind(do_call::<F, R>, data_pointer, do_catch::<F, R>) == 0 {
            Ok(ManuallyDrop::into_inner(data.r))
        } else {
            Err(data.cause)
        }
    }
}

/// Takes the cause out of a caught exception object and frees it; [`UnwindCause::Foreign`] for an object this
/// runtime did not create (which is left alone).
///
/// # Safety
/// `payload` is the exception pointer a catch landing pad received.
unsafe fn take_caught(payload: *mut u8) -> UnwindCause {
    // SAFETY: a landing pad's exception pointer is null or a readable exception object.
    if unsafe { exception::is_ours(payload) } {
        call_hook(&CATCH_HOOK);
        // SAFETY: ours, live, and the unwind ends here: nobody uses it afterwards.
        unsafe { exception::release(payload.cast()) }.cause
    } else {
        UnwindCause::Foreign
    }
}

/// Whether `pointer` is an exception object of this runtime (for an `_Unwind_Resume` shared with another
/// runtime, as in host tests: forward everything else).
///
/// # Safety
/// `pointer` must be null or point to at least 8 readable bytes (an exception object of any runtime).
pub unsafe fn is_own_exception(pointer: *const u8) -> bool {
    // SAFETY: the caller's guarantee.
    unsafe { exception::is_ours(pointer) }
}

/// Re-raises a caught cause from the caller (like std's `resume_unwind`).
pub fn resume_unwind(cause: UnwindCause) -> ! {
    start_unwinding(cause, UnwindOptions::default())
}

/// Calls `f` with the current registers: those of the frame that called this function, with RA = the return
/// address into it, so a [`FrameCursor::after_call`] walk from them starts at that frame.
pub fn with_current_registers<F: FnOnce(&Registers) -> R, R>(f: F) -> R {
    union Data<F, R> {
        f: ManuallyDrop<F>,
        r: ManuallyDrop<R>,
    }
    unsafe extern "C-unwind" fn callback<F: FnOnce(&Registers) -> R, R>(
        captured: *const CapturedRegisters,
        data: *mut u8,
    ) {
        // SAFETY: `data` is the `Data` below, holding `f`, moved out once; `captured` is valid during the call.
        unsafe {
            let data = &mut *data.cast::<Data<F, R>>();
            let f = ManuallyDrop::take(&mut data.f);
            data.r = ManuallyDrop::new(f(&(*captured).to_registers()));
        }
    }
    let mut data = Data::<F, R> { f: ManuallyDrop::new(f) };
    // SAFETY: `callback::<F, R>` reads `data` as a `Data<F, R>`, which it is.
    unsafe { capture_registers_and_call(callback::<F, R>, (&raw mut data).cast()) };
    // SAFETY: the callback returned normally, so it wrote `r`.
    ManuallyDrop::into_inner(unsafe { data.r })
}

/// Writes a stack trace of the current stack (from the caller of this function) over the global registry.
///
/// # Errors
/// The first error of `out`.
pub fn write_current_backtrace(
    out: &mut dyn core::fmt::Write,
    symbolizer: &dyn Symbolizer,
    frame_limit: usize,
) -> Result<BacktraceSummary, core::fmt::Error> {
    with_current_registers(|registers| {
        // SAFETY: the walked frames are live frames of this stack, described by registered CFI (registration's
        // contract), so their saved-register slots are mapped.
        let memory = unsafe { DirectMemory::unbounded() };
        let mut frames =
            FrameIter::new(global_registry(), memory, FrameCursor::after_call(*registers)).with_limit(frame_limit);
        write_backtrace(out, &mut frames, symbolizer)
    })
}
