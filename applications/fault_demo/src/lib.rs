//! `fault_demo panic|pf|gp|ud|de|overflow`: fails on purpose, in safe Rust, to show that the system survives.
//!
//! The application runs as its own task; the fault-injection cell performs the faulting operation. The task is
//! unwound (every `Drop` on its stack runs, including the one below), ends `Failed(...)`, and the shell that
//! started it reports the failure and goes on. `faults` then lists it.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

/// Prints when dropped, to show that unwinding ran this frame's cleanup.
struct Witness;

impl Drop for Witness {
    fn drop(&mut self) {
        app_io::println!("fault_demo: cleanup ran (Drop of a value on the failed task's stack)");
    }
}

/// Entry point: provokes the named failure (never returns then); 1 on a bad argument.
pub fn main(args: Vec<String>) -> isize {
    let _witness = Witness;
    let value = match args.get(1).map(String::as_str) {
        Some("panic") => panic!("fault_demo: panic on request"),
        Some("pf") => fault_injection::null_dereference(),
        Some("gp") => fault_injection::general_protection(),
        Some("ud") => fault_injection::invalid_opcode(),
        Some("de") => fault_injection::divide_by_zero(),
        Some("overflow") => fault_injection::stack_overflow(0),
        _ => {
            app_io::println!("usage: fault_demo panic|pf|gp|ud|de|overflow");
            return 1;
        }
    };
    app_io::println!("fault_demo: survived the fault?! ({value})");
    0
}
