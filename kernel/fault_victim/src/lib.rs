//! A victim cell for fault-recovery tests: one pure function that the test corrupts with `ud2`.
//!
//! The test calls [`checksum`] (so its cell becomes a dependent of this one), corrupts it through
//! `fault_injection::corrupt_function`, lets three tasks fault in it, and checks that the fault-recovery policy
//! reloaded a fresh copy of this cell and re-linked the test cell to it. Control flow: none beyond the function.
#![no_std]

/// A checksum of `value` (FNV-1a over its bytes), never inlined so the code lives in this cell.
#[inline(never)]
pub fn checksum(value: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in value.to_le_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
