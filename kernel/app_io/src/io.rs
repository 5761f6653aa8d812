//! Standard input, standard output and the environment: [`stdin`], [`stdout`], [`env`], [`vars`].
//!
//! An application's standard output is the console, or the next stage's input when it runs in a pipeline
//! (`a | b`); its standard input is the console (lines typed while it waits for them), the previous stage's
//! output, or nothing (a background job). Its environment is the shell session's (`export NAME=value`) as it was
//! when the application started; tasks and applications it starts inherit all three.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use spawn::stdio::OutputClosed;

/// The current task's standard input: see [`stdin`].
pub struct Stdin {
    _private: (),
}

/// The current task's standard input (a cheap handle; make one wherever it is needed).
pub fn stdin() -> Stdin {
    Stdin { _private: () }
}

impl Stdin {
    /// Blocks for the next line of input and returns it without its `\n` (bytes that are not UTF-8 become
    /// U+FFFD; a line over 4,096 bytes comes back in 4,096-byte pieces). Returns `None` at the end of input: the
    /// previous stage of the pipeline ended (normally, by a panic or killed) and everything it wrote was read,
    /// Ctrl-D was typed at the console, or the task has no input (a background job).
    pub fn read_line(&self) -> Option<String> {
        spawn::stdio::read_line()
    }

    /// The remaining lines of input, as [`read_line`](Self::read_line) returns them, until the end of input.
    pub fn lines(&self) -> impl Iterator<Item = String> {
        core::iter::from_fn(spawn::stdio::read_line)
    }
}

/// The current task's standard output: see [`stdout`].
pub struct Stdout {
    _private: (),
}

/// The current task's standard output (a cheap handle), for writes whose failure the application wants to see;
/// [`print!`](crate::print) and [`println!`](crate::println) write to the same place and ignore failures.
pub fn stdout() -> Stdout {
    Stdout { _private: () }
}

impl Stdout {
    /// Writes `text` (output to a pipe is collected into chunks of up to 1 KiB and sent when a chunk is full,
    /// after a newline when 20 ms passed since the last send, before reading input, and at exit; a full pipe
    /// blocks the writer until the reader catches up).
    ///
    /// # Errors
    /// [`OutputClosed`] if the output is a pipe whose reader has exited; `text` is dropped. The shell then ends
    /// the application, as a Unix `SIGPIPE` would, unless it ends first.
    pub fn write_str(&self, text: &str) -> Result<(), OutputClosed> {
        spawn::stdio::write_output(text.as_bytes())
    }

    /// Writes `line` and a `\n`, as one write.
    ///
    /// # Errors
    /// As [`write_str`](Self::write_str).
    pub fn write_line(&self, line: &str) -> Result<(), OutputClosed> {
        let mut text = String::with_capacity(line.len() + 1);
        text.push_str(line);
        text.push('\n');
        self.write_str(&text)
    }

    /// Sends collected pipe output to the reader now (console output is never held back).
    ///
    /// # Errors
    /// As [`write_str`](Self::write_str).
    pub fn flush(&self) -> Result<(), OutputClosed> {
        match spawn::stdio::current() {
            Some(io) => io.flush(),
            None => Ok(()),
        }
    }
}

/// Writes formatted text to standard output, dropping it if the output is closed. Used by [`print!`](crate::print)
/// and [`println!`](crate::println).
#[doc(hidden)]
pub fn print_fmt(arguments: fmt::Arguments<'_>) {
    let text = match arguments.as_str() {
        Some(text) => String::from(text),
        None => alloc::format!("{arguments}"),
    };
    // A closed output is reported to the shell through the pipe's broken flag; `print!` has no caller to tell.
    let _ = spawn::stdio::write_output(text.as_bytes());
}

/// The value of environment variable `name`, or `None` if it is not set.
pub fn env(name: &str) -> Option<String> {
    let io = spawn::stdio::current()?;
    io.environment().iter().find(|(key, _)| key == name).map(|(_, value)| value.clone())
}

/// Every environment variable as (name, value) pairs, sorted by name (empty for a task started without an
/// environment).
pub fn vars() -> Vec<(String, String)> {
    spawn::stdio::current().map_or_else(Vec::new, |io| io.environment().to_vec())
}
