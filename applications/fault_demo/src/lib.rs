//! `fault_demo panic|overflow|oom`: fails on purpose, in safe Rust, to show that the system survives.
//!
//! The application runs as its own task. Every mode is plain safe Rust (`#![forbid(unsafe_code)]`): a panic, a
//! stack overflow by unbounded recursion (the task touches its stack's guard page), and an allocation far larger
//! than the kernel heap (the allocation-error handler panics). The task is unwound (every `Drop` on its stack
//! runs, including the one below), ends `Failed(...)`, and the shell that started it reports the failure and goes
//! on. `faults` then lists it. The CPU exceptions that need `unsafe` (#PF, #GP, #UD, #DE) are not reachable from
//! an application; the shell's `inject` builtin provokes them.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

/// Bytes `oom` asks for: 1 GiB, far more than the kernel heap (32 MiB) can give.
const OOM_BYTES: usize = 1 << 30;

/// Prints when dropped, to show that unwinding ran this frame's cleanup.
struct Witness;

impl Drop for Witness {
    fn drop(&mut self) {
        app_io::println!("fault_demo: cleanup ran (Drop of a value on the failed task's stack)");
    }
}

/// Recurses with 1 KiB frames until the stack runs into its guard page.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    // Never true (the stack ends long before); it keeps the recursion formally conditional.
    if core::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    let frame = core::hint::black_box([depth; 128]);
    recurse(depth + 1).wrapping_add(frame[(depth % 128) as usize])
}

/// Allocates [`OOM_BYTES`] and touches them (never gets there: the allocation fails).
#[inline(never)]
fn allocate_too_much() -> u64 {
    // `black_box`: the compiler may otherwise drop an allocation whose contents it can compute.
    let buffer: Vec<u8> = core::hint::black_box(alloc::vec![1; core::hint::black_box(OOM_BYTES)]);
    buffer.iter().map(|byte| u64::from(*byte)).sum()
}

app_io::entry!(main);

/// Entry point: provokes the named failure (never returns then); 1 on a bad argument.
pub fn main(args: Vec<String>) -> isize {
    let _witness = Witness;
    let value = match args.get(1).map(String::as_str) {
        Some("panic") => panic!("fault_demo: panic on request"),
        Some("overflow") => recurse(0),
        Some("oom") => allocate_too_much(),
        _ => {
            app_io::println!("usage: fault_demo panic|overflow|oom (CPU exceptions: the shell's `inject`)");
            return 1;
        }
    };
    app_io::println!("fault_demo: survived the fault?! ({value})");
    0
}
