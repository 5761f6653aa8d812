//! Stop-the-world: run a closure while every other CPU spins with interrupts disabled.
//!
//! Protocol: the stopper takes [`STOP_LOCK`] (with interrupts as the caller has them, so a concurrent stopper's IPI
//! can still be taken while waiting), disables interrupts, raises [`STOP_REQUESTED`], sends [`STOP_IPI_VECTOR`] to
//! all other CPUs and waits until each has incremented [`STOPPED`]. Each stopped CPU sends EOI, acknowledges, and
//! spins with interrupts disabled until the flag drops; then it executes a serializing instruction (CPUID), because
//! the closure may have patched code (Intel SDM Vol. 3A 8.1.3, "Handling Self- and Cross-Modifying Code"), and
//! decrements [`STOPPED`] on its way out. The stopper waits for all to leave before releasing the lock.
//!
//! Each stopped CPU records the instruction and stack pointer it was interrupted at (its interrupt frame) before
//! acknowledging; [`stopped_contexts`], called inside the closure, returns them, so a live swap can tell which
//! code each stopped CPU will return into (`live_update`'s pin finder walks from there).

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use interrupts::STOP_IPI_VECTOR;
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::structures::idt::InterruptStackFrame;

use crate::start::wait_until;

/// One stopper at a time; protects the protocol state below.
static STOP_LOCK: Mutex<()> = Mutex::new(());
/// Set while other CPUs must stay stopped.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
/// CPUs currently stopped in the handler.
static STOPPED: AtomicUsize = AtomicUsize::new(0);

/// The interrupted context each CPU recorded on entering the stop handler (by logical CPU index): instruction
/// pointer and stack pointer; written by that CPU before it increments [`STOPPED`], read by the stopper while every
/// other CPU is stopped, cleared by the CPU on its way out.
static INTERRUPTED: [(AtomicU64, AtomicU64); cpu::MAX_CPUS] =
    [const { (AtomicU64::new(0), AtomicU64::new(0)) }; cpu::MAX_CPUS];

/// Where one stopped CPU was interrupted by the stop IPI (from its interrupt stack frame, Intel SDM Vol. 3A 6.12.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoppedContext {
    /// The CPU's logical index.
    pub cpu: usize,
    /// The instruction it will resume at (exact: an interrupted instruction, not a return address).
    pub instruction_pointer: u64,
    /// Its stack pointer at that instruction.
    pub stack_pointer: u64,
}

/// The interrupted contexts of the CPUs stopped right now, lowest CPU index first. Meaningful only inside the
/// closure of [`run_with_other_cpus_stopped`] (elsewhere it is empty or describes CPUs that are leaving the
/// handler). Takes no lock and does not allocate beyond the returned vector's one allocation (`capacity` entries
/// are reserved up front; call with interrupts disabled, as the closure runs).
pub fn stopped_contexts() -> alloc::vec::Vec<StoppedContext> {
    let mut contexts = alloc::vec::Vec::with_capacity(cpu::MAX_CPUS);
    for (cpu, (instruction_pointer, stack_pointer)) in INTERRUPTED.iter().enumerate() {
        let instruction_pointer = instruction_pointer.load(Ordering::Acquire);
        if instruction_pointer != 0 {
            let stack_pointer = stack_pointer.load(Ordering::Acquire);
            contexts.push(StoppedContext { cpu, instruction_pointer, stack_pointer });
        }
    }
    contexts
}

/// The bytes of the table where stopped CPUs record their interrupted context: a scan for stored code pointers
/// must skip it (its entries are addresses of interrupted code only while the CPUs are stopped).
pub fn stopped_context_storage() -> core::ops::Range<usize> {
    let start = INTERRUPTED.as_ptr() as usize;
    start..start + size_of_val(&INTERRUPTED)
}

/// How long the stopper waits for every other CPU to acknowledge (a CPU with interrupts disabled for this long is a
/// bug elsewhere).
const STOP_TIMEOUT_US: u64 = 1_000_000;

/// Why the other CPUs could not be stopped; the closure did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopError {
    /// The stop IPI could not be sent.
    Ipi(apic::IpiError),
    /// Not every CPU acknowledged within 1 s (the ones that did were released).
    Timeout {
        /// CPUs that acknowledged.
        stopped: usize,
        /// CPUs expected.
        expected: usize,
    },
    /// The stop-IPI handler is not registered (`smp::init_bootstrap_cpu` did not run).
    NotInitialized,
}

/// Registers the stop-IPI handler.
pub(crate) fn init() -> Result<(), interrupts::RegisterError> {
    interrupts::register_handler(STOP_IPI_VECTOR, stop_interrupt)
}

static HANDLER_READY: AtomicBool = AtomicBool::new(false);

pub(crate) fn mark_ready() {
    HANDLER_READY.store(true, Ordering::Release);
}

/// Runs `f` on the calling CPU while every other online CPU spins with interrupts disabled, then releases them.
/// Call with interrupts enabled (so a concurrent stopper can stop this CPU while it waits for the lock), never from
/// an interrupt handler. With one CPU online, just runs `f`.
///
/// `f` runs with interrupts disabled and must not take a lock that code running with interrupts enabled may hold
/// (a stopped CPU may hold it): not the serial port or the logger (no `log!` inside `f`), not a namespace lock.
/// The memory system's locks are fine (they are only held with interrupts disabled).
///
/// # Errors
/// [`StopError`]; `f` has not run then, and every CPU runs normally again.
pub fn run_with_other_cpus_stopped(f: &mut dyn FnMut()) -> Result<(), StopError> {
    if !HANDLER_READY.load(Ordering::Acquire) {
        return Err(StopError::NotInitialized);
    }
    let _guard = STOP_LOCK.lock();
    without_interrupts(|| {
        let expected = cpu::count().saturating_sub(1);
        if expected == 0 {
            f();
            return Ok(());
        }
        STOPPED.store(0, Ordering::SeqCst);
        STOP_REQUESTED.store(true, Ordering::SeqCst);
        if let Err(error) = apic::send_ipi_to_all_but_self(STOP_IPI_VECTOR) {
            release();
            return Err(StopError::Ipi(error));
        }
        if !wait_until(STOP_TIMEOUT_US, || STOPPED.load(Ordering::Acquire) >= expected) {
            let stopped = STOPPED.load(Ordering::Acquire);
            release();
            return Err(StopError::Timeout { stopped, expected });
        }
        f();
        release();
        Ok(())
    })
}

/// Boot-time check of [`run_with_other_cpus_stopped`]: stops the other CPUs, checks that their timer tick counts
/// stand still for 30 ms, and logs the outcome (with the time the stop took) in one line.
pub fn log_stop_the_world_check() {
    use alloc::vec::Vec;
    let own = cpu::current_id();
    let others: Vec<cpu::CpuId> = cpu::online().filter(|cpu| *cpu != own).collect();
    let mut before: Vec<u64> = Vec::with_capacity(others.len());
    let mut frozen = true;
    let mut stop_ns = 0;
    let started = tsc::now_ns();
    let result = run_with_other_cpus_stopped(&mut || {
        stop_ns = tsc::now_ns() - started;
        before.extend(others.iter().map(|cpu| apic::ticks(*cpu)));
        crate::start::delay_us(30_000);
        frozen = others.iter().zip(&before).all(|(cpu, ticks)| apic::ticks(*cpu) == *ticks);
    });
    match result {
        Ok(()) => log::info!(
            "stop-the-world check: {} other CPUs stopped in {} us; their timers {} for 30 ms",
            others.len(),
            stop_ns / 1000,
            if frozen { "stood still" } else { "KEPT TICKING (not stopped)" }
        ),
        Err(error) => log::error!("stop-the-world check failed: {error:?}"),
    }
}

/// Lets the stopped CPUs go and waits until they have left the handler.
fn release() {
    STOP_REQUESTED.store(false, Ordering::SeqCst);
    wait_until(STOP_TIMEOUT_US, || STOPPED.load(Ordering::Acquire) == 0);
}

extern "x86-interrupt" fn stop_interrupt(frame: InterruptStackFrame) {
    apic::end_of_interrupt();
    if !STOP_REQUESTED.load(Ordering::Acquire) {
        return;
    }
    let recorded = INTERRUPTED.get(cpu::current_id().index());
    if let Some((instruction_pointer, stack_pointer)) = recorded {
        stack_pointer.store(frame.stack_pointer.as_u64(), Ordering::Release);
        instruction_pointer.store(frame.instruction_pointer.as_u64(), Ordering::Release);
    }
    STOPPED.fetch_add(1, Ordering::AcqRel);
    while STOP_REQUESTED.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    // Serialize before running possibly patched code (see the module documentation).
    let _ = core::arch::x86_64::__cpuid(0);
    if let Some((instruction_pointer, _)) = recorded {
        instruction_pointer.store(0, Ordering::Release);
    }
    STOPPED.fetch_sub(1, Ordering::AcqRel);
}
