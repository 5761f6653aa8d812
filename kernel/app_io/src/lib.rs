//! The application-facing API: what safe-Rust applications use instead of `std`.
//!
//! Applications (`applications/*`, `#![forbid(unsafe_code)]`) print with [`println!`] and [`print!`] (the serial
//! console), read the monotonic clock ([`now_ns`]), [`sleep`] and [`yield_now`], and run closures as tasks with
//! [`spawn`], joining them through [`TaskHandle::join`]; [`run`] starts another application by name. Every application declares its entry with
//! [`entry!`]`(main)` (checked by the compiler and again by the shell at load time) and returns an
//! [`exit_code`]. This cell is loaded on demand with the first application
//! that uses it; everything here is a thin, safe wrapper over the kernel cells that do the work.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::time::Duration;

mod apps;
pub mod bench;
mod entry;
pub use apps::run;
pub use entry::{ApplicationEntry, exit_code};

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

/// Runs `function` as a new task named `name` on the least-loaded CPU.
///
/// # Errors
/// A description of why the task could not be created (e.g. no memory for its stack).
pub fn spawn<F, T>(name: &str, function: F) -> Result<TaskHandle<T>, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn::TaskBuilder::new(name)
        .spawn(function)
        .map(|handle| TaskHandle { handle })
        .map_err(|error| format!("{error}"))
}

/// Writes formatted text to the console. Used by [`print!`] and [`println!`].
#[doc(hidden)]
pub fn print_fmt(arguments: core::fmt::Arguments<'_>) {
    serial::write_fmt(arguments);
}

/// Prints formatted text to the console, without a trailing newline.
#[macro_export]
macro_rules! print {
    ($($argument:tt)*) => { $crate::print_fmt(format_args!($($argument)*)) };
}

/// Prints formatted text to the console, followed by a newline.
#[macro_export]
macro_rules! println {
    () => { $crate::print_fmt(format_args!("\n")) };
    ($($argument:tt)*) => { $crate::print_fmt(format_args!("{}\n", format_args!($($argument)*))) };
}
