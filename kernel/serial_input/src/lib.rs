//! Interrupt-driven serial input: COM1's receive interrupt fills a ring buffer and wakes a waiter.
//!
//! # Purpose
//! Polling the UART wastes a CPU and loses bytes when nobody polls. Here the 16550 raises ISA IRQ 4 when a byte
//! arrives; the I/O APIC routes it (honouring the MADT's overrides) to [`interrupts::SERIAL_VECTOR`] on the bootstrap
//! CPU; the handler drains every received byte into a fixed-size lock-free ring (no heap, no lock the interrupted
//! code might hold) and calls the wake hook, through which the console layer wakes a task blocked on input.
//! `serial::try_read_byte` reads from this ring once [`init`] has run, so existing pollers keep working.
//!
//! # Key functions
//! [`init`] ([`SerialInputError`]), [`try_read_byte`], [`set_wake_hook`], [`dropped_bytes`].
//!
//! # Control flow
//! 1. [`init`]: register the handler, redirect `serial::try_read_byte` to [`try_read_byte`], enable the UART's
//!    receive interrupt and OUT2, route IRQ 4, then drain bytes that arrived before (with interrupts disabled, so
//!    the handler and this drain are never two producers at once): an edge-triggered line that is already high would
//!    otherwise never give a new edge.
//! 2. On IRQ 4: drain the UART into the ring, EOI, call the wake hook.
//! 3. Readers pop from the ring; [`CONSUMER`] serialises them (the handler never takes it).
//!
//! A live swap of this cell (`swap serial_input serial_input`) carries the ring and the wake hook over, and at the
//! commit moves the COM1 gate to the new copy's handler ([`cell_state_transfer`]).
#![no_std]
#![feature(abi_x86_interrupt)]

extern crate alloc;

use byte_ring::ByteRing;
use core::sync::atomic::{AtomicPtr, Ordering};
use cpu::CpuId;
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::structures::idt::InterruptStackFrame;

/// COM1's ISA IRQ (IBM PC convention).
const COM1_IRQ: u8 = 4;
/// Capacity of the receive ring in bytes (a pasted line plus margin; must be a power of two).
const RING_CAPACITY: usize = 1024;

/// Received bytes not yet read. Producer: the interrupt handler (on the one CPU IRQ 4 is routed to); consumer: a
/// reader holding [`CONSUMER`].
static RING: ByteRing<RING_CAPACITY> = ByteRing::new();
/// Serialises readers of [`RING`] (the ring allows one consumer at a time). Never taken by the handler.
static CONSUMER: Mutex<()> = Mutex::new(());
/// The wake hook (null: none), called by the handler after EOI.
static WAKE_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// This cell's state transfer (the swap convention, see `cell_namespace`): at the commit, the COM1 gate moves to
/// this copy's handler (if the old copy had registered it).
///
/// # Errors
/// Never fails.
pub fn cell_state_transfer(transfer: &cell_namespace::StateTransfer<'_>) -> Result<(), alloc::string::String> {
    interrupts::move_handlers_at_commit(transfer, &[(interrupts::SERIAL_VECTOR, serial_interrupt)]);
    Ok(())
}

/// Why interrupt-driven input could not be set up (polled input then keeps working).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialInputError {
    /// [`interrupts::SERIAL_VECTOR`] is taken (or the IDT is not set up).
    Register(interrupts::RegisterError),
    /// IRQ 4 could not be routed.
    Route(apic::RouteError),
}

/// Sets up interrupt-driven input (see the crate documentation). Call once on the bootstrap CPU after
/// `smp::init_bootstrap_cpu`.
///
/// # Errors
/// [`SerialInputError`]; nothing was changed then, except that a registered handler stays registered if routing
/// failed (it is never invoked).
pub fn init() -> Result<(), SerialInputError> {
    interrupts::register_handler(interrupts::SERIAL_VECTOR, serial_interrupt).map_err(SerialInputError::Register)?;
    apic::route_isa_irq(COM1_IRQ, interrupts::SERIAL_VECTOR, CpuId::BOOTSTRAP).map_err(SerialInputError::Route)?;
    serial::set_receive_source(try_read_byte);
    serial::enable_receive_interrupt();
    without_interrupts(drain);
    Ok(())
}

/// Moves every byte the UART holds into the ring. Must not run concurrently with itself (producer side).
fn drain() {
    // SAFETY: this is the only reader of COM1's received data: `serial::try_read_byte` was redirected to the ring
    // in `init` before any call of `drain`, and `drain` runs either in the handler (on the one CPU IRQ 4 goes to)
    // or in `init` with interrupts disabled on that same CPU.
    while let Some(byte) = unsafe { serial::read_received_byte_unlocked() } {
        RING.push(byte);
    }
}

/// Returns the next received byte, or `None` at once if none is waiting.
pub fn try_read_byte() -> Option<u8> {
    let _consumer = CONSUMER.lock();
    RING.pop()
}

/// Installs (or replaces) the function called after each receive interrupt that may have stored bytes, in
/// interrupt context with interrupts disabled: it must not block (e.g. wake a wait queue).
pub fn set_wake_hook(hook: fn()) {
    WAKE_HOOK.store(hook as *mut (), Ordering::Release);
}

/// Bytes lost because the ring was full.
pub fn dropped_bytes() -> usize {
    RING.dropped()
}

extern "x86-interrupt" fn serial_interrupt(_frame: InterruptStackFrame) {
    drain();
    apic::end_of_interrupt();
    let hook = WAKE_HOOK.load(Ordering::Acquire);
    if !hook.is_null() {
        // SAFETY: non-null values come only from `set_wake_hook`, which stores a `fn()`.
        let hook = unsafe { core::mem::transmute::<*mut (), fn()>(hook) };
        hook();
    }
}
