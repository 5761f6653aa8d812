//! Relocation arithmetic for x86_64 (System V psABI 1.0, section 4.4, table 4.10).
//!
//! Notation of the psABI: `S` is the address of the symbol, `A` the addend, `P` the address of the place (the
//! storage unit being relocated). Addresses are 64-bit two's-complement values: a canonical higher-half address such
//! as `0xffff_ffff_8000_0000` is the negative number `-2^31`. This is exactly what makes `R_X86_64_32S` (and the kernel
//! code model) work for the top 2 GiB, so all arithmetic below is done exactly, in `i128`, on the signed
//! interpretation of `S` and `P`, and each result is then checked against the range its field can hold.

use core::fmt;

use crate::RelocationType;

/// The bytes a relocation writes at its place, little-endian (4 or 8 bytes; none for `R_X86_64_NONE`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RelocatedValue {
    bytes: [u8; 8],
    length: usize,
}

impl RelocatedValue {
    /// The bytes to store at the place, in memory order.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.length]
    }
}

impl fmt::Debug for RelocatedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelocatedValue({:02x?})", self.as_bytes())
    }
}

/// Why a relocation could not be computed or applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocationError {
    /// The relocation type is not one the loader implements.
    Unsupported {
        /// The offending type.
        relocation_type: RelocationType,
    },
    /// The exact result does not fit the field: it would have to be truncated.
    Overflow {
        /// The relocation type, which fixes the field's width and signedness.
        relocation_type: RelocationType,
        /// The exact value that did not fit.
        value: i128,
    },
    /// The place has fewer bytes than the field is wide.
    PlaceTooShort {
        /// The relocation type.
        relocation_type: RelocationType,
        /// The field width in bytes.
        needed: usize,
        /// The bytes available at the place.
        available: usize,
    },
}

impl fmt::Display for RelocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported { relocation_type } => write!(f, "unsupported relocation type {relocation_type}"),
            Self::Overflow { relocation_type, value } => {
                write!(f, "{relocation_type}: value {value:#x} does not fit the field")
            }
            Self::PlaceTooShort { relocation_type, needed, available } => {
                write!(f, "{relocation_type}: needs {needed} bytes at the place, only {available} available")
            }
        }
    }
}

/// Computes the value relocation type `relocation_type` stores at `place_address` (`P`), for symbol address
/// `symbol_address` (`S`) and addend `addend` (`A`).
///
/// | type | value | field |
/// |---|---|---|
/// | `R_X86_64_64` | `S + A` | 64 bits |
/// | `R_X86_64_PC32`, `R_X86_64_PLT32` | `S + A - P` (no PLT: `L = S`) | signed 32 bits |
/// | `R_X86_64_32` | `S + A` | unsigned 32 bits (zero-extended by the CPU) |
/// | `R_X86_64_32S` | `S + A` | signed 32 bits (sign-extended by the CPU) |
/// | `R_X86_64_PC64` | `S + A - P` | 64 bits |
/// | `R_X86_64_NONE` | nothing | 0 bits |
///
/// A 64-bit field holds any value in `-2^63 ..= 2^64 - 1` (as a signed or an unsigned 64-bit number).
///
/// # Errors
/// - [`RelocationError::Unsupported`] for any other type.
/// - [`RelocationError::Overflow`] if the exact value does not fit the field.
pub fn compute_relocation(
    relocation_type: RelocationType,
    place_address: u64,
    symbol_address: u64,
    addend: i64,
) -> Result<RelocatedValue, RelocationError> {
    // Addresses as signed 64-bit numbers (canonical higher-half addresses are negative), then exact arithmetic.
    let symbol = i128::from(symbol_address as i64);
    let place = i128::from(place_address as i64);
    let addend = i128::from(addend);
    let overflow = |value: i128| RelocationError::Overflow { relocation_type, value };
    let four = |value: u32| {
        let mut bytes = [0; 8];
        bytes[..4].copy_from_slice(&value.to_le_bytes());
        RelocatedValue { bytes, length: 4 }
    };
    let eight = |value: i128| {
        if value < i128::from(i64::MIN) || value > i128::from(u64::MAX) {
            return Err(overflow(value));
        }
        // Two's-complement truncation of an in-range value: exact for both readings of the field.
        Ok(RelocatedValue { bytes: (value as u64).to_le_bytes(), length: 8 })
    };
    let signed_32 = |value: i128| i32::try_from(value).map(|value| four(value as u32)).map_err(|_| overflow(value));

    match relocation_type {
        RelocationType::None => Ok(RelocatedValue { bytes: [0; 8], length: 0 }),
        RelocationType::Absolute64 => eight(symbol + addend),
        RelocationType::Pc64 => eight(symbol + addend - place),
        RelocationType::Pc32 | RelocationType::Plt32 => signed_32(symbol + addend - place),
        RelocationType::Absolute32Signed => signed_32(symbol + addend),
        RelocationType::Absolute32 => {
            let value = symbol + addend;
            u32::try_from(value).map(four).map_err(|_| overflow(value))
        }
        other => Err(RelocationError::Unsupported { relocation_type: other }),
    }
}

/// Applies one relocation: computes its value (see [`compute_relocation`]) and stores it at the start of `place`.
///
/// `place` is the memory at `place_address`; only its first 0, 4 or 8 bytes (the field) are written, and nothing
/// is written if an error is returned.
///
/// # Errors
/// - [`RelocationError::Unsupported`] or [`RelocationError::Overflow`] as for [`compute_relocation`].
/// - [`RelocationError::PlaceTooShort`] if `place` is shorter than the field.
pub fn apply_relocation(
    relocation_type: RelocationType,
    place: &mut [u8],
    place_address: u64,
    symbol_address: u64,
    addend: i64,
) -> Result<(), RelocationError> {
    let value = compute_relocation(relocation_type, place_address, symbol_address, addend)?;
    let bytes = value.as_bytes();
    let available = place.len();
    let field = place.get_mut(..bytes.len()).ok_or(RelocationError::PlaceTooShort {
        relocation_type,
        needed: bytes.len(),
        available,
    })?;
    field.copy_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

    fn apply(
        relocation_type: RelocationType,
        place_address: u64,
        symbol: u64,
        addend: i64,
    ) -> Result<Vec<u8>, RelocationError> {
        let mut place = [0xaa_u8; 10];
        apply_relocation(relocation_type, &mut place, place_address, symbol, addend)?;
        let width = relocation_type.width_in_bytes().unwrap();
        assert!(place[width..].iter().all(|&byte| byte == 0xaa), "wrote past the field");
        Ok(place[..width].to_vec())
    }

    fn overflow(relocation_type: RelocationType, value: i128) -> RelocationError {
        RelocationError::Overflow { relocation_type, value }
    }

    #[test]
    fn absolute_64_is_symbol_plus_addend() {
        let bytes = apply(RelocationType::Absolute64, 0, KERNEL_BASE + 0x1000, 0x10).unwrap();
        assert_eq!(bytes, (KERNEL_BASE + 0x1010).to_le_bytes());
        let bytes = apply(RelocationType::Absolute64, 0, 0x2000_0000, -8).unwrap();
        assert_eq!(bytes, 0x1fff_fff8_u64.to_le_bytes());
        // A negative result is representable in 64 bits (as a signed number).
        let bytes = apply(RelocationType::Absolute64, 0, 0, -1).unwrap();
        assert_eq!(bytes, [0xff; 8]);
    }

    #[test]
    fn absolute_64_overflow_is_an_error() {
        // u64::MAX is the signed value -1; adding i64::MIN leaves the 64-bit range.
        let error = apply(RelocationType::Absolute64, 0, u64::MAX, i64::MIN).unwrap_err();
        assert_eq!(error, overflow(RelocationType::Absolute64, -1 + i128::from(i64::MIN)));
    }

    #[test]
    fn pc32_and_plt32_are_pc_relative() {
        for relocation_type in [RelocationType::Pc32, RelocationType::Plt32] {
            // A call from 0x2000_0005 to 0x2000_1000 with the usual addend -4.
            let bytes = apply(relocation_type, 0x2000_0005, 0x2000_1000, -4).unwrap();
            assert_eq!(bytes, (0x2000_1000_i64 - 4 - 0x2000_0005).to_le_bytes()[..4]);
            // Backwards, in the higher half.
            let bytes = apply(relocation_type, KERNEL_BASE + 0x100, KERNEL_BASE, -4).unwrap();
            assert_eq!(bytes, (-0x104_i32).to_le_bytes());
        }
    }

    #[test]
    fn pc32_overflow_is_an_error() {
        // From low memory to the higher half is far more than 2 GiB away.
        let error = apply(RelocationType::Pc32, 0x2000_0000, KERNEL_BASE, 0).unwrap_err();
        assert_eq!(error, overflow(RelocationType::Pc32, -0x8000_0000 - 0x2000_0000));
        // Exactly one past i32::MAX.
        let error = apply(RelocationType::Plt32, 0, 0x8000_0000, 0).unwrap_err();
        assert_eq!(error, overflow(RelocationType::Plt32, 0x8000_0000));
        // Exactly i32::MIN still fits.
        assert_eq!(apply(RelocationType::Pc32, 0x8000_0000, 0, 0).unwrap(), i32::MIN.to_le_bytes());
    }

    #[test]
    fn absolute_32_zero_extends() {
        assert_eq!(apply(RelocationType::Absolute32, 0, 0xffff_fff0, 0xf).unwrap(), [0xff; 4]);
        // A higher-half address would need sign extension: not representable.
        let error = apply(RelocationType::Absolute32, 0, KERNEL_BASE, 0).unwrap_err();
        assert_eq!(error, overflow(RelocationType::Absolute32, -0x8000_0000));
        let error = apply(RelocationType::Absolute32, 0, 0xffff_fff0, 0x10).unwrap_err();
        assert_eq!(error, overflow(RelocationType::Absolute32, 0x1_0000_0000));
        let error = apply(RelocationType::Absolute32, 0, 0, -1).unwrap_err();
        assert_eq!(error, overflow(RelocationType::Absolute32, -1));
    }

    #[test]
    fn absolute_32s_sign_extends() {
        // The top 2 GiB: the kernel code model.
        assert_eq!(
            apply(RelocationType::Absolute32Signed, 0, KERNEL_BASE + 0x20, 8).unwrap(),
            (-0x7fff_ffd8_i32).to_le_bytes()
        );
        // Low memory below 2 GiB works too (host tests rely on it).
        assert_eq!(apply(RelocationType::Absolute32Signed, 0, 0x2000_0000, 0).unwrap(), 0x2000_0000_u32.to_le_bytes());
        let error = apply(RelocationType::Absolute32Signed, 0, 0x8000_0000, 0).unwrap_err();
        assert_eq!(error, overflow(RelocationType::Absolute32Signed, 0x8000_0000));
        let error = apply(RelocationType::Absolute32Signed, 0, KERNEL_BASE, -1).unwrap_err();
        assert_eq!(error, overflow(RelocationType::Absolute32Signed, -0x8000_0001));
    }

    #[test]
    fn pc64_is_pc_relative_64_bit() {
        let bytes = apply(RelocationType::Pc64, 0x2000_0000, KERNEL_BASE, 0).unwrap();
        assert_eq!(bytes, (-0x8000_0000_i64 - 0x2000_0000).to_le_bytes());
        let error = apply(RelocationType::Pc64, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, i64::MIN).unwrap_err();
        assert!(matches!(error, RelocationError::Overflow { relocation_type: RelocationType::Pc64, .. }));
    }

    #[test]
    fn none_writes_nothing() {
        let mut place = [0xaa_u8; 4];
        apply_relocation(RelocationType::None, &mut place, 0, 0x1234, 5).unwrap();
        assert_eq!(place, [0xaa; 4]);
    }

    #[test]
    fn unsupported_types_and_short_places_are_errors() {
        for relocation_type in
            [RelocationType::GotPcRelative, RelocationType::ThreadPointerOffset32, RelocationType::Unknown(99)]
        {
            assert_eq!(apply(relocation_type, 0, 0, 0), Err(RelocationError::Unsupported { relocation_type }));
        }
        let mut place = [0_u8; 7];
        assert_eq!(
            apply_relocation(RelocationType::Absolute64, &mut place, 0, 1, 0),
            Err(RelocationError::PlaceTooShort {
                relocation_type: RelocationType::Absolute64,
                needed: 8,
                available: 7
            })
        );
        assert_eq!(place, [0; 7], "nothing is written on error");
    }

    #[test]
    fn raw_relocation_types_round_trip() {
        for raw in 0..64 {
            assert_eq!(RelocationType::from(raw).raw(), raw);
        }
    }
}
