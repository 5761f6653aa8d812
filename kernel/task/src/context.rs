//! The context switch and the first frame of a new task.
//!
//! A task that is not running is fully described by its saved stack pointer: on top of its stack lie the
//! callee-saved registers of the System V AMD64 ABI (rbx, rbp, r12-r15; System V ABI, 3.2.1) and the return address
//! into whatever called [`context_switch`]. Caller-saved registers were saved by the compiler around that call,
//! and the kernel is soft-float (no SSE/x87 state to save). RFLAGS is not switched: every switch happens with
//! interrupts disabled, and each task restores its own interrupt state when its `schedule()` call returns.

use crate::stack::Stack;

/// Saves the callee-saved registers on the current stack, stores the stack pointer to `*previous_stack_pointer`,
/// loads `next_stack_pointer`, restores the registers saved there and returns into the next task.
///
/// # Safety
/// Interrupts must be disabled. `previous_stack_pointer` must be valid for a write until the switch is done.
/// `next_stack_pointer` must be a value stored by an earlier `context_switch` (of a task that is not running) or
/// returned by [`prepare_first_frame`], on a stack that stays mapped while that task runs.
#[unsafe(naked)]
pub unsafe extern "C" fn context_switch(previous_stack_pointer: *mut usize, next_stack_pointer: usize) {
    core::arch::naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

/// The first code a new task runs: `ret` from [`context_switch`] lands here with `r12` = argument and
/// `r13` = entry function (see [`prepare_first_frame`]), and the stack 16-byte aligned. The entry never returns; the
/// `ud2` after the call marks the end of the task's call chain.
#[unsafe(naked)]
unsafe extern "C" fn task_trampoline() -> ! {
    core::arch::naked_asm!("mov rdi, r12", "call r13", "ud2")
}

/// A task's entry: called once, on the task's own stack, with interrupts disabled; it must never return.
pub type TaskEntry = extern "C" fn(argument: usize) -> !;

/// Number of words in the first frame: r15, r14, r13, r12, rbx, rbp, return address, and two words of padding
/// that keep the stack 16-byte aligned at the trampoline (System V ABI, 3.2.2).
const FIRST_FRAME_WORDS: usize = 9;

/// Writes the first frame of a task that has never run onto `stack`, so that switching to the returned stack
/// pointer calls `entry(argument)` on that stack. The frame is written through the direct map (see
/// `Stack::top_words_through_direct_map`).
pub fn prepare_first_frame(stack: &mut Stack, entry: TaskEntry, argument: usize) -> usize {
    let top = stack.top().value();
    let words = stack.top_words_through_direct_map(FIRST_FRAME_WORDS);
    words.fill(0);
    // Lowest address first, in the order context_switch pops them.
    words[2] = entry as *const () as usize; // r13
    words[3] = argument; // r12
    words[6] = task_trampoline as *const () as usize; // return address
    top - FIRST_FRAME_WORDS * 8
}
