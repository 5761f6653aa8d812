//! Removing terminal escape sequences from a serial byte stream.
//!
//! GRUB (with `terminal_output serial`) writes ANSI/VT100 sequences (clear screen, cursor moves, colours) before
//! the kernel runs. The stripper is a small state machine fed chunk by chunk, so a sequence split across two
//! reads is still removed. It recognises ECMA-48 CSI (`ESC [ params final`), OSC/DCS/SOS/PM/APC strings
//! (ended by BEL or `ESC \`), and two-byte escapes (`ESC c`, `ESC ( B`). Carriage returns and other control
//! bytes are dropped, except `\n`, `\t` and backspace (0x08), which the line buffer interprets.

/// Where the stripper is inside an escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Text,
    Escape,
    EscapeIntermediate,
    ControlSequence,
    String,
    StringEscape,
}

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;
/// Backspace, kept for the line buffer.
pub const BACKSPACE: u8 = 0x08;

/// A streaming escape-sequence remover.
#[derive(Debug, Clone, Default)]
pub struct AnsiStripper {
    state: State,
}

impl AnsiStripper {
    /// A stripper at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns `chunk` without escape sequences and unwanted control bytes.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len());
        for &byte in chunk {
            self.state = match (self.state, byte) {
                (State::Text, ESC) => State::Escape,
                (State::Text, b'\n' | b'\t' | BACKSPACE) => {
                    out.push(byte);
                    State::Text
                }
                (State::Text, 0x00..=0x1f | 0x7f) => State::Text,
                (State::Text, _) => {
                    out.push(byte);
                    State::Text
                }
                (State::Escape, b'[') => State::ControlSequence,
                (State::Escape, b']' | b'P' | b'X' | b'^' | b'_') => State::String,
                (State::Escape | State::EscapeIntermediate, 0x20..=0x2f) => State::EscapeIntermediate,
                (State::Escape | State::EscapeIntermediate, _) => State::Text,
                (State::ControlSequence, 0x40..=0x7e) => State::Text,
                (State::ControlSequence, _) => State::ControlSequence,
                (State::String, BEL) => State::Text,
                (State::String, ESC) => State::StringEscape,
                (State::String, _) => State::String,
                (State::StringEscape, b'\\') => State::Text,
                (State::StringEscape, _) => State::String,
            };
        }
        out
    }
}

/// Strips a whole byte string at once (convenience for tests and logs).
pub fn strip(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&AnsiStripper::new().feed(bytes)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_grub_style_sequences() {
        let grub = b"\x1b[H\x1b[J\x1b[1;1H\x1b[0m  Booting `Theseus'\r\n\r\nnano_core: hi\r\n> ";
        assert_eq!(strip(grub), "  Booting `Theseus'\n\nnano_core: hi\n> ");
    }

    #[test]
    fn strips_sequences_split_across_chunks() {
        let mut stripper = AnsiStripper::new();
        let mut out = stripper.feed(b"ab\x1b[3");
        out.extend(stripper.feed(b"8;5;1"));
        out.extend(stripper.feed(b"mcd\x1b"));
        out.extend(stripper.feed(b"(Bef"));
        assert_eq!(out, b"abcdef");
    }

    #[test]
    fn strips_osc_and_keeps_utf8_and_backspace() {
        assert_eq!(strip(b"\x1b]0;title\x07x\x1b]2;t\x1b\\y"), "xy");
        assert_eq!(strip("12 \u{b5}s\x08".as_bytes()), "12 \u{b5}s\x08");
        assert_eq!(strip(b"a\x1bcb"), "ab");
    }
}
