//! Rolling back a swap whose own task failed inside it (a CPU fault or a panic in the swapping task: issue 12).
//!
//! # The rule (see also the consistency model in `swap/mod.rs`)
//! The swap records how far it got in the namespace (`CellNamespace::swap_phase`, one atomic store per phase,
//! also inside the quiesced phase) and, once the new cells are built, a [`SwapJournal`] holding what an undo
//! needs: the built cells and every precomputed store (old and new value at each place). A failure of the
//! swapping task before the end of the quiesced phase is rolled back exactly as a failed verification: every
//! store is written back to its old value (all of them, newest first, with the other CPUs stopped again: a store
//! not yet made already holds its old value), the built cells forget their dependency edges on published cells
//! and are dropped, nothing was published, and the transaction lock is released. So **for a fault, the commit
//! point is the end of the quiesced phase**, not the first patch: a fault between the last patch and the end of
//! the quiesced phase (in a transfer function's deferred action or in the pin search) undoes the patches too.
//! If deferred actions (`StateTransfer::after_commit`) already ran, they may have stored the new cells'
//! addresses (a hook, an IDT gate), so the new cells are then leaked (kept mapped for good) instead of freed.
//! A failure in phase 5 (cleanup, after the quiesced phase) leaves the commit standing (every dependent already
//! calls the new code, the old code's state references were redirected): the locks are released and the failure
//! is reported; the namespace's records (symbol map, cell table, retired list) may be incomplete for the cells of
//! that swap (not finished: see the README).
//!
//! # Two paths to the same undo
//! - **Unwinding** (the usual case: the fault is in a function the swap called): the landing pad of
//!   [`SwapUnwindGuard`], in `swap_quiesced`'s frame, rolls back while the transaction lock is still held (it
//!   drops before the transaction); `smp`'s stop-the-world releases the stopped CPUs in its own landing pad first.
//! - **No landing pad ran** (the fault was in `swap_quiesced`'s own frame, where the guard lives, or the task was
//!   ended without unwinding): the fault path's failure hook calls [`CellNamespace::recover_failed_task`] with
//!   the dead task's stack: a transaction lock whose holder token lies on that stack was the dead task's; the
//!   journal is rolled back and the lock (and the namespace's `state` write lock, which only the transaction
//!   holder takes for writing) force-released.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::{AtomicU8, Ordering};

use super::RunQuiesced;
use super::plan::{self, Rewrite};
use crate::CellNamespace;
use crate::cell::LoadedCell;
use crate::namespace::SymbolTarget;

/// How far a swap got (stored in `CellNamespace::swap_phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum SwapPhase {
    /// No swap in this namespace.
    Idle = 0,
    /// Staging and verifying: only private memory written.
    Staging = 1,
    /// The new cells are built: they hold dependency edges on published sections.
    Built = 2,
    /// Inside the quiesced phase, copying state into the new cells and running transfer functions.
    Transfer = 3,
    /// Inside the quiesced phase, rewriting dependents' relocations and redirecting references.
    Patching = 4,
    /// Every store made; the pin search runs (still quiesced).
    Patched = 5,
    /// The transfer functions' deferred actions started (they may store the new cells' addresses).
    Actions = 6,
    /// After the quiesced phase: the commit stands.
    Cleanup = 7,
}

impl SwapPhase {
    fn from_u8(value: u8) -> SwapPhase {
        [
            SwapPhase::Idle,
            SwapPhase::Staging,
            SwapPhase::Built,
            SwapPhase::Transfer,
            SwapPhase::Patching,
            SwapPhase::Patched,
            SwapPhase::Actions,
            SwapPhase::Cleanup,
        ]
        .get(usize::from(value))
        .copied()
        .unwrap_or(SwapPhase::Cleanup)
    }

    /// Sets `phase` in a namespace's phase word (lock-free: also inside the quiesced phase).
    pub(crate) fn enter(word: &AtomicU8, phase: SwapPhase) {
        word.store(phase as u8, Ordering::Release);
    }

    pub(crate) fn current(word: &AtomicU8) -> SwapPhase {
        SwapPhase::from_u8(word.load(Ordering::Acquire))
    }
}

/// What an undo of a swap needs, kept outside the swapping task's stack.
pub(crate) struct SwapJournal {
    /// The built cells (new cells first).
    pub(super) built: Vec<Arc<LoadedCell>>,
    /// Every store of the quiesced phase, in the order applied.
    pub(super) rewrites: Vec<Rewrite>,
}

/// What a rollback did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwapRollback {
    /// How far the swap had got when its task failed.
    pub phase: SwapPhase,
    /// Stores written back to their old values.
    pub stores_restored: usize,
    /// Whether they were written with every other CPU stopped (false: stopping failed and they were written with
    /// the others running; or there were none).
    pub quiesced: bool,
    /// Built cells dropped (freed once nothing else holds them).
    pub cells_dropped: usize,
    /// Built cells kept mapped for good (deferred actions had run; or, past the commit point, a new cell that could
    /// not be published: the dependents already run its code).
    pub cells_leaked: usize,
    /// Past the commit point (a fault inside the cleanup): new cells published by the rollback, which the cleanup
    /// had not published yet.
    pub cells_published: usize,
}

/// What [`CellNamespace::recover_failed_task`] did; `None` from it: the dead task held nothing of this namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionRecovery {
    /// The swap that was rolled back (or found past its commit point), if one was in progress.
    pub rollback: Option<SwapRollback>,
    /// Whether the namespace's `state` write lock was force-released too.
    pub released_state_lock: bool,
}

impl CellNamespace {
    /// Undoes the swap recorded in the journal (if any) according to the phase it reached; resets the phase.
    pub(crate) fn roll_back_swap(&self, run_quiesced: RunQuiesced<'_>) -> Option<SwapRollback> {
        let phase = SwapPhase::current(&self.swap_phase);
        let journal = self.swap_journal.try_lock().and_then(|mut journal| journal.take());
        SwapPhase::enter(&self.swap_phase, SwapPhase::Idle);
        if phase == SwapPhase::Idle {
            return None;
        }
        let mut report = SwapRollback {
            phase,
            stores_restored: 0,
            quiesced: false,
            cells_dropped: 0,
            cells_leaked: 0,
            cells_published: 0,
        };
        let Some(journal) = journal else { return Some(report) };
        if phase == SwapPhase::Cleanup {
            // Past the commit point nothing is undone: the dependents run the new cells' code. A new cell the
            // cleanup had not published yet (it faulted between removing the old cells and publishing the new
            // ones) is published now, so that it stays loaded, its unwind information registered, and it can be
            // swapped again; dropping it would free code the dependents call.
            (report.cells_published, report.cells_leaked) = self.publish_after_commit(journal.built);
            return Some(report);
        }
        if phase >= SwapPhase::Patching {
            let rewrites: Vec<&Rewrite> = journal.rewrites.iter().collect();
            let mut restore = || plan::restore(&rewrites);
            report.quiesced = run_quiesced(&mut restore).is_ok();
            if !report.quiesced {
                // Half-patched dependents are certain damage; a restore with the others running is the lesser risk.
                plan::restore(&rewrites);
            }
            report.stores_restored = rewrites.len();
        }
        for cell in &journal.built {
            plan::detach(cell);
        }
        if phase >= SwapPhase::Actions {
            report.cells_leaked = journal.built.len();
            for cell in journal.built {
                core::mem::forget(cell);
            }
        } else {
            report.cells_dropped = journal.built.len();
        }
        Some(report)
    }

    /// Publishes each of `cells` (a swap's new cells, past its commit point) that is not published yet: its exports
    /// where their names are free, the cell itself, and the loaded-cell notification (unwind information). A cell
    /// whose name is still taken by another cell (a self-swap whose old cell was not removed yet), or all of them if
    /// the state lock is held (by a frame the fault abandoned), is kept alive unpublished instead. Returns (published,
    /// kept alive).
    fn publish_after_commit(&self, cells: Vec<Arc<LoadedCell>>) -> (usize, usize) {
        let Some(mut state) = self.state.try_write() else {
            let kept = cells.len();
            cells.into_iter().for_each(core::mem::forget);
            return (0, kept);
        };
        let (mut published, mut kept) = (Vec::new(), 0);
        for cell in cells {
            match state.cells.get(&cell.name) {
                Some(present) if Arc::ptr_eq(present, &cell) => {}
                Some(_) => {
                    kept += 1;
                    core::mem::forget(cell);
                }
                None => {
                    for export in &cell.exports {
                        let Some(section) = cell.sections.get(export.section) else { continue };
                        let taken =
                            state.symbol_map.get(&export.name).is_some_and(|target| target.section.strong_count() > 0);
                        if !taken {
                            let target = SymbolTarget { section: Arc::downgrade(section), offset: export.offset };
                            state.symbol_map.insert(export.name.clone(), target);
                        }
                    }
                    state.cells.insert(cell.name.clone(), cell.clone());
                    published.push(cell);
                }
            }
        }
        drop(state);
        for cell in &published {
            crate::observer::notify_loaded(cell);
        }
        (published.len(), kept)
    }

    /// Recovers this namespace from a task that failed inside one of its transactions without dropping its guard
    /// (the fault path's failure hook calls it for every failed task, with that task's stack): if the
    /// transaction lock's holder token lies on `stack`, rolls back the swap in progress (see the module docs),
    /// force-releases the `state` write lock if it is held (only the transaction holder writes it) and then the
    /// transaction lock. Returns `None` if the task held no transaction of this namespace.
    ///
    /// # Safety
    /// `stack` must be the stack of a task that failed and never resumes the code it was running (it is being
    /// ended, its unwind over), and nothing else may be using that stack range.
    pub unsafe fn recover_failed_task(
        &self,
        stack: Range<usize>,
        run_quiesced: RunQuiesced<'_>,
    ) -> Option<TransactionRecovery> {
        if !self.transaction.is_held_within(&stack) {
            return None;
        }
        // Released first: a rollback past the commit point publishes the new cells.
        let released_state_lock = self.state.is_write_locked();
        if released_state_lock {
            // SAFETY: the state lock is written only under the transaction lock, which the dead task holds: the
            // writer is the dead task, whose guard is gone with its frame.
            unsafe { self.state.force_write_unlock() };
        }
        let rollback = self.roll_back_swap(run_quiesced);
        // SAFETY: the caller guarantees the task is dead; its guard was not dropped (the token is still set).
        unsafe { self.transaction.force_release_if_held_within(&stack) };
        Some(TransactionRecovery { rollback, released_state_lock })
    }
}

/// Rolls the swap back if dropped while armed: by a landing pad when the swapping task unwinds out of the swap.
pub(crate) struct SwapUnwindGuard<'a> {
    pub(crate) namespace: &'a CellNamespace,
    pub(crate) run_quiesced: RunQuiesced<'a>,
    pub(crate) armed: bool,
}

impl Drop for SwapUnwindGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Only the transaction holder writes the namespace's state, and this task holds the transaction (the guard
        // is declared after it, so it drops first): a write lock still held here was taken by a frame the unwind
        // left without its drops (a CPU fault in the middle of a function, e.g. inside the cleanup's publish).
        // Released before the rollback, which may publish; the state may hold a half-finished update.
        if self.namespace.state.is_write_locked() {
            // SAFETY: as just said, its writer is an abandoned frame of this task, which never resumes.
            unsafe { self.namespace.state.force_write_unlock() };
            log::warn!("namespace {}: released its state lock, held by a frame the unwind left", self.namespace.name());
        }
        if let Some(rollback) = self.namespace.roll_back_swap(self.run_quiesced) {
            log::warn!("namespace {}: swap rolled back as its task unwound: {rollback:?}", self.namespace.name());
        }
    }
}

/// Where a test can make the swapping task fault ([`inject_swap_fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SwapFaultPoint {
    /// After the new cells are staged (loaded, relocated), before verification.
    Staged = 1,
    /// After the new cells are built (dependency edges recorded), before the quiesced phase.
    Built = 2,
    /// Inside the quiesced phase, after the state copy, before the first store.
    Transfer = 3,
    /// Inside the quiesced phase, right after the first store (dependents half patched).
    Patching = 4,
    /// Inside the quiesced phase, after every store, before the pin search.
    Patched = 5,
    /// In `swap_quiesced`'s own frame after the whole swap (cleanup included) returned: past the commit point,
    /// nothing is undone (in the kernel, no landing pad of that frame runs: the failure hook's recovery releases
    /// the transaction lock).
    Completed = 6,
    /// Inside the cleanup, past the commit point: after the old cells were removed from the namespace, before the
    /// new ones are published.
    Cleanup = 7,
    /// Inside the cleanup's publication of the new cells, holding the namespace's state write lock (in the kernel,
    /// the `ud2` is not a call, so an unwind leaves that frame without dropping the guard).
    Publishing = 8,
}

/// The armed fault point (0: none).
static ARMED: AtomicU8 = AtomicU8::new(0);

/// For tests: the next swap in any namespace that reaches `point` faults there, in the swapping task: `ud2` (an
/// invalid-opcode exception) in the kernel, a panic on the host. One shot.
pub fn inject_swap_fault(point: SwapFaultPoint) {
    ARMED.store(point as u8, Ordering::Release);
}

/// Faults if `point` is armed (see [`inject_swap_fault`]); otherwise one atomic load.
#[inline(always)]
pub(crate) fn fault_point(point: SwapFaultPoint) {
    if ARMED.load(Ordering::Relaxed) == point as u8
        && ARMED.compare_exchange(point as u8, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok()
    {
        raise(point);
    }
}

#[cfg(target_os = "none")]
#[inline(always)]
fn raise(_point: SwapFaultPoint) {
    // SAFETY: a test's request: raises #UD in the swapping task, which the fault path unwinds or ends; nothing here
    // continues after it.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
}

#[cfg(not(target_os = "none"))]
#[inline(always)]
fn raise(point: SwapFaultPoint) {
    panic!("injected swap fault at {point:?}");
}
