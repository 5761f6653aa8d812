//! Spawning tasks: [`TaskBuilder`] for closures and for functions found by name in a cell, and [`JoinHandle`].
//!
//! # Purpose
//! The typed front of `scheduler::spawn`: a closure returning `T` becomes a type-erased task body, and
//! [`JoinHandle::join`] gives back `ExitValue<T>`. [`TaskBuilder::spawn_function`] finds a function by its
//! hash-free path in a cell (loading the cell on demand, `CellNamespace::find_function`) and runs it as a task;
//! [`spawn_application`] runs an application through its typed entry descriptor ([`entry`]), and
//! [`spawn_application_with`] gives it a standard input, output and environment ([`stdio`]). The task keeps its
//! namespace alive until it ends.
//!
//! [`TaskBuilder::spawn_restartable`] spawns a *restartable* task: when it fails (panic, CPU exception, kill), it
//! is respawned from the same function, up to a restart limit; its [`RestartableHandle`] counts the restarts.
//!
//! # Example
//! ```ignore
//! let handle = TaskBuilder::new("worker").pin(1).priority(20).spawn(|| 6 * 7)?;
//! assert!(matches!(handle.join(), Ok(ExitValue::Completed(42))));
//! ```
#![no_std]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::fmt;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use cell_namespace::{CellNamespace, FindFunctionError};

pub mod entry;
pub mod stdio;
pub use entry::{ApplicationEntry, EntryError};
use scheduler::{JoinError, SpawnOptions};
pub use stdio::TaskIo;
use task::{ExitValue, FailureReason, RunState, TaskBody, TaskId, TaskRef};

/// Why a task could not be spawned.
#[derive(Debug)]
pub enum SpawnError {
    /// The scheduler refused (not started, invalid pinned CPU, no memory for the stack).
    Scheduler(scheduler::SpawnError),
    /// The named function could not be found (or its cell could not be loaded).
    Function(FindFunctionError),
    /// No application with this name exists.
    NoSuchApplication(String),
    /// The application exists but has no valid typed entry (see [`entry`]; boxed: it is large).
    NotAnApplication(Box<EntryError>),
    /// The system namespaces are not installed.
    NoNamespaces,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Scheduler(error) => write!(f, "{error}"),
            SpawnError::Function(error) => write!(f, "{error}"),
            SpawnError::NoSuchApplication(name) => write!(f, "no application named {name}"),
            SpawnError::NotAnApplication(error) => write!(f, "not an application: {error}"),
            SpawnError::NoNamespaces => write!(f, "the system namespaces are not installed"),
        }
    }
}

/// Builds a task: name, optional CPU pin, priority, stack size, then [`spawn`](Self::spawn) a closure or
/// [`spawn_function`](Self::spawn_function) a cell's function.
pub struct TaskBuilder {
    options: SpawnOptions,
    /// Standard input, output and environment for the task ([`TaskBuilder::with_io`]).
    io: Option<Arc<TaskIo>>,
}

impl TaskBuilder {
    /// A builder for a task named `name`, unpinned, default priority, 64 KiB stack.
    pub fn new(name: &str) -> Self {
        TaskBuilder { options: SpawnOptions::new(name), io: None }
    }

    /// Runs the task on CPU `cpu` (logical index) only.
    pub fn pin(mut self, cpu: usize) -> Self {
        self.options.pin = Some(cpu);
        self
    }

    /// Sets the initial priority (higher runs first under the priority policy).
    pub fn priority(mut self, priority: u8) -> Self {
        self.options.priority = priority;
        self
    }

    /// Sets the stack size in 4 KiB pages (a guard page is added below).
    pub fn stack_pages(mut self, pages: usize) -> Self {
        self.options.stack_pages = pages;
        self
    }

    /// Keeps `namespace` alive while the task runs (its code lives there).
    pub fn namespace(mut self, namespace: Arc<CellNamespace>) -> Self {
        self.options.namespace = Some(namespace);
        self
    }

    /// Spawns a task that runs `function` and completes with its return value.
    ///
    /// # Errors
    /// [`SpawnError::Scheduler`].
    pub fn spawn<F, T>(self, function: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let mut options = self.options;
        let body: TaskBody = match self.io {
            None => Box::new(move || Box::new(function()) as Box<dyn Any + Send>),
            Some(io) => {
                options.on_failure = Some(Box::new(|_: &FailureReason| {
                    if let Some(current) = scheduler::current_task() {
                        stdio::unregister(current.id());
                    }
                }));
                Box::new(move || {
                    let _registration = stdio::Registration::new(io);
                    Box::new(function()) as Box<dyn Any + Send>
                })
            }
        };
        spawn_body(options, body)
    }

    /// Finds the function `path` (hash-free demangled, e.g. `my_cell::worker`) in cell `cell` of `namespace`,
    /// loading the cell if needed, and spawns a task that calls it with `argument`.
    ///
    /// # Errors
    /// [`SpawnError::Function`] if the cell cannot be loaded or has no such function; [`SpawnError::Scheduler`].
    ///
    /// # Safety
    /// The function must have the Rust signature `fn(A) -> R` (the cell and the caller come from one build, so the
    /// Rust ABI matches); nothing can check this at run time.
    pub unsafe fn spawn_function<A, R>(
        self,
        namespace: &Arc<CellNamespace>,
        cell: &str,
        path: &str,
        argument: A,
    ) -> Result<JoinHandle<R>, SpawnError>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        let address = namespace.find_function(cell, path).map_err(SpawnError::Function)?;
        // SAFETY: `address` is an exported text symbol of a loaded cell, and the caller guarantees its signature
        // is `fn(A) -> R`; the namespace (kept alive by the task) keeps the cell loaded while the task runs.
        let function: fn(A) -> R = unsafe { core::mem::transmute::<usize, fn(A) -> R>(address.value()) };
        self.namespace(namespace.clone()).spawn(move || function(argument))
    }
}

impl TaskBuilder {
    /// Spawns a restartable task running `function`: each time it fails (panic, CPU exception, kill), a new task
    /// with the same name, pin, priority, stack size, namespace and standard I/O ([`TaskBuilder::with_io`]) runs
    /// `function` again, up to `limit` restarts;
    /// the restart is spawned by the failing task itself once its stack was unwound. A run that returns ends it.
    ///
    /// # Errors
    /// [`SpawnError::Scheduler`] for the first spawn (a failed respawn is logged and ends the series).
    pub fn spawn_restartable<F>(self, limit: usize, function: F) -> Result<RestartableHandle, SpawnError>
    where
        F: Fn() + Send + Sync + 'static,
    {
        let state = Arc::new(RestartState {
            limit,
            restarts: AtomicUsize::new(0),
            done: AtomicBool::new(false),
            last_failure: spin::Mutex::new(None),
            current: AtomicU64::new(0),
            running: spin::Mutex::new(None),
            cancelled: AtomicBool::new(false),
        });
        let template = Template {
            name: self.options.name,
            pin: self.options.pin,
            priority: self.options.priority,
            stack_pages: self.options.stack_pages,
            namespace: self.options.namespace,
            io: self.io,
        };
        let first = launch(Arc::new(template), Arc::new(function), state.clone()).map_err(SpawnError::Scheduler)?;
        Ok(RestartableHandle { state, first: first.id() })
    }
}

/// What every incarnation of a restartable task is spawned with.
struct Template {
    name: String,
    pin: Option<usize>,
    priority: u8,
    stack_pages: usize,
    namespace: Option<Arc<CellNamespace>>,
    /// Standard input, output and environment, registered by each incarnation.
    io: Option<Arc<TaskIo>>,
}

/// The shared state of a restartable task's incarnations and its handle.
struct RestartState {
    limit: usize,
    /// Protects nothing else: counts respawns.
    restarts: AtomicUsize,
    /// Set when a run returned or the last allowed run failed.
    done: AtomicBool,
    /// Protects: the failure of the last failed run.
    last_failure: spin::Mutex<Option<FailureReason>>,
    /// The id of the incarnation running now (0 before the first is spawned).
    current: AtomicU64,
    /// Protects: the incarnation running now (the last one spawned), for [`RestartableHandle::wait`] to join.
    running: spin::Mutex<Option<TaskRef>>,
    /// Set by [`RestartableHandle::cancel`]: no further run starts.
    cancelled: AtomicBool,
}

fn launch<F: Fn() + Send + Sync + 'static>(
    template: Arc<Template>,
    function: Arc<F>,
    state: Arc<RestartState>,
) -> Result<TaskRef, scheduler::SpawnError> {
    let mut options = SpawnOptions::new(&template.name);
    options.pin = template.pin;
    options.priority = template.priority;
    options.stack_pages = template.stack_pages;
    options.namespace = template.namespace.clone();
    let (body_function, body_state, series) = (function.clone(), state.clone(), state.clone());
    let body_io = template.io.clone();
    options.on_failure = Some(Box::new(move |reason: &FailureReason| {
        if template.io.is_some()
            && let Some(current) = scheduler::current_task()
        {
            stdio::unregister(current.id());
        }
        *state.last_failure.lock() = Some(reason.clone());
        if state.cancelled.load(Ordering::Acquire) {
            state.done.store(true, Ordering::Release);
            return;
        }
        let restarts = state.restarts.load(Ordering::Acquire);
        if restarts >= state.limit {
            log::warn!("task \"{}\" failed after {restarts} restarts (limit reached)", template.name);
            state.done.store(true, Ordering::Release);
            return;
        }
        state.restarts.store(restarts + 1, Ordering::Release);
        log::info!("restarting task \"{}\" (restart {} of {})", template.name, restarts + 1, state.limit);
        if let Err(error) = launch(template.clone(), function.clone(), state.clone()) {
            log::error!("restarting task \"{}\" failed: {error}", template.name);
            state.done.store(true, Ordering::Release);
        }
    }));
    let body: TaskBody = Box::new(move || {
        let _registration = body_io.map(stdio::Registration::new);
        // A run spawned just as the series was cancelled does not start its work.
        if !body_state.cancelled.load(Ordering::Acquire) {
            body_function();
        }
        body_state.done.store(true, Ordering::Release);
        Box::new(()) as Box<dyn Any + Send>
    });
    let task = scheduler::spawn(options, body)?;
    series.current.store(task.id().value(), Ordering::Release);
    *series.running.lock() = Some(task.clone());
    if series.cancelled.load(Ordering::Acquire) {
        // Cancelled while this run was being spawned: `cancel` may have read the previous run.
        let _ = scheduler::kill(task.id());
    }
    Ok(task)
}

/// The handle of a restartable task series ([`TaskBuilder::spawn_restartable`]).
pub struct RestartableHandle {
    state: Arc<RestartState>,
    first: TaskId,
}

impl RestartableHandle {
    /// The first incarnation's id.
    pub fn first_id(&self) -> TaskId {
        self.first
    }

    /// How many times the task was restarted so far.
    pub fn restarts(&self) -> usize {
        self.state.restarts.load(Ordering::Acquire)
    }

    /// Whether the series ended: a run returned, or the last allowed run failed.
    pub fn is_done(&self) -> bool {
        self.state.done.load(Ordering::Acquire)
    }

    /// The failure of the last failed run, if any.
    pub fn last_failure(&self) -> Option<FailureReason> {
        self.state.last_failure.lock().clone()
    }

    /// The id of the incarnation running now (the last one spawned; it may have ended meanwhile).
    pub fn current_id(&self) -> TaskId {
        TaskId::new(self.state.current.load(Ordering::Acquire))
    }

    /// Blocks until the series ended ([`Self::is_done`]), by joining each incarnation in turn: the waiter runs
    /// no code while a run goes (no polling), and wakes when the run ends. A failing run spawns the next one
    /// before it exits, so after each join the next incarnation (or the end of the series) is already recorded.
    ///
    /// # Errors
    /// [`JoinError::NoCurrentTask`] outside a task, [`JoinError::JoinSelf`] from one of the series' own runs.
    pub fn wait(&self) -> Result<(), JoinError> {
        while !self.is_done() {
            let Some(run) = self.state.running.lock().clone() else {
                // Not possible after a successful spawn (the first run is recorded before the handle exists).
                scheduler::yield_now();
                continue;
            };
            match scheduler::join(&run) {
                // The run ended (its exit value is the unit of the body; a failure spawned the next run).
                Ok(_) => {}
                Err(JoinError::AlreadyJoined) => {
                    // Another waiter joined this run first, or the run was recorded by the previous iteration
                    // and the next is being spawned right now: let that finish.
                    scheduler::yield_now();
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Ends the series: no further run starts, and the run going now is killed (its failure, seen with the
    /// series cancelled, ends the series instead of restarting it). Idempotent; nothing once the series is done.
    pub fn cancel(&self) {
        if self.is_done() {
            return;
        }
        self.state.cancelled.store(true, Ordering::Release);
        let running = self.state.running.lock().clone();
        if let Some(run) = running {
            // A run that already ended cannot be killed; its end (or its successor's start) sees the flag.
            let _ = scheduler::kill(run.id());
        }
    }
}

fn spawn_body<T>(options: SpawnOptions, body: TaskBody) -> Result<JoinHandle<T>, SpawnError> {
    let task = scheduler::spawn(options, body).map_err(SpawnError::Scheduler)?;
    Ok(JoinHandle { task, result: PhantomData })
}

/// Spawns application `name` (an object `a-<name>.o` in the application namespace) as a background task running
/// its typed entry (`app_io::entry!(main)`, checked at load time by [`entry::find_entry`]) with `args`; `args[0]`
/// is conventionally the name. The task is named after the application, and shares the calling task's
/// [`TaskIo`] (standard input, output and environment) if it has one.
///
/// # Errors
/// [`SpawnError::NoSuchApplication`], [`SpawnError::NotAnApplication`], [`SpawnError::Scheduler`],
/// [`SpawnError::NoNamespaces`].
pub fn spawn_application(name: &str, args: Vec<String>) -> Result<JoinHandle<isize>, SpawnError> {
    spawn_application_io(name, args, stdio::current())
}

/// Spawns application `name` as [`spawn_application`] does, with standard input, output and environment `io`
/// (registered for the task while its body runs; dropped, which flushes and closes its pipe ends, when its last
/// holder ends: the caller should keep only a `Weak` to it, e.g. for [`stdio::set_job_stopped`]).
///
/// # Errors
/// As [`spawn_application`].
pub fn spawn_application_with(name: &str, args: Vec<String>, io: Arc<TaskIo>) -> Result<JoinHandle<isize>, SpawnError> {
    spawn_application_io(name, args, Some(io))
}

fn spawn_application_io(
    name: &str,
    args: Vec<String>,
    io: Option<Arc<TaskIo>>,
) -> Result<JoinHandle<isize>, SpawnError> {
    let namespace = system_namespaces::application_namespace().ok_or(SpawnError::NoNamespaces)?;
    let crate_name =
        namespace.object_crate_name(name).ok_or_else(|| SpawnError::NoSuchApplication(String::from(name)))?;
    let main = entry::find_entry_memoized(namespace, name, &crate_name)
        .map_err(|error| SpawnError::NotAnApplication(Box::new(error)))?;
    TaskBuilder::new(name).namespace(namespace.clone()).with_io(io).spawn(move || main(args))
}

impl TaskBuilder {
    /// Gives the task `io` as its standard input, output and environment (`None`: the console, no environment).
    /// The task registers it as its body starts; it is unregistered as the body returns or unwinds, and again by
    /// the task's failure callback (in case the body's drops were skipped).
    pub fn with_io(mut self, io: Option<Arc<TaskIo>>) -> Self {
        self.io = io;
        self
    }

    /// Gives the task the calling task's standard input, output and environment, if it has them.
    pub fn inherit_io(self) -> Self {
        self.with_io(stdio::current())
    }
}

/// The owner's handle on a spawned task: join it for its exit value. Dropping the handle detaches the task (it
/// runs on, and is freed when it ends).
pub struct JoinHandle<T> {
    task: TaskRef,
    result: PhantomData<fn() -> T>,
}

impl<T: 'static> JoinHandle<T> {
    /// The task.
    pub fn task(&self) -> &TaskRef {
        &self.task
    }

    /// The task's id (for `kill`).
    pub fn id(&self) -> TaskId {
        self.task.id()
    }

    /// Whether the task has exited.
    pub fn is_finished(&self) -> bool {
        self.task.state() == RunState::Exited
    }

    /// Blocks until the task has exited; returns how it ended.
    ///
    /// # Errors
    /// [`JoinError::NoCurrentTask`] if called outside a task; [`JoinError::JoinSelf`] if called by the task itself.
    pub fn join(self) -> Result<ExitValue<T>, JoinError> {
        Ok(match scheduler::join(&self.task)? {
            ExitValue::Completed(value) => match value.downcast::<T>() {
                Ok(value) => ExitValue::Completed(*value),
                Err(_) => ExitValue::Failed(FailureReason::WrongReturnType),
            },
            ExitValue::Failed(reason) => ExitValue::Failed(reason),
        })
    }
}

/// Asks task `id` to end (re-exported from the scheduler): see `scheduler::kill`.
pub use scheduler::{KillError, kill};
