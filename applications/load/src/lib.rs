//! The load application: `load [TASKS] [SECONDS]` spawns TASKS worker tasks (default 8) that each compute for
//! SECONDS (default 2, wall-clock), yielding now and then, and joins them all. It prints one line when every worker
//! has completed, so a test can check that no task was lost (e.g. across a live scheduler swap). The workers are
//! restartable (`app_io::spawn_restartable`, up to [`WORKER_RESTARTS`] restarts each): their work is idempotent
//! (a restarted worker computes until the same deadline), so a worker that fails still completes. The whole run
//! is restartable too (`app_io::run_restartable_main`, up to [`MAIN_RESTARTS`] restarts): a fault in the code
//! that spawns and joins the workers starts the run again (with new workers and a new deadline; the failed run's
//! workers are cancelled with it).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

/// Largest number of workers accepted.
const MAX_TASKS: usize = 256;
/// How many times one worker is started again after a failure.
pub const WORKER_RESTARTS: usize = 3;
/// How many times the whole run is started again after a failure.
pub const MAIN_RESTARTS: usize = 3;
/// Seconds past a worker's computing time after which its run is taken as stuck, killed and restarted.
pub const WORKER_SLACK_SECONDS: u64 = 10;

app_io::entry!(main);

/// Entry point: [`run`], restartable. Returns 0 if every worker completed, 1 on bad arguments (or if every run
/// failed), 2 if a worker failed more often than its restarts allow (or could not be spawned).
pub fn main(args: Vec<String>) -> isize {
    app_io::run_restartable_main(args, MAIN_RESTARTS, run)
}

/// One run: parses the arguments, spawns the workers and joins them.
fn run(args: &[String]) -> isize {
    let tasks = match args.get(1).map(|text| text.parse::<usize>()) {
        None => 8,
        Some(Ok(count)) if (1..=MAX_TASKS).contains(&count) => count,
        Some(_) => {
            app_io::println!("usage: load [TASKS 1..={MAX_TASKS}] [SECONDS]");
            return 1;
        }
    };
    let seconds = match args.get(2).map(|text| text.parse::<u64>()) {
        None => 2,
        Some(Ok(seconds)) if seconds <= 600 => seconds,
        Some(_) => {
            app_io::println!("usage: load [TASKS] [SECONDS 0..=600]");
            return 1;
        }
    };
    let deadline = app_io::now_ns() + seconds * 1_000_000_000;
    let mut workers = Vec::with_capacity(tasks);
    for index in 0..tasks {
        match app_io::spawn_restartable("load-worker", WORKER_RESTARTS, move || work_until(deadline, index as u64)) {
            Ok(handle) => workers.push(handle),
            Err(error) => {
                app_io::println!("load: spawning worker {index} failed: {error}");
                return 2;
            }
        }
    }
    let mut failed = 0;
    // A worker run still going this long after the wait for it began is killed and started again (a fault that
    // changed its copy of the deadline, or its loop, without an exception would otherwise keep it going).
    let run_limit = core::time::Duration::from_secs(seconds + WORKER_SLACK_SECONDS);
    for worker in workers {
        if let Err(error) = worker.wait_with_deadline(run_limit) {
            app_io::println!("load: a worker failed: {error}");
            failed += 1;
        }
    }
    if failed > 0 {
        return 2;
    }
    app_io::println!("load: {tasks} tasks completed");
    0
}

/// Computes (a xorshift walk) until `deadline_ns`, yielding every few thousand steps; returns the final state.
fn work_until(deadline_ns: u64, seed: u64) -> u64 {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while app_io::now_ns() < deadline_ns {
        for _ in 0..4096 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
        }
        app_io::yield_now();
    }
    state
}
