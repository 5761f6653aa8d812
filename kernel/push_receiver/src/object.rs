//! [`AlignedObject`]: a heap copy of a pushed object, 8-byte aligned as the loader needs, that is either handed to
//! the namespace for good ([`AlignedObject::store`]) or freed.

use alloc::boxed::Box;
use alloc::vec;

use cell_namespace::{CellNamespace, ManifestEntry, PushedObjectError};

/// An 8-byte-aligned heap copy of an object file.
pub struct AlignedObject {
    /// The storage; `u64` gives the alignment. Only the first `length` bytes are the object.
    words: Box<[u64]>,
    length: usize,
}

impl AlignedObject {
    /// Copies `bytes` into fresh aligned storage.
    pub fn new(bytes: &[u8]) -> Self {
        let mut object = Self { words: vec![0_u64; bytes.len().div_ceil(8)].into_boxed_slice(), length: bytes.len() };
        let view = object.bytes_mut();
        view.copy_from_slice(bytes);
        object
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the storage is `words.len() * 8 >= length` initialised bytes owned by `self` and borrowed mutably
        // here; `u8` has no alignment or validity requirements beyond initialisation.
        unsafe { core::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.length) }
    }

    /// Gives the bytes to `namespace` as pushed object `cell` of crate `crate_name`.
    ///
    /// The directory stores `&'static [u8]` and a loaded cell keeps referring to its object, so on success the
    /// storage is leaked deliberately: it lives as long as the kernel (each push costs its object's size, once). On
    /// error the namespace keeps no reference to the bytes ([`CellNamespace::add_pushed_object`] changes nothing
    /// then), and the storage is freed.
    ///
    /// # Errors
    /// What [`CellNamespace::add_pushed_object`] returns.
    pub fn store(
        self,
        namespace: &CellNamespace,
        cell: &str,
        crate_name: &str,
    ) -> Result<ManifestEntry, PushedObjectError> {
        let length = self.length;
        let words: &'static mut [u64] = Box::leak(self.words);
        let pointer = words.as_mut_ptr();
        let word_count = words.len();
        // SAFETY: `words` is leaked, so the bytes live forever; they are initialised and `length <= 8 * word_count`.
        // Only shared references to them exist from here on.
        let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(pointer.cast::<u8>(), length) };
        let result = namespace.add_pushed_object(cell, crate_name, bytes);
        if result.is_err() {
            // SAFETY: the pointer and length are those of the box leaked above; on error the namespace stored no
            // reference to `bytes` (its documented contract) and `bytes` is not used after this point, so the box
            // is again the only owner.
            drop(unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(pointer, word_count)) });
        }
        result
    }
}
