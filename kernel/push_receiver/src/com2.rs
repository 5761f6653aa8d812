//! COM2: the 16550 UART at I/O port 0x2F8 (ISA IRQ 3), owned by this cell; its receive interrupt fills [`RING`].
//!
//! # Flow control
//! QEMU hands the guest a byte only when the UART's 16-byte FIFO has room, so a receiver that stops reading
//! stops the sender without losing anything. The interrupt handler therefore never drops a byte: when [`RING`] is
//! full it disables the receive interrupt (IER bit 0) and leaves the rest in the FIFO; the receiving task, once it
//! has emptied the ring, drains the FIFO itself and re-enables the interrupt ([`resume_if_paused`]).
//!
//! # Producers
//! [`RING`] has one producer at a time: the handler (IRQ 3 is routed to the bootstrap CPU only), or the receiving
//! task, which is pinned to the bootstrap CPU and produces only with interrupts disabled there, so the handler
//! cannot run meanwhile.

use byte_ring::ByteRing;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::{Mutex, Once};
use uart_16550::SerialPort;
use x86_64::instructions::port::Port;
use x86_64::structures::idt::InterruptStackFrame;

/// I/O port base of COM2 (IBM PC convention).
pub const COM2_BASE: u16 = 0x2F8;
/// COM2's ISA IRQ (IBM PC convention).
pub const COM2_IRQ: u8 = 3;
/// The vector ISA IRQ 3 is routed to (the `interrupts` cell's ISA numbering).
pub const COM2_VECTOR: u8 = interrupts::ISA_IRQ_VECTOR_BASE + COM2_IRQ;
/// Capacity of the receive ring in bytes (a power of two; several largest cell objects' worth of a 10 ms poll).
pub const RING_CAPACITY: usize = 64 * 1024;

/// Port offsets and bits of the 16550 (National Semiconductor PC16550D data sheet, "Register Description").
const RECEIVE_BUFFER: u16 = 0;
const INTERRUPT_ENABLE: u16 = 1;
const RECEIVED_DATA_AVAILABLE: u8 = 1 << 0;
const LINE_STATUS: u16 = 5;
const DATA_READY: u8 = 1 << 0;
const SCRATCH: u16 = 7;

/// Received bytes not yet taken by the receiving task (see the module docs for its producers).
pub static RING: ByteRing<RING_CAPACITY> = ByteRing::new();
/// Whether the handler disabled the receive interrupt because [`RING`] was full.
static PAUSED: AtomicBool = AtomicBool::new(false);
/// The tasks waiting for bytes (the receiving task); the handler wakes them.
pub static ARRIVED: sync::WaitQueue = sync::WaitQueue::new();
/// The UART for set-up and for sending replies. The lock protects the transmit side and IER writes from tasks; the
/// handler reads LSR/RBR and writes IER without it (see [`pause`]).
static PORT: Once<Mutex<SerialPort>> = Once::new();

/// Whether a 16550 answers at COM2: its scratch register keeps what is written to it (absent ports read 0xFF).
pub fn is_present() -> bool {
    let mut scratch = Port::<u8>::new(COM2_BASE + SCRATCH);
    // SAFETY: the scratch register has no function besides holding a byte; nothing else in the kernel uses COM2.
    unsafe {
        scratch.write(0x5A);
        let first = scratch.read();
        scratch.write(0xA5);
        first == 0x5A && scratch.read() == 0xA5
    }
}

/// Programs COM2 (8N1, FIFOs on with a 14-byte trigger, OUT2 and the receive interrupt on). Idempotent.
pub fn init_port() {
    PORT.call_once(|| {
        // SAFETY: 0x2F8 is COM2's standard base; this cell is the only user of these ports.
        let mut port = unsafe { SerialPort::new(COM2_BASE) };
        port.init();
        Mutex::new(port)
    });
}

/// Sends `bytes` on COM2 (raw: no newline translation). Does nothing before [`init_port`].
pub fn send(bytes: &[u8]) {
    if let Some(port) = PORT.get() {
        let mut port = port.lock();
        for &byte in bytes {
            port.send_raw(byte);
        }
    }
}

/// One received byte straight from the UART, or `None` if its receiver is empty.
fn read_received_byte() -> Option<u8> {
    let mut line_status = Port::<u8>::new(COM2_BASE + LINE_STATUS);
    let mut receive_buffer = Port::<u8>::new(COM2_BASE + RECEIVE_BUFFER);
    // SAFETY: reading LSR and RBR only consumes a received byte; the callers are the ring's one producer (module
    // docs), so no one else reads received data.
    unsafe {
        if line_status.read() & DATA_READY == 0 {
            return None;
        }
        Some(receive_buffer.read())
    }
}

fn set_receive_interrupt(enabled: bool) {
    let mut interrupt_enable = Port::<u8>::new(COM2_BASE + INTERRUPT_ENABLE);
    // SAFETY: IER of COM2 belongs to this cell; only the receive-data bit is ever set (DLAB is 0 after init).
    unsafe { interrupt_enable.write(if enabled { RECEIVED_DATA_AVAILABLE } else { 0 }) };
}

/// Moves bytes from the UART into [`RING`] until the UART is empty or the ring is full; in the latter case pauses
/// the receive interrupt. Must run on the bootstrap CPU with interrupts disabled (the handler, or [`drain_now`]).
fn drain() {
    while RING.len() < RING_CAPACITY {
        let Some(byte) = read_received_byte() else { return };
        RING.push(byte);
    }
    pause();
}

/// Disables the receive interrupt until [`resume_if_paused`]. Runs in the handler or with interrupts disabled on the
/// bootstrap CPU, so it never races with [`resume_if_paused`]'s write.
fn pause() {
    PAUSED.store(true, Ordering::Release);
    set_receive_interrupt(false);
}

/// Drains the UART into the ring now, with interrupts disabled. Call on the bootstrap CPU only.
pub fn drain_now() {
    x86_64::instructions::interrupts::without_interrupts(drain);
}

/// If the handler paused the receive interrupt, drains what the UART holds and re-enables it (it pauses again at
/// once if the ring is still full). Call from the receiving task (pinned to the bootstrap CPU) after taking bytes.
pub fn resume_if_paused() {
    if !PAUSED.load(Ordering::Acquire) {
        return;
    }
    x86_64::instructions::interrupts::without_interrupts(|| {
        PAUSED.store(false, Ordering::Release);
        set_receive_interrupt(true);
        drain();
    });
}

/// Whether the receiving task has something to do: bytes in the ring, or a paused interrupt to resume.
pub fn has_work() -> bool {
    !RING.is_empty() || PAUSED.load(Ordering::Acquire)
}

/// IRQ 3: move the UART's bytes into the ring, EOI, wake the receiving task.
pub extern "x86-interrupt" fn com2_interrupt(_frame: InterruptStackFrame) {
    drain();
    apic::end_of_interrupt();
    ARRIVED.notify_all();
}
