//! The frame layout, [`encode`] and [`parse`].

use alloc::vec::Vec;
use core::fmt;

use crate::crc32::{Crc32, crc32};

/// The first four bytes of every frame ("Cell PuSH").
pub const MAGIC: [u8; 4] = *b"CPSH";
/// The layout version this crate writes and accepts.
pub const VERSION: u8 = 1;
/// Bytes of the fixed header (magic through header CRC).
pub const HEADER_LEN: usize = 16;
/// Bytes of the trailing CRC-32.
pub const TRAILER_LEN: usize = 4;
/// The longest cell or crate name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// The largest payload, in bytes (the largest cell object of the image is about 200 KB).
pub const MAX_PAYLOAD_LEN: usize = 4 << 20;

/// Which name field of the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameField {
    /// The cell (package) name, e.g. `greeting_v2`: ASCII letters, digits, `_` and `-`.
    Cell,
    /// The crate (library) name, e.g. `greeting`: ASCII letters, digits and `_`.
    Crate,
}

impl fmt::Display for NameField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameField::Cell => "cell name",
            NameField::Crate => "crate name",
        })
    }
}

impl NameField {
    fn allows(self, byte: u8) -> bool {
        byte.is_ascii_alphanumeric() || byte == b'_' || (self == NameField::Cell && byte == b'-')
    }
}

/// Why [`encode`] refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// A name is empty or longer than [`MAX_NAME_LEN`].
    NameLength {
        /// Which name.
        field: NameField,
        /// Its length in bytes.
        length: usize,
    },
    /// A name holds a character outside its alphabet (see [`NameField`]).
    NameCharacter {
        /// Which name.
        field: NameField,
        /// The first offending character.
        character: char,
    },
    /// The payload is empty or longer than [`MAX_PAYLOAD_LEN`].
    PayloadLength {
        /// Its length in bytes.
        length: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::NameLength { field, length } => {
                write!(f, "{field} is {length} bytes long (1..={MAX_NAME_LEN} allowed)")
            }
            EncodeError::NameCharacter { field, character } => write!(f, "{field} contains {character:?}"),
            EncodeError::PayloadLength { length } => {
                write!(f, "payload is {length} bytes long (1..={MAX_PAYLOAD_LEN} allowed)")
            }
        }
    }
}

/// Why bytes starting at a frame boundary are not a valid frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The bytes do not start with [`MAGIC`].
    BadMagic,
    /// The header's CRC-32 does not match its first 12 bytes (a damaged length or name field).
    HeaderChecksum {
        /// The CRC-32 the header carries.
        stored: u32,
        /// The CRC-32 of the bytes received.
        computed: u32,
    },
    /// The layout version is not [`VERSION`].
    UnsupportedVersion {
        /// The version byte received.
        version: u8,
    },
    /// The reserved header byte is not 0.
    Reserved {
        /// The byte received.
        value: u8,
    },
    /// A name length is 0 or over [`MAX_NAME_LEN`].
    NameLength {
        /// Which name.
        field: NameField,
        /// The length the header declares.
        length: usize,
    },
    /// A name holds a byte outside its alphabet.
    NameByte {
        /// Which name.
        field: NameField,
        /// The first offending byte.
        byte: u8,
    },
    /// The payload length is 0 or over [`MAX_PAYLOAD_LEN`].
    PayloadLength {
        /// The length the header declares.
        length: usize,
    },
    /// The trailing CRC-32 does not match the frame (a damaged payload).
    Checksum {
        /// The CRC-32 the frame carries.
        stored: u32,
        /// The CRC-32 of the bytes received.
        computed: u32,
    },
    /// The sender stopped before the frame was complete (reported by a receiver's timeout).
    Truncated {
        /// Bytes received.
        received: usize,
        /// Bytes the header declares (or the header's length, if it was not complete).
        expected: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadMagic => f.write_str("no frame magic"),
            FrameError::HeaderChecksum { stored, computed } => {
                write!(f, "bad header checksum (stored {stored:#010x}, computed {computed:#010x})")
            }
            FrameError::UnsupportedVersion { version } => write!(f, "unsupported frame version {version}"),
            FrameError::Reserved { value } => write!(f, "reserved header byte is {value:#04x}, not 0"),
            FrameError::NameLength { field, length } => write!(f, "{field} length {length} out of range"),
            FrameError::NameByte { field, byte } => write!(f, "{field} contains byte {byte:#04x}"),
            FrameError::PayloadLength { length } => {
                write!(f, "payload length {length} out of range (1..={MAX_PAYLOAD_LEN})")
            }
            FrameError::Checksum { stored, computed } => {
                write!(f, "bad checksum (stored {stored:#010x}, computed {computed:#010x})")
            }
            FrameError::Truncated { received, expected } => {
                write!(f, "truncated frame ({received} of {expected} bytes received)")
            }
        }
    }
}

/// A valid frame, borrowing from the parsed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The cell (package) name.
    pub cell: &'a str,
    /// The crate (library) name.
    pub crate_name: &'a str,
    /// The payload (a cell object file).
    pub payload: &'a [u8],
}

/// What [`parse`] found at the start of its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A complete, valid frame, `length` bytes long.
    Complete {
        /// The frame.
        frame: Frame<'a>,
        /// Its length in bytes (header, names, payload and trailer).
        length: usize,
    },
    /// Valid so far; the frame is `needed` bytes long (at least), more than the input holds.
    Incomplete {
        /// The total length needed (the header's length until the header is complete).
        needed: usize,
    },
}

fn check_name(field: NameField, length: usize, value: &str) -> Result<(), EncodeError> {
    if length == 0 || length > MAX_NAME_LEN {
        return Err(EncodeError::NameLength { field, length });
    }
    match value.chars().find(|&c| !c.is_ascii() || !field.allows(c as u8)) {
        Some(character) => Err(EncodeError::NameCharacter { field, character }),
        None => Ok(()),
    }
}

/// Builds the frame that carries `payload` (a cell object) for cell `cell` of crate `crate_name`.
///
/// # Errors
/// [`EncodeError`] if a name or the payload length is out of range, or a name has a character outside its
/// alphabet.
pub fn encode(cell: &str, crate_name: &str, payload: &[u8]) -> Result<Vec<u8>, EncodeError> {
    check_name(NameField::Cell, cell.len(), cell)?;
    check_name(NameField::Crate, crate_name.len(), crate_name)?;
    if payload.is_empty() || payload.len() > MAX_PAYLOAD_LEN {
        return Err(EncodeError::PayloadLength { length: payload.len() });
    }
    let total = HEADER_LEN + cell.len() + crate_name.len() + payload.len() + TRAILER_LEN;
    let mut frame = Vec::with_capacity(total);
    frame.extend_from_slice(&MAGIC);
    // The lengths were checked above: names fit in a byte, the payload in a u32.
    frame.extend_from_slice(&[VERSION, cell.len() as u8, crate_name.len() as u8, 0]);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let header_crc = crc32(&frame);
    frame.extend_from_slice(&header_crc.to_le_bytes());
    frame.extend_from_slice(cell.as_bytes());
    frame.extend_from_slice(crate_name.as_bytes());
    frame.extend_from_slice(payload);
    let crc = crc32(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    Ok(frame)
}

fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0_u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

fn name_at(bytes: &[u8], field: NameField) -> Result<&str, FrameError> {
    if let Some(&byte) = bytes.iter().find(|&&byte| !field.allows(byte)) {
        return Err(FrameError::NameByte { field, byte });
    }
    // Every byte is ASCII (checked above), so this cannot fail; map the impossible error rather than panic.
    core::str::from_utf8(bytes).map_err(|_| FrameError::NameByte { field, byte: 0xFF })
}

/// Parses the frame at the start of `bytes` (which must start at a frame boundary: a possible [`MAGIC`]).
///
/// Checks the magic, the header CRC, the version, the reserved byte and the declared lengths as soon as the header
/// is complete, so a damaged header is rejected without waiting for a payload of a damaged length; then the names
/// and the trailing CRC once the whole frame is there. Never panics, whatever the bytes.
///
/// # Errors
/// The first [`FrameError`] found (never [`FrameError::Truncated`]: a short input is [`Parsed::Incomplete`]).
pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>, FrameError> {
    let magic_length = bytes.len().min(MAGIC.len());
    if bytes[..magic_length] != MAGIC[..magic_length] {
        return Err(FrameError::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Ok(Parsed::Incomplete { needed: HEADER_LEN });
    }
    let stored = read_u32(bytes, 12);
    let computed = crc32(&bytes[..12]);
    if stored != computed {
        return Err(FrameError::HeaderChecksum { stored, computed });
    }
    if bytes[4] != VERSION {
        return Err(FrameError::UnsupportedVersion { version: bytes[4] });
    }
    if bytes[7] != 0 {
        return Err(FrameError::Reserved { value: bytes[7] });
    }
    let cell_length = usize::from(bytes[5]);
    let crate_length = usize::from(bytes[6]);
    for (field, length) in [(NameField::Cell, cell_length), (NameField::Crate, crate_length)] {
        if length == 0 || length > MAX_NAME_LEN {
            return Err(FrameError::NameLength { field, length });
        }
    }
    let payload_length = read_u32(bytes, 8) as usize;
    if payload_length == 0 || payload_length > MAX_PAYLOAD_LEN {
        return Err(FrameError::PayloadLength { length: payload_length });
    }
    let names_end = HEADER_LEN + cell_length + crate_length;
    let payload_end = names_end + payload_length;
    let total = payload_end + TRAILER_LEN;
    if bytes.len() < total {
        return Ok(Parsed::Incomplete { needed: total });
    }
    let cell = name_at(&bytes[HEADER_LEN..HEADER_LEN + cell_length], NameField::Cell)?;
    let crate_name = name_at(&bytes[HEADER_LEN + cell_length..names_end], NameField::Crate)?;
    let stored = read_u32(bytes, payload_end);
    let mut crc = Crc32::new();
    crc.update(&bytes[..payload_end]);
    let computed = crc.finish();
    if stored != computed {
        return Err(FrameError::Checksum { stored, computed });
    }
    let frame = Frame { cell, crate_name, payload: &bytes[names_end..payload_end] };
    Ok(Parsed::Complete { frame, length: total })
}
