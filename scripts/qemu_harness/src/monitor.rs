//! The QEMU human monitor on a Unix socket: emulated key presses (`sendkey`) and the screen read back.
//!
//! In VGA text mode the screen check reads the text buffer's memory (`xp /2000hx 0xb8000`: 80x25 cells, character
//! in the low byte) instead of OCR-ing a `screendump`: it is exact, independent of QEMU's font, and it sees
//! exactly what the guest's screen console wrote. On a framebuffer it takes a `screendump` and reads the glyphs
//! back ([`crate::screendump`]).

use crate::session::{Failure, StepResult};
use regex::Regex;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Columns of the VGA text screen.
pub const COLUMNS: usize = 80;
/// Rows of the VGA text screen.
pub const ROWS: usize = 25;
/// What the monitor prints when it is ready for the next command.
const MONITOR_PROMPT: &str = "(qemu) ";

/// A connection to the monitor.
pub struct Monitor {
    stream: UnixStream,
}

impl Monitor {
    /// Connects to the monitor socket at `path`, retrying until `timeout` (QEMU creates it while starting).
    ///
    /// # Errors
    /// The socket did not accept a connection in time, or the banner did not arrive.
    pub fn connect(path: &Path, timeout: Duration) -> StepResult<Monitor> {
        let started = Instant::now();
        loop {
            match UnixStream::connect(path) {
                Ok(stream) => {
                    let mut monitor = Monitor { stream };
                    monitor.read_until_prompt(timeout)?;
                    return Ok(monitor);
                }
                Err(error) if started.elapsed() > timeout => {
                    return Err(Failure(format!("monitor {}: {error}", path.display())));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Runs one monitor command and returns what it printed (up to the next monitor prompt).
    ///
    /// # Errors
    /// The socket failed or no prompt came within 10 s.
    pub fn command(&mut self, line: &str) -> StepResult<String> {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|error| Failure(format!("monitor `{line}`: {error}")))?;
        self.read_until_prompt(Duration::from_secs(10))
    }

    /// Presses and releases each key of the space-separated QEMU key names (`h e l p ret`, `shift-a`).
    ///
    /// # Errors
    /// As [`Monitor::command`], or the monitor rejected a key name.
    pub fn send_keys(&mut self, keys: &str) -> StepResult<()> {
        for key in keys.split_whitespace() {
            let reply = self.command(&format!("sendkey {key}"))?;
            if reply.contains("invalid") || reply.contains("unknown") {
                return Err(Failure(format!("monitor: sendkey {key}: {}", reply.trim())));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The VGA text screen's 25 rows (trailing blanks trimmed; non-ASCII cells shown as `.`).
    ///
    /// # Errors
    /// As [`Monitor::command`], or the dump did not hold 2000 cells.
    pub fn text_screen(&mut self) -> StepResult<Vec<String>> {
        let dump = self.command(&format!("xp /{}hx 0xb8000", COLUMNS * ROWS))?;
        parse_text_dump(&dump)
    }

    /// The framebuffer console's rows, from a `screendump` written to `path` (kept there for inspection), read
    /// with the grid `geometry` the guest logged.
    ///
    /// # Errors
    /// As [`Monitor::command`], the dump could not be read or parsed, or it does not fit `geometry`.
    pub fn framebuffer_screen(
        &mut self,
        path: &Path,
        geometry: &crate::screendump::Geometry,
    ) -> StepResult<crate::screendump::Decoded> {
        let image = self.screendump(path)?;
        crate::screendump::decode(&image, geometry)
    }

    /// A `screendump` of what the display shows, written to `path` (kept there for inspection) and parsed.
    ///
    /// # Errors
    /// As [`Monitor::command`], or the dump could not be read or parsed.
    pub fn screendump(&mut self, path: &Path) -> StepResult<crate::screendump::Image> {
        let _ = std::fs::remove_file(path); // a missing file is fine; a stale one must not be read below
        let reply = self.command(&format!("screendump {}", path.display()))?;
        let bytes = std::fs::read(path)
            .map_err(|error| Failure(format!("screendump {}: {error} (monitor: {})", path.display(), reply.trim())))?;
        crate::screendump::Image::from_ppm(&bytes)
    }

    fn read_until_prompt(&mut self, timeout: Duration) -> StepResult<String> {
        let started = Instant::now();
        let mut output = Vec::new();
        let mut buffer = [0u8; 65536];
        self.stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|error| Failure(format!("monitor: {error}")))?;
        while !String::from_utf8_lossy(&output).ends_with(MONITOR_PROMPT) {
            if started.elapsed() > timeout {
                return Err(Failure(format!(
                    "monitor: no prompt within {timeout:?}: {:?}",
                    String::from_utf8_lossy(&output)
                )));
            }
            match self.stream.read(&mut buffer) {
                Ok(0) => return Err(Failure("monitor: connection closed".into())),
                Ok(count) => output.extend_from_slice(&buffer[..count]),
                Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                }
                Err(error) => return Err(Failure(format!("monitor: {error}"))),
            }
        }
        Ok(String::from_utf8_lossy(&output).into_owned())
    }
}

/// Turns the monitor's `xp /2000hx` output (`00000000000b8000: 0x0768 0x0765 ...` lines) into screen rows.
///
/// # Errors
/// The dump holds a number of cells other than 80x25.
pub fn parse_text_dump(dump: &str) -> StepResult<Vec<String>> {
    let line = Regex::new(r"^\s*[0-9a-f]+:((?:\s+0x[0-9a-f]+)+)\s*$").expect("constant pattern");
    let mut cells = Vec::new();
    for text in dump.lines() {
        if let Some(found) = line.captures(text.trim_end_matches('\r')) {
            for word in found[1].split_whitespace() {
                let value = u16::from_str_radix(word.trim_start_matches("0x"), 16)
                    .map_err(|error| Failure(format!("monitor dump: {word}: {error}")))?;
                cells.push(value);
            }
        }
    }
    if cells.len() != COLUMNS * ROWS {
        return Err(Failure(format!("monitor dump: {} cells, expected {}", cells.len(), COLUMNS * ROWS)));
    }
    Ok(cells
        .chunks(COLUMNS)
        .map(|row| {
            let text: String = row
                .iter()
                .map(|cell| match (cell & 0xff) as u8 {
                    byte @ 0x20..=0x7e => byte as char,
                    _ => '.',
                })
                .collect();
            text.trim_end().to_string()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_dump_into_rows() {
        let mut dump = String::from("xp /2000hx 0xb8000\r\n");
        let mut cells = vec![0x0720u16; COLUMNS * ROWS];
        cells[0] = 0x0768; // 'h'
        cells[1] = 0x0769; // 'i'
        cells[COLUMNS] = 0x0701; // a control character: shown as '.'
        for (index, chunk) in cells.chunks(8).enumerate() {
            let words: Vec<String> = chunk.iter().map(|cell| format!("0x{cell:04x}")).collect();
            dump.push_str(&format!("{:016x}: {}\r\n", 0xb8000 + index * 16, words.join(" ")));
        }
        dump.push_str("(qemu) ");
        let rows = parse_text_dump(&dump).unwrap();
        assert_eq!(rows.len(), ROWS);
        assert_eq!(rows[0], "hi");
        assert_eq!(rows[1], ".");
        assert_eq!(rows[2], "");
        assert!(parse_text_dump("0000000000b8000: 0x0768\r\n").is_err());
    }
}
