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
//!
//! Killing a task that waits here wakes it and it ends at once; its queue entry is skipped later. A killed task
//! that *holds* a `Mutex` leaves it locked until the unwinder cell drops guards on the kill path.
//!
//! Before tasking runs on a CPU (no current task), waiting falls back to spinning.
#![no_std]

extern crate alloc;

mod mutex;
mod wait_queue;

pub use mutex::{Mutex, MutexGuard};
pub use wait_queue::WaitQueue;
