//! The serial output as lines, and `expect`-style matching on them.
//!
//! Output is matched line by line (never across lines), including the last, still incomplete line: the shell
//! prompt (`> `) is not followed by a newline. A cursor marks how far earlier matches consumed the output, so
//! each expectation only sees what came after the previous one, as a person reading a terminal would.

use regex::Regex;

/// A place in the transcript: line index and byte offset within that line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// Index of the line (complete lines first; `lines().len()` is the incomplete line).
    pub line: usize,
    /// Byte offset within the line.
    pub column: usize,
}

/// A successful match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where the match starts.
    pub start: Position,
    /// Where it ends (the new cursor).
    pub end: Position,
    /// The whole line the match is in (as received so far, if incomplete).
    pub line: String,
}

/// Received serial text, split into lines, with a cursor.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    lines: Vec<String>,
    current: Vec<u8>,
    cursor: Position,
}

impl Transcript {
    /// An empty transcript.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes already cleaned of escape sequences. `\n` ends a line; backspace (0x08) removes the last
    /// character of the incomplete line.
    pub fn push(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            match byte {
                b'\n' => {
                    let line = String::from_utf8_lossy(&self.current).into_owned();
                    self.lines.push(line);
                    self.current.clear();
                }
                crate::ansi::BACKSPACE => {
                    // Remove one UTF-8 character: continuation bytes, then the lead byte.
                    while self.current.last().is_some_and(|b| b & 0xC0 == 0x80) {
                        self.current.pop();
                    }
                    self.current.pop();
                }
                _ => self.current.push(byte),
            }
        }
    }

    /// The complete lines received so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The incomplete last line.
    pub fn partial(&self) -> String {
        String::from_utf8_lossy(&self.current).into_owned()
    }

    /// Where the next match may start.
    pub fn cursor(&self) -> Position {
        self.cursor
    }

    fn line(&self, index: usize) -> Option<String> {
        match index.cmp(&self.lines.len()) {
            std::cmp::Ordering::Less => Some(self.lines[index].clone()),
            std::cmp::Ordering::Equal => Some(self.partial()),
            std::cmp::Ordering::Greater => None,
        }
    }

    /// Finds the first match of `pattern` at or after the cursor, searching each line separately (the incomplete
    /// line too), and moves the cursor to the end of the match.
    pub fn expect(&mut self, pattern: &Regex) -> Option<Found> {
        let found = self.find_from(self.cursor, pattern)?;
        self.cursor = found.end;
        Some(found)
    }

    /// Like [`Transcript::expect`], but searching from `from` and leaving the cursor alone.
    pub fn find_from(&self, from: Position, pattern: &Regex) -> Option<Found> {
        let mut index = from.line;
        while let Some(line) = self.line(index) {
            let mut start = if index == from.line { from.column.min(line.len()) } else { 0 };
            while !line.is_char_boundary(start) {
                start -= 1;
            }
            if let Some(m) = pattern.find(&line[start..]) {
                return Some(Found {
                    start: Position { line: index, column: start + m.start() },
                    end: Position { line: index, column: start + m.end() },
                    line,
                });
            }
            index += 1;
        }
        None
    }

    /// The text from `from` up to (not including) `to`, lines joined by `\n`.
    pub fn text_between(&self, from: Position, to: Position) -> String {
        let mut text = String::new();
        for index in from.line..=to.line {
            let Some(line) = self.line(index) else { break };
            let start = if index == from.line { from.column.min(line.len()) } else { 0 };
            let end = if index == to.line { to.column.min(line.len()) } else { line.len() };
            if index > from.line {
                text.push('\n');
            }
            if let Some(piece) = line.get(start..end.max(start)) {
                text.push_str(piece);
            }
        }
        text
    }

    /// The last `count` lines (the incomplete one included if non-empty), for failure messages.
    pub fn tail(&self, count: usize) -> Vec<String> {
        let mut all: Vec<String> = self.lines.iter().rev().take(count).cloned().collect();
        all.reverse();
        let partial = self.partial();
        if !partial.is_empty() {
            all.push(partial);
            if all.len() > count {
                all.remove(0);
            }
        }
        all
    }
}

/// The output of one shell command: the text between the end of the prompt the command was typed at and the
/// start of the next prompt, without the echoed command line.
pub fn command_output(raw: &str, command: &str) -> String {
    let mut lines: Vec<&str> = raw.split('\n').collect();
    if lines.first().is_some_and(|first| first.trim() == command.trim()) {
        lines.remove(0);
    }
    let mut text: Vec<&str> = lines.iter().map(|l| l.trim_end()).collect();
    while text.last().is_some_and(|l| l.is_empty()) {
        text.pop();
    }
    text.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regex(pattern: &str) -> Regex {
        Regex::new(pattern).unwrap()
    }

    #[test]
    fn matches_partial_prompt_line_then_following_output() {
        let mut t = Transcript::new();
        t.push(b"Booting\nnano_core: up\n> ");
        let prompt = t.expect(&regex(r"> $")).expect("prompt on partial line");
        assert_eq!(prompt.start, Position { line: 2, column: 0 });
        t.push(b"hello\nHello from greeting v1\n> ");
        assert!(t.expect(&regex("Hello from greeting v1")).is_some());
        let next = t.expect(&regex(r"> $")).unwrap();
        assert_eq!(next.start.line, 4);
        assert!(t.expect(&regex(r"> $")).is_none(), "consumed");
    }

    #[test]
    fn does_not_match_across_lines_or_before_cursor() {
        let mut t = Transcript::new();
        t.push(b"abc\ndef\n");
        assert!(t.expect(&regex("c.d")).is_none());
        assert!(t.expect(&regex("def")).is_some());
        assert!(t.expect(&regex("abc")).is_none());
        t.push(b"abc\n");
        assert!(t.expect(&regex("abc")).is_some());
    }

    #[test]
    fn same_line_rest_is_still_searchable() {
        let mut t = Transcript::new();
        t.push(b"swap: load 1 ms; swap: done\n");
        assert!(t.expect(&regex(r"\d+ ms")).is_some());
        assert!(t.expect(&regex("swap: done")).is_some());
    }

    #[test]
    fn backspace_edits_current_line() {
        let mut t = Transcript::new();
        t.push(b"> helo\x08\x08llo\n");
        assert_eq!(t.lines(), ["> hello"]);
        t.push("\u{b5}\x08x".as_bytes());
        assert_eq!(t.partial(), "x");
    }

    #[test]
    fn text_between_positions_and_command_output() {
        let mut t = Transcript::new();
        t.push(b"> ");
        let after_prompt = t.expect(&regex(r"> $")).unwrap().end;
        t.push(b"ns\ncaptain\ngreeting_v1  \n> ");
        let prompt = t.expect(&regex(r"> $")).unwrap();
        let raw = t.text_between(after_prompt, prompt.start);
        assert_eq!(raw, "ns\ncaptain\ngreeting_v1  \n");
        assert_eq!(command_output(&raw, "ns"), "captain\ngreeting_v1");
        assert_eq!(command_output("captain\n", "ns"), "captain", "no echo");
    }

    #[test]
    fn tail_includes_partial() {
        let mut t = Transcript::new();
        t.push(b"a\nb\nc\n> ");
        assert_eq!(t.tail(2), ["c", "> "]);
    }
}
