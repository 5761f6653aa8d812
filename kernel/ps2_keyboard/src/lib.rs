//! PS/2 keyboard input: the 8042 controller's IRQ 1 fills a ring with the bytes a serial terminal would send.
//!
//! # Purpose
//! The screen console's shell reads the same byte stream as the serial one: printable keys as UTF-8, Enter as
//! `\r`, Backspace as 0x7f, Ctrl-letter as the control byte (Ctrl-C = 0x03), arrows as `ESC [ A`..`D`, Home/End as
//! `ESC [ H`/`ESC [ F`, Delete as `ESC [ 3 ~`. Decoding uses the `pc-keyboard` crate (US 104-key layout).
//!
//! # Key functions
//! [`init`] ([`KeyboardError`]), [`try_read_byte`], [`set_wake_hook`], [`scancode_set`].
//!
//! # Control flow
//! 1. [`init`]: probe the 8042 (status port 0x64 reads 0xff on machines without one), flush its output buffer,
//!    read its configuration byte: with translation on (bit 6, the BIOS default and QEMU's), the keyboard's set 2
//!    reaches us as set 1; with it off, as set 2. Every wait on the controller is bounded ([`WAIT_SPINS`]), so a
//!    machine without a controller or keyboard never hangs. Then enable the port-1 interrupt and route ISA IRQ 1.
//! 2. On IRQ 1: read the scancode byte from port 0x60, decode it, push the resulting bytes, EOI, call the wake
//!    hook.
//! 3. Readers pop from the ring; [`CONSUMER`] serialises them (the handler never takes it).
//!
//! A live swap of this cell carries the ring, decoder and wake hook over, and at the commit moves the IRQ 1 gate
//! to the new copy's handler ([`cell_state_transfer`]).
#![no_std]
#![feature(abi_x86_interrupt)]

extern crate alloc;

use byte_ring::ByteRing;
use core::sync::atomic::{AtomicU8, Ordering};
use cpu::CpuId;
use pc_keyboard::{DecodedKey, HandleControl, KeyCode, Keyboard, ScancodeSet1, ScancodeSet2, layouts::Us104Key};
use spin::Mutex;
use x86_64::instructions::port::Port;
use x86_64::structures::idt::InterruptStackFrame;

/// The keyboard's ISA IRQ (IBM PC convention).
const KEYBOARD_IRQ: u8 = 1;
/// 8042 data port (scancodes, command replies).
const DATA_PORT: u16 = 0x60;
/// 8042 status (read) and command (write) port.
const STATUS_PORT: u16 = 0x64;
/// Status bit 0: the output buffer holds a byte for us.
const STATUS_OUTPUT_FULL: u8 = 1 << 0;
/// Status bit 1: the input buffer is still full (the controller has not taken our last byte).
const STATUS_INPUT_FULL: u8 = 1 << 1;
/// Controller command: read the configuration byte.
const COMMAND_READ_CONFIG: u8 = 0x20;
/// Controller command: write the configuration byte.
const COMMAND_WRITE_CONFIG: u8 = 0x60;
/// Configuration bit 0: interrupt on port 1 (the keyboard).
const CONFIG_PORT1_INTERRUPT: u8 = 1 << 0;
/// Configuration bit 6: translate set 2 to set 1.
const CONFIG_TRANSLATION: u8 = 1 << 6;
/// Status polls before a controller wait gives up (each `in` takes about 1 µs on real hardware).
const WAIT_SPINS: usize = 100_000;
/// Capacity of the byte ring (a power of two).
const RING_CAPACITY: usize = 256;

/// Bytes decoded from key presses, not yet read. Producer: the IRQ 1 handler; consumer: a reader holding
/// [`CONSUMER`].
static RING: ByteRing<RING_CAPACITY> = ByteRing::new();
/// Serialises readers of [`RING`]. Never taken by the handler.
static CONSUMER: Mutex<()> = Mutex::new(());
/// The decoder state. Taken only by the IRQ 1 handler (one CPU, interrupts off) and by [`init`] before the IRQ is
/// routed, so it is never contended.
static DECODER: Mutex<Decoder> =
    Mutex::new(Decoder::Set1(Keyboard::new(ScancodeSet1::new(), Us104Key, HandleControl::MapLettersToUnicode)));
/// The scancode set in use (1 or 2), 0 before [`init`] succeeded.
static SET: AtomicU8 = AtomicU8::new(0);

/// The decoder for the scancode set the controller delivers.
enum Decoder {
    /// Translation on: set 1 bytes.
    Set1(Keyboard<Us104Key, ScancodeSet1>),
    /// Translation off: the keyboard's own set 2 bytes.
    Set2(Keyboard<Us104Key, ScancodeSet2>),
}

/// This cell's state transfer (the swap convention, see `cell_namespace`): at the commit, the IRQ 1 gate moves to
/// this copy's handler (if the old copy had registered it).
///
/// # Errors
/// Never fails.
pub fn cell_state_transfer(transfer: &cell_namespace::StateTransfer<'_>) -> Result<(), alloc::string::String> {
    interrupts::move_handlers_at_commit(transfer, &[(interrupts::KEYBOARD_VECTOR, keyboard_interrupt)]);
    Ok(())
}

/// Why the keyboard could not be set up (the screen console then has no input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyboardError {
    /// No 8042 controller: the status port reads 0xff.
    NoController,
    /// The controller did not answer a command within [`WAIT_SPINS`] polls; carries the command.
    Timeout(u8),
    /// [`interrupts::KEYBOARD_VECTOR`] is taken (or the IDT is not set up).
    Register(interrupts::RegisterError),
    /// IRQ 1 could not be routed.
    Route(apic::RouteError),
}

/// Sets up the controller and IRQ 1 (see the crate documentation). Call once on the bootstrap CPU after
/// `smp::init_bootstrap_cpu`.
///
/// # Errors
/// [`KeyboardError`]; the controller's configuration is unchanged unless the error is `Register` or `Route`.
pub fn init() -> Result<(), KeyboardError> {
    if read_status() == 0xff {
        return Err(KeyboardError::NoController);
    }
    flush_output();
    let config = command_with_reply(COMMAND_READ_CONFIG)?;
    let translated = config & CONFIG_TRANSLATION != 0;
    *DECODER.lock() = if translated {
        Decoder::Set1(Keyboard::new(ScancodeSet1::new(), Us104Key, HandleControl::MapLettersToUnicode))
    } else {
        Decoder::Set2(Keyboard::new(ScancodeSet2::new(), Us104Key, HandleControl::MapLettersToUnicode))
    };
    write_command(COMMAND_WRITE_CONFIG)?;
    write_data(config | CONFIG_PORT1_INTERRUPT, COMMAND_WRITE_CONFIG)?;
    interrupts::register_handler(interrupts::KEYBOARD_VECTOR, keyboard_interrupt).map_err(KeyboardError::Register)?;
    apic::route_isa_irq(KEYBOARD_IRQ, interrupts::KEYBOARD_VECTOR, CpuId::BOOTSTRAP).map_err(KeyboardError::Route)?;
    SET.store(if translated { 1 } else { 2 }, Ordering::Release);
    flush_output();
    Ok(())
}

/// The scancode set being decoded (1 or 2), or `None` before [`init`] succeeded.
pub fn scancode_set() -> Option<u8> {
    match SET.load(Ordering::Acquire) {
        0 => None,
        set => Some(set),
    }
}

/// Returns the next byte typed, or `None` at once if none is waiting.
pub fn try_read_byte() -> Option<u8> {
    let _consumer = CONSUMER.lock();
    RING.pop()
}

fn read_status() -> u8 {
    // SAFETY: reading the 8042 status port has no side effects.
    unsafe { Port::<u8>::new(STATUS_PORT).read() }
}

/// Discards bytes waiting in the controller's output buffer (bounded).
fn flush_output() {
    for _ in 0..64 {
        if read_status() & STATUS_OUTPUT_FULL == 0 {
            return;
        }
        // SAFETY: reading the data port pops the byte the status said was there; nobody else reads it yet.
        unsafe { Port::<u8>::new(DATA_PORT).read() };
    }
}

/// Waits (bounded) until `ready(status)` holds.
fn wait_until(ready: impl Fn(u8) -> bool, command: u8) -> Result<(), KeyboardError> {
    (0..WAIT_SPINS).find(|_| ready(read_status())).map(|_| ()).ok_or(KeyboardError::Timeout(command))
}

fn write_command(command: u8) -> Result<(), KeyboardError> {
    wait_until(|status| status & STATUS_INPUT_FULL == 0, command)?;
    // SAFETY: a controller command byte; the controller's input buffer is empty.
    unsafe { Port::<u8>::new(STATUS_PORT).write(command) };
    Ok(())
}

fn write_data(byte: u8, command: u8) -> Result<(), KeyboardError> {
    wait_until(|status| status & STATUS_INPUT_FULL == 0, command)?;
    // SAFETY: the data byte the preceding command `command` expects; the input buffer is empty.
    unsafe { Port::<u8>::new(DATA_PORT).write(byte) };
    Ok(())
}

fn command_with_reply(command: u8) -> Result<u8, KeyboardError> {
    write_command(command)?;
    wait_until(|status| status & STATUS_OUTPUT_FULL != 0, command)?;
    // SAFETY: the status says the reply to `command` is waiting in the data port.
    Ok(unsafe { Port::<u8>::new(DATA_PORT).read() })
}

/// Decodes one scancode byte into the console bytes it stands for (empty for modifiers and releases).
fn decode(decoder: &mut Decoder, scancode: u8, out: &mut [u8; 4]) -> usize {
    let key = match decoder {
        Decoder::Set1(keyboard) => {
            keyboard.add_byte(scancode).ok().flatten().and_then(|e| keyboard.process_keyevent(e))
        }
        Decoder::Set2(keyboard) => {
            keyboard.add_byte(scancode).ok().flatten().and_then(|e| keyboard.process_keyevent(e))
        }
    };
    let sequence: &[u8] = match key {
        Some(DecodedKey::Unicode('\n')) => b"\r",
        Some(DecodedKey::Unicode('\u{8}')) => b"\x7f",
        Some(DecodedKey::Unicode(character)) => return character.encode_utf8(out).len(),
        Some(DecodedKey::RawKey(KeyCode::ArrowUp)) => b"\x1b[A",
        Some(DecodedKey::RawKey(KeyCode::ArrowDown)) => b"\x1b[B",
        Some(DecodedKey::RawKey(KeyCode::ArrowRight)) => b"\x1b[C",
        Some(DecodedKey::RawKey(KeyCode::ArrowLeft)) => b"\x1b[D",
        Some(DecodedKey::RawKey(KeyCode::Home)) => b"\x1b[H",
        Some(DecodedKey::RawKey(KeyCode::End)) => b"\x1b[F",
        Some(DecodedKey::RawKey(KeyCode::Delete)) => b"\x1b[3~",
        Some(DecodedKey::RawKey(_)) | None => b"",
    };
    out[..sequence.len()].copy_from_slice(sequence);
    sequence.len()
}

extern "x86-interrupt" fn keyboard_interrupt(_frame: InterruptStackFrame) {
    if read_status() & STATUS_OUTPUT_FULL != 0 {
        // SAFETY: the status says a scancode is waiting; only this handler reads the data port after `init`.
        let scancode = unsafe { Port::<u8>::new(DATA_PORT).read() };
        let mut bytes = [0u8; 4];
        let count = decode(&mut DECODER.lock(), scancode, &mut bytes);
        for &byte in &bytes[..count] {
            RING.push(byte);
        }
    }
    apic::end_of_interrupt();
    call_wake_hook();
}

/// The wake hook (null: none), called by the handler after EOI.
static WAKE_HOOK: core::sync::atomic::AtomicPtr<()> = core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// Installs (or replaces) the function called after each keyboard interrupt, in interrupt context with interrupts
/// disabled: it must not block (e.g. wake a wait queue).
pub fn set_wake_hook(hook: fn()) {
    WAKE_HOOK.store(hook as *mut (), Ordering::Release);
}

fn call_wake_hook() {
    let hook = WAKE_HOOK.load(Ordering::Acquire);
    if !hook.is_null() {
        // SAFETY: non-null values come only from `set_wake_hook`, which stores a `fn()`.
        let hook = unsafe { core::mem::transmute::<*mut (), fn()>(hook) };
        hook();
    }
}
