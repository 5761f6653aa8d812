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
pub struct DeadlineQueue<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    /// Insertion counter, to keep equal deadlines in FIFO order.
    next_sequence: u64,
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
        DeadlineQueue { heap: BinaryHeap::new(), next_sequence: 0 }
    }

    /// Adds `item`, due at `deadline`.
    pub fn insert(&mut self, deadline: u64, item: T) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.heap.push(Reverse(Entry { deadline, sequence, item }));
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
        self.heap.pop().map(|entry| entry.0.item)
    }

    /// Keeps only the items for which `keep` returns true (e.g. drops a killed task's entry).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.heap.retain(|entry| keep(&entry.0.item));
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
}
