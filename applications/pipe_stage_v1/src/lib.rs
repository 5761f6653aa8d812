//! The swappable stage of the `pipe_demo` application, **version 1**: how the application opens its pipe, over the
//! rendezvous `demo_channel` (case study (b) of the Theseus paper: joint application-kernel evolution).
//!
//! # Purpose
//! `pipe_demo` (a long-running task that is never restarted) calls [`open_pipe`] at the start of every round,
//! through a relocation that a swap rewrites, and runs the round over the pipe it gets. This version opens it with
//! `demo_channel::open_rendezvous`, which only `demo_channel_rendezvous` has; version 2 (`pipe_stage_v2`) uses
//! `demo_channel::open_buffered`, which only `demo_channel_buffered` has. So the application stage and the channel
//! cell change together, in one joint swap: `swap demo_channel_rendezvous demo_channel_buffered pipe_stage_v1
//! pipe_stage_v2`; swapping the channel alone is refused, naming `demo_channel::open_rendezvous`.
#![no_std]
#![forbid(unsafe_code)]

use demo_channel::{PipeReceiver, PipeSender};

/// Opens the pipe for one round: a rendezvous pipe (each send waits for the receiver).
#[inline(never)]
pub fn open_pipe() -> (PipeSender, PipeReceiver) {
    demo_channel::open_rendezvous()
}
