//! The swappable stage of the `pipe_demo` application, **version 2**: how the application opens its pipe, over the
//! buffered `demo_channel` (case study (b) of the Theseus paper: joint application-kernel evolution).
//!
//! # Purpose
//! The replacement for `pipe_stage_v1` (same library name `pipe_stage`, same [`open_pipe`]): it opens a buffered
//! pipe with `demo_channel::open_buffered(`[`CAPACITY`]`)`, which only `demo_channel_buffered` provides, so it is
//! swapped in together with that channel cell (`swap demo_channel_rendezvous demo_channel_buffered pipe_stage_v1
//! pipe_stage_v2`) while `pipe_demo` runs. The buffer holds a whole round, so the producer no longer waits for
//! each item: `pipe_demo`'s report says `producer sent 5 of 5 items before the consumer started`.
#![no_std]
#![forbid(unsafe_code)]

use demo_channel::{PipeReceiver, PipeSender};

/// The pipe's buffer capacity (items): a whole round of `pipe_demo` (5 items) fits.
pub const CAPACITY: usize = 8;

/// Opens the pipe for one round: a buffered pipe of [`CAPACITY`] items.
#[inline(never)]
pub fn open_pipe() -> (PipeSender, PipeReceiver) {
    demo_channel::open_buffered(CAPACITY)
}
