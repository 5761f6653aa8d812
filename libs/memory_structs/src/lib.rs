//! Address newtypes shared by every memory-related crate.
//!
//! `VirtualAddress` and `PhysicalAddress` wrap a `usize` so that the two kinds of address can never be mixed up,
//! and so that no raw `usize` address crosses a cell boundary. `Page` and `Frame` name one 4 KiB unit of each space.
//!
//! Constructors follow the `new` / `try_new` pattern of rust-osdev/x86_64 `src/addr.rs`: `try_new` returns an error
//! for an invalid value, `new` panics on one (use it only for constants and already-validated values).
//!
//! This crate depends on nothing and is tested on the host.
#![cfg_attr(not(test), no_std)]

use core::fmt;
use core::ops::{Add, Sub};

/// Size of one page or frame in bytes (4 KiB; Intel SDM Vol. 3A, 4.5).
pub const PAGE_SIZE: usize = 4096;

/// A virtual address that is not canonical (bits 63..48 are not copies of bit 47; Intel SDM Vol. 1, 3.3.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonCanonicalAddress(pub usize);

/// A physical address above the 52-bit architectural limit (Intel SDM Vol. 3A, 4.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysicalAddressTooLarge(pub usize);

/// A canonical 64-bit virtual address, in bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct VirtualAddress(usize);

impl VirtualAddress {
    /// Wraps `value` if it is canonical.
    ///
    /// # Errors
    /// [`NonCanonicalAddress`] if bits 63..48 differ from bit 47.
    pub const fn try_new(value: usize) -> Result<Self, NonCanonicalAddress> {
        let high = value >> 47;
        if high == 0 || high == (usize::MAX >> 47) { Ok(Self(value)) } else { Err(NonCanonicalAddress(value)) }
    }

    /// Wraps `value`.
    ///
    /// # Panics
    /// If `value` is not canonical.
    pub const fn new(value: usize) -> Self {
        match Self::try_new(value) {
            Ok(address) => address,
            Err(_) => panic!("non-canonical virtual address"),
        }
    }

    /// The zero address.
    pub const fn zero() -> Self {
        Self(0)
    }

    /// The raw value in bytes.
    pub const fn value(self) -> usize {
        self.0
    }

    /// The offset of this address within its 4 KiB page.
    pub const fn page_offset(self) -> usize {
        self.0 % PAGE_SIZE
    }
}

/// A physical address (at most 52 bits), in bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct PhysicalAddress(usize);

impl PhysicalAddress {
    /// Wraps `value` if it fits in 52 bits.
    ///
    /// # Errors
    /// [`PhysicalAddressTooLarge`] if any of bits 63..52 is set.
    pub const fn try_new(value: usize) -> Result<Self, PhysicalAddressTooLarge> {
        if value >> 52 == 0 { Ok(Self(value)) } else { Err(PhysicalAddressTooLarge(value)) }
    }

    /// Wraps `value`.
    ///
    /// # Panics
    /// If `value` does not fit in 52 bits.
    pub const fn new(value: usize) -> Self {
        match Self::try_new(value) {
            Ok(address) => address,
            Err(_) => panic!("physical address above 52 bits"),
        }
    }

    /// The zero address.
    pub const fn zero() -> Self {
        Self(0)
    }

    /// The raw value in bytes.
    pub const fn value(self) -> usize {
        self.0
    }

    /// The offset of this address within its 4 KiB frame.
    pub const fn frame_offset(self) -> usize {
        self.0 % PAGE_SIZE
    }
}

macro_rules! address_arithmetic {
    ($type:ident) => {
        impl Add<usize> for $type {
            type Output = $type;
            /// Adds a byte offset. Panics (via `new`) if the result is not a valid address.
            fn add(self, offset: usize) -> $type {
                $type::new(self.0 + offset)
            }
        }
        impl Sub<usize> for $type {
            type Output = $type;
            /// Subtracts a byte offset. Panics (via `new`) if the result is not a valid address.
            fn sub(self, offset: usize) -> $type {
                $type::new(self.0 - offset)
            }
        }
        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($type), "({:#x})"), self.0)
            }
        }
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
        impl fmt::LowerHex for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}
address_arithmetic!(VirtualAddress);
address_arithmetic!(PhysicalAddress);

/// One 4 KiB virtual page, identified by its number (address / 4096).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Page(usize);

impl Page {
    /// The page that contains `address`.
    pub const fn containing(address: VirtualAddress) -> Self {
        Self(address.0 / PAGE_SIZE)
    }
    /// The page number (address / 4096).
    pub const fn number(self) -> usize {
        self.0
    }
    /// The first address of this page.
    pub const fn start_address(self) -> VirtualAddress {
        // Page numbers only come from canonical addresses; the sign-extension is preserved by the multiply.
        VirtualAddress(self.0.wrapping_mul(PAGE_SIZE))
    }
}

/// One 4 KiB physical frame, identified by its number (address / 4096).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Frame(usize);

impl Frame {
    /// The frame that contains `address`.
    pub const fn containing(address: PhysicalAddress) -> Self {
        Self(address.0 / PAGE_SIZE)
    }
    /// The frame number (address / 4096).
    pub const fn number(self) -> usize {
        self.0
    }
    /// The first address of this frame.
    pub const fn start_address(self) -> PhysicalAddress {
        PhysicalAddress(self.0 * PAGE_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_addresses_are_accepted_and_others_rejected() {
        assert!(VirtualAddress::try_new(0x0000_7fff_ffff_ffff).is_ok());
        assert!(VirtualAddress::try_new(0xffff_8000_0000_0000).is_ok());
        assert_eq!(VirtualAddress::try_new(0x0000_8000_0000_0000), Err(NonCanonicalAddress(0x0000_8000_0000_0000)));
        assert!(PhysicalAddress::try_new(1 << 52).is_err());
    }

    #[test]
    fn pages_round_trip_high_half_addresses() {
        let address = VirtualAddress::new(0xffff_ffff_8010_2345);
        let page = Page::containing(address);
        assert_eq!(page.start_address().value(), 0xffff_ffff_8010_2000);
        assert_eq!(address.page_offset(), 0x345);
        assert_eq!(Frame::containing(PhysicalAddress::new(0x5123)).start_address().value(), 0x5000);
    }
}
