//! Blocking synchronisation for tasks: [`WaitQueue`] and a fair [`Mutex`].
//!
//! # Purpose
//! A task that must wait gives its CPU away instead of spinning: it registers itself where the waker will find it,
//! marks itself `Blocked` (both under the primitive's lock, so a wake-up cannot be lost) and calls
//! `scheduler::schedule`. The waker makes it `Runnable` again with `scheduler::unblock`.
//!
//! # Key types
//! - [`WaitQueue`]: `wait_until(condition)` / `notify_one` / `notify_all`; the building block of channels.
//! - [`Mutex`] / [`MutexGuard`]: a blocking mutex with FIFO hand-off: unlocking passes ownership directly to the
//!   longest waiter, so under contention tasks get the lock strictly in the order they asked for it (no barging).
//! - [`OwnedIrqMutex`]: an interrupt-safe spin lock that records its holder, so that a lock a dead frame left
//!   taken is taken over by its next user (the wait queues' and the channels' own locks).
//!
//! # Kill and fault safety
//! Killing a task that waits here wakes it and it ends at once. Waiting keeps interrupts disabled from before the
//! task blocks until it has acted on its wake-up, so it can only die at the kill safe point in `schedule`, whose
//! landing pads run here: a waiter killed after a [`Mutex`] was handed to it passes the mutex on (or unlocks it),
//! and one killed after a [`WaitQueue::notify_one`] picked it passes the notification on. A task that dies
//! *holding* a `Mutex` releases it by its guard's drop; if the unwind skipped that frame (a CPU fault runs no landing
//! pad of the faulting frame; a kill of a task that reached no safe point ends it without unwinding), the scheduler's exit
//! path force-releases it through the task's held-locks list (`task::HeldLock`).
//!
//! Before tasking runs on a CPU (no current task), waiting falls back to spinning.
#![no_std]

extern crate alloc;

mod mutex;
mod owned_irq;
mod wait_queue;

pub use mutex::{Mutex, MutexGuard};
pub use owned_irq::{OwnedIrqMutex, OwnedIrqMutexGuard, stale_locks_taken_over};
pub use wait_queue::WaitQueue;
