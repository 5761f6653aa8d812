//! The serial shell: a prompt, line input with editing, builtin commands, and applications run by name.
//!
//! Builtins: `help [COMMAND]`, `echo`, `clear`, `uptime`, `date`, `mem`, `reboot`, `shutdown`, `dmesg`, `log [LEVEL]`, `deps CELL|--dot`, `cat FILE` (the console shows
//! warnings and errors once the prompt appears; the kernel log ring keeps everything), `ns` (loaded cells), `ls` (object files), `swap OLD NEW [OLD NEW ...]` (live cell swapping),
//! `ps`, `kill ID`, `prio ID PRIORITY`, `bt ID`, `faults`, `inject pf|gp|ud|de` (a CPU exception in a new task:
//! the privilege applications lack), `test`, `bench`, `exit [CODE]` (leave QEMU through isa-debug-exit). Any
//! other first word names an application: its object file `a-<name>.o` is loaded on demand into the application
//! namespace and its `<name>::main(args)` runs as a task; the shell waits for it (Ctrl-C kills it), or, with a
//! trailing `&`, runs it in the background and reports its end before a later prompt.
//!
//! Control flow of [`run`]:
//! 1. print the prompt `theseus> `;
//! 2. read a line with the `line_editor` state machine (editing keys, history, Tab completion of commands,
//!    applications and cell names), split it into words;
//! 3. run the builtin or the application; errors are printed, and the shell goes on;
//! 4. repeat.
#![no_std]

extern crate alloc;

mod cat;
mod cells;
mod commands;
mod console;
mod deps;
mod inject;
mod jobs;
mod log_commands;
mod system_commands;

use alloc::string::String;
use alloc::vec::Vec;

/// The prompt printed before each line. It ends in `> ` with no newline, which the test harness waits for.
pub const PROMPT: &str = "theseus> ";

pub use console::{Console, SetWakeHook};

/// Runs the shell on the serial console forever.
pub fn run() -> ! {
    run_on(Console::serial())
}

/// Runs the shell on `console` forever (the current task's console from now on).
pub fn run_on(console: Console) -> ! {
    console::register(console);
    crate::console::write_str("\nTheseus-style cell OS: type `help` for commands.\n");
    // From here on the console shows warnings and errors only; `dmesg` has the rest, `log LEVEL` changes it.
    logger::set_console_level(log_commands::SHELL_CONSOLE_LEVEL);
    let mut editor = line_editor::LineEditor::new(PROMPT);
    let mut jobs = jobs::Jobs::default();
    let mut output = Vec::new();
    loop {
        jobs.report_finished();
        crate::console::write_str(PROMPT);
        let line = loop {
            let byte = jobs::read_byte(&mut jobs);
            output.clear();
            let event = editor.feed(byte, &mut output, &complete);
            crate::console::write_bytes(&output);
            match event {
                line_editor::Event::Pending => {}
                line_editor::Event::Interrupted => break None,
                line_editor::Event::Line(line) => break Some(line),
            }
        };
        if let Some(line) = line {
            let mut words: Vec<String> = line.split_whitespace().map(String::from).collect();
            let background = words.last().is_some_and(|word| word == "&");
            if background {
                words.pop();
            }
            if !words.is_empty() {
                commands::execute(&words, background, &mut jobs);
            }
        }
    }
}

/// Tab-completion candidates: commands and applications for the first word, cell names for the others.
fn complete(before_cursor: &str, _word: &str) -> Vec<String> {
    if before_cursor.trim_start().contains(' ') {
        cells::cell_names()
    } else {
        let mut names = commands::builtin_names();
        names.extend(cells::names());
        names
    }
}
