//! A queue of items ordered by deadline, earliest first and FIFO among equal deadlines.
//!
//! The scheduler keeps one per CPU as its sleep list: `sleep` inserts the current task with its wake-up deadline
//! (nanoseconds), and every timer tick (and every scheduling decision) pops the items whose deadline has passed.
//! Pure logic, tested on the host. Insert and pop are O(log n) (a binary heap).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::collections::BinaryHeap;
use core::cmp::{Ordering, Reverse};

/// Items ordered by deadline (a `u64` in any unit; the scheduler uses nanoseconds).
///
/// The heap's length and capacity are kept twice, in the heap's own header and in two words of this struct, so a
/// damaged header word (a flipped bit) can be seen before the heap is used: [`is_consistent`](Self::is_consistent).
pub struct DeadlineQueue<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    /// Insertion counter, to keep equal deadlines in FIFO order.
    next_sequence: u64,
    /// `heap.len()`, kept by every operation.
    len: usize,
    /// `heap.capacity()`, kept by every operation.
    capacity: usize,
}

struct Entry<T> {
    deadline: u64,
    sequence: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.sequence).cmp(&(other.deadline, other.sequence))
    }
}

impl<T> Default for DeadlineQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> DeadlineQueue<T> {
    /// An empty queue (allocates nothing).
    pub const fn new() -> Self {
        DeadlineQueue { heap: BinaryHeap::new(), next_sequence: 0, len: 0, capacity: 0 }
    }

    /// Adds `item`, due at `deadline`.
    pub fn insert(&mut self, deadline: u64, item: T) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.heap.push(Reverse(Entry { deadline, sequence, item }));
        self.len = self.len.wrapping_add(1);
        self.capacity = self.heap.capacity();
    }

    /// The earliest deadline, if any item is queued.
    pub fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|entry| entry.0.deadline)
    }

    /// Removes and returns the earliest item whose deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: u64) -> Option<T> {
        if self.next_deadline()? > now {
            return None;
        }
        let entry = self.heap.pop()?;
        self.len = self.len.wrapping_sub(1);
        Some(entry.0.item)
    }

    /// Keeps only the items for which `keep` returns true (e.g. drops a killed task's entry).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.heap.retain(|entry| keep(&entry.0.item));
        self.len = self.heap.len();
        self.capacity = self.heap.capacity();
    }

    /// Whether the heap's header agrees with its second copy (length and capacity) and the length fits the
    /// capacity. Reads four words; never touches the heap's buffer.
    #[inline]
    pub fn is_consistent(&self) -> bool {
        let (len, capacity) = (self.heap.len(), self.heap.capacity());
        len == self.len && capacity == self.capacity && len <= capacity
    }

    /// For tests of a repair: flips the bits of `mask` in the second copy of the length (the heap's own header is
    /// private; [`is_consistent`](Self::is_consistent) compares both copies, so damaging either is seen alike).
    pub fn damage_length_copy_for_test(&mut self, mask: usize) {
        self.len ^= mask;
    }

    /// The number of queued items.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no item is queued.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_expired_items_earliest_first_fifo_among_equals() {
        let mut queue = DeadlineQueue::new();
        assert_eq!(queue.next_deadline(), None);
        queue.insert(30, "c");
        queue.insert(10, "a");
        queue.insert(20, "b1");
        queue.insert(20, "b2");
        queue.insert(20, "b3");
        assert_eq!(queue.next_deadline(), Some(10));
        assert_eq!(queue.pop_expired(9), None);
        assert_eq!(queue.pop_expired(10), Some("a"));
        let expired: Vec<_> = core::iter::from_fn(|| queue.pop_expired(25)).collect();
        assert_eq!(expired, ["b1", "b2", "b3"]);
        assert_eq!(queue.len(), 1);
        queue.insert(40, "d");
        queue.retain(|item| *item != "d");
        assert_eq!(queue.pop_expired(u64::MAX), Some("c"));
        assert!(queue.is_empty());
    }

    #[test]
    fn the_second_copy_follows_every_operation_and_sees_damage() {
        let mut queue = DeadlineQueue::new();
        assert!(queue.is_consistent());
        for n in 0..20u64 {
            queue.insert(n % 7, n);
            assert!(queue.is_consistent(), "after inserting {n}");
        }
        queue.retain(|item| item % 3 != 0);
        assert!(queue.is_consistent(), "after a retain");
        while queue.pop_expired(u64::MAX).is_some() {
            assert!(queue.is_consistent(), "after a pop");
        }
        assert_eq!(queue.pop_expired(u64::MAX), None);
        assert!(queue.is_consistent());
        queue.insert(1, 1);
        queue.damage_length_copy_for_test(1 << 33);
        assert!(!queue.is_consistent(), "a flipped length bit is seen");
    }
}
