//! The kernel's [`PinFinder`]: what still refers to a swapped-out cell's code or data.
//!
//! # What is looked at, and why it is enough
//! 1. **Every switched-out task's stack**, walked with the unwinder from the context `task::context_switch` saved
//!    (callee-saved registers and the return address). Each frame's instruction pointer inside the cell is a
//!    [`Pin::Frame`]. Retired cells stay registered with the unwinder until freed, so walks cross their frames; a
//!    walk that *fails* (malformed CFI, an unreadable word) is completed by a conservative scan of the rest of the
//!    stack, word by word, where its bounds are known. A task that never ran also pins the cell of its entry function (the saved `r13`, see
//!    `task::prepare_first_frame`): [`Pin::TaskEntry`]. A stack of known bounds is first read word by word from
//!    its saved stack pointer up; if no word lies in (or one byte beside) the cell, no frame can be there (every
//!    frame's return address is such a word) and the walk, the costly part, is skipped.
//! 2. **Every stopped CPU's interrupted context**: `smp::stopped_contexts` gives the instruction and stack pointer
//!    the stop IPI interrupted; the instruction itself, the frames walked from there (exact first frame, only RIP
//!    and RSP known, so a CFA rule that needs another register ends the walk) and, if the walk stopped early, a
//!    scan of the rest of that stack: [`Pin::InterruptedContext`].
//! 3. **The swapping task's own stack** (the code that will return through this very call), walked from here.
//! 4. **Closures held by tasks**: the vtable of a task body not yet taken (the task has not started:
//!    [`Pin::TaskEntry`]) and of a failure callback (a restartable task's respawn closure: [`Pin::Pointer`]).
//! 5. **Stored pointers that are not relocations**: every word of every loaded cell's writable `.data`/`.bss`
//!    (base image included, so the unwinder's end handler, `log`'s logger and every hook `AtomicPtr`) that points
//!    into the cell, and the IDT (the IDTR's base itself, and every present gate's handler). Skipped: the table where
//!    the stopped CPUs recorded their interrupted context (`smp::stopped_context_storage`: step 2 covers it) and the
//!    unwinder's exception pool (the causes of finished unwinds: fault addresses kept as data).
//!
//! # What is not looked at (decided, measured)
//! - **The heap, except task closures.** A conservative scan of the 32 MiB heap would find the namespace's own
//!   records of the cell (section addresses, the unwind registry's FDE index) and stale words in freed blocks, so
//!   it would pin every cell forever; the heap allocator cannot enumerate live blocks. Function pointers or trait
//!   objects that other code copied into the heap (a `Box<dyn Trait>` kept by a server) are therefore not found.
//!   What keeps the system safe against them: such an object's vtable points into the cell that created it, and
//!   the cells that create long-lived trait objects are pinned anyway (their frames or hooks); a call through one
//!   whose cell was freed faults in the calling task, which fault recovery unwinds (no triple fault: the address
//!   range is unmapped, not reused by code).
//! - **Other CPUs' IDTR and GDTR**: every CPU loads the one shared IDT of `interrupts` (this CPU's IDTR is read).
//!   A swap of `interrupts` loads the new IDT here at its commit, before this search; the stopped CPUs still hold
//!   the old one, but load the new one in the stop-IPI handler before the stop ends, and an old cell is freed only
//!   after the stop. GDTs and TSSs live in the heap (`cpu`), and per-CPU data are heap blocks too.
//!
//! Everything here runs inside the stopped world: it takes only IRQ-safe locks (the task table, each task's
//! lock) and the heap, never the serial port, the logger or a namespace lock. The list of data regions to scan
//! is taken before, outside the stopped world ([`KernelPinFinder::snapshot`]).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use cell_namespace::{AddressRange, Pin, PinFinder};
use memory_structs::VirtualAddress;
use task::TaskRef;

use crate::stack::{CheckedStack, Hits, UNBOUNDED_SCAN_BYTES, any_word_near, find_in_stack, saved_context_cursor};

/// Statics whose words look like code pointers but are not references (hash-free paths): the unwinder's pool of
/// exception objects keeps the causes (faulting instruction addresses) of finished unwinds, and an unwind in
/// flight has its frames on its task's stack, which step 1 walks.
const NOT_SCANNED: &[&str] = &["unwind::runtime::exception::POOL"];

/// One writable data region of a loaded cell, to scan for stored pointers.
#[derive(Clone, Debug)]
struct DataRegion {
    range: Range<u64>,
    cell: String,
}

/// The kernel's pin finder; build one with [`snapshot`](Self::snapshot) right before each swap or reclaim.
pub struct KernelPinFinder {
    /// Writable data of every loaded cell of both system namespaces, as loaded when the snapshot was taken.
    data: Vec<DataRegion>,
    /// Bytes of data the snapshot covers (for reports).
    data_bytes: usize,
    /// Nanoseconds spent in [`PinFinder::find_pins`] so far (TSC time), and the number of calls.
    spent_ns: AtomicU64,
    calls: AtomicUsize,
}

/// What the pin searches of one swap or reclaim cost (inside the stopped world).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinSearchCost {
    /// Cells checked (one `find_pins` call each).
    pub cells_checked: usize,
    /// Total time of those calls, in nanoseconds.
    pub total_ns: u64,
    /// Bytes of writable data scanned per cell checked.
    pub data_bytes: usize,
    /// Tasks in the task table at the time.
    pub tasks: usize,
}

impl KernelPinFinder {
    /// Lists the writable data sections of every cell loaded in the system namespaces (base image included).
    /// Takes the namespaces' read locks: call it outside the stopped world.
    pub fn snapshot() -> Self {
        let mut data = Vec::new();
        let namespaces = [system_namespaces::kernel_namespace(), system_namespaces::application_namespace()];
        for namespace in namespaces.into_iter().flatten() {
            for cell in namespace.loaded_cells() {
                for section in cell.sections() {
                    let writable =
                        matches!(section.kind(), cell_loader::SectionKind::Data | cell_loader::SectionKind::Bss);
                    let excluded = || {
                        let name = cell_namespace::hash_free_name(section.name());
                        NOT_SCANNED.iter().any(|path| name == *path)
                    };
                    if writable && section.size_in_bytes() >= 8 && !excluded() {
                        let start = section.address().value() as u64;
                        data.push(DataRegion {
                            range: start..start + section.size_in_bytes() as u64,
                            cell: cell.name().to_string(),
                        });
                    }
                }
            }
        }
        let data_bytes = data.iter().map(|region| (region.range.end - region.range.start) as usize).sum();
        Self { data, data_bytes, spent_ns: AtomicU64::new(0), calls: AtomicUsize::new(0) }
    }

    /// What the searches through this finder cost so far.
    pub fn cost(&self) -> PinSearchCost {
        PinSearchCost {
            cells_checked: self.calls.load(Ordering::Relaxed),
            total_ns: self.spent_ns.load(Ordering::Relaxed),
            data_bytes: self.data_bytes,
            tasks: task::task_count(),
        }
    }
}

impl PinFinder for KernelPinFinder {
    fn find_pins(&self, _cell: &str, cell_ranges: &[AddressRange]) -> Vec<Pin> {
        let ranges: Vec<Range<u64>> =
            cell_ranges.iter().map(|range| range.start.value() as u64..range.end.value() as u64).collect();
        let mut pins = Vec::new();
        let started = tsc::now_ns();
        own_stack(&ranges, &mut pins);
        let current = scheduler::current_task();
        for task in task::all_tasks() {
            if current.as_ref() == Some(&task) {
                continue;
            }
            task_closures(&task, &ranges, &mut pins);
            if !task.is_on_cpu() {
                switched_out_task(&task, &ranges, &mut pins);
            }
        }
        stopped_cpus(&ranges, &mut pins);
        self.stored_pointers(&ranges, &mut pins);
        interrupt_table(&ranges, &mut pins);
        self.spent_ns.fetch_add(tsc::now_ns().saturating_sub(started), Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        pins
    }
}

fn address(value: u64) -> VirtualAddress {
    VirtualAddress::try_new(value as usize).unwrap_or(VirtualAddress::zero())
}

fn inside(ranges: &[Range<u64>], value: u64) -> bool {
    ranges.iter().any(|range| range.contains(&value))
}

/// The stack of a task: its own bounds, or (an adopted stack of unknown size) a bounded span above `from`.
fn stack_of(task: &TaskRef, from: u64) -> CheckedStack {
    match task.stack_bounds() {
        Some(bounds) => CheckedStack::new(bounds.start as u64..bounds.end as u64),
        None => CheckedStack::new(from..from.saturating_add(UNBOUNDED_SCAN_BYTES)),
    }
}

/// Step 3: the frames of the code running this call.
fn own_stack(ranges: &[Range<u64>], pins: &mut Vec<Pin>) {
    let Some(current) = scheduler::current_task() else { return };
    let hits = unwind::with_current_registers(|registers| {
        let from = registers.stack_pointer().unwrap_or(0);
        let known = current.stack_bounds().is_some();
        find_in_stack(stack_of(&current, from), unwind::FrameCursor::after_call(*registers), ranges, known)
    });
    push_frames(&current, &hits, pins);
}

fn push_frames(task: &TaskRef, hits: &Hits, pins: &mut Vec<Pin>) {
    for &hit in hits.as_slice() {
        pins.push(Pin::Frame { task: task.id().value(), task_name: task.name().to_string(), address: address(hit) });
    }
}

/// Step 1: a task that is not running, from its saved context.
fn switched_out_task(task: &TaskRef, ranges: &[Range<u64>], pins: &mut Vec<Pin>) {
    let saved = task.saved_stack_pointer() as u64;
    if saved == 0 {
        pins.push(Pin::Unwalkable {
            task: task.id().value(),
            task_name: task.name().to_string(),
            why: String::from("no saved context although it is not running"),
        });
        return;
    }
    // The stack cannot be freed while its task lock is held (and nothing reaps while the world is stopped).
    task.with_stack_locked(|_| {
        let memory = stack_of(task, saved);
        let cursor = saved_context_cursor(&memory, saved);
        if task.switch_count() == 0 {
            // Never ran: `context_switch` will pop r13 = the entry function (the third saved word).
            let entry = unwind::StackReader::read_u64(&memory, saved + 16).unwrap_or(0);
            if inside(ranges, entry) {
                pins.push(Pin::TaskEntry { task: task.id().value(), task_name: task.name().to_string() });
            }
        }
        // A stack of known bounds none of whose live words (from the saved context up) comes near the cell holds
        // no frame of it (see `any_word_near`): skip the walk.
        let live = saved..memory.bounds().end;
        let skip_walk = task.stack_bounds().is_some() && !any_word_near(&memory, live, ranges);
        if !skip_walk {
            push_frames(task, &find_in_stack(memory, cursor, ranges, task.stack_bounds().is_some()), pins);
        }
    });
}

/// Step 4: closures a task holds.
fn task_closures(task: &TaskRef, ranges: &[Range<u64>], pins: &mut Vec<Pin>) {
    let [body, on_failure] = task.closure_vtables();
    if body.is_some_and(|vtable| inside(ranges, vtable as u64)) {
        pins.push(Pin::TaskEntry { task: task.id().value(), task_name: task.name().to_string() });
    }
    if let Some(vtable) = on_failure.filter(|vtable| inside(ranges, *vtable as u64)) {
        pins.push(Pin::Pointer {
            location: address(vtable as u64),
            what: format!("the failure callback (vtable) of task {} \"{}\"", task.id(), task.name()),
        });
    }
}

/// Step 2: where each stopped CPU will resume.
fn stopped_cpus(ranges: &[Range<u64>], pins: &mut Vec<Pin>) {
    let tasks = task::all_tasks();
    for context in smp::stopped_contexts() {
        let (rip, rsp) = (context.instruction_pointer, context.stack_pointer);
        let mut hits = Hits::new();
        if inside(ranges, rip) {
            hits.push(rip);
        }
        let owner = tasks.iter().find(|task| {
            task.stack_bounds().is_some_and(|bounds| (bounds.start as u64..bounds.end as u64).contains(&rsp))
        });
        let memory = match owner {
            Some(task) => stack_of(task, rsp),
            None => CheckedStack::new(rsp..rsp.saturating_add(UNBOUNDED_SCAN_BYTES)),
        };
        let mut registers = unwind::Registers::new();
        registers.set(unwind::RA, Some(rip));
        registers.set(unwind::RSP, Some(rsp));
        let cursor = unwind::FrameCursor::exact(registers);
        for &hit in find_in_stack(memory, cursor, ranges, owner.is_some()).as_slice() {
            hits.push(hit);
        }
        for &hit in hits.as_slice() {
            pins.push(Pin::InterruptedContext { cpu: context.cpu, address: address(hit) });
        }
    }
}

impl KernelPinFinder {
    /// Step 5a: words of other cells' writable data pointing into the ranges (the cell's own data is skipped:
    /// it goes away with the cell).
    fn stored_pointers(&self, ranges: &[Range<u64>], pins: &mut Vec<Pin>) {
        for region in &self.data {
            let own = ranges.iter().any(|range| range.start < region.range.end && region.range.start < range.end);
            if own {
                continue;
            }
            let mut hits = Hits::new();
            let skip = smp::stopped_context_storage();
            scan_data(region.range.clone(), skip.start as u64..skip.end as u64, ranges, &mut hits);
            for &hit in hits.as_slice() {
                pins.push(Pin::Pointer {
                    location: address(hit),
                    what: format!("a word in the data of cell {} points into it", region.cell),
                });
            }
        }
    }
}

/// Scans one data section, except the words in `skip`; records the *locations* of words pointing into `ranges`.
///
/// This loop reads every word of every loaded cell's data (hundreds of KiB) inside the stopped world at each
/// swap, so it is kept tight: the words before `skip` and after it are two plain runs, and a word is compared
/// with the ranges only if it lies within their envelope (most data words are small integers or heap pointers).
fn scan_data(span: Range<u64>, skip: Range<u64>, ranges: &[Range<u64>], hits: &mut Hits) {
    let Some(envelope) = envelope(ranges) else { return };
    let start = span.start.next_multiple_of(8);
    let before_skip = start..skip.start.max(start).min(span.end);
    let after_skip = skip.end.next_multiple_of(8).max(start)..span.end;
    for run in [before_skip, after_skip] {
        let mut location = run.start;
        while location + 8 <= run.end {
            // The section belongs to a loaded cell (the snapshot came from the namespaces, which keep it mapped
            // read-write while loaded; nothing is unloaded while the world is stopped); data words are integers.
            // SAFETY: mapped as above; the word is 8-aligned (`start` is, runs advance by 8) and inside the section.
            let word = unsafe { core::ptr::read_volatile(location as *const u64) };
            if envelope.contains(&word) && inside(ranges, word) {
                hits.push(location);
            }
            location += 8;
        }
    }
}

/// The smallest range holding every range of `ranges` (`None` if there is none).
fn envelope(ranges: &[Range<u64>]) -> Option<Range<u64>> {
    let start = ranges.iter().map(|range| range.start).min()?;
    let end = ranges.iter().map(|range| range.end).max()?;
    Some(start..end)
}

/// Step 5b: the IDT this CPU uses (every CPU loads the same one) and its present gates' handlers.
fn interrupt_table(ranges: &[Range<u64>], pins: &mut Vec<Pin>) {
    let pointer = x86_64::instructions::tables::sidt();
    let base = pointer.base.as_u64();
    if inside(ranges, base) {
        pins.push(Pin::Pointer { location: address(base), what: String::from("the IDTR of every CPU points at it") });
    }
    let entries = (u64::from(pointer.limit) + 1) / 16;
    for vector in 0..entries {
        let entry = base + vector * 16;
        // SAFETY: the IDTR names a loaded, mapped IDT of `limit + 1` bytes; each gate is 16 bytes (Intel SDM Vol.
        // 3A 6.14.1, "64-Bit Mode IDT"): offset 15..0 at byte 0, attributes at byte 4 (present = bit 15 of the
        // word), offset 31..16 at byte 6, offset 63..32 at byte 8.
        let (low, attributes, middle, high) = unsafe {
            (
                core::ptr::read_volatile(entry as *const u16),
                core::ptr::read_volatile((entry + 4) as *const u16),
                core::ptr::read_volatile((entry + 6) as *const u16),
                core::ptr::read_volatile((entry + 8) as *const u32),
            )
        };
        let present = attributes & 0x8000 != 0;
        let handler = u64::from(low) | (u64::from(middle) << 16) | (u64::from(high) << 32);
        if present && inside(ranges, handler) {
            pins.push(Pin::Pointer { location: address(entry), what: format!("IDT vector {vector}'s handler") });
        }
    }
}
