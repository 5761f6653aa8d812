//! [`Receiver`]: turns a byte stream with frames, noise and damaged frames into [`Event`]s.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::frame::{FrameError, MAGIC, Parsed, parse};

/// A frame received whole, with owned contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedFrame {
    /// The cell (package) name.
    pub cell: String,
    /// The crate (library) name.
    pub crate_name: String,
    /// The payload.
    pub payload: Vec<u8>,
}

/// What the receiver made of the bytes so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A valid frame.
    Frame(ReceivedFrame),
    /// A frame that starts with [`MAGIC`] but is damaged (or, from [`Receiver::expire`], truncated). The receiver
    /// has already resynchronised: it looks for the next magic from the byte after this frame's first one.
    Rejected(FrameError),
}

/// A streaming frame receiver: feed it bytes with [`extend`](Self::extend), take [`Event`]s with
/// [`next_event`](Self::next_event), and call [`expire`](Self::expire) when the sender has been silent too long in
/// the middle of a frame.
///
/// Bytes before a magic are noise: they are dropped and counted ([`skipped`](Self::skipped)). After a damaged
/// frame the receiver drops only that frame's first byte and scans on, so a valid frame that follows (even one
/// that was swallowed into the damaged frame's declared length) is still found.
#[derive(Clone, Debug, Default)]
pub struct Receiver {
    /// Unconsumed bytes; when not empty, they start with a (possibly partial) magic.
    buffer: Vec<u8>,
    skipped: usize,
}

impl Receiver {
    /// A receiver with nothing buffered.
    pub const fn new() -> Self {
        Self { buffer: Vec::new(), skipped: 0 }
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes buffered (a frame in progress, or bytes not yet scanned).
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Whether a frame has begun but is not complete (so the sender's silence means truncation).
    pub fn is_mid_frame(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// Noise bytes dropped so far (bytes outside any frame).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Drops bytes up to the first position where a magic (or, at the end, a prefix of one) starts.
    fn skip_to_magic(&mut self) {
        let length = self.buffer.len();
        let start = (0..length)
            .find(|&index| {
                let candidate = &self.buffer[index..];
                let compared = candidate.len().min(MAGIC.len());
                candidate[..compared] == MAGIC[..compared]
            })
            .unwrap_or(length);
        self.skipped += start;
        self.buffer.drain(..start);
    }

    /// The next complete frame or rejection in the bytes so far, or `None` if more bytes are needed.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            self.skip_to_magic();
            if self.buffer.is_empty() {
                return None;
            }
            match parse(&self.buffer) {
                Ok(Parsed::Incomplete { .. }) => return None,
                Ok(Parsed::Complete { frame, length }) => {
                    let received = ReceivedFrame {
                        cell: frame.cell.to_string(),
                        crate_name: frame.crate_name.to_string(),
                        payload: frame.payload.to_vec(),
                    };
                    self.buffer.drain(..length);
                    return Some(Event::Frame(received));
                }
                Err(FrameError::BadMagic) => {
                    // Unreachable after `skip_to_magic`; drop the byte and scan on rather than stop.
                    self.buffer.drain(..1);
                }
                Err(error) => {
                    self.buffer.drain(..1);
                    return Some(Event::Rejected(error));
                }
            }
        }
    }

    /// Gives up on the frame in progress (the sender went silent): returns [`FrameError::Truncated`] and
    /// resynchronises, or `None` if no frame is in progress.
    pub fn expire(&mut self) -> Option<Event> {
        if self.buffer.is_empty() {
            return None;
        }
        let received = self.buffer.len();
        let expected = match parse(&self.buffer) {
            Ok(Parsed::Incomplete { needed }) => needed,
            // Complete or damaged frames are reported by `next_event`; only a stall reaches here.
            _ => received,
        };
        self.buffer.drain(..1);
        Some(Event::Rejected(FrameError::Truncated { received, expected }))
    }
}
