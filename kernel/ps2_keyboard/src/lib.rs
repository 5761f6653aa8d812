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
//! 1. [`init`]: probe the 8042 (status port 0x64 reads 0xff on machines without one), disable its ports, flush
//!    its output buffer, read its configuration byte, self-test it and test the keyboard port, enable the port and
//!    keyboard scanning. With translation on (configuration bit 6, the BIOS default and QEMU's), the keyboard's
//!    set 2 reaches us as set 1; with it off, as set 2. Every wait on the controller or keyboard is bounded
//!    ([`WAIT_SPINS`]), so a machine without a controller (many UEFI PCs; QEMU `-machine i8042=off`), or with a
//!    keyboard that never answers, never hangs: `init` logs "no PS/2 controller" (or the failed step) and returns
//!    an error. Then enable the port-1 interrupt and route ISA IRQ 1.
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
/// Controller command: disable port 1 (the keyboard).
const COMMAND_DISABLE_PORT1: u8 = 0xad;
/// Controller command: disable port 2 (the mouse; ignored by single-port controllers).
const COMMAND_DISABLE_PORT2: u8 = 0xa7;
/// Controller command: enable port 1.
const COMMAND_ENABLE_PORT1: u8 = 0xae;
/// Controller command: self-test; answers [`SELF_TEST_PASSED`].
const COMMAND_SELF_TEST: u8 = 0xaa;
/// The self-test's answer when the controller works.
const SELF_TEST_PASSED: u8 = 0x55;
/// Controller command: test port 1; answers 0x00 when the port works.
const COMMAND_TEST_PORT1: u8 = 0xab;
/// Keyboard command (sent through the data port): enable scanning; answered by [`KEYBOARD_ACK`].
const KEYBOARD_ENABLE_SCANNING: u8 = 0xf4;
/// The keyboard's acknowledgement of a command.
const KEYBOARD_ACK: u8 = 0xfa;
/// Configuration bit 0: interrupt on port 1 (the keyboard).
const CONFIG_PORT1_INTERRUPT: u8 = 1 << 0;
/// Configuration bit 1: interrupt on port 2 (the mouse).
const CONFIG_PORT2_INTERRUPT: u8 = 1 << 1;
/// Configuration bit 4: port 1's clock is disabled (set by [`COMMAND_DISABLE_PORT1`], cleared by
/// [`COMMAND_ENABLE_PORT1`]).
const CONFIG_PORT1_CLOCK_DISABLED: u8 = 1 << 4;
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
    /// The controller's self-test (command 0xAA) answered this instead of 0x55.
    SelfTest(u8),
    /// The keyboard port's test (command 0xAB) answered this instead of 0x00.
    PortTest(u8),
    /// [`interrupts::KEYBOARD_VECTOR`] is taken (or the IDT is not set up).
    Register(interrupts::RegisterError),
    /// IRQ 1 could not be routed.
    Route(apic::RouteError),
}

/// Sets up the controller and IRQ 1 (see the crate documentation). Call once on the bootstrap CPU after
/// `smp::init_bootstrap_cpu`. Every failure is also logged as a warning naming its cause ("no PS/2 controller").
///
/// # Errors
/// [`KeyboardError`]. After `NoController`, `Timeout`, `SelfTest` or `PortTest` the controller's ports may be left
/// disabled (nothing else uses them); the screen console then simply has no keyboard.
pub fn init() -> Result<(), KeyboardError> {
    let result = init_controller();
    match result {
        Ok(()) => {}
        Err(KeyboardError::NoController) => log::warn!("ps2_keyboard: no PS/2 controller (status port reads 0xff)"),
        Err(KeyboardError::Timeout(command)) => {
            log::warn!("ps2_keyboard: no PS/2 controller: command {command:#04x} got no answer within the timeout")
        }
        Err(KeyboardError::SelfTest(reply)) => {
            log::warn!("ps2_keyboard: no PS/2 controller: self-test answered {reply:#04x}, not 0x55")
        }
        Err(KeyboardError::PortTest(reply)) => {
            log::warn!("ps2_keyboard: PS/2 keyboard port failed its test (answer {reply:#04x}, not 0x00)")
        }
        Err(KeyboardError::Register(ref error)) => log::warn!("ps2_keyboard: IRQ 1 handler: {error:?}"),
        Err(KeyboardError::Route(ref error)) => log::warn!("ps2_keyboard: IRQ 1 routing: {error:?}"),
    }
    result
}

/// The probe and set-up sequence (OSDev "I8042 PS/2 Controller", initialisation): disable both ports, flush,
/// read the configuration with the port interrupts off, self-test (0xAA -> 0x55), restore the configuration (a
/// self-test may reset it), test port 1 (0xAB -> 0x00), enable port 1, ask the keyboard to scan (0xF4; its
/// answer is waited for but not required), then enable the port-1 interrupt and route IRQ 1.
fn init_controller() -> Result<(), KeyboardError> {
    if read_status() == 0xff {
        return Err(KeyboardError::NoController);
    }
    write_command(COMMAND_DISABLE_PORT1)?;
    write_command(COMMAND_DISABLE_PORT2)?;
    flush_output();
    let config = command_with_reply(COMMAND_READ_CONFIG)? & !(CONFIG_PORT1_INTERRUPT | CONFIG_PORT2_INTERRUPT);
    write_command(COMMAND_WRITE_CONFIG)?;
    write_data(config, COMMAND_WRITE_CONFIG)?;
    match command_with_reply(COMMAND_SELF_TEST)? {
        SELF_TEST_PASSED => {}
        reply => return Err(KeyboardError::SelfTest(reply)),
    }
    write_command(COMMAND_WRITE_CONFIG)?;
    write_data(config, COMMAND_WRITE_CONFIG)?;
    match command_with_reply(COMMAND_TEST_PORT1)? {
        0x00 => {}
        reply => return Err(KeyboardError::PortTest(reply)),
    }
    write_command(COMMAND_ENABLE_PORT1)?;
    enable_scanning();
    let translated = config & CONFIG_TRANSLATION != 0;
    *DECODER.lock() = if translated {
        Decoder::Set1(Keyboard::new(ScancodeSet1::new(), Us104Key, HandleControl::MapLettersToUnicode))
    } else {
        Decoder::Set2(Keyboard::new(ScancodeSet2::new(), Us104Key, HandleControl::MapLettersToUnicode))
    };
    flush_output();
    write_command(COMMAND_WRITE_CONFIG)?;
    // `config` was read after port 1 was disabled, so its port-1 clock-disable bit is set: clear it here, or this
    // write would disable the keyboard again (QEMU's 8042 keeps the disable state in that bit).
    write_data((config | CONFIG_PORT1_INTERRUPT) & !CONFIG_PORT1_CLOCK_DISABLED, COMMAND_WRITE_CONFIG)?;
    interrupts::register_handler(interrupts::KEYBOARD_VECTOR, keyboard_interrupt).map_err(KeyboardError::Register)?;
    apic::route_isa_irq(KEYBOARD_IRQ, interrupts::KEYBOARD_VECTOR, CpuId::BOOTSTRAP).map_err(KeyboardError::Route)?;
    SET.store(if translated { 1 } else { 2 }, Ordering::Release);
    flush_output();
    Ok(())
}

/// Sends "enable scanning" (0xF4) to the keyboard and waits (bounded) for its acknowledgement (0xFA). A keyboard
/// that never answers, or no keyboard behind a working controller, is logged and otherwise ignored: one plugged in
/// later still works.
fn enable_scanning() {
    let answered = write_data(KEYBOARD_ENABLE_SCANNING, KEYBOARD_ENABLE_SCANNING)
        .and_then(|()| wait_until(|status| status & STATUS_OUTPUT_FULL != 0, KEYBOARD_ENABLE_SCANNING))
        // SAFETY: the status says a byte is waiting; the port-1 interrupt is still off, so nobody else reads it.
        .map(|()| unsafe { Port::<u8>::new(DATA_PORT).read() });
    match answered {
        Ok(KEYBOARD_ACK) => {}
        Ok(reply) => log::warn!("ps2_keyboard: the keyboard answered {reply:#04x} to enable-scanning, not 0xfa"),
        Err(_) => log::warn!("ps2_keyboard: no answer from a keyboard (none plugged in?); port 1 stays enabled"),
    }
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
