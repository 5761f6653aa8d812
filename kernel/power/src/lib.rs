//! Leaving the system: QEMU's `isa-debug-exit` device, else halting the CPU.
//!
//! Tests run QEMU with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`; writing a value `v` to port 0xF4 makes QEMU
//! exit with status `(v << 1) | 1`. [`ExitCode::Success`] (0x10) gives QEMU status 33 and [`ExitCode::Failure`] (0x11)
//! gives 35. On real hardware (or QEMU without the device) the write does nothing and the CPU halts.
#![no_std]

use x86_64::instructions::port::Port;

/// I/O port of QEMU's isa-debug-exit device, as our test harness configures it.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Values written to the isa-debug-exit port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// 0x10: everything passed (QEMU exit status 33).
    Success,
    /// 0x11: something failed (QEMU exit status 35).
    Failure,
    /// Any other byte.
    Other(u8),
}

impl ExitCode {
    /// The byte written to the port.
    pub fn value(self) -> u8 {
        match self {
            ExitCode::Success => 0x10,
            ExitCode::Failure => 0x11,
            ExitCode::Other(value) => value,
        }
    }
}

/// Exits QEMU with `code`; if that does not stop the machine, disables interrupts and halts forever.
pub fn exit(code: ExitCode) -> ! {
    let mut port: Port<u32> = Port::new(DEBUG_EXIT_PORT);
    // SAFETY: port 0xF4 is either QEMU's isa-debug-exit (which ends the VM) or unused on the PC platform, where
    // writes to it are ignored.
    unsafe { port.write(code.value() as u32) };
    halt_forever()
}

/// Disables interrupts and halts the CPU forever.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
