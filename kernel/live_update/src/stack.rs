//! Reading stacks safely while the world is stopped: a [`StackReader`](unwind::StackReader) that refuses any
//! word outside the given bounds or on a page the page tables do not map, the walk start of a switched-out task,
//! and the walk of one stack for addresses inside a cell.

use core::cell::Cell;
use core::ops::Range;

use unwind::{FrameCursor, FrameIter, MemoryReadError, Registers, StackReader};

/// Frames walked at most per stack (a runaway recursion has hundreds of identical frames; a pin is found in the
/// first few in practice, and the conservative scan covers the rest when the walk stops early).
pub(crate) const FRAME_LIMIT: usize = 128;
/// Bytes scanned at most above a stack pointer whose stack has no known bounds (an adopted boot stack).
pub(crate) const UNBOUNDED_SCAN_BYTES: u64 = 64 * 1024;

/// Reads 8-byte stack words within `bounds`, and only from pages the current page tables map (checked by a
/// page-table walk through the direct map, Intel SDM Vol. 3A 4.5), so a wrong CFA or a stack of unknown size
/// never faults inside the stopped world.
///
/// The last page found mapped is remembered, so consecutive reads from one page (most of a walk's) cost one
/// page-table walk: use one reader per walk, while the stack's mapping cannot change (the world stopped, or the
/// task's stack lock held).
pub struct CheckedStack {
    bounds: Range<u64>,
    /// The start of the last page [`is_mapped`] confirmed, or `u64::MAX` (no page: page starts are 4 KiB-aligned).
    mapped_page: Cell<u64>,
}

impl CheckedStack {
    /// A reader confined to `bounds` (start inclusive, end exclusive).
    pub fn new(bounds: Range<u64>) -> Self {
        Self { bounds, mapped_page: Cell::new(u64::MAX) }
    }

    /// Whether the page of `address` is mapped (looked up once per page change).
    fn page_is_mapped(&self, address: u64) -> bool {
        let page = address & !0xfff;
        if page == self.mapped_page.get() {
            return true;
        }
        let mapped = is_mapped(address);
        if mapped {
            self.mapped_page.set(page);
        }
        mapped
    }

    /// The bounds.
    pub fn bounds(&self) -> Range<u64> {
        self.bounds.clone()
    }
}

impl StackReader for CheckedStack {
    fn read_u64(&self, address: u64) -> Result<u64, MemoryReadError> {
        let end = address.checked_add(8).ok_or(MemoryReadError { address })?;
        let inside = address >= self.bounds.start && end <= self.bounds.end && address.is_multiple_of(8);
        if !inside || !self.page_is_mapped(address) {
            return Err(MemoryReadError { address });
        }
        // SAFETY: the address is 8-byte aligned (so within one page) and its page is mapped (checked just above
        // with every other CPU stopped, so no mapping changes meanwhile); a stack word is plain data.
        Ok(unsafe { core::ptr::read_volatile(address as *const u64) })
    }
}

/// Whether the page holding `address` is mapped (present at every level) in the current address space.
pub fn is_mapped(address: u64) -> bool {
    const PRESENT: u64 = 1;
    const HUGE: u64 = 1 << 7;
    const FRAME_MASK: u64 = 0x000F_FFFF_FFFF_F000;
    let (root, _) = x86_64::registers::control::Cr3::read();
    let mut table = root.start_address().as_u64();
    for level in (1..=4u32).rev() {
        let index = (address >> (12 + 9 * (level - 1))) & 0x1ff;
        let entry_address = memory::layout::PHYSICAL_MEMORY_OFFSET as u64 + table + index * 8;
        // SAFETY: `table` is the physical address of a page table (CR3 or a present non-huge entry's frame), which
        // the direct map at PHYSICAL_MEMORY_OFFSET maps (it covers all RAM, page tables included); the entry is
        // an aligned u64 inside that page.
        let entry = unsafe { core::ptr::read_volatile(entry_address as *const u64) };
        if entry & PRESENT == 0 {
            return false;
        }
        if level == 1 || (level <= 3 && entry & HUGE != 0) {
            return true;
        }
        table = entry & FRAME_MASK;
    }
    true
}

/// The walk start of a task switched out by `task::context_switch`: its saved stack pointer points at r15, r14,
/// r13, r12, rbx, rbp and the return address into the code that called the switch (or, for a task that never
/// ran, into `task`'s trampoline).
pub fn saved_context_cursor(memory: &dyn StackReader, saved: u64) -> FrameCursor {
    let word = |index: u64| memory.read_u64(saved + 8 * index).ok();
    let mut registers = Registers::new();
    for (register, index) in
        [(unwind::R15, 0), (unwind::R14, 1), (unwind::R13, 2), (unwind::R12, 3), (unwind::RBX, 4), (unwind::RBP, 5)]
    {
        registers.set(register, word(index));
    }
    registers.set(unwind::RA, word(6));
    registers.set(unwind::RSP, Some(saved + 56));
    FrameCursor::after_call(registers)
}

/// Addresses found inside the ranges on one stack: up to [`Hits::CAPACITY`] distinct ones are kept (one already
/// pins the cell; a few make the report readable). Fixed capacity: the walk itself allocates nothing.
pub(crate) struct Hits {
    addresses: [u64; Hits::CAPACITY],
    length: usize,
}

impl Hits {
    /// Addresses kept per stack.
    pub(crate) const CAPACITY: usize = 4;

    pub(crate) const fn new() -> Self {
        Self { addresses: [0; Self::CAPACITY], length: 0 }
    }

    pub(crate) fn push(&mut self, address: u64) {
        if self.length < Self::CAPACITY && !self.addresses[..self.length].contains(&address) {
            self.addresses[self.length] = address;
            self.length += 1;
        }
    }

    pub(crate) fn as_slice(&self) -> &[u64] {
        &self.addresses[..self.length]
    }
}

/// Walks one stack from `cursor` (reads through `memory`) and collects the addresses that lie in `ranges`:
/// every frame's instruction pointer (its lookup address, so a return address just past a cell's last byte
/// counts for that cell), and the address where the walk ended for lack of unwind info (a naked trampoline, boot
/// code). Retired cells keep their unwind info until they are freed, so a walk crosses their frames; only if the
/// walk *failed* (malformed CFI, an unreadable word, a CFA rule needing a register the start did not have) or hit
/// the frame limit, and the stack's bounds are known (`known_bounds`), is every word of the rest of the stack
/// checked too (conservative: a stale word only delays reclamation). An adopted stack of unknown size is not
/// scanned past its last frame: beyond its top lies other data (nano_core's statics above the boot stack).
pub(crate) fn find_in_stack(
    memory: CheckedStack,
    cursor: FrameCursor,
    ranges: &[Range<u64>],
    known_bounds: bool,
) -> Hits {
    let mut hits = Hits::new();
    let inside = |address: u64| ranges.iter().any(|range| range.contains(&address));
    let bounds = memory.bounds();
    let mut last_stack_pointer = cursor.registers().stack_pointer().unwrap_or(bounds.start);
    let mut frames = FrameIter::new(unwind::global_registry(), memory, cursor).with_limit(FRAME_LIMIT);
    let complete = loop {
        match frames.next_frame() {
            Ok(Some(frame)) => {
                if inside(frame.lookup_address) || inside(frame.instruction_pointer) {
                    hits.push(frame.instruction_pointer);
                }
                last_stack_pointer = frame.cfa;
            }
            Ok(None) => match frames.end_reason() {
                Some(unwind::EndReason::NoUnwindInfo { address } | unwind::EndReason::NoFde { address }) => {
                    if inside(address) || inside(address + 1) {
                        hits.push(address + 1);
                    }
                    break true;
                }
                Some(unwind::EndReason::Limit) => break false,
                _ => break true,
            },
            Err(_) => break false,
        }
    };
    if !complete && known_bounds {
        scan_words(&CheckedStack::new(bounds.clone()), last_stack_pointer..bounds.end, ranges, &mut hits);
    }
    hits
}

/// Checks every aligned word in `span` (read through `memory`, which refuses unmapped pages) against `ranges`.
pub(crate) fn scan_words(memory: &CheckedStack, span: Range<u64>, ranges: &[Range<u64>], hits: &mut Hits) {
    let mut address = span.start.next_multiple_of(8);
    while address + 8 <= span.end {
        match memory.read_u64(address) {
            Ok(word) => {
                if ranges.iter().any(|range| range.contains(&word)) {
                    hits.push(word);
                }
                address += 8;
            }
            // An unmapped page ends the stack (its guard page, or the end of an adopted stack).
            Err(_) => break,
        }
    }
}

/// Whether any aligned word in `span` (read through `memory`) lies in one of `ranges` widened by one byte on
/// each side (for a walk's lookup address, a return address - 1, and its end address + 1), or a word could not be
/// read (then the caller must not rely on the answer: `true`). A walk of a stack none of whose words is that near
/// the cell cannot find a frame there, since every frame's return address is such a word; so this cheap pass lets
/// the pin search skip the unwinder for the many stacks that never entered the cell.
pub(crate) fn any_word_near(memory: &CheckedStack, span: Range<u64>, ranges: &[Range<u64>]) -> bool {
    let mut address = span.start.next_multiple_of(8);
    while address + 8 <= span.end {
        match memory.read_u64(address) {
            Ok(word) if !is_near(ranges, word) => address += 8,
            _ => return true,
        }
    }
    false
}

/// Whether `value` lies in one of `ranges` widened by one byte on each side.
fn is_near(ranges: &[Range<u64>], value: u64) -> bool {
    ranges.iter().any(|range| value.saturating_add(1) >= range.start && value <= range.end)
}
