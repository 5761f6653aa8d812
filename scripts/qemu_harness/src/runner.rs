//! Running one scenario: boot QEMU, type each step, check the output (the table itself is in
//! [`crate::scenarios`]).

use crate::expected as e;
use crate::monitor::Monitor;
use crate::qemu::Firmware;
use crate::scenarios::{Image, RunConfig, Scenario, Step};
use crate::screendump::Geometry;
use crate::session::{Failure, Session, StepResult};
use crate::transcript::Position;
use regex::Regex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs one scenario; `Ok` means it passed.
///
/// # Errors
/// The first failed step, as a one-line reason.
pub fn run(scenario: &Scenario, config: &RunConfig) -> StepResult<()> {
    let iso = match scenario.image {
        Image::Normal => &config.iso,
        Image::Corrupt => &config.corrupt_iso,
    };
    if !iso.exists() {
        return Err(Failure(format!("{} does not exist (run `make iso`)", iso.display())));
    }
    let log = open_log(&config.log_dir, scenario.name)?;
    let mut qemu = config.qemu.clone();
    if let Some(cpus) = scenario.cpus {
        qemu.cpus = cpus;
    }
    qemu.extra
        .extend(crate::scenarios::extra_qemu_arguments(scenario.name).iter().map(|argument| argument.to_string()));
    if let Some(hardware) = crate::usb_matrix::hardware(scenario.name) {
        hardware.apply(&mut qemu);
    }
    let monitor_socket = config.log_dir.join(format!("{}.monitor.sock", scenario.name));
    if scenario.name.starts_with("screen") {
        // A stale socket from an earlier run would make QEMU fail to bind; a missing one is fine.
        let _ = std::fs::remove_file(&monitor_socket);
        qemu.extra.extend(["-monitor".into(), format!("unix:{},server=on,wait=off", monitor_socket.display())]);
    }
    let mut command = qemu.command(iso, scenario.firmware);
    let mut session = Session::spawn(&mut command, config.scenario_timeout, config.typing.clone(), Some(log))?;
    session.note(&format!("{} {}", qemu.binary.display(), qemu.arguments(iso, scenario.firmware).join(" ")));
    let result = run_steps(scenario, config, &mut session, &monitor_socket);
    match &result {
        Ok(()) => session.note(&format!("PASS after {:.2} s", session.elapsed().as_secs_f64())),
        Err(failure) => session.note(&format!("FAIL: {failure}")),
    }
    result
}

fn run_steps(scenario: &Scenario, config: &RunConfig, session: &mut Session, monitor_socket: &Path) -> StepResult<()> {
    let mut monitor: Option<Monitor> = None;
    let prompt = compile(e::PROMPT)?;
    let boot_timeout = match scenario.firmware {
        Firmware::Bios => config.boot_timeout,
        Firmware::Uefi => config.boot_timeout * 2,
    };
    let mut booted = false;
    let mut saved: BTreeMap<&str, String> = BTreeMap::new();
    let mut captured: BTreeMap<&str, String> = BTreeMap::new();
    for step in scenario.steps {
        let wait = if booted { config.command_timeout } else { boot_timeout };
        match *step {
            Step::Expect(pattern) => {
                session.expect(&compile(pattern)?, wait)?;
            }
            Step::ExpectAnywhere(pattern) => {
                session.expect_anywhere(&compile(pattern)?, wait)?;
            }
            Step::Type(text) => {
                session.note(&format!("type {text:?}"));
                session.send_text(text)?;
            }
            Step::TypeBytes { bytes, times } => {
                session.note(&format!("type {bytes:?} x {times}"));
                session.send_bytes(&bytes.repeat(times))?;
            }
            Step::ExpectCorruptObjectError => {
                session.expect(&compile(&e::corrupt_object_error(&config.corrupt_object))?, wait)?;
            }
            Step::Prompt => {
                session.expect(&prompt, wait)?;
                booted = true;
            }
            Step::Command { line, expect, reject, save } => {
                let line = substitute(line, &captured)?;
                session.note(&format!("send {line:?}"));
                let output = session.command(&line, &prompt, wait)?;
                check_output(&line, &output, expect, reject)?;
                if let Some(name) = save {
                    saved.insert(name, output);
                }
            }
            Step::Capture { line, pattern, name } => {
                session.note(&format!("send {line:?}"));
                let output = session.command(line, &prompt, wait)?;
                captured.insert(name, capture(line, &output, pattern)?);
            }
            Step::CaptureThenCommand { capture_line, pattern, name, line, expect, attempts } => {
                let mut result = Ok(());
                for attempt in 0..attempts.max(1) {
                    session.note(&format!("send {capture_line:?} (attempt {})", attempt + 1));
                    let output = session.command(capture_line, &prompt, wait)?;
                    captured.insert(name, capture(capture_line, &output, pattern)?);
                    let typed = substitute(line, &captured)?;
                    session.note(&format!("send {typed:?}"));
                    let output = session.command(&typed, &prompt, wait)?;
                    result = check_output(&typed, &output, expect, &[]);
                    if result.is_ok() {
                        break;
                    }
                }
                result?;
            }
            Step::Retry { line, expect, attempts } => {
                let line = substitute(line, &captured)?;
                let line = line.as_str();
                let mut result = Ok(());
                for attempt in 0..attempts.max(1) {
                    if attempt > 0 {
                        std::thread::sleep(std::time::Duration::from_millis(250));
                    }
                    session.note(&format!("send {line:?} (attempt {})", attempt + 1));
                    let output = session.command(line, &prompt, wait)?;
                    result = check_output(line, &output, expect, &[]);
                    if result.is_ok() {
                        break;
                    }
                }
                result?;
            }
            Step::HostComputed { line, lines } => {
                session.note(&format!("send {line:?}"));
                let output = session.command(line, &prompt, wait)?;
                let patterns: Vec<String> = lines().iter().map(|text| format!("^{}$", regex::escape(text))).collect();
                let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
                check_output(line, &output, &patterns, &[])?;
            }
            Step::AllTestsPass => {
                session.note("send \"test\"");
                let output = session.command("test", &prompt, wait)?;
                check_all_tests_passed(&output, e::TEST_CELLS)?;
            }
            Step::BootLogLacks(pattern) => {
                let regex = compile(pattern)?;
                if let Some(line) = session.transcript().lines().iter().find(|line| regex.is_match(line)) {
                    return Err(Failure(format!("boot output has {line:?} (matches /{pattern}/)")));
                }
            }
            Step::SameOutput(first, second) => {
                let (a, b) = (saved.get(first), saved.get(second));
                if a.is_none() || a != b {
                    return Err(Failure(format!(
                        "`{first}` and `{second}` differ: {:?} vs {:?}",
                        a.map(String::as_str).unwrap_or("<missing>"),
                        b.map(String::as_str).unwrap_or("<missing>")
                    )));
                }
            }
            Step::Screen { keys, expect, reject } => {
                if monitor.is_none() {
                    monitor = Some(Monitor::connect(monitor_socket, wait)?);
                }
                let monitor = monitor.as_mut().expect("connected above");
                let reader = screen_reader(scenario, config, session)?;
                screen_step(monitor, session, &reader, keys, expect, reject, wait)?;
            }
            Step::Exit { line, status } => {
                session.note(&format!("send {line:?}"));
                session.send_line(line)?;
                let exit = session.wait_for_exit(config.command_timeout)?;
                if exit.code() != Some(status) {
                    return Err(Failure(format!(
                        "`{line}`: QEMU {} (expected exit status {status})",
                        crate::session::describe_status(Some(exit))
                    )));
                }
            }
        }
    }
    Ok(())
}

/// How a [`Step::Screen`] reads the screen back.
enum ScreenReader {
    /// The VGA text buffer (`xp`); the final rows are also checked against a `screendump` written to the path.
    Text(PathBuf),
    /// A `screendump` of the framebuffer console, written to the path and decoded with the geometry.
    Framebuffer(Geometry, PathBuf),
}

/// The framebuffer console if the guest logged one (required under UEFI, which has no text mode), else VGA text.
fn screen_reader(scenario: &Scenario, config: &RunConfig, session: &Session) -> StepResult<ScreenReader> {
    let pattern = compile(Geometry::LOG_PATTERN)?;
    let logged = session.transcript().find_from(Position { line: 0, column: 0 }, &pattern);
    match logged.and_then(|found| Geometry::from_log_line(&found.line)) {
        Some(geometry) => {
            Ok(ScreenReader::Framebuffer(geometry, config.log_dir.join(format!("{}.ppm", scenario.name))))
        }
        None if scenario.firmware == Firmware::Uefi => {
            Err(Failure("the guest logged no framebuffer console (`screen console: framebuffer ...`)".into()))
        }
        None => Ok(ScreenReader::Text(config.log_dir.join(format!("{}.ppm", scenario.name)))),
    }
}

/// Runs a [`Step::Screen`]: prompt on the screen, keys, then the screen checked until it matches or `wait` ends.
fn screen_step(
    monitor: &mut Monitor,
    session: &mut Session,
    reader: &ScreenReader,
    keys: &str,
    expect: &[&str],
    reject: &[&str],
    wait: Duration,
) -> StepResult<()> {
    let prompt = compile(e::SCREEN_PROMPT)?;
    poll_screen(monitor, reader, wait, |rows| {
        let last = rows.iter().rev().find(|row| !row.is_empty()).map_or("", String::as_str);
        if prompt.is_match(last) { Ok(()) } else { Err(Failure(format!("no prompt on the screen: {rows:#?}"))) }
    })?;
    session.note(&format!("screen: sendkey {keys}"));
    monitor.send_keys(keys)?;
    let rows = poll_screen(monitor, reader, wait, |rows| check_output(keys, &rows.join("\n"), expect, reject))?;
    session.note(&format!("screen after the keys:\n{}", rows.join("\n")));
    if let ScreenReader::Text(path) = reader {
        crate::screendump::check_vga_dump(&monitor.screendump(path)?, &rows)?;
        session.note("screen: the VGA screendump lights exactly the rows holding text");
    }
    Ok(())
}

/// Reads the screen every 250 ms until `check` passes (returns the rows) or `wait` ends (its last error).
fn poll_screen(
    monitor: &mut Monitor,
    reader: &ScreenReader,
    wait: Duration,
    check: impl Fn(&[String]) -> StepResult<()>,
) -> StepResult<Vec<String>> {
    let started = std::time::Instant::now();
    loop {
        let rows = match reader {
            ScreenReader::Text(_) => monitor.text_screen()?,
            ScreenReader::Framebuffer(geometry, path) => monitor.framebuffer_screen(path, geometry)?.rows,
        };
        match check(&rows) {
            Ok(()) => return Ok(rows),
            Err(failure) if started.elapsed() > wait => return Err(failure),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// Checks a command's output: every `expect` pattern matches a line, in order (a pattern may match the same
/// line as the previous one); no `reject` pattern matches any line.
///
/// # Errors
/// Names the command, the pattern and the output.
pub fn check_output(command: &str, output: &str, expect: &[&str], reject: &[&str]) -> StepResult<()> {
    let lines: Vec<&str> = output.lines().collect();
    let mut next = 0;
    for pattern in expect {
        let regex = compile(pattern)?;
        match lines[next..].iter().position(|line| regex.is_match(line)) {
            Some(offset) => next += offset,
            None => {
                return Err(Failure(format!("`{command}`: no line matching /{pattern}/ in output {output:?}")));
            }
        }
    }
    for pattern in reject {
        let regex = compile(pattern)?;
        if let Some(line) = lines.iter().find(|line| regex.is_match(line)) {
            return Err(Failure(format!("`{command}`: unexpected line {line:?} (matches /{pattern}/)")));
        }
    }
    Ok(())
}

/// Capture group 1 of the first line of `output` matching `pattern`.
///
/// # Errors
/// No line matches, or the pattern has no group 1.
pub fn capture(command: &str, output: &str, pattern: &str) -> StepResult<String> {
    let regex = compile(pattern)?;
    output
        .lines()
        .find_map(|line| regex.captures(line).and_then(|groups| groups.get(1)).map(|group| group.as_str().to_string()))
        .ok_or_else(|| Failure(format!("`{command}`: no line matching /{pattern}/ in output {output:?}")))
}

/// `line` with each `{name}` replaced by the value captured under `name` (a `${...}` is shell syntax, kept).
///
/// # Errors
/// A `{name}` that nothing captured.
pub fn substitute(line: &str, captured: &BTreeMap<&str, String>) -> StepResult<String> {
    let mut result = String::new();
    let mut rest = line;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map(|offset| open + offset);
        let Some(close) = close else { break };
        let name = &rest[open + 1..close];
        if rest[..open].ends_with('$') {
            result.push_str(&rest[..=close]);
            rest = &rest[close + 1..];
            continue;
        }
        let value = captured.get(name).ok_or_else(|| Failure(format!("`{line}`: nothing captured as `{name}`")))?;
        result.push_str(&rest[..open]);
        result.push_str(value);
        rest = &rest[close + 1..];
    }
    result.push_str(rest);
    Ok(result)
}

/// Checks `test`'s output: every cell of `cells` printed `<cell>: ok`, no cell failed, and the summary says
/// exactly `cells.len()` passed and none failed.
///
/// # Errors
/// Names the missing cell, the failed line or the wrong count.
pub fn check_all_tests_passed(output: &str, cells: &[&str]) -> StepResult<()> {
    check_output("test", output, &[], &[e::TEST_CELL_FAILED])?;
    for cell in cells {
        let pattern = e::test_cell_passed(cell);
        let regex = compile(&pattern)?;
        if !output.lines().any(|line| regex.is_match(line)) {
            return Err(Failure(format!("`test`: no `{cell}: ok` line (cell missing from the image, or it failed)")));
        }
    }
    let passed = capture("test", output, e::TEST_SUMMARY_NONE_FAILED)?;
    if passed != cells.len().to_string() {
        return Err(Failure(format!(
            "`test`: {passed} cells passed, expected exactly {} ({}); list new test cells in expected::TEST_CELLS",
            cells.len(),
            cells.join(", ")
        )));
    }
    Ok(())
}

pub(crate) fn compile(pattern: &str) -> StepResult<Regex> {
    Regex::new(pattern).map_err(|e| Failure(format!("bad pattern /{pattern}/: {e}")))
}

fn open_log(dir: &Path, name: &str) -> StepResult<std::fs::File> {
    std::fs::create_dir_all(dir).map_err(|e| Failure(format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!("{name}.log"));
    std::fs::File::create(&path).map_err(|e| Failure(format!("{}: {e}", path.display())))
}
