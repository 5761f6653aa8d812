//! Checking a CPU's scheduler words against the task table, and repairing them, so that one damaged word does not
//! make every later fault, and every later `schedule`, fault again.
//!
//! In the fault-injection campaign (session 12), a corrupted word of the per-CPU state ended the system even
//! though the fault it caused was handled: the idle task's reference (each `schedule` with an empty runqueue
//! clones it: a #GP in every task, one after the other), the current task's reference (the fault path clones it to
//! name the faulting task: a fault inside every fault's handling), and the runqueue's header (a length flipped to
//! 2^54 made a pick return a garbage task; a flipped capacity made a push write past the buffer).
//!
//! - [`repair_cpu_slots`] (the fault path's first step, before it names the task): the idle, current and previous
//!   task words are compared, as addresses only, with the tasks of the table (walked without allocating, through
//!   a bounded try-lock); a word that names no task of the table is rewritten from the table: this CPU's idle task;
//!   for the current task, the task of this CPU whose stack holds the interrupted stack pointer (or, if no stack
//!   does, the one task of this CPU that runs on a stack it does not own: an AP's idle task, the boot thread);
//!   for the previous task, none. The damaged value is leaked, never dropped.
//! - [`CheckedLock`] ([`RunQueueLock`], [`SleepersLock`]): every lock of a runqueue or sleepers queue checks its
//!   header against the second copy the queue keeps (`task::RunQueue::is_consistent`,
//!   `deadline_queue::DeadlineQueue::is_consistent`: four words, no buffer access) and, if they disagree, rebuilds
//!   the queue from the task table before anyone uses it (the old contents leaked).
//! - [`repair_damaged_runqueue`] (the fault path, after the locks of the faulting code were released): also
//!   checks that every entry is a task of the table (reads the buffer, so a damaged buffer pointer faults there:
//!   a per-CPU in-flight flag makes the next check treat the queue as damaged without reading it).
//!
//! Kept after `switch` in the cell's text (sections are laid out in name order), away from the context switch.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use owned_spin::stack_token;
use task::{RunQueue, RunState, TaskRef, TasksView};

use crate::cpus::{CPUS, CpuSlot, MAX_CPUS, PerCpu};
use crate::runqueue_lock::{RunQueueRepair, SleeperQueue, TrackedGuard, TrackedLock};

/// Tries of the task table's lock before a check gives up (the faulting code may hold it; the fault path releases
/// it later, and the next fault checks again).
const TABLE_ATTEMPTS: usize = 100_000;

/// Per CPU: a [`repair_cpu_slots`] is running (set while it walks the task table).
static SLOTS_IN_FLIGHT: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Per CPU: a [`repair_damaged_runqueue`] is reading the runqueue's entries.
static ENTRIES_IN_FLIGHT: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Per CPU: a runqueue was rebuilt at a lock and not yet logged (the lock holder cannot log).
static REBUILT_UNLOGGED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Task words rewritten by [`repair_cpu_slots`] since boot (all CPUs).
static SLOT_REPAIRS: AtomicU64 = AtomicU64::new(0);
/// Runqueues and sleepers queues rebuilt because their header (or a runqueue entry) was damaged, since boot (all
/// CPUs).
static RUNQUEUE_REBUILDS: AtomicU64 = AtomicU64::new(0);

/// How many task words of the per-CPU state [`repair_cpu_slots`] rewrote since boot.
pub fn cpu_slot_repairs() -> u64 {
    SLOT_REPAIRS.load(Ordering::Relaxed)
}

/// How many runqueues and sleepers queues were rebuilt from the task table because their header (or a runqueue
/// entry) was damaged.
pub fn damaged_runqueue_rebuilds() -> u64 {
    RUNQUEUE_REBUILDS.load(Ordering::Relaxed)
}

/// The task words [`repair_cpu_slots`] rewrote: each field holds the damaged value (the address it found), if
/// that word was rewritten.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotRepairs {
    /// The idle task's reference.
    pub idle: Option<usize>,
    /// The current task's reference.
    pub current: Option<usize>,
    /// The reference to the task the last switch left.
    pub previous: Option<usize>,
}

impl SlotRepairs {
    /// Whether nothing was rewritten.
    pub fn is_empty(&self) -> bool {
        *self == SlotRepairs::default()
    }
}

/// The address a task slot holds (0 for none), without touching the task.
///
/// # Safety
/// As for [`CpuSlot::with`].
unsafe fn slot_address(slot: &CpuSlot<Option<TaskRef>>) -> usize {
    // SAFETY: the caller's contract; the closure only reads the pointer.
    unsafe { slot.with(|task| task.as_ref().map_or(0, |task| task.as_ptr() as usize)) }
}

/// Replaces a slot's value with `task`, leaking the old value (it may be a damaged pointer: never dropped).
///
/// # Safety
/// As for [`CpuSlot::with`].
unsafe fn rewrite_slot(slot: &CpuSlot<Option<TaskRef>>, task: Option<TaskRef>) {
    // SAFETY: the caller's contract; nothing is dropped inside the closure (the old value is forgotten).
    unsafe { slot.with(|value| core::mem::forget(core::mem::replace(value, task))) };
}

/// What one walk of the task table found for CPU `index`.
struct Found {
    idle: Option<TaskRef>,
    owner: Option<TaskRef>,
    current_known: bool,
    previous_known: bool,
}

/// Walks `tasks` once for CPU `index`: its idle task, the task whose stack holds `stack_pointer` (or the one
/// task of this CPU without a stack of its own, if no stack holds it), and whether `current` and `previous` (slot
/// addresses, 0 for none) name tasks of the table.
fn walk(tasks: TasksView<'_>, index: usize, stack_pointer: usize, current: usize, previous: usize) -> Found {
    let mut found = Found { idle: None, owner: None, current_known: current == 0, previous_known: previous == 0 };
    let mut stackless = None;
    let mut stackless_count = 0;
    for task in tasks.iter() {
        let address = task.as_ptr() as usize;
        found.current_known |= address == current;
        found.previous_known |= address == previous;
        if task.cpu() != index {
            continue;
        }
        if found.idle.is_none() && task.is_idle() {
            found.idle = Some(task.clone());
        }
        match task.stack_bounds() {
            // Prefer the task that is on this CPU (a pooled stack reused at once is briefly in two tasks).
            Some(stack) if stack.contains(&stack_pointer) => {
                if found.owner.as_ref().is_none_or(|owner| !owner.is_on_cpu()) {
                    found.owner = Some(task.clone());
                }
            }
            Some(_) => {}
            None => {
                stackless_count += 1;
                stackless = Some(task.clone());
            }
        }
    }
    if found.owner.is_none() && stackless_count == 1 {
        found.owner = stackless;
    }
    found
}

/// Checks CPU `index`'s idle, current and previous task words against the task table and rewrites those that
/// name no task of it (see the module docs); `stack_pointer` is the interrupted code's stack pointer. Returns what
/// was rewritten, or `None` if nothing could be checked: the task table's lock stayed busy, or the previous check
/// on this CPU faulted (a damaged table; this one is skipped and the next one tries again). A current-task word
/// that names a task of the table is rewritten only if another task of this CPU owns the stack the interrupted
/// code ran on (a fault on an exception stack keeps it). Allocates nothing; clones and leaks references only.
///
/// # Safety
/// Interrupts must be disabled, and this must run on CPU `index` (the slots belong to it), outside any
/// [`CpuSlot::with`] of them: the fault path's first step.
pub unsafe fn repair_cpu_slots(index: usize, stack_pointer: usize) -> Option<SlotRepairs> {
    let cpu = CPUS.get(index)?;
    let in_flight = &SLOTS_IN_FLIGHT[index];
    if in_flight.swap(true, Ordering::AcqRel) {
        in_flight.store(false, Ordering::Release);
        return None;
    }
    // SAFETY: this CPU's slots, interrupts disabled (the caller's contract).
    let (idle, current, previous) =
        unsafe { (slot_address(&cpu.idle), slot_address(&cpu.current), slot_address(&cpu.previous)) };
    let found = task::try_with_tasks(TABLE_ATTEMPTS, |tasks| walk(tasks, index, stack_pointer, current, previous));
    in_flight.store(false, Ordering::Release);
    let found = found?;
    let mut repairs = SlotRepairs::default();
    if let Some(task) = found.idle.filter(|task| task.as_ptr() as usize != idle) {
        // SAFETY: as above.
        unsafe { rewrite_slot(&cpu.idle, Some(task)) };
        repairs.idle = Some(idle);
    }
    let current_owner = found.owner.filter(|owner| owner.as_ptr() as usize != current);
    if let Some(owner) = current_owner.filter(|owner| !found.current_known || owner.stack_bounds().is_some()) {
        // SAFETY: as above.
        unsafe { rewrite_slot(&cpu.current, Some(owner)) };
        repairs.current = Some(current);
    }
    if !found.previous_known {
        // SAFETY: as above.
        unsafe { rewrite_slot(&cpu.previous, None) };
        repairs.previous = Some(previous);
    }
    let rewritten = [repairs.idle, repairs.current, repairs.previous].iter().filter(|word| word.is_some()).count();
    SLOT_REPAIRS.fetch_add(rewritten as u64, Ordering::Relaxed);
    Some(repairs)
}

/// A queue of a CPU's scheduler state that can check its own header and be rebuilt from the task table: the
/// runqueue and the sleepers queue.
pub(crate) trait CheckedQueue: Sized {
    /// Whether the header agrees with its second copy (`task::RunQueue::is_consistent`,
    /// `deadline_queue::DeadlineQueue::is_consistent`).
    fn is_consistent(&self) -> bool;
    /// This kind of queue's lock in `cpu`.
    fn lock_in(cpu: &PerCpu) -> &CheckedLock<Self>;
    /// Replaces the queue (leaked, not read) with the tasks of `tasks` that belong in CPU `index`'s queue of this
    /// kind; returns how many.
    fn rebuild(&mut self, cpu: &PerCpu, index: usize, tasks: &[TaskRef]) -> usize;
}

impl CheckedQueue for RunQueue {
    #[inline(always)]
    fn is_consistent(&self) -> bool {
        RunQueue::is_consistent(self)
    }
    fn lock_in(cpu: &PerCpu) -> &CheckedLock<Self> {
        &cpu.runqueue
    }
    fn rebuild(&mut self, _cpu: &PerCpu, index: usize, tasks: &[TaskRef]) -> usize {
        refill_runqueue(self, tasks, |task| task.cpu() == index && !task.is_idle())
    }
}

impl CheckedQueue for SleeperQueue {
    #[inline(always)]
    fn is_consistent(&self) -> bool {
        (**self).is_consistent()
    }
    fn lock_in(cpu: &PerCpu) -> &CheckedLock<Self> {
        &cpu.sleepers
    }
    fn rebuild(&mut self, cpu: &PerCpu, index: usize, tasks: &[TaskRef]) -> usize {
        refill_sleepers(self, cpu, tasks, |task| task.cpu() == index && !task.is_idle())
    }
}

/// Replaces `queue` (leaked, not read: its buffer and `Arc` counts may be damaged) with every task of `tasks` that
/// `select` accepts and that is `Runnable` (what a healthy runqueue holds between critical sections, see
/// `runqueue_lock`); returns how many.
pub(crate) fn refill_runqueue(queue: &mut RunQueue, tasks: &[TaskRef], select: impl Fn(&TaskRef) -> bool) -> usize {
    core::mem::forget(core::mem::replace(queue, RunQueue::new()));
    let mut count = 0;
    for task in tasks.iter().filter(|task| select(task) && task.state() == RunState::Runnable) {
        queue.push_back(task.clone());
        count += 1;
    }
    count
}

/// [`refill_runqueue`] for a sleepers queue: queues every selected task that is `Sleeping`, at the deadline its
/// sleep recorded, and recomputes `cpu`'s next deadline.
pub(crate) fn refill_sleepers(
    queue: &mut SleeperQueue,
    cpu: &PerCpu,
    tasks: &[TaskRef],
    select: impl Fn(&TaskRef) -> bool,
) -> usize {
    core::mem::forget(core::mem::replace(queue, SleeperQueue::new()));
    let mut count = 0;
    for task in tasks.iter().filter(|task| select(task) && task.state() == RunState::Sleeping) {
        queue.insert(task.sleep_deadline(), task.clone());
        count += 1;
    }
    cpu.next_deadline.store(queue.next_deadline().unwrap_or(u64::MAX), Ordering::Release);
    count
}

/// A CPU's runqueue or sleepers lock: a [`TrackedLock`] whose every acquisition checks the queue's header
/// ([`CheckedQueue::is_consistent`]) and rebuilds a damaged queue from the task table before handing it out.
pub(crate) struct CheckedLock<Q> {
    lock: TrackedLock<Q>,
}

/// A CPU's runqueue lock.
pub(crate) type RunQueueLock = CheckedLock<RunQueue>;
/// A CPU's sleepers lock.
pub(crate) type SleepersLock = CheckedLock<SleeperQueue>;

impl<Q> core::ops::Deref for CheckedLock<Q> {
    type Target = TrackedLock<Q>;
    fn deref(&self) -> &TrackedLock<Q> {
        &self.lock
    }
}

impl<Q: CheckedQueue> CheckedLock<Q> {
    pub(crate) const fn new(queue: Q) -> Self {
        CheckedLock { lock: TrackedLock::new(queue) }
    }

    /// [`TrackedLock::lock`], then the header check.
    #[inline(always)]
    pub(crate) fn lock(&self) -> TrackedGuard<'_, Q> {
        self.checked(self.lock.lock())
    }

    /// [`TrackedLock::lock_interrupts_disabled`], then the header check.
    #[inline(always)]
    pub(crate) fn lock_interrupts_disabled(&self) -> TrackedGuard<'_, Q> {
        self.checked(self.lock.lock_interrupts_disabled())
    }

    /// Rebuilds the queue `guard` holds if its header is damaged; returns the guard.
    #[inline(always)]
    fn checked<'a>(&self, mut guard: TrackedGuard<'a, Q>) -> TrackedGuard<'a, Q> {
        if !guard.is_consistent() {
            self.rebuild_damaged(&mut guard);
        }
        guard
    }

    #[cold]
    #[inline(never)]
    fn rebuild_damaged(&self, queue: &mut Q) {
        let Some(index) = CPUS.iter().position(|cpu| core::ptr::eq(Q::lock_in(cpu), self)) else { return };
        // The tasks a rebuild queues can only be found if the table can be read; otherwise the queue starts empty
        // and the idle loop's audit finds the lost runnable tasks (`audit_lost_tasks`).
        let tasks = task::try_all_tasks().unwrap_or_default();
        queue.rebuild(&CPUS[index], index, &tasks);
        RUNQUEUE_REBUILDS.fetch_add(1, Ordering::Relaxed);
        REBUILT_UNLOGGED[index].store(true, Ordering::Release);
    }
}

/// Logs (once) a rebuild of CPU `index`'s runqueue done at a lock, where nothing can be logged. Called by the
/// idle loop and the fault path.
pub(crate) fn log_rebuild_at_lock(index: usize) {
    if REBUILT_UNLOGGED.get(index).is_some_and(|flag| flag.swap(false, Ordering::AcqRel)) {
        log::warn!("scheduler: CPU {index}: a queue's header was damaged; rebuilt it from the task table");
    }
}

/// Whether every entry of `queue` is a task of `tasks` (addresses compared; reads the queue's buffer).
fn entries_are_tasks(queue: &RunQueue, tasks: TasksView<'_>) -> bool {
    (0..queue.len()).all(|position| queue.get(position).is_some_and(|entry| tasks.contains_ptr(entry.as_ptr())))
}

/// Checks CPU `index`'s runqueue, if its lock is free: its header (`RunQueue::is_consistent`) and that every
/// entry is a task of the task table; rebuilds it from the table if either check fails, or if the previous check
/// on this CPU faulted while reading the entries (a damaged buffer pointer). Returns the rebuild, if one was done;
/// `None` if the queue was sound, its lock was held (its holder's repair is `repair_runqueues_held_within`'s), or
/// the task table was busy.
///
/// # Safety
/// Interrupts must be disabled, and the heap must be free to use (the rebuild allocates): called by the fault path
/// after it released the locks of the code it abandons.
pub unsafe fn repair_damaged_runqueue(index: usize) -> Option<RunQueueRepair> {
    let cpu: &PerCpu = CPUS.get(index)?;
    let mut queue = cpu.runqueue.inner.try_lock_as(stack_token())?;
    let in_flight = &ENTRIES_IN_FLIGHT[index];
    let faulted_before = in_flight.swap(true, Ordering::AcqRel);
    let sound = !faulted_before
        && queue.is_consistent()
        && task::try_with_tasks(TABLE_ATTEMPTS, |tasks| entries_are_tasks(&queue, tasks)) == Some(true);
    in_flight.store(false, Ordering::Release);
    if sound {
        return None;
    }
    let tasks = task::try_all_tasks()?;
    let count = queue.rebuild(cpu, index, &tasks);
    RUNQUEUE_REBUILDS.fetch_add(1, Ordering::Relaxed);
    drop(queue);
    Some(RunQueueRepair::Rebuilt { cpu: index, tasks: count })
}

/// The fault path's step before it unwinds the current task: a task that faulted inside the scheduler after it
/// made itself `Blocked`, `Sleeping` or `Runnable` on its way to switching out (a join, a sleep, a yield) is
/// running its landing pads now, so it is made `Running` again; returns the state it had, if it changed. Without
/// this, a landing pad that blocks (a drop that joins, as `load`'s `RestartableTask` does) could not register as a
/// waiter (its `Running -> Blocked` transition fails) and switched out for good (in the campaign: a flipped
/// runqueue word in `load`'s `join`, then a hang). A wake-up that comes later finds the task running and does
/// nothing; a queue entry left behind is dropped when it is picked or expires (only `Runnable` or `Sleeping`
/// entries are acted on).
pub fn resume_running_after_fault() -> Option<RunState> {
    let current = crate::current_task().filter(|task| !task.is_idle())?;
    [RunState::Blocked, RunState::Sleeping, RunState::Runnable]
        .into_iter()
        .find(|&state| current.transition(state, RunState::Running))
}

/// For tests: flips the bits of `mask` in this CPU's idle-task word (if `idle`) or current-task word, with
/// interrupts disabled, and returns the damaged value **with interrupts still disabled** (no tick may read the word
/// first: a fault in the scheduler inside an interrupt handler stops the CPU). The caller dereferences it at once
/// (with bit 52 flipped, a #GP in its own code, so the fault counts against the test's cell, not the scheduler),
/// and the fault path must then rewrite the word from the task table ([`repair_cpu_slots`]) before it names the
/// task: without that, naming a task faults on a damaged current-task word, and every `schedule` with an empty
/// runqueue on a damaged idle-task word.
pub fn damage_slot_for_test(idle: bool, mask: usize) -> usize {
    let _ = task::interrupts::disable();
    let state = crate::cpus::this_cpu();
    let slot = if idle { &state.idle } else { &state.current };
    // SAFETY: this CPU's slot, interrupts disabled; the closure only flips bits of the word (`Option<TaskRef>` is
    // one pointer-sized word, `Arc`'s niche, which `word` points to) and reads it back. The damaged value is never
    // dropped here: the caller faults on it, and the fault path replaces it without dropping it.
    unsafe {
        slot.with(|value| {
            let word = value as *mut Option<TaskRef> as *mut usize;
            word.write_volatile(word.read_volatile() ^ mask);
            word.read_volatile()
        })
    }
}

/// For tests: flips the bits of `mask` in the second copy of the length of CPU `cpu`'s runqueue (or, if
/// `sleepers`, its sleepers queue), without the check a lock does; the next lock of that queue must rebuild it from
/// the task table ([`damaged_runqueue_rebuilds`] counts it).
pub fn damage_runqueue_for_test(cpu: usize, sleepers: bool, mask: usize) {
    let Some(state) = CPUS.get(cpu) else { return };
    if sleepers {
        state.sleepers.lock.lock().damage_length_copy_for_test(mask);
    } else {
        state.runqueue.lock.lock().damage_length_copy_for_test(mask);
    }
}
