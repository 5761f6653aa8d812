//! The swap gate: every live swap in the kernel goes through here.
//!
//! # Purpose
//! `cell_namespace` knows how to swap cells but not how to stop CPUs or what a task stack is. This cell supplies
//! both, once, for every caller: the shell's `swap`, fault recovery's automatic reload of a repeatedly faulting
//! cell, and the test and bench cells. A swap through [`swap`] commits with every other CPU stopped
//! (`smp::run_with_other_cpus_stopped`; if they cannot be stopped the swap fails and changes nothing) and uses
//! the [`KernelPinFinder`] to decide whether each old cell can be freed at once or must be *retired* (kept mapped
//! and executable) because something still refers to it.
//!
//! # Key items
//! - [`swap`] / [`swap_in`] (another namespace) / [`reload`] with [`GateError`]; [`swap_everything`] ([`EverythingReport`]) swaps every cell for a
//!   fresh copy of itself, one at a time.
//! - [`reclaim`] re-checks the retired cells and frees those no longer pinned; [`retired`] lists them.
//! - [`init`] installs the scheduler's exit hook: a task that pinned a retired cell triggers a re-check when it
//!   exits (only then: the hook is one lookup in a small set otherwise).
//! - [`KernelPinFinder`] (see `pins.rs` for what it looks at and what it does not); [`last_pin_search`]
//!   ([`PinSearchCost`]): what the last swap's pin search cost inside the stopped world.
//! - [`saved_context_cursor`], [`CheckedStack`], [`is_mapped`]: stack reading shared with `fault_recovery`'s `bt`.
//!
//! # Control flow of a swap
//! 1. If cells are retired, re-check them first ([`reclaim`]): each swap is also a reclamation point.
//! 2. Snapshot the writable data regions of every loaded cell (outside the stopped world: namespace locks).
//! 3. `CellNamespace::swap_quiesced` stages, verifies and transfers state; inside the quiesced closure it patches
//!    the dependents and asks the pin finder about each old cell, freeing or retiring it.
//! 4. Record which tasks pin retired cells, for the exit hook. (A retired cell whose references were redirected
//!    into its replacement keeps that replacement alive, the namespace's `RetiredCellInfo::keeps_alive`; each
//!    later swap of that cell redirects every retired copy again to the newest one, so back-to-back swaps of a
//!    running cell need no pause between them.)
#![no_std]

extern crate alloc;

mod everything;
mod pins;
mod reclaim;
mod stack;

use core::fmt;

use cell_namespace::{CellNamespace, QuiesceError, SwapError, SwapOptions, SwapReport};

pub use cell_namespace::ReclaimReport;
pub use everything::{EverythingReport, Refusal, swap_everything};
pub use pins::{KernelPinFinder, PinSearchCost};
pub use reclaim::{init, reclaim, reclaim_in, retired};
pub use stack::{CheckedStack, is_mapped, saved_context_cursor};

/// This cell's state transfer (the swap convention, see `cell_namespace`), for `swap live_update live_update`: at
/// the commit, the scheduler's exit hook (a captured address) moves to this copy's.
///
/// # Errors
/// Never fails.
pub fn cell_state_transfer(transfer: &cell_namespace::StateTransfer<'_>) -> Result<(), alloc::string::String> {
    transfer.after_commit(alloc::boxed::Box::new(reclaim::init));
    Ok(())
}

/// Why a swap through the gate failed. Nothing was changed (see `SwapError` for its one exception).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateError {
    /// The system namespaces are not installed yet.
    NoNamespaces,
    /// The namespace refused or failed the swap.
    Swap(SwapError),
}

impl fmt::Display for GateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoNamespaces => write!(f, "the system namespaces are not installed"),
            Self::Swap(error) => write!(f, "{error}"),
        }
    }
}

/// One swap at a time through the gate, so a reclaim and a swap never interleave their pin checks. Held across
/// the whole swap (with interrupts enabled; never inside the stopped world).
static GATE: spin::Mutex<()> = spin::Mutex::new(());

/// A stack address of the task holding [`GATE`] (0: none), for [`recover_failed_task`].
static GATE_HOLDER: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// [`GATE`] held, with its holder token recorded.
struct GateGuard {
    _guard: spin::MutexGuard<'static, ()>,
}

impl GateGuard {
    #[inline(always)]
    fn lock() -> GateGuard {
        let guard = GATE.lock();
        let marker = 0u8;
        let token = core::hint::black_box(core::ptr::addr_of!(marker)) as usize;
        GATE_HOLDER.store(token, core::sync::atomic::Ordering::Release);
        GateGuard { _guard: guard }
    }
}

impl Drop for GateGuard {
    fn drop(&mut self) {
        GATE_HOLDER.store(0, core::sync::atomic::Ordering::Release);
    }
}

/// What [`recover_failed_task`] found and released.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateRecovery {
    /// The stop-the-world was still held by the dead task (its stopped CPUs were let go).
    pub released_stop: bool,
    /// Per namespace (by name): what its recovery did (a rolled-back swap, released locks).
    pub namespaces: alloc::vec::Vec<(alloc::string::String, cell_namespace::TransactionRecovery)>,
    /// The gate was still held by the dead task.
    pub released_gate: bool,
}

impl GateRecovery {
    /// Whether the dead task held anything of the swap path.
    pub fn is_empty(&self) -> bool {
        !self.released_stop && self.namespaces.is_empty() && !self.released_gate
    }
}

/// Recovers the swap path from a task that failed inside a swap without its guards being dropped (the fault
/// path's failure hook calls this for every failed task): the stop-the-world it held (stopped CPUs let go,
/// `smp::release_stop_held_within`), each system namespace's transaction (the swap in progress rolled back,
/// `CellNamespace::recover_failed_task`), then the gate. A task that held none of them is not touched (a few
/// atomic loads).
///
/// # Safety
/// `stack` must be the stack of a task that failed and never resumes the code it was running, called before that
/// task's failure handling reuses the stack depth the swap had reached (first thing in the failure hook).
pub unsafe fn recover_failed_task(stack: core::ops::Range<usize>) -> GateRecovery {
    // SAFETY: the caller's guarantee.
    let released_stop = unsafe { smp::release_stop_held_within(stack.clone()) };
    let mut recovery = GateRecovery { released_stop, ..GateRecovery::default() };
    let namespaces = [system_namespaces::application_namespace(), system_namespaces::kernel_namespace()];
    for namespace in namespaces.into_iter().flatten() {
        // SAFETY: the caller's guarantee; the stop-the-world is free again (released above if the task held it).
        if let Some(found) = unsafe { namespace.recover_failed_task(stack.clone(), &run_quiesced) } {
            recovery.namespaces.push((alloc::string::String::from(namespace.name()), found));
        }
    }
    let holder = GATE_HOLDER.load(core::sync::atomic::Ordering::Acquire);
    if GATE.is_locked() && stack.contains(&holder) {
        GATE_HOLDER.store(0, core::sync::atomic::Ordering::Release);
        // SAFETY: the holder is dead (the caller's guarantee) and its guard was never dropped (the token is set).
        unsafe { GATE.force_unlock() };
        recovery.released_gate = true;
    }
    if !recovery.is_empty() {
        RECOVERIES.fetch_add(1, core::sync::atomic::Ordering::AcqRel);
    }
    recovery
}

/// How many failed tasks [`recover_failed_task`] found holding part of the swap path.
static RECOVERIES: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// How many failed tasks so far held part of the swap path when their failure hook ran (their swap was not
/// rolled back by its own landing pad: a fault in the swap's own frame, or a task ended without unwinding).
pub fn recoveries() -> usize {
    RECOVERIES.load(core::sync::atomic::Ordering::Acquire)
}

/// Runs `f` once with every other CPU stopped; the gate's quiesce function for the namespace.
///
/// # Errors
/// [`QuiesceError`] naming the `smp` error; `f` has not run then.
pub fn run_quiesced(f: &mut dyn FnMut()) -> Result<(), QuiesceError> {
    smp::run_with_other_cpus_stopped(f).map_err(|error| QuiesceError { reason: alloc::format!("{error:?}") })
}

/// Swaps each `(old, new)` pair in the kernel namespace as one transaction (see the crate docs' control flow).
///
/// # Errors
/// [`GateError`]; a `SwapError::Quiesce` if the other CPUs could not be stopped.
pub fn swap(pairs: &[(&str, &str)], options: &SwapOptions) -> Result<SwapReport, GateError> {
    let kernel = system_namespaces::kernel_namespace().ok_or(GateError::NoNamespaces)?;
    swap_in(kernel, pairs, options)
}

/// Like [`swap`], in `namespace` (the kernel or the application namespace: the shell swaps application cells,
/// such as the case-study cells `pipe_stage_v1` and `demo_channel_rendezvous`, in the application namespace).
/// The pinning tasks noted for the exit hook are those of both namespaces' retired cells; the exit hook re-checks
/// the kernel namespace only, so a retired application cell is reclaimed at the next swap in its namespace.
///
/// # Errors
/// As for [`swap`].
pub fn swap_in(
    namespace: &CellNamespace,
    pairs: &[(&str, &str)],
    options: &SwapOptions,
) -> Result<SwapReport, GateError> {
    let _gate = GateGuard::lock();
    if !namespace.retired().is_empty() {
        reclaim::reclaim_locked(namespace);
    }
    let finder = KernelPinFinder::snapshot();
    let result = namespace.swap_quiesced(pairs, options, &tsc::now_ns, &run_quiesced, &finder);
    let mut retired = namespace.retired();
    if let Some(kernel) = system_namespaces::kernel_namespace().filter(|kernel| !core::ptr::eq(&***kernel, namespace)) {
        retired.extend(kernel.retired());
    }
    *LAST_PIN_SEARCH.lock() = finder.cost();
    reclaim::note_pinning_tasks(&retired);
    result.map_err(GateError::Swap)
}

/// The cost of the last swap's pin searches. The lock protects the value only (IRQ-safe, taken alone).
static LAST_PIN_SEARCH: task::IrqSafeMutex<PinSearchCost> =
    task::IrqSafeMutex::new(PinSearchCost { cells_checked: 0, total_ns: 0, data_bytes: 0, tasks: 0 });

/// What the pin searches of the last swap through the gate cost (inside the stopped world; part of its
/// `quiesce_ns`).
pub fn last_pin_search() -> PinSearchCost {
    *LAST_PIN_SEARCH.lock()
}

/// Replaces kernel cell `cell` by a fresh copy of its code from its object file, carrying its state over (fault
/// recovery's repair of a cell that keeps faulting).
///
/// # Errors
/// As for [`swap`].
pub fn reload(cell: &str) -> Result<SwapReport, GateError> {
    swap(&[(cell, cell)], &SwapOptions::default())
}
