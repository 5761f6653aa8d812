//! `inject pf|gp|ud|de`: raises one CPU exception in a new kernel task, to show fault recovery.
//!
//! The faults need `unsafe` (`fault_injection`'s functions are `unsafe fn`), so applications cannot cause them;
//! the shell, a kernel cell, holds that privilege and runs each in a task of its own. The task holds a
//! [`Witness`] whose drop shows that unwinding ran; it ends `Failed(Exception {..})`, and this builtin reports the
//! failure (the fault log, `faults`, records it with the faulting cell, `fault_injection`).

use alloc::string::String;

use task::ExitValue;

/// The arguments `inject` knows, in the order of [`raise`]'s arms.
const KINDS: [&str; 4] = ["pf", "gp", "ud", "de"];

/// Raises fault `KINDS[index]`. Calls `fault_injection` by name (relocations, which a reload of that cell
/// re-links), never through a function pointer that its reload would leave dangling.
///
/// # Safety
/// As for the `fault_injection` functions: call it only in a spawned task with the exception hook installed.
unsafe fn raise(index: usize) -> u64 {
    // SAFETY: the caller's guarantee, which is each function's contract.
    unsafe {
        match index {
            0 => fault_injection::null_dereference(),
            1 => fault_injection::general_protection(),
            2 => fault_injection::invalid_opcode(),
            _ => fault_injection::divide_by_zero(),
        }
    }
}

/// Prints when dropped: the injected task's cleanup ran.
struct Witness;

impl Drop for Witness {
    fn drop(&mut self) {
        crate::console::write_str("inject: cleanup ran (Drop of a value on the failed task's stack)\n");
    }
}

/// `inject KIND`: runs the fault in a new task, waits for it and reports how it ended.
pub fn inject(words: &[String]) {
    let usage = "usage: inject pf|gp|ud|de (null dereference, #GP, #UD, #DE in a new task)\n";
    let [_, kind] = words else { return crate::console::write_str(usage) };
    let Some(index) = KINDS.iter().position(|name| name == kind) else { return crate::console::write_str(usage) };
    let spawned = spawn::TaskBuilder::new("inject").spawn(move || {
        let _witness = Witness;
        // SAFETY: this is a spawned task and the fault-recovery exception hook is installed (the shell runs after
        // `tasking::init`), so the exception unwinds this task and nothing else.
        unsafe { raise(index) }
    });
    let handle = match spawned {
        Ok(handle) => handle,
        Err(error) => return crate::console::write_fmt(format_args!("inject: error: {error}\n")),
    };
    let id = handle.id();
    match handle.join() {
        Ok(ExitValue::Failed(reason)) => {
            crate::console::write_fmt(format_args!("inject {kind}: task {id} failed: {reason}\n"))
        }
        Ok(ExitValue::Completed(value)) => {
            crate::console::write_fmt(format_args!("inject {kind}: task {id} survived the fault?! ({value})\n"));
        }
        Err(error) => crate::console::write_fmt(format_args!("inject {kind}: cannot join task {id}: {error:?}\n")),
    }
}
