//! The fault path's COM1 writer: polled, without the port lock, allocation-free.
//!
//! A CPU-exception report must complete whatever the faulting code held: COM1's lock (this CPU's or another's),
//! the heap's, a namespace's. [`RawWriter`] writes each byte straight to the UART's transmit register after polling
//! the line status for an empty transmitter (bounded, so a dead UART cannot hang the report), and implements
//! `fmt::Write` without buffering, so `write!` formats with stack space only. Another CPU writing under the lock
//! at the same moment interleaves its bytes with the report's: acceptable in a crash report, never a deadlock.

use core::fmt;
use x86_64::instructions::port::Port;

/// Polls of the line status register before a byte is written anyway (about 1 ms of port reads; a 16550 at
/// 115200 baud empties its transmit holding register in 87 us).
const TRANSMIT_POLL_LIMIT: u32 = 1_000;

/// LSR bit 5: transmit holding register empty (PC16550D data sheet, "Line Status Register").
const TRANSMIT_EMPTY: u8 = 1 << 5;

/// Writes to COM1 byte by byte without the lock, translating `\n` to `\r\n`. A unit struct: make one wherever a
/// report needs it (`write!(RawWriter, ...)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RawWriter;

impl RawWriter {
    fn send(byte: u8) {
        let mut line_status = Port::<u8>::new(super::COM1_BASE + super::registers::LINE_STATUS);
        let mut transmit = Port::<u8>::new(super::COM1_BASE);
        // SAFETY: reading COM1's LSR has no side effect on transmission, and writing its THR (DLAB is 0 after
        // `init`, and nothing sets it later) sends one byte; a concurrent locked writer only interleaves bytes.
        unsafe {
            for _ in 0..TRANSMIT_POLL_LIMIT {
                if line_status.read() & TRANSMIT_EMPTY != 0 {
                    break;
                }
                core::hint::spin_loop();
            }
            transmit.write(byte);
        }
    }

    /// Writes `bytes` (see the type docs).
    pub fn write_bytes(bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                Self::send(b'\r');
            }
            Self::send(byte);
        }
    }
}

impl fmt::Write for RawWriter {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        Self::write_bytes(text.as_bytes());
        Ok(())
    }
}

/// Writes formatted text to COM1 without the lock (see [`RawWriter`]). For fault reports only: ordinary output
/// goes through [`super::write_fmt`], whose lines never interleave.
pub fn write_fmt(arguments: fmt::Arguments<'_>) {
    // `RawWriter::write_str` never fails; an error can only come from a `Display` implementation, and what it
    // wrote before failing is already on the wire (nobody to report it to).
    let _ = fmt::Write::write_fmt(&mut RawWriter, arguments);
}
