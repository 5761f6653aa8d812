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
pub(crate) unsafe fn write_physical(destination: PhysicalAddress, bytes: &[u8]) {
    let target = virtual_address_of(destination) as *mut u8;
    // SAFETY: the caller guarantees that the destination is direct-mapped RAM with no live reference to it;
    // `bytes` is a live shared borrow, so it cannot alias the destination.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), target, bytes.len()) };
}
