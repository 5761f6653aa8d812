//! Tasks from the shell's point of view: `ps`, `kill`, foreground applications (Ctrl-C kills them) and background
//! jobs (`cmd &`), whose completion is reported before the next prompt.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use spawn::JoinHandle;
use task::{ExitValue, TaskId};

/// How long the shell sleeps between polls of the console while it waits (for input or a foreground task).
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// A background job started with `&`.
struct Job {
    command: String,
    handle: JoinHandle<isize>,
}

/// The shell's background jobs and the bytes typed while a foreground task ran.
#[derive(Default)]
pub struct Jobs {
    background: Vec<Job>,
    /// Bytes typed while a foreground application ran (other than Ctrl-C), replayed into the line editor.
    pub typed_ahead: Vec<u8>,
}

impl Jobs {
    /// Starts application `args[0]` as a background task and reports its task id.
    pub fn start_background(&mut self, args: &[String]) {
        match spawn::spawn_application(&args[0], args.to_vec()) {
            Ok(handle) => {
                crate::console::write_fmt(format_args!("[{}] {} started in the background\n", handle.id(), args[0]));
                self.background.push(Job { command: args.join(" "), handle });
            }
            Err(error) => crate::console::write_fmt(format_args!("{}: error: {error}\n", args[0])),
        }
    }

    /// Runs application `args[0]` as a foreground task and waits for it; Ctrl-C kills it. Returns `false` if there
    /// is no such application (so the caller can report an unknown command).
    pub fn run_foreground(&mut self, args: &[String]) -> bool {
        let handle = match spawn::spawn_application(&args[0], args.to_vec()) {
            Ok(handle) => handle,
            Err(spawn::SpawnError::NoSuchApplication(_)) => return false,
            Err(error) => {
                crate::console::write_fmt(format_args!("{}: error: {error}\n", args[0]));
                return true;
            }
        };
        let id = handle.id();
        let mut interrupted = false;
        while !handle.is_finished() {
            match crate::console::try_read_byte() {
                Some(0x03) if !interrupted => {
                    interrupted = true;
                    crate::console::write_str("^C\n");
                    if let Err(error) = spawn::kill(id) {
                        crate::console::write_fmt(format_args!("{}: cannot stop task {id}: {error}\n", args[0]));
                    }
                }
                Some(byte) => self.typed_ahead.push(byte),
                None => scheduler::sleep(POLL_INTERVAL),
            }
        }
        report(&args[0], id, handle);
        true
    }

    /// Reports and forgets the background jobs that have finished.
    pub fn report_finished(&mut self) {
        let (finished, running): (Vec<Job>, Vec<Job>) =
            core::mem::take(&mut self.background).into_iter().partition(|job| job.handle.is_finished());
        self.background = running;
        for job in finished {
            let id = job.handle.id();
            crate::console::write_fmt(format_args!("[{id}] done: {}\n", job.command));
            report(&job.command, id, job.handle);
        }
    }
}

/// Prints a task's exit unless it completed with 0.
fn report(command: &str, id: TaskId, handle: JoinHandle<isize>) {
    match handle.join() {
        Ok(ExitValue::Completed(0)) => {}
        Ok(ExitValue::Completed(value)) => crate::console::write_fmt(format_args!("{command}: exited with {value}\n")),
        Ok(ExitValue::Failed(reason)) => {
            crate::console::write_fmt(format_args!("{command}: task {id} failed: {reason}\n"))
        }
        Err(error) => crate::console::write_fmt(format_args!("{command}: cannot join task {id}: {error:?}\n")),
    }
}

/// Tasks waiting for console input (of any console: each retries its own); input interrupts wake them (see [`read_byte`]).
static INPUT_WAITERS: sync::WaitQueue = sync::WaitQueue::new();

/// The input interrupts' wake hook: runs in interrupt context, never blocks.
fn wake_input_waiters() {
    INPUT_WAITERS.notify_all();
}

/// Waits for the next console byte. With interrupt-driven input the shell task blocks until the receive interrupt
/// wakes it; otherwise (interrupt set-up failed) it polls, sleeping between polls so other tasks run.
pub fn read_byte(jobs: &mut Jobs) -> u8 {
    if !jobs.typed_ahead.is_empty() {
        return jobs.typed_ahead.remove(0);
    }
    let console = crate::console::current();
    if let Some(set_wake_hook) = console.set_wake_hook {
        set_wake_hook(wake_input_waiters);
        return INPUT_WAITERS.wait_until(console.try_read_byte);
    }
    loop {
        if let Some(byte) = (console.try_read_byte)() {
            return byte;
        }
        scheduler::sleep(POLL_INTERVAL);
    }
}

/// `ps`: every task with its state, CPU and the current policy's data.
pub fn print_tasks() {
    crate::console::write_fmt(format_args!("scheduler policy: {}\n", scheduler::policy_name()));
    crate::console::write_fmt(format_args!("policy state: {}\n", scheduler::policy_statistics()));
    crate::console::write_fmt(format_args!("{}\n", scheduler::TaskSummary::HEADER));
    let tasks = scheduler::task_summaries();
    for row in &tasks {
        crate::console::write_fmt(format_args!("{row}\n"));
    }
    crate::console::write_fmt(format_args!("{} tasks\n", tasks.len()));
}

/// `kill ID`.
pub fn kill(text: &str) {
    let Ok(number) = text.parse::<u64>() else {
        crate::console::write_fmt(format_args!("kill: not a task id: {text}\n"));
        return;
    };
    match spawn::kill(TaskId::new(number)) {
        Ok(()) => crate::console::write_fmt(format_args!("kill: task {number} will stop at its next safe point\n")),
        Err(error) => crate::console::write_fmt(format_args!("kill: error: {error}\n")),
    }
}

/// `prio ID PRIORITY`: sets a task's priority (used by the priority policy; 0 lowest, 255 highest).
pub fn set_priority(id_text: &str, priority_text: &str) {
    let (Ok(number), Ok(priority)) = (id_text.parse::<u64>(), priority_text.parse::<u8>()) else {
        crate::console::write_str("usage: prio ID PRIORITY (PRIORITY is 0..=255)\n");
        return;
    };
    match task::task_by_id(TaskId::new(number)) {
        Some(task) => {
            task.set_priority(priority);
            crate::console::write_fmt(format_args!("prio: task {number} now has priority {priority}\n"));
        }
        None => crate::console::write_fmt(format_args!("prio: error: no task with id {number}\n")),
    }
}
