//! push_receiver: new code into a running system. Receives cell objects pushed from the host on COM2, checks them,
//! and stores each in the kernel namespace under a new version name, ready for `swap`.
//!
//! # Purpose
//! `make push CELL=<crate>` (host side: `scripts/cellbuild push`) rebuilds one cell's object and sends it, framed
//! by `push_frame`, over the machine's second serial port, which QEMU connects to a host Unix socket. This cell
//! receives the frames, validates them (framing and both CRC-32s; then the object: ELF64, little-endian, `ET_REL`,
//! x86-64, every table in range, exactly as the loader parses it; its undefined symbols defined by the running
//! system), stores the object with [`cell_namespace::CellNamespace::add_pushed_object`] as `<cell>@<n>`, prints
//! `push: stored <name> (<bytes> bytes, crate <crate>)` on the console and answers `ack <name> <bytes>`. Anything
//! else is printed as `push: rejected ...`, answered with `nack <reason>`, and stores nothing. `swap <cell>
//! <name>` at the shell then applies the new version.
//!
//! # Interrupt-driven, with a polling fallback only mid-frame
//! COM2's receive interrupt (ISA IRQ 3 through the I/O APIC, like COM1's in `serial_input`) moves bytes into a
//! lock-free ring and wakes the receiving task; between frames the task blocks on a wait queue and costs nothing.
//! A pure polling task would either waste a CPU or, sleeping one 10 ms tick between polls of a 16-byte FIFO, cap
//! the line at 1.6 KB/s. Inside a frame the task polls the ring every tick instead of blocking, because it must
//! notice a sender that stopped (a truncated frame, reported after [`STALL_TIMEOUT_NS`] of silence) and a
//! wait queue has no timeout. Flow control (`com2.rs`) makes sure no byte is ever dropped for lack of room.
//!
//! # Control flow
//! 1. [`start`] (called by `captain`): probe COM2, register the IRQ 3 handler, program the UART, route IRQ 3 to the
//!    bootstrap CPU, drain early bytes, spawn the `push_receiver` task pinned to the bootstrap CPU.
//! 2. The task takes bytes from the ring into a `push_frame::Receiver` and handles each event: a complete frame is
//!    copied into aligned storage and stored (or rejected); a damaged frame is rejected and the receiver
//!    resynchronises on the next magic; a frame silent for [`STALL_TIMEOUT_NS`] is rejected as truncated.
//! 3. Every outcome is printed on the console and answered on COM2 with one reply line.
#![no_std]
#![feature(abi_x86_interrupt)]

extern crate alloc;

mod com2;
mod object;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use push_frame::{Event, ReceivedFrame, Receiver, Reply};

use crate::object::AlignedObject;

/// Silence inside a frame after which it counts as truncated (ns).
pub const STALL_TIMEOUT_NS: u64 = 1_500_000_000;
/// The polling period inside a frame (one scheduler tick at 100 Hz).
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Why [`start`] could not set up the receiver.
#[derive(Debug)]
pub enum StartError {
    /// No 16550 answers at COM2 (QEMU was started without a second `-serial`).
    NoUart,
    /// The IRQ 3 vector is taken.
    Register(interrupts::RegisterError),
    /// IRQ 3 could not be routed.
    Route(apic::RouteError),
    /// The receiving task could not be spawned.
    Spawn(spawn::SpawnError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::NoUart => f.write_str("no UART at COM2 (I/O 0x2F8)"),
            StartError::Register(error) => write!(f, "cannot register vector {:#x}: {error:?}", com2::COM2_VECTOR),
            StartError::Route(error) => write!(f, "cannot route IRQ {}: {error:?}", com2::COM2_IRQ),
            StartError::Spawn(error) => write!(f, "cannot spawn the receiving task: {error}"),
        }
    }
}

/// This cell's state transfer (the swap convention, see `cell_namespace`): the default copy carries the ring and
/// the port over; at the commit the COM2 gate moves to this copy's handler (if receiving was started). The
/// receiving task keeps running in the old copy's code (on the carried-over state), which keeps that copy retired.
///
/// # Errors
/// Never fails.
pub fn cell_state_transfer(transfer: &cell_namespace::StateTransfer<'_>) -> Result<(), alloc::string::String> {
    interrupts::move_handlers_at_commit(transfer, &[(com2::COM2_VECTOR, com2::com2_interrupt)]);
    Ok(())
}

/// Starts receiving pushed cells on COM2 and logs the outcome; without a COM2 (the usual case outside `make run`
/// and the push test) pushing is just unavailable. Call once, after interrupts and tasking are up.
pub fn start() {
    match try_start() {
        Ok(()) => {
            log::info!("push: receiving cell objects on COM2 (I/O {:#x}, IRQ {})", com2::COM2_BASE, com2::COM2_IRQ)
        }
        Err(StartError::NoUart) => log::info!("push: no UART at COM2; pushing cells is unavailable"),
        Err(error) => log::error!("push: {error}; pushing cells is unavailable"),
    }
}

/// [`start`]'s work.
///
/// # Errors
/// [`StartError`]; a handler registered before a later step failed stays registered (it only drains COM2).
pub fn try_start() -> Result<(), StartError> {
    if !com2::is_present() {
        return Err(StartError::NoUart);
    }
    interrupts::register_handler(com2::COM2_VECTOR, com2::com2_interrupt).map_err(StartError::Register)?;
    com2::init_port();
    apic::route_isa_irq(com2::COM2_IRQ, com2::COM2_VECTOR, cpu::CpuId::BOOTSTRAP).map_err(StartError::Route)?;
    // An edge-triggered line that is already high (bytes that arrived before routing) gives no new edge.
    com2::drain_now();
    spawn::TaskBuilder::new("push_receiver")
        .pin(cpu::CpuId::BOOTSTRAP.index())
        .spawn(receive_forever)
        .map_err(StartError::Spawn)?;
    Ok(())
}

/// The receiving task's body.
fn receive_forever() {
    let mut receiver = Receiver::new();
    let mut last_byte_ns = tsc::now_ns();
    let mut chunk = Vec::with_capacity(com2::RING_CAPACITY);
    loop {
        chunk.clear();
        while let Some(byte) = com2::RING.pop() {
            chunk.push(byte);
        }
        com2::resume_if_paused();
        if !chunk.is_empty() {
            receiver.extend(&chunk);
            last_byte_ns = tsc::now_ns();
        }
        while let Some(event) = receiver.next_event() {
            handle(event);
        }
        if !chunk.is_empty() || com2::has_work() {
            continue;
        }
        if !receiver.is_mid_frame() {
            com2::ARRIVED.wait_until(|| com2::has_work().then_some(()));
        } else if tsc::now_ns().saturating_sub(last_byte_ns) > STALL_TIMEOUT_NS {
            if let Some(event) = receiver.expire() {
                handle(event);
            }
        } else {
            scheduler::sleep(POLL_INTERVAL);
        }
    }
}

/// Prints and answers one receiver event.
fn handle(event: Event) {
    let reply = match event {
        Event::Frame(frame) => store(frame),
        Event::Rejected(error) => Reply::Rejected { reason: error.to_string() },
    };
    match &reply {
        Reply::Stored { .. } => {}
        Reply::Rejected { reason } => serial::write_fmt(format_args!("\npush: rejected: {reason}\n")),
    }
    com2::send(reply.to_line().as_bytes());
}

/// Validates and stores one frame's object; prints the outcome when stored.
fn store(frame: ReceivedFrame) -> Reply {
    let Some(namespace) = system_namespaces::kernel_namespace() else {
        return Reply::Rejected { reason: String::from("the kernel namespace is not installed") };
    };
    let bytes = frame.payload.len();
    let object = AlignedObject::new(&frame.payload);
    drop(frame.payload);
    match object.store(namespace, &frame.cell, &frame.crate_name) {
        Ok(entry) => {
            serial::write_fmt(format_args!(
                "\npush: stored {} ({bytes} bytes, crate {})\n",
                entry.name, entry.crate_name
            ));
            Reply::Stored { name: entry.name, bytes }
        }
        Err(error) => Reply::Rejected { reason: error.to_string() },
    }
}
