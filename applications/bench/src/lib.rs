//! The bench application: the microbenchmarks of issue 11, one machine-readable line per metric.
//!
//! Usage: `bench --full|--quick [--profile]`, or `bench --loads N [--profile]` for only the two cell-load metrics
//! with N loads per run (the shell's `bench NAME` without `--` runs the `bench_*` cells).
//! Each metric is measured in [`RUNS`] runs; a run times `iters` operations back to back (TSC ns) and yields the
//! mean of one operation; the line gives the median, minimum and maximum of the runs:
//! `bench: metric=null_call unit=ns median=12 min=11 max=14 iters=1000 runs=5`.
//!
//! Metrics (the Linux program in `scripts/bench/linux_bench.c` measures the same names):
//! 1. `null_call`: a call into `app_io` (another cell); Linux: `getpid()`.
//! 2. `context_switch`: two tasks pinned to this CPU yielding (per switch); Linux: `sched_yield` ping-pong.
//! 3. `spawn`: start, run and reap the `hello` application; Linux: `fork`+`exec`+`wait` of a static hello.
//! 4. `map_unmap`: map 4 KiB, write its first byte, unmap; Linux: `mmap(MAP_POPULATE)`+write+`munmap`.
//! 5. `ipc_rendezvous`, `ipc_buffered`: 1-byte round trip to an echo task over two channels; Linux: a pipe pair.
//! 6. `heap`: allocate ([`app_io::HeapBlock`]), write one byte of and free one block of a random size of 1-1000
//!    bytes; Linux: glibc `malloc`/`free`.
//! 7. `cell_load_small`, `cell_load_large`: load and link a cell of about 20 KB and 100 KB (fields `bytes`,
//!    `relocations`, `ns_per_kib`, `ns_per_relocation`); Linux: `init_module` of a module of similar size.
//! 8. `swap_excluding_load`: a live swap of a small cell (`greeting_v1` <-> `greeting_v2`, back and forth) without
//!    its load phase: verify, state transfer, commit (quiesce + rewrite) and cleanup (fields `cell`, `new`,
//!    `relocations_rewritten`, the phases' means `verify_ns`, `state_transfer_ns`, `commit_ns`, `cleanup_ns`, and
//!    `load_ns` for scale); no Linux counterpart (issue 11's target: 1 ms).
//!
//! With `--profile`, the loader's per-phase breakdown of each cell load follows
//! (`bench: profile cell=... phase=parse ns_per_load=... percent=...`). The last line is `bench: done`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod measure;

use alloc::string::String;
use alloc::vec::Vec;

app_io::entry!(main);

/// Runs per metric.
pub const RUNS: usize = 5;

/// How many operations a run times, per metric.
#[derive(Clone, Copy, Debug)]
pub struct Iterations {
    /// Null calls: 10x `fast`, so that a run lasts tens of microseconds. Under QEMU TCG a timed interval right after
    /// `bench` starts carries a fixed extra 7-11 us (measured: two back-to-back `now_ns` 7-8 us apart in the first
    /// intervals, about 0.1 us later, whatever the interval holds), which at 1,000 calls of ~10 ns each doubled the
    /// mean. The Linux side runs `getpid()` the same 10x count.
    pub null_call: u32,
    /// Context switches, map/unmaps, round trips, heap blocks.
    pub fast: u32,
    /// Spawns of `hello`.
    pub spawn: u32,
    /// Cell loads.
    pub cell_load: u32,
    /// Live swaps.
    pub swap: u32,
}

/// `--full`: 1,000 operations per run (10,000 null calls), cell loads and swaps included (each takes milliseconds: about 75 s for both
/// load sizes).
pub const FULL: Iterations = Iterations { null_call: 10_000, fast: 1000, spawn: 1000, cell_load: 1000, swap: 1000 };
/// `--quick`: a smoke run of a few seconds under TCG.
pub const QUICK: Iterations = Iterations { null_call: 1000, fast: 100, spawn: 10, cell_load: 2, swap: 4 };

/// The candidate cells of about 20 KB and 100 KB for the cell-load metrics: the first one not yet loaded is used.
const SMALL_CELLS: [&str; 2] = ["demo_channel_buffered", "demo_channel_rendezvous"];
const LARGE_CELLS: [&str; 2] = ["test_tlb", "test_live_update"];

/// Entry point. Returns 0 when every metric was measured, 1 if one failed, 2 on bad arguments.
pub fn main(args: Vec<String>) -> isize {
    let usage = || {
        app_io::println!("usage: bench --full|--quick|--loads N [--profile]");
        app_io::exit_code::USAGE
    };
    let mut iterations = None;
    let mut profile = false;
    let mut loads_only = None;
    let mut arguments = args.iter().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--full" => iterations = Some(FULL),
            "--quick" => iterations = Some(QUICK),
            "--profile" => profile = true,
            "--loads" => match arguments.next().and_then(|count| count.parse::<u32>().ok()) {
                Some(count) if count > 0 => loads_only = Some(count),
                _ => return usage(),
            },
            _ => return usage(),
        }
    }
    let results = match (iterations, loads_only) {
        (Some(iterations), None) => measure::all(iterations, profile, &SMALL_CELLS, &LARGE_CELLS),
        (None, Some(count)) => measure::cell_loads(count, profile, &SMALL_CELLS, &LARGE_CELLS),
        _ => return usage(),
    };
    let mut failed = 0;
    for result in results {
        if let Err(error) = result {
            app_io::println!("bench: error: {error}");
            failed += 1;
        }
    }
    app_io::println!("bench: done ({failed} failed)");
    if failed == 0 { app_io::exit_code::SUCCESS } else { app_io::exit_code::FAILURE }
}

/// The median, minimum and maximum of `runs` (each a mean ns per operation); `None` if empty.
pub fn summarize(runs: &[u64]) -> Option<(u64, u64, u64)> {
    let mut sorted = runs.to_vec();
    sorted.sort_unstable();
    Some((*sorted.get(sorted.len() / 2)?, *sorted.first()?, *sorted.last()?))
}
