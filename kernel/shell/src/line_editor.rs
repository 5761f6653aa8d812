//! Line input from the serial console with basic editing.
//!
//! Keys: printable ASCII is inserted at the end of the line and echoed; Backspace (0x7F or 0x08) erases the last
//! character; Ctrl-U erases the whole line; Ctrl-C abandons the line; Enter (CR or LF) ends it. ANSI escape sequences
//! (arrow keys and the like, `ESC [ ... final-byte`) are consumed and ignored. Input is polled: the walking skeleton
//! has no interrupts yet.

use alloc::string::String;

/// Longest accepted line in bytes; further keystrokes are ignored (and a bell is sent).
pub const MAX_LINE_LENGTH: usize = 512;

/// What reading a line produced.
#[derive(Debug, PartialEq, Eq)]
pub enum LineInput {
    /// Enter was pressed; the line (possibly empty).
    Line(String),
    /// Ctrl-C was pressed; the partial line is dropped.
    Interrupted,
}

/// State of the escape-sequence decoder.
#[derive(Clone, Copy, PartialEq, Eq)]
enum EscapeState {
    None,
    SawEscape,
    InSequence,
}

/// Reads one line, echoing as it goes. Blocks (polling) until Enter or Ctrl-C.
pub fn read_line() -> LineInput {
    let mut line = String::new();
    let mut escape = EscapeState::None;
    let mut last_was_carriage_return = false;
    loop {
        let Some(byte) = serial::try_read_byte() else {
            core::hint::spin_loop();
            continue;
        };
        match escape {
            EscapeState::SawEscape => {
                escape = if byte == b'[' || byte == b'O' { EscapeState::InSequence } else { EscapeState::None };
                continue;
            }
            EscapeState::InSequence => {
                // Parameters and intermediates are 0x20..=0x3F; a byte in 0x40..=0x7E ends the sequence (ECMA-48 5.4).
                if (0x40..=0x7e).contains(&byte) {
                    escape = EscapeState::None;
                }
                continue;
            }
            EscapeState::None => {}
        }
        let carriage_return_before = last_was_carriage_return;
        last_was_carriage_return = byte == b'\r';
        match byte {
            0x1b => escape = EscapeState::SawEscape,
            b'\r' => {
                serial::write_str("\n");
                return LineInput::Line(line);
            }
            b'\n' => {
                if carriage_return_before {
                    // The LF of a CR LF pair: the line already ended at the CR.
                    continue;
                }
                serial::write_str("\n");
                return LineInput::Line(line);
            }
            0x03 => {
                serial::write_str("^C\n");
                return LineInput::Interrupted;
            }
            0x7f | 0x08 => {
                if line.pop().is_some() {
                    serial::write_str("\x08 \x08");
                }
            }
            0x15 => {
                for _ in 0..line.len() {
                    serial::write_str("\x08 \x08");
                }
                line.clear();
            }
            0x20..=0x7e => {
                if line.len() < MAX_LINE_LENGTH {
                    line.push(byte as char);
                    serial::write_bytes(&[byte]);
                } else {
                    serial::write_bytes(&[0x07]);
                }
            }
            _ => {}
        }
    }
}
