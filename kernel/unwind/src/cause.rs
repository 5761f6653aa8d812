//! Why an unwind happens: the cause the unwinding runtime carries from the panic or fault to whoever catches it.
//!
//! Causes are plain values of fixed size (no heap): a panic message is formatted into an inline buffer and
//! truncated at a character boundary, so a panic caused by heap exhaustion can still be reported.

use core::fmt;
use core::panic::PanicInfo;

/// Bytes of a panic message kept.
pub const PANIC_MESSAGE_CAPACITY: usize = 192;
/// Bytes of a panic location's file name kept.
pub const FILE_NAME_CAPACITY: usize = 96;

/// UTF-8 text in an inline buffer of `N` bytes; writing past the end truncates at a character boundary.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FixedText<const N: usize> {
    bytes: [u8; N],
    length: usize,
    truncated: bool,
}

impl<const N: usize> FixedText<N> {
    /// Empty text.
    pub const fn new() -> Self {
        Self { bytes: [0; N], length: 0, truncated: false }
    }

    /// The text kept.
    pub fn as_str(&self) -> &str {
        // Only whole characters are ever copied in, so the prefix is valid UTF-8.
        core::str::from_utf8(self.bytes.get(..self.length).unwrap_or_default()).unwrap_or_default()
    }

    /// Whether some text did not fit.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl<const N: usize> Default for FixedText<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for FixedText<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for character in text.chars() {
            let mut encoded = [0; 4];
            let encoded = character.encode_utf8(&mut encoded).as_bytes();
            let end = self.length + encoded.len();
            match self.bytes.get_mut(self.length..end) {
                Some(slot) => {
                    slot.copy_from_slice(encoded);
                    self.length = end;
                }
                None => {
                    self.truncated = true;
                    break;
                }
            }
        }
        // Never an error: a panic report must not fail to format.
        Ok(())
    }
}

impl<const N: usize> fmt::Display for FixedText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.truncated { f.write_str("...") } else { Ok(()) }
    }
}

impl<const N: usize> fmt::Debug for FixedText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A panic: its message and location.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PanicCause {
    /// The formatted message (truncated to [`PANIC_MESSAGE_CAPACITY`] bytes).
    pub message: FixedText<PANIC_MESSAGE_CAPACITY>,
    /// The source file (truncated to [`FILE_NAME_CAPACITY`] bytes); empty if unknown.
    pub file: FixedText<FILE_NAME_CAPACITY>,
    /// The line, counting from 1; 0 if unknown.
    pub line: u32,
    /// The column, counting from 1; 0 if unknown.
    pub column: u32,
}

impl PanicCause {
    /// Captures a panic's message and location (without allocating).
    pub fn from_panic_info(info: &PanicInfo<'_>) -> Self {
        use fmt::Write;
        let mut cause = Self::default();
        let _ = write!(cause.message, "{}", info.message());
        if let Some(location) = info.location() {
            let _ = cause.file.write_str(location.file());
            cause.line = location.line();
            cause.column = location.column();
        }
        cause
    }

    /// A cause with `message` and no location (for tests and synthetic panics).
    pub fn with_message(message: &str) -> Self {
        use fmt::Write;
        let mut cause = Self::default();
        let _ = cause.message.write_str(message);
        cause
    }
}

/// A CPU exception that killed the code it interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExceptionCause {
    /// The vector (Intel SDM vol. 3A, 6.3.1: 0 #DE, 6 #UD, 13 #GP, 14 #PF...).
    pub vector: u8,
    /// The error code, for the vectors that push one.
    pub error_code: Option<u64>,
    /// The faulting instruction.
    pub instruction_pointer: u64,
    /// The accessed address (CR2) for a page fault.
    pub fault_address: Option<u64>,
}

/// Why a task is unwinding.
#[allow(clippy::large_enum_variant, reason = "causes are inline values so that unwinding never needs the heap")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnwindCause {
    /// A Rust panic.
    Panic(PanicCause),
    /// A CPU exception.
    Exception(ExceptionCause),
    /// Another task asked this one to die (`kill`).
    Killed,
    /// An exception object this runtime did not create reached it (never happens in the kernel).
    Foreign,
}

impl fmt::Display for UnwindCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Panic(panic) => {
                write!(f, "panicked: {}", panic.message)?;
                if panic.line != 0 {
                    write!(f, " at {}:{}:{}", panic.file, panic.line, panic.column)?;
                }
                Ok(())
            }
            Self::Exception(exception) => {
                write!(f, "CPU exception {} at {:#x}", exception.vector, exception.instruction_pointer)?;
                if let Some(code) = exception.error_code {
                    write!(f, ", error code {code:#x}")?;
                }
                if let Some(address) = exception.fault_address {
                    write!(f, ", address {address:#x}")?;
                }
                Ok(())
            }
            Self::Killed => f.write_str("killed"),
            Self::Foreign => f.write_str("foreign exception"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn fixed_text_truncates_at_a_character_boundary() {
        let mut text = FixedText::<5>::new();
        write!(text, "ab\u{e9}\u{e9}").unwrap();
        assert_eq!(text.as_str(), "ab\u{e9}");
        assert!(text.is_truncated());
        assert_eq!(alloc::format!("{text}"), "ab\u{e9}...");
    }

    #[test]
    fn causes_display() {
        let panic = UnwindCause::Panic(PanicCause::with_message("boom"));
        assert_eq!(alloc::format!("{panic}"), "panicked: boom");
        let exception = UnwindCause::Exception(ExceptionCause {
            vector: 14,
            error_code: Some(2),
            instruction_pointer: 0x1000,
            fault_address: Some(0xdead),
        });
        assert_eq!(alloc::format!("{exception}"), "CPU exception 14 at 0x1000, error code 0x2, address 0xdead");
    }
}
