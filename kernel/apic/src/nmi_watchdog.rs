//! The NMI watchdog: a CPU stuck with interrupts off (a task spinning on a corrupted lock word, a skipped
//! instruction that leaves a loop without its exit) gets a non-maskable interrupt, and the exception dispatcher
//! hands the stalled task to fault recovery as if it had faulted at the interrupted instruction.
//!
//! # Why an NMI
//! A CPU spinning with interrupts masked takes no timer tick, so neither the scheduler nor [`super::watchdog`] on
//! that CPU can act; on a single CPU nothing else can either. An NMI cannot be masked by `cli`.
//!
//! # Sources
//! - The PIT (8254, channel 0, mode 2, divisor 65,536: 1,193,182 Hz / 65,536 = 18.2 Hz, every ~55 ms), routed
//!   through the I/O APIC as ISA IRQ 0 with delivery mode NMI to the CPU that called [`start`] (the bootstrap CPU).
//! - [`super::watchdog`]: when another CPU's heartbeat stood still for [`NMI_STALL_NS`], it asks that CPU to
//!   recover ([`request_recovery`]) and sends it an NMI IPI.
//!
//! # The decision ([`on_nmi`], run in the NMI handler, lock-free)
//! Each NMI compares this CPU's tick count with the one seen at its previous NMI; when the count stood still for
//! [`NMI_STALL_NS`] (twice the recording watchdog's threshold, so the 1.5 s interrupts-off section of the
//! watchdog test is recorded but not failed), or another CPU requested recovery, the verdict is
//! [`interrupts::NmiVerdict::Stalled`]; otherwise the NMI is ignored (the handler returns at once). A CPU taken
//! offline (parked by the fault path) is never failed.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use cpu::{CpuId, MAX_CPUS};
use x86_64::instructions::port::Port;

/// How long a CPU's tick count may stand still before its running task is failed: 2 s.
pub const NMI_STALL_NS: u64 = 2_000_000_000;

/// PIT ports (8254 datasheet): channel 0 data, mode/command.
const PIT_CHANNEL_0: u16 = 0x40;
const PIT_COMMAND: u16 = 0x43;
/// Command byte 0x34: channel 0 (bits 7:6 = 00), access lobyte/hibyte (5:4 = 11), mode 2 rate generator
/// (3:1 = 010), binary (0).
const PIT_CHANNEL_0_RATE_GENERATOR: u8 = 0x34;

/// Per CPU: the tick count seen at its last NMI, and since when (TSC ns; 0: never seen).
static LAST_TICKS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static SINCE_NS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: another CPU asked it to fail its stalled task at the next NMI: the stalled tick count + 1 (0: no
/// request). Honoured only if the count still stands there.
static REQUESTED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Stalls handed to fault recovery so far.
static RECOVERIES: AtomicU64 = AtomicU64::new(0);
/// NMIs taken by [`on_nmi`] so far (all CPUs).
static NMIS: AtomicU64 = AtomicU64::new(0);

/// Why [`start`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NmiWatchdogError {
    /// Routing the PIT's IRQ 0 as NMI failed.
    Route(crate::RouteError),
}

/// Installs the NMI hook and starts the PIT's periodic NMI to CPU `target`. Call once, after the exception hook
/// of the task layer is installed (a stall is handed to it).
///
/// # Errors
/// [`NmiWatchdogError::Route`].
pub fn start(target: CpuId) -> Result<(), NmiWatchdogError> {
    interrupts::set_nmi_hook(on_nmi);
    STARTED.store(true, Ordering::Release);
    let mut command: Port<u8> = Port::new(PIT_COMMAND);
    let mut channel_0: Port<u8> = Port::new(PIT_CHANNEL_0);
    // SAFETY: the PIT's ports are owned by this cell (no other cell programs the 8254); writing the mode byte and
    // a divisor of 0 (65,536) in lobyte/hibyte order starts channel 0 as a rate generator, with no memory effects.
    unsafe {
        command.write(PIT_CHANNEL_0_RATE_GENERATOR);
        channel_0.write(0);
        channel_0.write(0);
    }
    crate::route_isa_irq_as_nmi(0, target).map_err(NmiWatchdogError::Route)
}

/// Whether [`start`] ran (in this copy of the cell, or in the copy a swap replaced: carried over as `.data`).
static STARTED: AtomicBool = AtomicBool::new(false);

/// For this cell's state transfer: re-installs the NMI hook at this copy's [`on_nmi`] if the watchdog runs.
pub(crate) fn move_hook_at_commit() {
    if STARTED.load(Ordering::Acquire) {
        interrupts::set_nmi_hook(on_nmi);
    }
}

/// Asks CPU `cpu`, whose tick count stood at `ticks` for [`NMI_STALL_NS`], to fail its running task, and sends
/// it an NMI (the cross-CPU watchdog's call). The CPU refuses if its count has moved meanwhile.
pub fn request_recovery(cpu: CpuId, ticks: u64) {
    if let Some(slot) = REQUESTED.get(cpu.index()) {
        slot.store(ticks.wrapping_add(1), Ordering::Release);
        // An error (the CPU went offline meanwhile) leaves the request for a later NMI, harmlessly.
        let _ = crate::send_nmi(cpu);
    }
}

/// Stalled tasks handed to fault recovery so far.
pub fn recoveries() -> u64 {
    RECOVERIES.load(Ordering::Acquire)
}

/// NMIs seen by the watchdog so far (a test checks that the PIT's NMIs arrive).
pub fn nmi_count() -> u64 {
    NMIS.load(Ordering::Acquire)
}

/// The NMI hook (see the module docs).
fn on_nmi(info: &interrupts::ExceptionInfo) -> interrupts::NmiVerdict {
    NMIS.fetch_add(1, Ordering::Relaxed);
    let index = info.cpu.index();
    let (Some(last), Some(since), Some(requested)) = (LAST_TICKS.get(index), SINCE_NS.get(index), REQUESTED.get(index))
    else {
        return interrupts::NmiVerdict::Ignore;
    };
    if !cpu::is_online(info.cpu) {
        return interrupts::NmiVerdict::Ignore;
    }
    let now = tsc::now_ns();
    let ticks = super::ticks(info.cpu);
    let requested_at = requested.swap(0, Ordering::AcqRel);
    let stood_still = last.swap(ticks, Ordering::AcqRel) == ticks && since.load(Ordering::Acquire) != 0;
    if !stood_still {
        since.store(now, Ordering::Release);
    }
    let requested = requested_at != 0 && requested_at - 1 == ticks;
    let stalled = stood_still && now.saturating_sub(since.load(Ordering::Acquire)) >= NMI_STALL_NS;
    if ticks == 0 || !(stalled || requested) {
        return interrupts::NmiVerdict::Ignore;
    }
    // One recovery per stall: the next one needs another NMI_STALL_NS without a tick.
    since.store(now, Ordering::Release);
    RECOVERIES.fetch_add(1, Ordering::AcqRel);
    interrupts::NmiVerdict::Stalled
}
