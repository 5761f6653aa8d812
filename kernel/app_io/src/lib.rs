//! The application-facing API: what safe-Rust applications use instead of `std`.
//!
//! Purpose: the only kernel-facing dependency an application (`applications/*`, `#![forbid(unsafe_code)]`)
//! needs; everything here is a thin, safe wrapper over the kernel cells that do the work. This cell is loaded on
//! demand with the first application that uses it.
//!
//! What it offers:
//! - **entry and exit codes:** [`entry!`]`(main)` declares `main(args: Vec<String>) -> isize` (checked by the
//!   compiler and again by the shell at load time); `args[0]` is the command name; `main` returns an
//!   [`exit_code`];
//! - **output:** [`print!`] / [`println!`] write to the task's standard output (the console, or the next stage of
//!   a pipeline); [`stdout`] does the same and reports [`OutputClosed`] once a pipe's reader exited;
//! - **input:** [`stdin`]`().read_line()` / `.lines()` (the console, the previous stage, or nothing);
//! - **environment:** [`env`] and [`vars`], the shell session's variables as they were when the app started;
//! - **other work:** [`run`] starts another application by name, [`spawn`] runs a closure as a task
//!   ([`TaskHandle::join`]); both inherit standard input, output and environment; [`spawn_restartable`] runs an
//!   idempotent closure that is started again when it fails ([`RestartableTask::wait`], or
//!   [`RestartableTask::wait_with_deadline`], which also kills and restarts a run that takes too long), and
//!   [`run_restartable_main`] runs an application's whole work that way;
//! - **time:** [`now_ns`], [`sleep`], [`yield_now`];
//! - **raw heap bytes:** [`HeapBlock`], one allocation with no bookkeeping (C's `malloc`/`free`).
//!
//! Control flow of a pipeline stage: the shell gives each application task a `spawn::TaskIo`; [`print!`] and
//! [`stdin`] find the current task's and go through it (`spawn::stdio` holds the pipes and their limits).
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::time::Duration;

mod apps;
pub mod bench;
mod entry;
mod heap;
mod io;
mod restart;
mod system;
pub use apps::run;
pub use entry::{ApplicationEntry, exit_code};
pub use heap::HeapBlock;
#[doc(hidden)]
pub use io::print_fmt;
pub use io::{OutputClosed, Stdin, Stdout, env, stdin, stdout, vars};
pub use restart::{RestartError, RestartableTask, run_restartable_main, spawn_restartable};
pub use system::{
    CellInfo, CellKind, CellNode, DependencyEdge, DependencyGraph, SystemInfoError, TaskInfo, cells, dependency_graph,
    online_cpu_count, scheduler_policy, tasks,
};

/// Nanoseconds since the machine started (monotonic, from the TSC).
pub fn now_ns() -> u64 {
    tsc::now_ns()
}

/// Blocks the calling task for at least `duration` (rounded up to the scheduler's tick).
pub fn sleep(duration: Duration) {
    scheduler::sleep(duration);
}

/// Lets other tasks on this CPU run.
pub fn yield_now() {
    scheduler::yield_now();
}

/// A task started with [`spawn`].
pub struct TaskHandle<T> {
    handle: spawn::JoinHandle<T>,
}

impl<T: Send + 'static> TaskHandle<T> {
    /// The task's id, as `ps` shows it.
    pub fn id(&self) -> u64 {
        self.handle.id().value()
    }

    /// Waits for the task to end and returns its value.
    ///
    /// # Errors
    /// A description of why it failed (panic, exception, killed) or could not be joined.
    pub fn join(self) -> Result<T, String> {
        match self.handle.join() {
            Ok(task::ExitValue::Completed(value)) => Ok(value),
            Ok(task::ExitValue::Failed(reason)) => Err(format!("{reason}")),
            Err(error) => Err(format!("{error:?}")),
        }
    }
}

/// Runs `function` as a new task named `name` on the least-loaded CPU; it shares the caller's standard input,
/// output and environment.
///
/// # Errors
/// A description of why the task could not be created (e.g. no memory for its stack).
pub fn spawn<F, T>(name: &str, function: F) -> Result<TaskHandle<T>, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn::TaskBuilder::new(name)
        .inherit_io()
        .spawn(function)
        .map(|handle| TaskHandle { handle })
        .map_err(|error| format!("{error}"))
}

/// Prints formatted text to standard output (the console, or the next stage of a pipeline), without a trailing
/// newline. Output to a pipe whose reader has exited is dropped (see [`Stdout::write_str`] to see that).
#[macro_export]
macro_rules! print {
    ($($argument:tt)*) => { $crate::print_fmt(format_args!($($argument)*)) };
}

/// Prints formatted text to standard output followed by a newline (as [`print!`]).
#[macro_export]
macro_rules! println {
    () => { $crate::print_fmt(format_args!("\n")) };
    ($($argument:tt)*) => { $crate::print_fmt(format_args!("{}\n", format_args!($($argument)*))) };
}
