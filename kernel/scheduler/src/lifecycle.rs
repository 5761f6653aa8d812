//! Bringing CPUs into the scheduler, the idle loop, and creating and joining tasks.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use cell_namespace::CellNamespace;
use task::{
    AnyExitValue, DEFAULT_STACK_PAGES, ExitValue, FailureReason, RunState, Stack, StackError, Task, TaskBody, TaskKind,
    TaskParams, TaskRef, interrupts,
};

use crate::cpus::{CPUS, MAX_CPUS, current_cpu, least_loaded_cpu, this_cpu};
use crate::failure::{failure_from_cause, report_failure};
use crate::switch::{current_task, enqueue, exit_current, finish_switch, schedule};

/// Pages of an idle task's stack (idle tasks run little besides interrupt handlers).
const IDLE_STACK_PAGES: usize = 8;

/// Why tasking could not start on a CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitError {
    /// This CPU already runs tasks.
    AlreadyInitialized(usize),
    /// The idle task's stack could not be allocated.
    Stack(StackError),
}

/// Turns the thread of execution that calls it (on the boot CPU: the captain, later the shell) into a task named
/// `name`, creates this CPU's idle task, and starts scheduling on this CPU; installs the unwinder's hooks that
/// count unwinds in flight per task. Returns the new current task.
///
/// Tasks switch cooperatively until the timer handler calls [`on_timer_tick`](crate::on_timer_tick), which
/// adds preemption.
///
/// # Errors
/// [`InitError`] if this CPU already runs tasks or the idle stack cannot be allocated.
pub fn init_bsp(name: &str) -> Result<TaskRef, InitError> {
    let index = current_cpu();
    let cpu = &CPUS[index];
    if cpu.online.load(Ordering::Acquire) {
        return Err(InitError::AlreadyInitialized(index));
    }
    let stack = Stack::new(IDLE_STACK_PAGES).map_err(InitError::Stack)?;
    let idle_params = TaskParams { name: format!("idle/{index}"), cpu: index, pinned: true, priority: 0 };
    let idle = Task::new_spawned(idle_params, TaskKind::Idle, stack, idle_entry, 0, None, None);
    let params = TaskParams { name: String::from(name), cpu: index, pinned: true, priority: task::DEFAULT_PRIORITY };
    let current = Task::adopt_current(params, TaskKind::Adopted);
    let interrupts_were_enabled = interrupts::disable();
    // SAFETY: interrupts are disabled and `cpu` is the state of this CPU, which is coming online.
    unsafe {
        cpu.idle.with(|slot| *slot = Some(idle));
        cpu.current.with(|slot| *slot = Some(current.clone()));
    }
    interrupts::restore(interrupts_were_enabled);
    cpu.assigned.fetch_add(1, Ordering::Relaxed);
    cpu.online.store(true, Ordering::Release);
    unwind::set_unwind_hooks(crate::switch::unwind_started, crate::switch::unwind_caught);
    cell_namespace::set_preemption_hooks(crate::preempt_disable, crate::preempt_enable);
    memory::set_deferred_preemption_hook(crate::sleep::heap_deferred_preemption);
    log::info!("scheduler: CPU {index} runs tasks (policy {})", crate::policy_name());
    Ok(current)
}

/// The entry of an application processor into the scheduler, called on its boot stack once its per-CPU state,
/// IDT and local APIC timer are set up: this thread becomes CPU `cpu`'s idle task, and the CPU runs tasks
/// forever.
///
/// # Panics
/// If `cpu` is out of range or already online.
pub fn ap_entry(cpu: usize) -> ! {
    interrupts::disable();
    assert!(cpu < MAX_CPUS, "ap_entry: CPU index {cpu} out of range");
    if current_cpu() != cpu {
        log::warn!("ap_entry({cpu}) runs on CPU {} by the installed CPU-id function", current_cpu());
    }
    let state = &CPUS[cpu];
    assert!(!state.online.load(Ordering::Acquire), "ap_entry: CPU {cpu} is already online");
    let params = TaskParams { name: format!("idle/{cpu}"), cpu, pinned: true, priority: 0 };
    let idle = Task::adopt_current(params, TaskKind::Idle);
    state.idling.store(true, Ordering::Release);
    // SAFETY: interrupts are disabled (above) and `state` is the state of this CPU, which is coming online.
    unsafe {
        state.idle.with(|slot| *slot = Some(idle.clone()));
        state.current.with(|slot| *slot = Some(idle));
    }
    state.online.store(true, Ordering::Release);
    idle_loop()
}

/// First code of the boot CPU's idle task.
extern "C" fn idle_entry(_argument: usize) -> ! {
    finish_switch(this_cpu());
    idle_loop()
}

/// Runs whatever becomes runnable (after a fault outside the scheduler it is restarted from the top,
/// `idle_restart.rs`); halts until the next interrupt when nothing is (once this CPU has seen a timer
/// tick; before that it polls, so cooperative scheduling and sleeping work without a timer). After a live swap of
/// the scheduler it continues in the new copy's idle loop (`evolution.rs`).
pub(crate) fn idle_loop() -> ! {
    crate::idle_restart::record_base();
    let generation = crate::evolution::idle_generation();
    loop {
        crate::evolution::hand_over_if_swapped(generation);
        crate::idle_restart::scheduler_fault_once();
        interrupts::disable();
        crate::idle_restart::run_hook_once();
        crate::rebuild::runqueue_fault_once();
        let cpu = this_cpu();
        let work = !cpu.runqueue.lock().is_empty() || tsc::now_ns() >= cpu.next_deadline.load(Ordering::Acquire);
        if work {
            schedule();
        } else if cpu.ticks.load(Ordering::Relaxed) > 0 {
            crate::rebuild::audit_lost_tasks();
            // `sti; hlt` is atomic with respect to interrupts, so a wake-up IPI cannot slip in between.
            x86_64::instructions::interrupts::enable_and_hlt();
        } else {
            interrupts::restore(true);
            core::hint::spin_loop();
        }
    }
}

/// Marks the current task's body finished when dropped: at the end of the body, or by its landing pad while the
/// body unwinds (an unwind is then in flight, so no kill can start a second one before this runs).
struct BodyFinished;

impl Drop for BodyFinished {
    fn drop(&mut self) {
        if let Some(current) = current_task() {
            current.finish_body();
        }
    }
}

/// What runs inside the task's `catch_unwind`: enables interrupts, runs `body`, and marks the body finished as it
/// returns or unwinds.
fn inside_the_catch(body: TaskBody) -> impl FnOnce() -> alloc::boxed::Box<dyn core::any::Any + Send> {
    move || {
        let _finished = BodyFinished;
        interrupts::restore(true);
        body()
    }
}

/// First code of a spawned task: finish the switch, then run its body with interrupts enabled inside
/// `unwind::catch_unwind`, and exit with what it returns, or, if it unwound (a panic, a CPU exception, a kill),
/// with `Failed(reason)` once every `Drop` on its stack has run.
extern "C" fn spawned_task_entry(_argument: usize) -> ! {
    finish_switch(this_cpu());
    let current = current_task().expect("a spawned task runs as the current task");
    if current.is_kill_requested() {
        drop(current);
        exit_current(ExitValue::Failed(FailureReason::Killed));
    }
    let body = current.take_body();
    drop(current);
    // Interrupts stay disabled until the body runs inside the catch, and the body is marked finished (by
    // `BodyFinished`, dropped as the body returns or unwinds) before the catch is left: outside the catch, a kill
    // taking effect at a safe point (a drop that blocks) would start an unwind that nothing catches (through this
    // `extern "C"` frame, which cannot unwind). So the task only exits from here on; a kill arriving now (say
    // while the failure is reported or a restartable task respawned) ends it without unwinding.
    let outcome = body.map(inside_the_catch).map(unwind::catch_unwind);
    let value = match outcome {
        Some(outcome) => match outcome {
            Ok(value) => ExitValue::Completed(value),
            Err(cause) => {
                // Landing pads ran with interrupts as the unwind left them (off after a fault or a kill).
                interrupts::restore(true);
                // Before the failure is reported (a restart callback may need the same locks at once).
                if let Some(current) = current_task() {
                    crate::switch::release_held_locks(&current);
                }
                let reason = failure_from_cause(&cause);
                report_failure(&reason);
                // Taken only now: an unwind that never reaches this catch leaves it with the task, for the
                // unwinder's end handler (`fault_recovery`) to run.
                let on_failure = current_task().and_then(|current| current.take_failure_callback());
                if let Some(on_failure) = on_failure {
                    on_failure(&reason);
                }
                ExitValue::Failed(reason)
            }
        },
        None => ExitValue::Failed(FailureReason::WrongReturnType),
    };
    if let Some(current) = current_task() {
        crate::exit_hook::report_exit(&current);
    }
    exit_current(value)
}

/// How to create a task with [`spawn`]; `TaskBuilder` in the `spawn` cell fills it.
pub struct SpawnOptions {
    /// Display name.
    pub name: String,
    /// Run on this CPU (logical index) only; otherwise the least-loaded online CPU is chosen.
    pub pin: Option<usize>,
    /// Initial priority (policy data).
    pub priority: u8,
    /// Stack size in pages (4 KiB each), not counting the guard page.
    pub stack_pages: usize,
    /// The namespace the task's code lives in, kept alive until the task is reaped.
    pub namespace: Option<Arc<CellNamespace>>,
    /// Called by the task itself if it fails, after its stack was unwound and before it exits (e.g. to respawn
    /// a restartable task).
    pub on_failure: Option<task::FailureCallback>,
}

impl SpawnOptions {
    /// Options with defaults: not pinned, default priority, 64 KiB stack, no namespace.
    pub fn new(name: &str) -> Self {
        SpawnOptions {
            name: String::from(name),
            pin: None,
            priority: task::DEFAULT_PRIORITY,
            stack_pages: DEFAULT_STACK_PAGES,
            namespace: None,
            on_failure: None,
        }
    }
}

/// Why a task could not be spawned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnError {
    /// Tasking has not started (no CPU is online).
    NotInitialized,
    /// The pinned CPU does not run tasks.
    InvalidCpu(usize),
    /// The stack could not be allocated.
    Stack(StackError),
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpawnError::NotInitialized => write!(f, "tasking has not started"),
            SpawnError::InvalidCpu(cpu) => write!(f, "CPU {cpu} does not run tasks"),
            SpawnError::Stack(error) => write!(f, "cannot allocate the task's stack: {error:?}"),
        }
    }
}

/// Creates a task that runs `body` and queues it on its CPU (pinned, or the least-loaded one). Returns the task;
/// join it with [`join`].
///
/// # Errors
/// [`SpawnError`] if tasking has not started, the pinned CPU is not online, or the stack cannot be allocated.
pub fn spawn(options: SpawnOptions, body: TaskBody) -> Result<TaskRef, SpawnError> {
    let cpu = match options.pin {
        Some(cpu) if cpu < MAX_CPUS && CPUS[cpu].online.load(Ordering::Acquire) => cpu,
        Some(cpu) => return Err(SpawnError::InvalidCpu(cpu)),
        None => least_loaded_cpu().ok_or(SpawnError::NotInitialized)?,
    };
    let stack = Stack::new(options.stack_pages).map_err(SpawnError::Stack)?;
    let params = TaskParams { name: options.name, cpu, pinned: options.pin.is_some(), priority: options.priority };
    let task =
        Task::new_spawned(params, TaskKind::Spawned, stack, spawned_task_entry, 0, Some(body), options.namespace);
    if let Some(on_failure) = options.on_failure {
        task.set_failure_callback(on_failure);
    }
    CPUS[cpu].assigned.fetch_add(1, Ordering::Relaxed);
    enqueue(&task);
    Ok(task)
}

/// Why [`join`] could not return an exit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// There is no current task to block (tasking has not started on this CPU).
    NoCurrentTask,
    /// A task cannot join itself.
    JoinSelf,
    /// The exit value was already taken by an earlier join.
    AlreadyJoined,
}

/// Blocks until `task` has exited and returns its exit value (once: a second join gets
/// [`JoinError::AlreadyJoined`]).
///
/// # Errors
/// [`JoinError`] as documented on its variants.
pub fn join(task: &TaskRef) -> Result<AnyExitValue, JoinError> {
    loop {
        let current = current_task().ok_or(JoinError::NoCurrentTask)?;
        if current == *task {
            return Err(JoinError::JoinSelf);
        }
        if let Some(value) = task.take_exit_value_or_block(&current) {
            return Ok(value);
        }
        if task.state() == RunState::Exited && current.state() == RunState::Running {
            // Either an earlier join took the value, or this task was registered as the joiner, switched out by
            // a preemption before reaching `schedule` below, and woken by the exit meanwhile (it is `Running`
            // again with the value still there): look once more before calling it a second join.
            return task.take_exit_value_or_block(&current).ok_or(JoinError::AlreadyJoined);
        }
        drop(current);
        schedule();
    }
}
