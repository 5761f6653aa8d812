//! Stack traces: of the running task (from the current frame) or of any other task (from its saved context),
//! one line per frame with the demangled function, its cell and the offset.

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
    /// Writing the trace failed.
    Write,
}

impl fmt::Display for BacktraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchTask(id) => write!(f, "no task with id {id}"),
            Self::RunningElsewhere(id) => write!(f, "task {id} is running on another CPU"),
            Self::NoStack(id) => write!(f, "task {id} has no stack of its own to walk (adopted, idle or exited)"),
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
pub struct Symbolizer;

impl unwind::Symbolizer for Symbolizer {
    fn with_symbol(&self, address: u64, found: &mut dyn FnMut(unwind::SymbolInfo<'_>)) {
        let Ok(virtual_address) = memory_structs::VirtualAddress::try_new(address as usize) else { return };
        let namespaces = [system_namespaces::kernel_namespace(), system_namespaces::application_namespace()];
        for namespace in namespaces.into_iter().flatten() {
            for cell in namespace.loaded_cells() {
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
        // SAFETY: the callers pass the bounds of a task stack that stays mapped during the walk.
        Some(bounds) => unsafe { unwind::DirectMemory::within(bounds) },
        // SAFETY: only used for a running task's own live stack (the fault path of an adopted task), whose CFI
        // names mapped slots.
        None => unsafe { unwind::DirectMemory::unbounded() },
    };
    let mut frames = unwind::FrameIter::new(unwind::global_registry(), memory, cursor).with_limit(limit);
    unwind::write_backtrace(out, &mut frames, &Symbolizer)
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
    target.with_stack_locked(|bounds| {
        let bounds = bounds.ok_or(BacktraceError::NoStack(id))?;
        if target.is_on_cpu() {
            return Err(BacktraceError::RunningElsewhere(id));
        }
        let bounds = bounds.start as u64..bounds.end as u64;
        // SAFETY: the stack stays mapped while its task lock is held (`reap` waits for it), and every read is
        // confined to its bounds; the task may start running meanwhile, which only makes the trace stale.
        let memory = unsafe { unwind::DirectMemory::within(bounds.clone()) };
        let cursor = saved_context(&memory, target.saved_stack_pointer() as u64);
        write_walk(out, cursor, Some(bounds), FRAME_LIMIT)
            .map(|summary| summary.frames)
            .map_err(|_| BacktraceError::Write)
    })
}

/// The walk start of a task switched out by `task::context_switch` (the layout lives with the swap gate, which walks
/// the same saved contexts).
fn saved_context(memory: &unwind::DirectMemory, saved: u64) -> unwind::FrameCursor {
    live_update::saved_context_cursor(memory, saved)
}

/// Which tasks may be executing code of cell `cell` (a return address or the resume point on their stack lies in
/// one of its text sections): the check behind "may the old copy of a swapped cell be freed". Tasks running on
/// another CPU cannot be walked and are listed as `uncertain`; the calling task and tasks without a stack of their
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
    for task in task::all_tasks() {
        if current.as_ref() == Some(&task) || task.is_idle() {
            continue;
        }
        task.with_stack_locked(|bounds| {
            let Some(bounds) = bounds else { return };
            if task.is_on_cpu() {
                users.uncertain.push(task.id());
                return;
            }
            let bounds = bounds.start as u64..bounds.end as u64;
            // SAFETY: as in `write_backtrace_of`: mapped while the task lock is held, reads confined to the stack.
            let memory = unsafe { unwind::DirectMemory::within(bounds) };
            let cursor = saved_context(&memory, task.saved_stack_pointer() as u64);
            let mut frames = unwind::FrameIter::new(unwind::global_registry(), memory, cursor).with_limit(FRAME_LIMIT);
            while let Ok(Some(frame)) = frames.next_frame() {
                if text.iter().any(|range| range.contains(&frame.lookup_address)) {
                    users.tasks.push(task.id());
                    break;
                }
            }
        });
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
