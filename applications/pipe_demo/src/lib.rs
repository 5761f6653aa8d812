//! The pipe_demo application: runs rounds of a producer/consumer pipe through the swappable `pipe_stage` cell, in
//! one task, so that the pipe's channel cell and the application stage can be evolved together while it runs
//! (case study (b) of the Theseus paper: joint application-kernel evolution).
//!
//! Usage: `pipe_demo [ROUNDS]` (default 40, at most 1000), meant for the background (`pipe_demo 40 &`). Every
//! [`ROUND_INTERVAL_MS`] it calls `pipe_stage::round` (a relocation that a swap rewrites) and prints the round's
//! report only when it differs from the previous one, so the output shows each change of behaviour once:
//! `pipe_demo: round 1: rendezvous pipe: ...` before `swap demo_channel_rendezvous demo_channel_buffered
//! pipe_stage_v1 pipe_stage_v2`, `pipe_demo: round N: buffered pipe: ...` after it. At the end it prints how many
//! rounds each kind of pipe served, all in this one task. Returns 0, or 1 on bad arguments.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

/// Pause between rounds (milliseconds).
pub const ROUND_INTERVAL_MS: u64 = 250;
/// Most rounds accepted.
const MAX_ROUNDS: u64 = 1000;

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
        let report = pipe_stage::round(number);
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
