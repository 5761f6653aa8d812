//! Standard input, standard output and the environment of application tasks.
//!
//! # Purpose
//! Each application task gets a [`TaskIo`]: where its output goes ([`Output`]: the console or a [`PipeWriter`]),
//! where its input comes from ([`Input`]: the console through the shell, a [`PipeReader`], or nothing), and its
//! environment variables. The shell builds one per pipeline stage and passes it to
//! [`spawn_application_with`](crate::spawn_application_with); the task registers it under its id for as long as
//! its body runs ([`current`] finds it), and tasks and applications it starts inherit it.
//!
//! # Pipes
//! A pipe ([`pipe`]) is a bounded channel of byte chunks ([`PIPE_CHUNKS`] chunks of at most [`CHUNK_BYTES`]
//! bytes), so a fast writer blocks while the reader is behind (back-pressure) and the memory held is bounded.
//! Output is collected into a chunk and sent when it is full, after a newline once [`FLUSH_INTERVAL_NS`] passed
//! since the last send, before the task reads input, and when the task ends.
//! - When every writer is gone (the writing task ended, normally, by a panic or killed: its [`TaskIo`] is dropped
//!   then), the reader drains what was sent and then sees end of input.
//! - When the reader is gone, writes fail with [`OutputClosed`] (`print!` drops them) and the pipe is marked
//!   broken ([`PipeWriter::status`]), which the shell checks to end the writer, as `SIGPIPE` would.
//!
//! # Control flow
//! 1. the shell makes the pipes and one [`TaskIo`] per stage;
//! 2. the stage's task body registers it ([`Registration`]) and runs `main`;
//! 3. `app_io` writes through [`write_output`] and reads through [`read_line`];
//! 4. the registration is dropped as the body returns or unwinds (and by the failure callback), which flushes
//!    the output and, with the last reference, closes the pipe ends.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sync::OwnedIrqMutex;
use task::TaskId;

/// How many chunks a pipe buffers before its writer blocks.
pub const PIPE_CHUNKS: usize = 8;
/// The largest chunk a pipe carries, in bytes (so a pipe holds at most `PIPE_CHUNKS * CHUNK_BYTES` bytes).
pub const CHUNK_BYTES: usize = 1024;
/// After a newline, output is sent if the last send was this long ago (ns): interactive pipes stay responsive.
pub const FLUSH_INTERVAL_NS: u64 = 20_000_000;
/// The longest line [`read_line`] returns, in bytes; a longer line comes back in pieces of this size.
pub const MAX_INPUT_LINE: usize = 4096;

/// The state a pipe's writer ends and the shell share: whether a write found the reader gone.
#[derive(Default)]
pub struct PipeStatus {
    broken: AtomicBool,
}

impl PipeStatus {
    /// Whether a write failed because every reader was gone.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }
}

/// The writing end of a pipe.
pub struct PipeWriter {
    sender: channel::Sender<Vec<u8>>,
    status: Arc<PipeStatus>,
}

impl PipeWriter {
    /// The shared status (hold this, not the writer, to watch a pipe without keeping it open).
    pub fn status(&self) -> Arc<PipeStatus> {
        self.status.clone()
    }

    /// Sends `chunk`, blocking while the pipe is full; `nonblocking` only tries (used while a killed task unwinds).
    ///
    /// # Errors
    /// [`OutputClosed`] if every reader is gone (the pipe is marked broken), or if `nonblocking` and it is full.
    pub fn send(&self, chunk: Vec<u8>, nonblocking: bool) -> Result<(), OutputClosed> {
        let result = if nonblocking {
            self.sender.try_send(chunk).map_err(|error| matches!(error, channel::TrySendError::Disconnected(_)))
        } else {
            self.sender.send(chunk).map_err(|_| true)
        };
        match result {
            Ok(()) => Ok(()),
            Err(disconnected) => {
                if disconnected {
                    self.status.broken.store(true, Ordering::Release);
                }
                Err(OutputClosed)
            }
        }
    }
}

/// The reading end of a pipe.
pub struct PipeReader {
    receiver: channel::Receiver<Vec<u8>>,
}

/// A new pipe: bounded to [`PIPE_CHUNKS`] chunks.
pub fn pipe() -> (PipeWriter, PipeReader) {
    let (sender, receiver) = channel::bounded(PIPE_CHUNKS);
    (PipeWriter { sender, status: Arc::new(PipeStatus::default()) }, PipeReader { receiver })
}

/// Console input for a foreground application: the shell feeds typed lines into the pipe while the application
/// waits for input ([`ConsoleInput::is_wanted`]), and keeps typed bytes for its own prompt otherwise.
pub struct ConsoleInput {
    reader: PipeReader,
    wanted: Arc<AtomicBool>,
}

/// The shell's side of a [`ConsoleInput`]: where typed lines go, and whether the application is reading.
pub struct ConsoleFeed {
    /// Typed lines (each ending in `\n`) go here; dropping it ends the application's input (Ctrl-D).
    pub writer: PipeWriter,
    wanted: Arc<AtomicBool>,
}

impl ConsoleFeed {
    /// Whether a task is blocked reading this console input now.
    pub fn is_wanted(&self) -> bool {
        self.wanted.load(Ordering::Acquire)
    }
}

/// A console input pair: the application's end and the shell's.
pub fn console_input() -> (ConsoleInput, ConsoleFeed) {
    let (writer, reader) = pipe();
    let wanted = Arc::new(AtomicBool::new(false));
    (ConsoleInput { reader, wanted: wanted.clone() }, ConsoleFeed { writer, wanted })
}

impl ConsoleInput {
    /// Whether a task is blocked reading it now.
    pub fn is_wanted(&self) -> bool {
        self.wanted.load(Ordering::Acquire)
    }
}

/// Where a task's standard input comes from.
pub enum Input {
    /// Nothing: reads see end of input at once (background jobs, kernel tasks).
    Empty,
    /// Lines typed at the console, passed on by the shell.
    Console(ConsoleInput),
    /// The previous stage of a pipeline.
    Pipe(PipeReader),
}

/// Where a task's standard output goes.
pub enum Output {
    /// The serial console.
    Console,
    /// The next stage of a pipeline.
    Pipe(PipeWriter),
}

/// A write to standard output failed: the pipe's reader is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputClosed;

impl fmt::Display for OutputClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "standard output is closed (the reading end of the pipe has exited)")
    }
}

/// An application task's standard input, standard output and environment (shared by the tasks it starts).
pub struct TaskIo {
    input: Input,
    output: Output,
    environment: Vec<(String, String)>,
    /// Protects: output not sent yet (at most [`CHUNK_BYTES`]). Never held across a send or a receive.
    pending_output: spin::Mutex<Vec<u8>>,
    /// Protects: input received but not returned yet (a partial line). Never held across a receive.
    pending_input: spin::Mutex<Vec<u8>>,
    /// Set once input reached its end (no writer left).
    input_ended: AtomicBool,
    /// When output was last sent (ns since boot).
    last_send_ns: AtomicU64,
    /// Whether the job these tasks form is stopped (Ctrl-Z): a task registering with it stops itself
    /// ([`set_job_stopped`]).
    job_stopped: AtomicBool,
}

impl TaskIo {
    /// Standard input `input`, output `output`, and environment `environment` (name, value pairs).
    pub fn new(input: Input, output: Output, environment: Vec<(String, String)>) -> TaskIo {
        TaskIo {
            input,
            output,
            environment,
            pending_output: spin::Mutex::new(Vec::new()),
            pending_input: spin::Mutex::new(Vec::new()),
            input_ended: AtomicBool::new(false),
            last_send_ns: AtomicU64::new(0),
            job_stopped: AtomicBool::new(false),
        }
    }

    /// The environment: (name, value) pairs in the order the shell gave them.
    pub fn environment(&self) -> &[(String, String)] {
        &self.environment
    }

    /// Writes `bytes` to standard output (console output goes out at once; pipe output is collected).
    ///
    /// # Errors
    /// [`OutputClosed`] if the output is a pipe whose reader is gone (the bytes are dropped).
    pub fn write(&self, bytes: &[u8]) -> Result<(), OutputClosed> {
        let Output::Pipe(writer) = &self.output else {
            write_console(bytes);
            return Ok(());
        };
        for piece in bytes.chunks(CHUNK_BYTES) {
            let full = {
                let mut pending = self.pending_output.lock();
                if pending.len() + piece.len() > CHUNK_BYTES {
                    Some(core::mem::replace(&mut *pending, Vec::from(piece)))
                } else {
                    pending.extend_from_slice(piece);
                    None
                }
            };
            if let Some(chunk) = full {
                self.send(writer, chunk)?;
            }
        }
        let due = tsc::now_ns().saturating_sub(self.last_send_ns.load(Ordering::Relaxed)) >= FLUSH_INTERVAL_NS;
        if due && bytes.contains(&b'\n') { self.flush() } else { Ok(()) }
    }

    fn send(&self, writer: &PipeWriter, chunk: Vec<u8>) -> Result<(), OutputClosed> {
        self.last_send_ns.store(tsc::now_ns(), Ordering::Relaxed);
        let dying = scheduler::current_task().is_some_and(|task| task.is_kill_requested());
        writer.send(chunk, dying)
    }

    /// Sends the collected output now.
    ///
    /// # Errors
    /// [`OutputClosed`] as for [`write`](Self::write).
    pub fn flush(&self) -> Result<(), OutputClosed> {
        let Output::Pipe(writer) = &self.output else { return Ok(()) };
        let chunk = core::mem::take(&mut *self.pending_output.lock());
        if chunk.is_empty() { Ok(()) } else { self.send(writer, chunk) }
    }

    /// The next line of standard input without its `\n` (bytes that are not UTF-8 become U+FFFD), or `None` at
    /// the end of input. A line longer than [`MAX_INPUT_LINE`] bytes comes back in pieces of that size.
    pub fn read_line(&self) -> Option<String> {
        // Output sent before waiting, so a prompt printed without a newline is seen.
        // A closed output only means nobody reads what we print; input may still be worth reading.
        let _ = self.flush();
        let (reader, wanted) = match &self.input {
            Input::Empty => return None,
            Input::Console(console) => (&console.reader, Some(&console.wanted)),
            Input::Pipe(reader) => (reader, None),
        };
        loop {
            if let Some(line) = self.take_line() {
                return Some(line);
            }
            if self.input_ended.load(Ordering::Acquire) {
                let rest = core::mem::take(&mut *self.pending_input.lock());
                return (!rest.is_empty()).then(|| String::from_utf8_lossy(&rest).into_owned());
            }
            if let Some(wanted) = wanted {
                wanted.store(true, Ordering::Release);
            }
            let received = reader.receiver.receive();
            if let Some(wanted) = wanted {
                wanted.store(false, Ordering::Release);
            }
            match received {
                Ok(chunk) => self.pending_input.lock().extend_from_slice(&chunk),
                Err(channel::ReceiveError) => self.input_ended.store(true, Ordering::Release),
            }
        }
    }

    /// A complete line (or a [`MAX_INPUT_LINE`] piece) from the received input, if there is one.
    fn take_line(&self) -> Option<String> {
        let mut pending = self.pending_input.lock();
        let (end, skip) = match pending.iter().position(|&byte| byte == b'\n') {
            Some(newline) if newline <= MAX_INPUT_LINE => (newline, 1),
            _ if pending.len() >= MAX_INPUT_LINE => (MAX_INPUT_LINE, 0),
            _ => return None,
        };
        let line = String::from_utf8_lossy(&pending[..end]).into_owned();
        pending.drain(..end + skip);
        Some(line)
    }
}

impl Drop for TaskIo {
    fn drop(&mut self) {
        // The last task using this I/O has ended: send what is left. A closed reader leaves nobody to tell.
        let _ = self.flush();
    }
}

/// The I/O of each task that has one, by task id. Protects: the map only; nothing else is locked, and nothing
/// blocks, while it is held: every reader and writer of a pipe takes it ([`current`]) on each read and write, so
/// a holder that blocked on a pipe could wait for a task spinning on this lock (see `Registration::drop`). Held
/// with interrupts disabled, so its holder is never preempted: a pipeline stage never spins against a holder
/// switched out on its own CPU (a whole time slice under round robin; for good under the priority policy, where
/// a higher-priority spinner would keep the holder from running). No `Arc<TaskIo>` is dropped under it (the last
/// reference flushes, which may block). It records its holder (`sync::OwnedIrqMutex`): in the fault campaign
/// (session 13) a fault inside `Registration::drop`'s critical section left it taken, and the same task's failure
/// callback ([`unregister`]) spun on it until the NMI watchdog, then every task that printed; now the spinner
/// takes over a lock whose holder token lies on its own stack or on a task that cannot be inside the section.
static TASK_IO: OwnedIrqMutex<BTreeMap<TaskId, Arc<TaskIo>>> = OwnedIrqMutex::new(BTreeMap::new());

/// For fault-path tests: takes the task-I/O registry's lock and forgets the guard, as a fault at an instruction
/// inside a critical section leaves it (no landing pad covers such an instruction, so the guard is never dropped);
/// interrupts stay disabled. The caller must not touch the registry afterwards and should fault or end: the next
/// user must take the lock over from it.
pub fn leak_registry_lock_for_test() {
    core::mem::forget(TASK_IO.lock());
}

/// The current task's I/O, if it has one (application tasks and the tasks they start).
pub fn current() -> Option<Arc<TaskIo>> {
    let id = scheduler::current_task()?.id();
    TASK_IO.lock().get(&id).cloned()
}

/// Marks the job using `io` stopped or running, and returns the job's tasks: those registered with `io` (an
/// application's task and the tasks it started with its standard I/O, e.g. the runs of
/// `app_io::run_restartable_main` and the workers they spawn; the job is a process group), in id order. For the
/// shell's job control, which stops (`scheduler::stop`) or resumes them; a task that registers with a stopped
/// job's I/O afterwards (one being spawned while Ctrl-Z comes, or whose body had not started) stops itself.
pub fn set_job_stopped(io: &Arc<TaskIo>, stopped: bool) -> Vec<TaskId> {
    let map = TASK_IO.lock();
    io.job_stopped.store(stopped, Ordering::Release);
    map.iter().filter(|(_, other_io)| Arc::ptr_eq(other_io, io)).map(|(id, _)| *id).collect()
}

/// Writes `bytes` to the current task's standard output (the console for a task without [`TaskIo`]).
///
/// A kill safe point (`scheduler::kill_point`) before and after the write: a killed task (the shell's Ctrl-C,
/// or the remaining stages of a pipeline whose reader exited, as `SIGPIPE` would) is unwound from this call, with
/// every `Drop` run, instead of running on until the kill's deferral limit ends it without unwinding.
///
/// # Errors
/// [`OutputClosed`] if it is a pipe whose reader is gone.
pub fn write_output(bytes: &[u8]) -> Result<(), OutputClosed> {
    scheduler::kill_point();
    let written = match current() {
        Some(io) => io.write(bytes),
        None => {
            write_console(bytes);
            Ok(())
        }
    };
    scheduler::kill_point();
    written
}

/// Writes `bytes` to the serial console one line per lock acquisition (so a long write does not hold COM1).
fn write_console(bytes: &[u8]) {
    for line in bytes.split_inclusive(|&byte| byte == b'\n') {
        serial::write_bytes(line);
    }
}

/// The next line of the current task's standard input (see [`TaskIo::read_line`]); `None` at its end, and at
/// once for a task without [`TaskIo`].
///
/// A kill safe point (`scheduler::kill_point`) before and after the read, as for [`write_output`].
pub fn read_line() -> Option<String> {
    scheduler::kill_point();
    let line = current()?.read_line();
    scheduler::kill_point();
    line
}

/// The current task's registration of its [`TaskIo`]: made as its body starts, removed when dropped (as the
/// body returns or unwinds), which flushes the output.
pub(crate) struct Registration {
    id: Option<TaskId>,
}

impl Registration {
    /// Registers `io` for the current task.
    pub(crate) fn new(io: Arc<TaskIo>) -> Registration {
        let id = scheduler::current_task().map(|task| task.id());
        if let Some(id) = id {
            let stopped = io.job_stopped.load(Ordering::Acquire);
            // A replaced entry (none is expected: ids are not reused) is dropped after the lock, as in `unregister`.
            let replaced = TASK_IO.lock().insert(id, io.clone());
            drop(replaced);
            // Registered (so `set_job_stopped` lists it) before looking at the flag again: a stop set meanwhile
            // is seen here or reaches this task through the list.
            if stopped || io.job_stopped.load(Ordering::Acquire) {
                // Parks at its next safe point, until the job is resumed.
                let _ = scheduler::stop(id);
            }
        }
        Registration { id }
    }
}

/// Forgets the I/O of task `id` (its failure callback calls this too, in case the body's drops were skipped).
pub(crate) fn unregister(id: TaskId) {
    let io = TASK_IO.lock().remove(&id);
    // Dropped outside the lock: the last reference flushes, which may block.
    drop(io);
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            // Looked up in a statement of its own, so the map's lock is released before the flush: in an `if let`
            // scrutinee the guard would live until the end of the block, and the flush blocks while the pipe is
            // full. The reader then needs this lock for its own `current()` on every read: it spun on it forever
            // while the writer waited for it to make room (the intermittent `yes abcdefghi 10000 | wc` hang).
            let io = TASK_IO.lock().get(&id).cloned();
            if let Some(io) = io {
                // Reader gone: the output is dropped, as every later write would be; nobody is left to tell.
                let _ = io.flush();
            }
            unregister(id);
        }
    }
}
