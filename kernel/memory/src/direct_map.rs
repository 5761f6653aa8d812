//! Access to physical memory through the direct map (`PHYSICAL_MEMORY_OFFSET + physical`).
//!
//! The unsafe primitives that write physical memory live here, and only here. The direct map covers every frame
//! the frame allocator manages, the kernel image, the boot information and the modules (see `plan::direct_map_frames`);
//! before `memory::init` switches page tables, the boot asm's direct map covers physical 0..4 GiB.

use crate::layout::PHYSICAL_MEMORY_OFFSET;
use memory_structs::{PAGE_SIZE, PhysicalAddress};

/// The direct-map virtual address of `address`.
pub(crate) const fn virtual_address_of(address: PhysicalAddress) -> usize {
    PHYSICAL_MEMORY_OFFSET + address.value()
}

/// Fills the frames `first_frame .. first_frame + count` with zeros.
///
/// # Safety
/// The frames must be direct-mapped and exclusively owned by the caller (freshly allocated, not mapped elsewhere
/// in a way someone is reading).
pub(crate) unsafe fn zero_frames(first_frame: usize, count: usize) {
    let start = virtual_address_of(PhysicalAddress::new(first_frame * PAGE_SIZE));
    // SAFETY: the caller guarantees that these `count` frames are direct-mapped (writable, RW+NX) and owned
    // exclusively, so no other reference observes the write.
    unsafe { core::ptr::write_bytes(start as *mut u8, 0, count * PAGE_SIZE) };
}

/// Copies `bytes` to physical address `destination` through the direct map.
///
/// # Safety
/// `destination .. destination + bytes.len()` must be direct-mapped RAM, and no Rust reference to those bytes may
/// be live for the duration of the copy (concurrent readers must be quiesced or tolerate the change).
///
/// A value of 1, 2, 4 or 8 bytes (a relocated field) is written with one store of that width, aligned or not, so a
/// reader never sees a mix of old and new bytes of a naturally aligned field, and an unaligned one changes in one
/// instruction (a swap still quiesces other CPUs: an unaligned store that crosses a cache line is not atomic, Intel
/// SDM Vol. 3A 9.1.1). Longer ranges are copied.
pub(crate) unsafe fn write_physical(destination: PhysicalAddress, bytes: &[u8]) {
    let target = virtual_address_of(destination);
    match *bytes {
        [byte] => {
            // SAFETY: the caller guarantees that the destination byte is direct-mapped RAM with no live reference.
            unsafe { core::arch::asm!("mov byte ptr [{0}], {1}", in(reg) target, in(reg_byte) byte, options(nostack)) };
        }
        [b0, b1] => {
            let value = u16::from_le_bytes([b0, b1]);
            // SAFETY: as above for the 2 bytes at `target`; x86 allows unaligned stores.
            unsafe { core::arch::asm!("mov word ptr [{0}], {1:x}", in(reg) target, in(reg) value, options(nostack)) };
        }
        [b0, b1, b2, b3] => {
            let value = u32::from_le_bytes([b0, b1, b2, b3]);
            // SAFETY: as above for the 4 bytes at `target`.
            unsafe { core::arch::asm!("mov dword ptr [{0}], {1:e}", in(reg) target, in(reg) value, options(nostack)) };
        }
        [b0, b1, b2, b3, b4, b5, b6, b7] => {
            let value = u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
            // SAFETY: as above for the 8 bytes at `target`.
            unsafe { core::arch::asm!("mov qword ptr [{0}], {1}", in(reg) target, in(reg) value, options(nostack)) };
        }
        _ => {
            // SAFETY: the caller guarantees that the destination is direct-mapped RAM with no live reference to
            // it; `bytes` is a live shared borrow, so it cannot alias the destination.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), target as *mut u8, bytes.len()) };
        }
    }
}
