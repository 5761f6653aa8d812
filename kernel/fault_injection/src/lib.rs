//! Fault injection: functions that raise one CPU exception each, on purpose, for tests and demos.
//!
//! # Purpose
//! Fault recovery must be tested with real faults. Each fault-causing function is an `unsafe fn`: a caller
//! must hold up its `# Safety` contract (run it in a task whose failure the system recovers from), and safe Rust
//! cannot call it. Applications (`#![forbid(unsafe_code)]`) therefore cannot reach these faults at all; this
//! crate is also not marked app-facing (`[package.metadata.cell] app-facing`), so the build refuses an application
//! that depends on it. The shell's `inject` builtin and the in-kernel tests call them. Every function is
//! `#[inline(never)]`, so the faulting instruction lies in this cell (which the fault log then names).
//!
//! # Key functions
//! [`null_dereference`] (#PF), [`general_protection`] (#GP), [`invalid_opcode`] (#UD), [`divide_by_zero`] (#DE),
//! [`stack_overflow`] (#PF in the stack's guard page), and [`corrupt_function`], the patch hook that overwrites
//! the start of a loaded cell's function with `ud2`.
//!
//! # Control flow
//! 1. A test task (or the shell's `inject` task) calls one of the functions, inside an `unsafe` block.
//! 2. The CPU raises the exception.
//! 3. The fault-recovery hook unwinds the task, which ends `Failed(Exception {..})` (or `StackOverflow`). The
//!    functions never return normally.
#![no_std]

extern crate alloc;

use alloc::string::{String, ToString};

/// A non-canonical address (bits 63..47 not all equal): any access raises #GP (SDM Vol. 3A 3.3.7.1).
const NON_CANONICAL: u64 = 0xdead_beef_0000_0000;

/// Reads address 0, which is never mapped: #PF with CR2 = 0.
///
/// # Safety
/// Never returns: the CPU raises #PF. Call it only in a spawned task, with the fault-recovery exception hook
/// installed, which then unwinds the task (its callers' drops run, the faulting frame's own are skipped); anywhere
/// else (the boot path, an interrupt handler, before the hook) the exception stops the machine.
#[inline(never)]
pub unsafe fn null_dereference() -> u64 {
    let pointer = core::hint::black_box(core::ptr::null::<u64>());
    // SAFETY: deliberately unsound: the read faults (page 0 is never mapped), which is the point of this function.
    unsafe { pointer.read_volatile() }
}

/// Reads a non-canonical address: #GP with error code 0.
///
/// # Safety
/// As for [`null_dereference`], with #GP.
#[inline(never)]
pub unsafe fn general_protection() -> u64 {
    let pointer = core::hint::black_box(NON_CANONICAL as *const u64);
    // SAFETY: deliberately unsound: the read raises #GP before touching memory.
    unsafe { pointer.read_volatile() }
}

/// Executes `ud2`: #UD.
///
/// # Safety
/// As for [`null_dereference`], with #UD.
#[inline(never)]
pub unsafe fn invalid_opcode() -> u64 {
    // SAFETY: `ud2` only raises #UD; it touches no memory and no register.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    0
}

/// Divides by zero with `div` (Rust's `/` would panic first): #DE.
///
/// # Safety
/// As for [`null_dereference`], with #DE.
#[inline(never)]
pub unsafe fn divide_by_zero() -> u64 {
    let divisor: u64 = core::hint::black_box(0);
    let quotient: u64;
    // SAFETY: `div` only reads and writes the named registers; with a zero divisor it raises #DE.
    unsafe {
        core::arch::asm!("div {divisor}", divisor = in(reg) divisor, inout("rax") 1u64 => quotient,
            inout("rdx") 0u64 => _, options(nomem, nostack));
    }
    quotient
}

/// Recurses with 1 KiB frames until the stack runs into its guard page: #PF in the guard page.
///
/// Safe Rust (a stack overflow needs no `unsafe`), but the crate is still kernel-only; applications recurse in
/// their own code (`fault_demo overflow`).
#[inline(never)]
pub fn stack_overflow(depth: u64) -> u64 {
    // Never true (the stack ends long before); it keeps the recursion formally conditional.
    if core::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    let mut frame = [0u8; 1024];
    frame[0] = depth as u8;
    let frame = core::hint::black_box(&mut frame);
    let below = stack_overflow(core::hint::black_box(depth + 1));
    below.wrapping_add(u64::from(frame[(depth % 1024) as usize]))
}

/// Why [`corrupt_function`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorruptError {
    /// The system namespaces are not installed.
    NoNamespaces,
    /// The cell is not loaded, or has no function with this path.
    NoSuchFunction(String),
    /// Patching failed.
    Patch(String),
}

/// Overwrites the first two bytes of function `path` (hash-free demangled, e.g. `fault_victim::checksum`) of loaded
/// kernel cell `cell` with `ud2` (0F 0B): every later call raises #UD until the cell is reloaded.
///
/// # Errors
/// [`CorruptError`].
///
/// # Safety
/// Breaks kernel code for every caller of that function, on every CPU, until the cell is reloaded (the
/// fault-recovery policy reloads it after repeated faults). The caller must make sure that only tasks whose
/// failure the system recovers from can call the function meanwhile (the tests use the dedicated `fault_victim`
/// cell), and that no CPU holds a lock or is in an interrupt handler inside it.
pub unsafe fn corrupt_function(cell: &str, path: &str) -> Result<(), CorruptError> {
    let kernel = system_namespaces::kernel_namespace().ok_or(CorruptError::NoNamespaces)?;
    let loaded = kernel.cell(cell).ok_or_else(|| CorruptError::NoSuchFunction(cell.to_string()))?;
    let export = loaded
        .exports()
        .iter()
        .find(|export| cell_namespace::hash_free_name(&export.name) == path)
        .ok_or_else(|| CorruptError::NoSuchFunction(path.to_string()))?;
    let section =
        loaded.sections().get(export.section).ok_or_else(|| CorruptError::NoSuchFunction(path.to_string()))?;
    // SAFETY: deliberately corrupts the function, as this function's caller accepted (its `# Safety`): callers
    // from now on execute `ud2` and fault, which the fault recovery handles; a CPU already past the first two
    // bytes is unaffected (two bytes are written at once).
    unsafe { section.patch_bytes(export.offset, &[0x0f, 0x0b]) }
        .map_err(|error| CorruptError::Patch(alloc::format!("{error}")))
}
