//! How a task ended: [`ExitValue`] and [`FailureReason`].

use alloc::boxed::Box;
use alloc::string::String;
use core::any::Any;
use core::fmt;

use memory_structs::VirtualAddress;

/// How a task ended: it returned a value, or it failed.
#[derive(Debug)]
pub enum ExitValue<T> {
    /// The task's function returned this value.
    Completed(T),
    /// The task did not return normally.
    Failed(FailureReason),
}

/// An exit value whose completed value is type-erased; this is what a task stores, and what
/// `JoinHandle<T>::join` downcasts to `T`.
pub type AnyExitValue = ExitValue<Box<dyn Any + Send>>;

impl<T> ExitValue<T> {
    /// Whether the task completed.
    pub fn is_completed(&self) -> bool {
        matches!(self, ExitValue::Completed(_))
    }

    /// The failure reason, if the task failed.
    pub fn failure(&self) -> Option<&FailureReason> {
        match self {
            ExitValue::Failed(reason) => Some(reason),
            ExitValue::Completed(_) => None,
        }
    }
}

/// Why a task failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// The task panicked with this message.
    Panic(String),
    /// A CPU exception happened while the task ran.
    Exception {
        /// Which exception (Intel SDM Vol. 3A, 6.3.1, Table 6-1).
        kind: ExceptionKind,
        /// The faulting instruction.
        instruction_pointer: VirtualAddress,
        /// The address that caused a page fault (CR2), if any.
        fault_address: Option<VirtualAddress>,
    },
    /// The task touched the guard page below its stack: it overflowed its stack.
    StackOverflow {
        /// The address in the guard page that was touched.
        fault_address: VirtualAddress,
    },
    /// Another task killed it (`scheduler::kill`).
    Killed,
    /// The value a task returned was not of the type its joiner expected (a caller bug in `spawn_function`).
    WrongReturnType,
}

/// The CPU exceptions a task can die of (vector numbers from Intel SDM Vol. 3A, Table 6-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionKind {
    /// #DE, vector 0.
    DivideError,
    /// #UD, vector 6.
    InvalidOpcode,
    /// #DF, vector 8.
    DoubleFault,
    /// #SS, vector 12, with its error code.
    StackSegmentFault(u64),
    /// #GP, vector 13, with its error code.
    GeneralProtection(u64),
    /// #PF, vector 14, with its error code.
    PageFault(u64),
    /// Any other vector.
    Other(u8),
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Panic(message) => write!(f, "panicked: {message}"),
            FailureReason::Exception { kind, instruction_pointer, fault_address: Some(address) } => {
                write!(f, "exception {kind:?} at {instruction_pointer} (address {address})")
            }
            FailureReason::Exception { kind, instruction_pointer, fault_address: None } => {
                write!(f, "exception {kind:?} at {instruction_pointer}")
            }
            FailureReason::StackOverflow { fault_address } => write!(f, "stack overflow (guard page {fault_address})"),
            FailureReason::Killed => write!(f, "killed"),
            FailureReason::WrongReturnType => write!(f, "returned a value of an unexpected type"),
        }
    }
}
