//! The serial shell: a prompt, line input with editing, builtin commands, and applications run by name.
//!
//! Builtins: `help [COMMAND]`, `echo`, `clear`, `uptime`, `date`, `mem`, `reboot`, `shutdown`, `dmesg`, `log [LEVEL]`, `deps CELL|--dot`, `cat FILE`, `machine` (firmware, CPU, memory, ACPI, PCI, framebuffer and consoles found) (the console shows
//! warnings and errors once the prompt appears; the kernel log ring keeps everything), `ns` (loaded cells), `ls` (object files), `swap OLD NEW [OLD NEW ...]` (live cell swapping),
//! `ps`, `kill ID`, `prio ID PRIORITY`, `bt ID`, `faults`, `inject pf|gp|ud|de` (a CPU exception in a new task:
//! the privilege applications lack), `test`, `bench`, `exit [CODE]` (leave QEMU through isa-debug-exit). Any
//! other first word names an application: its object file `a-<name>.o` is loaded on demand into the application
//! namespace and its `<name>::main(args)` runs as a task; the shell waits for it (Ctrl-C kills it, Ctrl-Z stops
//! it: `scheduler::stop` parks the task until `fg`/`bg` resume it), or, with a trailing `&`, runs it in the
//! background and reports its end before a later prompt. `jobs`, `fg [ID]` and `bg [ID]` act on the job table
//! (`jobs.rs`). `a | b | c` runs applications as one pipeline job, each stage's output feeding the next
//! through a bounded pipe (`pipeline.rs`); `export NAME=VALUE`, `unset NAME` and `env` manage the session's
//! environment (`environment.rs`), which `$NAME` / `${NAME}` expand from and applications inherit.
//!
//! Control flow of [`run`]:
//! 1. print the prompt `theseus> `;
//! 2. read a line with the `line_editor` state machine (editing keys, history, Tab completion of commands,
//!    applications and cell names); a line over its limit is refused whole;
//! 3. parse it with `command_line` (quotes, backslash escapes, `$?`, `$NAME`, `|`, a trailing `&`); a syntax
//!    error is printed and sets `$?` to 2, as does a builtin in a pipeline of several commands;
//! 4. run the builtin, the application or the pipeline; errors are printed, `$?` becomes its status (a
//!    pipeline's is its last stage's), and the shell goes on;
//! 5. repeat.
#![no_std]

extern crate alloc;

mod cat;
mod cells;
mod commands;
mod console;
mod deps;
mod environment;
mod inject;
mod jobs;
mod log_commands;
mod machine;
mod pipeline;
mod sections;
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
    let mut environment = environment::Environment::default();
    let mut output = Vec::new();
    let mut last_status: isize = 0;
    let mut dropped_seen = 0;
    loop {
        jobs.report_finished();
        report_dropped_input(&mut dropped_seen);
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
                line_editor::Event::TooLong { dropped } => {
                    crate::console::write_fmt(format_args!(
                        "shell: line too long: {dropped} bytes over the limit of {} were dropped; nothing was run\n",
                        line_editor::MAX_LINE_LENGTH
                    ));
                    last_status = STATUS_SYNTAX_ERROR;
                    break None;
                }
            }
        };
        if let Some(line) = line {
            last_status = run_line(&line, last_status, &mut jobs, &mut environment);
        }
    }
}

/// Says how many input bytes the serial receive ring dropped (it was full: a flood of input) since the last
/// prompt; `seen` is the count already reported.
fn report_dropped_input(seen: &mut usize) {
    let dropped = serial_input::dropped_bytes();
    if dropped > *seen {
        crate::console::write_fmt(format_args!(
            "shell: {} input bytes dropped (the input ring was full)\n",
            dropped - *seen
        ));
        *seen = dropped;
    }
}

/// `$?` after a line that could not be parsed or run as written (too long, bad quoting, a builtin in a pipe).
const STATUS_SYNTAX_ERROR: isize = 2;

/// Parses and runs one line; returns the new `$?` (unchanged for a blank line).
fn run_line(
    line: &str,
    last_status: isize,
    jobs: &mut jobs::Jobs,
    environment: &mut environment::Environment,
) -> isize {
    let lookup = |name: &str| environment.lookup(name);
    let pipeline = match command_line::parse_with(line, last_status, &lookup) {
        Ok(Some(pipeline)) => pipeline,
        Ok(None) => return last_status,
        Err(error) => {
            crate::console::write_fmt(format_args!("shell: syntax error: {error}\n"));
            return STATUS_SYNTAX_ERROR;
        }
    };
    if let [words] = pipeline.commands.as_slice() {
        return commands::execute(words, pipeline.background, jobs, environment);
    }
    if let Some(builtin) = pipeline.commands.iter().find(|args| commands::is_builtin(&args[0])) {
        crate::console::write_fmt(format_args!(
            "shell: `{}` is a builtin; only applications can be stages of a pipeline\n",
            builtin[0]
        ));
        return STATUS_SYNTAX_ERROR;
    }
    commands::run_applications(&pipeline.commands, pipeline.background, jobs, environment)
}

/// Tab-completion candidates: commands and applications for the first word, cell and object file names for the
/// others.
fn complete(before_cursor: &str, _word: &str) -> Vec<String> {
    if before_cursor.trim_start().contains(' ') {
        let mut names = cells::cell_names();
        names.extend(cells::file_names());
        names
    } else {
        let mut names = commands::builtin_names();
        names.extend(cells::names());
        names
    }
}
