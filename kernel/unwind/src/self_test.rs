//! An in-kernel self test of the whole panic path: nano_core's panic handler, [`crate::start_unwinding`], real
//! landing pads in this crate's code, nano_core's `_Unwind_Resume`, and [`crate::catch_unwind`].
//!
//! Kernel only: on the host, `panic!` goes to std's runtime, not this one (the host tests drive the runtime
//! directly instead).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::{UnwindCause, catch_unwind, pool_in_use};

/// Why the self test failed.
#[allow(clippy::large_enum_variant, reason = "carries the inline cause, like the runtime's own results")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfTestError {
    /// The panic was not caught (the closure returned).
    NotCaught,
    /// Something other than the test panic was caught.
    WrongCause(UnwindCause),
    /// The guards did not drop innermost first (decimal log of guard ids, expected `123`).
    DropOrder(u64),
    /// An exception object was not freed.
    Leak(usize),
}

impl fmt::Display for SelfTestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotCaught => f.write_str("the panic was not caught"),
            Self::WrongCause(cause) => write!(f, "caught the wrong cause: {cause}"),
            Self::DropOrder(log) => write!(f, "guards dropped in order {log}, expected 123"),
            Self::Leak(count) => write!(f, "{count} exception objects still in use"),
        }
    }
}

static DROPS: AtomicU64 = AtomicU64::new(0);

struct Guard(u64);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = DROPS.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |log| Some(log.wrapping_mul(10) + self.0));
    }
}

#[inline(never)]
fn nested(depth: u64) -> u64 {
    let _guard = Guard(depth);
    if depth == 1 {
        panic!("unwind self test");
    }
    core::hint::black_box(nested(depth - 1)) + 1
}

/// Panics three frames deep, each frame holding a guard, inside [`catch_unwind`]; checks the cause, the drop
/// order and that the exception object was freed.
///
/// # Errors
/// [`SelfTestError`] naming what went wrong.
#[allow(clippy::result_large_err, reason = "carries the inline cause, like the runtime's own results")]
pub fn self_test() -> Result<(), SelfTestError> {
    DROPS.store(0, Ordering::SeqCst);
    let in_use = pool_in_use();
    let result = catch_unwind(|| nested(3));
    match result {
        Ok(_) => return Err(SelfTestError::NotCaught),
        Err(UnwindCause::Panic(cause)) if cause.message.as_str() == "unwind self test" => {}
        Err(cause) => return Err(SelfTestError::WrongCause(cause)),
    }
    let log = DROPS.load(Ordering::SeqCst);
    if log != 123 {
        return Err(SelfTestError::DropOrder(log));
    }
    if pool_in_use() != in_use {
        return Err(SelfTestError::Leak(pool_in_use()));
    }
    Ok(())
}
