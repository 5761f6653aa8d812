//! `head [N]`: a filter that copies the first N lines of standard input (default 10) and exits.
//!
//! It exits without reading the rest, so a writer before it in a pipeline (`yes | head 3`) finds its output
//! closed and ends.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

app_io::entry!(main);

/// Entry point: `args[1]` is the number of lines. Returns 0, or 2 for a count that is not a number.
pub fn main(args: Vec<String>) -> isize {
    let count = match args.get(1).map(|count| count.parse::<usize>()) {
        None => 10,
        Some(Ok(count)) => count,
        Some(Err(_)) => {
            app_io::println!("usage: head [N] (N is a number of lines)");
            return app_io::exit_code::USAGE;
        }
    };
    let stdin = app_io::stdin();
    for _ in 0..count {
        match stdin.read_line() {
            Some(line) => app_io::println!("{line}"),
            None => break,
        }
    }
    app_io::exit_code::SUCCESS
}
