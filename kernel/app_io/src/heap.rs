//! [`HeapBlock`]: one heap allocation of a byte count chosen at run time, with no length or capacity
//! bookkeeping: the safe counterpart of C's `malloc(size)` / `free`, for applications that measure the allocator
//! itself (the `bench` application's `heap` metric) or need raw scratch bytes.

use core::alloc::Layout;
use core::ptr::NonNull;

/// An owned heap block of [`Self::len`] bytes, alignment 1, freed when dropped. Its bytes start out
/// unspecified; only bytes written through [`Self::set`] may be read back with [`Self::get`], so reading one
/// that was never written returns `None` rather than uninitialized memory.
///
/// Building one is one allocation from the kernel heap (`memory::heap_allocate(Layout { size, align: 1 })`, the
/// global allocator's own `alloc`, inlined: its fast path pops this CPU's size-class list), dropping it one
/// `memory::heap_deallocate` with the same layout: unlike `Vec::with_capacity`, no capacity overflow check or
/// length update, and no call through `__rust_alloc`.
pub struct HeapBlock {
    /// The block, from the global allocator with `layout`.
    pointer: NonNull<u8>,
    /// `len` bytes, alignment 1; `len` is at least 1.
    layout: Layout,
    /// Whether byte 0 has been written (the one byte this type tracks; see [`Self::set`]).
    first_written: bool,
}

impl HeapBlock {
    /// Allocates `len` bytes (alignment 1). Returns `None` if `len` is 0 or larger than `isize::MAX`, or if the
    /// heap has no room (this does not abort, unlike `Vec`).
    #[inline]
    pub fn new(len: usize) -> Option<Self> {
        if len == 0 || len > isize::MAX as usize {
            return None;
        }
        // SAFETY: alignment 1 is a power of two, and `len` (checked above) does not exceed `isize::MAX`, so
        // rounded up to the alignment it does not overflow `isize`.
        let layout = unsafe { Layout::from_size_align_unchecked(len, 1) };
        let pointer = NonNull::new(memory::heap_allocate(layout))?;
        Some(Self { pointer, layout, first_written: false })
    }

    /// The block's size in bytes (at least 1).
    #[inline]
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// Never true: a block has at least one byte (for the `len`/`is_empty` convention).
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes `value` at `index`. Only byte 0 is tracked as written: `set` at any other index writes the byte
    /// but [`Self::get`] still returns `None` for it.
    ///
    /// # Panics
    /// If `index >= self.len()`.
    #[inline]
    pub fn set(&mut self, index: usize, value: u8) {
        assert!(index < self.len(), "HeapBlock::set: index {index} out of {} bytes", self.len());
        // SAFETY: `index` is inside the live block (checked above), which this value owns exclusively.
        unsafe { self.pointer.as_ptr().add(index).write(value) };
        if index == 0 {
            self.first_written = true;
        }
    }

    /// The block's address (for identity and for `core::hint::black_box`; reading or writing through it needs
    /// `unsafe`, which applications do not have).
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.pointer.as_ptr()
    }

    /// The byte at `index` if it is byte 0 and was written with [`Self::set`], else `None`.
    #[inline]
    pub fn get(&self, index: usize) -> Option<u8> {
        if index == 0 && self.first_written {
            // SAFETY: byte 0 is inside the live block and was initialized by `set`.
            Some(unsafe { self.pointer.as_ptr().read() })
        } else {
            None
        }
    }
}

impl Drop for HeapBlock {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `pointer` came from `heap_allocate(self.layout)` and is freed only here, once.
        unsafe { memory::heap_deallocate(self.pointer.as_ptr(), self.layout) };
    }
}

// SAFETY: a `HeapBlock` owns its bytes exclusively (like `Box<[u8]>`), and the global allocator may free a block
// from any task or CPU.
unsafe impl Send for HeapBlock {}
