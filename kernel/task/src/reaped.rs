//! The stacks of the most recently reaped tasks, for telling a dead lock holder from a live one.
//!
//! A lock that records its holder as an address in the holder's stack frame (`sync::OwnedIrqMutex`) is taken
//! over when that address lies on a stack nobody can be running the critical section on. A task that faulted
//! inside such a section and was ended (its stack unwound or abandoned, then reaped) leaves the lock taken with
//! a token on a stack that no task in the task table owns any more: [`was_reaped_stack`] recognizes such a token.
//!
//! A fixed ring of [`CAPACITY`] entries, one `AtomicU64` each (page number and page count packed, so a reader
//! never sees half an entry), written by [`Task::reap`](crate::Task::reap) before the task leaves the table. No
//! lock, no heap: usable from fault paths. A range stays listed until [`CAPACITY`] later reaps overwrite it; a
//! caller must first look whether a task in the table owns the address (a reaped stack's pages are reused by
//! later stacks), as `OwnedIrqMutex` does. Stacks that are not task stacks (the application processors' boot
//! stacks, the IST stacks) are allocated at CPU bring-up, before the first task is reaped, and never freed, so
//! they are never listed.

use core::ops::Range;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// How many reaped stacks are remembered.
pub const CAPACITY: usize = 128;

/// Page numbers are taken modulo 2^36 (48-bit canonical addresses), the page count modulo 2^28.
const COUNT_BITS: u32 = 28;
const PAGE_BITS: u32 = 36;
const PAGE_SHIFT: u32 = 12;

/// Packed (page number << 28 | page count); 0 is an empty entry.
static RING: [AtomicU64; CAPACITY] = [const { AtomicU64::new(0) }; CAPACITY];
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Records that the task whose usable stack was `stack` (page-aligned bounds) was reaped.
pub(crate) fn record(stack: &Range<usize>) {
    let pages = (stack.end.saturating_sub(stack.start) >> PAGE_SHIFT) as u64;
    if pages == 0 || pages >= 1 << COUNT_BITS {
        return;
    }
    let page_number = ((stack.start >> PAGE_SHIFT) as u64) & ((1 << PAGE_BITS) - 1);
    let slot = NEXT.fetch_add(1, Ordering::Relaxed) % CAPACITY;
    RING[slot].store(page_number << COUNT_BITS | pages, Ordering::Release);
}

/// Whether `address` lies in the stack of one of the last [`CAPACITY`] reaped tasks. Takes no lock.
pub fn was_reaped_stack(address: usize) -> bool {
    let page = ((address >> PAGE_SHIFT) as u64) & ((1 << PAGE_BITS) - 1);
    // A canonical higher-half address has bits 47-63 set; only those are task stacks.
    let higher_half = address >> 47 == (1 << 17) - 1;
    higher_half
        && RING.iter().any(|entry| {
            let packed = entry.load(Ordering::Acquire);
            let (start, count) = (packed >> COUNT_BITS, packed & ((1 << COUNT_BITS) - 1));
            count != 0 && (start..start + count).contains(&page)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_stack_is_recognized_until_overwritten_and_its_neighbours_are_not() {
        let base = 0xffff_ffff_9123_4000usize;
        assert!(!was_reaped_stack(base + 8));
        record(&(base..base + 16 * 4096));
        assert!(was_reaped_stack(base));
        assert!(was_reaped_stack(base + 16 * 4096 - 1));
        assert!(!was_reaped_stack(base - 1));
        assert!(!was_reaped_stack(base + 16 * 4096));
        // A lower-half address with the same page bits is not a stack.
        assert!(!was_reaped_stack((base + 8) & 0x0000_7fff_ffff_ffff));
        // After CAPACITY more reaps the oldest entry is gone (one test: the ring is shared).
        for index in 0..CAPACITY {
            let start = 0xffff_ffff_b000_0000usize + index * 0x10_0000;
            record(&(start..start + 4096));
        }
        assert!(!was_reaped_stack(base));
    }
}
