//! The kernel halves of the `bench` application's microbenchmarks: what needs kernel internals to measure.
//!
//! The `bench` application (`applications/bench`) measures most metrics itself through `app_io`; these three need
//! the kernel, and `app_io::bench` exposes them safely:
//! - [`context_switch_ns`]: two tasks pinned to the caller's CPU yield to each other;
//! - [`map_unmap_ns`]: map a fresh 4 KiB `MappedPages` read-write, write its first byte, drop (unmap) it;
//! - [`cell_load`]: load and link a private copy of a cell that is not loaded yet, in a throwaway child namespace
//!   (so its dependencies resolve against the loaded system), then drop it; with the loader profile
//!   (`cell_namespace::set_load_profiling`) it also gives the per-phase breakdown; [`cell_load_padded`] does the
//!   same through a namespace of extra symbols, to show whether a load's cost depends on the symbol maps' size;
//! - [`swap_excluding_load`]: live swaps of a small cell through the gate (`live_update::swap`), back and forth
//!   between [`SWAP_CELLS`], timed from the swap's own phase report without its load phase.
//!
//! Each returns the mean time of one operation over `iterations` (TSC nanoseconds, `tsc::now_ns`): the caller
//! repeats the call for several runs and reports the median of the runs. [`run`] (the shell's `bench micro`)
//! prints a short version of the three.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use alloc::vec;
use alloc::vec::Vec;
use cell_loader::SectionKind;
use cell_namespace::{BaseImageError, BaseSymbol, CellNamespace, LoadError, LoadProfile};
use memory::{AccessError, MapError, Permissions};
use memory_structs::VirtualAddress;
use spawn::{SpawnError, TaskBuilder};
use task::ExitValue;

/// Why a measurement could not be made.
#[derive(Debug)]
pub enum BenchError {
    /// A benchmark task could not be spawned.
    Spawn(SpawnError),
    /// A benchmark task ended Failed (the reason) or could not be joined.
    Task(String),
    /// Mapping the 4 KiB page failed.
    Map(MapError),
    /// Writing the mapped page failed.
    Access(AccessError),
    /// The system namespaces are not installed.
    NoNamespaces,
    /// No namespace has an object file for this cell.
    NoSuchCell(String),
    /// The cell is loaded already: a second copy would clash with its symbols.
    AlreadyLoaded(String),
    /// Loading the cell failed.
    Load(LoadError),
    /// A live swap failed (the gate's error, as text: it changed nothing).
    Swap(String),
    /// The padding namespace of [`cell_load_padded`] could not be built.
    Padding(BaseImageError),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Spawn(error) => write!(f, "spawn failed: {error}"),
            BenchError::Task(reason) => write!(f, "benchmark task failed: {reason}"),
            BenchError::Map(error) => write!(f, "map failed: {error:?}"),
            BenchError::Access(error) => write!(f, "write to the mapped page failed: {error:?}"),
            BenchError::NoNamespaces => write!(f, "the system namespaces are not installed"),
            BenchError::NoSuchCell(cell) => write!(f, "no object file for cell {cell}"),
            BenchError::AlreadyLoaded(cell) => write!(f, "cell {cell} is loaded already"),
            BenchError::Load(error) => write!(f, "load failed: {error}"),
            BenchError::Swap(error) => write!(f, "swap failed: {error}"),
            BenchError::Padding(error) => write!(f, "padding namespace: {error}"),
        }
    }
}

fn completed<T: 'static>(handle: spawn::JoinHandle<T>) -> Result<T, BenchError> {
    match handle.join() {
        Ok(ExitValue::Completed(value)) => Ok(value),
        Ok(ExitValue::Failed(reason)) => Err(BenchError::Task(format!("{reason}"))),
        Err(error) => Err(BenchError::Task(format!("join: {error:?}"))),
    }
}

/// The mean time of one switch between two tasks pinned to the caller's CPU that yield to each other, in ns,
/// over `iterations` round trips (each round trip is two switches).
///
/// # Errors
/// [`BenchError::Spawn`] or [`BenchError::Task`] if a task could not start or failed.
pub fn context_switch_ns(iterations: u32) -> Result<u64, BenchError> {
    let cpu = scheduler::current_cpu();
    let stop = Arc::new(AtomicBool::new(false));
    let (partner_stop, stop_on_error) = (stop.clone(), stop.clone());
    let partner = TaskBuilder::new("bench switch partner")
        .pin(cpu)
        .spawn(move || {
            while !partner_stop.load(Ordering::Relaxed) {
                scheduler::yield_now();
            }
        })
        .map_err(BenchError::Spawn)?;
    let measurer = TaskBuilder::new("bench switch measurer").pin(cpu).spawn(move || {
        scheduler::yield_now(); // let the partner start
        let started = tsc::now_ns();
        for _ in 0..iterations {
            scheduler::yield_now();
        }
        let elapsed = tsc::now_ns() - started;
        stop.store(true, Ordering::Relaxed);
        elapsed / (2 * u64::from(iterations.max(1)))
    });
    let measurer = match measurer {
        Ok(handle) => handle,
        Err(error) => {
            // Without a measurer the partner would yield forever: stop it before reporting.
            stop_on_error.store(true, Ordering::Relaxed);
            completed(partner)?;
            return Err(BenchError::Spawn(error));
        }
    };
    let result = completed(measurer);
    completed(partner)?;
    result
}

/// The mean time to map a fresh 4 KiB page read-write, write its first byte and drop (unmap) it, in ns, over
/// `iterations`.
///
/// # Errors
/// [`BenchError::Map`] or [`BenchError::Access`] if a mapping or its write failed (nothing stays mapped).
pub fn map_unmap_ns(iterations: u32) -> Result<u64, BenchError> {
    let started = tsc::now_ns();
    for index in 0..iterations {
        let mut pages = memory::map_new(4096, Permissions::ReadWrite).map_err(BenchError::Map)?;
        *pages.as_type_mut::<u8>(0).map_err(BenchError::Access)? = index as u8;
        drop(pages);
    }
    Ok((tsc::now_ns() - started) / u64::from(iterations.max(1)))
}

/// One cell-load measurement.
#[derive(Clone, Copy, Debug)]
pub struct CellLoadSample {
    /// Mean time of one load and link, in ns.
    pub ns: u64,
    /// Size of the cell's object file, in bytes.
    pub object_bytes: usize,
    /// Relocations applied per load.
    pub relocations: usize,
    /// The loader profile of the measured loads (zero unless profiling was on).
    pub profile: LoadProfile,
}

/// The namespace whose object directory holds cell `cell` (kernel or application namespace).
fn owning_namespace(cell: &str) -> Result<&'static Arc<CellNamespace>, BenchError> {
    let kernel = system_namespaces::kernel_namespace().ok_or(BenchError::NoNamespaces)?;
    let applications = system_namespaces::application_namespace().ok_or(BenchError::NoNamespaces)?;
    [applications, kernel]
        .into_iter()
        .find(|namespace| namespace.objects().iter().any(|object| object.cell.as_deref() == Some(cell)))
        .ok_or_else(|| BenchError::NoSuchCell(String::from(cell)))
}

/// Loads one private copy of `cell` into a fresh child of `parent` and drops it; returns (ns, relocations).
fn load_once(parent: &Arc<CellNamespace>, cell: &str) -> Result<(u64, usize), BenchError> {
    load_once_below(parent, parent, cell)
}

/// Loads one private copy of `cell` (from `owner`'s directory) into a fresh child of `parent` and drops it;
/// returns (ns, relocations).
fn load_once_below(owner: &CellNamespace, parent: &Arc<CellNamespace>, cell: &str) -> Result<(u64, usize), BenchError> {
    let entry = owner.manifest_entry(cell).ok_or_else(|| BenchError::NoSuchCell(String::from(cell)))?;
    let bytes = owner.object_bytes(&entry.object_file).ok_or_else(|| BenchError::NoSuchCell(String::from(cell)))?;
    let scratch = parent.child("bench-load");
    scratch.add_object(entry, bytes).map_err(BenchError::Load)?;
    let started = tsc::now_ns();
    let loaded = scratch.load_cell(cell).map_err(BenchError::Load)?;
    let elapsed = tsc::now_ns() - started;
    let relocations = loaded.relocation_count();
    drop(loaded);
    // Unregisters the copy's unwind information too, which would otherwise keep it loaded.
    scratch.discard();
    Ok((elapsed, relocations))
}

/// The mean time to load and link cell `cell` (not loaded yet), in ns, over `iterations` loads of a private copy,
/// after one unmeasured load (which also loads, for good, the dependencies that were not loaded). With `profile`,
/// the loader profile is on during the measured loads and returned in the sample.
///
/// # Errors
/// [`BenchError::NoSuchCell`], [`BenchError::AlreadyLoaded`] (a copy would clash with the loaded one's symbols),
/// or [`BenchError::Load`] with the loader's error.
pub fn cell_load(cell: &str, iterations: u32, profile: bool) -> Result<CellLoadSample, BenchError> {
    let parent = owning_namespace(cell)?;
    if parent.cell(cell).is_some() {
        return Err(BenchError::AlreadyLoaded(String::from(cell)));
    }
    let object_bytes =
        parent.manifest_entry(cell).and_then(|entry| parent.object_bytes(&entry.object_file)).map_or(0, <[u8]>::len);
    load_once(parent, cell)?;
    cell_namespace::take_load_profile();
    cell_namespace::set_load_profiling(profile);
    let mut total = 0;
    let mut relocations = 0;
    let mut result = Ok(());
    for _ in 0..iterations {
        match load_once(parent, cell) {
            Ok((ns, count)) => {
                total += ns;
                relocations = count;
            }
            Err(error) => {
                result = Err(error);
                break;
            }
        }
    }
    cell_namespace::set_load_profiling(false);
    let profile = cell_namespace::take_load_profile();
    result?;
    Ok(CellLoadSample { ns: total / u64::from(iterations.max(1)), object_bytes, relocations, profile })
}

/// The small cell pair [`swap_excluding_load`] swaps back and forth: two versions of crate `greeting` (a 78-byte
/// function that `hello` calls).
pub const SWAP_CELLS: [&str; 2] = ["greeting_v1", "greeting_v2"];

/// One swap-excluding-load measurement: per-swap means over the measured swaps, in ns.
#[derive(Clone, Copy, Debug, Default)]
pub struct SwapSample {
    /// Verify + state transfer + quiesce and rewrite + cleanup: the swap's total minus its load phase.
    pub excluding_load_ns: u64,
    /// The load phase (staging the new cell), not part of [`excluding_load_ns`](Self::excluding_load_ns).
    pub load_ns: u64,
    /// Verify: symbols, kinds and state checked, patches planned.
    pub verify_ns: u64,
    /// State transfer (inside the stopped world).
    pub state_transfer_ns: u64,
    /// Quiesce + rewrite (the commit: other CPUs stopped, dependents patched, pins found), minus the transfer.
    pub commit_ns: u64,
    /// Of [`commit_ns`](Self::commit_ns): the pin search (`live_update::last_pin_search`: task stacks, stopped
    /// CPUs, every loaded cell's writable data, the IDT).
    pub pin_search_ns: u64,
    /// Cleanup: dependency records, symbol map, freeing or retiring the old cell.
    pub cleanup_ns: u64,
    /// Relocations rewritten in dependents per swap (the largest of the measured swaps).
    pub relocations_rewritten: usize,
    /// The cell that was loaded before the measured swaps (the first old cell).
    pub first_old_cell: &'static str,
}

/// The mean cost of a live swap of a small cell excluding its load, over `iterations` swaps alternating between
/// the two [`SWAP_CELLS`] (the one not loaded is swapped in for the one loaded; `greeting_v1` is loaded first if
/// neither is). Each swap goes through `live_update::swap` (the same gate as the shell's `swap`: stop-the-world
/// commit, pin search) and its `SwapReport` gives the phases; the sample is `total - load`. After an odd number
/// of swaps one more, unmeasured, restores the cell that was loaded before, so the system is left as found.
///
/// # Errors
/// [`BenchError::NoNamespaces`], [`BenchError::Load`] if the first cell cannot be loaded, [`BenchError::Swap`]
/// if a swap fails (that swap changed nothing; the earlier ones stay done).
pub fn swap_excluding_load(iterations: u32) -> Result<SwapSample, BenchError> {
    let kernel = system_namespaces::kernel_namespace().ok_or(BenchError::NoNamespaces)?;
    let [first, second] = SWAP_CELLS;
    let (mut old, mut new) = if kernel.cell(second).is_some() { (second, first) } else { (first, second) };
    if kernel.cell(old).is_none() {
        kernel.load_cell(old).map_err(BenchError::Load)?;
    }
    let mut sample = SwapSample { first_old_cell: old, ..SwapSample::default() };
    let swap = |old: &str, new: &str| {
        live_update::swap(&[(old, new)], &cell_namespace::SwapOptions::default())
            .map_err(|error| BenchError::Swap(format!("{old} -> {new}: {error}")))
    };
    for _ in 0..iterations {
        let report = swap(old, new)?;
        sample.excluding_load_ns += report.total_ns.saturating_sub(report.stage_ns);
        sample.load_ns += report.stage_ns;
        sample.verify_ns += report.verify_ns;
        sample.state_transfer_ns += report.state_transfer_ns;
        sample.commit_ns += report.quiesce_ns;
        sample.pin_search_ns += live_update::last_pin_search().total_ns;
        sample.cleanup_ns += report.cleanup_ns;
        sample.relocations_rewritten = sample.relocations_rewritten.max(report.relocations_rewritten);
        core::mem::swap(&mut old, &mut new);
    }
    if old != sample.first_old_cell {
        swap(old, new)?;
    }
    let count = u64::from(iterations.max(1));
    for total in [
        &mut sample.excluding_load_ns,
        &mut sample.load_ns,
        &mut sample.verify_ns,
        &mut sample.state_transfer_ns,
        &mut sample.commit_ns,
        &mut sample.pin_search_ns,
        &mut sample.cleanup_ns,
    ] {
        *total /= count;
    }
    Ok(sample)
}

/// Where the synthetic symbols of [`cell_load_padded`] claim to be (a canonical higher-half address).
const PADDING_ADDRESS: usize = 0xffff_ff00_0000_0000;

/// Like [`cell_load`] (without the profile), but with a padding namespace between the copy's namespace and the
/// system's: a child of the owning namespace holding synthetic symbols (as a base image), which every lookup of
/// the copy's undefined symbols passes through and misses. One padding namespace is built per entry of
/// `extra_symbols` (before anything is timed); then `runs` rounds each time `iterations` loads through every
/// padding in turn, so that a slow spell of the host hits all sizes alike. Returns, per entry of `extra_symbols`,
/// the mean ns per load of each run, and the relocations per load. With a symbol map whose lookups cost the same
/// at any size the means agree; an ordered map would add a term growing with the logarithm of the size.
///
/// # Errors
/// As [`cell_load`], and [`BenchError::Padding`] if a padding namespace cannot be built.
pub fn cell_load_padded(
    cell: &str,
    iterations: u32,
    runs: usize,
    extra_symbols: &[usize],
) -> Result<(Vec<Vec<u64>>, usize), BenchError> {
    let owner = owning_namespace(cell)?;
    if owner.cell(cell).is_some() {
        return Err(BenchError::AlreadyLoaded(String::from(cell)));
    }
    let mut paddings = Vec::with_capacity(extra_symbols.len());
    for &count in extra_symbols {
        let padding = Arc::new(owner.child("bench-padding"));
        // Addresses are never used (no relocation binds to these names); any canonical address will do.
        let symbols: Vec<BaseSymbol> = (0..count)
            .filter_map(|index| {
                Some(BaseSymbol {
                    address: VirtualAddress::try_new(PADDING_ADDRESS.wrapping_add(index)).ok()?,
                    size_in_bytes: 1,
                    kind: SectionKind::ReadOnlyData,
                    name: format!("bench_padding_symbol_{index}"),
                })
            })
            .collect();
        padding.add_base_image("bench_padding", &symbols).map_err(BenchError::Padding)?;
        paddings.push(padding);
    }
    load_once(owner, cell)?;
    let mut samples = vec![Vec::with_capacity(runs); paddings.len()];
    let mut relocations = 0;
    for _ in 0..runs {
        for (padding, samples) in paddings.iter().zip(samples.iter_mut()) {
            let mut total = 0;
            for _ in 0..iterations {
                let (ns, count) = load_once_below(owner, padding, cell)?;
                total += ns;
                relocations = count;
            }
            samples.push(total / u64::from(iterations.max(1)));
        }
    }
    Ok((samples, relocations))
}

/// The shell's `bench micro`: prints a short version of the context switch and map/unmap (100 iterations each).
///
/// # Errors
/// The first measurement's error, as text.
#[inline(never)]
pub fn run() -> Result<(), String> {
    let text = |error: BenchError| format!("{error}");
    serial::write_fmt(format_args!("bench: context switch {} ns\n", context_switch_ns(100).map_err(text)?));
    serial::write_fmt(format_args!("bench: map/unmap 4 KiB {} ns\n", map_unmap_ns(100).map_err(text)?));
    Ok(())
}
