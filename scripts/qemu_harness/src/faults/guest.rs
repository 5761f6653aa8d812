//! One booted guest for the campaign: the serial session, the gdb stub connection, and the commands the
//! campaign needs (run a workload while a fault is injected, read the fault log, check health).

use super::inject::{SectionRange, parse_ranges};
use super::points::{Function, parse_functions};
use super::workload::{Workload, committed_before_restart, result_lines, retry_reason};
use crate::expected as e;
use crate::gdb_remote::{GdbError, GdbRemote};
use crate::qemu::{Firmware, QemuConfig};
use crate::session::{Failure, Session, StepResult, Typing};
use crate::transcript::command_output;
use regex::Regex;
use std::path::Path;
use std::time::{Duration, Instant};

/// Serial lines that show a fault was taken (the CPU exception report, the task-fault trace, a panic, a CPU
/// stopped by the fault path, an unwind that ended outside a task), or that a fault's effect was detected without
/// an exception: a restartable run killed at its deadline (`app_io::RestartableTask::wait_with_deadline`: the run
/// stopped making progress, e.g. waiting for a message a corrupted receive path lost).
pub const FAULT_MARKERS: &str = r"CPU EXCEPTION|faulted; stack trace|panicked|stopping this CPU|unwinding ended|cannot unwind|failed: exception|run past its \d+ ms deadline";

/// What an injector does on each tick while a workload runs: `None` while it has nothing to do yet,
/// `Some(Ok(detail))` once the fault is in, `Some(Err(..))` if the stub failed.
pub type Injector<'a> = dyn FnMut(&mut GdbRemote, &[SectionRange]) -> Option<Result<String, GdbError>> + 'a;

/// The booted guest.
pub struct Guest {
    session: Session,
    /// The gdb stub connection (the guest runs while no request is made).
    pub gdb: GdbRemote,
    /// Text, rodata and data ranges of the cells loaded at boot (refreshed by [`Guest::refresh_ranges`]).
    pub ranges: Vec<SectionRange>,
    /// Function listings (`sections CELL`) fetched so far, by cell.
    listings: std::collections::BTreeMap<String, Vec<Function>>,
    prompt: Regex,
    markers: Regex,
    /// How often [`Guest::run_workload`] calls its injector (5 ms unless changed, e.g. for profiling).
    pub poll_slice: Duration,
}

/// One workload run.
#[derive(Debug, Clone)]
pub struct WorkloadRun {
    /// Every command gave the prompt back (`None`), or the first that did not and why.
    pub stuck: Option<(String, Failure)>,
    /// The commands' outputs, one after the other.
    pub output: String,
    /// The result lines.
    pub result: Vec<String>,
    /// Wall-clock duration.
    pub duration: Duration,
    /// The injector's report, if it injected.
    pub injected: Option<Result<String, GdbError>>,
    /// Commands typed again and why (see [`retry_reason`]).
    pub retries: Vec<String>,
}

/// How often one command is typed again at most (see [`retry_reason`]).
pub const RETRIES_PER_COMMAND: usize = 2;

impl Guest {
    /// Boots `iso` with a gdb stub on a free local port; waits for the prompt; lets the guest run.
    ///
    /// # Errors
    /// QEMU does not start, no prompt within `boot_timeout`, or the stub does not answer.
    pub fn boot(
        qemu: &QemuConfig,
        iso: &Path,
        typing: &Typing,
        log: &Path,
        boot_timeout: Duration,
    ) -> StepResult<Guest> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| Failure(format!("no free port: {e}")))?
            .port();
        let mut config = qemu.clone();
        config.extra.extend(["-gdb".to_string(), format!("tcp:127.0.0.1:{port}")]);
        let log = std::fs::File::create(log).map_err(|e| Failure(format!("{}: {e}", log.display())))?;
        let mut session = Session::spawn(
            &mut config.command(iso, Firmware::Bios),
            Duration::from_secs(24 * 3600),
            typing.clone(),
            Some(log),
        )?;
        let prompt = Regex::new(e::PROMPT).map_err(|e| Failure(e.to_string()))?;
        session.expect(&prompt, boot_timeout)?;
        let mut gdb = GdbRemote::connect(port, Duration::from_secs(10)).map_err(|e| Failure(e.to_string()))?;
        gdb.resume().map_err(|e| Failure(e.to_string()))?;
        let markers = Regex::new(FAULT_MARKERS).map_err(|e| Failure(e.to_string()))?;
        let mut guest = Guest {
            session,
            gdb,
            ranges: Vec::new(),
            listings: std::collections::BTreeMap::new(),
            prompt,
            markers,
            poll_slice: Duration::from_millis(5),
        };
        guest.refresh_ranges()?;
        Ok(guest)
    }

    /// Reads the section ranges again (`sections`), e.g. after the golden runs loaded the applications or a swap
    /// moved cells; drops the function listings of cells whose text moved or is gone.
    ///
    /// # Errors
    /// The command does not give the prompt back.
    pub fn refresh_ranges(&mut self) -> StepResult<()> {
        let output = self.command("sections", Duration::from_secs(30))?;
        let ranges = parse_ranges(&output);
        // A cell whose text moved or went away (a swap reloads cells) has a stale function listing.
        let text = |ranges: &[SectionRange], cell: &str| {
            ranges.iter().find(|range| range.cell == cell && range.kind == "Text").map(|range| range.start..range.end)
        };
        self.listings.retain(|cell, _| text(&ranges, cell) == text(&self.ranges, cell));
        self.ranges = ranges;
        Ok(())
    }

    /// Types `command` and returns its output.
    ///
    /// # Errors
    /// No prompt within `timeout`.
    pub fn command(&mut self, command: &str, timeout: Duration) -> StepResult<String> {
        let prompt = self.prompt.clone();
        self.session.command(command, &prompt, timeout)
    }

    /// The functions of `cell` (`sections CELL`; fetched once per boot: the addresses do not change).
    ///
    /// # Errors
    /// The command does not give the prompt back.
    pub fn functions(&mut self, cell: &str) -> StepResult<Vec<Function>> {
        if let Some(functions) = self.listings.get(cell) {
            return Ok(functions.clone());
        }
        let functions = parse_functions(&self.command(&format!("sections {cell}"), Duration::from_secs(60))?);
        self.listings.insert(cell.to_string(), functions.clone());
        Ok(functions)
    }

    /// Every function listing fetched so far.
    pub fn known_functions(&self) -> Vec<Function> {
        self.listings.values().flatten().cloned().collect()
    }

    /// Writes a note into the serial log.
    pub fn note(&mut self, text: &str) {
        self.session.note(text);
    }

    /// Whether QEMU's output closed (it exited).
    pub fn exited(&self) -> bool {
        self.session.output_closed()
    }

    /// Runs `workload`, each command within `timeout`, calling `injector` every [`Guest::poll_slice`] until it
    /// reports. A command
    /// whose output shows it was lost (the shell restarted) or failed transactionally (a swap) is typed again, up
    /// to [`RETRIES_PER_COMMAND`] times; only the last attempt's output counts (a result line repeated exactly
    /// in it is counted once after a retry).
    pub fn run_workload(
        &mut self,
        workload: Workload,
        timeout: Duration,
        mut injector: Option<&mut Injector<'_>>,
    ) -> WorkloadRun {
        let started = Instant::now();
        let (mut output, mut stuck, mut injected, mut retries) = (String::new(), None, None, Vec::new());
        let mut attempts = workload.commands().iter().map(|&command| (command, 0usize)).collect::<Vec<_>>();
        attempts.reverse();
        // Whether an earlier attempt of the command being typed ran while the shell restarted.
        let mut restarted = false;
        while let Some((command, attempt)) = attempts.pop() {
            if attempt == 0 {
                restarted = false;
            }
            let from = self.session.transcript().cursor();
            if let Err(failure) = self.session.send_line(command) {
                stuck = Some((command.to_string(), failure));
                break;
            }
            let until = Instant::now() + timeout;
            let found = loop {
                let slice =
                    if injected.is_none() && injector.is_some() { self.poll_slice } else { Duration::from_millis(500) };
                match self.session.expect(&self.prompt, slice.min(until.saturating_duration_since(Instant::now()))) {
                    Ok(found) => break Ok(found),
                    Err(failure) if self.session.output_closed() || Instant::now() >= until => break Err(failure),
                    Err(_) => {}
                }
                if injected.is_none()
                    && let Some(inject) = injector.as_mut()
                {
                    injected = inject(&mut self.gdb, &self.ranges);
                }
            };
            match found {
                Ok(found) => {
                    let raw = self.session.transcript().text_between(from, found.start);
                    let this = command_output(&raw, command);
                    if restarted && committed_before_restart(command, &this) {
                        retries.push(format!("`{command}` had committed before the shell restarted"));
                        output += "swap: done (committed before the shell restarted)\n";
                        continue;
                    }
                    if let Some(reason) = retry_reason(&this)
                        && attempt < RETRIES_PER_COMMAND
                    {
                        restarted |= reason == "shell restarted";
                        retries.push(format!("`{command}` typed again ({reason})"));
                        attempts.push((command, attempt + 1));
                        continue;
                    }
                    output += &this;
                    output.push('\n');
                }
                Err(failure) => {
                    stuck = Some((command.to_string(), failure));
                    break;
                }
            }
        }
        let mut result = result_lines(workload, &output);
        if !retries.is_empty() {
            // The abandoned attempt's application may run on after its shell restarted and print its (right or
            // wrong) result during the next attempt: a line repeated exactly is counted once.
            result.dedup();
        }
        WorkloadRun { stuck, output, result, duration: started.elapsed(), injected, retries }
    }

    /// The fault log's records (`faults`) as (time in µs, line) pairs.
    ///
    /// # Errors
    /// No prompt within `timeout`.
    pub fn fault_records(&mut self, timeout: Duration) -> StepResult<Vec<(u64, String)>> {
        let output = self.command("faults", timeout)?;
        let record = Regex::new(r"^\[\s*(\d+)\.(\d{6})\] task ").expect("valid");
        Ok(output
            .lines()
            .filter_map(|line| {
                let captures = record.captures(line)?;
                let seconds: u64 = captures[1].parse().ok()?;
                let micros: u64 = captures[2].parse().ok()?;
                Some((seconds * 1_000_000 + micros, line.trim_end().to_string()))
            })
            .collect())
    }

    /// The first serial line since `from` that shows a fault (see [`FAULT_MARKERS`]).
    pub fn fault_line_since(&self, from: crate::transcript::Position) -> Option<String> {
        self.session.transcript().find_from(from, &self.markers).map(|found| found.line)
    }

    /// The transcript position now (to look for fault lines later).
    pub fn mark(&self) -> crate::transcript::Position {
        self.session.transcript().cursor()
    }

    /// Whether the shell answers `echo` within `timeout`.
    pub fn healthy(&mut self, timeout: Duration) -> bool {
        self.command("echo fi-health", timeout).is_ok_and(|output| output.contains("fi-health"))
    }
}

#[cfg(test)]
mod tests {
    use super::FAULT_MARKERS;
    use regex::Regex;

    #[test]
    fn fault_markers_match_fault_lines_and_deadline_kills_only() {
        let markers = Regex::new(FAULT_MARKERS).unwrap();
        for line in [
            "CPU EXCEPTION #PF page fault (vector 14) on CPU 0, error code 0x0",
            "PANIC: panicked at applications/ping_pong/src/lib.rs:97:9:",
            "[    1.2] WARN  app_io::restart: restartable task 31: run past its 1003 ms deadline; killing it",
        ] {
            assert!(markers.is_match(line), "{line}");
        }
        for line in ["ping_pong: 8 rounds, 32 messages each, checksum 0x1", "task 12 killed", "restarting task"] {
            assert!(!markers.is_match(line), "{line}");
        }
    }
}
