//! Stack traces: of the running task (from the current frame) or of any other task (from its saved context),
//! one line per frame with the demangled function, its cell and the offset.
//!
//! # Reading another task's stack
//! Another task's stack may be freed (its task exits and is reaped on its own CPU) and its pages and frames
//! reused at any time. So the live stack is read only inside `Task::with_stack_locked`, which holds the task's
//! lock (`reap` waits for it, so the stack stays mapped) with interrupts disabled, and only for one bounded copy:
//! the words from the saved stack pointer to the stack's top go into a buffer allocated beforehand
//! ([`snapshot_saved_stack`]). The unwinder then walks the copy (`unwind::SliceStack`), with no lock held and
//! interrupts enabled: a long walk (symbol lookups take namespace locks, output takes the serial port) never
//! delays the task's reaping or runs with interrupts off. The copy goes through this CPU's TLB: a translation it
//! caches for the stack is dropped by the TLB shootdown when the stack is unmapped, so a later copy of a new stack
//! at the same pages reads the new frames.

use core::fmt;
use core::ops::Range;

use task::TaskId;

/// Why a stack trace could not be printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BacktraceError {
    /// No task has this id.
    NoSuchTask(TaskId),
    /// The task runs on another CPU right now (its registers are not saved anywhere readable).
    RunningElsewhere(TaskId),
    /// The task has no stack of its own (an adopted or idle thread) or has exited.
    NoStack(TaskId),
    /// The task's saved stack pointer lies outside its stack (its context was never saved, or is corrupt).
    BadStackPointer {
        /// The task.
        task: TaskId,
        /// The saved stack pointer.
        stack_pointer: u64,
    },
    /// Writing the trace failed.
    Write,
}

impl fmt::Display for BacktraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchTask(id) => write!(f, "no task with id {id}"),
            Self::RunningElsewhere(id) => write!(f, "task {id} is running on another CPU"),
            Self::NoStack(id) => write!(f, "task {id} has no stack of its own to walk (adopted, idle or exited)"),
            Self::BadStackPointer { task, stack_pointer } => {
                write!(f, "task {task}'s saved stack pointer {stack_pointer:#x} lies outside its stack")
            }
            Self::Write => write!(f, "writing the stack trace failed"),
        }
    }
}

/// Writes to the serial console.
pub(crate) struct SerialWriter;

impl fmt::Write for SerialWriter {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        serial::write_str(text);
        Ok(())
    }
}

/// Names code addresses through the system namespaces: the cell whose section contains the address, and that
/// section's name (a function's mangled symbol; for nano_core, the base image cell has one section per symbol).
/// A namespace whose cell table is write-locked is skipped, not waited for: the fault being reported may have
/// struck a frame that holds that lock (a swap's publication), which then never releases it by itself. Names
/// nothing once a cell lookup faulted (`system_namespaces::lookups_distrusted`: the cell tables are damaged).
pub struct Symbolizer;

impl unwind::Symbolizer for Symbolizer {
    fn with_symbol(&self, address: u64, found: &mut dyn FnMut(unwind::SymbolInfo<'_>)) {
        if system_namespaces::lookups_distrusted() {
            return;
        }
        let Ok(virtual_address) = memory_structs::VirtualAddress::try_new(address as usize) else { return };
        let namespaces = [system_namespaces::kernel_namespace(), system_namespaces::application_namespace()];
        for namespace in namespaces.into_iter().flatten() {
            let Ok(cells) = namespace.try_loaded_cells() else { continue };
            for cell in cells {
                if let Some(section) = cell.section_containing(virtual_address) {
                    found(unwind::SymbolInfo {
                        cell: cell.name(),
                        // A section without a global symbol is named after its ELF section (`.text.<mangled>`).
                        symbol: section.name().strip_prefix(".text.").unwrap_or(section.name()),
                        symbol_address: section.address().value() as u64,
                    });
                    return;
                }
            }
        }
    }
}

/// Frames written at most by `bt`.
const FRAME_LIMIT: usize = 64;
/// Frames written at most in a fault report (a stack overflow has hundreds of identical frames).
pub(crate) const FAULT_FRAME_LIMIT: usize = 16;

/// Walks from `cursor` (reads confined to `bounds` when given) and writes one line per frame, at most `limit`.
pub(crate) fn write_walk(
    out: &mut dyn fmt::Write,
    cursor: unwind::FrameCursor,
    bounds: Option<Range<u64>>,
    limit: usize,
) -> Result<unwind::BacktraceSummary, fmt::Error> {
    let memory = match bounds {
        // SAFETY: the callers pass the bounds of the running task's own stack, mapped while it runs.
        Some(bounds) => unsafe { unwind::DirectMemory::within(bounds) },
        // SAFETY: only used for a running task's own live stack (the fault path of an adopted task), whose CFI
        // names mapped slots.
        None => unsafe { unwind::DirectMemory::unbounded() },
    };
    let mut frames = unwind::FrameIter::new(unwind::global_registry(), memory, cursor).with_limit(limit);
    unwind::write_backtrace(out, &mut frames, &Symbolizer)
}

/// Copies the saved part of switched-out `task`'s stack (from its saved stack pointer, rounded down to 8 bytes,
/// to the stack's top) into `words`, whose capacity must cover the whole stack (so nothing is allocated while the
/// task lock is held). Returns the address of `words[0]` and the saved stack pointer the copy starts from. See
/// the module documentation for why a copy.
///
/// # Errors
/// [`BacktraceError::NoStack`] (no stack of its own, or reaped), [`BacktraceError::RunningElsewhere`] (on a
/// CPU: its saved context is stale), [`BacktraceError::BadStackPointer`].
fn snapshot_saved_stack(task: &task::TaskRef, words: &mut alloc::vec::Vec<u64>) -> Result<(u64, u64), BacktraceError> {
    let id = task.id();
    words.clear();
    task.with_stack_locked(|bounds| {
        let bounds = bounds.ok_or(BacktraceError::NoStack(id))?;
        if task.is_on_cpu() {
            return Err(BacktraceError::RunningElsewhere(id));
        }
        let (bottom, top) = (bounds.start as u64, bounds.end as u64);
        let saved = task.saved_stack_pointer() as u64;
        if !(bottom..top).contains(&saved) {
            return Err(BacktraceError::BadStackPointer { task: id, stack_pointer: saved });
        }
        let start = saved & !7;
        let count = ((top - start) / 8) as usize;
        if count > words.capacity() {
            return Err(BacktraceError::NoStack(id));
        }
        // `start..top` lies inside the task's stack (checked), which stays mapped and readable while its task lock
        // is held (`reap` frees the stack only under that lock); `words` has room for `count` words (checked) and
        // is heap memory, not the stack. The task is switched out, so nobody writes the copied words meanwhile; if
        // it starts running on another CPU during the copy, the copy is only stale.
        // SAFETY: both ranges are valid for `count` words and do not overlap (see above).
        unsafe {
            core::ptr::copy_nonoverlapping(start as *const u64, words.as_mut_ptr(), count);
            words.set_len(count);
        }
        Ok((start, saved))
    })
}

/// A buffer able to hold a copy of `task`'s whole stack (empty capacity for a task without one).
fn stack_buffer(task: &task::TaskRef) -> alloc::vec::Vec<u64> {
    let bytes = task.stack_bounds().map_or(0, |bounds| bounds.end - bounds.start);
    alloc::vec::Vec::with_capacity(bytes / 8)
}

/// Writes the stack trace of the caller (the current task on this CPU, from the current frame).
///
/// # Errors
/// [`BacktraceError::Write`].
pub fn write_current_backtrace(out: &mut dyn fmt::Write) -> Result<usize, BacktraceError> {
    unwind::write_current_backtrace(out, &Symbolizer, FRAME_LIMIT)
        .map(|summary| summary.frames)
        .map_err(|_| BacktraceError::Write)
}

/// Writes task `id`'s stack trace: the current frame if it is the task running this call, else from the context
/// it saved when it last switched away (`task::context_switch`: r15, r14, r13, r12, rbx, rbp, return address).
/// Returns the number of frames written.
///
/// # Errors
/// [`BacktraceError`] as documented on its variants.
pub fn write_backtrace_of(out: &mut dyn fmt::Write, id: TaskId) -> Result<usize, BacktraceError> {
    let target = task::task_by_id(id).ok_or(BacktraceError::NoSuchTask(id))?;
    if scheduler::current_task().is_some_and(|current| current == target) {
        return write_current_backtrace(out);
    }
    let mut words = stack_buffer(&target);
    let (base, saved) = snapshot_saved_stack(&target, &mut words)?;
    let memory = unwind::SliceStack { base, words: &words };
    let cursor = saved_context(&memory, saved);
    let mut frames = unwind::FrameIter::new(unwind::global_registry(), memory, cursor).with_limit(FRAME_LIMIT);
    unwind::write_backtrace(out, &mut frames, &Symbolizer)
        .map(|summary| summary.frames)
        .map_err(|_| BacktraceError::Write)
}

/// The walk start of a task switched out by `task::context_switch` (the saved-context layout lives with the swap
/// gate, which walks the same saved contexts).
fn saved_context(memory: &impl unwind::StackReader, saved: u64) -> unwind::FrameCursor {
    live_update::saved_context_cursor(memory, saved)
}

/// Which tasks may be executing code of cell `cell` (a return address or the resume point on their stack lies in
/// one of its text sections): the check behind "may the old copy of a swapped cell be freed". Each task's stack is
/// walked from a copy (see the module documentation). Tasks running on another CPU (or with a corrupt saved stack
/// pointer) cannot be walked and are listed as `uncertain`; the calling task and tasks without a stack of their
/// own (idle, adopted) are not checked.
pub fn tasks_in_cell(cell: &str) -> CellUsers {
    let mut users = CellUsers::default();
    let namespaces = [system_namespaces::kernel_namespace(), system_namespaces::application_namespace()];
    let Some(loaded) = namespaces.into_iter().flatten().find_map(|namespace| namespace.cell(cell)) else {
        return users;
    };
    let text: alloc::vec::Vec<Range<u64>> = loaded
        .sections()
        .iter()
        .filter(|section| section.kind() == cell_loader::SectionKind::Text)
        .map(|section| {
            let start = section.address().value() as u64;
            start..start + section.size_in_bytes() as u64
        })
        .collect();
    let current = scheduler::current_task();
    let mut words = alloc::vec::Vec::new();
    for task in task::all_tasks() {
        if current.as_ref() == Some(&task) || task.is_idle() {
            continue;
        }
        let needed = stack_buffer(&task).capacity();
        if words.capacity() < needed {
            words = alloc::vec::Vec::with_capacity(needed);
        }
        let (base, saved) = match snapshot_saved_stack(&task, &mut words) {
            Ok(snapshot) => snapshot,
            Err(BacktraceError::RunningElsewhere(_) | BacktraceError::BadStackPointer { .. }) => {
                users.uncertain.push(task.id());
                continue;
            }
            // No stack of its own (adopted) or already reaped: nothing of it can run the cell's code.
            Err(_) => continue,
        };
        let memory = unwind::SliceStack { base, words: &words };
        let cursor = saved_context(&memory, saved);
        let mut frames = unwind::FrameIter::new(unwind::global_registry(), memory, cursor).with_limit(FRAME_LIMIT);
        while let Ok(Some(frame)) = frames.next_frame() {
            if text.iter().any(|range| range.contains(&frame.lookup_address)) {
                users.tasks.push(task.id());
                break;
            }
        }
    }
    users
}

/// The answer of [`tasks_in_cell`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CellUsers {
    /// Tasks with a frame in the cell's code.
    pub tasks: alloc::vec::Vec<TaskId>,
    /// Tasks running on another CPU, not checked.
    pub uncertain: alloc::vec::Vec<TaskId>,
}

/// Prints task `id`'s stack trace on the serial console (the shell's `bt ID`).
///
/// # Errors
/// As for [`write_backtrace_of`].
pub fn print_backtrace(id: TaskId) -> Result<(), BacktraceError> {
    write_backtrace_of(&mut SerialWriter, id).map(|_| ())
}
