//! In-kernel benchmark of live swaps through the gate (`live_update`), through [`run`]: one line per metric,
//! `bench: swap <what> (<n> CPUs) <phase>: median N ns (min, max, samples)`.
//!
//! Metrics ([`SAMPLES`] swaps each, TSC time, on however many CPUs run tasks):
//! 1. a small cell: `greeting_v1` <-> `greeting_v2`, alternating (a 78-byte function, one dependent or two);
//! 2. the scheduler core with itself (`swap scheduler scheduler`: its runqueues carried over; each old copy is
//!    retired while CPUs still return into it).
//!
//! For each: the phases of `SwapReport` (load, verify, state transfer, quiesce + rewrite, cleanup, total) and the
//! pin search inside the stopped world (`live_update::last_pin_search`).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use cell_namespace::{SwapOptions, SwapReport};

/// Swaps measured per metric.
pub const SAMPLES: usize = 20;

/// Runs both benchmarks and prints their lines.
///
/// # Errors
/// A message if a swap failed.
#[inline(never)]
pub fn run() -> Result<(), String> {
    let kernel = system_namespaces::kernel_namespace().ok_or("no kernel namespace")?;
    let cpus = scheduler::online_cpu_count();
    let (mut old, mut new) = if kernel.cell("greeting_v2").is_some() {
        ("greeting_v2", "greeting_v1")
    } else {
        if kernel.cell("greeting_v1").is_none() {
            kernel.load_cell("greeting_v1").map_err(|error| format!("loading greeting_v1: {error}"))?;
        }
        ("greeting_v1", "greeting_v2")
    };
    let mut greeting = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        greeting.push(swap(old, new)?);
        core::mem::swap(&mut old, &mut new);
    }
    report(&format!("greeting ({cpus} CPUs)"), &greeting);
    let mut scheduler = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        // Back to back: each swap redirects every retired copy still running to the newest copy's state.
        scheduler.push(swap("scheduler", "scheduler")?);
    }
    report(&format!("scheduler ({cpus} CPUs)"), &scheduler);
    let reclaimed = live_update::reclaim();
    log::info!("bench: after the swaps: {reclaimed}");
    Ok(())
}

/// One measured swap: its report and its pin search time.
struct Sample {
    report: SwapReport,
    pin_search_ns: u64,
    cells_checked: usize,
}

fn swap(old: &str, new: &str) -> Result<Sample, String> {
    let report = live_update::swap(&[(old, new)], &SwapOptions::default())
        .map_err(|error| format!("swap {old} {new}: {error}"))?;
    let cost = live_update::last_pin_search();
    Ok(Sample { report, pin_search_ns: cost.total_ns, cells_checked: cost.cells_checked })
}

/// Reads one phase's time (ns) out of a sample.
type Phase = fn(&Sample) -> u64;

/// Prints the median (and range) of each phase over `samples`.
fn report(what: &str, samples: &[Sample]) {
    let phases: [(&str, Phase); 7] = [
        ("load", |sample| sample.report.stage_ns),
        ("verify", |sample| sample.report.verify_ns),
        ("state transfer", |sample| sample.report.state_transfer_ns),
        ("quiesce+rewrite", |sample| sample.report.quiesce_ns),
        ("pin search (in quiesce)", |sample| sample.pin_search_ns),
        ("cleanup", |sample| sample.report.cleanup_ns),
        ("total", |sample| sample.report.total_ns),
    ];
    for (phase, value) in phases {
        let mut values: Vec<u64> = samples.iter().map(value).collect();
        values.sort_unstable();
        let median = values.get(values.len() / 2).copied().unwrap_or(0);
        let (min, max) = (values.first().copied().unwrap_or(0), values.last().copied().unwrap_or(0));
        log::info!("bench: swap {what} {phase}: median {median} ns (min {min}, max {max}, {} samples)", values.len());
    }
    let checked = samples.iter().map(|sample| sample.cells_checked).max().unwrap_or(0);
    let retired = samples.iter().map(|sample| sample.report.cells_retired).sum::<usize>();
    log::info!(
        "bench: swap {what}: up to {checked} cells pin-checked per swap; {retired} of {} old copies retired",
        samples.len()
    );
}
