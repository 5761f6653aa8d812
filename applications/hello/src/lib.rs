//! The hello application: prints a greeting made by the swappable `greeting` cell.
//!
//! Usage: `hello [NAME]`. Swapping `greeting_v1` for `greeting_v2` changes what an already-loaded `hello` prints.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

app_io::entry!(main);

/// Entry point: `args[0]` is the command name, `args[1]` an optional name to greet. Returns 0.
pub fn main(args: Vec<String>) -> isize {
    let name = args.get(1).map(String::as_str).unwrap_or("world");
    app_io::println!("{}", greeting::greet(name));
    0
}
