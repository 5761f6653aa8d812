//! The ping_pong application: the channels workload of the fault-injection campaign (`qemu_harness faults`).
//!
//! Usage: `ping_pong [ROUNDS 1..=1000] [MESSAGES 1..=10000]` (defaults 8 and 32).
//!
//! Each round opens a rendezvous channel to a new echo task and a buffered channel (capacity
//! [`ECHO_CAPACITY`]) back, sends MESSAGES numbers derived from the round number, checks that each echo is the
//! number transformed by [`echo_of`], folds the echoes into the round's checksum, and joins the echo task. The
//! program prints `ping_pong: ROUNDS rounds, MESSAGES messages each, checksum 0x...`; the sequence is fixed, so a
//! healthy system always prints the same line, and the campaign compares it with the line of a run before any
//! injection.
//!
//! Recovery: each round runs as a restartable task (`app_io::spawn_restartable`, up to [`ROUND_RESTARTS`]
//! restarts), with a deadline per run ([`round_deadline`]: a run still going then is killed and restarted). A round keeps no state outside itself, so it can be started again from its beginning. If the echo
//! task fails, the unwinding drops its channel ends, the round sees the disconnection (or a wrong echo, or a
//! failed join) and panics on purpose: its own failure is what gets the round restarted. If the round task
//! fails, its channel ends are dropped with it and the echo task ends when it sees that. The whole run is
//! restartable too (`app_io::run_restartable_main`, up to [`MAIN_RESTARTS`] restarts): a fault in the code
//! that runs the rounds, or a round that failed every one of its runs (whose inputs the failed run may have
//! damaged), starts the run again from round 0.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

/// The largest accepted round count.
pub const MAX_ROUNDS: u64 = 1000;
/// The largest accepted message count per round.
pub const MAX_MESSAGES: u64 = 100_000;
/// How many times a failed round is started again.
pub const ROUND_RESTARTS: usize = 3;
/// How many times the whole run is started again after a failure.
pub const MAIN_RESTARTS: usize = 3;
/// The capacity of the buffered channel carrying the echoes.
pub const ECHO_CAPACITY: usize = 4;

app_io::entry!(main);

/// Entry point: [`run`], restartable. Returns 0 after printing the checksum line, 1 on bad arguments or if every
/// run failed.
pub fn main(args: Vec<String>) -> isize {
    app_io::run_restartable_main(args, MAIN_RESTARTS, run)
}

/// One run: parses the arguments, runs the rounds, prints the checksum line.
///
/// # Panics
/// On purpose, when a round failed every one of its runs (or could not be spawned): the run is started again.
fn run(args: &[String]) -> isize {
    let parse = |index: usize, default: u64, max: u64| match args.get(index).map(|text| text.parse::<u64>()) {
        None => Some(default),
        Some(Ok(value)) if (1..=max).contains(&value) => Some(value),
        Some(_) => None,
    };
    let (Some(rounds), Some(messages)) = (parse(1, 8, MAX_ROUNDS), parse(2, 32, MAX_MESSAGES)) else {
        app_io::println!("usage: ping_pong [ROUNDS 1..={MAX_ROUNDS}] [MESSAGES 1..={MAX_MESSAGES}]");
        return 1;
    };
    let mut checksum = 0u64;
    for round in 0..rounds {
        let result = app_io::spawn_restartable("ping_pong-round", ROUND_RESTARTS, move || run_round(round, messages))
            .and_then(|task| task.wait_with_deadline(round_deadline(messages)));
        match result {
            Ok(round_sum) => checksum = checksum.rotate_left(9) ^ round_sum,
            Err(error) => panic!("round {round} of ping_pong: {error}; starting the run again"),
        }
    }
    app_io::println!("ping_pong: {rounds} rounds, {messages} messages each, checksum {checksum:#018x}");
    app_io::exit_code::SUCCESS
}

/// How long one run of a round may take before it is killed and started again: 1 s plus 100 us per message,
/// some 50 times a healthy round under QEMU's TCG (about 2 us per message). A fault can leave a round waiting
/// forever without failing (a receive that saw an empty channel that was not, a skipped wake-up); the deadline
/// makes that a restart.
pub fn round_deadline(messages: u64) -> core::time::Duration {
    core::time::Duration::from_micros(1_000_000 + 100 * messages)
}

/// What the echo task sends back for `value`.
pub fn echo_of(value: u64) -> u64 {
    value.rotate_left(17) ^ 0x5bd1_e995
}

/// The `index`-th number sent in round `round` (a SplitMix64-style hash, so every message differs).
pub fn message(round: u64, index: u64) -> u64 {
    let mut z = round.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index.wrapping_add(1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Runs one round with a new echo task and returns its checksum.
///
/// # Panics
/// On purpose, when the echo task failed (the channel disconnected, an echo was wrong, or the join reports a
/// failure): the round task's failure makes `spawn_restartable` start the round again. The messages do not
/// start with `ping_pong: `, the prefix of the result line the campaign compares.
fn run_round(round: u64, messages: u64) -> u64 {
    let (to_echo, echo_in) = channel::rendezvous::<u64>();
    let (echo_out, from_echo) = channel::bounded::<u64>(ECHO_CAPACITY);
    let echo = app_io::spawn("ping_pong-echo", move || {
        while let Ok(value) = echo_in.receive() {
            if echo_out.send(echo_of(value)).is_err() {
                break;
            }
        }
    });
    let echo = match echo {
        Ok(echo) => echo,
        Err(error) => panic!("round {round} of ping_pong: spawning the echo task failed: {error}"),
    };
    let mut sum = 0u64;
    for index in 0..messages {
        let value = message(round, index);
        if to_echo.send(value).is_err() {
            panic!("round {round} of ping_pong: the echo task is gone");
        }
        match from_echo.receive() {
            Ok(echo) if echo == echo_of(value) => sum = sum.rotate_left(5) ^ echo,
            Ok(echo) => panic!("round {round} of ping_pong: echo {echo:#x} of {value:#x} is wrong"),
            Err(_) => panic!("round {round} of ping_pong: the echo task is gone"),
        }
    }
    drop(to_echo);
    if let Err(error) = echo.join() {
        panic!("round {round} of ping_pong: the echo task failed: {error}");
    }
    sum
}
