//! CFI evaluation with fixed-size storage: from one frame's registers to its caller's.
//!
//! gimli evaluates an FDE's call-frame instructions into an [`UnwindTableRow`] (the CFA rule and one rule per
//! saved register, DWARF 5 section 6.4.1). [`FixedStorage`] makes gimli keep the rows in arrays, so evaluation
//! never allocates: [`CfiContext`] is a plain value (about 2 KiB) that can live on the faulting stack.
//! [`caller_registers`] then applies a row (DWARF 5 section 6.4.1 register rules; psABI 3.6.2 register numbers).

use core::fmt;

use gimli::{CfaRule, Register, RegisterRule, UnwindContext, UnwindContextStorage, UnwindSection, UnwindTableRow};

use crate::memory::{MemoryReadError, StackReader};
use crate::registers::{CALLEE_SAVED, RSP, Registers};
use crate::registry::{FdeRecord, UnwindInfo};

/// Register rules one row can hold. An x86_64 function saves at most RBX, RBP, R12-R15 and RA: 7 rules.
pub const MAX_REGISTER_RULES: usize = 24;
/// Depth of the `DW_CFA_remember_state` stack (plus the row being built).
pub const MAX_REMEMBERED_STATES: usize = 4;

/// gimli storage in fixed-size arrays: evaluation never touches the heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedStorage;

impl UnwindContextStorage<usize> for FixedStorage {
    type Rules = [(Register, RegisterRule<usize>); MAX_REGISTER_RULES];
    type Stack = [UnwindTableRow<usize, FixedStorage>; MAX_REMEMBERED_STATES];
}

/// A CFI evaluation context with [`FixedStorage`]. Create with [`new_context`]; reuse across frames.
pub type CfiContext = UnwindContext<usize, FixedStorage>;

/// One evaluated row with [`FixedStorage`].
pub type CfiRow = UnwindTableRow<usize, FixedStorage>;

/// A fresh evaluation context.
pub fn new_context() -> CfiContext {
    UnwindContext::new_in()
}

/// Why a frame's caller could not be computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepError {
    /// gimli could not parse or evaluate the FDE or its CIE.
    Cfi {
        /// The address being unwound.
        address: u64,
        /// gimli's error.
        error: gimli::Error,
    },
    /// The CFA is computed by a DWARF expression, which this unwinder does not evaluate.
    CfaExpression {
        /// The address being unwound.
        address: u64,
    },
    /// A register rule this unwinder does not support (expression, architectural, or a register > 16).
    UnsupportedRule {
        /// The address being unwound.
        address: u64,
        /// The register the rule is for.
        register: u16,
    },
    /// A register the row needs (the CFA base, or the source of a `Register` rule) is unknown.
    MissingRegister {
        /// The address being unwound.
        address: u64,
        /// The unknown register.
        register: u16,
    },
    /// Adding an offset to a register overflowed 64 bits.
    Overflow {
        /// The address being unwound.
        address: u64,
    },
    /// Reading a saved register from the stack failed.
    Memory(MemoryReadError),
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cfi { address, error } => write!(f, "CFI for {address:#x}: {error}"),
            Self::CfaExpression { address } => write!(f, "CFA of {address:#x} is a DWARF expression (unsupported)"),
            Self::UnsupportedRule { address, register } => {
                write!(f, "unsupported rule for register {register} at {address:#x}")
            }
            Self::MissingRegister { address, register } => {
                write!(f, "register {register} needed at {address:#x} is unknown")
            }
            Self::Overflow { address } => write!(f, "address arithmetic overflowed at {address:#x}"),
            Self::Memory(error) => write!(f, "cannot read the stack word at {:#x}", error.address),
        }
    }
}

/// The caller of a frame, as computed from the frame's CFI row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallerState {
    /// The frame's canonical frame address: the caller's stack pointer after the call returns.
    pub cfa: u64,
    /// The caller's registers: RSP = CFA, RA = the return address (`None` for the outermost frame), callee-saved
    /// registers restored, others unknown.
    pub registers: Registers,
}

/// Evaluates the FDE `fde` of `info` up to `address` (an address inside the function) and returns the row.
///
/// # Errors
/// [`StepError::Cfi`] if gimli cannot parse or evaluate the CFI, or no row covers `address`.
pub fn row_for_address<'c>(
    info: &UnwindInfo,
    fde: FdeRecord,
    address: u64,
    context: &'c mut CfiContext,
) -> Result<(&'c CfiRow, FdeDetails), StepError> {
    let cfi_error = |error| StepError::Cfi { address, error };
    let eh_frame = info.eh_frame();
    let bases = info.bases();
    let fde = eh_frame
        .fde_from_offset(&bases, fde.offset.into(), |section, bases, offset| section.cie_from_offset(bases, offset))
        .map_err(cfi_error)?;
    let lsda = match fde.lsda() {
        Some(gimli::Pointer::Direct(lsda)) => Some(lsda),
        // An indirect LSDA pointer would need a read of unregistered memory; the pointer itself is reported.
        Some(gimli::Pointer::Indirect(_)) | None => None,
    };
    let details = FdeDetails { function_start: fde.initial_address(), function_end: fde.end_address(), lsda };
    let row = fde.unwind_info_for_address(&eh_frame, &bases, context, address).map_err(cfi_error)?;
    Ok((row, details))
}

/// What an FDE says about its function besides the rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdeDetails {
    /// The function's first address.
    pub function_start: u64,
    /// The address after its last byte.
    pub function_end: u64,
    /// The address of its LSDA (from the FDE's augmentation data), if it has one.
    pub lsda: Option<u64>,
}

fn offset_address(base: u64, offset: i64, address: u64) -> Result<u64, StepError> {
    base.checked_add_signed(offset).ok_or(StepError::Overflow { address })
}

/// Applies `row` to a frame's `registers`: computes the CFA, then the caller's registers.
///
/// Register rules (DWARF 5 6.4.1): `Undefined` -> unknown; `SameValue` -> unchanged; `Offset(n)` -> the word at
/// CFA+n; `ValOffset(n)` -> CFA+n; `Register(r)` -> the value of r; `Constant(c)` -> c. A callee-saved register the
/// row does not mention keeps its value (psABI convention); any other unmentioned register becomes unknown, and so
/// does RA (the return address) if the row does not say where it is. RSP becomes the CFA. `address` is only used
/// in errors.
///
/// # Errors
/// [`StepError`]: a CFA expression, an unsupported rule, an unknown register the row needs, overflow, or a
/// failed stack read.
pub fn caller_registers<M: StackReader + ?Sized>(
    row: &CfiRow,
    registers: &Registers,
    memory: &M,
    address: u64,
) -> Result<CallerState, StepError> {
    let cfa = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => {
            let base = registers.get(*register).ok_or(StepError::MissingRegister { address, register: register.0 })?;
            offset_address(base, *offset, address)?
        }
        CfaRule::Expression(_) => return Err(StepError::CfaExpression { address }),
    };
    let mut caller = Registers::new();
    for register in CALLEE_SAVED {
        caller.set(register, registers.get(register));
    }
    for &(register, ref rule) in row.registers() {
        if !Registers::tracks(register) {
            // Vector, x87 and control registers do not matter to a soft-float kernel's unwinding.
            continue;
        }
        let value = match *rule {
            RegisterRule::Undefined => None,
            RegisterRule::SameValue => registers.get(register),
            RegisterRule::Offset(offset) => {
                let slot = offset_address(cfa, offset, address)?;
                Some(memory.read_u64(slot).map_err(StepError::Memory)?)
            }
            RegisterRule::ValOffset(offset) => Some(offset_address(cfa, offset, address)?),
            RegisterRule::Register(source) => {
                Some(registers.get(source).ok_or(StepError::MissingRegister { address, register: source.0 })?)
            }
            RegisterRule::Constant(value) => Some(value),
            // Expression, ValExpression, Architectural, and any rule a later gimli adds.
            _ => return Err(StepError::UnsupportedRule { address, register: register.0 }),
        };
        caller.set(register, value);
    }
    // RSP is never restored from the stack: the caller's stack pointer is by definition the CFA.
    caller.set(RSP, Some(cfa));
    Ok(CallerState { cfa, registers: caller })
}
