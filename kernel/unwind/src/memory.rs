//! How the unwinder reads saved registers from the stack: a small trait, so host tests can supply a fake stack.

use core::ops::Range;

/// A read of stack memory that the reader refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryReadError {
    /// The address of the 8-byte word that could not be read.
    pub address: u64,
}

/// Reads 8-byte words of the stack being unwound.
pub trait StackReader {
    /// Reads the little-endian 64-bit word at `address` (any alignment).
    ///
    /// # Errors
    /// [`MemoryReadError`] if the reader does not cover all 8 bytes.
    fn read_u64(&self, address: u64) -> Result<u64, MemoryReadError>;
}

impl<T: StackReader + ?Sized> StackReader for &T {
    fn read_u64(&self, address: u64) -> Result<u64, MemoryReadError> {
        (**self).read_u64(address)
    }
}

/// Reads the live memory of this address space, optionally only inside one address range.
#[derive(Clone, Debug)]
pub struct DirectMemory {
    bounds: Option<Range<u64>>,
}

impl DirectMemory {
    /// A reader of every address.
    ///
    /// # Safety
    /// Every 8-byte word the unwinder is asked to read (the saved-register slots that the walked frames' CFI names,
    /// relative to their CFAs) must be mapped and readable. That holds for well-formed CFI of frames on a live,
    /// mapped stack; corrupted CFI or a corrupted stack can make it read anything, so prefer [`Self::within`].
    pub const unsafe fn unbounded() -> Self {
        Self { bounds: None }
    }

    /// A reader that refuses (with [`MemoryReadError`]) every word outside `bounds` (start inclusive, end
    /// exclusive), e.g. the stack of the task being unwound.
    ///
    /// # Safety
    /// Every byte in `bounds` must be mapped and readable for as long as the reader is used.
    pub const unsafe fn within(bounds: Range<u64>) -> Self {
        Self { bounds: Some(bounds) }
    }
}

impl StackReader for DirectMemory {
    fn read_u64(&self, address: u64) -> Result<u64, MemoryReadError> {
        let end = address.checked_add(8).ok_or(MemoryReadError { address })?;
        if let Some(bounds) = &self.bounds
            && (address < bounds.start || end > bounds.end)
        {
            return Err(MemoryReadError { address });
        }
        let pointer = usize::try_from(address).map_err(|_| MemoryReadError { address })? as *const u64;
        // SAFETY: the constructor's contract: the word is inside the readable bounds, or (unbounded) the caller
        // guaranteed every word the unwinder reads is mapped. `read_unaligned` has no alignment requirement.
        Ok(unsafe { pointer.read_unaligned() })
    }
}

/// A fake stack for tests and offline analysis: `words[i]` is the word at `base + 8 * i`.
#[derive(Clone, Copy, Debug)]
pub struct SliceStack<'a> {
    /// The address of `words[0]`.
    pub base: u64,
    /// The stack contents.
    pub words: &'a [u64],
}

impl StackReader for SliceStack<'_> {
    fn read_u64(&self, address: u64) -> Result<u64, MemoryReadError> {
        let offset = address.checked_sub(self.base).ok_or(MemoryReadError { address })?;
        if offset % 8 != 0 {
            return Err(MemoryReadError { address });
        }
        let index = usize::try_from(offset / 8).map_err(|_| MemoryReadError { address })?;
        self.words.get(index).copied().ok_or(MemoryReadError { address })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_stack_reads_only_its_words() {
        let words = [1, 2, 3];
        let stack = SliceStack { base: 0x1000, words: &words };
        assert_eq!(stack.read_u64(0x1008), Ok(2));
        assert_eq!(stack.read_u64(0x1018), Err(MemoryReadError { address: 0x1018 }));
        assert_eq!(stack.read_u64(0x0ff8), Err(MemoryReadError { address: 0x0ff8 }));
        assert_eq!(stack.read_u64(0x1004), Err(MemoryReadError { address: 0x1004 }));
    }

    #[test]
    fn bounded_direct_memory_refuses_outside_words() {
        let word: u64 = 0x1122_3344_5566_7788;
        let address = &raw const word as u64;
        // SAFETY: the range is exactly `word`, a live local.
        let memory = unsafe { DirectMemory::within(address..address + 8) };
        assert_eq!(memory.read_u64(address), Ok(word));
        assert!(memory.read_u64(address + 1).is_err());
        assert!(memory.read_u64(u64::MAX - 3).is_err());
    }
}
