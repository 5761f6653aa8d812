//! The kernel heap: the one `#[global_allocator]`, per-CPU size-class lists in front of central size-class lists
//! in front of a first-fit heap.
//!
//! # Design
//! - Requests of at most 1 KiB with alignment at most 16 (nearly all kernel allocations) have a 16-byte size
//!   class. Each CPU keeps one free list per class (`heap_cpu::CpuLists`, in its GS record): the fast path
//!   ([`allocate`], [`deallocate`]) pins the CPU's lists (two GS-relative accesses, see `heap_cpu`), pops or
//!   pushes, and unpins: no lock, no atomic read-modify-write, interrupts left as they are. It is `#[inline]`,
//!   so `app_io::HeapBlock` (and any cell that calls [`allocate`]) carries it inline; the global allocator's
//!   `__rust_alloc` reaches it through one call.
//! - A CPU list that is empty takes up to `REFILL_BYTES` of blocks of its class from the central list
//!   (`size_classes::FreeLists`, under the heap lock), or one block from the backing heap. A free that would take
//!   the CPU's lists over `CPU_CACHE_LIMIT` (64 KiB) first moves its largest classes to the central lists until
//!   half is left. So a CPU holds at most 64 KiB that other CPUs cannot use.
//! - The shared path (the central lists and the backing heap, under the lock) serves larger or more aligned
//!   requests, and every request made while the CPU's lists are pinned by the code it interrupted (an interrupt
//!   handler that allocates) or do not exist yet (early boot, an application processor before `cpu::init_current`).
//! - Larger or more aligned requests go to the backing heap, a `linked_list_allocator::Heap` (first fit with
//!   coalescing) over the 32 MiB heap region.
//! - If the backing heap cannot serve a request that free and cached bytes together could hold, every central
//!   class block is returned to it (where neighbours coalesce again) and the request is tried once more; if that
//!   fails too, the calling CPU's own lists go back as well and it is tried again. Blocks in another CPU's lists
//!   (at most 64 KiB per CPU) are out of reach.
//! - The logic of the shared layers is `crate::heap_state::HeapState`, host-tested; this module adds the lock,
//!   the region, the per-CPU front and the `GlobalAlloc` interface.
//! - `realloc` within one class keeps the block.
//!
//! # The lock
//! One [`OwnedSpinLock`] protects the central lists and the backing heap. It is taken with interrupts disabled,
//! so an interrupt handler that allocates cannot deadlock against the code it interrupted, and a holder is never
//! preempted; it is never held while taking another lock. A block allocated on one CPU and freed on another joins
//! the freeing CPU's list (the lists hold any block of their class). Its holder token lets the fault path release
//! it for a task that faulted inside the allocator ([`release_heap_if_held_within`]).
//!
//! Interrupt handlers may allocate (a wake-up may grow a runqueue): with interrupts off while the lock is held, an
//! interrupt never arrives on a CPU that holds it, so a handler only ever waits for another CPU's holder; and a
//! handler never touches the per-CPU lists the interrupted code has pinned. NMIs cannot be masked, but the NMI
//! path (the exception report) takes no lock and allocates nothing. A CPU spinning for the lock services
//! TLB-shootdown requests, so a holder on another CPU that waits for a shootdown round (the heap never does, but a
//! caller's caller might) is not deadlocked by it.
//!
//! Interrupts are re-enabled by reloading the saved RFLAGS (`popfq`) rather than with `sti`, which under QEMU TCG
//! leaves the translated code twice (once for the instruction, once after its one-instruction interrupt shadow).
//! Measured costs: README "Benchmarks".
//!
//! # After a fault inside the allocator
//! The central class lists are built to survive a fault at any instruction: each pop and push commits with one
//! store (see `size_classes`), so the lists stay well formed and at worst a count is off by one or a block leaks;
//! [`release_heap_if_held_within`] runs the lists' repair pass after releasing the lock, which recounts every
//! list and cuts any implausible link. The per-CPU lists commit the same way; the fault path releases a pin held
//! by the faulting code and recounts that CPU's lists (`heap_cpu::abandon_pin_on_this_cpu`). A link overwritten by
//! a stray write is caught before it is followed (the list is cut there). The backing heap has no such guarantee:
//! a fault in the middle of its first-fit walk or coalescing may leave its free list inconsistent (the fault path
//! reports that risk).
//!
//! # Accounting ([`usage`])
//! A block in a class list (a CPU's or the central one) is free: `used` is the backing heap's used bytes minus
//! the cached bytes of both, so it counts live class blocks at their class size and is the same whenever the same
//! blocks are live (the 1,000-spawn baseline test compares it exactly). Blocks cut off a damaged list stay used
//! (they are lost).

use crate::access::Permissions;
use crate::errors::MapError;
use crate::frames::{AllocatedFrames, allocate_frames};
use crate::heap_cpu::{self, CpuHeap, CpuLists};
use crate::heap_state::HeapState;
use crate::layout::{HEAP_INITIAL_SIZE, HEAP_START};
use crate::paging;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use memory_structs::PAGE_SIZE;
use owned_spin::OwnedSpinLock;
use size_classes::SizeClass;

/// The kernel's global allocator (see the module docs).
pub struct KernelHeap {
    /// The class lists and the backing heap. The lock protects every allocation and free; it is taken with
    /// interrupts disabled and never held while taking another lock. Its holder token is an address on the
    /// holder's stack, so the fault path can release it for a task that faulted holding it
    /// ([`release_heap_if_held_within`]).
    state: OwnedSpinLock<HeapState>,
}

impl KernelHeap {
    const fn new() -> Self {
        Self { state: OwnedSpinLock::new(HeapState::new()) }
    }
}

/// Runs `f` with the heap locked, interrupts disabled (see `crate::sync::with_lock`, which this mirrors for the
/// owned lock: spinning services TLB-shootdown requests).
///
/// Written out rather than through `x86_64::instructions::interrupts::without_interrupts`: that helper's closure
/// stays an out-of-line call (one per interrupt state), while this is inlined whole into `alloc` and `dealloc`, so
/// `__rust_alloc` reaches the class lists without another call (the miss and contention paths stay out of line).
#[inline(always)]
fn with_heap<R>(f: impl FnOnce(&mut HeapState) -> R) -> R {
    // The holder token: an address in this frame, i.e. on the holder's stack.
    let anchor = 0u8;
    let token = ptr::addr_of!(anchor) as usize;
    let saved = InterruptState::disable();
    let result = match KERNEL_HEAP.state.try_lock_as(token) {
        Some(mut guard) => f(&mut guard),
        None => lock_contended(token, f),
    };
    saved.restore();
    result
}

/// The slow path of [`with_heap`]: spins for the lock, servicing TLB-shootdown requests meanwhile. Runs with
/// interrupts disabled.
#[cold]
#[inline(never)]
fn lock_contended<R>(token: usize, f: impl FnOnce(&mut HeapState) -> R) -> R {
    loop {
        crate::shootdown::service_tlb_shootdown();
        core::hint::spin_loop();
        if let Some(mut guard) = KERNEL_HEAP.state.try_lock_as(token) {
            return f(&mut guard);
        }
    }
}

/// RFLAGS as they were before [`Self::disable`]; [`Self::restore`] puts the interrupt flag back.
#[must_use]
struct InterruptState {
    /// RFLAGS at [`Self::disable`].
    saved: u64,
}

impl InterruptState {
    /// Disables interrupts on this CPU and returns the previous state.
    #[inline(always)]
    fn disable() -> Self {
        let saved = x86_64::registers::rflags::read_raw();
        if saved & RFLAGS_INTERRUPT != 0 {
            x86_64::instructions::interrupts::disable();
        }
        Self { saved }
    }

    /// Enables interrupts again if they were enabled before [`Self::disable`], by loading the saved RFLAGS
    /// (`popfq`) rather than with `sti`: under QEMU TCG, `sti` ends the translation block twice (it and the one
    /// instruction of its interrupt shadow each return to QEMU's main loop), `popfq` once. The asm block is not
    /// `nomem`, so the compiler keeps every memory access of the critical section (the lock's release included)
    /// before it.
    #[inline(always)]
    fn restore(self) {
        if self.saved & RFLAGS_INTERRUPT != 0 {
            // These RFLAGS differ from the current ones only in IF (meant to come back) and the arithmetic flags,
            // which the asm declares clobbered (no `preserves_flags`); DF and AC are clear in Rust code at both points.
            // SAFETY: this CPU's RFLAGS from `disable`, in the same function and privilege level; see above.
            unsafe { core::arch::asm!("push {saved}", "popfq", saved = in(reg) self.saved) };
        }
    }
}

/// RFLAGS.IF, the interrupt-enable flag.
const RFLAGS_INTERRUPT: u64 = 1 << 9;

/// Releases the heap lock if its holder's token lies in `stack` (a task that faulted holding it: its guard would
/// stay taken forever and every later allocation would spin), then repairs the class lists (see the module docs).
/// Returns whether it released the lock.
///
/// # Safety
/// `stack` must be the stack of a task that will not continue its critical section (it faulted and is being
/// unwound or ended). A fault inside the backing first-fit heap may have left its free list half-updated; the
/// caller accepts that risk (and should say so in its report).
pub unsafe fn release_heap_if_held_within(stack: core::ops::Range<usize>) -> bool {
    // SAFETY: the caller guarantees the holder is dead or unwinding and accepts the backing heap's state; the
    // class lists are repaired below.
    let released = unsafe { KERNEL_HEAP.state.force_release_if(|token| stack.contains(&token)) }.is_some();
    if released {
        with_heap(|state| state.repair());
    }
    released
}

/// Whether the heap lock is taken right now (a snapshot).
pub fn heap_is_locked() -> bool {
    KERNEL_HEAP.state.holder().is_some()
}

/// Calls `f` while holding the heap lock (interrupts disabled), for fault-path tests: `f` must not allocate
/// (it would spin on the lock forever), and may fault, which the fault path must survive.
pub fn with_heap_lock_held(f: fn()) {
    with_heap(|_state| f());
}

/// Allocates a block for `layout` from the kernel heap: the global allocator's `alloc`, callable directly (the
/// `HeapBlock` type of `app_io` inlines it, as C code inlines nothing but calls `malloc`). Returns null if the heap
/// has no room.
///
/// Fast path (a class request on a CPU whose lists are free): pin this CPU's lists (`heap_cpu`), pop the class's
/// list, unpin; no lock, interrupts untouched. A miss refills from the central lists under the lock.
#[inline(always)]
pub fn allocate(layout: Layout) -> *mut u8 {
    if let Some(class) = SizeClass::of(layout)
        && let Some(cpu) = heap_cpu::try_pin()
    {
        // SAFETY: pinned on this CPU's record until `unpin` below, and the reference is not used after it.
        let lists = unsafe { cpu.lists() };
        let block = match lists.pop(class) {
            Some(block) => {
                cpu.set_cached_bytes(cpu.cached_bytes().wrapping_sub(class.block_size()));
                block.as_ptr()
            }
            None => refill_and_allocate(cpu, class),
        };
        heap_cpu::unpin(cpu);
        return block;
    }
    allocate_shared(layout)
}

/// Frees `block`, allocated by [`allocate`] (or the global allocator) with `layout`; null does nothing.
///
/// # Safety
/// `block` must be null or come from [`allocate`] / the global allocator with this `layout`, and must not be
/// used or freed again.
#[inline(always)]
pub unsafe fn deallocate(block: *mut u8, layout: Layout) {
    let Some(block) = NonNull::new(block) else { return };
    if let Some(class) = SizeClass::of(layout)
        && let Some(cpu) = heap_cpu::try_pin()
    {
        let cached = cpu.cached_bytes().wrapping_add(class.block_size());
        if cached <= heap_cpu::CPU_CACHE_LIMIT {
            // SAFETY: pinned on this CPU's record until `unpin` below; the block is a free block of `class`
            // (the class depends on the layout alone, and the caller hands it back).
            unsafe { cpu.lists().push(class, block) };
            cpu.set_cached_bytes(cached);
        } else {
            // SAFETY: as above.
            unsafe { flush_and_free(cpu, class, block) };
        }
        heap_cpu::unpin(cpu);
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { deallocate_shared(block, layout) }
}

/// A miss in this CPU's list of `class` (pinned): one block for the caller and up to `REFILL_BYTES` more from
/// the central list, or a new block from the backing heap; if the heap is out of room, this CPU's cached blocks
/// go back first and the request is tried again.
#[cold]
#[inline(never)]
fn refill_and_allocate(cpu: &CpuHeap, class: SizeClass) -> *mut u8 {
    // SAFETY: the caller holds the pin on `cpu`, this CPU's record.
    let lists = unsafe { cpu.lists() };
    with_heap(|state| {
        let mut cached = if lists.take_damaged() { lists.repair() } else { cpu.cached_bytes() };
        let mut block = state.allocate(class.block_layout());
        if block.is_null() && cached != 0 {
            give_back_all(lists, state);
            cached = 0;
            block = state.allocate(class.block_layout());
        }
        if !block.is_null() {
            let room = heap_cpu::CPU_CACHE_LIMIT.saturating_sub(cached).min(heap_cpu::REFILL_BYTES);
            let mut taken = 0;
            while taken + class.block_size() <= room {
                let Some(free) = state.take_class_block(class) else { break };
                // SAFETY: a free block of `class` that the central list gave up.
                unsafe { lists.push(class, free) };
                taken += class.block_size();
            }
            cached += taken;
        }
        // Inside the lock, so that `usage` (which sums the CPUs' counts under it) sees the move whole.
        cpu.set_cached_bytes(cached);
        block
    })
}

/// Moves every block of this CPU's `lists` to the central lists (pinned, under the heap lock).
fn give_back_all(lists: &mut CpuLists, state: &mut HeapState) {
    for class in SizeClass::all() {
        // SAFETY: every block in this CPU's lists is a free class block of this heap.
        lists.drain_class(class, |free| unsafe { state.give_class_block(class, free) });
    }
}

/// A free that would take this CPU's lists over `CPU_CACHE_LIMIT` (pinned): the largest classes go to the central
/// lists until at most half the limit is left, then `block` joins this CPU's list.
///
/// # Safety
/// As for [`deallocate`], with `block` of `class`; the caller holds the pin on `cpu`, this CPU's record.
#[cold]
#[inline(never)]
unsafe fn flush_and_free(cpu: &CpuHeap, class: SizeClass, block: NonNull<u8>) {
    // SAFETY: the caller holds the pin.
    let lists = unsafe { cpu.lists() };
    with_heap(|state| {
        let mut cached = if lists.take_damaged() { lists.repair() } else { cpu.cached_bytes() };
        for each in SizeClass::all().rev() {
            while cached > heap_cpu::CPU_CACHE_LIMIT / 2 {
                let Some(free) = lists.pop(each) else { break };
                // SAFETY: a free block of `each` from this CPU's list.
                unsafe { state.give_class_block(each, free) };
                cached -= each.block_size();
            }
        }
        // SAFETY: the caller's contract for `block`.
        unsafe { lists.push(class, block) };
        cpu.set_cached_bytes(cached + class.block_size());
    });
}

/// The shared path: requests without a class, and any request while this CPU's lists are busy (an interrupt
/// handler that interrupted a pinned operation) or not set up yet. Under the heap lock, interrupts disabled.
#[inline(never)]
fn allocate_shared(layout: Layout) -> *mut u8 {
    let block = with_heap(|state| state.allocate(layout));
    if block.is_null() { allocate_after_draining_this_cpu(layout) } else { block }
}

/// Out of room on the shared path: if this CPU's lists are free and hold blocks, they go back to the backing heap
/// (through the central lists, which the retry drains) and the request is tried once more. Another CPU's lists
/// (at most `CPU_CACHE_LIMIT` bytes each) stay out of reach.
#[cold]
#[inline(never)]
fn allocate_after_draining_this_cpu(layout: Layout) -> *mut u8 {
    let Some(cpu) = heap_cpu::try_pin() else { return ptr::null_mut() };
    // SAFETY: pinned on this CPU's record until `unpin` below.
    let lists = unsafe { cpu.lists() };
    let block = with_heap(|state| {
        if cpu.cached_bytes() == 0 && !lists.take_damaged() {
            return ptr::null_mut();
        }
        give_back_all(lists, state);
        cpu.set_cached_bytes(0);
        state.allocate(layout)
    });
    heap_cpu::unpin(cpu);
    block
}

/// The shared path of [`deallocate`].
///
/// # Safety
/// As for [`deallocate`].
#[inline(never)]
unsafe fn deallocate_shared(block: NonNull<u8>, layout: Layout) {
    // SAFETY: the caller's contract.
    with_heap(|state| unsafe { state.deallocate(block, layout) });
}

/// The heap region, `(start, end)` addresses (end exclusive): every class block lies in it.
#[inline(always)]
pub(crate) const fn region() -> (usize, usize) {
    (HEAP_START, HEAP_START + HEAP_INITIAL_SIZE)
}

/// Runs `f` with this CPU's heap lists pinned (as inside an allocation), for tests: a tick meanwhile must not
/// switch tasks, and a fault in `f` must leave the CPU usable. Allocations in `f` take the shared path. Returns
/// `false` (without calling `f`) if the lists were not free (no per-CPU lists on this CPU yet).
pub fn with_heap_pinned(f: impl FnOnce()) -> bool {
    let Some(cpu) = heap_cpu::try_pin() else { return false };
    f();
    heap_cpu::unpin(cpu);
    true
}

// SAFETY: class blocks are at least `layout.size()` bytes and 16-aligned (classes serve alignments up to 16), and
// the backing heap's blocks fit their layouts; all lie in the heap region, mapped RW for the kernel's lifetime. A
// block is in at most one place at a time (a CPU's list, a central class list, the backing heap's free list, or
// its owner), so none is handed out twice; `dealloc` gets back exactly the pointer and layout that `alloc`
// produced, as the GlobalAlloc contract requires of callers, and the class depends only on the layout.
unsafe impl GlobalAlloc for KernelHeap {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        allocate(layout)
    }

    #[inline]
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: the GlobalAlloc contract makes the caller pass a block allocated by `alloc` with `layout`.
        unsafe { deallocate(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the GlobalAlloc contract guarantees that `new_size`, rounded up to `layout.align()`, does not
        // overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if let Some(class) = SizeClass::of(layout)
            && SizeClass::of(new_layout) == Some(class)
        {
            // The block already has the class's full size, and a later free with `new_layout` finds the same class.
            return pointer;
        }
        // SAFETY: `new_layout` is valid (above); the caller's contract for `pointer` and `layout` carries over.
        let new_pointer = unsafe { self.alloc(new_layout) };
        if !new_pointer.is_null() {
            // SAFETY: both blocks are live, distinct, and at least `min(old, new)` bytes long.
            unsafe { ptr::copy_nonoverlapping(pointer, new_pointer, layout.size().min(new_size)) };
            // SAFETY: `pointer` was allocated with `layout` and is no longer used.
            unsafe { self.dealloc(pointer, layout) };
        }
        new_pointer
    }
}

/// The global allocator. Allocations before `memory::init` fail (the heap is empty), which ends in
/// `alloc::alloc::handle_alloc_error`.
#[global_allocator]
static KERNEL_HEAP: KernelHeap = KernelHeap::new();

/// Maps `HEAP_INITIAL_SIZE` bytes at `HEAP_START` (RW, NX) and hands them to the allocator. The frames need not be
/// contiguous: they are taken in the largest runs available. They belong to the heap forever.
pub(crate) fn init() -> Result<(), MapError> {
    heap_cpu::point_gs_at_shared_record();
    let pages = HEAP_INITIAL_SIZE / PAGE_SIZE;
    let flags = paging::leaf_flags(Permissions::ReadWrite, false);
    let mut mapped = 0;
    while mapped < pages {
        let run = take_run(pages - mapped)?;
        let count = run.count();
        let physical = run.start_address().value();
        // SAFETY: the heap region belongs to this module alone (see layout), and the frames were just allocated;
        // after mapping, they are only reachable through the heap allocator.
        unsafe { paging::map_range(HEAP_START + mapped * PAGE_SIZE, physical, count, flags) }?;
        run.keep_forever();
        mapped += count;
    }
    // SAFETY: `HEAP_START .. + HEAP_INITIAL_SIZE` is now mapped RW, unused, and owned by the heap for the kernel's
    // lifetime; `init` runs once (guarded by `memory::init`).
    with_heap(|state| unsafe { state.init(HEAP_START as *mut u8, HEAP_INITIAL_SIZE) });
    Ok(())
}

/// Allocates up to `wanted` contiguous frames: all of them if possible, else halving the request.
fn take_run(wanted: usize) -> Result<AllocatedFrames, MapError> {
    let mut count = wanted;
    loop {
        match allocate_frames(count) {
            Ok(frames) => return Ok(frames),
            Err(error) if count == 1 => return Err(MapError::Frames(error)),
            Err(_) => count = count.div_ceil(2),
        }
    }
}

/// `(used, free)` bytes of the heap: blocks in the class lists count as free (see the module docs).
/// Every CPU's lists count as free too; the sum is taken under the heap lock, so a refill or flush (which moves
/// blocks between a CPU's and the central lists under it) is seen whole.
pub(crate) fn usage() -> (usize, usize) {
    with_heap(|state| {
        let (used, free) = state.usage();
        let cached = heap_cpu::cached_bytes_of_all_cpus();
        (used.saturating_sub(cached), free + cached)
    })
}
