//! TLB shootdown: after a page-table change that removes or narrows a mapping, every other CPU drops the stale
//! translation before the change counts as done.
//!
//! # Why
//! Each CPU caches translations in its own TLB and paging-structure caches, and `invlpg` or a CR3 write only
//! affects the CPU that executes it. Intel SDM Vol. 3A 4.10.5 ("Propagation of Paging-Structure Changes to
//! Multiple Processors") leaves it to software: the CPU that changes an entry must make every other CPU that may
//! have cached it invalidate it, typically with an IPI, and must wait for them before relying on the change (before
//! the pages or frames are reused, or before code assumes a page is no longer writable). A CPU may cache a
//! translation it never used on purpose (speculation, SDM 4.10.2.3), so every online CPU is a target, not only
//! those that touched the page. Changes that only add a mapping (not-present -> present) need no shootdown:
//! translations of not-present entries are never cached (SDM 4.10.2.3).
//!
//! # Layering
//! This crate sits below the APIC and interrupt cells, so it cannot send IPIs itself. The `smp` cell registers a
//! [`ShootdownTransport`] (the calling CPU's index, "send the shootdown IPI to CPU n", a clock) once the IPI
//! vector has a handler, then calls [`join_tlb_shootdown`] on each CPU once it answers that IPI. Before the
//! registration, and while no other CPU has joined, every flush is local only (correct: nobody else runs).
//!
//! # Protocol (one round per operation: one range, or a full flush above [`FULL_FLUSH_THRESHOLD`] pages; dropped
//! `MappedPages` share one full-flush round per batch, see `deferred`)
//! Sender (any CPU, any context, no lock held: the page-table lock is released before the round starts):
//! 1. the page-table entries are already changed; a SeqCst fence orders those writes before reading
//!    [`PARTICIPANTS`], so a CPU that joins later flushes everything itself (see [`join_tlb_shootdown`]);
//! 2. disable interrupts (until the end of the round, so the sender is neither preempted while holding the round
//!    slot nor interrupted by a nested round), flush locally;
//! 3. take [`ROUND_SLOT`] (one round in flight system-wide). While spinning for it, service pending requests:
//!    the holder may be waiting for this CPU's acknowledgement;
//! 4. publish the request under the [`SEQUENCE`] seqlock (odd while being written; round number = sequence / 2):
//!    range and target set;
//! 5. send the IPI to each target, then wait until every target that is still a participant has stored the round
//!    number in its [`ACKNOWLEDGED`] slot, or [`ACKNOWLEDGE_TIMEOUT_NS`] passed;
//! 6. release the slot, restore interrupts. On a timeout the round fails with [`ShootdownError`]: the caller must
//!    not reuse what it unmapped (`MappedPages` then leaks its pages and frames instead of freeing them).
//!
//! Target (the IPI handler, or a CPU that polls because it spins with interrupts disabled: a CPU stopped by
//! stop-the-world, the stopper waiting for acknowledgements, a sender waiting for the slot): [`service_tlb_shootdown`]
//! reads the request consistently (seqlock retry), and if it is a target and has not acknowledged this round,
//! flushes the range and then stores the round number (Release) in its slot. A late target of a timed-out round
//! acknowledges whichever round is current when it gets there (it reads the current request), so a stale
//! acknowledgement never completes a newer round.
//!
//! # Deadlock freedom
//! A sender holds no lock while it waits, only the round slot; everyone who waits for the slot (or spins with
//! interrupts off in stop-the-world) services requests meanwhile, so two CPUs shooting down at once, or a sender
//! and a stopped CPU, always make progress. What remains: a target spinning with interrupts disabled on some
//! *other* lock, held by a sender that unmaps while holding it. Callers should not remap, or drop `MappedPages`,
//! while holding a spin lock that others take with interrupts disabled (the memory system's own locks are released
//! before any round; a drop with interrupts disabled only runs a round once 64 drops are pending). A loop that
//! spins with interrupts disabled can also call [`service_tlb_shootdown`] in its body, as stop-the-world does. The
//! timeout turns a violation into a leak and an error instead of a hang.
//!
//! A CPU that leaves for good ([`leave_tlb_shootdown`], e.g. halted after a fault outside any task) is no longer
//! waited for; it never runs again, so its stale translations do no harm.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use memory_structs::PAGE_SIZE;
use spin::Once;

/// The most CPUs the protocol tracks (one bit each in a `u64`); CPU indices are `0..SHOOTDOWN_MAX_CPUS`.
pub const SHOOTDOWN_MAX_CPUS: usize = 64;
/// Ranges of more than this many 4 KiB pages are flushed with a full TLB flush (CR3 reload) instead of one
/// `invlpg` per page (Linux's default ceiling is 33 pages for the same trade-off).
pub const FULL_FLUSH_THRESHOLD: usize = 32;
/// How long a sender waits for every acknowledgement, in nanoseconds (2 s: a CPU that keeps interrupts disabled
/// this long without polling is a bug elsewhere).
pub const ACKNOWLEDGE_TIMEOUT_NS: u64 = 2_000_000_000;

/// How the memory system reaches the other CPUs; registered once by the cell that owns the shootdown IPI.
#[derive(Clone, Copy)]
pub struct ShootdownTransport {
    /// The calling CPU's logical index, below [`SHOOTDOWN_MAX_CPUS`]. Must be callable with interrupts disabled,
    /// from interrupt handlers, and without taking locks.
    pub current_cpu: fn() -> usize,
    /// Sends the shootdown IPI to logical CPU `cpu`; `false` if it could not be sent (the round then relies on the
    /// target polling, and times out if it does not).
    pub send_ipi: fn(cpu: usize) -> bool,
    /// A monotonic clock in nanoseconds (for the acknowledgement timeout); 0 means "not running", and then the
    /// sender waits by counting polls instead.
    pub now_ns: fn() -> u64,
}

/// A shootdown round that not every target acknowledged in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShootdownError {
    /// The CPUs (bit n = CPU n) that had not acknowledged after [`ACKNOWLEDGE_TIMEOUT_NS`].
    pub unacknowledged: u64,
}

impl core::fmt::Display for ShootdownError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "TLB shootdown not acknowledged by CPUs {:#x} within 2 s", self.unacknowledged)
    }
}

/// Polls before a round times out when the transport has no running clock.
const UNCLOCKED_POLL_LIMIT: u64 = 200_000_000;

/// Counters of the shootdown machinery, from [`shootdown_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShootdownStats {
    /// Rounds that sent IPIs (operations while other CPUs participated).
    pub rounds: u64,
    /// Rounds that timed out.
    pub timeouts: u64,
    /// Requests serviced on this or other CPUs (IPI or polling), summed over all CPUs.
    pub serviced: u64,
    /// Pages leaked (never freed) because their unmap round timed out.
    pub leaked_pages: u64,
    /// The CPUs currently participating (bit n = CPU n).
    pub participants: u64,
}

/// The registered transport (none: local flushes only).
static TRANSPORT: Once<ShootdownTransport> = Once::new();
/// CPUs that answer shootdown requests (bit n = CPU n): set by [`join_tlb_shootdown`], cleared by
/// [`leave_tlb_shootdown`]. Senders target exactly these (minus themselves) and wait only for these.
static PARTICIPANTS: AtomicU64 = AtomicU64::new(0);
/// Held by the one sender whose round is in flight (taken and released with interrupts disabled). Protects the
/// writes of the request fields below (readers use the seqlock).
static ROUND_SLOT: AtomicBool = AtomicBool::new(false);
/// Seqlock over the request fields: odd while the slot holder writes them; `SEQUENCE / 2` is the current round.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);
/// The request: first virtual address (page-aligned).
static REQUEST_START: AtomicUsize = AtomicUsize::new(0);
/// The request: number of pages; 0 means a full flush.
static REQUEST_PAGES: AtomicUsize = AtomicUsize::new(0);
/// The request: target CPUs (bit n = CPU n).
static REQUEST_TARGETS: AtomicU64 = AtomicU64::new(0);
/// Per CPU: the last round it flushed for (stored with Release after the flush).
static ACKNOWLEDGED: [AtomicU64; SHOOTDOWN_MAX_CPUS] = [const { AtomicU64::new(0) }; SHOOTDOWN_MAX_CPUS];

static ROUNDS: AtomicU64 = AtomicU64::new(0);
static TIMEOUTS: AtomicU64 = AtomicU64::new(0);
static SERVICED: AtomicU64 = AtomicU64::new(0);
static LEAKED_PAGES: AtomicU64 = AtomicU64::new(0);

/// Registers how to reach the other CPUs. The first registration wins; later calls are ignored.
pub fn register_tlb_shootdown(transport: ShootdownTransport) {
    TRANSPORT.call_once(|| transport);
}

/// Adds the calling CPU (index `cpu`) to the CPUs that answer shootdowns, then flushes its whole TLB: a round that
/// did not target it (it read [`PARTICIPANTS`] before this) changed its entries before that read, so the flush
/// drops whatever it could have cached. Call on that CPU once it handles the shootdown IPI (or polls).
pub fn join_tlb_shootdown(cpu: usize) {
    if cpu >= SHOOTDOWN_MAX_CPUS {
        return;
    }
    // Every round up to `covered` changed its entries before it was published, so before this read, and the flush
    // below comes after it: those rounds are acknowledged by the flush. Later rounds are serviced as usual.
    let covered = SEQUENCE.load(Ordering::Acquire) / 2;
    PARTICIPANTS.fetch_or(1 << cpu, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    flush_local(0, 0);
    ACKNOWLEDGED[cpu].fetch_max(covered, Ordering::Release);
}

/// Removes CPU `cpu` from the CPUs that answer shootdowns: no sender waits for it any more. For a CPU that stops
/// for good (or, in tests, for a while: it must then [`join_tlb_shootdown`] again before touching memory).
pub fn leave_tlb_shootdown(cpu: usize) {
    if cpu < SHOOTDOWN_MAX_CPUS {
        PARTICIPANTS.fetch_and(!(1 << cpu), Ordering::SeqCst);
    }
}

/// Whether a CPU other than the caller participates, i.e. whether an unmap needs a round. A CPU that joins later
/// flushes its whole TLB when it joins, so a `false` answer stays correct for entries already changed.
pub(crate) fn others_participate() -> bool {
    let Some(transport) = TRANSPORT.get() else { return false };
    fence(Ordering::SeqCst);
    PARTICIPANTS.load(Ordering::SeqCst) & !bit((transport.current_cpu)()) != 0
}

/// The shootdown counters.
pub fn shootdown_stats() -> ShootdownStats {
    ShootdownStats {
        rounds: ROUNDS.load(Ordering::Relaxed),
        timeouts: TIMEOUTS.load(Ordering::Relaxed),
        serviced: SERVICED.load(Ordering::Relaxed),
        leaked_pages: LEAKED_PAGES.load(Ordering::Relaxed),
        participants: PARTICIPANTS.load(Ordering::Relaxed),
    }
}

/// Counts `pages` leaked after a failed round.
pub(crate) fn count_leaked_pages(pages: usize) {
    LEAKED_PAGES.fetch_add(pages as u64, Ordering::Relaxed);
}

/// Flushes `pages` pages from `start` on this CPU only (for an unmap whose round comes later, see `deferred`).
pub(crate) fn flush_this_cpu(start: usize, pages: usize) {
    flush_local(start, pages);
}

/// Invalidates `pages` pages from `start` on this CPU (`invlpg` each), or everything (CR3 reload) when `pages` is 0
/// or above [`FULL_FLUSH_THRESHOLD`]. No kernel mapping sets the G bit, so a CR3 reload flushes every translation
/// (SDM Vol. 3A 4.10.4.1).
fn flush_local(start: usize, pages: usize) {
    #[cfg(target_os = "none")]
    {
        use x86_64::VirtAddr;
        use x86_64::instructions::tlb;
        if pages == 0 || pages > FULL_FLUSH_THRESHOLD {
            tlb::flush_all();
        } else {
            for index in 0..pages {
                tlb::flush(VirtAddr::new_truncate((start + index * PAGE_SIZE) as u64));
            }
        }
    }
    #[cfg(not(target_os = "none"))]
    let _ = (start, pages, PAGE_SIZE);
}

/// Services the current shootdown request on the calling CPU if it is a target that has not acknowledged it: the
/// shootdown IPI's handler calls this (then sends EOI), and code that spins with interrupts disabled calls it in
/// its loop (stop-the-world, senders waiting for the round slot). Cheap when nothing is pending (two loads).
/// Call with interrupts disabled (it reads the current CPU's index). Does nothing before registration.
pub fn service_tlb_shootdown() {
    let Some(transport) = TRANSPORT.get() else { return };
    service_on((transport.current_cpu)());
}

fn service_on(cpu: usize) {
    if cpu >= SHOOTDOWN_MAX_CPUS {
        return;
    }
    loop {
        let before = SEQUENCE.load(Ordering::Acquire);
        if before % 2 == 1 {
            // The holder is writing a request; it sends the IPI (or this CPU polls again) once it is published.
            return;
        }
        let round = before / 2;
        if ACKNOWLEDGED[cpu].load(Ordering::Relaxed) >= round {
            return;
        }
        let start = REQUEST_START.load(Ordering::Relaxed);
        let pages = REQUEST_PAGES.load(Ordering::Relaxed);
        let targets = REQUEST_TARGETS.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if SEQUENCE.load(Ordering::Relaxed) != before {
            continue;
        }
        if targets & (1 << cpu) == 0 {
            return;
        }
        flush_local(start, pages);
        SERVICED.fetch_add(1, Ordering::Relaxed);
        ACKNOWLEDGED[cpu].store(round, Ordering::Release);
        return;
    }
}

/// Makes every CPU drop its translations of `pages` pages from `start` (page-aligned), after the caller changed
/// their page-table entries (and released the page-table lock): flushes locally, then runs one round with the
/// other participating CPUs (see the module documentation). Callable with interrupts enabled or disabled.
///
/// # Errors
/// [`ShootdownError`] if some CPU did not acknowledge within [`ACKNOWLEDGE_TIMEOUT_NS`]: it may still hold a stale
/// translation, so the caller must not reuse the pages or frames (or rely on the narrowed permissions).
pub(crate) fn shoot_down(start: usize, pages: usize) -> Result<(), ShootdownError> {
    // The page-table writes happen before the participant set is read (pairs with `join_tlb_shootdown`).
    fence(Ordering::SeqCst);
    let Some(transport) = TRANSPORT.get() else {
        flush_local(start, pages);
        return Ok(());
    };
    without_interrupts(|| {
        let me = (transport.current_cpu)();
        flush_local(start, pages);
        if PARTICIPANTS.load(Ordering::SeqCst) & !bit(me) == 0 {
            return Ok(());
        }
        while ROUND_SLOT.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            service_on(me);
            core::hint::spin_loop();
        }
        let result = run_round(transport, me, start, pages);
        ROUND_SLOT.store(false, Ordering::Release);
        result
    })
}

fn bit(cpu: usize) -> u64 {
    if cpu < SHOOTDOWN_MAX_CPUS { 1 << cpu } else { 0 }
}

/// Steps 4-5 of the protocol, with the round slot held and interrupts disabled.
fn run_round(transport: &ShootdownTransport, me: usize, start: usize, pages: usize) -> Result<(), ShootdownError> {
    let targets = PARTICIPANTS.load(Ordering::SeqCst) & !bit(me);
    if targets == 0 {
        return Ok(());
    }
    let sequence = SEQUENCE.load(Ordering::Relaxed);
    SEQUENCE.store(sequence + 1, Ordering::Relaxed);
    fence(Ordering::Release);
    REQUEST_START.store(start, Ordering::Relaxed);
    REQUEST_PAGES.store(if pages > FULL_FLUSH_THRESHOLD { 0 } else { pages }, Ordering::Relaxed);
    REQUEST_TARGETS.store(targets, Ordering::Relaxed);
    SEQUENCE.store(sequence + 2, Ordering::Release);
    let round = (sequence + 2) / 2;
    ROUNDS.fetch_add(1, Ordering::Relaxed);
    for cpu in (0..SHOOTDOWN_MAX_CPUS).filter(|cpu| targets & (1 << cpu) != 0) {
        // An unsent IPI is not an error by itself: the target may still poll; the wait below decides.
        let _ = (transport.send_ipi)(cpu);
    }
    let pending = || {
        let waiting_for = targets & PARTICIPANTS.load(Ordering::Acquire);
        (0..SHOOTDOWN_MAX_CPUS)
            .filter(|cpu| waiting_for & (1 << cpu) != 0 && ACKNOWLEDGED[*cpu].load(Ordering::Acquire) < round)
            .fold(0u64, |mask, cpu| mask | (1 << cpu))
    };
    let started = (transport.now_ns)();
    let mut polls: u64 = 0;
    loop {
        let unacknowledged = pending();
        if unacknowledged == 0 {
            return Ok(());
        }
        polls += 1;
        let now = (transport.now_ns)();
        let timed_out = if started == 0 || now == 0 {
            polls > UNCLOCKED_POLL_LIMIT
        } else {
            now.saturating_sub(started) > ACKNOWLEDGE_TIMEOUT_NS
        };
        if timed_out {
            TIMEOUTS.fetch_add(1, Ordering::Relaxed);
            return Err(ShootdownError { unacknowledged });
        }
        core::hint::spin_loop();
    }
}

/// Runs `f` with interrupts disabled on the kernel target (restoring the previous state); plainly on the host.
fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_os = "none")]
    {
        x86_64::instructions::interrupts::without_interrupts(f)
    }
    #[cfg(not(target_os = "none"))]
    {
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> usize {
        0
    }
    fn no_ipi(_cpu: usize) -> bool {
        true
    }
    /// Real time since the first reading, plus 1 (0 would mean "no clock"): the timeout case waits the real 2 s,
    /// so a slow host cannot make the polling thread miss a round.
    fn clock() -> u64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64 + 1
    }

    /// One test drives the whole protocol on the host (statics are shared, so the steps run in one test): a round
    /// with a target that acknowledges by polling completes; a target that never answers makes it time out; a
    /// target that leaves is no longer waited for.
    #[test]
    fn rounds_complete_only_when_every_participant_acknowledged() {
        register_tlb_shootdown(ShootdownTransport { current_cpu: here, send_ipi: no_ipi, now_ns: clock });
        join_tlb_shootdown(0);
        // No other participant: nothing to wait for.
        assert_eq!(shoot_down(0x1000, 1), Ok(()));
        assert_eq!(shootdown_stats().rounds, 0);
        // CPU 1 joins and acknowledges from another thread by polling.
        join_tlb_shootdown(1);
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let poller = {
            let done = done.clone();
            std::thread::spawn(move || {
                while !done.load(Ordering::Acquire) {
                    service_on(1);
                    std::hint::spin_loop();
                }
            })
        };
        for pages in [1, FULL_FLUSH_THRESHOLD + 1, 3] {
            assert_eq!(shoot_down(0x2000, pages), Ok(()));
        }
        done.store(true, Ordering::Release);
        poller.join().unwrap();
        assert_eq!(shootdown_stats().rounds, 3);
        assert_eq!(ACKNOWLEDGED[1].load(Ordering::Acquire), SEQUENCE.load(Ordering::Acquire) / 2);
        // A participant that never acknowledges: the round times out and names it.
        join_tlb_shootdown(2);
        service_on(1); // CPU 1 acknowledged every round so far: nothing to do.
        let error = shoot_down(0x3000, 1).unwrap_err();
        assert_eq!(error.unacknowledged & (1 << 2), 1 << 2);
        assert_eq!(shootdown_stats().timeouts, 1);
        // Once CPU 2 (and CPU 1) leave, nobody is waited for.
        leave_tlb_shootdown(2);
        leave_tlb_shootdown(1);
        assert_eq!(shoot_down(0x4000, 1), Ok(()));
        assert_eq!(shootdown_stats().participants, 1);
    }
}
