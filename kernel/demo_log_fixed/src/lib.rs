//! Demonstration log service, **fixed** version: an in-memory log of text records that stores every record (case
//! study (c) of the Theseus paper: fix a buggy service cell live).
//!
//! # Purpose
//! The replacement for `demo_log_buggy` (same library name `demo_log`, same exports, same state): `swap
//! demo_log_buggy demo_log_fixed` makes every client's next call use this code, with the records stored so far and
//! the append count carried over by the swap's default `.data`/`.bss` copy of [`RECORDS`] and [`APPENDS`] (their
//! names, types and sizes must stay those of the buggy version). The only change is in [`append`]: the buggy
//! version skipped every tenth record; this one stores all.
//!
//! # How the test uses it
//! See `demo_log_buggy` and the `live-fix` QEMU scenario: after the swap the running `log_client` loses no record,
//! and the records it stored before the swap are still there.
//!
//! # State and locking
//! As in `demo_log_buggy`: [`RECORDS`] is an IRQ-safe leaf lock, never held across a preemption.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use task::IrqSafeMutex;

/// The stored records, oldest first (the lock protects the vector; leaf lock, IRQ-safe).
static RECORDS: IrqSafeMutex<Vec<String>> = IrqSafeMutex::new(Vec::new());
/// Calls of [`append`] so far (the sequence number of the latest record).
static APPENDS: AtomicU64 = AtomicU64::new(0);

/// This cell's version: 2 (fixed).
#[inline(never)]
pub fn version() -> u32 {
    2
}

/// Appends `text` as a record; returns its sequence number (1-based).
#[inline(never)]
pub fn append(text: &str) -> u64 {
    let sequence = APPENDS.fetch_add(1, Ordering::Relaxed) + 1;
    RECORDS.lock().push(String::from(text));
    sequence
}

/// A copy of every stored record, oldest first.
#[inline(never)]
pub fn records() -> Vec<String> {
    RECORDS.lock().clone()
}

/// The number of [`append`] calls so far.
#[inline(never)]
pub fn appends() -> u64 {
    APPENDS.load(Ordering::Relaxed)
}
