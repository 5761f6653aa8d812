//! Channels between tasks: rendezvous and bounded buffered, multi-producer and multi-consumer.
//!
//! # Purpose
//! A channel moves owned values from tasks holding a [`Sender`] to tasks holding a [`Receiver`] (no shared
//! state between them beyond the channel itself). Both ends can be cloned. When every receiver is gone, `send`
//! fails and gives the value back; when every sender is gone, `receive` drains what is buffered and then fails.
//!
//! # Kinds
//! - [`rendezvous`] (capacity 0): `send` returns only once a receiver has taken the value.
//! - [`bounded`]`(n)`, n >= 1: `send` blocks while `n` values are buffered.
//!
//! # Control flow
//! 1. `send` waits (on the senders' [`WaitQueue`]) until there is room (a rendezvous channel has room for the one
//!    value being handed over), appends the value with a ticket number, and wakes a receiver;
//! 2. `receive` waits (on the receivers' queue) until a value is buffered, takes the oldest, counts it received,
//!    and wakes the senders (for room, and for the rendezvous sender waiting for its ticket);
//! 3. a rendezvous `send` then waits until its ticket has been received (or takes its value back if the last
//!    receiver went away meanwhile).
#![no_std]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::fmt;

use sync::{OwnedIrqMutex, WaitQueue};

struct Shared<T> {
    /// The buffered values and the end counts. The lock protects these only; it is taken inside the wait queues'
    /// condition closures (lock order: wait queue, then state) and released before any notify. It records its
    /// holder: a lock a faulting send or receive left taken (or whose release a fault skipped) is taken over by
    /// the next user instead of hanging it (`sync::OwnedIrqMutex`).
    state: OwnedIrqMutex<State<T>>,
    /// Receivers waiting for a value or for disconnection.
    receivers_waiting: WaitQueue,
    /// Senders waiting for room, for their rendezvous partner, or for disconnection.
    senders_waiting: WaitQueue,
    /// Buffer capacity; 0 means rendezvous.
    capacity: usize,
}

struct State<T> {
    buffer: VecDeque<T>,
    senders: usize,
    receivers: usize,
    /// Values sent so far (the ticket of the latest value).
    sent: u64,
    /// Values received so far.
    received: u64,
}

/// The sending end of a channel. Clone it for more producers.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving end of a channel. Clone it for more consumers.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// `send` failed because every receiver is gone; the value is returned.
#[derive(PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SendError(receivers disconnected)")
    }
}

/// Why `try_send` did not send.
#[derive(PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The buffer is full (or, for a rendezvous channel, a handover is in progress); the value is returned.
    Full(T),
    /// Every receiver is gone; the value is returned.
    Disconnected(T),
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => write!(f, "Full"),
            TrySendError::Disconnected(_) => write!(f, "Disconnected"),
        }
    }
}

/// `receive` failed: every sender is gone and nothing is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveError;

/// Why `try_receive` returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryReceiveError {
    /// Nothing is buffered now.
    Empty,
    /// Every sender is gone and nothing is buffered.
    Disconnected,
}

fn new_channel<T: Send>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: OwnedIrqMutex::new(State {
            buffer: VecDeque::with_capacity(capacity.max(1)),
            senders: 1,
            receivers: 1,
            sent: 0,
            received: 0,
        }),
        receivers_waiting: WaitQueue::new(),
        senders_waiting: WaitQueue::new(),
        capacity,
    });
    (Sender { shared: shared.clone() }, Receiver { shared })
}

/// A channel without buffer: each `send` blocks until a receiver has taken its value.
pub fn rendezvous<T: Send>() -> (Sender<T>, Receiver<T>) {
    new_channel(0)
}

/// A channel that buffers up to `capacity` values (0 gives a [`rendezvous`] channel).
pub fn bounded<T: Send>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    new_channel(capacity)
}

impl<T> Shared<T> {
    /// Values that fit in the buffer at once (a rendezvous channel holds the one value being handed over).
    fn room(&self) -> usize {
        self.capacity.max(1)
    }
}

impl<T: Send> Sender<T> {
    /// Sends `value`, blocking while the buffer is full; on a rendezvous channel, until a receiver took it.
    ///
    /// # Errors
    /// [`SendError`] with the value if every receiver is gone (also if the last one goes while a rendezvous send
    /// waits for it).
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let shared = &*self.shared;
        let mut value = Some(value);
        let ticket = shared.senders_waiting.wait_until(|| {
            let mut state = shared.state.lock();
            if state.receivers == 0 {
                return Some(None);
            }
            if state.buffer.len() < shared.room() {
                state.buffer.extend(value.take());
                state.sent += 1;
                return Some(Some(state.sent));
            }
            None
        });
        let Some(ticket) = ticket else {
            return Err(SendError(value.take().expect("the value is only moved into the buffer on success")));
        };
        shared.receivers_waiting.notify_one();
        if shared.capacity > 0 {
            return Ok(());
        }
        shared.senders_waiting.wait_until(|| {
            let mut state = shared.state.lock();
            if state.received >= ticket {
                Some(Ok(()))
            } else if state.receivers == 0 {
                // Not received, so ours is the one value in the rendezvous buffer.
                state.buffer.pop_back().map(|value| Err(SendError(value)))
            } else {
                None
            }
        })
    }

    /// Sends `value` if that needs no waiting (on a rendezvous channel: never succeeds without waiting for the
    /// receiver, so this only succeeds on buffered channels).
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Disconnected`], with the value.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let shared = &*self.shared;
        {
            let mut state = shared.state.lock();
            if state.receivers == 0 {
                return Err(TrySendError::Disconnected(value));
            }
            if shared.capacity == 0 || state.buffer.len() >= shared.capacity {
                return Err(TrySendError::Full(value));
            }
            state.buffer.push_back(value);
            state.sent += 1;
        }
        shared.receivers_waiting.notify_one();
        Ok(())
    }
}

impl<T: Send> Receiver<T> {
    /// Receives the oldest value, blocking until one is sent.
    ///
    /// # Errors
    /// [`ReceiveError`] once every sender is gone and the buffer is empty.
    pub fn receive(&self) -> Result<T, ReceiveError> {
        let shared = &*self.shared;
        let result = shared.receivers_waiting.wait_until(|| {
            let mut state = shared.state.lock();
            match state.buffer.pop_front() {
                Some(value) => {
                    state.received += 1;
                    Some(Ok(value))
                }
                None if state.senders == 0 => Some(Err(ReceiveError)),
                None => None,
            }
        });
        if result.is_ok() {
            shared.senders_waiting.notify_all();
        }
        result
    }

    /// How many values are buffered now (a snapshot; on a rendezvous channel, 1 while a handover is pending).
    pub fn len(&self) -> usize {
        self.shared.state.lock().buffer.len()
    }

    /// Whether no value is buffered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Receives the oldest value if one is buffered.
    ///
    /// # Errors
    /// [`TryReceiveError::Empty`] or [`TryReceiveError::Disconnected`].
    pub fn try_receive(&self) -> Result<T, TryReceiveError> {
        let shared = &*self.shared;
        let value = {
            let mut state = shared.state.lock();
            match state.buffer.pop_front() {
                Some(value) => {
                    state.received += 1;
                    value
                }
                None if state.senders == 0 => return Err(TryReceiveError::Disconnected),
                None => return Err(TryReceiveError::Empty),
            }
        };
        shared.senders_waiting.notify_all();
        Ok(value)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.state.lock().senders += 1;
        Sender { shared: self.shared.clone() }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.shared.state.lock().receivers += 1;
        Receiver { shared: self.shared.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.shared.state.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.shared.receivers_waiting.notify_all();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.shared.state.lock();
            state.receivers -= 1;
            state.receivers == 0
        };
        if last {
            self.shared.senders_waiting.notify_all();
        }
    }
}
