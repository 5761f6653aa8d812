//! `wc`: a filter that counts the lines, words and bytes of standard input and prints `LINES WORDS BYTES`.
//!
//! Bytes count each line's UTF-8 bytes plus its newline (a last line without one is counted as if it had one);
//! words are runs of non-whitespace.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

app_io::entry!(main);

/// Entry point: takes no arguments. Prints the counts at the end of input and returns 0 (2 if given arguments).
pub fn main(args: Vec<String>) -> isize {
    if args.len() > 1 {
        app_io::println!("usage: wc (reads standard input)");
        return app_io::exit_code::USAGE;
    }
    let (mut lines, mut words, mut bytes) = (0u64, 0u64, 0u64);
    for line in app_io::stdin().lines() {
        lines += 1;
        words += line.split_whitespace().count() as u64;
        bytes += line.len() as u64 + 1;
    }
    app_io::println!("{lines} {words} {bytes}");
    app_io::exit_code::SUCCESS
}
