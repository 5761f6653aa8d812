//! The LSDA (GCC `.gcc_except_table` format) and the personality decision for one frame.
//!
//! Layout (Itanium C++ ABI exception handling, as LLVM emits it; the pointer encodings are the `DW_EH_PE_*` of the
//! LSB Core specification, "DWARF Extensions", section 10.5):
//!
//! ```text
//! u8   LPStart encoding; if not DW_EH_PE_omit: LPStart (encoded), else LPStart = function start
//! u8   TType encoding;   if not omit: uleb128 offset from here to the end of the type table
//! u8   call-site encoding
//! uleb128 call-site table length in bytes
//! call-site records: start, length, landing pad (call-site encoding; start relative to the function start,
//!                    landing pad relative to LPStart, 0 = none), action (uleb128; 0 = cleanup only, else
//!                    1 + offset of the first action record in the action table)
//! action table:      records of (type filter sleb128, offset to the next record sleb128, 0 = last)
//! type table:        ends at the TType base; entry i (1-based) at base - i * entry size
//! ```
//!
//! A type filter > 0 is a catch clause (type entry 0 = catch everything, what `core::intrinsics::catch_unwind`
//! emits), 0 a cleanup, < 0 an exception specification (LLVM uses an empty one for "abort if anything unwinds
//! here", e.g. a drop that runs during unwinding). Like Rust's own personality, only the first action record of a
//! call site decides. Parsing never panics: every read is bounds-checked and every sum overflow-checked.

use core::fmt;

/// `DW_EH_PE_omit`: no value.
const OMIT: u8 = 0xff;
/// `DW_EH_PE_indirect`: the value is the address of the pointer.
const INDIRECT: u8 = 0x80;

/// Why an LSDA could not be interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LsdaError {
    /// The data ends before a field at `offset` (bytes from the LSDA start) is complete.
    Truncated {
        /// Offset of the incomplete field.
        offset: usize,
    },
    /// A pointer encoding this parser does not support for that field (e.g. `textrel`, or `indirect` LPStart).
    UnsupportedEncoding {
        /// The encoding byte.
        encoding: u8,
        /// Offset of the field.
        offset: usize,
    },
    /// An address or offset computation overflowed, or a LEB128 number does not fit 64 bits.
    Overflow {
        /// Offset of the field.
        offset: usize,
    },
}

impl fmt::Display for LsdaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { offset } => write!(f, "LSDA truncated at offset {offset:#x}"),
            Self::UnsupportedEncoding { encoding, offset } => {
                write!(f, "unsupported pointer encoding {encoding:#x} at LSDA offset {offset:#x}")
            }
            Self::Overflow { offset } => write!(f, "overflow in the LSDA field at offset {offset:#x}"),
        }
    }
}

/// The type a catch clause catches, from the type table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatchType {
    /// A null entry: catches everything (Rust's `catch_unwind`).
    All,
    /// The address of the type information.
    Direct(u64),
    /// The address of a pointer to the type information (not followed).
    Indirect(u64),
}

/// What the personality decides for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EhAction {
    /// The address is in a call-site record without a landing pad: nothing to run, continue unwinding.
    None,
    /// A cleanup landing pad (runs drops, then calls `_Unwind_Resume`).
    Cleanup {
        /// The landing pad's address.
        landing_pad: u64,
    },
    /// A catch landing pad: unwinding ends there.
    Catch {
        /// The landing pad's address.
        landing_pad: u64,
        /// The type filter (1-based type-table index), the selector the pad receives in RDX.
        type_filter: u64,
        /// What it catches.
        catch_type: CatchType,
    },
    /// An exception-specification landing pad (in Rust: an abort, e.g. `panic_in_cleanup`).
    Filter {
        /// The landing pad's address.
        landing_pad: u64,
        /// The (negative) type filter, the selector the pad receives in RDX.
        type_filter: i64,
    },
    /// No call-site record covers the address: the compiler considered it unable to unwind.
    NotFound,
}

impl EhAction {
    /// The landing pad to enter, if any, and the selector value for RDX.
    pub fn landing_pad(&self) -> Option<(u64, u64)> {
        match *self {
            Self::Cleanup { landing_pad } => Some((landing_pad, 0)),
            Self::Catch { landing_pad, type_filter, .. } => Some((landing_pad, type_filter)),
            Self::Filter { landing_pad, type_filter } => Some((landing_pad, type_filter as u64)),
            Self::None | Self::NotFound => None,
        }
    }
}

/// A bounds-checked cursor over LSDA bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], position: usize) -> Self {
        Self { bytes, position }
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], LsdaError> {
        let truncated = LsdaError::Truncated { offset: self.position };
        let end = self.position.checked_add(count).ok_or(truncated)?;
        let bytes = self.bytes.get(self.position..end).ok_or(truncated)?;
        self.position = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, LsdaError> {
        Ok(self.take(1)?[0])
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], LsdaError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn uleb128(&mut self) -> Result<u64, LsdaError> {
        let start = self.position;
        let mut value: u64 = 0;
        let mut shift = 0;
        loop {
            let byte = self.u8()?;
            if shift >= 64 || (shift == 63 && byte & 0x7e != 0) {
                return Err(LsdaError::Overflow { offset: start });
            }
            value |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
    }

    fn sleb128(&mut self) -> Result<i64, LsdaError> {
        let start = self.position;
        let mut value: i64 = 0;
        let mut shift = 0;
        loop {
            let byte = self.u8()?;
            if shift >= 64 {
                return Err(LsdaError::Overflow { offset: start });
            }
            value |= i64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1_i64 << shift;
                }
                return Ok(value);
            }
        }
    }

    /// Reads a value in the format part (low nibble) of `encoding`, as raw 64 bits (signed formats sign-extended).
    fn formatted(&mut self, encoding: u8) -> Result<u64, LsdaError> {
        let offset = self.position;
        Ok(match encoding & 0x0f {
            0x00 | 0x04 | 0x0c => u64::from_le_bytes(self.fixed::<8>()?),
            0x01 => self.uleb128()?,
            0x02 => u64::from(u16::from_le_bytes(self.fixed::<2>()?)),
            0x03 => u64::from(u32::from_le_bytes(self.fixed::<4>()?)),
            0x09 => self.sleb128()? as u64,
            0x0a => i64::from(i16::from_le_bytes(self.fixed::<2>()?)) as u64,
            0x0b => i64::from(i32::from_le_bytes(self.fixed::<4>()?)) as u64,
            _ => return Err(LsdaError::UnsupportedEncoding { encoding, offset }),
        })
    }
}

/// The size in bytes of a fixed-size encoded value (for type-table indexing).
fn encoded_size(encoding: u8, offset: usize) -> Result<u64, LsdaError> {
    match encoding & 0x0f {
        0x00 | 0x04 | 0x0c => Ok(8),
        0x02 | 0x0a => Ok(2),
        0x03 | 0x0b => Ok(4),
        _ => Err(LsdaError::UnsupportedEncoding { encoding, offset }),
    }
}

/// Reads an encoded pointer at the reader's position: format, then application (absolute, or `pcrel` relative to
/// the field's own address, or `funcrel`). Returns the value and whether it is `indirect`.
fn encoded_pointer(
    reader: &mut Reader<'_>,
    encoding: u8,
    lsda_address: u64,
    function_start: u64,
) -> Result<(u64, bool), LsdaError> {
    let offset = reader.position;
    let field_address = lsda_address.checked_add(offset as u64).ok_or(LsdaError::Overflow { offset })?;
    let raw = reader.formatted(encoding)?;
    let value = match encoding & 0x70 {
        0x00 => raw,
        0x10 => field_address.wrapping_add(raw),
        0x40 => function_start.wrapping_add(raw),
        _ => return Err(LsdaError::UnsupportedEncoding { encoding, offset }),
    };
    Ok((value, encoding & INDIRECT != 0))
}

/// Decides what to do in a frame: finds the call-site record of `address` in the LSDA `lsda` (the bytes from the
/// LSDA start to the end of its section, which lives at `lsda_address`) of the function starting at
/// `function_start`. `address` is the frame's lookup address (the call instruction, i.e. return address - 1).
///
/// # Errors
/// [`LsdaError`] for truncated or malformed data; never panics.
pub fn find_action(lsda: &[u8], lsda_address: u64, function_start: u64, address: u64) -> Result<EhAction, LsdaError> {
    let mut reader = Reader::new(lsda, 0);
    let landing_pad_start_encoding = reader.u8()?;
    let landing_pad_start = if landing_pad_start_encoding == OMIT {
        function_start
    } else {
        let offset = reader.position;
        let (value, indirect) = encoded_pointer(&mut reader, landing_pad_start_encoding, lsda_address, function_start)?;
        if indirect {
            return Err(LsdaError::UnsupportedEncoding { encoding: landing_pad_start_encoding, offset });
        }
        value
    };
    let type_encoding = reader.u8()?;
    let type_base = if type_encoding == OMIT {
        None
    } else {
        let offset = reader.position;
        let delta = reader.uleb128()?;
        let delta = usize::try_from(delta).map_err(|_| LsdaError::Overflow { offset })?;
        Some(reader.position.checked_add(delta).ok_or(LsdaError::Overflow { offset })?)
    };
    let call_site_encoding = reader.u8()?;
    if call_site_encoding & 0x70 != 0 || call_site_encoding & INDIRECT != 0 {
        return Err(LsdaError::UnsupportedEncoding { encoding: call_site_encoding, offset: reader.position - 1 });
    }
    let length_offset = reader.position;
    let table_length = reader.uleb128()?;
    let table_start = reader.position;
    let action_table = usize::try_from(table_length)
        .ok()
        .and_then(|length| table_start.checked_add(length))
        .ok_or(LsdaError::Overflow { offset: length_offset })?;
    if action_table > lsda.len() {
        return Err(LsdaError::Truncated { offset: lsda.len() });
    }
    let mut records = Reader::new(&lsda[..action_table], table_start);
    while records.position < action_table {
        let offset = records.position;
        let overflow = LsdaError::Overflow { offset };
        let start = records.formatted(call_site_encoding)?;
        let length = records.formatted(call_site_encoding)?;
        let pad = records.formatted(call_site_encoding)?;
        let action = records.uleb128()?;
        let record_start = function_start.checked_add(start).ok_or(overflow)?;
        if address < record_start {
            // Records are sorted by start: no later one covers the address.
            break;
        }
        if address >= record_start.checked_add(length).ok_or(overflow)? {
            continue;
        }
        if pad == 0 {
            return Ok(EhAction::None);
        }
        let landing_pad = landing_pad_start.checked_add(pad).ok_or(overflow)?;
        if action == 0 {
            return Ok(EhAction::Cleanup { landing_pad });
        }
        let record =
            usize::try_from(action - 1).ok().and_then(|index| action_table.checked_add(index)).ok_or(overflow)?;
        let mut action_reader = Reader::new(lsda, record);
        let type_filter = action_reader.sleb128()?;
        return Ok(match type_filter {
            0 => EhAction::Cleanup { landing_pad },
            filter if filter > 0 => {
                let catch_type = catch_type(lsda, lsda_address, function_start, type_base, type_encoding, filter)?;
                EhAction::Catch { landing_pad, type_filter: filter as u64, catch_type }
            }
            filter => EhAction::Filter { landing_pad, type_filter: filter },
        });
    }
    Ok(EhAction::NotFound)
}

/// Reads type-table entry `filter` (1-based, counting down from the type base).
fn catch_type(
    lsda: &[u8],
    lsda_address: u64,
    function_start: u64,
    type_base: Option<usize>,
    type_encoding: u8,
    filter: i64,
) -> Result<CatchType, LsdaError> {
    let Some(type_base) = type_base else {
        // A catch clause without a type table cannot name a type; LLVM never emits it.
        return Err(LsdaError::UnsupportedEncoding { encoding: type_encoding, offset: 1 });
    };
    let size = encoded_size(type_encoding, 1)?;
    let overflow = LsdaError::Overflow { offset: type_base };
    let back = (filter as u64).checked_mul(size).and_then(|back| usize::try_from(back).ok()).ok_or(overflow)?;
    let entry = type_base.checked_sub(back).ok_or(overflow)?;
    let mut reader = Reader::new(lsda, entry);
    let mut raw_reader = Reader::new(lsda, entry);
    if raw_reader.formatted(type_encoding)? == 0 {
        return Ok(CatchType::All);
    }
    let (value, indirect) = encoded_pointer(&mut reader, type_encoding, lsda_address, function_start)?;
    Ok(if indirect { CatchType::Indirect(value) } else { CatchType::Direct(value) })
}
