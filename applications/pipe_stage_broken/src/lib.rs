//! A broken `pipe_stage` (case study (b)'s failing joint swap): it lacks [`round`]'s replacement (its function is
//! named `run_round`), so `swap demo_channel_rendezvous demo_channel_buffered pipe_stage_v1 pipe_stage_broken` must
//! fail on the second pair, naming `pipe_stage::round`, and leave both old cells in place (the first pair, which
//! would have been fine alone with a matching stage, is not applied either).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;

/// Not `round`: the `pipe_demo` application's call has no equivalent here. Reports the channel's semantics.
#[inline(never)]
pub fn run_round(_number: u64) -> String {
    let (_sender, _receiver) = demo_channel::open_buffered(1);
    demo_channel::semantics()
}
