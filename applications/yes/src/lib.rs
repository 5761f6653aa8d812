//! `yes [TEXT [COUNT]]`: writes TEXT (default `y`) and a newline COUNT times (default: until its reader exits).
//!
//! A source for pipes: `yes abc 5000 | wc` moves 20,000 bytes through a pipe. When the reading end exits early
//! (`yes | head 3`), the next write fails with `OutputClosed` and `yes` stops with status 0.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

app_io::entry!(main);

/// Entry point: `args[1]` is the text, `args[2]` the count. Returns 0, or 2 for a count that is not a number.
pub fn main(args: Vec<String>) -> isize {
    let text = args.get(1).map_or("y", String::as_str);
    let count = match args.get(2).map(|count| count.parse::<u64>()) {
        None => u64::MAX,
        Some(Ok(count)) => count,
        Some(Err(_)) => {
            app_io::println!("usage: yes [TEXT [COUNT]] (COUNT is a number of lines)");
            return app_io::exit_code::USAGE;
        }
    };
    let stdout = app_io::stdout();
    for _ in 0..count {
        if stdout.write_line(text).is_err() {
            // Nobody reads any more: done, as `yes` is when its pipe closes.
            break;
        }
    }
    app_io::exit_code::SUCCESS
}
