//! Walking the stack: [`FrameIter`] yields one [`Frame`] per function activation, across cells and the base image.
//!
//! 1. The first frame's instruction pointer is either exact (a faulting instruction, [`FrameCursor::exact`]) or a
//!    return address ([`FrameCursor::after_call`], e.g. captured registers). A return address points after the
//!    call, possibly at the next function, so it is looked up as `return address - 1` (the call instruction).
//! 2. The registry maps that address to an [`UnwindInfo`], whose FDE index gives the FDE; gimli evaluates the row;
//!    [`caller_registers`] computes the CFA and the caller's registers.
//! 3. The walk ends cleanly ([`EndReason`]) at a frame without unwind info, at the outermost frame (no return
//!    address, or 0), or at the frame limit. It fails ([`UnwindError`]) on malformed CFI, an unreadable stack
//!    word, or a CFA that does not grow (which would loop).

use alloc::sync::Arc;
use core::fmt;

use crate::cfi::{CfiContext, StepError, caller_registers, new_context, row_for_address};
use crate::memory::StackReader;
use crate::registers::Registers;
use crate::registry::{LookupError, UnwindInfo, UnwindInfoId, UnwindRegistry};

/// Frames a walk yields at most unless told otherwise.
pub const DEFAULT_FRAME_LIMIT: usize = 256;

/// One function activation on the stack.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The frame's registers at its current instruction: RA holds that instruction pointer (a return address, or
    /// the faulting instruction for an exact first frame); RSP, RBX, RBP, R12-R15 are the values a landing pad in
    /// this frame must see.
    pub registers: Registers,
    /// The instruction pointer (RA of `registers`).
    pub instruction_pointer: u64,
    /// The address used to find the unwind info and the LSDA call site: the instruction pointer, minus 1 unless the
    /// frame is exact.
    pub lookup_address: u64,
    /// The canonical frame address: the caller's stack pointer after this frame returns.
    pub cfa: u64,
    /// The first address of the function (from its FDE).
    pub function_start: u64,
    /// The address after its last byte.
    pub function_end: u64,
    /// The function's LSDA, if it has one.
    pub lsda: Option<u64>,
    /// The unwind info (cell or base image) describing it.
    pub unwind_info: UnwindInfoId,
    /// Whether the instruction pointer is exact (a faulting instruction) rather than a return address.
    pub exact: bool,
    /// Bytes of outgoing call arguments the function had pushed at this instruction (`DW_CFA_GNU_args_size`):
    /// RSP in `registers` is the callee's CFA, so it still counts them; a landing pad of this frame expects RSP
    /// with them popped (the caller's `add rsp` after the call), i.e. RSP + `args_size`.
    pub args_size: u64,
}

/// Why a walk ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// No registered code range contains the address (e.g. a boot trampoline or foreign code).
    NoUnwindInfo {
        /// The lookup address.
        address: u64,
    },
    /// The address's code range has no FDE covering it.
    NoFde {
        /// The lookup address.
        address: u64,
    },
    /// The last frame has no caller: its return address is undefined or 0.
    OutermostFrame,
    /// The frame limit was reached.
    Limit,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoUnwindInfo { address } => write!(f, "no unwind info for {address:#x}"),
            Self::NoFde { address } => write!(f, "no FDE for {address:#x}"),
            Self::OutermostFrame => f.write_str("outermost frame"),
            Self::Limit => f.write_str("frame limit reached"),
        }
    }
}

/// Why a walk failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnwindError {
    /// The frame's registers lack the instruction or stack pointer.
    MissingRegisters,
    /// The registry could not be read.
    Lookup(LookupError),
    /// The caller could not be computed.
    Step(StepError),
    /// A frame's CFA is not above its stack pointer (the previous frame's CFA): corrupt CFI or stack, and a loop
    /// if followed.
    NonIncreasingCfa {
        /// The address of the frame.
        address: u64,
        /// The frame's stack pointer.
        previous: u64,
        /// This frame's CFA.
        cfa: u64,
    },
}

impl fmt::Display for UnwindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingRegisters => f.write_str("the start registers lack RSP or the instruction pointer"),
            Self::Lookup(LookupError::Busy) => f.write_str("the unwind registry stayed locked"),
            Self::Step(error) => write!(f, "{error}"),
            Self::NonIncreasingCfa { address, previous, cfa } => {
                write!(f, "CFA {cfa:#x} of the frame at {address:#x} is not above the previous CFA {previous:#x}")
            }
        }
    }
}

/// The position of a walk: the registers of the next frame to yield. Small and `Copy`, so the unwinding runtime
/// keeps it in its exception object between landing pads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameCursor {
    registers: Registers,
    exact: bool,
    frames: usize,
    finished: bool,
}

impl FrameCursor {
    /// A walk starting at a frame whose RA is a return address (registers captured right after a call).
    pub const fn after_call(registers: Registers) -> Self {
        Self { registers, exact: false, frames: 0, finished: false }
    }

    /// A walk starting at a frame whose RA is the exact faulting instruction (registers of a CPU exception).
    pub const fn exact(registers: Registers) -> Self {
        Self { registers, exact: true, frames: 0, finished: false }
    }

    /// How many frames were yielded so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// The registers of the next frame.
    pub fn registers(&self) -> &Registers {
        &self.registers
    }
}

/// A frame walker over a registry; see the module docs. Never allocates.
pub struct FrameIter<'r, M: StackReader> {
    registry: &'r UnwindRegistry,
    memory: M,
    cursor: FrameCursor,
    context: CfiContext,
    limit: usize,
    end: Option<EndReason>,
    current_info: Option<Arc<UnwindInfo>>,
}

impl<'r, M: StackReader> FrameIter<'r, M> {
    /// A walk from `cursor` over `registry`, reading saved registers through `memory`, yielding at most
    /// [`DEFAULT_FRAME_LIMIT`] frames.
    pub fn new(registry: &'r UnwindRegistry, memory: M, cursor: FrameCursor) -> Self {
        Self {
            registry,
            memory,
            cursor,
            context: new_context(),
            limit: DEFAULT_FRAME_LIMIT,
            end: None,
            current_info: None,
        }
    }

    /// Sets the frame limit: the walk ends with [`EndReason::Limit`] once `limit` frames (counted from the
    /// cursor's start) were yielded.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Why the walk ended, once [`next_frame`](Self::next_frame) returned `Ok(None)`.
    pub fn end_reason(&self) -> Option<EndReason> {
        self.end
    }

    /// The position after the last yielded frame (the caller of that frame).
    pub fn cursor(&self) -> FrameCursor {
        self.cursor
    }

    /// The unwind info of the last yielded frame (to read its LSDA).
    pub fn current_unwind_info(&self) -> Option<&Arc<UnwindInfo>> {
        self.current_info.as_ref()
    }

    fn finish(&mut self, reason: EndReason) -> Result<Option<Frame>, UnwindError> {
        self.cursor.finished = true;
        self.end = Some(reason);
        Ok(None)
    }

    /// The next frame; `Ok(None)` when the walk ended (see [`end_reason`](Self::end_reason)).
    ///
    /// # Errors
    /// [`UnwindError`]; after an error the walk is over and later calls return `Ok(None)` with no end reason.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, UnwindError> {
        if self.cursor.finished {
            return Ok(None);
        }
        let result = self.step();
        if result.is_err() {
            self.cursor.finished = true;
        }
        result
    }

    fn step(&mut self) -> Result<Option<Frame>, UnwindError> {
        if self.cursor.frames >= self.limit {
            return self.finish(EndReason::Limit);
        }
        let registers = self.cursor.registers;
        let instruction_pointer = match registers.instruction_pointer() {
            None | Some(0) => return self.finish(EndReason::OutermostFrame),
            Some(address) => address,
        };
        let Some(stack_pointer) = registers.stack_pointer() else { return Err(UnwindError::MissingRegisters) };
        let lookup_address = if self.cursor.exact { instruction_pointer } else { instruction_pointer - 1 };
        let Some(info) = self.registry.find(lookup_address).map_err(UnwindError::Lookup)? else {
            return self.finish(EndReason::NoUnwindInfo { address: lookup_address });
        };
        let Some(fde) = info.fde_for(lookup_address) else {
            return self.finish(EndReason::NoFde { address: lookup_address });
        };
        let (row, details) =
            row_for_address(&info, fde, lookup_address, &mut self.context).map_err(UnwindError::Step)?;
        let caller = caller_registers(row, &registers, &self.memory, lookup_address).map_err(UnwindError::Step)?;
        // The stack grows down: every CFA lies above the frame's stack pointer, which is the previous frame's CFA.
        if caller.cfa <= stack_pointer {
            return Err(UnwindError::NonIncreasingCfa {
                address: lookup_address,
                previous: stack_pointer,
                cfa: caller.cfa,
            });
        }
        let frame = Frame {
            registers,
            instruction_pointer,
            lookup_address,
            cfa: caller.cfa,
            function_start: details.function_start,
            function_end: details.function_end,
            lsda: details.lsda,
            unwind_info: info.id(),
            exact: self.cursor.exact,
            args_size: row.saved_args_size(),
        };
        self.cursor =
            FrameCursor { registers: caller.registers, exact: false, frames: self.cursor.frames + 1, finished: false };
        self.current_info = Some(info);
        Ok(Some(frame))
    }
}

impl<M: StackReader> Iterator for FrameIter<'_, M> {
    type Item = Result<Frame, UnwindError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame().transpose()
    }
}
