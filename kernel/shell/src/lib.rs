//! The serial shell: a prompt, line input with editing, builtin commands, and applications run by name.
//!
//! Builtins: `help`, `ns` (loaded cells), `ls` (object files), `swap OLD NEW [OLD NEW ...]` (live cell swapping),
//! `exit [CODE]` (leave QEMU through isa-debug-exit). Any other first word names an application: its object file
//! `a-<name>.o` is loaded on demand into the application namespace and its `<name>::main(args)` is called.
//!
//! Control flow of [`run`]:
//! 1. print the prompt `theseus> `;
//! 2. read a line ([`line_editor`]), split it into words;
//! 3. run the builtin or the application; errors are printed, and the shell goes on;
//! 4. repeat.
#![no_std]

extern crate alloc;

mod cells;
mod commands;
mod line_editor;

use alloc::string::String;
use alloc::vec::Vec;

/// The prompt printed before each line. It ends in `> ` with no newline, which the test harness waits for.
pub const PROMPT: &str = "theseus> ";

/// Runs the shell on the serial console forever.
pub fn run() -> ! {
    serial::write_str("\nTheseus-style cell OS: type `help` for commands.\n");
    loop {
        serial::write_str(PROMPT);
        match line_editor::read_line() {
            line_editor::LineInput::Interrupted => continue,
            line_editor::LineInput::Line(line) => {
                let words: Vec<String> = line.split_whitespace().map(String::from).collect();
                if !words.is_empty() {
                    commands::execute(&words);
                }
            }
        }
    }
}
