//! The swappable stage of the `pipe_demo` application, **version 1**: one round of a producer/consumer pipe over a
//! rendezvous `demo_channel` (case study (b) of the Theseus paper: joint application-kernel evolution).
//!
//! # Purpose
//! `pipe_demo` (a long-running task that is never restarted) calls [`round`] once per round through a relocation
//! that a swap rewrites. Each round opens a pipe with `demo_channel::open_rendezvous`, spawns a producer task that
//! sends [`ITEMS_PER_ROUND`] items, waits [`CONSUMER_DELAY_MS`], notes how many sends had returned, then receives
//! every item. With a rendezvous pipe no send returns before the consumer receives, so the report says `producer
//! sent 0 of 5 items before the consumer started`.
//!
//! Version 2 (`pipe_stage_v2`) opens buffered pipes with `demo_channel::open_buffered`, which only
//! `demo_channel_buffered` has, so the two cells change together in one joint swap.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

/// Items the producer sends per round.
pub const ITEMS_PER_ROUND: u64 = 5;
/// How long the consumer waits before it starts receiving (milliseconds): time for the producer to send whatever
/// the pipe lets it send without a receiver.
pub const CONSUMER_DELAY_MS: u64 = 100;

/// Runs round `number` (1-based) and returns its one-line report (owned text: nothing in it points into this
/// cell, which a swap replaces).
#[inline(never)]
pub fn round(number: u64) -> String {
    let (sender, receiver) = demo_channel::open_rendezvous();
    let sent = Arc::new(AtomicU64::new(0));
    let sent_by_producer = sent.clone();
    let producer = app_io::spawn("pipe-producer", move || {
        for item in 0..ITEMS_PER_ROUND {
            if sender.send(item).is_err() {
                break;
            }
            sent_by_producer.fetch_add(1, Ordering::Relaxed);
        }
    });
    let producer = match producer {
        Ok(producer) => producer,
        Err(error) => return format!("round {number}: cannot spawn the producer: {error}"),
    };
    app_io::sleep(Duration::from_millis(CONSUMER_DELAY_MS));
    let sent_early = sent.load(Ordering::Relaxed);
    let mut received = 0;
    while received < ITEMS_PER_ROUND && receiver.receive().is_ok() {
        received += 1;
    }
    if let Err(error) = producer.join() {
        return format!("round {number}: the producer failed: {error}");
    }
    format!(
        "{} pipe: producer sent {sent_early} of {ITEMS_PER_ROUND} items before the consumer started, {received} received",
        demo_channel::semantics()
    )
}
