//! [`Task`], [`TaskRef`], [`TaskId`], [`RunState`] and the task table.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::fmt;
use core::ops::Deref;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use cell_namespace::CellNamespace;
use memory_structs::VirtualAddress;

use crate::exit::AnyExitValue;
use crate::held::{HeldLock, HeldLocks};
#[cfg(target_os = "none")]
use crate::stack::Stack;
use irq_safe::{IrqSafeMutex, interrupts};
use owned_spin::{OwnedSpinGuard, OwnedSpinLock, stack_token};

/// A task's unique, never reused identifier (the first task is 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(u64);

impl TaskId {
    /// The id with this number (e.g. typed by a user); it may name no task.
    pub const fn new(value: u64) -> Self {
        TaskId(value)
    }

    /// The number.
    pub const fn value(self) -> u64 {
        self.0
    }
}

/// `Task::stop`: not stopped.
const STOP_NONE: u8 = 0;
/// `Task::stop`: asked to park at the next safe point.
const STOP_REQUESTED: u8 = 1;
/// `Task::stop`: parked (blocked) at a safe point until resumed.
const STOP_PARKED: u8 = 2;

impl fmt::Display for TaskId {
    /// The number, honouring width and alignment (so `ps` columns line up).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The run state of a task.
///
/// Transitions (each a compare-and-swap, so exactly one party wins):
/// - `Runnable -> Running`: the scheduler picked it from a runqueue;
/// - `Running -> Runnable`: preempted or yielded (the scheduler puts it back on its runqueue);
/// - `Running -> Blocked` / `Running -> Sleeping`: it waits; whoever makes it `Runnable` again enqueues it;
/// - `Blocked -> Runnable` / `Sleeping -> Runnable`: woken (also by `kill`);
/// - any `-> Exited`: it finished; the next task on its CPU frees its stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RunState {
    /// Ready to run, in a runqueue (or about to be put in one).
    Runnable = 0,
    /// Running on its CPU.
    Running = 1,
    /// Waiting for an event (wait queue, mutex, channel, join).
    Blocked = 2,
    /// Waiting for a deadline.
    Sleeping = 3,
    /// Finished; its exit value waits for its joiner.
    Exited = 4,
}

impl RunState {
    #[inline]
    fn from_u8(value: u8) -> RunState {
        match value {
            0 => RunState::Runnable,
            1 => RunState::Running,
            2 => RunState::Blocked,
            3 => RunState::Sleeping,
            _ => RunState::Exited,
        }
    }

    /// A short lower-case name for tables (`ps`).
    pub fn name(self) -> &'static str {
        match self {
            RunState::Runnable => "runnable",
            RunState::Running => "running",
            RunState::Blocked => "blocked",
            RunState::Sleeping => "sleeping",
            RunState::Exited => "exited",
        }
    }
}

/// What kind of task this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// A task created by spawning: own stack, runs a body, can be killed and joined.
    Spawned,
    /// A CPU's idle task: runs when nothing else can; never killed, never exits.
    Idle,
    /// A thread of execution that existed before tasking (the boot CPU's initial thread), adopted as a task on
    /// its existing stack; it can be killed like any task, but its stack is not ours to free.
    Adopted,
}

/// Priority given to tasks unless set otherwise (used by the priority policy; higher runs first).
pub const DEFAULT_PRIORITY: u8 = 10;

/// The body a spawned task runs: it returns the completed value, type-erased.
pub type TaskBody = Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>;

/// A task: a thread of execution with its own stack, scheduled on one CPU.
///
/// Fields that the scheduler reads on hot paths are atomics; everything the task owns (stack, namespace, body,
/// exit value) is in one lock. Nothing here calls the scheduler: the `scheduler` cell drives the state machine
/// described at [`RunState`].
pub struct Task {
    id: TaskId,
    name: String,
    kind: TaskKind,
    /// A [`RunState`] as `u8`.
    state: AtomicU8,
    /// The CPU the task runs on (it never migrates once assigned).
    cpu: AtomicUsize,
    /// The CPU the task was pinned to at spawn, if any.
    pin: Option<usize>,
    /// Policy data: the priority (higher first) used by the priority policy.
    priority: AtomicU8,
    /// True from the moment a CPU switches to the task until the switch away from it has completed on that CPU.
    on_cpu: AtomicBool,
    /// Set by `kill`; the task ends at its next safe point.
    kill_requested: AtomicBool,
    /// The stop protocol (`scheduler::stop`, the shell's Ctrl-Z, and `scheduler::resume`): `STOP_NONE`,
    /// `STOP_REQUESTED` (park at the next safe point) or `STOP_PARKED` (blocked at that safe point).
    stop: AtomicU8,
    /// The stack pointer saved by `context_switch` while the task is not running.
    saved_stack_pointer: AtomicUsize,
    /// The guard page's address (copied out of the stack for lock-free lookup in fault handlers).
    guard_page: Option<VirtualAddress>,
    /// The usable stack's bounds, bottom inclusive, top exclusive (copied out like `guard_page`); `None` for an
    /// adopted task, whose stack is not ours.
    stack_range: Option<Range<usize>>,
    /// Set while the task is switched out from an interrupt handler (preemption, reschedule IPI): its stack then
    /// holds an interrupt frame, which the unwinder cannot cross, so a kill is deferred.
    in_interrupt: AtomicBool,
    /// How many times a kill was deferred because the task was in an interrupt handler.
    kill_deferrals: AtomicU32,
    /// Unwinds in flight on this task's stack (started and not yet caught): a kill waits while one runs, so that
    /// it never starts a second unwind inside the landing pads of the first.
    unwinds_in_flight: AtomicU32,
    /// Set once the task's body has returned or been unwound: the task is only exiting now, through code outside
    /// the body's `catch_unwind`, where a kill must not start an unwind (it would leave the catch behind).
    body_finished: AtomicBool,
    /// How many times a CPU switched to this task.
    switch_count: AtomicU64,
    /// The wake-up deadline (TSC ns) of its latest sleep, recorded when it was queued as a sleeper, so fault
    /// recovery can rebuild a sleepers queue whose holder faulted (`scheduler`'s `SleeperQueue`).
    sleep_deadline: AtomicU64,
    /// Nesting count of preemption-disabled sections (`scheduler::preempt_disable`): while non-zero, timer ticks and
    /// reschedule IPIs do not switch the task out and kills wait; the task may still block voluntarily.
    preempt_disabled: AtomicU32,
    /// Set when a tick or IPI wanted to switch the task out while preemption was disabled: the scheduler switches at
    /// the matching `preempt_enable`.
    preempt_pending: AtomicBool,
    /// Blocking locks the task holds or is being handed (see [`HeldLock`]). Touched by the task itself on lock, and
    /// on unlock by whichever task drops the guard (normally the same one); taken inside a mutex's state lock,
    /// nothing is locked inside it.
    held_locks: IrqSafeMutex<HeldLocks>,
    /// Everything the task owns. The lock protects these fields only and is never held across a context switch.
    inner: IrqSafeMutex<TaskInner>,
}

struct TaskInner {
    #[cfg(target_os = "none")]
    stack: Option<Stack>,
    namespace: Option<Arc<CellNamespace>>,
    body: Option<TaskBody>,
    exit_value: Option<AnyExitValue>,
    /// The task blocked in `join` on this one, woken when it exits.
    joiner: Option<TaskRef>,
    /// Called by the task if it fails (see [`FailureCallback`]).
    on_failure: Option<FailureCallback>,
}

/// What a failing task calls after its stack was unwound, before it exits (e.g. to respawn itself).
pub type FailureCallback = Box<dyn FnOnce(&crate::FailureReason) + Send>;

/// A shared reference to a [`Task`] (an `Arc`; cloning is cheap). Equality is identity.
#[derive(Clone)]
pub struct TaskRef(Arc<Task>);

impl Deref for TaskRef {
    type Target = Task;
    #[inline]
    fn deref(&self) -> &Task {
        &self.0
    }
}

impl TaskRef {
    /// The address of the shared [`Task`] (what identity compares), e.g. to check whether a possibly damaged
    /// reference word names a task of the table ([`try_with_tasks`]) without dereferencing it.
    #[inline]
    pub fn as_ptr(&self) -> *const Task {
        Arc::as_ptr(&self.0)
    }
}

impl PartialEq for TaskRef {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for TaskRef {}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Task({} \"{}\" {})", self.id, self.name, self.state().name())
    }
}

/// Parameters common to every new task.
#[derive(Debug, Clone)]
pub struct TaskParams {
    /// Display name.
    pub name: String,
    /// The CPU it will run on.
    pub cpu: usize,
    /// Whether the CPU was chosen by pinning.
    pub pinned: bool,
    /// Initial priority.
    pub priority: u8,
}

/// Every task that has not been reaped yet, by id: what `ps` lists and `kill` looks up.
/// The lock protects the map only; it is taken with interrupts disabled and nothing is locked inside it. It records
/// its holder (an address in the holder's frame), so the fault path can release it for code it abandons
/// ([`release_task_table_if_held_within`]): an exception handler that faulted while walking the table left it
/// taken, and every later repair of a runqueue (which reads the table) gave up.
static TASK_TABLE: OwnedSpinLock<BTreeMap<TaskId, TaskRef>> = OwnedSpinLock::new(BTreeMap::new());

/// A guard of [`TASK_TABLE`]. Fields drop in declaration order: the lock is released first, then interrupts are
/// restored.
struct TableGuard<'a> {
    guard: OwnedSpinGuard<'a, BTreeMap<TaskId, TaskRef>>,
    _interrupts: RestoreInterrupts,
}

/// Restores the interrupt flag saved when a [`TableGuard`] was taken.
struct RestoreInterrupts(bool);

impl Drop for RestoreInterrupts {
    #[inline]
    fn drop(&mut self) {
        interrupts::restore(self.0);
    }
}

impl core::ops::Deref for TableGuard<'_> {
    type Target = BTreeMap<TaskId, TaskRef>;
    fn deref(&self) -> &Self::Target {
        &self.guard
    }
}

impl core::ops::DerefMut for TableGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.guard
    }
}

/// Takes the task table's lock with interrupts disabled, trying at most `attempts` times (`None`: never stops).
fn lock_table(attempts: Option<usize>) -> Option<TableGuard<'static>> {
    let were_enabled = interrupts::disable();
    let token = stack_token();
    let mut tries = 0usize;
    loop {
        if let Some(guard) = TASK_TABLE.try_lock_as(token) {
            return Some(TableGuard { guard, _interrupts: RestoreInterrupts(were_enabled) });
        }
        tries += 1;
        if attempts.is_some_and(|limit| tries >= limit) {
            interrupts::restore(were_enabled);
            return None;
        }
        irq_safe::relax();
    }
}

/// The task table, locked (interrupts disabled while the guard lives).
fn table() -> TableGuard<'static> {
    lock_table(None).expect("an unbounded lock attempt returns a guard")
}

/// Calls `f` while holding the task table's lock (interrupts disabled), for fault-path tests: `f` must not touch
/// the task table (it would spin on its own lock).
pub fn with_task_table_held<R>(f: impl FnOnce() -> R) -> R {
    let _table = table();
    f()
}

/// Whether the task table's lock is taken now (a snapshot).
pub fn task_table_is_locked() -> bool {
    TASK_TABLE.holder().is_some()
}

/// Releases the task table's lock if its holder token lies in `stack` (code the fault path abandons); returns
/// whether it did. The map is left as the holder left it (its updates are single `BTreeMap` calls; one cut short
/// by a fault is accepted, as for the other locks the fault path releases).
///
/// # Safety
/// No code whose frames lie in `stack` may run again inside the critical section.
pub unsafe fn release_task_table_if_held_within(stack: Range<usize>) -> bool {
    // SAFETY: the caller guarantees the holder never resumes its critical section.
    unsafe { TASK_TABLE.force_release_if(|holder| stack.contains(&holder)) }.is_some()
}
/// The next task id.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Task {
    fn create(
        params: TaskParams,
        kind: TaskKind,
        state: RunState,
        guard_page: Option<VirtualAddress>,
        stack_range: Option<Range<usize>>,
        inner: TaskInner,
    ) -> TaskRef {
        let task = TaskRef(Arc::new(Task {
            id: TaskId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            name: params.name,
            kind,
            state: AtomicU8::new(state as u8),
            cpu: AtomicUsize::new(params.cpu),
            pin: params.pinned.then_some(params.cpu),
            priority: AtomicU8::new(params.priority),
            on_cpu: AtomicBool::new(state == RunState::Running),
            kill_requested: AtomicBool::new(false),
            stop: AtomicU8::new(STOP_NONE),
            saved_stack_pointer: AtomicUsize::new(0),
            guard_page,
            stack_range,
            in_interrupt: AtomicBool::new(false),
            kill_deferrals: AtomicU32::new(0),
            unwinds_in_flight: AtomicU32::new(0),
            body_finished: AtomicBool::new(false),
            switch_count: AtomicU64::new(u64::from(state == RunState::Running)),
            sleep_deadline: AtomicU64::new(0),
            preempt_disabled: AtomicU32::new(0),
            preempt_pending: AtomicBool::new(false),
            held_locks: IrqSafeMutex::new(HeldLocks::default()),
            inner: IrqSafeMutex::new(inner),
        }));
        table().insert(task.id, task.clone());
        task
    }

    /// Creates a task of `kind` (`Spawned` or `Idle`) that has never run, on its own `stack`: when first switched
    /// to, it calls `entry(argument)`
    /// with interrupts disabled. `body` is kept for the entry to take ([`Task::take_body`]); `namespace` is the
    /// namespace its code lives in (kept alive until the task is reaped). The task starts `Runnable` and is in the
    /// task table, but in no runqueue.
    #[cfg(target_os = "none")]
    pub fn new_spawned(
        params: TaskParams,
        kind: TaskKind,
        mut stack: Stack,
        entry: crate::context::TaskEntry,
        argument: usize,
        body: Option<TaskBody>,
        namespace: Option<Arc<CellNamespace>>,
    ) -> TaskRef {
        let stack_pointer = crate::context::prepare_first_frame(&mut stack, entry, argument);
        let guard = stack.bottom() - memory_structs::PAGE_SIZE;
        let range = stack.bottom().value()..stack.top().value();
        let inner = TaskInner { stack: Some(stack), namespace, body, exit_value: None, joiner: None, on_failure: None };
        let task = Task::create(params, kind, RunState::Runnable, Some(guard), Some(range), inner);
        task.saved_stack_pointer.store(stack_pointer, Ordering::Release);
        task
    }

    /// Turns the thread of execution running this call into a task of `kind` (`Adopted` or `Idle`), `Running` on
    /// `params.cpu`, on the stack it already uses.
    pub fn adopt_current(params: TaskParams, kind: TaskKind) -> TaskRef {
        let inner = TaskInner {
            #[cfg(target_os = "none")]
            stack: None,
            namespace: None,
            body: None,
            exit_value: None,
            joiner: None,
            on_failure: None,
        };
        Task::create(params, kind, RunState::Running, None, None, inner)
    }

    /// The id.
    #[inline]
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind.
    #[inline]
    pub fn kind(&self) -> TaskKind {
        self.kind
    }

    /// Whether this is a CPU's idle task.
    #[inline]
    pub fn is_idle(&self) -> bool {
        self.kind == TaskKind::Idle
    }

    /// The current run state.
    #[inline]
    pub fn state(&self) -> RunState {
        RunState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Changes the state from `from` to `to` if it is `from`; returns whether it did. Scheduler-internal: see
    /// [`RunState`] for who may make which transition.
    #[inline]
    pub fn transition(&self, from: RunState, to: RunState) -> bool {
        self.state.compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Sets the state unconditionally. Scheduler-internal (used when a CPU switches to a task it picked).
    #[inline]
    pub fn set_state(&self, state: RunState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// The CPU the task runs on or last ran on.
    #[inline]
    pub fn cpu(&self) -> usize {
        self.cpu.load(Ordering::Relaxed)
    }

    /// The CPU it was pinned to, if any.
    pub fn pinned_cpu(&self) -> Option<usize> {
        self.pin
    }

    /// The priority (policy data; higher runs first under the priority policy).
    pub fn priority(&self) -> u8 {
        self.priority.load(Ordering::Relaxed)
    }

    /// Sets the priority; the priority policy uses it from its next decision on.
    pub fn set_priority(&self, priority: u8) {
        self.priority.store(priority, Ordering::Relaxed);
    }

    /// Whether a CPU is running the task or still switching away from it.
    #[inline]
    pub fn is_on_cpu(&self) -> bool {
        self.on_cpu.load(Ordering::Acquire)
    }

    /// Scheduler-internal: records that a CPU switched to (true) or finished switching away from (false) the task.
    /// Called only on the CPU the task is assigned to (tasks never migrate), so the switch count has one writer.
    #[inline]
    pub fn set_on_cpu(&self, on_cpu: bool) {
        if on_cpu {
            // One writer (see above): a load and a store, not a locked read-modify-write on every switch.
            self.switch_count.store(self.switch_count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        self.on_cpu.store(on_cpu, Ordering::Release);
    }

    /// How many times a CPU switched to this task.
    pub fn switch_count(&self) -> u64 {
        self.switch_count.load(Ordering::Relaxed)
    }

    /// The wake-up deadline (TSC ns) recorded by its latest sleep ([`set_sleep_deadline`](Self::set_sleep_deadline)).
    #[inline]
    pub fn sleep_deadline(&self) -> u64 {
        self.sleep_deadline.load(Ordering::Relaxed)
    }

    /// Records the wake-up deadline of the sleep it is being queued for (the scheduler, under its sleepers lock).
    #[inline]
    pub fn set_sleep_deadline(&self, deadline_ns: u64) {
        self.sleep_deadline.store(deadline_ns, Ordering::Relaxed);
    }

    /// Asks the task to end at its next safe point; returns whether it was already asked.
    pub fn request_kill(&self) -> bool {
        self.kill_requested.swap(true, Ordering::AcqRel)
    }

    /// Asks the task to park at its next safe point (no change if already asked or parked). Scheduler-internal:
    /// see `scheduler::stop`.
    pub fn request_stop(&self) {
        let _ = self.stop.compare_exchange(STOP_NONE, STOP_REQUESTED, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Clears the stop; returns whether the task had parked (is blocked at its safe point, so the caller must
    /// unblock it). Scheduler-internal: see `scheduler::resume`.
    pub fn clear_stop(&self) -> bool {
        self.stop.swap(STOP_NONE, Ordering::SeqCst) == STOP_PARKED
    }

    /// Records that the task (already marked `Blocked`) parks; `false` if the stop was cleared meanwhile (the task
    /// must then unblock itself). Scheduler-internal.
    pub fn mark_parked(&self) -> bool {
        self.stop.compare_exchange(STOP_REQUESTED, STOP_PARKED, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }

    /// Whether the task is asked to stop or parked (see [`request_stop`](Self::request_stop)).
    #[inline]
    pub fn is_stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst) != STOP_NONE
    }

    /// Whether [`request_kill`](Self::request_kill) was called.
    #[inline]
    pub fn is_kill_requested(&self) -> bool {
        self.kill_requested.load(Ordering::Acquire)
    }

    /// A pointer to the saved stack pointer, for `context_switch` to store into. Scheduler-internal.
    #[inline]
    pub fn saved_stack_pointer_slot(&self) -> *mut usize {
        self.saved_stack_pointer.as_ptr()
    }

    /// The saved stack pointer (valid while the task is not running). Scheduler-internal.
    #[inline]
    pub fn saved_stack_pointer(&self) -> usize {
        self.saved_stack_pointer.load(Ordering::Acquire)
    }

    /// Whether `address` lies in the guard page below this task's stack (an access there is a stack overflow).
    pub fn stack_guard_contains(&self, address: VirtualAddress) -> bool {
        self.guard_page.is_some_and(|guard| (guard.value()..guard.value() + 4096).contains(&address.value()))
    }

    /// The usable stack's bounds (bottom inclusive, top exclusive); `None` for an adopted task.
    pub fn stack_bounds(&self) -> Option<Range<usize>> {
        self.stack_range.clone()
    }

    /// Scheduler-internal: records that the task is (true) or is no longer (false) switched out from an interrupt
    /// handler.
    #[inline]
    pub fn set_in_interrupt(&self, in_interrupt: bool) {
        self.in_interrupt.store(in_interrupt, Ordering::Release);
    }

    /// Whether the task is switched out from (or resuming into) an interrupt handler.
    #[inline]
    pub fn is_in_interrupt(&self) -> bool {
        self.in_interrupt.load(Ordering::Acquire)
    }

    /// Scheduler-internal (the unwinder's start hook): an unwind started on this task's stack.
    pub fn unwind_started(&self) {
        self.unwinds_in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// Scheduler-internal (the unwinder's catch hook): an unwind on this task's stack was caught.
    pub fn unwind_caught(&self) {
        let _ = self.unwinds_in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| count.checked_sub(1));
    }

    /// Scheduler-internal: the task's body has returned or been unwound; from now on kills need no unwinding.
    pub fn finish_body(&self) {
        self.body_finished.store(true, Ordering::Release);
    }

    /// Whether the task's body has returned or been unwound (it is exiting).
    #[inline]
    pub fn is_body_finished(&self) -> bool {
        self.body_finished.load(Ordering::Acquire)
    }

    /// Whether an unwind (panic, fault or kill) is in flight on this task's stack.
    #[inline]
    pub fn is_unwinding(&self) -> bool {
        self.unwinds_in_flight.load(Ordering::Acquire) > 0
    }

    /// Scheduler-internal: counts one deferral of a kill; returns the count including this one.
    pub fn defer_kill(&self) -> u32 {
        self.kill_deferrals.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Runs `f` with the task's stack bounds while the stack cannot be freed (the task lock is held, so `reap`
    /// waits; interrupts are disabled on this CPU meanwhile). `None` if the task has no stack of its own or was
    /// reaped. For reading another task's stack (a stack trace); the task may still run on another CPU.
    pub fn with_stack_locked<R>(&self, f: impl FnOnce(Option<Range<usize>>) -> R) -> R {
        let inner = self.inner.lock();
        #[cfg(target_os = "none")]
        let present = inner.stack.is_some();
        #[cfg(not(target_os = "none"))]
        let present = false;
        let result = f(if present { self.stack_range.clone() } else { None });
        drop(inner);
        result
    }

    /// Records that the task holds (or waits to be handed) `lock`, until [`unregister_held_lock`]
    /// (Self::unregister_held_lock). For blocking locks (`sync::Mutex`); see [`HeldLock`].
    pub fn register_held_lock(&self, lock: Arc<dyn HeldLock>) {
        self.held_locks.lock().push(lock);
    }

    /// Forgets the most recent registration of `lock` (on unlock); returns whether there was one.
    pub fn unregister_held_lock(&self, lock: &dyn HeldLock) -> bool {
        self.held_locks.lock().remove(lock)
    }

    /// Takes every registered lock (scheduler-internal: the exit path of a failed task force-releases them).
    pub fn take_held_locks(&self) -> Vec<Arc<dyn HeldLock>> {
        self.held_locks.lock().take()
    }

    /// How many locks the task has registered.
    pub fn held_lock_count(&self) -> usize {
        self.held_locks.lock().len()
    }

    /// Scheduler-internal: enters a preemption-disabled section (nested; see `scheduler::preempt_disable`).
    pub fn preempt_disable(&self) {
        self.preempt_disabled.fetch_add(1, Ordering::AcqRel);
    }

    /// Scheduler-internal: leaves a preemption-disabled section; returns whether preemption is enabled again and a
    /// switch was deferred meanwhile (the pending flag is cleared: the caller switches now).
    pub fn preempt_enable(&self) -> bool {
        let previous =
            self.preempt_disabled.fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| count.checked_sub(1));
        previous == Ok(1) && self.preempt_pending.swap(false, Ordering::AcqRel)
    }

    /// Whether the task is in a preemption-disabled section.
    #[inline]
    pub fn is_preempt_disabled(&self) -> bool {
        self.preempt_disabled.load(Ordering::Acquire) > 0
    }

    /// Scheduler-internal: a switch was deferred because preemption is disabled.
    pub fn set_preempt_pending(&self) {
        self.preempt_pending.store(true, Ordering::Release);
    }

    /// Sets the callback the task runs if it fails.
    pub fn set_failure_callback(&self, callback: FailureCallback) {
        self.inner.lock().on_failure = Some(callback);
    }

    /// Takes the failure callback (once).
    pub fn take_failure_callback(&self) -> Option<FailureCallback> {
        self.inner.lock().on_failure.take()
    }

    /// The vtable addresses of the trait objects the task still holds: its body (until the task starts and takes
    /// it) and its failure callback (e.g. a restartable task's respawn closure). A vtable lies in the read-only
    /// data of the cell that created the closure, so a live swap of that cell must keep its old copy while the
    /// task holds them. Takes the task lock (interrupts disabled meanwhile); allocates nothing.
    pub fn closure_vtables(&self) -> [Option<usize>; 2] {
        let inner = self.inner.lock();
        [inner.body.as_deref().map(vtable_of), inner.on_failure.as_deref().map(vtable_of)]
    }

    /// Takes the body a spawned task runs (once; `None` afterwards).
    pub fn take_body(&self) -> Option<TaskBody> {
        self.inner.lock().body.take()
    }

    /// Records the exit value and marks the task `Exited`; returns the task blocked in `join` on it, if any, which
    /// the caller must wake. Scheduler-internal: only the task itself calls this, just before switching away
    /// for good.
    pub fn set_exited(&self, value: AnyExitValue) -> Option<TaskRef> {
        let mut inner = self.inner.lock();
        // A failed task's stack may still be referenced (a task ended without unwinding leaves whatever its frames
        // had linked elsewhere): free it at reap time rather than hand it to the next spawn at once.
        #[cfg(target_os = "none")]
        if matches!(value, crate::ExitValue::Failed(_))
            && let Some(stack) = inner.stack.as_mut()
        {
            stack.forbid_reuse();
        }
        inner.exit_value = Some(value);
        self.set_state(RunState::Exited);
        inner.joiner.take()
    }

    /// For `join`: if the task has exited, takes its exit value (`Some` once); otherwise registers `joiner` (which
    /// must be the current, running task) as the one to wake and marks it `Blocked`, atomically with respect to
    /// [`set_exited`](Self::set_exited), and returns `None`: the caller then switches away and calls again when
    /// woken.
    pub fn take_exit_value_or_block(&self, joiner: &TaskRef) -> Option<AnyExitValue> {
        let mut inner = self.inner.lock();
        if self.state() == RunState::Exited {
            return inner.exit_value.take();
        }
        if joiner.transition(RunState::Running, RunState::Blocked) {
            inner.joiner = Some(joiner.clone());
        }
        None
    }

    /// Frees what an exited task owned (its stack, body, namespace reference) and removes it from the task table.
    /// Scheduler-internal: called on the task's CPU after switching away from it for good.
    pub fn reap(&self) {
        // Before the task leaves the table: a lock token on this stack is recognized as dead from then on.
        if let Some(stack) = &self.stack_range {
            crate::reaped::record(stack);
        }
        let (stack, namespace, body) = {
            let mut inner = self.inner.lock();
            #[cfg(target_os = "none")]
            let stack = inner.stack.take();
            #[cfg(not(target_os = "none"))]
            let stack = ();
            (stack, inner.namespace.take(), (inner.body.take(), inner.on_failure.take()))
        };
        drop((stack, namespace, body));
        table().remove(&self.id);
    }
}

/// The vtable address of a trait object (the second word of its fat pointer).
fn vtable_of<T: ?Sized>(object: &T) -> usize {
    let pointer: *const T = object;
    assert!(size_of::<*const T>() == 2 * size_of::<usize>(), "vtable_of needs a trait object");
    // SAFETY: the assertion makes `*const T` a fat pointer of two words; for a trait object these are the data
    // pointer and the vtable pointer, in that order (the layout rustc has always used; `core::ptr::metadata`,
    // which would name it, is unstable). Only the second word's value is read, never dereferenced.
    let words = unsafe { core::mem::transmute_copy::<*const T, [usize; 2]>(&pointer) };
    words[1]
}

/// Every task in the task table (not yet reaped), ordered by id.
pub fn all_tasks() -> Vec<TaskRef> {
    table().values().cloned().collect()
}

/// Every task in the task table, like [`all_tasks`], if the table's lock can be taken within a bounded spin
/// (about a million attempts); `None` otherwise (for fault recovery: the faulting task may hold it for good).
pub fn try_all_tasks() -> Option<Vec<TaskRef>> {
    lock_table(Some(1_000_000)).map(|table| table.values().cloned().collect())
}

/// Calls `f` with a view of the task table, holding its lock (interrupts disabled), if the lock can be taken
/// within `attempts` tries; `None` otherwise. Allocates nothing, so the fault path can use it while the faulting
/// code holds the heap lock. `f` must not touch the task table (it would spin on its own lock) and should be
/// short: every task creation and reap waits meanwhile.
pub fn try_with_tasks<R>(attempts: usize, f: impl FnOnce(TasksView<'_>) -> R) -> Option<R> {
    let table = lock_table(Some(attempts.max(1)))?;
    Some(f(TasksView(&table)))
}

/// The task table as [`try_with_tasks`] shows it (borrowed while its lock is held).
#[derive(Clone, Copy)]
pub struct TasksView<'a>(&'a BTreeMap<TaskId, TaskRef>);

impl<'a> TasksView<'a> {
    /// Every task not yet reaped, ordered by id.
    pub fn iter(self) -> impl Iterator<Item = &'a TaskRef> {
        self.0.values()
    }

    /// Whether `task` is the address of a task of the table ([`TaskRef::as_ptr`]); compares addresses only.
    pub fn contains_ptr(self, task: *const Task) -> bool {
        self.0.values().any(|entry| entry.as_ptr() == task)
    }

    /// The number of tasks.
    pub fn len(self) -> usize {
        self.0.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(self) -> bool {
        self.0.is_empty()
    }
}

/// The task with `id`, if it exists and has not been reaped.
pub fn task_by_id(id: TaskId) -> Option<TaskRef> {
    table().get(&id).cloned()
}

/// The number of tasks in the table.
pub fn task_count() -> usize {
    table().len()
}
