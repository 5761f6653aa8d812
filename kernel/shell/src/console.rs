//! The console a shell task talks to: COM1 or another input/output pair (the screen and the PS/2 keyboard).
//!
//! Each shell task registers its [`Console`] in [`CONSOLES`] when it starts ([`run_on`](crate::run_on)); the
//! shell's output and input functions below look up the current task's console, and fall back to the serial
//! console for any other task. Output printed by other cells (e.g. `fault_recovery`'s backtraces, applications'
//! `println`) still goes to COM1.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use spin::Mutex;
use task::TaskId;

/// Installs the function an input interrupt calls when bytes may have arrived (it must not block).
pub type SetWakeHook = fn(fn());

/// An input/output pair a shell can run on.
#[derive(Clone, Copy)]
pub struct Console {
    /// Returns the next input byte, or `None` at once if none is waiting.
    pub try_read_byte: fn() -> Option<u8>,
    /// Writes output bytes (terminal bytes: `\n`, `\r`, and the line editor's CSI escapes).
    pub write_bytes: fn(&[u8]),
    /// Installs the input interrupt's wake hook, or `None` if input is polled.
    pub set_wake_hook: Option<SetWakeHook>,
}

impl Console {
    /// COM1, interrupt-driven if `serial_input` was set up.
    pub fn serial() -> Console {
        Console {
            try_read_byte: serial::try_read_byte,
            write_bytes: serial::write_bytes,
            set_wake_hook: serial::is_interrupt_driven().then_some(serial_input::set_wake_hook as SetWakeHook),
        }
    }
}

/// The console of each shell task. Protects: the table. A leaf lock (nothing is called while it is held).
static CONSOLES: Mutex<Vec<(TaskId, Console)>> = Mutex::new(Vec::new());

fn current_task_id() -> Option<TaskId> {
    scheduler::current_task().map(|task| task.id())
}

/// Makes `console` the current task's console.
pub fn register(console: Console) {
    let Some(id) = current_task_id() else { return };
    let mut consoles = CONSOLES.lock();
    consoles.retain(|(task, _)| *task != id);
    consoles.push((id, console));
}

/// The current task's console (the serial console if it registered none).
pub fn current() -> Console {
    let id = current_task_id();
    let found = CONSOLES.lock().iter().find(|(task, _)| Some(*task) == id).map(|(_, console)| *console);
    found.unwrap_or_else(Console::serial)
}

/// Writes `bytes` to the current console.
pub fn write_bytes(bytes: &[u8]) {
    (current().write_bytes)(bytes);
}

/// Writes `text` to the current console.
pub fn write_str(text: &str) {
    write_bytes(text.as_bytes());
}

/// Formats and writes to the current console in one call.
pub fn write_fmt(arguments: core::fmt::Arguments<'_>) {
    let mut text = String::new();
    // Writing into a String only fails if a Display impl fails; print what was formatted then.
    let _ = text.write_fmt(arguments);
    write_str(&text);
}

/// The current console's next input byte, if one is waiting.
pub fn try_read_byte() -> Option<u8> {
    (current().try_read_byte)()
}
