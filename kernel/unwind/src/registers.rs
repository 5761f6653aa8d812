//! The register set the unwinder tracks: x86_64 general-purpose registers and the return address, by DWARF number.
//!
//! Numbering from the System V AMD64 psABI 1.0, section 3.6.2, figure 3.36 "DWARF Register Number Mapping" (the
//! same as DWARF 5 section 6.4.1 leaves to the ABI): RAX=0, RDX=1, RCX=2, RBX=3, RSI=4, RDI=5, RBP=6, RSP=7,
//! R8-R15=8-15, and the return-address column RA=16. The unwinder stores a frame's instruction pointer in RA.

use core::fmt;

use gimli::Register;

/// Number of registers tracked: DWARF registers 0..=16.
pub const REGISTER_COUNT: usize = 17;

/// DWARF register 0, RAX.
pub const RAX: Register = Register(0);
/// DWARF register 1, RDX.
pub const RDX: Register = Register(1);
/// DWARF register 2, RCX.
pub const RCX: Register = Register(2);
/// DWARF register 3, RBX (callee-saved).
pub const RBX: Register = Register(3);
/// DWARF register 4, RSI.
pub const RSI: Register = Register(4);
/// DWARF register 5, RDI.
pub const RDI: Register = Register(5);
/// DWARF register 6, RBP (callee-saved).
pub const RBP: Register = Register(6);
/// DWARF register 7, RSP (the caller's value is the CFA).
pub const RSP: Register = Register(7);
/// DWARF register 8, R8.
pub const R8: Register = Register(8);
/// DWARF register 9, R9.
pub const R9: Register = Register(9);
/// DWARF register 10, R10.
pub const R10: Register = Register(10);
/// DWARF register 11, R11.
pub const R11: Register = Register(11);
/// DWARF register 12, R12 (callee-saved).
pub const R12: Register = Register(12);
/// DWARF register 13, R13 (callee-saved).
pub const R13: Register = Register(13);
/// DWARF register 14, R14 (callee-saved).
pub const R14: Register = Register(14);
/// DWARF register 15, R15 (callee-saved).
pub const R15: Register = Register(15);
/// DWARF register 16, the return-address column (a frame's instruction pointer).
pub const RA: Register = Register(16);

/// Registers a callee preserves (psABI 3.2.1, figure 3.4): RBX, RBP, R12-R15, plus RSP (whose caller value is the
/// CFA). A register of this set that a frame's CFI does not mention keeps its value in the caller ("same value").
pub const CALLEE_SAVED: [Register; 6] = [RBX, RBP, R12, R13, R14, R15];

const NAMES: [&str; REGISTER_COUNT] = [
    "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "ra",
];

/// The value of every tracked register in one frame; `None` where it is unknown (not saved by the callee).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Registers {
    values: [Option<u64>; REGISTER_COUNT],
}

impl Registers {
    /// A set with every register unknown.
    pub const fn new() -> Self {
        Self { values: [None; REGISTER_COUNT] }
    }

    /// The value of `register`; `None` if unknown or not tracked (numbers above 16).
    pub fn get(&self, register: Register) -> Option<u64> {
        self.values.get(usize::from(register.0)).copied().flatten()
    }

    /// Sets `register` (ignored for numbers above 16, which are never tracked).
    pub fn set(&mut self, register: Register, value: Option<u64>) {
        if let Some(slot) = self.values.get_mut(usize::from(register.0)) {
            *slot = value;
        }
    }

    /// Whether `register` is one of the tracked DWARF registers 0..=16.
    pub fn tracks(register: Register) -> bool {
        usize::from(register.0) < REGISTER_COUNT
    }

    /// The instruction pointer of the frame (the return-address column).
    pub fn instruction_pointer(&self) -> Option<u64> {
        self.get(RA)
    }

    /// The stack pointer.
    pub fn stack_pointer(&self) -> Option<u64> {
        self.get(RSP)
    }

    /// The printable name of a tracked register (`rax`...`r15`, `ra`), or `None`.
    pub fn name(register: Register) -> Option<&'static str> {
        NAMES.get(usize::from(register.0)).copied()
    }
}

impl fmt::Debug for Registers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in NAMES.iter().zip(self.values.iter()) {
            if let Some(value) = value {
                map.entry(name, &format_args!("{value:#x}"));
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_and_untracked_registers() {
        let mut registers = Registers::new();
        registers.set(RSP, Some(0x1000));
        registers.set(RA, Some(0x2000));
        registers.set(Register(17), Some(1));
        assert_eq!(registers.stack_pointer(), Some(0x1000));
        assert_eq!(registers.instruction_pointer(), Some(0x2000));
        assert_eq!(registers.get(Register(17)), None);
        assert_eq!(registers.get(RBX), None);
        assert!(!Registers::tracks(Register(17)));
        assert_eq!(Registers::name(R15), Some("r15"));
        assert_eq!(alloc::format!("{registers:?}"), "{\"rsp\": 0x1000, \"ra\": 0x2000}");
    }
}
