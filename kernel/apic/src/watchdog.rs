//! The per-CPU watchdog: every CPU's timer tick is its heartbeat ([`super::ticks`]); each CPU's timer handler checks
//! the other online CPUs' heartbeats every [`CHECK_EVERY_TICKS`] ticks, and a CPU whose count has not moved for
//! [`STALL_THRESHOLD_NS`] is recorded once per stall ([`stalls`], printed by `faults`), so a hung CPU becomes a
//! recorded failure instead of silence.
//!
//! The check runs in the timer handler with interrupts disabled, so it takes no lock and allocates nothing: the
//! per-CPU watch state and the record table are atomics. Nothing is printed from the handler (the console's lock
//! may be held by the very CPU that stopped); the shell's `faults` prints the records. A CPU's own timer cannot see
//! its own stall with interrupts off; a task spinning with interrupts on does not stall the tick at all (the
//! scheduler preempts it), so only the cross-CPU check is meaningful, and a single CPU is never watched.
//! A CPU taken offline (parked by the fault path, or withdrawn by a test) is not watched. A stall that lasts
//! [`super::nmi_watchdog::NMI_STALL_NS`] makes the checker kick the stalled CPU with an NMI
//! ([`super::nmi_watchdog::request_recovery`]), which fails its running task.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use cpu::{CpuId, MAX_CPUS};

/// How long a CPU's tick count may stand still before it is recorded as stopped: 1 s, 100 ticks at
/// [`super::TICK_HZ`] (a stop-the-world commit or a TLB-shootdown wait lasts milliseconds).
pub const STALL_THRESHOLD_NS: u64 = 1_000_000_000;

/// Each CPU checks the others every this many of its own ticks (100 ms at [`super::TICK_HZ`]).
pub const CHECK_EVERY_TICKS: u64 = 10;

/// Stall records kept; later stalls are counted ([`stall_count`]) but not stored.
pub const STALL_RECORDS: usize = 16;

/// One watched CPU: the tick count last seen, when it was first seen (TSC ns), and whether its current stall was
/// recorded. Written by whichever CPU checks; races between checkers only move `since_ns` by one check period.
struct Watch {
    last_ticks: AtomicU64,
    since_ns: AtomicU64,
    reported: AtomicBool,
    /// Whether the NMI watchdog was asked to fail the stalled CPU's task for the current stall.
    kicked: AtomicBool,
}

static WATCHES: [Watch; MAX_CPUS] = [const {
    Watch {
        last_ticks: AtomicU64::new(0),
        since_ns: AtomicU64::new(0),
        reported: AtomicBool::new(false),
        kicked: AtomicBool::new(false),
    }
}; MAX_CPUS];

/// One recorded stall: a CPU whose heartbeat stood still for [`STALL_THRESHOLD_NS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stall {
    /// The CPU that stopped answering.
    pub cpu: CpuId,
    /// Its last tick count seen moving.
    pub last_ticks: u64,
    /// When that count was first seen (TSC ns): the stall began after it.
    pub since_ns: u64,
    /// When the stall was detected (TSC ns).
    pub detected_ns: u64,
    /// The CPU whose timer detected it.
    pub detected_by: CpuId,
}

/// Record slots: each field an atomic; `cpu` holds index + 1 once the slot is complete (0: empty).
struct Slot {
    cpu: AtomicU64,
    last_ticks: AtomicU64,
    since_ns: AtomicU64,
    detected_ns: AtomicU64,
    detected_by: AtomicU64,
}

static SLOTS: [Slot; STALL_RECORDS] = [const {
    Slot {
        cpu: AtomicU64::new(0),
        last_ticks: AtomicU64::new(0),
        since_ns: AtomicU64::new(0),
        detected_ns: AtomicU64::new(0),
        detected_by: AtomicU64::new(0),
    }
}; STALL_RECORDS];

/// Stalls detected so far (also those beyond [`STALL_RECORDS`]).
static STALLS: AtomicUsize = AtomicUsize::new(0);

/// Called by the timer handler on `this` CPU after counting its tick: every [`CHECK_EVERY_TICKS`] ticks, checks
/// the other online CPUs' heartbeats (see the module docs).
pub(crate) fn on_tick(this: CpuId, this_ticks: u64) {
    if !this_ticks.is_multiple_of(CHECK_EVERY_TICKS) || cpu::count() < 2 {
        return;
    }
    let now = tsc::now_ns();
    for other in cpu::online().filter(|&other| other != this) {
        check(other, now, this);
    }
}

fn check(other: CpuId, now: u64, this: CpuId) {
    let watch = &WATCHES[other.index()];
    let ticks = super::ticks(other);
    if ticks != watch.last_ticks.load(Ordering::Relaxed) || watch.since_ns.load(Ordering::Relaxed) == 0 {
        watch.last_ticks.store(ticks, Ordering::Relaxed);
        watch.since_ns.store(now, Ordering::Relaxed);
        watch.reported.store(false, Ordering::Relaxed);
        watch.kicked.store(false, Ordering::Relaxed);
        return;
    }
    let since = watch.since_ns.load(Ordering::Relaxed);
    let stalled_ns = now.saturating_sub(since);
    if ticks != 0 && stalled_ns >= super::nmi_watchdog::NMI_STALL_NS && !watch.kicked.swap(true, Ordering::AcqRel) {
        super::nmi_watchdog::request_recovery(other, ticks);
    }
    if ticks == 0 || stalled_ns < STALL_THRESHOLD_NS || watch.reported.swap(true, Ordering::AcqRel) {
        return;
    }
    let index = STALLS.fetch_add(1, Ordering::AcqRel);
    if let Some(slot) = SLOTS.get(index) {
        slot.last_ticks.store(ticks, Ordering::Relaxed);
        slot.since_ns.store(since, Ordering::Relaxed);
        slot.detected_ns.store(now, Ordering::Relaxed);
        slot.detected_by.store(this.index() as u64, Ordering::Relaxed);
        slot.cpu.store(other.index() as u64 + 1, Ordering::Release);
    }
}

/// Stalls detected so far (including those not stored).
pub fn stall_count() -> usize {
    STALLS.load(Ordering::Acquire)
}

/// Calls `each` for every stored stall, oldest first (at most [`STALL_RECORDS`]; a slot being written right now is
/// left out).
pub fn for_each_stall(mut each: impl FnMut(Stall)) {
    for slot in SLOTS.iter().take(stall_count().min(STALL_RECORDS)) {
        let cpu = slot.cpu.load(Ordering::Acquire);
        let (Some(cpu), Some(detected_by)) = (
            cpu.checked_sub(1).and_then(|index| CpuId::new(index as usize)),
            CpuId::new(slot.detected_by.load(Ordering::Relaxed) as usize),
        ) else {
            continue;
        };
        each(Stall {
            cpu,
            last_ticks: slot.last_ticks.load(Ordering::Relaxed),
            since_ns: slot.since_ns.load(Ordering::Relaxed),
            detected_ns: slot.detected_ns.load(Ordering::Relaxed),
            detected_by,
        });
    }
}
