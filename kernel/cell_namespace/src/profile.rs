//! The loader profile: where a load's time goes, phase by phase, summed over every cell loaded while enabled.
//!
//! Off by default: each phase boundary then costs one relaxed atomic load. [`set_load_profiling`]`(true)` makes
//! [`CellNamespace::load_cell`](crate::CellNamespace::load_cell) read its namespace's clock (nanoseconds, see
//! [`CellNamespace::set_clock`](crate::CellNamespace::set_clock)) at every boundary and add each phase's time to a
//! global total; [`take_load_profile`] returns the totals and resets them. Without a clock nothing is recorded.
//!
//! Phases ([`LoadPhase`]), in the order a load runs them: parse the object; allocate and map the three regions
//! (and zero them); copy the sections; resolve the undefined symbols (without the time of the cells staged on the
//! way, which is counted in their own parse, allocate and copy); apply the relocations; remap the regions to their
//! final permissions; check the exports for conflicts; build the `LoadedCell`s; record their dependency edges;
//! publish them (with the cell observer).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How many phases [`LoadPhase::ALL`] has.
pub const PHASES: usize = 10;

/// One phase of a load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadPhase {
    /// `ObjectFile::parse`: ELF headers, sections, symbols, relocations checked.
    Parse,
    /// Laying the sections out, allocating and mapping the regions, zeroing them.
    AllocateAndMap,
    /// Copying the sections' bytes into the regions.
    Copy,
    /// Binding the undefined symbols (cells staged on the way excluded).
    Resolve,
    /// Applying every relocation.
    Relocate,
    /// Setting the final (W^X) permissions.
    Remap,
    /// Checking that no exported symbol clashes with a visible one.
    Conflicts,
    /// Building the `LoadedCell`s and their `LoadedSection`s.
    Build,
    /// Recording the cross-cell dependency edges on both ends (target and source sections), and freeing the
    /// staging state (parsed objects, edge lists).
    Link,
    /// Publishing the cells and their symbols, and the cell observer (the unwinder registers `.eh_frame`).
    Publish,
}

impl LoadPhase {
    /// Every phase, in the order a load runs them.
    pub const ALL: [LoadPhase; PHASES] = [
        LoadPhase::Parse,
        LoadPhase::AllocateAndMap,
        LoadPhase::Copy,
        LoadPhase::Resolve,
        LoadPhase::Relocate,
        LoadPhase::Remap,
        LoadPhase::Conflicts,
        LoadPhase::Build,
        LoadPhase::Link,
        LoadPhase::Publish,
    ];

    /// The phase's name as the benchmark prints it (`parse`, `allocate_map`, ...).
    pub fn name(self) -> &'static str {
        match self {
            LoadPhase::Parse => "parse",
            LoadPhase::AllocateAndMap => "allocate_map",
            LoadPhase::Copy => "copy",
            LoadPhase::Resolve => "resolve",
            LoadPhase::Relocate => "relocate",
            LoadPhase::Remap => "remap",
            LoadPhase::Conflicts => "conflicts",
            LoadPhase::Build => "build",
            LoadPhase::Link => "link",
            LoadPhase::Publish => "publish",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The summed time of each phase since the last [`take_load_profile`], in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadProfile {
    /// Nanoseconds per phase, indexed like [`LoadPhase::ALL`].
    pub phase_ns: [u64; PHASES],
    /// Cells staged (each one's parse, allocate and copy are in the totals).
    pub cells: u64,
    /// Completed `load_cell` transactions.
    pub loads: u64,
}

impl LoadProfile {
    /// The summed nanoseconds of `phase`.
    pub fn ns(&self, phase: LoadPhase) -> u64 {
        self.phase_ns[phase.index()]
    }

    /// The sum over every phase, in nanoseconds.
    pub fn total_ns(&self) -> u64 {
        self.phase_ns.iter().sum()
    }
}

/// Whether phases are being timed.
static ENABLED: AtomicBool = AtomicBool::new(false);
/// The totals, indexed like [`LoadPhase::ALL`] (ns); then staged cells, then loads.
static TOTALS: [AtomicU64; PHASES + 2] = [const { AtomicU64::new(0) }; PHASES + 2];
const CELLS: usize = PHASES;
const LOADS: usize = PHASES + 1;

/// Turns the loader profile on or off (off at boot). The totals are kept either way.
pub fn set_load_profiling(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// The totals since the last call (or boot), which are reset to zero.
pub fn take_load_profile() -> LoadProfile {
    let mut profile = LoadProfile::default();
    for (total, slot) in TOTALS.iter().zip(profile.phase_ns.iter_mut()) {
        *slot = total.swap(0, Ordering::Relaxed);
    }
    profile.cells = TOTALS[CELLS].swap(0, Ordering::Relaxed);
    profile.loads = TOTALS[LOADS].swap(0, Ordering::Relaxed);
    profile
}

/// The clock of one transaction, read only while profiling is on.
#[derive(Clone, Copy)]
pub(crate) struct PhaseClock<'a> {
    clock: Option<&'a dyn Fn() -> u64>,
}

impl<'a> PhaseClock<'a> {
    /// Times phases with `clock` if profiling is on now; otherwise every method does nothing.
    pub(crate) fn new(clock: Option<&'a dyn Fn() -> u64>) -> Self {
        Self { clock: clock.filter(|_| ENABLED.load(Ordering::Relaxed)) }
    }

    /// The time now, or `None` when not profiling.
    pub(crate) fn now(&self) -> Option<u64> {
        self.clock.map(|clock| clock())
    }

    /// Adds the time from `since` to now to `phase`, and returns now (`None` when not profiling).
    pub(crate) fn lap(&self, phase: LoadPhase, since: Option<u64>) -> Option<u64> {
        let now = self.now()?;
        TOTALS[phase.index()].fetch_add(now.saturating_sub(since?), Ordering::Relaxed);
        Some(now)
    }

    /// Like [`lap`](Self::lap), but leaves out `excluded` ns (time already counted in other phases).
    pub(crate) fn lap_excluding(&self, phase: LoadPhase, since: Option<u64>, excluded: u64) -> Option<u64> {
        let now = self.now()?;
        let elapsed = now.saturating_sub(since?).saturating_sub(excluded);
        TOTALS[phase.index()].fetch_add(elapsed, Ordering::Relaxed);
        Some(now)
    }

    /// Counts one staged cell.
    pub(crate) fn count_cell(&self) {
        if self.clock.is_some() {
            TOTALS[CELLS].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one completed load.
    pub(crate) fn count_load(&self) {
        if self.clock.is_some() {
            TOTALS[LOADS].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The summed staging phases (parse, allocate, copy) so far, in ns: resolve subtracts what it staged.
pub(crate) fn staging_total_ns() -> u64 {
    [LoadPhase::Parse, LoadPhase::AllocateAndMap, LoadPhase::Copy]
        .iter()
        .map(|phase| TOTALS[phase.index()].load(Ordering::Relaxed))
        .sum()
}
