//! A fixed-capacity, lock-free single-producer single-consumer byte ring.
//!
//! # Purpose
//! An interrupt handler must hand received bytes to a reader without allocating and without taking a lock the
//! interrupted code might hold. [`ByteRing`] is a `const`-constructible array of `N` bytes with two atomic
//! counters: the producer (the handler) only writes `tail`, the consumer only writes `head`, so neither ever waits.
//!
//! # Key type
//! [`ByteRing`]: [`ByteRing::push`] (producer; returns `false` and drops the byte when full) and
//! [`ByteRing::pop`] (consumer). `N` must be a power of two.
//!
//! # Control flow
//! 1. The producer writes the byte at `tail % N`, then publishes it by incrementing `tail` (release).
//! 2. The consumer sees `head != tail` (acquire), reads the byte at `head % N`, then frees the slot by incrementing
//!    `head` (release). Counters wrap; `tail - head` (wrapping) is the number of stored bytes.
//!
//! Exactly one producer and one consumer may run at a time: callers with several consumers serialise them (e.g.
//! with a lock that the producer never takes).
#![cfg_attr(not(test), no_std)]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A single-producer single-consumer ring of `N` bytes (`N` a power of two).
pub struct ByteRing<const N: usize> {
    bytes: [UnsafeCell<u8>; N],
    /// Bytes consumed so far (wrapping); written by the consumer only.
    head: AtomicUsize,
    /// Bytes produced so far (wrapping); written by the producer only.
    tail: AtomicUsize,
    /// Bytes dropped because the ring was full.
    dropped: AtomicUsize,
}

// SAFETY: a slot is written only by the producer while it is free (tail - head < N, so the consumer does not read
// it) and read only by the consumer after the producer published it with a release increment of `tail`; the
// single-producer single-consumer contract (see the crate docs) rules out two writers or two readers of a slot.
unsafe impl<const N: usize> Sync for ByteRing<N> {}

impl<const N: usize> Default for ByteRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ByteRing<N> {
    const CAPACITY_IS_POWER_OF_TWO: () = assert!(N.is_power_of_two(), "ByteRing capacity must be a power of two");

    /// An empty ring.
    pub const fn new() -> Self {
        let () = Self::CAPACITY_IS_POWER_OF_TWO;
        Self {
            bytes: [const { UnsafeCell::new(0) }; N],
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }

    /// Appends `byte` (producer side). Returns `false`, and counts the byte as dropped, if the ring is full.
    pub fn push(&self, byte: u8) -> bool {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        if tail.wrapping_sub(head) >= N {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        // SAFETY: the slot is free (checked above) and only the single producer writes slots (see `Sync`).
        unsafe { *self.bytes[tail % N].get() = byte };
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    /// Removes and returns the oldest byte (consumer side), or `None` if the ring is empty.
    pub fn pop(&self) -> Option<u8> {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        // SAFETY: the slot was published by the producer (tail > head, acquire) and only the single consumer reads.
        let byte = unsafe { *self.bytes[head % N].get() };
        self.head.store(head.wrapping_add(1), Ordering::Release);
        Some(byte)
    }

    /// The number of bytes stored.
    pub fn len(&self) -> usize {
        self.tail.load(Ordering::Acquire).wrapping_sub(self.head.load(Ordering::Acquire))
    }

    /// Whether no byte is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes dropped so far because the ring was full.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fifo_order_full_and_empty() {
        let ring: ByteRing<4> = ByteRing::new();
        assert_eq!(ring.pop(), None);
        for byte in 1..=4 {
            assert!(ring.push(byte));
        }
        assert!(!ring.push(5), "full");
        assert_eq!(ring.dropped(), 1);
        assert_eq!(ring.len(), 4);
        assert_eq!(ring.pop(), Some(1));
        assert!(ring.push(6));
        assert_eq!(
            [ring.pop(), ring.pop(), ring.pop(), ring.pop(), ring.pop()],
            [Some(2), Some(3), Some(4), Some(6), None]
        );
        assert!(ring.is_empty());
    }

    #[test]
    fn counters_wrap_around() {
        let ring: ByteRing<2> = ByteRing::new();
        ring.head.store(usize::MAX, Ordering::Relaxed);
        ring.tail.store(usize::MAX, Ordering::Relaxed);
        assert!(ring.push(7));
        assert!(ring.push(8));
        assert!(!ring.push(9));
        assert_eq!(ring.pop(), Some(7));
        assert_eq!(ring.pop(), Some(8));
        assert_eq!(ring.pop(), None);
    }

    #[test]
    fn one_producer_thread_one_consumer_thread() {
        let ring: Arc<ByteRing<64>> = Arc::new(ByteRing::new());
        let producer_ring = ring.clone();
        let producer = std::thread::spawn(move || {
            for index in 0..100_000u32 {
                while !producer_ring.push(index as u8) {
                    std::hint::spin_loop();
                }
            }
        });
        let mut expected = 0u32;
        while expected < 100_000 {
            if let Some(byte) = ring.pop() {
                assert_eq!(byte, expected as u8);
                expected += 1;
            }
        }
        producer.join().unwrap();
        assert_eq!(ring.len(), 0);
    }
}
