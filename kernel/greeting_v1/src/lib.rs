//! Demonstration library cell for live swapping, version 1.
//!
//! `greeting_v1` and `greeting_v2` are two packages with the same library name (`greeting`), so their symbols
//! differ only in the crate hash and the swap machinery pairs them by hash-free name. `swap greeting_v1 greeting_v2`
//! makes an already-loaded `hello` print the version-2 text without reloading `hello`.
//!
//! The swappable function is `#[inline(never)]`: a caller that inlined it would keep the old behaviour after a swap.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;

/// Returns the greeting for `name`. Version 1's text is "Hello from greeting v1, {name}!".
#[inline(never)]
pub fn greet(name: &str) -> String {
    format!("Hello from greeting v1, {name}!")
}
