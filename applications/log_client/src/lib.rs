//! The log_client application: a client of the `demo_log` service cell that keeps running while the service is
//! fixed live (case study (c); see `kernel/demo_log_buggy`).
//!
//! Usage:
//! - `log_client run` (meant for the background, `log_client run &`): appends [`RECORDS_PER_PHASE`] records through
//!   the current `demo_log` version and says so; then waits (up to [`WAIT_FOR_FIX_SECONDS`]) until `demo_log`
//!   reports another version, i.e. until someone ran `swap demo_log_buggy demo_log_fixed`; then appends as many
//!   again, in the same task, and reports which records each version lost and how many of the records from before
//!   the swap are still stored (the state the swap carried over).
//! - `log_client show`: prints the service's version, its append count and how many records it holds.
//!
//! Every call into `demo_log` goes through a relocation in this cell, which the swap rewrites: this task is never
//! restarted. Returns 0 on success, 1 on bad arguments or if no new version arrived in time.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

/// Records appended in each phase (before and after the swap).
pub const RECORDS_PER_PHASE: u64 = 20;
/// How long `run` waits for a new `demo_log` version.
pub const WAIT_FOR_FIX_SECONDS: u64 = 120;

app_io::entry!(main);

/// Entry point (see the crate documentation).
pub fn main(args: Vec<String>) -> isize {
    match args.get(1).map(String::as_str) {
        Some("run") => run(),
        Some("show") => {
            show();
            0
        }
        _ => {
            app_io::println!("usage: log_client run | show");
            1
        }
    }
}

/// `log_client show`.
fn show() {
    let records = demo_log::records();
    app_io::println!(
        "demo_log v{}: {} appends, {} records stored",
        demo_log::version(),
        demo_log::appends(),
        records.len()
    );
}

/// The text of record `number`.
fn record_text(number: u64) -> String {
    format!("log_client record {number}")
}

/// Appends records `first..=last`, pausing briefly between them.
fn append_records(first: u64, last: u64) {
    for number in first..=last {
        demo_log::append(&record_text(number));
        app_io::sleep(Duration::from_millis(10));
    }
}

/// The numbers in `first..=last` whose record is not in `stored`, as text ("none" if all are there).
fn lost_records(stored: &[String], first: u64, last: u64) -> String {
    let lost: Vec<String> =
        (first..=last).filter(|number| !stored.contains(&record_text(*number))).map(|n| format!("{n}")).collect();
    if lost.is_empty() { String::from("none") } else { lost.join(" ") }
}

/// `log_client run` (see the crate documentation).
fn run() -> isize {
    let before = demo_log::version();
    append_records(1, RECORDS_PER_PHASE);
    app_io::println!(
        "log_client: {RECORDS_PER_PHASE} records sent through demo_log v{before}; waiting for a new version"
    );
    let deadline = app_io::now_ns() + WAIT_FOR_FIX_SECONDS * 1_000_000_000;
    while demo_log::version() == before {
        if app_io::now_ns() > deadline {
            app_io::println!("log_client: demo_log is still v{before} after {WAIT_FOR_FIX_SECONDS} s");
            return 1;
        }
        app_io::sleep(Duration::from_millis(20));
    }
    let after = demo_log::version();
    append_records(RECORDS_PER_PHASE + 1, 2 * RECORDS_PER_PHASE);
    let stored = demo_log::records();
    let from_before = (1..=RECORDS_PER_PHASE).filter(|number| stored.contains(&record_text(*number))).count();
    app_io::println!(
        "log_client: v{before} lost records {}; v{after} lost {}; the store holds {} records, {from_before} from before the swap",
        lost_records(&stored, 1, RECORDS_PER_PHASE),
        lost_records(&stored, RECORDS_PER_PHASE + 1, 2 * RECORDS_PER_PHASE),
        stored.len()
    );
    0
}
