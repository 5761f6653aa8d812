//! In-kernel benchmark of tasking, through [`run`]: prints one line per metric, `bench: <metric>: median N ns`.
//!
//! Metrics (medians over many samples; TSC time):
//! 1. context switch between two tasks pinned to one CPU that yield to each other (per switch, from batches of
//!    100 round trips);
//! 2. spawn + join of an empty task;
//! 3. channel round trip of 1 byte (request on one channel, reply on another) for rendezvous and bounded(1)
//!    channels, with the echo task on the same CPU and, when there are several CPUs, on another one.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use kernel_test_support::spawn_error;
use spawn::TaskBuilder;
use task::ExitValue;

/// Runs every benchmark and prints its line.
///
/// # Errors
/// A message if a task could not be spawned or failed.
#[inline(never)]
pub fn run() -> Result<(), String> {
    let me = scheduler::current_cpu();
    let other = scheduler::online_cpus().find(|&cpu| cpu != me);
    context_switch(other.unwrap_or(me))?;
    spawn_join()?;
    for (kind, capacity) in [("rendezvous", 0), ("bounded(1)", 1)] {
        channel_round_trip(kind, capacity, me, "same CPU")?;
        if let Some(other) = other {
            channel_round_trip(kind, capacity, other, "cross-CPU")?;
        }
    }
    Ok(())
}

/// Prints the median (and range) of `samples` in ns.
fn report(metric: &str, mut samples: Vec<u64>) {
    samples.sort_unstable();
    let median = samples.get(samples.len() / 2).copied().unwrap_or(0);
    let (min, max) = (samples.first().copied().unwrap_or(0), samples.last().copied().unwrap_or(0));
    log::info!("bench: {metric}: median {median} ns (min {min}, max {max}, {} samples)", samples.len());
}

fn completed<T: 'static>(handle: spawn::JoinHandle<T>) -> Result<T, String> {
    match handle.join().map_err(|error| format!("join: {error:?}"))? {
        ExitValue::Completed(value) => Ok(value),
        ExitValue::Failed(reason) => Err(format!("benchmark task failed: {reason}")),
    }
}

fn context_switch(cpu: usize) -> Result<(), String> {
    const BATCHES: usize = 50;
    const ROUND_TRIPS: u64 = 100;
    let partner = TaskBuilder::new("switch partner")
        .pin(cpu)
        .spawn(|| {
            for _ in 0..(BATCHES as u64 + 1) * ROUND_TRIPS {
                scheduler::yield_now();
            }
        })
        .map_err(spawn_error)?;
    let measurer = TaskBuilder::new("switch measurer")
        .pin(cpu)
        .spawn(|| {
            let mut samples = Vec::with_capacity(BATCHES);
            scheduler::yield_now(); // let the partner start
            for _ in 0..BATCHES {
                let started = tsc::now_ns();
                for _ in 0..ROUND_TRIPS {
                    scheduler::yield_now();
                }
                samples.push((tsc::now_ns() - started) / (2 * ROUND_TRIPS));
            }
            samples
        })
        .map_err(spawn_error)?;
    let samples = completed(measurer)?;
    completed(partner)?;
    report(&format!("context switch (yield between 2 tasks on CPU {cpu})"), samples);
    Ok(())
}

fn spawn_join() -> Result<(), String> {
    const SAMPLES: usize = 200;
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = tsc::now_ns();
        let handle = TaskBuilder::new("empty").spawn(|| ()).map_err(spawn_error)?;
        completed(handle)?;
        samples.push(tsc::now_ns() - started);
    }
    report("spawn + join of an empty task", samples);
    Ok(())
}

fn channel_round_trip(kind: &str, capacity: usize, echo_cpu: usize, placement: &str) -> Result<(), String> {
    const SAMPLES: usize = 300;
    let (request_sender, request_receiver) = channel::bounded::<u8>(capacity);
    let (reply_sender, reply_receiver) = channel::bounded::<u8>(capacity);
    let echo = TaskBuilder::new("echo")
        .pin(echo_cpu)
        .spawn(move || {
            while let Ok(byte) = request_receiver.receive() {
                if reply_sender.send(byte).is_err() {
                    break;
                }
            }
        })
        .map_err(spawn_error)?;
    let mut samples = Vec::with_capacity(SAMPLES);
    for index in 0..SAMPLES {
        let byte = index as u8;
        let started = tsc::now_ns();
        request_sender.send(byte).map_err(|_| "echo task gone")?;
        let reply = reply_receiver.receive().map_err(|_| "echo task gone")?;
        samples.push(tsc::now_ns() - started);
        if reply != byte {
            return Err(format!("echo returned {reply}, sent {byte}"));
        }
    }
    drop(request_sender);
    completed(echo)?;
    report(&format!("channel round trip, 1 byte, {kind}, {placement}"), samples);
    Ok(())
}
