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

/// The 8042 keyboard controller's command/status port.
const KEYBOARD_CONTROLLER_PORT: u16 = 0x64;
/// The 8042 command that pulses the CPU reset line.
const KEYBOARD_CONTROLLER_RESET: u8 = 0xfe;
/// Status bit 1: the controller's input buffer is full (it has not taken the last command yet).
const KEYBOARD_CONTROLLER_BUSY: u8 = 1 << 1;
/// How many status reads [`reboot`] waits for the controller's input buffer to empty.
const KEYBOARD_CONTROLLER_WAIT: u32 = 100_000;

/// Restarts the machine: first the keyboard controller's reset line (command 0xFE to port 0x64), then, if the machine
/// is still running, a triple fault (an empty IDT and a breakpoint exception: the CPU cannot deliver it and resets).
pub fn reboot() -> ! {
    let mut port: Port<u8> = Port::new(KEYBOARD_CONTROLLER_PORT);
    for _ in 0..KEYBOARD_CONTROLLER_WAIT {
        // SAFETY: reading the 8042's status port has no side effect; without a controller it reads 0xFF.
        if unsafe { port.read() } & KEYBOARD_CONTROLLER_BUSY == 0 {
            break;
        }
    }
    // SAFETY: writing 0xFE to the 8042's command port asks it to reset the CPU, which is what the caller wants; on a
    // machine without the controller the write is ignored and we fall through to the triple fault.
    unsafe { port.write(KEYBOARD_CONTROLLER_RESET) };
    for _ in 0..KEYBOARD_CONTROLLER_WAIT {
        core::hint::spin_loop();
    }
    triple_fault()
}

/// Resets the CPU by loading an empty IDT and raising an exception, which becomes a triple fault.
fn triple_fault() -> ! {
    x86_64::instructions::interrupts::disable();
    let empty = x86_64::structures::DescriptorTablePointer { limit: 0, base: x86_64::VirtAddr::new(0) };
    // SAFETY: the machine is meant to reset: after `lidt` with a zero limit no exception can be delivered, so the
    // breakpoint below escalates to a double and then a triple fault, which resets the CPU. Nothing runs afterwards.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
        core::arch::asm!("int3", options(nomem, nostack));
    }
    halt_forever()
}
