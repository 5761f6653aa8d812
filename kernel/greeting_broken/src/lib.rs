//! A greeting cell that does not provide `greet`: swapping it for `greeting_v1` must fail verification
//! (a dependent, `hello`, uses `greeting::greet`) and leave the running system exactly as it was.
#![no_std]

/// Not the function dependents need.
#[inline(never)]
pub fn salute() -> &'static str {
    "Salute from the broken greeting"
}
