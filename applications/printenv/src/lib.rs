//! `printenv [NAME ...]`: prints the environment the application inherited from the shell session.
//!
//! Without arguments it prints every `NAME=VALUE` (sorted by name); with names, each one's value on a line.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

app_io::entry!(main);

/// Entry point: `args[1..]` are variable names. Returns 0, or 1 if one of them is not set.
pub fn main(args: Vec<String>) -> isize {
    if args.len() < 2 {
        for (name, value) in app_io::vars() {
            app_io::println!("{name}={value}");
        }
        return app_io::exit_code::SUCCESS;
    }
    let mut status = app_io::exit_code::SUCCESS;
    for name in &args[1..] {
        match app_io::env(name) {
            Some(value) => app_io::println!("{value}"),
            None => {
                app_io::println!("printenv: {name} is not set");
                status = app_io::exit_code::FAILURE;
            }
        }
    }
    status
}
