//! Running a pipeline `a | b | c`: one application task per stage, joined by pipes, as one job.
//!
//! [`start`] makes a pipe between each pair of neighbouring stages (`spawn::stdio::pipe`, bounded, so a fast
//! writer waits for a slow reader), gives the first stage the console's input (or none in the background) and
//! the last stage the console's output, and starts every stage with a copy of the session's environment. The
//! shell then watches the [`Running`] pipeline ([`jobs`](crate::jobs)): Ctrl-C kills every stage, Ctrl-Z stops
//! every stage, a stage whose reader exited is ended ([`Running::end_broken_writers`], the shell's `SIGPIPE`),
//! and the pipeline's status is its last stage's.

use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use spawn::stdio::{self, ConsoleFeed, Input, Output, PipeStatus, TaskIo};
use spawn::{JoinHandle, SpawnError};
use task::TaskId;

/// One started stage of a pipeline.
pub struct Stage {
    /// The application's name (`args[0]`).
    pub name: String,
    /// Its task.
    pub handle: JoinHandle<isize>,
    /// Its output pipe's status (`None` for the last stage, which writes to the console).
    output: Option<Arc<PipeStatus>>,
    /// Its standard I/O, shared with the tasks it starts (its job, for Ctrl-Z); weak, so that the last of them
    /// to end still closes its pipe ends.
    io: Weak<TaskIo>,
    /// The shell ended it because its reader had exited (it is not reported).
    pub ended_by_broken_pipe: bool,
}

/// A started pipeline: its stages in order, and the console input of its first stage (foreground only).
pub struct Running {
    /// The stages, in pipeline order; never empty.
    pub stages: Vec<Stage>,
    /// Typed lines for the first stage, while it reads the console (dropped at Ctrl-D: its end of input).
    pub feed: Option<ConsoleFeed>,
    /// The line being typed for the first stage.
    pub typed_line: Vec<u8>,
}

/// Why a pipeline did not start.
pub enum StartError {
    /// A stage names no application (the caller reports an unknown command); nothing was started.
    NoSuchApplication,
    /// Stage `name` could not start (already printed); the stages before it were killed.
    Failed,
}

/// Starts `commands` (each `args` with `args[0]` an application name) as one pipeline; `background` gives the first
/// stage no input. `environment` is copied into every stage.
///
/// # Errors
/// [`StartError`]: a stage that is not an application, or that could not start (every started stage is then
/// killed).
pub fn start(
    commands: &[Vec<String>],
    background: bool,
    environment: &[(String, String)],
) -> Result<Running, StartError> {
    let mut stages: Vec<Stage> = Vec::with_capacity(commands.len());
    let mut feed = None;
    let mut next_input = None;
    for (index, args) in commands.iter().enumerate() {
        let input = match next_input.take() {
            Some(reader) => Input::Pipe(reader),
            None if background => Input::Empty,
            None => {
                let (input, shell_side) = stdio::console_input();
                feed = Some(shell_side);
                Input::Console(input)
            }
        };
        let (output, status) = if index + 1 == commands.len() {
            (Output::Console, None)
        } else {
            let (writer, reader) = stdio::pipe();
            next_input = Some(reader);
            let status = writer.status();
            (Output::Pipe(writer), Some(status))
        };
        let io = Arc::new(TaskIo::new(input, output, environment.to_vec()));
        let job_io = Arc::downgrade(&io);
        match spawn::spawn_application_with(&args[0], args.clone(), io) {
            Ok(handle) => stages.push(Stage {
                name: args[0].clone(),
                handle,
                output: status,
                io: job_io,
                ended_by_broken_pipe: false,
            }),
            Err(error) => {
                for stage in &stages {
                    // It may have ended already (its input closed); either way it is gone.
                    let _ = spawn::kill(stage.handle.id());
                }
                return Err(match error {
                    SpawnError::NoSuchApplication(_) => StartError::NoSuchApplication,
                    error => {
                        crate::console::write_fmt(format_args!("{}: error: {error}\n", args[0]));
                        StartError::Failed
                    }
                });
            }
        }
    }
    Ok(Running { stages, feed, typed_line: Vec::new() })
}

impl Running {
    /// The job's id: its last stage's task id.
    pub fn id(&self) -> TaskId {
        self.stages.last().map_or(TaskId::new(0), |stage| stage.handle.id())
    }

    /// Whether every stage has exited.
    pub fn is_finished(&self) -> bool {
        self.stages.iter().all(|stage| stage.handle.is_finished())
    }

    /// Ends each running stage whose output pipe lost its reader (the pipe is marked broken by a failed write).
    pub fn end_broken_writers(&mut self) {
        for stage in &mut self.stages {
            let broken = stage.output.as_ref().is_some_and(|status| status.is_broken());
            if broken && !stage.ended_by_broken_pipe && !stage.handle.is_finished() {
                stage.ended_by_broken_pipe = true;
                // An `AlreadyExited` race is the outcome wanted; nothing else can fail for a task we started.
                let _ = spawn::kill(stage.handle.id());
            }
        }
    }

    /// Kills every stage that has not exited; prints why one cannot be.
    pub fn kill(&self, command: &str) {
        for stage in self.stages.iter().filter(|stage| !stage.handle.is_finished()) {
            if let Err(error) = spawn::kill(stage.handle.id()) {
                crate::console::write_fmt(format_args!("{command}: cannot stop task {}: {error}\n", stage.handle.id()));
            }
        }
    }

    /// Stops (`stopped`, Ctrl-Z: `scheduler::stop`) or resumes (`scheduler::resume`) every stage that has not
    /// exited, with the tasks each one started with its standard I/O (`spawn::stdio::set_job_stopped`: an
    /// application's restartable runs and workers do its work while its own task waits); returns the first error
    /// of a stage with the task it failed for (a started task that exited meanwhile is no error).
    pub fn set_stopped(&self, stopped: bool) -> Result<(), (TaskId, scheduler::KillError)> {
        let action = if stopped { scheduler::stop } else { scheduler::resume };
        for stage in self.stages.iter().filter(|stage| !stage.handle.is_finished()) {
            action(stage.handle.id()).map_err(|error| (stage.handle.id(), error))?;
            let Some(io) = stage.io.upgrade() else { continue };
            for task in spawn::stdio::set_job_stopped(&io, stopped) {
                if task != stage.handle.id() {
                    let _ = action(task);
                }
            }
        }
        Ok(())
    }

    /// Handles byte `byte` typed for the first stage while it reads the console: printable bytes are echoed and
    /// collected, Backspace erases, Enter sends the line, Ctrl-D sends a partial line or, on an empty one, ends
    /// its input. Returns `false` (and does nothing) if the first stage is not reading the console.
    pub fn feed_byte(&mut self, byte: u8) -> bool {
        let Some(feed) = &self.feed else { return false };
        if !feed.is_wanted() && self.typed_line.is_empty() {
            return false;
        }
        match byte {
            b'\r' | b'\n' => {
                crate::console::write_str("\n");
                let mut line = core::mem::take(&mut self.typed_line);
                line.push(b'\n');
                self.send_typed(line);
            }
            0x7f | 0x08 => {
                if self.typed_line.pop().is_some() {
                    crate::console::write_str("\x08 \x08");
                }
            }
            0x04 if self.typed_line.is_empty() => self.feed = None,
            0x04 => {
                let line = core::mem::take(&mut self.typed_line);
                self.send_typed(line);
            }
            0x20..=0x7e if self.typed_line.len() < stdio::MAX_INPUT_LINE => {
                self.typed_line.push(byte);
                crate::console::write_bytes(&[byte]);
            }
            _ => {}
        }
        true
    }

    fn send_typed(&self, line: Vec<u8>) {
        if let Some(feed) = &self.feed
            && feed.writer.send(line, true).is_err()
        {
            crate::console::write_str("shell: the application is not reading its input; the line was dropped\n");
        }
    }
}
