//! The two assembly primitives: capturing the caller's registers, and entering a landing pad.
//!
//! Both follow the System V AMD64 psABI (3.2): callee-saved RBX, RBP, R12-R15; a call leaves RSP = 8 mod 16.

use crate::registers::{R12, R13, R14, R15, RA, RBP, RBX, RSP, Registers};

/// The registers [`capture_registers_and_call`] saves, in memory order.
#[repr(C)]
pub(crate) struct CapturedRegisters {
    rbx: u64,
    rbp: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    /// The caller's stack pointer after the call returns.
    rsp: u64,
    /// The return address into the caller.
    return_address: u64,
}

impl CapturedRegisters {
    /// As a register set of the caller's frame (RA = the return address).
    pub(crate) fn to_registers(&self) -> Registers {
        let mut registers = Registers::new();
        for (register, value) in [
            (RBX, self.rbx),
            (RBP, self.rbp),
            (R12, self.r12),
            (R13, self.r13),
            (R14, self.r14),
            (R15, self.r15),
            (RSP, self.rsp),
            (RA, self.return_address),
        ] {
            registers.set(register, Some(value));
        }
        registers
    }
}

/// What [`capture_registers_and_call`] calls.
pub(crate) type CaptureCallback = unsafe extern "C-unwind" fn(*const CapturedRegisters, *mut u8);

/// Saves the caller's callee-saved registers, its stack pointer after this call returns and the return address
/// into a [`CapturedRegisters`] on the stack, then calls `callback(&captured, data)` and returns.
///
/// The captured registers describe the caller's frame, which stays live while `callback` runs.
///
/// # Safety
/// `callback` must be safe to call with `data`. It may return or unwind normally (the function has CFI).
#[unsafe(naked)]
pub(crate) unsafe extern "C-unwind" fn capture_registers_and_call(callback: CaptureCallback, data: *mut u8) {
    core::arch::naked_asm!(
        ".cfi_startproc",
        // 8 slots of CapturedRegisters + 1 for alignment: RSP = 8 mod 16 on entry, 0 mod 16 at the call below.
        "sub rsp, 72",
        ".cfi_adjust_cfa_offset 72",
        "mov [rsp], rbx",
        "mov [rsp + 8], rbp",
        "mov [rsp + 16], r12",
        "mov [rsp + 24], r13",
        "mov [rsp + 32], r14",
        "mov [rsp + 40], r15",
        // The caller's RSP after `ret`: above our 72 bytes and the return address.
        "lea rax, [rsp + 80]",
        "mov [rsp + 48], rax",
        "mov rax, [rsp + 72]",
        "mov [rsp + 56], rax",
        "mov rax, rdi",
        "mov rdi, rsp",
        "call rax",
        "add rsp, 72",
        ".cfi_adjust_cfa_offset -72",
        "ret",
        ".cfi_endproc",
    )
}

/// The register state a landing pad is entered with (Itanium ABI: RAX = exception object, RDX = selector).
#[repr(C)]
pub(crate) struct LandingRegisters {
    pub(crate) rax: u64,
    pub(crate) rdx: u64,
    pub(crate) rbx: u64,
    pub(crate) rbp: u64,
    pub(crate) r12: u64,
    pub(crate) r13: u64,
    pub(crate) r14: u64,
    pub(crate) r15: u64,
    pub(crate) rsp: u64,
    pub(crate) rip: u64,
}

impl LandingRegisters {
    /// The frame's callee-saved registers and stack pointer, RAX and RDX as given, RIP = `landing_pad`.
    /// A register the walk lost (never the case for captured or exception register sets) becomes 0.
    pub(crate) fn new(frame: &Registers, landing_pad: u64, exception: u64, selector: u64) -> Self {
        let value = |register| frame.get(register).unwrap_or(0);
        Self {
            rax: exception,
            rdx: selector,
            rbx: value(RBX),
            rbp: value(RBP),
            r12: value(R12),
            r13: value(R13),
            r14: value(R14),
            r15: value(R15),
            rsp: value(RSP),
            rip: landing_pad,
        }
    }
}

/// Loads `registers` and jumps to its RIP. Everything on the stack below the new RSP is abandoned.
///
/// # Safety
/// `registers` must describe a live frame on this CPU's current stack (or one it may take over), above every frame
/// still in use, with RIP a landing pad of that frame's function that expects exactly this state. Nothing owned by
/// the abandoned frames is dropped.
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn land(registers: *const LandingRegisters) -> ! {
    core::arch::naked_asm!(
        "mov rax, [rdi]",
        "mov rdx, [rdi + 8]",
        "mov rbx, [rdi + 16]",
        "mov rbp, [rdi + 24]",
        "mov r12, [rdi + 32]",
        "mov r13, [rdi + 40]",
        "mov r14, [rdi + 48]",
        "mov r15, [rdi + 56]",
        // Read RIP before switching stacks: once RSP moves up, an interrupt may overwrite `registers`, which lies
        // in the abandoned part of the stack.
        "mov rcx, [rdi + 72]",
        "mov rsp, [rdi + 64]",
        "jmp rcx",
    )
}
