//! The pipe_demo application: runs rounds of a producer/consumer pipe, in one task, over a pipe that the swappable
//! `pipe_stage` cell opens from the swappable `demo_channel` cell, so that both can be evolved together while it
//! runs (case study (b) of the Theseus paper: joint application-kernel evolution).
//!
//! Usage: `pipe_demo [ROUNDS]` (default 40, at most 1000), meant for the background (`pipe_demo 40 &`).
//!
//! Each round (see [`round`]): `pipe_stage::open_pipe()` opens a pipe; a producer task sends [`ITEMS_PER_ROUND`]
//! items; this task waits [`CONSUMER_DELAY_MS`], notes how many sends had already returned, then receives every
//! item. Over a rendezvous pipe no send returns before the consumer receives (`producer sent 0 of 5 items before
//! the consumer started`); over a buffered one the producer does not wait (`5 of 5`). Every call into
//! `pipe_stage` and `demo_channel` goes through a relocation in this cell, which the joint swap `swap
//! demo_channel_rendezvous demo_channel_buffered pipe_stage_v1 pipe_stage_v2` rewrites: the next round uses the
//! new cells, in this same task. A round's report is printed only when it differs from the previous one, so each
//! change of behaviour shows once; at the end the task prints how many rounds each kind of pipe served. Returns 0,
//! or 1 on bad arguments.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

/// Items the producer sends per round.
pub const ITEMS_PER_ROUND: u64 = 5;
/// How long the consumer waits before it starts receiving (milliseconds): time for the producer to send whatever
/// the pipe lets it send without a receiver.
pub const CONSUMER_DELAY_MS: u64 = 100;
/// Pause between rounds (milliseconds).
pub const ROUND_INTERVAL_MS: u64 = 250;
/// Most rounds accepted.
const MAX_ROUNDS: u64 = 1000;

app_io::entry!(main);

/// Entry point (see the crate documentation).
pub fn main(args: Vec<String>) -> isize {
    let rounds = match args.get(1).map(|text| text.parse::<u64>()) {
        None => 40,
        Some(Ok(rounds)) if (1..=MAX_ROUNDS).contains(&rounds) => rounds,
        Some(_) => {
            app_io::println!("usage: pipe_demo [ROUNDS 1..={MAX_ROUNDS}]");
            return 1;
        }
    };
    let (mut rendezvous, mut buffered, mut other) = (0, 0, 0);
    let mut previous = String::new();
    for number in 1..=rounds {
        let report = round();
        if report.starts_with("rendezvous") {
            rendezvous += 1;
        } else if report.starts_with("buffered") {
            buffered += 1;
        } else {
            other += 1;
        }
        if report != previous {
            app_io::println!("pipe_demo: round {number}: {report}");
            previous = report;
        }
        app_io::sleep(Duration::from_millis(ROUND_INTERVAL_MS));
    }
    app_io::println!(
        "pipe_demo: {rounds} rounds in one task: {rendezvous} rendezvous, {buffered} buffered, {other} other"
    );
    0
}

/// Runs one round (see the crate documentation) and returns its one-line report.
fn round() -> String {
    let (sender, receiver) = pipe_stage::open_pipe();
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
        Err(error) => return format!("cannot spawn the producer: {error}"),
    };
    app_io::sleep(Duration::from_millis(CONSUMER_DELAY_MS));
    let sent_early = sent.load(Ordering::Relaxed);
    let mut received = 0;
    while received < ITEMS_PER_ROUND && receiver.receive().is_ok() {
        received += 1;
    }
    if let Err(error) = producer.join() {
        return format!("the producer failed: {error}");
    }
    format!(
        "{} pipe: producer sent {sent_early} of {ITEMS_PER_ROUND} items before the consumer started, {received} received",
        demo_channel::semantics()
    )
}
