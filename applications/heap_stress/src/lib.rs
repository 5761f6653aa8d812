//! The heap_stress application: a heap-heavy workload with a checkable result.
//!
//! Usage: `heap_stress [ROUNDS 1..=100000]` (default 200).
//!
//! Each round allocates a buffer of a pseudo-random size (1-1000 bytes) filled with a pattern derived from the
//! round number, keeps up to [`LIVE_BUFFERS`] buffers alive (replacing a pseudo-randomly chosen one), inserts
//! and removes entries of a `BTreeMap`, and folds every byte it reads back from a buffer it drops into a
//! checksum. The sequence is fixed (a xorshift generator with a constant seed), so a healthy heap always prints
//! the same line: `heap_stress: ROUNDS rounds, BYTES bytes allocated, checksum 0x...`. A corrupted heap shows
//! as a different checksum, a pattern mismatch or a fault. The fault-injection campaign (`qemu_harness faults`)
//! compares that line with the one from a run before any injection. The rounds run in a restartable task
//! (`app_io::spawn_restartable`, up to [`RUN_RESTARTS`] restarts): a run is deterministic and keeps no state
//! outside itself, so a run that fails (a fault, or a pattern mismatch, which fails the run on purpose) is
//! simply started again and prints the same line; if every run fails, it prints `heap_stress: failed after N
//! restarts: REASON` (exit code 2). A run still going after [`run_deadline`] is killed and started again.
//!
//! Each run computes the result twice and compares (software dual execution): a transient fault that changes
//! the program's own values (a flipped register in the checksum loop, a skipped instruction) without raising an
//! exception gives two different results, and the run fails on purpose, so that it is started again. No OS
//! mechanism can see such a fault; this is the application's own detection, and it doubles the run's heap work.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// Buffers kept alive at once.
pub const LIVE_BUFFERS: usize = 64;
/// The largest accepted round count.
pub const MAX_ROUNDS: u64 = 100_000;
/// How many times a failed run is started again.
pub const RUN_RESTARTS: usize = 3;

app_io::entry!(main);

/// Entry point: returns 0 after printing the checksum line, 1 on bad arguments, 2 if every run failed (a buffer
/// read back differed from what was written, or a fault) or none could be spawned.
pub fn main(args: Vec<String>) -> isize {
    let rounds = match args.get(1).map(|text| text.parse::<u64>()) {
        None => 200,
        Some(Ok(rounds)) if (1..=MAX_ROUNDS).contains(&rounds) => rounds,
        Some(_) => {
            app_io::println!("usage: heap_stress [ROUNDS 1..={MAX_ROUNDS}]");
            return 1;
        }
    };
    let run = app_io::spawn_restartable("heap_stress-run", RUN_RESTARTS, move || checked_stress(rounds))
        .and_then(|task| task.wait_with_deadline(run_deadline(rounds)));
    match run {
        Ok((bytes, checksum)) => {
            app_io::println!("heap_stress: {rounds} rounds, {bytes} bytes allocated, checksum {checksum:#018x}");
            app_io::exit_code::SUCCESS
        }
        Err(error) => {
            app_io::println!("heap_stress: {error}");
            2
        }
    }
}

/// How long one run of `rounds` rounds may take before it is killed and started again: 2 s plus 200 us per
/// round, about 25 times a healthy run under QEMU's TCG (30,000 rounds, both computations: 0.3 s). A fault that
/// raises no exception but changes a loop bound or counter (a flipped word of the run's stack) makes a run go
/// on for hours; the restart recomputes from the arguments the closure holds.
pub fn run_deadline(rounds: u64) -> core::time::Duration {
    core::time::Duration::from_micros(2_000_000 + 200 * rounds)
}

/// Runs [`stress`] twice in a restartable run and returns the result both gave: a corrupted buffer, or two
/// results that differ, fail the run, so that it is started again.
///
/// # Panics
/// On purpose, if a buffer no longer holds its pattern or the two results differ (the messages do not start
/// with `heap_stress: `, the prefix of the result line the campaign compares).
fn checked_stress(rounds: u64) -> (u64, u64) {
    // `black_box`: the two calls must both run (the compiler could otherwise see one pure computation).
    let [first, second] = [0, 1].map(|_| match stress(core::hint::black_box(rounds)) {
        Ok(result) => result,
        Err(Corrupted { round }) => panic!("corrupted buffer of round {round} found by heap_stress; run restarted"),
    });
    if first != second {
        panic!("two computations of heap_stress differ ({first:x?} and {second:x?}); run restarted");
    }
    first
}

/// A buffer read back differs from its pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupted {
    /// The round that allocated the buffer.
    pub round: u64,
}

/// One live buffer: the round that filled it and its bytes.
struct Buffer {
    round: u64,
    bytes: Vec<u8>,
}

/// Runs `rounds` rounds; returns the bytes allocated and the checksum.
///
/// # Errors
/// [`Corrupted`] if a buffer no longer holds its pattern.
pub fn stress(rounds: u64) -> Result<(u64, u64), Corrupted> {
    let mut random = 0x2545_f491_4f6c_dd1du64;
    let mut live: Vec<Buffer> = Vec::with_capacity(LIVE_BUFFERS);
    let mut map: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut allocated, mut checksum) = (0u64, 0u64);
    for round in 0..rounds {
        random = next(random);
        let size = (random % 1000 + 1) as usize;
        let bytes: Vec<u8> = (0..size).map(|index| pattern(round, index)).collect();
        allocated += size as u64;
        let buffer = Buffer { round, bytes };
        if live.len() < LIVE_BUFFERS {
            live.push(buffer);
        } else {
            let slot = (random >> 32) as usize % LIVE_BUFFERS;
            let old = core::mem::replace(&mut live[slot], buffer);
            checksum = fold(checksum, &old)?;
        }
        map.insert(random % 512, round);
        if round % 3 == 0 {
            map.remove(&((random >> 16) % 512));
        }
    }
    for buffer in &live {
        checksum = fold(checksum, buffer)?;
    }
    for (key, value) in &map {
        checksum = checksum.rotate_left(7) ^ key.wrapping_mul(31) ^ value;
    }
    Ok((allocated, checksum))
}

/// The byte at `index` of the buffer of `round`.
fn pattern(round: u64, index: usize) -> u8 {
    (round as u8).wrapping_mul(31) ^ (index as u8)
}

/// Checks `buffer` against its pattern and folds its bytes into `checksum`.
fn fold(mut checksum: u64, buffer: &Buffer) -> Result<u64, Corrupted> {
    for (index, &byte) in buffer.bytes.iter().enumerate() {
        if byte != pattern(buffer.round, index) {
            return Err(Corrupted { round: buffer.round });
        }
        checksum = checksum.rotate_left(5) ^ u64::from(byte);
    }
    Ok(checksum)
}

/// One xorshift64 step.
fn next(mut state: u64) -> u64 {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    state
}
