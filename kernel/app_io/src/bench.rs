//! Microbenchmark entries for the `bench` application: [`null_call`], and the kernel-side measurements of
//! `bench_micro` ([`context_switch_ns`], [`map_unmap_ns`], [`cell_load`]) with errors as text.
//!
//! Each measurement returns the mean of one operation over `iterations`, in TSC nanoseconds.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Does nothing but return `value`: the target of the null-call benchmark (a call through a cell boundary, from
/// the application's cell into this one). Never inlined, so the caller keeps a real `call` into this cell (the
/// workspace also forbids cross-crate inlining of functions without `#[inline]`); the body is `mov rax, rdi; ret`.
/// The caller sums the results, so the calls cannot be dropped.
#[inline(never)]
pub fn null_call(value: u64) -> u64 {
    value
}

/// The mean time of one switch between two tasks pinned to the caller's CPU that yield to each other, in ns,
/// over `iterations` round trips.
///
/// # Errors
/// Why a benchmark task could not start or failed.
pub fn context_switch_ns(iterations: u32) -> Result<u64, String> {
    bench_micro::context_switch_ns(iterations).map_err(|error| format!("{error}"))
}

/// The mean time to map a fresh 4 KiB page, write its first byte and unmap it, in ns, over `iterations`.
///
/// # Errors
/// Why mapping or writing failed.
pub fn map_unmap_ns(iterations: u32) -> Result<u64, String> {
    bench_micro::map_unmap_ns(iterations).map_err(|error| format!("{error}"))
}

/// The small cell pair the swap metric swaps back and forth (see [`swap_excluding_load`]).
pub const SWAP_CELLS: [&str; 2] = bench_micro::SWAP_CELLS;

/// One swap-excluding-load measurement (per-swap means in ns): see [`swap_excluding_load`].
pub type SwapSample = bench_micro::SwapSample;

/// The mean cost of a live swap of a small cell (`greeting_v1` <-> `greeting_v2`) without its load phase, over
/// `iterations` swaps, with the other phases and the relocations rewritten; the system is left with the cell it
/// had.
///
/// # Errors
/// Why a swap failed (as text).
pub fn swap_excluding_load(iterations: u32) -> Result<SwapSample, String> {
    bench_micro::swap_excluding_load(iterations).map_err(|error| format!("{error}"))
}

/// One cell-load measurement: see [`cell_load`].
#[derive(Clone, Debug)]
pub struct CellLoad {
    /// Mean time of one load and link, in ns.
    pub ns: u64,
    /// Size of the cell's object file, in bytes.
    pub object_bytes: usize,
    /// Relocations applied per load.
    pub relocations: usize,
    /// The loader profile of the measured loads: (phase name, summed ns), in load order; all zero unless asked.
    pub phases: Vec<(&'static str, u64)>,
    /// Cells staged during the measured loads (counted only when profiling).
    pub cells_staged: u64,
}

/// Like [`cell_load`] (no profile), but every symbol lookup also passes through (and misses in) a namespace of
/// synthetic symbols, one per entry of `extra_symbols`, alternating in `runs` rounds of `iterations` loads: see
/// `bench_micro::cell_load_padded`. Returns, per entry, each run's mean ns per load; and the relocations per load.
///
/// # Errors
/// Why the cell could not be loaded, or a padding namespace built.
pub fn cell_load_padded(
    cell: &str,
    iterations: u32,
    runs: usize,
    extra_symbols: &[usize],
) -> Result<(Vec<Vec<u64>>, usize), String> {
    bench_micro::cell_load_padded(cell, iterations, runs, extra_symbols).map_err(|error| format!("{cell}: {error}"))
}

/// The mean time to load and link a private copy of cell `cell` (which must not be loaded), over `iterations`
/// loads; with `profile`, also the loader's per-phase breakdown.
///
/// # Errors
/// Why the cell could not be loaded (no such cell, already loaded, or the loader's error).
pub fn cell_load(cell: &str, iterations: u32, profile: bool) -> Result<CellLoad, String> {
    let sample = bench_micro::cell_load(cell, iterations, profile).map_err(|error| format!("{cell}: {error}"))?;
    let phases = cell_namespace::LoadPhase::ALL.iter().map(|&phase| (phase.name(), sample.profile.ns(phase))).collect();
    Ok(CellLoad {
        ns: sample.ns,
        object_bytes: sample.object_bytes,
        relocations: sample.relocations,
        phases,
        cells_staged: sample.profile.cells,
    })
}
