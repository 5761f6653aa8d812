//! Demonstration log service, **buggy** version: an in-memory log of text records that silently drops every
//! tenth record (case study (c) of the Theseus paper: fix a buggy service cell live).
//!
//! # Purpose
//! `demo_log_buggy` and `demo_log_fixed` are two packages with one library name (`demo_log`); clients (the
//! `log_client` application) call [`append`], [`records`], [`appends`] and [`version`] through relocations that a
//! swap rewrites. The bug: [`append`] counts every call but does not store the record when the count is a multiple
//! of ten, and still reports success. `swap demo_log_buggy demo_log_fixed` replaces the code while clients keep
//! running; the state ([`RECORDS`], [`APPENDS`], same names, types and sizes in both versions) is carried over by
//! the swap's default `.data`/`.bss` copy, so records stored before the fix stay, and the append count goes on.
//!
//! # How the test uses it
//! The `live-fix` QEMU scenario runs `log_client run &`, which appends 20 records through this version (records
//! 10 and 20 are lost), swaps in the fix, and appends 20 more through the fixed version without restarting; the
//! client then reports what each version lost and how many of the records from before the swap survived.
//!
//! # State and locking
//! [`RECORDS`] is an [`IrqSafeMutex`] (held with interrupts disabled): no task is preempted while holding it, so a
//! stop-the-world swap never copies it locked. It is a leaf lock. A task that is inside [`append`] (before taking
//! the lock) while the swap commits finishes that call in the old code against the old copy of the state; the
//! record is then lost (the client of the test swaps between its phases, never mid-call).
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use task::IrqSafeMutex;

/// The stored records, oldest first (the lock protects the vector; leaf lock, IRQ-safe).
static RECORDS: IrqSafeMutex<Vec<String>> = IrqSafeMutex::new(Vec::new());
/// Calls of [`append`] so far, stored or not (the sequence number of the latest record).
static APPENDS: AtomicU64 = AtomicU64::new(0);

/// This cell's version: 1 (buggy).
#[inline(never)]
pub fn version() -> u32 {
    1
}

/// Appends `text` as a record; returns its sequence number (1-based; counts every call).
///
/// **Bug (deliberate):** when the sequence number is a multiple of 10, the record is not stored, and nothing tells
/// the caller.
#[inline(never)]
pub fn append(text: &str) -> u64 {
    let sequence = APPENDS.fetch_add(1, Ordering::Relaxed) + 1;
    if sequence.is_multiple_of(10) {
        return sequence;
    }
    RECORDS.lock().push(String::from(text));
    sequence
}

/// A copy of every stored record, oldest first.
#[inline(never)]
pub fn records() -> Vec<String> {
    RECORDS.lock().clone()
}

/// The number of [`append`] calls so far (stored or not).
#[inline(never)]
pub fn appends() -> u64 {
    APPENDS.load(Ordering::Relaxed)
}
