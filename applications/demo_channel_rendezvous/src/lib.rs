//! Demonstration channel cell, **rendezvous** version: a pipe of `u64` items whose `send` returns only once the
//! receiver has taken the item (case study (b) of the Theseus paper: joint application-kernel evolution).
//!
//! # Purpose
//! `demo_channel_rendezvous` and `demo_channel_buffered` are two packages with one library name (`demo_channel`).
//! Their interfaces differ on purpose: this version opens pipes with [`open_rendezvous`], the buffered one with
//! `open_buffered(capacity)`, so the application that uses the pipe (`pipe_stage_v1`, which calls
//! `open_rendezvous`) must change together with it: `swap demo_channel_rendezvous demo_channel_buffered` alone is
//! refused (its dependent `pipe_stage_v1` uses `demo_channel::open_rendezvous`), while the joint swap
//! `swap demo_channel_rendezvous demo_channel_buffered pipe_stage_v1 pipe_stage_v2` replaces both in one
//! transaction. [`PipeSender`] and [`PipeReceiver`] have the same layout and method paths in both versions.
//!
//! # Why an application cell
//! The pipe is a thin, safe wrapper over the kernel `channel` cell; it is built as an application-kind cell (under
//! `applications/`, no `unsafe`) because one swap transaction works inside one namespace: the shell swaps in the
//! application namespace when every old cell is loaded there, so the channel cell and its application must live
//! in the same namespace to be swapped together.
//!
//! # How the test uses it
//! The `joint-swap` QEMU scenario runs `pipe_demo 60 &`; each round reports how many items the producer could
//! send before the consumer started (0 with this version: each send waits for the receiver).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;

/// The pipe's other end is gone (every receiver, for `send`; every sender and no item left, for `receive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeClosed;

/// The sending end of a pipe.
pub struct PipeSender {
    sender: channel::Sender<u64>,
}

/// The receiving end of a pipe.
pub struct PipeReceiver {
    receiver: channel::Receiver<u64>,
}

/// Opens a rendezvous pipe: each `send` waits until the receiver has taken the item.
#[inline(never)]
pub fn open_rendezvous() -> (PipeSender, PipeReceiver) {
    let (sender, receiver) = channel::rendezvous::<u64>();
    (PipeSender { sender }, PipeReceiver { receiver })
}

/// The semantics of the pipes this cell opens, for reports: `rendezvous`.
#[inline(never)]
pub fn semantics() -> String {
    String::from("rendezvous")
}

impl PipeSender {
    /// Sends `item`, waiting as the pipe's semantics say.
    ///
    /// # Errors
    /// [`PipeClosed`] if the receiver is gone (the item is dropped).
    #[inline(never)]
    pub fn send(&self, item: u64) -> Result<(), PipeClosed> {
        self.sender.send(item).map_err(|_returned_item| PipeClosed)
    }
}

impl PipeReceiver {
    /// Waits for the next item.
    ///
    /// # Errors
    /// [`PipeClosed`] if every sender is gone and nothing is left.
    #[inline(never)]
    pub fn receive(&self) -> Result<u64, PipeClosed> {
        self.receiver.receive().map_err(|_| PipeClosed)
    }
}
