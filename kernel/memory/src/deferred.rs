//! Deferred freeing of unmapped memory: one TLB shootdown round per batch of dropped `MappedPages` instead of one
//! per drop (after Linux's lazy purging of vmalloc areas, which batches the same flush).
//!
//! A dropped mapping's entries are cleared and flushed on the dropping CPU at once; its pages and frames stay
//! allocated (so nothing can be mapped at those pages, and nobody else writes those frames) until a shootdown
//! round that started after the unmap has been acknowledged by every other CPU. Only then are they freed. A stale
//! translation on another CPU meanwhile reaches only memory that nobody uses. The batch is shot down (one full
//! flush on every CPU) by a drop that finds [`SOFT_BATCH`] mappings pending with interrupts enabled, or [`BATCH`]
//! in any context, when an allocation fails (it may be waiting for these pages or frames), and when
//! [`crate::stats`] reads the counters (so leak checks see everything freed). With no other CPU participating,
//! nothing is deferred.
//!
//! Lock: [`PENDING`] protects the batch; it is taken with interrupts disabled, never while holding another lock of
//! this crate, and released before the round (no lock is held during a shootdown, see `shootdown`).

use crate::frames::AllocatedFrames;
use crate::pages::AllocatedPages;
use crate::shootdown;
use crate::sync::with_lock;
use owned_spin::OwnedSpinLock;

/// Dropped mappings kept at most before their batch is shot down, whatever the context.
pub(crate) const BATCH: usize = 64;
/// Dropped mappings after which a drop with interrupts enabled shoots the batch down. Drops with interrupts
/// disabled (the scheduler reaping a stack, code holding an interrupt-safe lock, which another CPU may be spinning
/// for with interrupts disabled and so could not acknowledge a round) only queue until [`BATCH`].
const SOFT_BATCH: usize = 16;

/// One unmapped mapping awaiting the shootdown: its pages and (for RAM) its frames.
type Entry = (AllocatedPages, Option<AllocatedFrames>);

/// The unmapped mappings waiting for a shootdown round (`None`: free slot). Protected by its lock (see above).
pub(crate) static PENDING: OwnedSpinLock<[Option<Entry>; BATCH]> = OwnedSpinLock::new([const { None }; BATCH]);

/// Frees `pages` and `frames` once every other CPU has flushed: their entries are already cleared and flushed on
/// this CPU. Queues them; runs the batch's round now (freeing them all) if the batch is full, or has
/// [`SOFT_BATCH`] entries and interrupts are enabled.
pub(crate) fn free_after_shootdown(pages: AllocatedPages, frames: Option<AllocatedFrames>) {
    if !shootdown::others_participate() {
        // Nobody else can hold a translation: free at once.
        drop((pages, frames));
        return;
    }
    let mut entry = Some((pages, frames));
    let pending = with_lock(&PENDING, |pending| {
        if let Some(slot) = pending.iter_mut().find(|slot| slot.is_none()) {
            *slot = entry.take();
        }
        pending.iter().flatten().count()
    });
    // `entry` is still here only if the batch was full: it was unmapped before the round below starts, so it
    // shares it.
    if entry.is_some() || (pending >= SOFT_BATCH && interrupts_enabled()) {
        flush_and_free(entry);
    }
}

/// Whether interrupts are enabled on this CPU (always "yes" on the host).
fn interrupts_enabled() -> bool {
    #[cfg(target_os = "none")]
    {
        x86_64::instructions::interrupts::are_enabled()
    }
    #[cfg(not(target_os = "none"))]
    {
        true
    }
}

/// Shoots down every pending mapping now and frees them (for allocation failures and `stats`). Returns how many
/// were freed (0 if none was pending or the round failed).
pub(crate) fn flush_deferred() -> usize {
    flush_and_free(None)
}

/// Takes the batch (plus `extra`), runs one full-flush round, and frees everything taken; on a failed round
/// leaks it instead (counted in `shootdown_stats().leaked_pages`).
fn flush_and_free(extra: Option<Entry>) -> usize {
    let mut taken = with_lock(&PENDING, |pending| core::mem::replace(pending, [const { None }; BATCH]));
    let count = taken.iter().flatten().count() + usize::from(extra.is_some());
    if count == 0 {
        return 0;
    }
    // Pages = 0 asks for a full flush: the batch's ranges are disjoint, one round covers them all.
    if shootdown::shoot_down(0, 0).is_err() {
        let pages: usize = taken.iter().flatten().chain(extra.iter()).map(|(pages, _)| pages.count()).sum();
        shootdown::count_leaked_pages(pages);
        core::mem::forget(taken);
        core::mem::forget(extra);
        return 0;
    }
    for slot in taken.iter_mut() {
        drop(slot.take());
    }
    drop(extra);
    count
}

/// Runs `allocate`; if it fails, shoots down and frees the pending mappings and, if any was freed, tries again.
pub(crate) fn retry_after_flush<T, E>(allocate: impl Fn() -> Result<T, E>) -> Result<T, E> {
    match allocate() {
        Err(_) if flush_deferred() > 0 => allocate(),
        result => result,
    }
}
