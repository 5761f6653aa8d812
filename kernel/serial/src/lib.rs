//! COM1 serial port: the primary console's byte-level input and output.
//!
//! The port is a 16550 UART at I/O port 0x3F8 driven by the `uart_16550` crate, behind one spin lock.
//! Until interrupts are set up, input is polled: [`try_read_byte`] returns at once.
//!
//! Control flow:
//! 1. nano_core calls [`init`] first thing (115200 baud 8N1 as set by the crate, FIFOs on);
//! 2. the logger and the shell write through [`write_str`] / [`write_bytes`];
//! 3. the shell polls [`try_read_byte`] for keystrokes.
#![no_std]

use core::fmt;
use spin::{Mutex, Once};
use uart_16550::SerialPort;

/// I/O port base of COM1 (IBM PC convention).
const COM1_BASE: u16 = 0x3F8;

/// The COM1 UART. The lock protects the UART's registers: one writer or reader at a time, so log lines never
/// interleave within a call.
static COM1: Once<Mutex<SerialPort>> = Once::new();

/// Initializes COM1. Idempotent: later calls do nothing.
pub fn init() {
    COM1.call_once(|| {
        // SAFETY: 0x3F8 is the standard COM1 base on PC-compatible machines and QEMU; nothing else in the kernel
        // drives these I/O ports (this crate is their only owner).
        let mut port = unsafe { SerialPort::new(COM1_BASE) };
        port.init();
        Mutex::new(port)
    });
}

/// Writes `bytes` to COM1, translating `\n` to `\r\n` for terminals. Does nothing before [`init`].
pub fn write_bytes(bytes: &[u8]) {
    if let Some(port) = COM1.get() {
        let mut port = port.lock();
        for &byte in bytes {
            if byte == b'\n' {
                port.send_raw(b'\r');
            }
            port.send_raw(byte);
        }
    }
}

/// Writes a string to COM1 (see [`write_bytes`]).
pub fn write_str(text: &str) {
    write_bytes(text.as_bytes());
}

/// Writes formatted text to COM1 under one lock acquisition, so concurrent writers do not interleave.
pub fn write_fmt(arguments: fmt::Arguments<'_>) {
    struct Writer;
    impl fmt::Write for Writer {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            write_bytes(text.as_bytes());
            Ok(())
        }
    }
    let _ = fmt::Write::write_fmt(&mut Writer, arguments);
}

/// Returns the next received byte, or `None` at once if none is waiting (or before [`init`]).
pub fn try_read_byte() -> Option<u8> {
    COM1.get()?.lock().try_receive().ok()
}
