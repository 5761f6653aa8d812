//! `upper`: a filter that copies standard input to standard output in upper case (ASCII and Unicode letters).
//!
//! `yes abc 3 | upper` prints `ABC` three times; typed at the console, each line comes back in upper case until
//! Ctrl-D.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

app_io::entry!(main);

/// Entry point: takes no arguments. Returns 0 at the end of input, 2 if given arguments.
pub fn main(args: Vec<String>) -> isize {
    if args.len() > 1 {
        app_io::println!("usage: upper (reads standard input)");
        return app_io::exit_code::USAGE;
    }
    for line in app_io::stdin().lines() {
        app_io::println!("{}", line.to_uppercase());
    }
    app_io::exit_code::SUCCESS
}
