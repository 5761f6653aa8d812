//! COM1 serial port: the primary console's byte-level input and output.
//!
//! The port is a 16550 UART at I/O port 0x3F8 driven by the `uart_16550` crate, behind one spin lock that is held
//! with interrupts disabled on this CPU ([`with_port`]; an [`owned_spin::OwnedSpinLock`], so the fault path can
//! release it when the faulting task held it, [`release_if_held_within`]): a task holding it cannot be preempted, so a task on the
//! same CPU that wants it never spins against a preempted holder (under the priority policy a high-priority
//! spinner would starve a preempted low-priority holder forever), and an interrupt handler that logs cannot
//! deadlock against the code it interrupted. Critical sections are one line: at 115200 baud about 87 us per byte
//! on real hardware, so a 100-byte line keeps interrupts off for up to ~9 ms there (microseconds under QEMU).
//! Until interrupts are set up, input is polled: [`try_read_byte`] returns at once.
//!
//! Control flow:
//! 1. nano_core calls [`init`] first thing (115200 baud 8N1 as set by the crate, FIFOs on);
//! 2. the logger and the shell write through [`write_fmt`] (formatted outside the lock, then one lock acquisition
//!    per line), [`write_str`] / [`write_bytes`] (one acquisition per call);
//! 3. the shell polls [`try_read_byte`] for keystrokes;
//! 4. the CPU-exception report writes through [`raw`] (no lock, no buffer on the heap), so it completes even when
//!    the faulting code holds COM1's lock or the heap's.
//!
//! Lock order: COM1 is a leaf: nothing else is locked while it is held (callers may hold their own locks, e.g.
//! a namespace's, when they log).
#![no_std]

pub mod raw;

use core::fmt;
use owned_spin::OwnedSpinLock;
use spin::Once;
use uart_16550::SerialPort;

/// I/O port base of COM1 (IBM PC convention).
const COM1_BASE: u16 = 0x3F8;

/// Bytes [`write_fmt`] formats before writing them out under one lock acquisition: a longer line is written in
/// pieces of this size, between which another CPU's output may appear.
pub const LINE_BUFFER_BYTES: usize = 512;

/// The COM1 UART. The lock protects the UART's registers: one writer or reader at a time (the fault report's
/// [`raw`] writer excepted). Held with interrupts disabled (see the crate doc); taken only through [`with_port`],
/// whose holder token is an address on the holder's stack.
static COM1: Once<OwnedSpinLock<SerialPort>> = Once::new();

/// Initializes COM1. Idempotent: later calls do nothing.
pub fn init() {
    COM1.call_once(|| {
        // SAFETY: 0x3F8 is the standard COM1 base on PC-compatible machines and QEMU; nothing else in the kernel
        // drives these I/O ports (this crate is their only owner).
        let mut port = unsafe { SerialPort::new(COM1_BASE) };
        port.init();
        OwnedSpinLock::new(port)
    });
}

/// Runs `f` with COM1 locked and interrupts disabled on this CPU (restored afterwards); `None` before [`init`].
/// `f` must be short (it delays this CPU's interrupts) and must not write to the serial port itself or log.
pub fn with_port<R>(f: impl FnOnce(&mut SerialPort) -> R) -> Option<R> {
    let port = COM1.get()?;
    let _interrupts = InterruptsOff::new();
    // The holder token: an address in this frame, i.e. on the holder's stack.
    let anchor = 0u8;
    let token = core::ptr::addr_of!(anchor) as usize;
    let result = loop {
        if let Some(mut guard) = port.try_lock_as(token) {
            break f(&mut guard);
        }
        irq_safe::relax();
    };
    Some(result)
}

/// Interrupts disabled on this CPU until dropped (also when `f` unwinds), then restored to their previous state.
struct InterruptsOff {
    were_enabled: bool,
}

impl InterruptsOff {
    fn new() -> Self {
        InterruptsOff { were_enabled: irq_safe::interrupts::disable() }
    }
}

impl Drop for InterruptsOff {
    fn drop(&mut self) {
        irq_safe::interrupts::restore(self.were_enabled);
    }
}

/// Releases COM1's lock if its holder's token lies in `stack` (the stack of a task that faulted while holding it;
/// its guard would otherwise stay taken forever, and every later line would spin). Returns whether it did.
///
/// # Safety
/// `stack` must be the stack of a task that will not run the critical section further (it faulted and is being
/// unwound or ended). The UART's registers need no repair: a half-sent line is just cut short.
pub unsafe fn release_if_held_within(stack: core::ops::Range<usize>) -> bool {
    COM1.get().is_some_and(|port| {
        // SAFETY: the caller guarantees the holder is dead or unwinding; the port needs no repair (see above).
        unsafe { port.force_release_if(|token| stack.contains(&token)) }.is_some()
    })
}

/// Whether COM1's lock is taken right now (a snapshot), e.g. for a report that wants to say why it wrote unlocked.
pub fn is_locked() -> bool {
    COM1.get().is_some_and(|port| port.holder().is_some())
}

/// Sends `bytes` on a locked port, translating `\n` to `\r\n` for terminals.
fn send(port: &mut SerialPort, bytes: &[u8]) {
    for &byte in bytes {
        if byte == b'\n' {
            port.send_raw(b'\r');
        }
        port.send_raw(byte);
    }
}

/// Writes `bytes` to COM1 under one lock acquisition, translating `\n` to `\r\n`. Does nothing before [`init`].
pub fn write_bytes(bytes: &[u8]) {
    with_port(|port| send(port, bytes));
}

/// Writes a string to COM1 (see [`write_bytes`]).
pub fn write_str(text: &str) {
    write_bytes(text.as_bytes());
}

/// Collects formatted output and writes it out one whole line (or [`LINE_BUFFER_BYTES`]) per lock acquisition.
struct LineWriter {
    buffer: [u8; LINE_BUFFER_BYTES],
    length: usize,
}

impl LineWriter {
    fn flush(&mut self) {
        if self.length > 0 {
            write_bytes(&self.buffer[..self.length]);
            self.length = 0;
        }
    }
}

impl fmt::Write for LineWriter {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for &byte in text.as_bytes() {
            self.buffer[self.length] = byte;
            self.length += 1;
            if byte == b'\n' || self.length == LINE_BUFFER_BYTES {
                self.flush();
            }
        }
        Ok(())
    }
}

/// Writes formatted text to COM1, one lock acquisition per line, so lines of concurrent writers (other CPUs, an
/// interrupt handler) never interleave, as long as a line fits in [`LINE_BUFFER_BYTES`]. The text is formatted
/// before the lock is taken, so a `Display` implementation that logs or panics cannot deadlock on COM1.
pub fn write_fmt(arguments: fmt::Arguments<'_>) {
    let mut writer = LineWriter { buffer: [0; LINE_BUFFER_BYTES], length: 0 };
    // Our `write_str` never fails; an error can only come from a `Display` implementation, and what it wrote
    // before failing is still printed below (a console has nobody to report the error to).
    let _ = fmt::Write::write_fmt(&mut writer, arguments);
    writer.flush();
}

/// Returns the next received byte, or `None` at once if none is waiting (or before [`init`]).
///
/// Once interrupt-driven input is installed ([`set_receive_source`]), the byte comes from that source (the receive
/// interrupt handler drains the UART into a buffer), so existing pollers keep working unchanged.
pub fn try_read_byte() -> Option<u8> {
    if let Some(source) = RECEIVE_SOURCE.get() {
        return source();
    }
    with_port(|port| port.try_receive().ok()).flatten()
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
    with_port(|_port| {
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
    });
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
