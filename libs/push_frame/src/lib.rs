//! push_frame: the wire format for pushing a cell object from the host into a running system.
//!
//! # Purpose
//! `make push CELL=<crate>` sends one freshly built cell object over a dedicated serial line (COM2) to the
//! `push_receiver` cell of a running kernel. Serial lines lose, damage and cut bytes, so every object travels in a
//! frame with a magic, both names, its length and two CRC-32s; the receiver answers each frame with one [`Reply`]
//! line. Host (`scripts/cellbuild push`, the QEMU harness) and guest share this crate, so both ends agree on one
//! layout; it depends on nothing in-tree and its tests run on the host.
//!
//! # Layout (all integers little-endian)
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 4 | [`MAGIC`] `CPSH` |
//! | 4 | 1 | [`VERSION`] (1) |
//! | 5 | 1 | cell name length C, 1..=[`MAX_NAME_LEN`] |
//! | 6 | 1 | crate name length K, 1..=[`MAX_NAME_LEN`] |
//! | 7 | 1 | reserved, 0 |
//! | 8 | 4 | payload length P, 1..=[`MAX_PAYLOAD_LEN`] |
//! | 12 | 4 | CRC-32 of bytes 0..12 (the header) |
//! | 16 | C | cell name (ASCII letters, digits, `_`, `-`) |
//! | 16+C | K | crate name (ASCII letters, digits, `_`) |
//! | 16+C+K | P | payload: the cell's ELF object |
//! | 16+C+K+P | 4 | CRC-32 ([`crc32`], zlib's) of every byte before it |
//!
//! The header CRC lets a receiver reject a damaged length at once instead of waiting for a payload that never
//! comes; the trailing CRC covers everything.
//!
//! # Key items
//! [`encode`] ([`EncodeError`]); [`parse`] ([`Parsed`], [`FrameError`]; never panics); [`Receiver`] ([`Event`],
//! [`ReceivedFrame`]): the streaming front with resynchronisation; [`Reply`]; [`crc32`] / [`Crc32`].
//!
//! # Control flow
//! 1. The host builds the object and sends `encode(cell, crate, object)`.
//! 2. The guest feeds every received byte to [`Receiver::extend`] and drains [`Receiver::next_event`]: noise before
//!    a magic is skipped; a damaged frame gives [`Event::Rejected`] and the scan restarts one byte later; a
//!    complete frame gives [`Event::Frame`]. If the line goes quiet mid-frame, [`Receiver::expire`] reports the
//!    truncation.
//! 3. The guest validates and stores the object, and answers with [`Reply::to_line`]; the host reads it with
//!    [`Reply::parse`].
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod crc32;
mod frame;
mod receiver;
mod reply;
#[cfg(test)]
mod tests;

pub use crc32::{Crc32, crc32};
pub use frame::{
    EncodeError, Frame, FrameError, HEADER_LEN, MAGIC, MAX_NAME_LEN, MAX_PAYLOAD_LEN, NameField, Parsed, TRAILER_LEN,
    VERSION, encode, parse,
};
pub use receiver::{Event, ReceivedFrame, Receiver};
pub use reply::Reply;
