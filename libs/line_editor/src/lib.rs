//! A terminal line editor as a pure state machine: bytes in, terminal output out, no I/O of its own.
//!
//! The shell feeds every received byte to [`LineEditor::feed`], writes the returned bytes to the terminal, and acts
//! on the returned [`Event`]. Keeping the editor free of I/O lets it be tested on the host.
//!
//! Keys (VT100/xterm sequences, ECMA-48):
//! - printable ASCII inserts at the cursor; Backspace (0x7F, 0x08) deletes before it, Delete (`ESC [ 3 ~`) at it;
//! - Left/Right (`ESC [ D` / `ESC [ C`), Home/End (`ESC [ H`, `ESC [ F`, `ESC [ 1 ~`, `ESC [ 4 ~`, Ctrl-A, Ctrl-E);
//! - Up/Down (`ESC [ A` / `ESC [ B`) walk the history (most recent first; Down past the newest restores the draft);
//! - Tab completes the word under the cursor from the candidates the caller gives; a unique match is inserted with a
//!   trailing space, several matches are extended to their common prefix or listed;
//! - Ctrl-U erases the line, Ctrl-K erases from the cursor to the end, Ctrl-W erases the word before the cursor
//!   (and the spaces after it), Ctrl-C abandons the line ([`Event::Interrupted`]), Enter (CR or LF; CR LF counts
//!   once) ends it;
//! - a line longer than [`MAX_LINE_LENGTH`] is refused: further printable bytes ring the bell and are counted, and
//!   Enter gives [`Event::TooLong`] instead of the truncated line; other control bytes are ignored.
//!
//! Typing at the end of the line echoes just the typed byte, and Backspace at the end writes `BS SP BS`, so a
//! transcript of plain typing reads like the typed text; other edits redraw the line (`CR`, prompt, text, `ESC [ K`,
//! then cursor moves).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

/// Longest line accepted, in bytes; further printable input is refused (one bell) and the line
/// ends in [`Event::TooLong`].
pub const MAX_LINE_LENGTH: usize = 512;
/// Number of history entries kept (oldest dropped first).
pub const HISTORY_CAPACITY: usize = 64;

/// What a byte of input produced, besides terminal output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Nothing to act on yet.
    Pending,
    /// Enter: the finished line (possibly empty). Non-empty lines are added to the history.
    Line(String),
    /// Ctrl-C: the partial line was dropped.
    Interrupted,
    /// Enter after bytes were refused because the line was full: the line was dropped (not added to the history).
    TooLong {
        /// How many printable bytes were refused.
        dropped: usize,
    },
}

/// Decoder state for escape sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Introducer,
    /// Inside a CSI or SS3 sequence; holds the numeric parameter seen so far.
    Sequence(u16),
}

/// The editor: current line, cursor, history and escape-decoder state.
#[derive(Debug)]
pub struct LineEditor {
    prompt: String,
    line: Vec<u8>,
    /// Cursor position in bytes (the line is ASCII only), `0..=line.len()`.
    cursor: usize,
    history: Vec<String>,
    /// Index into `history` while browsing (0 = newest), `None` when editing the draft.
    browsing: Option<usize>,
    draft: Vec<u8>,
    escape: Escape,
    last_was_carriage_return: bool,
    /// Printable bytes refused since the line filled up.
    dropped: usize,
}

impl LineEditor {
    /// A new editor that redraws lines after `prompt`.
    pub fn new(prompt: &str) -> Self {
        Self {
            prompt: String::from(prompt),
            line: Vec::new(),
            cursor: 0,
            history: Vec::new(),
            browsing: None,
            draft: Vec::new(),
            escape: Escape::None,
            last_was_carriage_return: false,
            dropped: 0,
        }
    }

    /// The history, oldest first.
    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// The line being edited.
    pub fn current_line(&self) -> &str {
        core::str::from_utf8(&self.line).unwrap_or("")
    }

    /// Feeds one input byte. Appends what must be written to the terminal to `output`. `complete` returns the
    /// candidates for the word before the cursor given `(line_before_cursor, word)`; it is called only on Tab.
    pub fn feed(&mut self, byte: u8, output: &mut Vec<u8>, complete: &dyn Fn(&str, &str) -> Vec<String>) -> Event {
        match self.escape {
            Escape::Introducer => {
                self.escape = if byte == b'[' || byte == b'O' { Escape::Sequence(0) } else { Escape::None };
                return Event::Pending;
            }
            Escape::Sequence(parameter) => {
                if byte.is_ascii_digit() {
                    let digit = u16::from(byte - b'0');
                    self.escape = Escape::Sequence(parameter.saturating_mul(10).saturating_add(digit));
                } else if (0x40..=0x7e).contains(&byte) {
                    // A final byte ends the sequence (ECMA-48 5.4).
                    self.escape = Escape::None;
                    self.sequence(byte, parameter, output);
                }
                return Event::Pending;
            }
            Escape::None => {}
        }
        let carriage_return_before = self.last_was_carriage_return;
        self.last_was_carriage_return = byte == b'\r';
        match byte {
            0x1b => self.escape = Escape::Introducer,
            b'\n' if carriage_return_before => {}
            b'\r' | b'\n' => return self.finish(output),
            0x03 => {
                output.extend_from_slice(b"^C\n");
                self.reset_line();
                return Event::Interrupted;
            }
            0x01 => self.move_to(0, output),
            0x05 => self.move_to(self.line.len(), output),
            0x15 => {
                self.line.clear();
                self.cursor = 0;
                self.redraw(output);
            }
            0x0b => {
                self.line.truncate(self.cursor);
                self.redraw(output);
            }
            0x17 => self.erase_word(output),
            0x7f | 0x08 => self.backspace(output),
            b'\t' => self.complete(output, complete),
            0x20..=0x7e => self.insert(byte, output),
            _ => {}
        }
        Event::Pending
    }

    fn sequence(&mut self, final_byte: u8, parameter: u16, output: &mut Vec<u8>) {
        match (final_byte, parameter) {
            (b'A', _) => self.history_step(true, output),
            (b'B', _) => self.history_step(false, output),
            (b'C', _) => self.move_to((self.cursor + 1).min(self.line.len()), output),
            (b'D', _) => self.move_to(self.cursor.saturating_sub(1), output),
            (b'H', _) | (b'~', 1) | (b'~', 7) => self.move_to(0, output),
            (b'F', _) | (b'~', 4) | (b'~', 8) => self.move_to(self.line.len(), output),
            (b'~', 3) if self.cursor < self.line.len() => {
                self.line.remove(self.cursor);
                self.redraw(output);
            }
            _ => {}
        }
    }

    fn finish(&mut self, output: &mut Vec<u8>) -> Event {
        output.push(b'\n');
        if self.dropped > 0 {
            let dropped = self.dropped;
            self.reset_line();
            return Event::TooLong { dropped };
        }
        let line = String::from(self.current_line());
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            if self.history.len() == HISTORY_CAPACITY {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
        self.reset_line();
        Event::Line(line)
    }

    fn reset_line(&mut self) {
        self.line.clear();
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        self.dropped = 0;
    }

    /// Ctrl-W: erases back from the cursor over spaces, then over the word before them.
    fn erase_word(&mut self, output: &mut Vec<u8>) {
        let before = &self.line[..self.cursor];
        let word_end = before.iter().rposition(|&byte| byte != b' ').map_or(0, |last| last + 1);
        let start = before[..word_end].iter().rposition(|&byte| byte == b' ').map_or(0, |space| space + 1);
        if start != self.cursor {
            self.line.drain(start..self.cursor);
            self.cursor = start;
            self.redraw(output);
        }
    }

    fn insert(&mut self, byte: u8, output: &mut Vec<u8>) {
        if self.line.len() >= MAX_LINE_LENGTH {
            // One bell per overflowing line, so a flood does not become a flood of bells.
            if self.dropped == 0 {
                output.push(0x07);
            }
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.line.insert(self.cursor, byte);
        self.cursor += 1;
        if self.cursor == self.line.len() {
            output.push(byte);
        } else {
            self.redraw(output);
        }
    }

    fn backspace(&mut self, output: &mut Vec<u8>) {
        if self.cursor == 0 {
            return;
        }
        self.cursor -= 1;
        self.line.remove(self.cursor);
        if self.cursor == self.line.len() {
            output.extend_from_slice(b"\x08 \x08");
        } else {
            self.redraw(output);
        }
    }

    fn move_to(&mut self, position: usize, output: &mut Vec<u8>) {
        if position != self.cursor {
            self.cursor = position;
            self.redraw(output);
        }
    }

    fn history_step(&mut self, older: bool, output: &mut Vec<u8>) {
        let next = match (self.browsing, older) {
            (None, true) if !self.history.is_empty() => {
                self.draft = self.line.clone();
                Some(0)
            }
            (None, _) => return,
            (Some(index), true) => Some((index + 1).min(self.history.len() - 1)),
            (Some(0), false) => None,
            (Some(index), false) => Some(index - 1),
        };
        self.browsing = next;
        self.line = match next {
            Some(index) => self.history[self.history.len() - 1 - index].as_bytes().to_vec(),
            None => core::mem::take(&mut self.draft),
        };
        self.cursor = self.line.len();
        self.redraw(output);
    }

    fn complete(&mut self, output: &mut Vec<u8>, complete: &dyn Fn(&str, &str) -> Vec<String>) {
        let before = &self.line[..self.cursor];
        let word_start = before.iter().rposition(|&byte| byte == b' ').map_or(0, |space| space + 1);
        let before_text = core::str::from_utf8(before).unwrap_or("");
        let word = &before_text[word_start..];
        let mut candidates: Vec<String> =
            complete(before_text, word).into_iter().filter(|candidate| candidate.starts_with(word)).collect();
        candidates.sort();
        candidates.dedup();
        match candidates.len() {
            0 => output.push(0x07),
            1 => {
                let mut addition = String::from(&candidates[0][word.len()..]);
                addition.push(' ');
                self.insert_text(addition.as_bytes(), output);
            }
            _ => {
                let common = common_prefix(&candidates);
                if common.len() > word.len() {
                    let addition = String::from(&common[word.len()..]);
                    self.insert_text(addition.as_bytes(), output);
                } else {
                    output.push(b'\n');
                    for candidate in &candidates {
                        output.extend_from_slice(candidate.as_bytes());
                        output.extend_from_slice(b"  ");
                    }
                    output.push(b'\n');
                    self.redraw(output);
                }
            }
        }
    }

    fn insert_text(&mut self, text: &[u8], output: &mut Vec<u8>) {
        for &byte in text {
            self.insert(byte, output);
        }
    }

    /// Redraws the whole line: CR, prompt, text, erase to end of line, cursor back to its place.
    fn redraw(&self, output: &mut Vec<u8>) {
        output.push(b'\r');
        output.extend_from_slice(self.prompt.as_bytes());
        output.extend_from_slice(&self.line);
        output.extend_from_slice(b"\x1b[K");
        let back = self.line.len() - self.cursor;
        if back > 0 {
            output.extend_from_slice(alloc::format!("\x1b[{back}D").as_bytes());
        }
    }
}

/// The longest common prefix of non-empty `words`.
fn common_prefix(words: &[String]) -> &str {
    let first = words[0].as_str();
    let mut length = first.len();
    for word in &words[1..] {
        length = length.min(first.bytes().zip(word.bytes()).take_while(|(a, b)| a == b).count());
    }
    &first[..length]
}

#[cfg(test)]
mod tests;
