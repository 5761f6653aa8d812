//! One running guest (or any child process speaking on stdin/stdout), driven like a person at a terminal.
//!
//! A reader thread per output pipe forwards chunks over a channel; the driving thread strips escapes, appends
//! to the [`Transcript`] and the log, and waits with timeouts. Every wait is also bounded by a hard deadline for
//! the whole session; when anything times out the child is killed (also on drop).

use crate::ansi::AnsiStripper;
use crate::transcript::{Found, Position, Transcript};
use regex::Regex;
use std::fs::File;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Why a session step failed: one line, for a `FAIL` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Result alias for session steps.
pub type StepResult<T> = Result<T, Failure>;

enum Event {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Closed,
}

/// How to type: line ending and the pause after each character.
#[derive(Debug, Clone)]
pub struct Typing {
    /// Sent after each line (`"\r"`: what a terminal sends for Enter).
    pub line_ending: String,
    /// Pause after each byte sent. The kernel polls the UART; QEMU holds bytes back while the UART's receive
    /// buffer is full, so this mostly makes the echo readable in logs.
    pub char_delay: Duration,
}

/// A running child with its transcript and log.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Event>,
    open_pipes: usize,
    stripper: AnsiStripper,
    transcript: Transcript,
    log: Option<File>,
    started: Instant,
    deadline: Instant,
    typing: Typing,
    status: Option<ExitStatus>,
}

impl Session {
    /// Starts `command` with piped stdin/stdout/stderr; the whole session must end within `hard_timeout`.
    ///
    /// # Errors
    /// The program cannot be started.
    pub fn spawn(
        command: &mut Command,
        hard_timeout: Duration,
        typing: Typing,
        log: Option<File>,
    ) -> StepResult<Session> {
        let started = Instant::now();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Failure(format!("cannot start {:?}: {e}", command.get_program())))?;
        let (sender, events) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let out_sender = sender.clone();
        std::thread::spawn(move || forward(stdout, out_sender, Event::Stdout));
        std::thread::spawn(move || forward(stderr, sender, Event::Stderr));
        let stdin = child.stdin.take();
        Ok(Session {
            child,
            stdin,
            events,
            open_pipes: 2,
            stripper: AnsiStripper::new(),
            transcript: Transcript::new(),
            log,
            started,
            deadline: started + hard_timeout,
            typing,
            status: None,
        })
    }

    /// Time since the child was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether the child's output is closed (it exited), as far as received so far.
    pub fn output_closed(&self) -> bool {
        self.open_pipes == 0
    }

    /// The transcript so far.
    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// Waits until `pattern` matches a line after the cursor (see [`Transcript::expect`]).
    ///
    /// # Errors
    /// Timeout (`timeout`, or the session's hard deadline), or the child exited first.
    pub fn expect(&mut self, pattern: &Regex, timeout: Duration) -> StepResult<Found> {
        let until = (Instant::now() + timeout).min(self.deadline);
        loop {
            if let Some(found) = self.transcript.expect(pattern) {
                return Ok(found);
            }
            if !self.receive_until(until) {
                let why = if self.open_pipes == 0 {
                    let status = self.wait_for_exit(Duration::from_secs(5)).ok();
                    format!("the guest exited ({}) before", describe_status(status))
                } else if Instant::now() >= self.deadline {
                    "hard session timeout while waiting for".to_string()
                } else {
                    format!("timed out after {:.0} s waiting for", timeout.as_secs_f64())
                };
                return Err(Failure(format!(
                    "{why} /{}/ (last output: {:?})",
                    pattern.as_str(),
                    self.transcript.tail(3).join(" | ")
                )));
            }
        }
    }

    /// Receives one batch of output, waiting at most until `until`. Returns false on timeout or when the
    /// child's output is closed.
    fn receive_until(&mut self, until: Instant) -> bool {
        if self.open_pipes == 0 {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        match self.events.recv_timeout(until - now) {
            Ok(event) => {
                self.handle(event);
                // Take whatever else is already queued, so matching sees the freshest text.
                while let Ok(event) = self.events.try_recv() {
                    self.handle(event);
                }
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                self.open_pipes = 0;
                false
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Stdout(bytes) => {
                let clean = self.stripper.feed(&bytes);
                self.transcript.push(&clean);
                if let Some(log) = &mut self.log {
                    let _ = log.write_all(&clean);
                }
            }
            Event::Stderr(bytes) => {
                if let Some(log) = &mut self.log {
                    let _ = write!(log, "\n### stderr: {}", String::from_utf8_lossy(&bytes));
                }
            }
            Event::Closed => self.open_pipes = self.open_pipes.saturating_sub(1),
        }
    }

    /// Waits until `pattern` matches any line received so far or later (the cursor is not used or moved): for
    /// output that a background task prints at an unpredictable moment, possibly inside another command's output.
    ///
    /// # Errors
    /// As for [`Session::expect`].
    pub fn expect_anywhere(&mut self, pattern: &Regex, timeout: Duration) -> StepResult<Found> {
        let until = (Instant::now() + timeout).min(self.deadline);
        loop {
            if let Some(found) = self.transcript.find_from(crate::transcript::Position { line: 0, column: 0 }, pattern)
            {
                return Ok(found);
            }
            if !self.receive_until(until) {
                return Err(Failure(format!(
                    "timed out after {:.0} s waiting for /{}/ anywhere in the output",
                    timeout.as_secs_f64(),
                    pattern.as_str()
                )));
            }
        }
    }

    /// Types `text` followed by the line ending.
    ///
    /// # Errors
    /// The child's stdin is closed.
    pub fn send_line(&mut self, text: &str) -> StepResult<()> {
        let line = format!("{text}{}", self.typing.line_ending);
        self.send_text(&line)
    }

    /// Types `text` as it is (no line ending), one byte at a time.
    ///
    /// # Errors
    /// The child's stdin is closed.
    pub fn send_text(&mut self, text: &str) -> StepResult<()> {
        self.send_bytes(text.as_bytes())
    }

    /// Types `bytes` as they are (any bytes, not only UTF-8), one at a time.
    ///
    /// # Errors
    /// The child's stdin is closed.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> StepResult<()> {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]);
        let delay = self.typing.char_delay;
        let stdin = self.stdin.as_mut().ok_or_else(|| Failure("stdin already closed".into()))?;
        for &byte in bytes {
            stdin
                .write_all(&[byte])
                .and_then(|()| stdin.flush())
                .map_err(|e| Failure(format!("cannot type {text:?}: {e}")))?;
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
        }
        Ok(())
    }

    /// Sends `command`, waits for the next `prompt`, and returns the command's output (see
    /// [`crate::transcript::command_output`]).
    ///
    /// # Errors
    /// As for [`Session::expect`].
    pub fn command(&mut self, command: &str, prompt: &Regex, timeout: Duration) -> StepResult<String> {
        let from: Position = self.transcript.cursor();
        self.send_line(command)?;
        let next_prompt = self.expect(prompt, timeout).map_err(|f| Failure(format!("after `{command}`: {f}")))?;
        let raw = self.transcript.text_between(from, next_prompt.start);
        Ok(crate::transcript::command_output(&raw, command))
    }

    /// Waits for the child to exit (reading its remaining output) and returns its status.
    ///
    /// # Errors
    /// It did not exit in time (it is then killed).
    pub fn wait_for_exit(&mut self, timeout: Duration) -> StepResult<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let until = (Instant::now() + timeout).min(self.deadline);
        drop(self.stdin.take());
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                while self.receive_until(Instant::now() + Duration::from_millis(200)) {}
                self.status = Some(status);
                return Ok(status);
            }
            if Instant::now() >= until {
                self.kill();
                return Err(Failure(format!("the guest did not exit within {:.0} s", timeout.as_secs_f64())));
            }
            if !self.receive_until((Instant::now() + Duration::from_millis(50)).min(until)) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Kills the child (if still running) and reaps it.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Writes a harness note into the log on a line of its own.
    pub fn note(&mut self, text: &str) {
        if let Some(log) = &mut self.log {
            let _ = write!(log, "\n### {text}\n");
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `exit status 33` or `killed by a signal` or `unknown`.
pub fn describe_status(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => match status.code() {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_string(),
        },
        None => "status unknown".to_string(),
    }
}

fn forward(mut pipe: impl Read, sender: mpsc::Sender<Event>, wrap: fn(Vec<u8>) -> Event) {
    let mut buffer = [0u8; 4096];
    loop {
        match pipe.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if sender.send(wrap(buffer[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
    let _ = sender.send(Event::Closed);
}
