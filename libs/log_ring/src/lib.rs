//! A fixed-size ring of log text that overwrites the oldest bytes, and a fixed-size line buffer.
//!
//! # Purpose
//! The kernel log keeps every record (whatever the console shows) for `dmesg`, on a path that must not allocate:
//! it may run in an interrupt handler or inside the heap allocator. [`LogRing`] is a `const`-constructible array of
//! `N` bytes; [`LogRing::push`] appends, overwriting the oldest bytes when full. [`LineBuffer`] formats one record
//! on the stack (`core::fmt::Write`), silently truncating what does not fit.
//!
//! # Control flow
//! The writer formats a line into a [`LineBuffer`], then pushes its bytes (under the caller's lock). A reader calls
//! [`LogRing::read`], which hands out the stored text oldest first, from the first whole line on (after a wrap the
//! oldest line is usually cut at its start and is skipped).
#![cfg_attr(not(test), no_std)]

use core::fmt;

/// `N` bytes of log text, oldest overwritten first.
pub struct LogRing<const N: usize> {
    bytes: [u8; N],
    /// Index of the next byte to write.
    next: usize,
    /// Whether the ring has wrapped (every byte holds text, the oldest at `next`).
    wrapped: bool,
}

impl<const N: usize> Default for LogRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LogRing<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        Self { bytes: [0; N], next: 0, wrapped: false }
    }

    /// Appends `text`, overwriting the oldest bytes if the ring is full. Text longer than `N` keeps its last `N`
    /// bytes.
    pub fn push(&mut self, text: &[u8]) {
        if N == 0 {
            return;
        }
        let text = &text[text.len().saturating_sub(N)..];
        let first = text.len().min(N - self.next);
        self.bytes[self.next..self.next + first].copy_from_slice(&text[..first]);
        let rest = &text[first..];
        self.bytes[..rest.len()].copy_from_slice(rest);
        if self.next + text.len() >= N {
            self.wrapped = true;
        }
        self.next = (self.next + text.len()) % N;
    }

    /// Calls `out` with the stored text, oldest first, in at most two pieces. After a wrap, the bytes before the
    /// first newline (the rest of an overwritten line) are left out.
    pub fn read(&self, mut out: impl FnMut(&[u8])) {
        if !self.wrapped {
            out(&self.bytes[..self.next]);
            return;
        }
        let (older, newer) = (&self.bytes[self.next..], &self.bytes[..self.next]);
        match older.iter().position(|&byte| byte == b'\n') {
            Some(end) => {
                out(&older[end + 1..]);
                out(newer);
            }
            None => {
                let end = newer.iter().position(|&byte| byte == b'\n').map_or(newer.len(), |end| end + 1);
                out(&newer[end..]);
            }
        }
    }

    /// Bytes stored (at most `N`).
    pub fn len(&self) -> usize {
        if self.wrapped { N } else { self.next }
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One line of at most `N` bytes, formatted on the stack; text beyond `N` bytes is dropped (at a character
/// boundary) and [`LineBuffer::truncated`] says so.
pub struct LineBuffer<const N: usize> {
    bytes: [u8; N],
    length: usize,
    truncated: bool,
}

impl<const N: usize> Default for LineBuffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineBuffer<N> {
    /// An empty line.
    pub const fn new() -> Self {
        Self { bytes: [0; N], length: 0, truncated: false }
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.length]
    }

    /// Whether some text did not fit.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Replaces the last byte with `byte` if the buffer is full, else appends it (so a truncated line still ends in
    /// a newline).
    pub fn end_with(&mut self, byte: u8) {
        if N == 0 {
            return;
        }
        if self.length == N {
            self.bytes[N - 1] = byte;
        } else {
            self.bytes[self.length] = byte;
            self.length += 1;
        }
    }
}

impl<const N: usize> fmt::Write for LineBuffer<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let room = N - self.length;
        let mut take = text.len().min(room);
        while !text.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.length..self.length + take].copy_from_slice(&text.as_bytes()[..take]);
        self.length += take;
        if take < text.len() {
            self.truncated = true;
        }
        // Never an error: truncation is reported by `truncated`, and an error would abort the rest of the record.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    fn contents<const N: usize>(ring: &LogRing<N>) -> String {
        let mut text = Vec::new();
        ring.read(|piece| text.extend_from_slice(piece));
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn keeps_lines_until_full() {
        let mut ring = LogRing::<32>::new();
        assert!(ring.is_empty());
        ring.push(b"one\n");
        ring.push(b"two\n");
        assert_eq!(contents(&ring), "one\ntwo\n");
        assert_eq!(ring.len(), 8);
    }

    #[test]
    fn overwrites_the_oldest_and_skips_the_cut_line() {
        let mut ring = LogRing::<16>::new();
        for line in ["first\n", "second\n", "third\n", "fourth\n"] {
            ring.push(line.as_bytes());
        }
        assert_eq!(ring.len(), 16);
        // The last 16 bytes are "ond\nthird\nfourth\n"[1..]: "nd\nthird\nfourth\n"; the cut "nd" line is dropped.
        assert_eq!(contents(&ring), "third\nfourth\n");
    }

    #[test]
    fn longer_than_the_ring_keeps_the_end() {
        let mut ring = LogRing::<8>::new();
        ring.push(b"abcdefghij\nxyz\n");
        assert_eq!(contents(&ring), "xyz\n");
    }

    #[test]
    fn exact_fill_wraps() {
        let mut ring = LogRing::<8>::new();
        ring.push(b"abc\ndef\n");
        assert_eq!(ring.len(), 8);
        ring.push(b"g\n");
        assert_eq!(contents(&ring), "def\ng\n");
    }

    #[test]
    fn line_buffer_truncates_at_a_character_boundary() {
        let mut line = LineBuffer::<5>::new();
        let tail = "cdé";
        write!(line, "ab{tail}").unwrap();
        assert_eq!(line.as_bytes(), "abcd".as_bytes());
        assert!(line.truncated());
        line.end_with(b'\n');
        assert_eq!(line.as_bytes(), b"abcd\n");
        write!(line, "zz").unwrap();
        line.end_with(b'\n');
        assert_eq!(line.as_bytes(), b"abcd\n", "a full line keeps its newline");
    }
}
