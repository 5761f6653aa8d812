//! The map of the whole virtual address space, in one place (after xv6 `kernel/memlayout.h`).
//!
//! Addresses are 48-bit canonical (Intel SDM Vol. 1, 3.3.7.1): the lower half is `0 .. 0x0000_8000_0000_0000`, the
//! upper half `0xFFFF_8000_0000_0000 ..= 0xFFFF_FFFF_FFFF_FFFF`. One PML4 entry covers 512 GiB (SDM Vol. 3A, 4.5).
//!
//! ```text
//! virtual address                       size      contents                                   flags
//! ------------------------------------  --------  -----------------------------------------  ---------------------
//! 0x0000_0000_0000_0000                 1 GiB     BOOT ONLY: identity map of physical        (removed by
//!   .. 0x0000_0000_4000_0000                      0..1 GiB, 2 MiB pages, built by the boot    memory::init; the
//!                                                 asm. Page 0 is never mapped afterwards.     lower half is empty)
//! 0x0000_0000_4000_0000                   -       unused (lower half: reserved for a future
//!   .. 0x0000_8000_0000_0000                      user space; empty now)
//! ------------------------------------  --------  -----------------------------------------  ---------------------
//! 0xFFFF_8000_0000_0000                 64 TiB    DIRECT MAP: physical P at                  RW, NX; 2 MiB pages
//!   = PHYSICAL_MEMORY_OFFSET                      PHYSICAL_MEMORY_OFFSET + P. Boot asm maps   where aligned, 4 KiB
//!   .. 0xFFFF_C000_0000_0000                      0..4 GiB; memory::init maps RAM and ACPI    at the edges
//!                                                 areas of the memory map, the low 1 MiB,
//!                                                 the kernel image, boot info and modules.
//! 0xFFFF_C000_0000_0000                 64 GiB    KERNEL HEAP: HEAP_INITIAL_SIZE (32 MiB)     RW, NX; 4 KiB pages
//!   = HEAP_START                                  mapped at init; the rest is reserved for
//!   .. 0xFFFF_C010_0000_0000                      growth. Owned by the heap module alone.
//! 0xFFFF_C010_0000_0000                   -       unused
//!   .. 0xFFFF_FFFF_8000_0000
//! ------------------------------------  --------  -----------------------------------------  ---------------------
//! 0xFFFF_FFFF_8000_0000                 256 MiB   KERNEL IMAGE: virtual = KERNEL_OFFSET +     per section (W^X):
//!   = KERNEL_OFFSET                               physical. Physical 0..1 MiB is not mapped   .text RX
//!   .. 0xFFFF_FFFF_9000_0000                      here; the image starts at 1 MiB. Boot part  .rodata R, NX
//!                                                 (multiboot header, 32-bit code, boot page   .data/.bss RW, NX
//!                                                 tables and stack): RW, NX after init.       boot part RW, NX
//! 0xFFFF_FFFF_9000_0000                 1776 MiB  PAGE ALLOCATOR REGION: loaded cells         per mapping
//!   = PAGE_REGION_START                           (code-model=kernel needs the top 2 GiB),   (MappedPages; never
//!   .. 0xFFFF_FFFF_FF00_0000                      task stacks, map_new, device memory.        W and X together)
//! 0xFFFF_FFFF_FF00_0000                 16 MiB    unused guard at the top of the address
//!   .. 0x1_0000_0000_0000_0000                    space (nothing is mapped there)
//! ```
//!
//! The kernel image must end below [`PAGE_REGION_START`]; `memory::init` checks this.

/// Virtual address of physical address 0 in the direct map (the boot asm uses the same offset).
pub const PHYSICAL_MEMORY_OFFSET: usize = 0xFFFF_8000_0000_0000;
/// Size of the direct-map window in bytes (64 TiB, 128 PML4 entries). Physical memory at or above this is not used.
pub const DIRECT_MAP_SIZE: usize = 64 << 40;
/// How much physical memory the boot asm's direct map covers (0..4 GiB). Until `memory::init` switches to its own
/// page tables, only frames below this are reachable, so page-table frames are taken from below it.
pub const BOOT_DIRECT_MAP_SIZE: usize = 4 << 30;
/// Physical memory that is always direct-mapped, whatever the memory map says: the legacy low 1 MiB (BIOS data,
/// EBDA, VGA text buffer at 0xB8000, the BIOS area 0xE0000..0x100000 that ACPI searches for the RSDP).
pub const LOW_MEMORY_SIZE: usize = 1 << 20;

/// Start of the kernel heap (virtual).
pub const HEAP_START: usize = 0xFFFF_C000_0000_0000;
/// Bytes of heap mapped by `memory::init` (32 MiB).
pub const HEAP_INITIAL_SIZE: usize = 32 << 20;
/// Bytes reserved for the heap, including room to grow (64 GiB).
pub const HEAP_MAX_SIZE: usize = 64 << 30;

/// Virtual address of physical address 0 in the kernel image mapping (top 2 GiB; `-C code-model=kernel`).
pub const KERNEL_OFFSET: usize = 0xFFFF_FFFF_8000_0000;
/// Start of the page-allocator region (virtual, inclusive).
pub const PAGE_REGION_START: usize = 0xFFFF_FFFF_9000_0000;
/// End of the page-allocator region (virtual, exclusive).
pub const PAGE_REGION_END: usize = 0xFFFF_FFFF_FF00_0000;

/// Size of a 2 MiB large page (Intel SDM Vol. 3A, 4.5, Table 4-18).
pub const LARGE_PAGE_SIZE: usize = 2 << 20;

// Compile-time checks of the map above: regions ordered and disjoint, the page region within reach of
// `R_X86_64_32S` (sign-extended 32-bit values: 0xFFFF_FFFF_8000_0000 ..= 0xFFFF_FFFF_FFFF_FFFF), alignments.
const _: () = {
    assert!(PHYSICAL_MEMORY_OFFSET + DIRECT_MAP_SIZE <= HEAP_START);
    assert!(HEAP_START + HEAP_MAX_SIZE <= KERNEL_OFFSET);
    assert!(HEAP_INITIAL_SIZE <= HEAP_MAX_SIZE);
    assert!(KERNEL_OFFSET == 0xFFFF_FFFF_8000_0000);
    assert!(KERNEL_OFFSET < PAGE_REGION_START && PAGE_REGION_START < PAGE_REGION_END);
    assert!(PAGE_REGION_START.is_multiple_of(LARGE_PAGE_SIZE) && PAGE_REGION_END.is_multiple_of(LARGE_PAGE_SIZE));
    assert!(BOOT_DIRECT_MAP_SIZE <= DIRECT_MAP_SIZE && LOW_MEMORY_SIZE <= BOOT_DIRECT_MAP_SIZE);
};

#[cfg(test)]
mod tests {
    use super::*;
    use memory_structs::VirtualAddress;

    #[test]
    fn region_boundaries_are_canonical() {
        let boundaries = [
            PHYSICAL_MEMORY_OFFSET,
            PHYSICAL_MEMORY_OFFSET + DIRECT_MAP_SIZE,
            HEAP_START,
            HEAP_START + HEAP_MAX_SIZE,
            KERNEL_OFFSET,
            PAGE_REGION_START,
            PAGE_REGION_END,
        ];
        for address in boundaries {
            assert!(VirtualAddress::try_new(address).is_ok(), "{address:#x} is not canonical");
        }
    }
}
