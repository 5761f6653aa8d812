//! Restartable tasks for applications: [`spawn_restartable`] runs an idempotent closure as a task that is
//! started again from the beginning each time it fails (panic, CPU exception, kill), up to a restart limit, and
//! [`RestartableTask::wait`] gives back the value of the run that completed.
//!
//! Built on `spawn::TaskBuilder::spawn_restartable` (the failing incarnation respawns the next one once its stack
//! was unwound). The value crosses from the task to the waiter through a slot shared by every incarnation: only a
//! run that returns fills it, so a failed run leaves nothing behind.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

/// How often [`RestartableTask::wait`] looks whether the series ended.
const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Why a restartable task gave no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartError {
    /// The first incarnation could not be created (e.g. no memory for its stack); the scheduler's reason.
    Spawn(String),
    /// Every allowed run failed: the number of restarts made and the last run's failure.
    GaveUp {
        /// Restarts made (the limit, or fewer if a respawn itself failed).
        restarts: usize,
        /// Why the last run failed.
        last_failure: String,
    },
    /// The caller cannot wait for the series (it is one of the series' own runs); the join's reason.
    Wait(String),
}

impl fmt::Display for RestartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartError::Spawn(reason) => write!(f, "spawn failed: {reason}"),
            RestartError::GaveUp { restarts, last_failure } => {
                write!(f, "failed after {restarts} restarts: {last_failure}")
            }
            RestartError::Wait(reason) => write!(f, "cannot wait for the restartable task: {reason}"),
        }
    }
}

/// A task started with [`spawn_restartable`]. Dropping it before the series ended (without [`Self::wait`] or
/// [`Self::wait_with_deadline`], e.g. when the owner fails and unwinds) cancels the series and waits for it: the
/// run going is killed, no other starts, and the drop returns once that run has unwound and exited. So a failed
/// owner leaves no runs behind, and its own end comes after theirs (a shell that joins the owner reports it, and
/// prompts, after every run's failure was logged).
pub struct RestartableTask<T> {
    handle: spawn::RestartableHandle,
    value: Arc<spin::Mutex<Option<T>>>,
}

impl<T> Drop for RestartableTask<T> {
    fn drop(&mut self) {
        if self.handle.is_done() {
            return;
        }
        self.handle.cancel();
        // Sleeps in a join of the killed run (a killed task unwinds at its next kill point, or is ended by the
        // kill's deferral limit). Fails only from one of the series' own runs, which cannot wait for itself.
        let _ = self.handle.wait();
    }
}

impl<T: Send + 'static> RestartableTask<T> {
    /// The first incarnation's id, as `ps` shows it (a restart gets a new id).
    pub fn first_id(&self) -> u64 {
        self.handle.first_id().value()
    }

    /// How many times the task was restarted so far.
    pub fn restarts(&self) -> usize {
        self.handle.restarts()
    }

    /// Blocks until a run returned or the last allowed run failed, and returns the value of the run that
    /// returned. The caller sleeps in a join of each run in turn (`spawn::RestartableHandle::wait`), so it runs
    /// no code while a run goes.
    ///
    /// # Errors
    /// [`RestartError::GaveUp`] if no run returned; [`RestartError::Wait`] if called from one of the series' own
    /// runs (it would wait for itself).
    pub fn wait(self) -> Result<T, RestartError> {
        self.handle.wait().map_err(|error| RestartError::Wait(format!("{error:?}")))?;
        self.outcome()
    }

    /// [`Self::wait`], with a deadline per run: a run still going `run_limit` after it started (or after this
    /// call, for the run going at the call) is killed, which counts as its failure and starts the next run. A run
    /// can stop making progress without faulting (a fault that made it wait for a message that never comes, or
    /// skipped a wake-up); the deadline turns that into a restart. Pick `run_limit` well above a healthy run's
    /// time.
    ///
    /// # Errors
    /// [`RestartError::GaveUp`] if no run returned.
    pub fn wait_with_deadline(self, run_limit: Duration) -> Result<T, RestartError> {
        let limit_ns = u64::try_from(run_limit.as_nanos()).unwrap_or(u64::MAX);
        let (mut watched, mut since) = (self.handle.current_id(), crate::now_ns());
        let mut killed = None;
        while !self.handle.is_done() {
            crate::sleep(POLL_INTERVAL);
            let current = self.handle.current_id();
            if current != watched {
                (watched, since) = (current, crate::now_ns());
            } else if killed != Some(current) && crate::now_ns().saturating_sub(since) > limit_ns {
                log::warn!(
                    "restartable task {}: run past its {} ms deadline; killing it",
                    current,
                    limit_ns / 1_000_000
                );
                // A run that ended meanwhile cannot be killed; the series' state says what happened.
                let _ = spawn::kill(current);
                killed = Some(current);
            }
        }
        self.outcome()
    }

    /// The value of the run that returned, once the series is done.
    fn outcome(self) -> Result<T, RestartError> {
        if let Some(value) = self.value.lock().take() {
            return Ok(value);
        }
        let last_failure =
            self.handle.last_failure().map_or_else(|| String::from("unknown"), |reason| format!("{reason}"));
        Err(RestartError::GaveUp { restarts: self.handle.restarts(), last_failure })
    }
}

/// Runs `function` as a task named `name` that is started again from the beginning each time it fails, at most
/// `restarts` times; it shares the caller's standard input, output and environment. `function` must be
/// idempotent (a failed run may have done part of its work): it is called once per run.
///
/// # Errors
/// [`RestartError::Spawn`] if the first task could not be created.
pub fn spawn_restartable<F, T>(name: &str, restarts: usize, function: F) -> Result<RestartableTask<T>, RestartError>
where
    F: Fn() -> T + Send + Sync + 'static,
    T: Send + 'static,
{
    let value: Arc<spin::Mutex<Option<T>>> = Arc::new(spin::Mutex::new(None));
    let slot = value.clone();
    let handle = spawn::TaskBuilder::new(name)
        .inherit_io()
        .spawn_restartable(restarts, move || {
            let result = function();
            *slot.lock() = Some(result);
        })
        .map_err(|error| RestartError::Spawn(format!("{error}")))?;
    Ok(RestartableTask { handle, value })
}

/// Runs an application's whole work, `body(&args)`, as a restartable task (named `NAME-main` after `args[0]`),
/// started again from the beginning each time it fails, at most `restarts` times, and returns its exit code; for
/// `main` to call as its only statement (`app_io::run_restartable_main(args, 3, run)`). The calling task, the
/// one the shell started and waits for, only waits (blocked, running no code), so a fault in the application's
/// work fails a run that is started again instead of the application. For an application whose work is
/// idempotent: it prints its result only at its end and keeps no state outside itself. A run that wants a fresh
/// start (e.g. it found its own inputs damaged) fails on purpose, with a panic.
///
/// Prints `NAME: failed after N restarts: REASON` and returns [`crate::exit_code::FAILURE`] if every run failed
/// or none could be spawned.
pub fn run_restartable_main(args: alloc::vec::Vec<String>, restarts: usize, body: fn(&[String]) -> isize) -> isize {
    let name = String::from(args.first().map_or("application", String::as_str));
    let task_name = format!("{name}-main");
    match spawn_restartable(&task_name, restarts, move || body(&args)).and_then(RestartableTask::wait) {
        Ok(code) => code,
        Err(error) => {
            crate::println!("{name}: {error}");
            crate::exit_code::FAILURE
        }
    }
}
