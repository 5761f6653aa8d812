//! Pure rules of typed access to a mapping: permissions, the [`PlainData`] marker, and bounds/alignment checks.

use crate::AccessError;
use memory_structs::VirtualAddress;

/// What a mapping allows. Writable and executable never go together (W^X): a loaded cell's text is mapped
/// `ReadWrite` while it is copied and relocated, then remapped `ReadExecute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permissions {
    /// Readable, not writable, not executable (`.rodata`, `.eh_frame`).
    ReadOnly,
    /// Readable and writable, not executable (`.data`, `.bss`, stacks, buffers).
    ReadWrite,
    /// Readable and executable, not writable (`.text`).
    ReadExecute,
}

impl Permissions {
    /// Whether the mapping can be written.
    pub const fn is_writable(self) -> bool {
        matches!(self, Self::ReadWrite)
    }

    /// Whether code in the mapping can be executed.
    pub const fn is_executable(self) -> bool {
        matches!(self, Self::ReadExecute)
    }
}

/// Types for which every bit pattern of the right size is a valid value, and which hold no pointers or references
/// whose validity the type system tracks, so they can be read from arbitrary (initialised) mapped bytes.
///
/// # Safety
/// Implement only for types with no padding-dependent invariants and no invalid bit patterns: integers, arrays of
/// them, and `#[repr(C)]` structs made only of such fields without padding.
pub unsafe trait PlainData: Copy + 'static {}

macro_rules! plain_data {
    ($($type:ty),*) => {
        // SAFETY: every bit pattern is a valid value of these integer types.
        $(unsafe impl PlainData for $type {})*
    };
}
plain_data!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
// SAFETY: an array of plain data has no padding between elements and every bit pattern of it is valid.
unsafe impl<T: PlainData, const N: usize> PlainData for [T; N] {}

/// Checks an access of `length` bytes at byte `offset` into a mapping of `size` bytes starting at `start`, for a
/// type of alignment `alignment`. Returns the address to access.
///
/// # Errors
/// [`AccessError::OutOfBounds`] if `offset + length` overflows or exceeds `size`; [`AccessError::Misaligned`] if
/// `start + offset` is not a multiple of `alignment`.
pub fn check_access(
    start: VirtualAddress,
    size: usize,
    offset: usize,
    length: usize,
    alignment: usize,
) -> Result<usize, AccessError> {
    let out_of_bounds = AccessError::OutOfBounds { offset, length, size };
    let end = offset.checked_add(length).ok_or(out_of_bounds)?;
    if end > size {
        return Err(out_of_bounds);
    }
    let address = start.value() + offset;
    if !address.is_multiple_of(alignment) {
        return Err(AccessError::Misaligned { address: VirtualAddress::new(address), alignment });
    }
    Ok(address)
}

/// The byte length of `count` values of `T`, or `None` on overflow.
pub fn slice_length<T>(count: usize) -> Option<usize> {
    count.checked_mul(core::mem::size_of::<T>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: VirtualAddress = VirtualAddress::new(0xFFFF_FFFF_9000_0000);

    #[test]
    fn accesses_inside_the_mapping_are_allowed() {
        assert_eq!(check_access(START, 4096, 0, 4096, 1), Ok(START.value()));
        assert_eq!(check_access(START, 4096, 4088, 8, 8), Ok(START.value() + 4088));
        assert_eq!(check_access(START, 4096, 4096, 0, 1), Ok(START.value() + 4096)); // empty slice at the end
    }

    #[test]
    fn out_of_bounds_and_overflow_are_errors() {
        assert_eq!(
            check_access(START, 4096, 4090, 8, 1),
            Err(AccessError::OutOfBounds { offset: 4090, length: 8, size: 4096 })
        );
        assert!(matches!(check_access(START, 4096, usize::MAX, 2, 1), Err(AccessError::OutOfBounds { .. })));
        assert_eq!(slice_length::<u64>(usize::MAX / 4), None);
        assert_eq!(slice_length::<u32>(3), Some(12));
    }

    #[test]
    fn misalignment_is_an_error() {
        assert_eq!(
            check_access(START, 4096, 4, 8, 8),
            Err(AccessError::Misaligned { address: VirtualAddress::new(START.value() + 4), alignment: 8 })
        );
    }

    #[test]
    fn permissions_are_w_xor_x() {
        for permissions in [Permissions::ReadOnly, Permissions::ReadWrite, Permissions::ReadExecute] {
            assert!(!(permissions.is_writable() && permissions.is_executable()));
        }
    }
}
