//! Per-CPU scheduler state and the hooks that connect the scheduler to the CPU and interrupt cells.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use task::TaskRef;

use crate::runqueue_lock::SleeperQueue;
use crate::verify::{RunQueueLock, SleepersLock};

/// The most CPUs the scheduler manages (logical indices `0..MAX_CPUS`).
pub const MAX_CPUS: usize = 64;

/// One CPU's scheduler state. Only the owning CPU switches tasks; other CPUs only push to its runqueue (wake-ups,
/// spawns) and read its counters.
pub(crate) struct PerCpu {
    /// Set once the CPU runs tasks (`init_bsp` or `ap_entry`).
    pub online: AtomicBool,
    /// The task running on this CPU. Touched only by this CPU, with interrupts disabled (a [`CpuSlot`], no lock).
    pub current: CpuSlot<Option<TaskRef>>,
    /// The task this CPU just switched away from, handed over the context switch to the next task, which clears its
    /// `on_cpu` flag and reaps it if it exited. Touched only by this CPU, with interrupts disabled (no lock).
    pub previous: CpuSlot<Option<TaskRef>>,
    /// Runnable tasks assigned to this CPU. Any CPU may push (wake-ups, spawns); only this CPU pops (through the
    /// policy). Lock order: `sleepers` before `runqueue`; the policy runs inside this lock and takes no lock.
    /// Its lock records its holder, so fault recovery can repair it (`runqueue_lock`).
    pub runqueue: RunQueueLock,
    /// This CPU's idle task (never in the runqueue), set once when the CPU comes online. Touched only by this CPU,
    /// with interrupts disabled (a [`CpuSlot`], not a `spin::Once`: the fault path must be able to rewrite a
    /// damaged word, see `verify.rs`).
    pub idle: CpuSlot<Option<TaskRef>>,
    /// Whether the idle task is the current task (so a wake-up from another CPU knows to send an IPI).
    pub idling: AtomicBool,
    /// Sleeping tasks of this CPU by wake-up deadline (ns). Lock protects the queue only.
    /// Its lock records its holder and its `insert` the deadline in the task, so fault recovery can rebuild it.
    pub sleepers: SleepersLock,
    /// The earliest deadline in `sleepers` (`u64::MAX` if none), for a lock-free check on every tick; written only
    /// with `sleepers` locked.
    pub next_deadline: AtomicU64,
    /// Timer ticks seen on this CPU.
    pub ticks: AtomicU64,
    /// TSC time (ns) of the first and the latest tick, to estimate the tick period.
    pub first_tick_ns: AtomicU64,
    pub last_tick_ns: AtomicU64,
    /// Live tasks (not yet reaped, idle excluded) assigned to this CPU: the load used to place new tasks.
    pub assigned: AtomicUsize,
    /// Whether (and where) the next `schedule` of a task (not the idle task) on this CPU executes `ud2` inside the
    /// runqueue's critical section (`scheduler::set_runqueue_fault_once`, `set_blocked_runqueue_fault_once`, for
    /// tests; `runqueue_lock::FAULT_*`).
    pub runqueue_fault_once: AtomicU8,
    /// Whether the next `schedule` on this CPU leaves its runqueue lock taken (forgets the guard), for tests
    /// (`scheduler::set_runqueue_release_skipped_once`).
    pub runqueue_skip_release_once: AtomicBool,
}

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            online: AtomicBool::new(false),
            current: CpuSlot::new(None),
            previous: CpuSlot::new(None),
            runqueue: RunQueueLock::new(task::RunQueue::new()),
            idle: CpuSlot::new(None),
            idling: AtomicBool::new(false),
            sleepers: SleepersLock::new(SleeperQueue::new()),
            next_deadline: AtomicU64::new(u64::MAX),
            ticks: AtomicU64::new(0),
            first_tick_ns: AtomicU64::new(0),
            last_tick_ns: AtomicU64::new(0),
            assigned: AtomicUsize::new(0),
            runqueue_fault_once: AtomicU8::new(crate::runqueue_lock::FAULT_NONE),
            runqueue_skip_release_once: AtomicBool::new(false),
        }
    }
}

/// A field of one CPU's scheduler state that only that CPU reads or writes, and only with interrupts disabled, so it
/// needs no lock: nothing else can run on that CPU meanwhile (no other task, no interrupt handler), and no other
/// CPU touches it. This is what `current` and `previous` were under an [`IrqSafeMutex`], without the lock's
/// compare-exchange and interrupt-flag save on each of the several accesses of a context switch.
///
/// Nothing may be held across a switch: a live swap of this cell copies the state while tasks are switched out.
pub(crate) struct CpuSlot<T>(UnsafeCell<T>);

// SAFETY: a slot is only accessed through `CpuSlot::with`, whose contract (the owning CPU, interrupts disabled,
// no reentry) makes every access exclusive; `T: Send` because the value is created on one CPU (e.g. a task
// spawned elsewhere) and used and dropped on the owning one.
unsafe impl<T: Send> Sync for CpuSlot<T> {}

impl<T> CpuSlot<T> {
    const fn new(value: T) -> Self {
        CpuSlot(UnsafeCell::new(value))
    }

    /// Runs `access` on the value.
    ///
    /// # Safety
    /// The caller runs on the CPU that owns this slot (`CPUS[current_cpu()]`, or the CPU coming online in
    /// `init_bsp`/`ap_entry`) with interrupts disabled, and `access` does not reach this slot again (it must not
    /// call anything that takes the current task, e.g. logging or [`crate::current_task`], nor fault).
    #[inline(always)]
    pub unsafe fn with<R>(&self, access: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: exclusive as the caller guarantees: no other CPU, task or handler accesses the slot meanwhile,
        // and `access` does not reenter.
        access(unsafe { &mut *self.0.get() })
    }
}

pub(crate) static CPUS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// Sends the reschedule IPI to a CPU; installed by [`set_reschedule_ipi_fn`].
static RESCHEDULE_IPI_FN: spin::Once<fn(usize)> = spin::Once::new();

/// Installs the function that sends the reschedule IPI to a CPU (logical index); its handler must send the EOI and
/// call [`on_reschedule_ipi`](crate::on_reschedule_ipi). Without it, an idle CPU notices new work at its next tick.
/// Only the first call has an effect.
pub fn set_reschedule_ipi_fn(send: fn(usize)) {
    RESCHEDULE_IPI_FN.call_once(|| send);
}

/// The logical index of the CPU running this call: `cpu::current_id` (one GS-relative load; 0 until the
/// bootstrap CPU's record exists). Read directly, not through a function pointer installed at boot: such a pointer
/// sits in writable data that every scheduler entry and every fault path calls through, and a flipped bit in it
/// (fault-injection campaign, session 12) made each fault's handling fault again, forever.
///
/// # Panics
/// If the index is `>= MAX_CPUS`.
#[inline]
pub fn current_cpu() -> usize {
    let cpu = cpu::current_id().index();
    assert!(cpu < MAX_CPUS, "CPU index {cpu} out of range (MAX_CPUS = {MAX_CPUS})");
    cpu
}

#[inline]
pub(crate) fn this_cpu() -> &'static PerCpu {
    &CPUS[current_cpu()]
}

/// Asks `cpu` to reschedule soon (an IPI if it is idle and the IPI hook is installed).
pub(crate) fn kick(cpu: usize) {
    if cpu == current_cpu() || !CPUS[cpu].idling.load(Ordering::Acquire) {
        return;
    }
    if let Some(send) = RESCHEDULE_IPI_FN.get() {
        send(cpu);
    }
}

/// Sends the reschedule IPI to `cpu` if the hook is installed (regardless of whether it idles), e.g. so a killed
/// task running there reaches its safe point soon.
pub(crate) fn interrupt(cpu: usize) {
    if let Some(send) = RESCHEDULE_IPI_FN.get() {
        send(cpu);
    }
}

/// The logical indices of the CPUs that run tasks.
pub fn online_cpus() -> impl Iterator<Item = usize> {
    (0..MAX_CPUS).filter(|&cpu| CPUS[cpu].online.load(Ordering::Acquire))
}

/// Takes the current CPU out of [`online_cpus`] for good, so no new task is placed on it (for a CPU that is about
/// to halt after a fault it cannot recover from). Tasks already assigned to it stay there and no longer run: tasks
/// never migrate (see the crate docs).
pub fn take_current_cpu_offline() {
    this_cpu().online.store(false, Ordering::Release);
}

/// The number of CPUs that run tasks.
pub fn online_cpu_count() -> usize {
    online_cpus().count()
}

/// The CPU with the fewest live tasks (lowest index among equals).
pub(crate) fn least_loaded_cpu() -> Option<usize> {
    online_cpus().min_by_key(|&cpu| CPUS[cpu].assigned.load(Ordering::Relaxed))
}

/// Timer ticks seen so far on the current CPU.
pub fn ticks() -> u64 {
    this_cpu().ticks.load(Ordering::Relaxed)
}

/// The timer tick period in ns as measured on the current CPU (average over the ticks seen), or `None` before
/// two ticks were seen (no timer yet: tasks then switch only cooperatively).
pub fn tick_period_ns() -> Option<u64> {
    let cpu = this_cpu();
    let ticks = cpu.ticks.load(Ordering::Relaxed);
    if ticks < 2 {
        return None;
    }
    let span = cpu.last_tick_ns.load(Ordering::Relaxed).saturating_sub(cpu.first_tick_ns.load(Ordering::Relaxed));
    Some(span / (ticks - 1))
}
