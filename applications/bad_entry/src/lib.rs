//! A deliberately malformed application, for the `shell` scenario: its `main` takes no arguments and returns a
//! `u32`, so it cannot be declared with `app_io::entry!(main)` (the compiler refuses that) and it declares no
//! entry at all. Typing `bad_entry` must give `bad_entry: error: not an application: ...` and run nothing.
#![no_std]
#![forbid(unsafe_code)]

/// A `main` of the wrong type (no `args`, returns `u32`). If the shell ever called it, it would print the line
/// below, which the scenario rejects.
pub fn main() -> u32 {
    app_io::println!("bad_entry ran although it has no typed entry");
    7
}
