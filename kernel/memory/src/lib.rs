//! The early memory system: frames, pages, the kernel's own page tables (W^X), `MappedPages`, and the heap.
//!
//! # Purpose
//! nano_core calls [`init`] once, before any cell is loaded, to replace the boot page tables with tables that the
//! kernel owns: a direct map of physical memory, the kernel image remapped with per-section permissions, and
//! nothing in the lower half. Afterwards every piece of memory is an owned value: [`AllocatedFrames`] and
//! [`AllocatedPages`] free themselves on drop, and [`MappedPages`] unmaps itself (then frees its pages and frames)
//! on drop, so unwinding a failed task releases everything it held. The address-space map is in [`layout`].
//!
//! # Key types and functions
//! - [`init`] with [`KernelImageBounds`] (from linker symbols) returning [`MemoryInfo`] or [`MemoryInitError`].
//! - [`AllocatedFrames`] ([`allocate_frames`], [`allocate_frames_at`], ...) over a fixed-capacity
//!   `range_allocator::RangeAllocator` (no heap needed).
//! - [`AllocatedPages`] ([`allocate_pages`], ...) over the page-allocator region in the top 2 GiB.
//! - [`MappedPages`] ([`map_new`], [`map_allocated`], [`map_device_memory`]) with typed, checked access
//!   (`as_type`, `as_slice`, ... for [`PlainData`] types), [`Permissions`] that cannot express W+X, `remap`, and
//!   `write_through_direct_map` for patching finalised cells.
//! - [`IdentityMapping`] ([`identity_map_low_frames`]): a temporary identity mapping of frames below 1 MiB, the only
//!   lower-half mapping after `init` (the real-mode trampoline that starts other CPUs needs it while it enables
//!   paging); removed on drop.
//! - TLB shootdown: [`register_tlb_shootdown`] with a [`ShootdownTransport`] (the `smp` cell's IPI),
//!   [`join_tlb_shootdown`] / [`leave_tlb_shootdown`] per CPU, [`service_tlb_shootdown`] (the IPI handler and
//!   polling loops), [`shootdown_stats`]; errors [`ShootdownError`] inside [`MapError`] / [`RemapError`].
//! - The `#[global_allocator]` (size-class free lists in front of a first-fit heap; see `heap`), [`module_bytes`], [`stats`], and [`self_test`]
//!   for the QEMU test run.
//!
//! # Control flow of `init`
//! 1. Validate the kernel image bounds.
//! 2. Fill the frame allocator: `Available` memory-map areas minus page 0, the kernel image, the boot information
//!    and every module (never assume low memory is free: under OVMF, GRUB puts boot data at 0x5000-0x7fff).
//! 3. Compute the direct map: RAM and ACPI areas, the low 1 MiB, the image, the boot information, the modules.
//! 4. Check that the stack, GDT and IDT lie in memory that stays mapped.
//! 5. Build the new PML4 and switch to it (EFER.NXE, CR0.WP, CR3): the boot identity map is gone.
//! 6. Fill the page allocator with the page region.
//! 7. Map the initial heap (32 MiB) and initialise the global allocator.
//!
//! # Locks (see each static for what it protects)
//! `paging::KERNEL_PAGE_TABLE` -> `frames::FRAME_ALLOCATOR` is the only nesting; `pages::PAGE_ALLOCATOR` and the
//! heap lock are never held while taking another. All are taken with interrupts disabled. None is held during a
//! TLB shootdown round (whose own slot is not a lock anyone waits on without servicing requests).
//!
//! # TLB shootdown
//! Every unmap and every permission change changes the entries under the page-table lock, releases it, and only
//! then runs a shootdown round that every other participating CPU acknowledges (Intel SDM Vol. 3A 4.10.5):
//! `remap`, `IdentityMapping` drop and the rollback of a failed mapping run one round for their whole range (a
//! full flush above [`FULL_FLUSH_THRESHOLD`] pages) before they return; a dropped `MappedPages` is flushed on its
//! own CPU at once and its pages and frames are freed after the next round, which one batch of 16 to 64 drops
//! shares (`deferred`; an allocation failure and [`stats`] run it early). The `smp` cell supplies the IPI through
//! [`register_tlb_shootdown`]; the protocol, its ordering and its deadlock rules are documented in the `shootdown`
//! module. A round that times out leaks its pages and frames instead of reusing them.
//!
//! # Limits
//! Page-table frames are never reclaimed. The heap does not grow yet.
//!
//! On the host (`cargo test`), only the pure parts compile: [`layout`], the planning logic, the allocators'
//! bookkeeping and the access checks; everything that touches page tables needs `target_os = "none"`.
#![cfg_attr(not(test), no_std)]

#[cfg_attr(
    not(target_os = "none"),
    allow(dead_code, reason = "used by the kernel-only modules; the host build only tests it")
)]
mod access;
#[cfg_attr(
    not(target_os = "none"),
    allow(dead_code, reason = "used by the kernel-only modules; the host build only tests it")
)]
mod deferred;
mod errors;
mod frames;
pub mod layout;
mod pages;
#[cfg_attr(
    not(target_os = "none"),
    allow(dead_code, reason = "used by the kernel-only modules; the host build only tests it")
)]
mod plan;
#[cfg_attr(
    not(target_os = "none"),
    allow(dead_code, reason = "used by the kernel-only modules; the host build only tests it")
)]
mod shootdown;
mod sync;

#[cfg(target_os = "none")]
mod direct_map;
#[cfg(target_os = "none")]
mod heap;
#[cfg(target_os = "none")]
mod heap_cpu;
#[cfg_attr(
    not(target_os = "none"),
    allow(dead_code, reason = "used by the kernel-only heap module; the host build only tests it")
)]
mod heap_state;
#[cfg(target_os = "none")]
mod identity;
#[cfg(target_os = "none")]
mod init;
#[cfg(target_os = "none")]
mod mapped_pages;
#[cfg(target_os = "none")]
mod paging;
#[cfg(target_os = "none")]
mod self_test;

pub use access::{Permissions, PlainData};
pub use errors::{AccessError, MapError, MemoryInitError, RemapError};
pub use frames::{
    AllocatedFrames, allocate_frames, allocate_frames_aligned, allocate_frames_at, allocate_frames_below,
    frame_allocator_is_locked, free_frame_count, leaked_frame_count, with_frame_allocator_lock_held,
};
#[cfg(target_os = "none")]
pub use heap::{
    allocate as heap_allocate, deallocate as heap_deallocate, heap_is_locked, release_heap_if_held_within,
    with_heap_lock_held, with_heap_pinned,
};
#[cfg(target_os = "none")]
pub use heap_cpu::{
    CPU_HEAP_OFFSET, CpuHeap, STALE_PIN_DEFERRALS, abandon_pin_on_this_cpu, defer_preemption_if_pinned,
    enable_cpu_heap, heap_pinned_on_this_cpu, leak_heap_pin_for_test, leaked_heap_pins_released,
    point_gs_at_shared_record, set_deferred_preemption_hook,
};
#[cfg(target_os = "none")]
pub use identity::{IdentityMapping, identity_map_low_frames};
#[cfg(target_os = "none")]
pub use init::{init, module_bytes, stats};
#[cfg(target_os = "none")]
pub use mapped_pages::{MappedPages, map_allocated, map_device_memory, map_new};
pub use pages::{AllocatedPages, allocate_pages, allocate_pages_aligned, allocate_pages_at, free_page_count};
pub use plan::KernelImageBounds;
pub use range_allocator::AllocateError;
#[cfg(target_os = "none")]
pub use self_test::{SelfTestFailure, self_test};
pub use shootdown::{
    ACKNOWLEDGE_TIMEOUT_NS, FULL_FLUSH_THRESHOLD, SHOOTDOWN_MAX_CPUS, ShootdownError, ShootdownStats,
    ShootdownTransport, join_tlb_shootdown, leave_tlb_shootdown, register_tlb_shootdown, service_tlb_shootdown,
    shootdown_stats,
};
pub use sync::release_memory_locks_held_within;

use memory_structs::VirtualAddress;

/// What [`init`] set up, for the boot log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryInfo {
    /// RAM handed to the frame allocator, in bytes (before page tables and heap were taken from it).
    pub usable_bytes: usize,
    /// Free RAM after `init`, in bytes.
    pub free_bytes: usize,
    /// Physical memory covered by the direct map, in bytes.
    pub direct_mapped_bytes: usize,
    /// 2 MiB pages used by the direct map.
    pub direct_map_large_pages: usize,
    /// 4 KiB pages used by the direct map.
    pub direct_map_small_pages: usize,
    /// Frames used for the new page tables.
    pub page_table_frames: usize,
    /// Size of the kernel's `.text`, in bytes (mapped RX).
    pub kernel_text_bytes: usize,
    /// Size of the kernel's `.rodata` (with `.eh_frame`, `.gcc_except_table`), in bytes (mapped R, NX).
    pub kernel_rodata_bytes: usize,
    /// Size of the kernel's `.data` and `.bss`, in bytes (mapped RW, NX).
    pub kernel_data_bytes: usize,
    /// First byte of the heap.
    pub heap_start: VirtualAddress,
    /// Bytes of heap mapped.
    pub heap_size_in_bytes: usize,
    /// First byte of the page-allocator region.
    pub page_region_start: VirtualAddress,
    /// One past the last byte of the page-allocator region.
    pub page_region_end: VirtualAddress,
}

/// Live counters, from [`stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStats {
    /// Free 4 KiB frames.
    pub free_frames: usize,
    /// Free 4 KiB pages in the page-allocator region.
    pub free_pages: usize,
    /// Heap bytes in use (including allocator alignment overhead).
    pub heap_used_bytes: usize,
    /// Heap bytes free.
    pub heap_free_bytes: usize,
    /// Frames lost because the free set was full when they were freed (normally 0).
    pub leaked_frames: usize,
    /// Frames taken for page tables since boot; never freed (empty tables are kept), so a leak check compares
    /// `free_frames + page_table_frames` before and after.
    pub page_table_frames: usize,
}

impl MemoryStats {
    /// Free frames plus frames that went into page tables: constant across any sequence of operations that
    /// frees everything it allocated (the quantity leak checks compare).
    pub fn free_frames_with_page_tables(&self) -> usize {
        self.free_frames + self.page_table_frames
    }
}
