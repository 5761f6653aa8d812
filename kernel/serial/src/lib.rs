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
///
/// Once interrupt-driven input is installed ([`set_receive_source`]), the byte comes from that source (the receive
/// interrupt handler drains the UART into a buffer), so existing pollers keep working unchanged.
pub fn try_read_byte() -> Option<u8> {
    if let Some(source) = RECEIVE_SOURCE.get() {
        return source();
    }
    COM1.get()?.lock().try_receive().ok()
}

/// Whether input comes from the interrupt-driven reader (so a reader may block until the receive interrupt's wake
/// hook runs) rather than from polling the UART.
pub fn is_interrupt_driven() -> bool {
    RECEIVE_SOURCE.get().is_some()
}

/// The interrupt-driven input's reader, set once by the `serial_input` cell.
static RECEIVE_SOURCE: Once<fn() -> Option<u8>> = Once::new();

/// Port offsets and bits of the 16550 (National Semiconductor PC16550D data sheet, "Register Description").
mod registers {
    /// Receiver buffer register (read, DLAB = 0).
    pub const RECEIVE_BUFFER: u16 = 0;
    /// Interrupt enable register (DLAB = 0).
    pub const INTERRUPT_ENABLE: u16 = 1;
    /// IER bit 0: "received data available" interrupt.
    pub const RECEIVED_DATA_AVAILABLE: u8 = 1 << 0;
    /// Modem control register.
    pub const MODEM_CONTROL: u16 = 4;
    /// MCR bit 3: OUT2, which gates the UART's interrupt line onto the ISA bus on PCs.
    pub const OUT2: u8 = 1 << 3;
    /// Line status register.
    pub const LINE_STATUS: u16 = 5;
    /// LSR bit 0: data ready.
    pub const DATA_READY: u8 = 1 << 0;
}

/// Routes [`try_read_byte`] to `source` from now on (the interrupt-driven receive buffer). Only the first call has an
/// effect; returns whether this call installed it.
pub fn set_receive_source(source: fn() -> Option<u8>) -> bool {
    let mut installed = false;
    RECEIVE_SOURCE.call_once(|| {
        installed = true;
        source
    });
    installed
}

/// Enables the UART's "received data available" interrupt (IER bit 0) and OUT2 (MCR bit 3), so each received byte
/// raises ISA IRQ 4. Does nothing before [`init`].
pub fn enable_receive_interrupt() {
    if let Some(port) = COM1.get() {
        let _guard = port.lock();
        let mut interrupt_enable = x86_64::instructions::port::Port::<u8>::new(COM1_BASE + registers::INTERRUPT_ENABLE);
        let mut modem_control = x86_64::instructions::port::Port::<u8>::new(COM1_BASE + registers::MODEM_CONTROL);
        // SAFETY: COM1's registers belong to this crate; the port lock is held, so no other access to the UART runs
        // meanwhile; setting IER bit 0 and MCR OUT2 only enables the receive interrupt (DLAB is 0 after `init`).
        unsafe {
            let enabled = interrupt_enable.read();
            interrupt_enable.write(enabled | registers::RECEIVED_DATA_AVAILABLE);
            let control = modem_control.read();
            modem_control.write(control | registers::OUT2);
        }
    }
}

/// Reads one received byte straight from the UART's registers, without the port lock, or `None` if the receiver is
/// empty. For the receive interrupt handler only: it must not wait for a lock that the code it interrupted may hold.
///
/// # Safety
/// The caller must be the only reader of received data while interrupt-driven input is active (the receive interrupt
/// handler, with the UART's interrupt routed to one CPU), and must have installed [`set_receive_source`] so that
/// [`try_read_byte`] no longer reads the UART. Transmission under the lock may run concurrently: it uses other
/// registers (THR, and LSR reads, which are harmless to repeat).
pub unsafe fn read_received_byte_unlocked() -> Option<u8> {
    let mut line_status = x86_64::instructions::port::Port::<u8>::new(COM1_BASE + registers::LINE_STATUS);
    let mut receive_buffer = x86_64::instructions::port::Port::<u8>::new(COM1_BASE + registers::RECEIVE_BUFFER);
    // SAFETY: reading LSR and RBR of COM1 has no effect besides consuming the received byte, which the caller owns
    // (see the contract above).
    unsafe {
        if line_status.read() & registers::DATA_READY == 0 {
            return None;
        }
        Some(receive_buffer.read())
    }
}
