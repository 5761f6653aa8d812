//! Demonstration channel cell, **buffered** version: a pipe of `u64` items whose `send` returns at once while
//! there is room in the buffer (case study (b) of the Theseus paper: joint application-kernel evolution).
//!
//! # Purpose
//! The replacement for `demo_channel_rendezvous` (same library name `demo_channel`, same [`PipeSender`] and
//! [`PipeReceiver`]), with a changed interface: pipes are opened with [`open_buffered`] instead of
//! `open_rendezvous`. It is therefore swapped in together with the application stage that opens its pipes
//! (`pipe_stage_v2`), in one transaction: `swap demo_channel_rendezvous demo_channel_buffered pipe_stage_v1
//! pipe_stage_v2`. See `demo_channel_rendezvous` for why this is an application-kind cell.
//!
//! # How the test uses it
//! After the joint swap, the running `pipe_demo` reports that the producer sent every item of a round before the
//! consumer started (the buffer holds [`open_buffered`]'s capacity, 8 in `pipe_stage_v2`).
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

/// Opens a pipe that buffers up to `capacity` items (at least 1): `send` waits only while the buffer is full.
#[inline(never)]
pub fn open_buffered(capacity: usize) -> (PipeSender, PipeReceiver) {
    let (sender, receiver) = channel::bounded::<u64>(capacity.max(1));
    (PipeSender { sender }, PipeReceiver { receiver })
}

/// The semantics of the pipes this cell opens, for reports: `buffered`.
#[inline(never)]
pub fn semantics() -> String {
    String::from("buffered")
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
