//! The exception object: the per-unwind state, handed to landing pads in RAX and back to `_Unwind_Resume`.
//!
//! It starts with the layout of the Itanium ABI's `_Unwind_Exception` header (class, cleanup, two private words),
//! so code that inspects the class sees ours ([`EXCEPTION_CLASS`]) and leaves it alone. Objects come from a static
//! pool of [`POOL_SIZE`] slots, so starting an unwind needs no heap; only when every slot is in use (that many
//! tasks unwinding at once) does one come from the heap.
//!
//! An object whose landing pad never resumes is abandoned: a panic that may not unwind (a `Drop` panicking
//! during an unwind, out of a cleanup pad) is unwound anyway from where it happened, past the frames whose pads
//! held the earlier objects. [`release_abandoned`] frees those pool objects when the new unwind lands above them,
//! found by the CFA of the frame each last landed in ([`note_landed`]).

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::UnwindOptions;
use crate::cause::UnwindCause;
use crate::frames::FrameCursor;

/// Our exception class, `"THSSUNWD"` as a big-endian u64 (the Itanium ABI's vendor + language convention).
pub const EXCEPTION_CLASS: u64 = u64::from_be_bytes(*b"THSSUNWD");

/// Exception objects available without the heap.
pub const POOL_SIZE: usize = 32;

/// The `_Unwind_Exception` header (Itanium C++ ABI, 1.2 "Exception Objects"); the private words are unused.
#[repr(C)]
struct ExceptionHeader {
    class: u64,
    cleanup: usize,
    private: [u64; 2],
}

/// Where an object's memory came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Pool(usize),
    Heap,
}

/// The state of one unwind. Only reachable through the raw pointer landing pads carry.
#[repr(C, align(16))]
pub struct ExceptionObject {
    header: ExceptionHeader,
    pub(crate) cause: UnwindCause,
    /// The caller of the frame whose landing pad was last entered: where `_Unwind_Resume` continues.
    pub(crate) cursor: FrameCursor,
    pub(crate) options: UnwindOptions,
    pub(crate) landing_pads: usize,
    /// The stack pointer where this unwind started, for an unwind started on the stack it unwinds (a panic):
    /// every frame it walks lies between this and the frame it lands in. `None` for a fault or a kill.
    pub(crate) start_stack_pointer: Option<u64>,
    /// Landing pads of frames whose CFA is at most this are skipped (an unwind past an abort pad).
    pub(crate) skip_pads_through: Option<u64>,
    origin: Origin,
}

struct Pool {
    /// `in_use[i]` protects `slots[i]`: whoever flips it from false to true owns the slot until storing false.
    in_use: [AtomicBool; POOL_SIZE],
    slots: [UnsafeCell<MaybeUninit<ExceptionObject>>; POOL_SIZE],
    /// `landed_cfa[i]`: the CFA of the frame whose landing pad slot `i`'s object last entered (0: none yet).
    /// Written by the slot's owner, read by anyone (atomics: no data race on the slot itself).
    landed_cfa: [AtomicU64; POOL_SIZE],
}

// SAFETY: a slot is only accessed by the owner of its `in_use` flag (acquired with compare_exchange, released with
// a Release store after the last access), so no two threads access one slot at once.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool {
    in_use: [const { AtomicBool::new(false) }; POOL_SIZE],
    slots: [const { UnsafeCell::new(MaybeUninit::uninit()) }; POOL_SIZE],
    landed_cfa: [const { AtomicU64::new(0) }; POOL_SIZE],
};

/// How many pool slots are in use (for tests and reports).
pub fn pool_in_use() -> usize {
    POOL.in_use.iter().filter(|flag| flag.load(Ordering::Relaxed)).count()
}

/// Where an unwind started, and what it skips: [`ExceptionObject::start_stack_pointer`] and
/// [`ExceptionObject::skip_pads_through`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StartPoint {
    pub(crate) stack_pointer: Option<u64>,
    pub(crate) skip_pads_through: Option<u64>,
}

/// Allocates an exception object (pool first, heap if the pool is exhausted).
pub(crate) fn allocate(
    cause: UnwindCause,
    cursor: FrameCursor,
    options: UnwindOptions,
    start: StartPoint,
) -> *mut ExceptionObject {
    let header = ExceptionHeader { class: EXCEPTION_CLASS, cleanup: 0, private: [0; 2] };
    let claimed = POOL
        .in_use
        .iter()
        .position(|flag| flag.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok());
    let object = ExceptionObject {
        header,
        cause,
        cursor,
        options,
        landing_pads: 0,
        start_stack_pointer: start.stack_pointer,
        skip_pads_through: start.skip_pads_through,
        origin: claimed.map_or(Origin::Heap, Origin::Pool),
    };
    let Some(index) = claimed else { return Box::into_raw(Box::new(object)) };
    POOL.landed_cfa[index].store(0, Ordering::Relaxed);
    let slot = POOL.slots[index].get();
    // SAFETY: we own slot `index` (its flag was false and is now ours); writing a MaybeUninit is sound.
    unsafe { (*slot).write(object) };
    slot.cast()
}

/// The lowest CFA above `stack_pointer` of a frame whose landing pad a live pool object last entered: on the
/// current stack (whose live frames lie just above its stack pointer), the innermost landing pad still running.
/// Objects of other stacks lie beyond this stack's frames in either direction, so they never come before it; but
/// if no pad is running on this stack, another stack's may be returned, and the caller must then be sure one is.
pub(crate) fn innermost_landed_cfa_above(stack_pointer: u64) -> Option<u64> {
    (0..POOL_SIZE)
        .filter(|index| POOL.in_use[*index].load(Ordering::Acquire))
        .map(|index| POOL.landed_cfa[index].load(Ordering::Relaxed))
        .filter(|cfa| *cfa > stack_pointer)
        .min()
}

/// Records that `object` is entering a landing pad of the frame with this CFA.
///
/// # Safety
/// `object` is a live object from [`allocate`], owned by the caller's unwind.
pub(crate) unsafe fn note_landed(object: *mut ExceptionObject, cfa: u64) {
    // SAFETY: the caller's guarantee.
    if let Origin::Pool(index) = unsafe { (*object).origin } {
        POOL.landed_cfa[index].store(cfa, Ordering::Relaxed);
    }
}

/// Frees every pool object other than `own` whose last landing pad is in a frame with a CFA inside `frames`
/// (exclusive bounds): the frames an unwind walked past, between where it started and the frame it lands in.
/// Such a pad is still running (its object was never resumed or caught), so only a panic that unwound out of
/// it can have walked past it: its object is abandoned. Returns how many were freed.
///
/// # Safety
/// `own` is the caller's live object; `frames` spans part of one stack (the one this unwind walks), so that an
/// object in it belongs to an unwind of that stack, which nobody else resumes.
pub(crate) unsafe fn release_abandoned(own: *mut ExceptionObject, frames: Range<u64>) -> usize {
    // SAFETY: the caller's guarantee: `own` is live.
    let own_index = match unsafe { (*own).origin } {
        Origin::Pool(index) => Some(index),
        Origin::Heap => None,
    };
    let mut released = 0;
    for index in (0..POOL_SIZE).filter(|index| Some(*index) != own_index) {
        let cfa = POOL.landed_cfa[index].load(Ordering::Relaxed);
        if !POOL.in_use[index].load(Ordering::Acquire) || cfa <= frames.start || cfa >= frames.end {
            continue;
        }
        // The contents (a cause, a cursor, options) are plain data: freeing the slot is all there is to do.
        // SAFETY: the slot is in use and its object landed in a frame of this stack that this unwind walked past:
        // nobody resumes or catches it any more (see above), so this is its last use.
        let _contents = unsafe { release(POOL.slots[index].get().cast()) };
        released += 1;
    }
    released
}

/// Whether `pointer` looks like an object of ours: non-null, aligned, and with our class.
///
/// # Safety
/// `pointer` must be null or point to at least 8 readable bytes (an exception object of any runtime).
pub(crate) unsafe fn is_ours(pointer: *const u8) -> bool {
    if pointer.is_null() || !pointer.cast::<ExceptionObject>().is_aligned() {
        return false;
    }
    // SAFETY: the caller guarantees 8 readable bytes; every exception object starts with its class word.
    unsafe { pointer.cast::<u64>().read() == EXCEPTION_CLASS }
}

/// Frees an object and returns its contents.
///
/// # Safety
/// `object` must come from [`allocate`] and not be freed yet; nobody may use it afterwards.
pub(crate) unsafe fn release(object: *mut ExceptionObject) -> ExceptionObject {
    // SAFETY: the caller guarantees a live object from `allocate`.
    match unsafe { (*object).origin } {
        Origin::Pool(index) => {
            // SAFETY: live and ours; moved out exactly once, before the slot is given back.
            let contents = unsafe { object.read() };
            POOL.in_use[index].store(false, Ordering::Release);
            contents
        }
        // SAFETY: heap objects come from `Box::into_raw` in `allocate`.
        Origin::Heap => *unsafe { Box::from_raw(object) },
    }
}
