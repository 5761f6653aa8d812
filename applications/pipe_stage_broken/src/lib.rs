//! A broken `pipe_stage` (case study (b)'s failing joint swap): it lacks [`open_pipe`]'s replacement (its function
//! is named `open_buffered_pipe`), so `swap demo_channel_rendezvous demo_channel_buffered pipe_stage_v1
//! pipe_stage_broken` must fail on the second pair, naming `pipe_stage::open_pipe`, and leave both old cells in
//! place (the first pair is not applied either: one transaction).
#![no_std]
#![forbid(unsafe_code)]

use demo_channel::{PipeReceiver, PipeSender};

/// Not `open_pipe`: the `pipe_demo` application's call has no equivalent here.
#[inline(never)]
pub fn open_buffered_pipe() -> (PipeSender, PipeReceiver) {
    demo_channel::open_buffered(1)
}
