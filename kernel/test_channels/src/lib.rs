//! In-kernel tests of the `channel` cell, run by the shell's `test` builtin through [`run`].
//!
//! 1. Rendezvous: `send` returns only after a receiver took the value; `try_send` never completes a handover;
//!    four producers, one consumer: every value arrives once, in order per producer.
//! 2. Bounded: four producers, two consumers, capacity 4: every value arrives exactly once, in order per producer
//!    within each consumer; `try_send` reports `Full`.
//! 3. Disconnection: sending without receivers returns the value (also to a rendezvous sender already waiting);
//!    receiving without senders drains the buffer, then fails.
//! 4. Kill at the notification: two consumers wait; a value is sent (its `notify_one` wakes the first) and the
//!    first is killed at once, before it can take the value, [`NOTIFY_KILL_ITERATIONS`] times over every CPU: the
//!    second must receive the value (no lost wake-up).
//! 5. A pipe writer blocked in its final flush: a task with a pipe as standard output fills the pipe and ends
//!    with output still collected, so its exit flush blocks until the reader makes room; the reader (which
//!    looks up its own standard I/O on every read) must still get every byte. Before the fix the exit flush
//!    held the task-I/O map's lock, and the reader spun on it forever (the `yes abcdefghi 10000 | wc` hang).
//!
//! Every step runs even if an earlier one failed; `run` reports all failures.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use channel::{ReceiveError, Receiver, SendError, TrySendError};
use kernel_test_support::{ensure, spawn_error, step, wait_for};
use spawn::TaskBuilder;
use task::{ExitValue, IrqSafeMutex};

const PRODUCERS: u32 = 4;

/// This cell's name, prefixed to its log lines.
const CELL: &str = "test_channels";

/// Runs every test of this cell; `Err` names the first failed check.
#[inline(never)]
pub fn run() -> Result<(), String> {
    let results = [
        step(CELL, "rendezvous handover", rendezvous_handover),
        step(CELL, "rendezvous, 4 producers", || several_producers(0, 25, 1)),
        step(CELL, "bounded(4), 4 producers, 2 consumers", || several_producers(4, 100, 2)),
        step(CELL, "disconnection", disconnection),
        step(CELL, "kill of a notified consumer", kill_notified_consumer),
        step(CELL, "pipe writer blocked in its exit flush", writer_blocked_in_exit_flush),
    ];
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if failures.is_empty() { Ok(()) } else { Err(failures.join("; ")) }
}

/// Notification kills per run (spread round-robin over the online CPUs).
pub const NOTIFY_KILL_ITERATIONS: usize = 300;

/// Spawns a consumer on `cpu` that records every value it receives in `log` until the channel disconnects; waits
/// until it is blocked in `receive`.
fn blocked_consumer(
    cpu: usize,
    receiver: &Receiver<u32>,
    log: &Arc<IrqSafeMutex<Vec<u32>>>,
) -> Result<spawn::JoinHandle<()>, String> {
    let (receiver, log) = (receiver.clone(), log.clone());
    let handle = TaskBuilder::new("consumer")
        .pin(cpu)
        .spawn(move || {
            while let Ok(value) = receiver.receive() {
                log.lock().push(value);
            }
        })
        .map_err(spawn_error)?;
    let blocked = wait_for(2000, || handle.task().state() == task::RunState::Blocked);
    ensure!(blocked, "a consumer did not block in receive");
    Ok(handle)
}

fn kill_notified_consumer() -> Result<(), String> {
    let cpus: Vec<usize> = scheduler::online_cpus().collect();
    let mut died_notified = 0;
    for iteration in 0..NOTIFY_KILL_ITERATIONS {
        let value = iteration as u32;
        let (sender, receiver) = channel::bounded::<u32>(1);
        let log = Arc::new(IrqSafeMutex::new(Vec::new()));
        let first_cpu = cpus[iteration % cpus.len()];
        let first = blocked_consumer(first_cpu, &receiver, &log)?;
        let second = blocked_consumer(cpus[(iteration + 1) % cpus.len()], &receiver, &log)?;
        // On this CPU the first consumer cannot run before the kill; elsewhere it may take the value and be
        // killed before it records it (the value is then legitimately gone with it).
        let first_here = first_cpu == scheduler::current_cpu();
        // Interrupts off: a first consumer on this CPU cannot run between the notification and the kill.
        let interrupts_were_enabled = task::interrupts::disable();
        let sent = sender.try_send(value);
        let killed = spawn::kill(first.id());
        task::interrupts::restore(interrupts_were_enabled);
        ensure!(sent.is_ok(), "iteration {iteration}: try_send into an empty buffer failed");
        match killed {
            Ok(()) | Err(spawn::KillError::AlreadyExited(_) | spawn::KillError::NoSuchTask(_)) => {}
            Err(error) => return Err(format!("iteration {iteration}: kill: {error}")),
        }
        let taken = wait_for(2000, || {
            log.lock().contains(&value) || (!first_here && first.is_finished() && receiver.is_empty())
        });
        ensure!(taken, "iteration {iteration}: the value stayed in the channel (lost wake-up)");
        let recorded = log.lock().contains(&value);
        ensure!(recorded || !first_here, "iteration {iteration}: the value was taken but never recorded");
        drop((sender, receiver));
        // The first consumer may also have completed: on another CPU it can take the value and see the
        // disconnection before it reaches a safe point where the kill takes effect.
        let first_exit = first.join().map_err(|error| format!("join: {error:?}"))?;
        join(second)?;
        let log = log.lock();
        ensure!(log.len() <= 1, "iteration {iteration}: received {:?}, expected one value", *log);
        if first_exit.failure() == Some(&task::FailureReason::Killed) && recorded {
            died_notified += 1;
        }
    }
    log::info!(
        "test_channels: {NOTIFY_KILL_ITERATIONS} notified consumers killed ({died_notified} ended Killed with \
         the value received)"
    );
    Ok(())
}

fn join<T: 'static>(handle: spawn::JoinHandle<T>) -> Result<T, String> {
    match handle.join().map_err(|error| format!("join: {error:?}"))? {
        ExitValue::Completed(value) => Ok(value),
        ExitValue::Failed(reason) => Err(format!("task failed: {reason}")),
    }
}

fn rendezvous_handover() -> Result<(), String> {
    const DELAY_NS: u64 = 20_000_000;
    let (sender, receiver) = channel::rendezvous::<u32>();
    ensure!(sender.try_send(1) == Err(TrySendError::Full(1)), "try_send completed a rendezvous without a receiver");
    let started = tsc::now_ns();
    let producer = TaskBuilder::new("rendezvous sender")
        .spawn(move || sender.send(7).map(|()| tsc::now_ns()).map_err(|_| "send failed"))
        .map_err(spawn_error)?;
    scheduler::sleep(Duration::from_nanos(DELAY_NS));
    let taken_at = tsc::now_ns();
    ensure!(receiver.receive() == Ok(7), "wrong value received");
    let returned_at = join(producer)??;
    ensure!(returned_at >= taken_at, "send returned {} ns before the value was taken", taken_at - returned_at);
    ensure!(returned_at - started >= DELAY_NS, "send returned before the receiver came");
    ensure!(receiver.receive() == Err(ReceiveError), "receive after the sender was dropped did not fail");
    Ok(())
}

/// `PRODUCERS` tasks each send `count` values `producer << 16 | sequence` into a channel of `capacity`, received
/// by `consumers` tasks; checks every value arrives once and each producer's values arrive in order per consumer.
fn several_producers(capacity: usize, count: u32, consumers: usize) -> Result<(), String> {
    let (sender, receiver) = channel::bounded::<u32>(capacity);
    let consumer_handles: Vec<_> = (0..consumers)
        .map(|_| {
            let receiver: Receiver<u32> = receiver.clone();
            TaskBuilder::new("consumer").spawn(move || {
                let mut received = Vec::new();
                while let Ok(value) = receiver.receive() {
                    received.push(value);
                }
                received
            })
        })
        .collect::<Result<_, _>>()
        .map_err(spawn_error)?;
    drop(receiver);
    let producer_handles: Vec<_> = (0..PRODUCERS)
        .map(|producer| {
            let sender = sender.clone();
            TaskBuilder::new("producer").spawn(move || {
                (0..count).try_for_each(|sequence| sender.send(producer << 16 | sequence)).map_err(|_| "send failed")
            })
        })
        .collect::<Result<_, _>>()
        .map_err(spawn_error)?;
    drop(sender);
    for handle in producer_handles {
        join(handle)??;
    }
    let mut all = Vec::new();
    for handle in consumer_handles {
        let received = join(handle)?;
        for producer in 0..PRODUCERS {
            let sequence: Vec<u32> =
                received.iter().filter(|value| *value >> 16 == producer).map(|value| value & 0xffff).collect();
            ensure!(
                sequence.windows(2).all(|pair| pair[0] < pair[1]),
                "producer {producer} out of order: {sequence:?}"
            );
        }
        all.extend(received);
    }
    all.sort_unstable();
    let expected: Vec<u32> = (0..PRODUCERS).flat_map(|producer| (0..count).map(move |s| producer << 16 | s)).collect();
    ensure!(all == expected, "received {} values, expected {} distinct ones", all.len(), expected.len());
    if capacity > 0 {
        let (sender, _receiver) = channel::bounded::<u32>(2);
        ensure!(sender.try_send(1).is_ok() && sender.try_send(2).is_ok(), "try_send into free room failed");
        ensure!(sender.try_send(3) == Err(TrySendError::Full(3)), "try_send into a full buffer did not report Full");
    }
    Ok(())
}

fn disconnection() -> Result<(), String> {
    let (sender, receiver) = channel::bounded::<u32>(1);
    drop(receiver);
    ensure!(sender.send(5) == Err(SendError(5)), "send without receivers did not return the value");

    let (sender, receiver) = channel::rendezvous::<String>();
    let waiting = TaskBuilder::new("stranded sender")
        .spawn(move || match sender.send(String::from("kept")) {
            Err(SendError(value)) => Ok(value),
            Ok(()) => Err("send succeeded without a receiver"),
        })
        .map_err(spawn_error)?;
    scheduler::sleep(Duration::from_millis(10));
    drop(receiver);
    let value = join(waiting)??;
    ensure!(value == "kept", "the stranded value came back as {value:?}");

    let (sender, receiver) = channel::bounded::<u32>(4);
    ensure!(sender.send(1).is_ok() && sender.send(2).is_ok(), "send into free room failed");
    drop(sender);
    ensure!(receiver.receive() == Ok(1) && receiver.receive() == Ok(2), "buffered values lost on disconnection");
    ensure!(receiver.receive() == Err(ReceiveError), "receive without senders did not fail");
    ensure!(receiver.try_receive() == Err(channel::TryReceiveError::Disconnected), "try_receive not Disconnected");
    Ok(())
}

/// Step 5 (see the crate docs): the writer's exit flush blocks on a full pipe; the reader must drain it all.
fn writer_blocked_in_exit_flush() -> Result<(), String> {
    use spawn::stdio::{self, Input, Output, TaskIo};
    // Fills every chunk of the pipe and leaves a few bytes collected (no newline, so nothing is flushed early):
    // the body's writes never block; the flush as the body ends needs room the reader has to make.
    let written = stdio::PIPE_CHUNKS * stdio::CHUNK_BYTES + 10;
    let (pipe_writer, pipe_reader) = stdio::pipe();
    let writer_io = TaskIo::new(Input::Empty, Output::Pipe(pipe_writer), Vec::new());
    let writer = TaskBuilder::new("exit-flush writer")
        .with_io(Some(Arc::new(writer_io)))
        .spawn(move || stdio::write_output(&alloc::vec![b'x'; written]).is_ok())
        .map_err(spawn_error)?;
    let blocked = wait_for(2000, || writer.task().state() == task::RunState::Blocked);
    ensure!(blocked, "the writer did not block in its exit flush");
    let reader_io = TaskIo::new(Input::Pipe(pipe_reader), Output::Console, Vec::new());
    let reader = TaskBuilder::new("exit-flush reader")
        .with_io(Some(Arc::new(reader_io)))
        .spawn(|| {
            let mut received = 0;
            while let Some(line) = stdio::read_line() {
                received += line.len();
            }
            received
        })
        .map_err(spawn_error)?;
    if !wait_for(5000, || reader.is_finished()) {
        // Break the deadlock so later tests can run: the killed writer unwinds out of its flush (dropping what it
        // holds), and the reader then sees the end of input.
        let _ = spawn::kill(writer.id());
        let _ = wait_for(5000, || reader.is_finished());
        return Err(String::from(
            "the reader never finished while the writer was blocked in its exit flush (lock held across the flush?)",
        ));
    }
    ensure!(join(writer)?, "the writer's output was reported closed");
    let received = join(reader)?;
    ensure!(received == written, "the reader got {received} of {written} bytes");
    Ok(())
}
