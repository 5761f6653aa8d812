//! The exception object: the per-unwind state, handed to landing pads in RAX and back to `_Unwind_Resume`.
//!
//! It starts with the layout of the Itanium ABI's `_Unwind_Exception` header (class, cleanup, two private words),
//! so code that inspects the class sees ours ([`EXCEPTION_CLASS`]) and leaves it alone. Objects come from a static
//! pool of [`POOL_SIZE`] slots, so starting an unwind needs no heap; only when every slot is in use (that many
//! tasks unwinding at once) does one come from the heap.

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

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
    origin: Origin,
}

struct Pool {
    /// `in_use[i]` protects `slots[i]`: whoever flips it from false to true owns the slot until storing false.
    in_use: [AtomicBool; POOL_SIZE],
    slots: [UnsafeCell<MaybeUninit<ExceptionObject>>; POOL_SIZE],
}

// SAFETY: a slot is only accessed by the owner of its `in_use` flag (acquired with compare_exchange, released with
// a Release store after the last access), so no two threads access one slot at once.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool {
    in_use: [const { AtomicBool::new(false) }; POOL_SIZE],
    slots: [const { UnsafeCell::new(MaybeUninit::uninit()) }; POOL_SIZE],
};

/// How many pool slots are in use (for tests and reports).
pub fn pool_in_use() -> usize {
    POOL.in_use.iter().filter(|flag| flag.load(Ordering::Relaxed)).count()
}

/// Allocates an exception object (pool first, heap if the pool is exhausted).
pub(crate) fn allocate(cause: UnwindCause, cursor: FrameCursor, options: UnwindOptions) -> *mut ExceptionObject {
    let header = ExceptionHeader { class: EXCEPTION_CLASS, cleanup: 0, private: [0; 2] };
    for (index, flag) in POOL.in_use.iter().enumerate() {
        if flag.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            let slot = POOL.slots[index].get();
            let object =
                ExceptionObject { header, cause, cursor, options, landing_pads: 0, origin: Origin::Pool(index) };
            // SAFETY: we own slot `index` (its flag was false and is now ours); writing a MaybeUninit is sound.
            unsafe { (*slot).write(object) };
            return slot.cast();
        }
    }
    Box::into_raw(Box::new(ExceptionObject { header, cause, cursor, options, landing_pads: 0, origin: Origin::Heap }))
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
