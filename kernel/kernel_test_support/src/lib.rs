//! Shared scaffolding of the in-kernel test and benchmark cells (`test_*`, `bench_*`); named so that the shell's
//! `test` builtin, which runs every `test_*` cell, does not take it for one.
//!
//! Each test cell exports `run() -> Result<(), String>`; inside, it runs named [`step`]s, each a function that
//! checks values with [`ensure!`] and returns `Err` with a message on the first failed check. [`wait_for`] polls a
//! condition with a timeout while letting other tasks run, and [`spawn_error`] turns a spawn failure into a message.
#![no_std]

extern crate alloc;

use alloc::string::String;

#[doc(hidden)]
pub use alloc::format as __format;

/// Returns `Err(format!(message...))` from the enclosing function if `condition` is false.
#[macro_export]
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err($crate::__format!($($message)+));
        }
    };
}

/// Runs one named check of cell `cell`: logs `"<cell>: <name>: ok (<ms> ms)"` on success.
///
/// # Errors
/// The check's error, prefixed with `name`.
pub fn step(cell: &str, name: &str, test: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let started = tsc::now_ns();
    test().map_err(|error| alloc::format!("{name}: {error}"))?;
    log::info!("{cell}: {name}: ok ({} ms)", (tsc::now_ns() - started) / 1_000_000);
    Ok(())
}

/// A spawn failure as a test message.
pub fn spawn_error(error: spawn::SpawnError) -> String {
    alloc::format!("spawn failed: {error}")
}

/// Polls `condition`, yielding between polls, until it holds (returns true) or `timeout_ms` milliseconds passed
/// (returns false).
pub fn wait_for(timeout_ms: u64, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tsc::now_ns() + timeout_ms * 1_000_000;
    while !condition() {
        if tsc::now_ns() > deadline {
            return false;
        }
        scheduler::yield_now();
    }
    true
}
