//! One function per metric, each returning the mean ns of one operation in one run, and [`all`] which runs
//! every metric [`RUNS`] times and prints its line.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::hint::black_box;

use crate::{Iterations, RUNS, summarize};

/// Runs every metric and prints its line; one result per metric (an `Err` names the metric and the cause).
pub fn all(iterations: Iterations, profile: bool, small: &[&str], large: &[&str]) -> Vec<Result<(), String>> {
    let fast = iterations.fast;
    let mut results = vec![
        metric("null_call", iterations.null_call, null_call),
        metric("context_switch", fast, app_io::bench::context_switch_ns),
        metric("spawn", iterations.spawn, spawn_hello),
        metric("map_unmap", fast, app_io::bench::map_unmap_ns),
        metric("ipc_rendezvous", fast, |count| round_trip(0, count)),
        metric("ipc_buffered", fast, |count| round_trip(1, count)),
        metric("heap", fast, heap),
    ];
    results.extend(cell_loads(iterations.cell_load, profile, small, large));
    results.push(swap_excluding_load(iterations.swap));
    results
}

/// Runs the two cell-load metrics with `iters` loads per run and prints their lines (and profiles), then the
/// scaling lines of the small cell ([`cell_load_scaling`]).
pub fn cell_loads(iters: u32, profile: bool, small: &[&str], large: &[&str]) -> Vec<Result<(), String>> {
    let mut results: Vec<Result<(), String>> = [("cell_load_small", small), ("cell_load_large", large)]
        .into_iter()
        .map(|(name, candidates)| cell_load(name, candidates, iters, profile))
        .collect();
    results.push(cell_load_scaling(small, iters));
    results
}

/// Symbol counts of the padding namespaces for [`cell_load_scaling`]: none, and about as many as the kernel's map.
const PADDING_SYMBOLS: [usize; 2] = [0, 10_000];

/// Whether a load's cost depends on the size of the symbol maps: the first of `candidates` that is not loaded is
/// loaded `iters` times (at least 5) per run through a namespace of 0 and one of 10,000 extra symbols, alternating,
/// in [`RUNS`] runs, printing `bench: scaling cell=... extra_symbols=N median=... min=... max=...
/// ns_per_relocation=...` (ns per load; per relocation from the median) for each.
fn cell_load_scaling(candidates: &[&str], iters: u32) -> Result<(), String> {
    let mut last_error = String::from("cell_load_scaling: no candidate cells");
    for &cell in candidates {
        let (runs, relocations) = match app_io::bench::cell_load_padded(cell, iters.max(5), RUNS, &PADDING_SYMBOLS) {
            Ok(result) => result,
            Err(error) => {
                last_error = format!("cell_load_scaling: {error}");
                continue;
            }
        };
        for (extra_symbols, samples) in PADDING_SYMBOLS.iter().zip(runs.iter()) {
            let Some((median, min, max)) = summarize(samples) else { continue };
            let per_relocation = median / relocations.max(1) as u64;
            app_io::println!(
                "bench: scaling cell={cell} extra_symbols={extra_symbols} median={median} min={min} max={max} \
                 ns_per_relocation={per_relocation}"
            );
        }
        return Ok(());
    }
    Err(last_error)
}

/// The `swap_excluding_load` metric: [`RUNS`] runs of `iters` swaps; the extra fields come from the median run.
fn swap_excluding_load(iters: u32) -> Result<(), String> {
    let name = "swap_excluding_load";
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        samples.push(app_io::bench::swap_excluding_load(iters).map_err(|error| format!("{name}: {error}"))?);
    }
    let runs: Vec<u64> = samples.iter().map(|sample| sample.excluding_load_ns).collect();
    let Some((median, _, _)) = summarize(&runs) else { return Err(format!("{name}: no runs")) };
    let Some(sample) = samples.iter().find(|sample| sample.excluding_load_ns == median) else {
        return Err(format!("{name}: the median run is missing"));
    };
    let [first, second] = app_io::bench::SWAP_CELLS;
    let other = if sample.first_old_cell == first { second } else { first };
    let extra = format!(
        " cell={} new={other} relocations_rewritten={} verify_ns={} state_transfer_ns={} commit_ns={} pin_search_ns={} \
         cleanup_ns={} load_ns={}",
        sample.first_old_cell,
        sample.relocations_rewritten,
        sample.verify_ns,
        sample.state_transfer_ns,
        sample.commit_ns,
        sample.pin_search_ns,
        sample.cleanup_ns,
        sample.load_ns
    );
    print_line(name, &runs, iters, &extra);
    Ok(())
}

/// Measures `name` in [`RUNS`] runs of `iters` operations and prints its line.
fn metric(name: &str, iters: u32, run: impl Fn(u32) -> Result<u64, String>) -> Result<(), String> {
    let mut runs = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        runs.push(run(iters).map_err(|error| format!("{name}: {error}"))?);
    }
    print_line(name, &runs, iters, "");
    Ok(())
}

fn print_line(name: &str, runs: &[u64], iters: u32, extra: &str) {
    if let Some((median, min, max)) = summarize(runs) {
        app_io::println!(
            "bench: metric={name} unit=ns median={median} min={min} max={max} iters={iters} runs={}{extra}",
            runs.len()
        );
    }
}

fn null_call(count: u32) -> Result<u64, String> {
    let started = app_io::now_ns();
    let mut sum = 0_u64;
    for index in 0..u64::from(count) {
        sum = sum.wrapping_add(app_io::bench::null_call(index));
    }
    black_box(sum);
    Ok((app_io::now_ns() - started) / u64::from(count.max(1)))
}

fn spawn_hello(count: u32) -> Result<u64, String> {
    let started = app_io::now_ns();
    for _ in 0..count {
        let handle = app_io::run("hello", vec![String::from("hello"), String::from("bench")])?;
        let code = handle.join()?;
        if code != 0 {
            return Err(format!("hello exited with {code}"));
        }
    }
    Ok((app_io::now_ns() - started) / u64::from(count.max(1)))
}

/// One run of 1-byte round trips to an echo task over two channels of `capacity` (0: rendezvous).
fn round_trip(capacity: usize, count: u32) -> Result<u64, String> {
    let (request_sender, request_receiver) = channel::bounded::<u8>(capacity);
    let (reply_sender, reply_receiver) = channel::bounded::<u8>(capacity);
    let echo = app_io::spawn("bench echo", move || {
        while let Ok(byte) = request_receiver.receive() {
            if reply_sender.send(byte).is_err() {
                break;
            }
        }
    })?;
    let started = app_io::now_ns();
    for index in 0..count {
        let byte = index as u8;
        request_sender.send(byte).map_err(|_| String::from("the echo task is gone"))?;
        let reply = reply_receiver.receive().map_err(|_| String::from("the echo task is gone"))?;
        if reply != byte {
            return Err(format!("echo returned {reply}, sent {byte}"));
        }
    }
    let elapsed = app_io::now_ns() - started;
    drop(request_sender);
    echo.join()?;
    Ok(elapsed / u64::from(count.max(1)))
}

/// One run of `count` allocations of random sizes 1..=1000 bytes, each written once and freed: the operations of
/// the Linux guest's C loop (`malloc`, one byte stored, `free`), through [`app_io::HeapBlock`] (one `alloc` and
/// one `dealloc` of the global allocator, alignment 1; `Vec::with_capacity` + `push` added a layout check call
/// and length/capacity bookkeeping that the C side does not do).
#[inline(never)]
fn heap(count: u32) -> Result<u64, String> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let started = app_io::now_ns();
    for _ in 0..count {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = 1 + (state % 1000) as usize;
        // The C loop's operations: one allocation of `size` bytes, one byte written, one free (at the drop).
        let mut block = app_io::HeapBlock::new(size).ok_or("heap: allocation failed")?;
        block.set(0, state as u8);
        // The block's address escapes (as C's `volatile` pointer does), so the store above must happen.
        black_box(block.as_ptr());
    }
    Ok((app_io::now_ns() - started) / u64::from(count.max(1)))
}

/// The cell-load metric `name`: the first of `candidates` that is not loaded, in [`RUNS`] runs, then (with
/// `profile`) one more run with the loader profile on, printed as a breakdown.
fn cell_load(name: &str, candidates: &[&str], iters: u32, profile: bool) -> Result<(), String> {
    let mut last_error = String::from("no candidate cells");
    for &cell in candidates {
        let mut runs = Vec::with_capacity(RUNS);
        let mut sample = None;
        for _ in 0..RUNS {
            match app_io::bench::cell_load(cell, iters, false) {
                Ok(load) => {
                    runs.push(load.ns);
                    sample = Some(load);
                }
                Err(error) => {
                    last_error = error;
                    break;
                }
            }
        }
        let Some(sample) = sample.filter(|_| runs.len() == RUNS) else { continue };
        let median = summarize(&runs).map_or(0, |(median, _, _)| median);
        let per_kib = (median as u128 * 1024 / sample.object_bytes.max(1) as u128) as u64;
        let per_relocation = median / sample.relocations.max(1) as u64;
        let extra = format!(
            " cell={cell} bytes={} relocations={} ns_per_kib={per_kib} ns_per_relocation={per_relocation}",
            sample.object_bytes, sample.relocations
        );
        print_line(name, &runs, iters, &extra);
        if profile {
            print_profile(cell, iters)?;
        }
        return Ok(());
    }
    Err(format!("{name}: {last_error}"))
}

fn print_profile(cell: &str, iters: u32) -> Result<(), String> {
    let load = app_io::bench::cell_load(cell, iters, true)?;
    let total: u64 = load.phases.iter().map(|(_, ns)| ns).sum();
    for (phase, ns) in &load.phases {
        let per_load = ns / u64::from(iters.max(1));
        let percent = (*ns as u128 * 1000 / total.max(1) as u128) as u64;
        app_io::println!(
            "bench: profile cell={cell} phase={phase} ns_per_load={per_load} percent={}.{}",
            percent / 10,
            percent % 10
        );
    }
    let cells = load.cells_staged / u64::from(iters.max(1));
    app_io::println!(
        "bench: profile cell={cell} phase=total ns_per_load={} cells_per_load={cells}",
        total / u64::from(iters.max(1))
    );
    Ok(())
}
