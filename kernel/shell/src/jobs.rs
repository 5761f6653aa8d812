//! Tasks from the shell's point of view: `ps`, `kill`, foreground applications and pipelines (Ctrl-C kills every
//! stage) and background jobs (`cmd &`, `a | b &`), whose completion is reported before the next prompt.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use spawn::JoinHandle;
use task::{ExitValue, TaskId};

use crate::pipeline::{self, Running, StartError};

/// `$?` after an application killed with Ctrl-C (128 + SIGINT, as in POSIX shells).
pub const STATUS_INTERRUPTED: isize = 130;
/// `$?` after an application that failed (panic, CPU exception, kill by another task) or could not be joined.
pub const STATUS_FAILED: isize = 134;

/// How long the shell sleeps between polls of the console while it waits (for input or a foreground task).
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// `$?` after a foreground application stopped with Ctrl-Z (128 + SIGTSTP, as in POSIX shells).
pub const STATUS_STOPPED: isize = 148;

/// The job-control builtins, handled here because they need the job table: (name, usage, summary).
pub const JOB_COMMANDS: &[(&str, &str, &str)] = &[
    ("jobs", "jobs", "list background and stopped jobs (ID is the task id)"),
    ("fg", "fg [ID]", "resume a job (default: the newest) in the foreground and wait for it"),
    ("bg", "bg [ID]", "resume a stopped job (default: the newest) in the background"),
];

/// A job: a pipeline (of one or more applications) started with `&`, or a foreground one stopped with Ctrl-Z. Its
/// id is its last stage's task id.
struct Job {
    command: String,
    pipeline: Running,
    /// Stopped with Ctrl-Z (parked by `scheduler::stop`) and not resumed since.
    stopped: bool,
}

/// The shell's jobs and the bytes typed while a foreground task ran.
#[derive(Default)]
pub struct Jobs {
    background: Vec<Job>,
    /// Bytes typed while a foreground application ran (other than Ctrl-C and Ctrl-Z), replayed into the line editor.
    pub typed_ahead: Vec<u8>,
}

impl Jobs {
    /// Starts the pipeline `commands` (one application per stage, see [`pipeline::start`]) in the background and
    /// reports its id. Returns the status for `$?`: 0 if it started, 1 if not, or `None` if a stage is not an
    /// application (the caller reports an unknown command).
    pub fn start_background(&mut self, commands: &[Vec<String>], environment: &[(String, String)]) -> Option<isize> {
        match pipeline::start(commands, true, environment) {
            Ok(pipeline) => {
                let names: Vec<&str> = pipeline.stages.iter().map(|stage| stage.name.as_str()).collect();
                crate::console::write_fmt(format_args!(
                    "[{}] {} started in the background\n",
                    pipeline.id(),
                    names.join(" | ")
                ));
                self.background.push(Job { command: command_text(commands), pipeline, stopped: false });
                Some(0)
            }
            Err(StartError::NoSuchApplication) => None,
            Err(StartError::Failed) => Some(1),
        }
    }

    /// Runs the pipeline `commands` in the foreground and waits for it (see [`Jobs::wait`]). Returns its status for
    /// `$?` (1 if it could not start), or `None` if a stage is not an application.
    pub fn run_foreground(&mut self, commands: &[Vec<String>], environment: &[(String, String)]) -> Option<isize> {
        match pipeline::start(commands, false, environment) {
            Ok(pipeline) => Some(self.wait(command_text(commands), pipeline)),
            Err(StartError::NoSuchApplication) => None,
            Err(StartError::Failed) => Some(1),
        }
    }

    /// Waits for a foreground pipeline: Ctrl-C kills every stage, Ctrl-Z stops them (it becomes a stopped job);
    /// other typed bytes go to the first stage once it reads the console, and are kept for the line editor if it
    /// never does; a stage whose reader exited is ended. Returns the last stage's value, [`STATUS_INTERRUPTED`],
    /// [`STATUS_FAILED`] or [`STATUS_STOPPED`].
    fn wait(&mut self, command: String, mut pipeline: Running) -> isize {
        let mut interrupted = false;
        while !pipeline.is_finished() {
            pipeline.end_broken_writers();
            match crate::console::try_read_byte() {
                Some(0x03) if !interrupted => {
                    interrupted = true;
                    crate::console::write_str("^C\n");
                    pipeline.kill(&command);
                }
                Some(0x1a) if !interrupted => match pipeline.set_stopped(true) {
                    Ok(()) => {
                        crate::console::write_fmt(format_args!("^Z\n[{}] stopped: {command}\n", pipeline.id()));
                        self.background.push(Job { command, pipeline, stopped: true });
                        return STATUS_STOPPED;
                    }
                    Err((id, error)) => {
                        crate::console::write_fmt(format_args!("{command}: cannot stop task {id}: {error}\n"))
                    }
                },
                Some(byte) => self.typed_ahead.push(byte),
                None => scheduler::sleep(POLL_INTERVAL),
            }
            // Bytes typed while the job ran go to its first stage once it reads the console (as a terminal's
            // buffered input would); otherwise they are replayed into the line editor after it.
            while !self.typed_ahead.is_empty() && pipeline.feed_byte(self.typed_ahead[0]) {
                self.typed_ahead.remove(0);
            }
        }
        let status = report_pipeline(pipeline);
        if interrupted && status == STATUS_FAILED { STATUS_INTERRUPTED } else { status }
    }

    /// Runs `jobs`, `fg` or `bg` (see [`JOB_COMMANDS`]); `None` if `words[0]` is none of them.
    pub fn run_builtin(&mut self, words: &[String]) -> Option<isize> {
        let status = match (words[0].as_str(), words.len()) {
            ("jobs", 1) => {
                for job in &self.background {
                    let state = if job.stopped { "stopped" } else { "running" };
                    crate::console::write_fmt(format_args!("[{}] {state:<8} {}\n", job.pipeline.id(), job.command));
                }
                0
            }
            ("fg", 1 | 2) => match self.take_job(words) {
                Some(job) => {
                    crate::console::write_fmt(format_args!("{}\n", job.command));
                    if job.stopped && !resume(&job) {
                        self.background.push(job);
                        return Some(1);
                    }
                    self.wait(job.command, job.pipeline)
                }
                None => 1,
            },
            ("bg", 1 | 2) => match self.take_job(words) {
                Some(mut job) => {
                    let status = if !job.stopped {
                        crate::console::write_fmt(format_args!("bg: job {} is already running\n", job.pipeline.id()));
                        1
                    } else if resume(&job) {
                        job.stopped = false;
                        crate::console::write_fmt(format_args!("[{}] {} &\n", job.pipeline.id(), job.command));
                        0
                    } else {
                        1
                    };
                    self.background.push(job);
                    status
                }
                None => 1,
            },
            ("jobs" | "fg" | "bg", _) => {
                let usage = JOB_COMMANDS.iter().find(|command| command.0 == words[0]).map_or("", |command| command.1);
                crate::console::write_fmt(format_args!("usage: {usage}\n"));
                2
            }
            _ => return None,
        };
        Some(status)
    }

    /// Removes and returns the job `words[1]` names (a task id), or the newest; prints why if there is none.
    fn take_job(&mut self, words: &[String]) -> Option<Job> {
        let index = match words.get(1) {
            None => self.background.len().checked_sub(1),
            Some(text) => {
                let wanted = text.parse::<u64>().ok();
                self.background.iter().position(|job| Some(job.pipeline.id().value()) == wanted)
            }
        };
        match index {
            Some(index) => Some(self.background.remove(index)),
            None => {
                let what = words.get(1).map_or(String::from("no jobs"), |text| alloc::format!("no job {text}"));
                crate::console::write_fmt(format_args!("{}: {what}\n", words[0]));
                None
            }
        }
    }

    /// Reports and forgets the background jobs that have finished.
    pub fn report_finished(&mut self) {
        for job in &mut self.background {
            job.pipeline.end_broken_writers();
        }
        let (finished, running): (Vec<Job>, Vec<Job>) =
            core::mem::take(&mut self.background).into_iter().partition(|job| job.pipeline.is_finished());
        self.background = running;
        for job in finished {
            crate::console::write_fmt(format_args!("[{}] done: {}\n", job.pipeline.id(), job.command));
            // A background job's status is reported, not kept in `$?` (which belongs to the foreground line).
            report_pipeline(job.pipeline);
        }
    }
}

/// The text of a pipeline, as `jobs` shows it.
fn command_text(commands: &[Vec<String>]) -> String {
    let stages: Vec<String> = commands.iter().map(|args| args.join(" ")).collect();
    stages.join(" | ")
}

/// Lets a stopped job run again; prints why not and returns `false` if it cannot.
fn resume(job: &Job) -> bool {
    match job.pipeline.set_stopped(false) {
        Ok(()) => true,
        Err((id, error)) => {
            crate::console::write_fmt(format_args!("cannot resume task {id}: {error}\n"));
            false
        }
    }
}

/// Joins every stage of a finished pipeline, reporting each (except a stage the shell ended because its reader
/// exited), and returns the last stage's status for `$?`.
fn report_pipeline(pipeline: Running) -> isize {
    let mut status = 0;
    for stage in pipeline.stages {
        let id = stage.handle.id();
        status = if stage.ended_by_broken_pipe {
            // Ended for writing to an exited reader, as by `SIGPIPE`: expected, not reported (it is never last).
            let _ = stage.handle.join();
            STATUS_BROKEN_PIPE
        } else {
            report(&stage.name, id, stage.handle)
        };
    }
    status
}

/// The status of a stage the shell ended because its reader exited (128 + SIGPIPE, as in POSIX shells); never
/// the pipeline's, which is its last stage's.
const STATUS_BROKEN_PIPE: isize = 141;

/// Prints a task's exit unless it completed with 0, and returns its status for `$?`.
fn report(command: &str, id: TaskId, handle: JoinHandle<isize>) -> isize {
    match handle.join() {
        Ok(ExitValue::Completed(0)) => 0,
        Ok(ExitValue::Completed(value)) => {
            crate::console::write_fmt(format_args!("{command}: exited with {value}\n"));
            value
        }
        Ok(ExitValue::Failed(reason)) => {
            crate::console::write_fmt(format_args!("{command}: task {id} failed: {reason}\n"));
            STATUS_FAILED
        }
        Err(error) => {
            crate::console::write_fmt(format_args!("{command}: cannot join task {id}: {error:?}\n"));
            STATUS_FAILED
        }
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
