//! Stop-the-world: run a closure while every other CPU spins with interrupts disabled.
//!
//! Protocol: the stopper takes [`STOP_LOCK`] (with interrupts as the caller has them, so a concurrent stopper's IPI
//! can still be taken while waiting), disables interrupts, publishes a [`StopControl`] on its stack through
//! [`STOP_CONTROL`] with `requested` set, sends [`STOP_IPI_VECTOR`] to all other CPUs and waits until each has
//! incremented `stopped`. Each stopped CPU sends EOI, acknowledges, and
//! spins with interrupts disabled until the flag drops; then it executes a serializing instruction (CPUID), because
//! the closure may have patched code (Intel SDM Vol. 3A 8.1.3, "Handling Self- and Cross-Modifying Code"), and
//! loads the current IDT (`interrupts::load`: a swap of `interrupts` moves it, see that cell's `evolution.rs`) and
//! decrements `stopped` on its way out. The stopper waits for all to leave before releasing the lock.
//!
//! "All" is re-read while waiting (`cpu::count`): a CPU halted for good (`park::park_current_cpu`) leaves the
//! online set and is not waited for. Every loop here that spins with interrupts disabled (the stopped CPUs, the
//! stopper waiting for them) services pending TLB shootdown requests (`memory::service_tlb_shootdown`): a CPU
//! that unmaps something (with interrupts disabled, so it cannot be stopped meanwhile) waits for their
//! acknowledgement, and would otherwise wait for ever.
//!
//! Each stopped CPU records the instruction and stack pointer it was interrupted at (its interrupt frame) before
//! acknowledging; [`stopped_contexts`], called inside the closure, returns them, so a live swap can tell which
//! code each stopped CPU will return into (`live_update`'s pin finder walks from there).

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use interrupts::STOP_IPI_VECTOR;
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::structures::idt::InterruptStackFrame;

use crate::start::wait_until;

/// One stopper at a time; protects [`STOP_CONTROL`]. `park::Withdrawn::rejoin` takes it too, so a CPU never comes
/// back online while a stop counts CPUs.
pub(crate) static STOP_LOCK: Mutex<()> = Mutex::new(());

/// The state of one stop, owned by the stopper's stack frame for the duration of the stop.
///
/// Why not statics: a live swap of this cell (`swap smp smp`) runs *inside* a stop made by the old copy, so while
/// its commit copies this cell's statics into the new copy and redirects the old code's references to them, the
/// stopped CPUs are spinning in the old handler and the stopper is inside the old `run_with_other_cpus_stopped`.
/// Both reach the protocol state only through the pointer each read once at the start (the stopper's own frame;
/// the handler's register), never through an address in this cell's text, so neither the state copy nor the
/// rewrite of the code can split one stop over two copies of the flags, and the spinning loop contains no
/// instruction that the swap patches (no cross-modifying code runs on the stopped CPUs; Intel SDM Vol. 3A 8.1.3).
struct StopControl {
    /// Set while other CPUs must stay stopped.
    requested: AtomicBool,
    /// CPUs currently stopped in the handler.
    stopped: AtomicUsize,
    /// The interrupted context each CPU recorded on entering the stop handler (by logical CPU index): instruction
    /// pointer and stack pointer; written by that CPU before it increments `stopped`, read by the stopper while
    /// every other CPU is stopped.
    interrupted: [(AtomicU64, AtomicU64); cpu::MAX_CPUS],
}

/// The stop in progress (a pointer to the stopper's [`StopControl`]), or null. Written only by the stopper, under
/// [`STOP_LOCK`]: set before the stop IPI is sent, cleared after every stopped CPU has left the handler, so a
/// handler that reads a non-null pointer uses a control block that outlives its use.
static STOP_CONTROL: AtomicPtr<StopControl> = AtomicPtr::new(core::ptr::null_mut());

/// The stop in progress, if any.
fn current_control() -> Option<&'static StopControl> {
    let control = STOP_CONTROL.load(Ordering::Acquire);
    // SAFETY: a non-null pointer points at the stopper's live `StopControl`: it is published before the stop IPI
    // and withdrawn only after every stopped CPU has decremented `stopped` (it no longer touches the block), and
    // callers use it only while the stop lasts (inside the closure, or as a stopped CPU in the handler).
    unsafe { control.as_ref() }
}

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
/// closure of [`run_with_other_cpus_stopped`] (elsewhere it is empty). Takes no lock and allocates only the
/// returned vector (`MAX_CPUS` entries reserved up front; call with interrupts disabled, as the closure runs).
pub fn stopped_contexts() -> alloc::vec::Vec<StoppedContext> {
    let mut contexts = alloc::vec::Vec::with_capacity(cpu::MAX_CPUS);
    let Some(control) = current_control() else { return contexts };
    for (cpu, (instruction_pointer, stack_pointer)) in control.interrupted.iter().enumerate() {
        let instruction_pointer = instruction_pointer.load(Ordering::Acquire);
        if instruction_pointer != 0 {
            let stack_pointer = stack_pointer.load(Ordering::Acquire);
            contexts.push(StoppedContext { cpu, instruction_pointer, stack_pointer });
        }
    }
    contexts
}

/// The bytes where the stopped CPUs record their interrupted context during the current stop (empty outside one):
/// a scan for stored code pointers must skip them (they are addresses of interrupted code only while the CPUs are
/// stopped, and [`stopped_contexts`] reports them).
pub fn stopped_context_storage() -> core::ops::Range<usize> {
    match current_control() {
        Some(control) => {
            let start = control.interrupted.as_ptr() as usize;
            start..start + size_of_val(&control.interrupted)
        }
        None => 0..0,
    }
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

/// This copy's stop-IPI handler, for a swap of this cell to move the gate to (`crate::cell_state_transfer`).
pub(crate) const HANDLER: (u8, interrupts::InterruptHandler) = (STOP_IPI_VECTOR, stop_interrupt);

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
    let _guard = StopLockGuard::lock();
    without_interrupts(|| {
        let others = || cpu::count().saturating_sub(1);
        if others() == 0 {
            f();
            return Ok(());
        }
        let control = StopControl {
            requested: AtomicBool::new(true),
            stopped: AtomicUsize::new(0),
            interrupted: [const { (AtomicU64::new(0), AtomicU64::new(0)) }; cpu::MAX_CPUS],
        };
        STOP_CONTROL.store(core::ptr::from_ref(&control).cast_mut(), Ordering::SeqCst);
        if let Err(error) = apic::send_ipi_to_all_but_self(STOP_IPI_VECTOR) {
            release(&control);
            return Err(StopError::Ipi(error));
        }
        if !wait_until(STOP_TIMEOUT_US, || control.stopped.load(Ordering::Acquire) >= others()) {
            let stopped = control.stopped.load(Ordering::Acquire);
            release(&control);
            return Err(StopError::Timeout { stopped, expected: others() });
        }
        // A fault in `f` unwinds through here: the guard's landing pad lets the stopped CPUs go (they spin on
        // this frame's control block), so the failing task's recovery never finds the world stopped for good.
        let release_guard = ReleaseOnDrop(&control);
        f();
        drop(release_guard);
        Ok(())
    })
}

/// Releases the stop ([`release`]) when dropped, normally or by a landing pad.
struct ReleaseOnDrop<'a>(&'a StopControl);

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        release(self.0);
    }
}

/// A stack address of the task holding [`STOP_LOCK`] through [`run_with_other_cpus_stopped`] (0: none), for
/// [`release_stop_held_within`].
static STOP_HOLDER: AtomicUsize = AtomicUsize::new(0);

/// [`STOP_LOCK`] held by a stopper, with its holder token recorded.
struct StopLockGuard {
    _guard: spin::MutexGuard<'static, ()>,
}

impl StopLockGuard {
    #[inline(always)]
    fn lock() -> StopLockGuard {
        let guard = STOP_LOCK.lock();
        let marker = 0u8;
        STOP_HOLDER.store(core::hint::black_box(core::ptr::addr_of!(marker)) as usize, Ordering::Release);
        StopLockGuard { _guard: guard }
    }
}

impl Drop for StopLockGuard {
    fn drop(&mut self) {
        STOP_HOLDER.store(0, Ordering::Release);
    }
}

/// Ends a stop whose stopper died inside it without its guards being dropped (a CPU fault in the stopper's own
/// frame, or a task ended without unwinding): if [`STOP_LOCK`]'s holder token lies on `stack`, lets the stopped
/// CPUs go (if the control block lies on `stack` too) and unlocks [`STOP_LOCK`]. Returns whether it did.
///
/// # Safety
/// `stack` must be the stack of a task that failed and never resumes its code; the dead stopper's frames (where
/// the control block lies) must not have been overwritten yet (call this first in the failure path).
pub unsafe fn release_stop_held_within(stack: core::ops::Range<usize>) -> bool {
    let holder = STOP_HOLDER.load(Ordering::Acquire);
    if !STOP_LOCK.is_locked() || !stack.contains(&holder) {
        return false;
    }
    if let Some(control) = current_control()
        && stack.contains(&(core::ptr::from_ref(control) as usize))
    {
        release(control);
    }
    STOP_HOLDER.store(0, Ordering::Release);
    // SAFETY: the holder is dead (the caller's guarantee) and its guard gone: nobody else unlocks this lock.
    unsafe { STOP_LOCK.force_unlock() };
    true
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

/// Lets the stopped CPUs go, waits until they have left the handler, and withdraws the control block. A CPU that
/// does not leave within the timeout (a bug: it spins with interrupts off elsewhere) would still reach the block
/// later, so the block is withdrawn only once all have left; on a timeout this waits on (and says so once).
fn release(control: &StopControl) {
    control.requested.store(false, Ordering::SeqCst);
    let mut warned = false;
    while !wait_until(STOP_TIMEOUT_US, || control.stopped.load(Ordering::Acquire) == 0) {
        if !warned {
            warned = true;
            serial::write_str("smp: stopped CPUs have not left the stop handler after 1 s; waiting\n");
        }
    }
    STOP_CONTROL.store(core::ptr::null_mut(), Ordering::SeqCst);
}

extern "x86-interrupt" fn stop_interrupt(frame: InterruptStackFrame) {
    apic::end_of_interrupt();
    // The one read of this cell's state (see `StopControl`): everything below goes through `control`.
    let Some(control) = current_control() else { return };
    if !control.requested.load(Ordering::Acquire) {
        return;
    }
    if let Some((instruction_pointer, stack_pointer)) = control.interrupted.get(cpu::current_id().index()) {
        stack_pointer.store(frame.stack_pointer.as_u64(), Ordering::Release);
        instruction_pointer.store(frame.instruction_pointer.as_u64(), Ordering::Release);
    }
    control.stopped.fetch_add(1, Ordering::AcqRel);
    while control.requested.load(Ordering::Acquire) {
        memory::service_tlb_shootdown();
        core::hint::spin_loop();
    }
    // Serialize before running possibly patched code (see the module documentation).
    let _ = core::arch::x86_64::__cpuid(0);
    // The closure may have swapped `interrupts`, whose IDT every CPU's IDTR names: load the current one (the call
    // is a relocation, rewritten by such a swap, so it reaches the newest copy) before leaving the stop, after
    // which the old copy may be freed.
    interrupts::load();
    // The last access to the block: after it the stopper may return and free it.
    control.stopped.fetch_sub(1, Ordering::AcqRel);
}

/// The stop protocol's part of this cell's state transfer (`crate::cell_state_transfer`) for a live swap of itself: the default copy has carried the old copy's statics over
/// while the old copy was in the middle of the very stop the swap runs in; the new copy must start with no stop in
/// progress (the old stopper releases its CPUs through its own frame and unlocks the old [`STOP_LOCK`]).
pub(crate) fn reset_after_swap() {
    STOP_CONTROL.store(core::ptr::null_mut(), Ordering::SeqCst);
    STOP_HOLDER.store(0, Ordering::Release);
    // SAFETY: runs inside the swap's stop-the-world on the stopping CPU, before any code uses the new copy: the
    // copied `STOP_LOCK` says "locked" because the old copy's stopper holds the *old* lock, whose guard releases the
    // old one; nobody holds (or can take) the new one yet.
    unsafe { STOP_LOCK.force_unlock() };
}
