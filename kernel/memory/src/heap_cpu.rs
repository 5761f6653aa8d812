//! The heap's per-CPU front: each CPU's own size-class free lists ([`CpuHeap`]), reached through the GS base, and
//! the *pin* that makes using them safe without disabling interrupts or taking a lock.
//!
//! # Where a CPU's lists are
//! The record that IA32_GS_BASE points to (the `cpu` cell's `PerCpu`) holds its own address at offset 0 and a
//! [`CpuHeap`] at offset [`CPU_HEAP_OFFSET`]. Until a CPU's record is set up (early boot, and an application
//! processor's first instructions) its GS base points to [`SHARED_RECORD`], whose `CpuHeap` is permanently
//! [`BUSY_NO_LISTS`]: every allocation there takes the shared, locked path ([`point_gs_at_shared_record`]).
//!
//! # The pin (a per-CPU preemption-disable for the heap)
//! `busy` is 0 when this CPU's lists are free to use. The fast path reads it with one GS-relative load and, if 0,
//! sets it to [`BUSY_PINNED`] with one GS-relative store; from then on the code runs on this CPU until it stores 0
//! again, because a timer tick or reschedule IPI that arrives meanwhile does not switch tasks: the scheduler asks
//! [`defer_preemption_if_pinned`] first, which records the switch in `deferred`, and the fast path makes it at its
//! end ([`unpin`] calls the scheduler's hook). The check and the store are two instructions, and that is sound:
//! - an interrupt between them runs its handler to completion before the store (handlers nest), and a handler
//!   that allocated left `busy` at 0 again;
//! - a task switch between them (the task was preempted before it pinned) resumes the task on a CPU whose
//!   `busy` is 0 as well: a CPU switches tasks only when nothing on it is pinned.
//!
//! An interrupt handler that allocates while the code it interrupted holds the pin sees `busy != 0` and takes the
//! shared path (the central lists under the heap lock, interrupts disabled), so the pinned code's lists are never
//! touched under it.
//!
//! # A fault while pinned
//! The fault path abandons the faulting context and everything it interrupted on this CPU; it calls
//! [`abandon_pin_on_this_cpu`], which recounts this CPU's lists (each pop and push commits with one store, see
//! `size_classes`) and clears the pin, so the CPU schedules and uses its lists again.

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use size_classes::{CLASS_ALIGN, CLASS_COUNT, SizeClass};

/// Byte offset of the [`CpuHeap`] in the record that GS base points to (offset 0 holds the record's address).
pub const CPU_HEAP_OFFSET: usize = 16;
/// `CpuHeap::busy`: this CPU's lists are free.
const FREE: u32 = 0;
/// `CpuHeap::busy`: the code running on this CPU is using its lists (pinned to the CPU).
const BUSY_PINNED: u32 = 1;
/// `CpuHeap::busy`: this record has no lists in use (the shared record, or a CPU before [`enable_cpu_heap`]).
const BUSY_NO_LISTS: u32 = 2;
/// GS-relative offset of `busy`.
const BUSY_GS_OFFSET: usize = CPU_HEAP_OFFSET + core::mem::offset_of!(CpuHeap, busy);
/// GS-relative offset of `deferred`.
const DEFERRED_GS_OFFSET: usize = CPU_HEAP_OFFSET + core::mem::offset_of!(CpuHeap, deferred);

/// Bytes a CPU's lists may hold, at most; a free that would pass it first moves half of them to the central lists.
/// So a CPU keeps at most this much out of reach of the other CPUs' out-of-memory fallback.
pub(crate) const CPU_CACHE_LIMIT: usize = 64 * 1024;
/// Bytes of one class that a refill takes from the central list at once (at least one block).
pub(crate) const REFILL_BYTES: usize = 2048;

/// One CPU's heap front (see the module docs). `#[repr(C)]`: the fast path reaches `busy` and `deferred` at fixed
/// GS-relative offsets.
#[repr(C)]
pub struct CpuHeap {
    /// [`FREE`], [`BUSY_PINNED`] or [`BUSY_NO_LISTS`]; written only by code running on this CPU.
    busy: AtomicU32,
    /// How many timer ticks or reschedule IPIs wanted to switch tasks while the lists were pinned (0: none); the
    /// pin's end makes the switch and clears it.
    deferred: AtomicU32,
    /// Bytes in `lists`. Written only by this CPU while pinned (a load and a store, not a read-modify-write);
    /// read by [`cached_bytes_of_all_cpus`] from any CPU.
    cached_bytes: AtomicUsize,
    /// The free lists, used only while pinned on this CPU.
    lists: UnsafeCell<CpuLists>,
}

// SAFETY: `lists` is used only by the CPU that owns the record, while pinned (see the module docs); the other
// fields are atomics.
unsafe impl Sync for CpuHeap {}

impl CpuHeap {
    /// A record without lists in use ([`BUSY_NO_LISTS`]); [`enable_cpu_heap`] turns it on.
    pub const fn new() -> Self {
        Self {
            busy: AtomicU32::new(BUSY_NO_LISTS),
            deferred: AtomicU32::new(0),
            cached_bytes: AtomicUsize::new(0),
            lists: UnsafeCell::new(CpuLists { heads: [ptr::null_mut(); CLASS_COUNT], damaged: false }),
        }
    }

    /// The lists.
    ///
    /// # Safety
    /// The caller holds this CPU's pin (from [`try_pin`] and not yet [`unpin`]ned), and this is the pinned CPU's
    /// record; the reference must not outlive the pin.
    #[inline(always)]
    #[allow(clippy::mut_from_ref, reason = "the pin is the exclusive access, see the safety section")]
    pub(crate) unsafe fn lists(&self) -> &mut CpuLists {
        // SAFETY: exclusive while pinned (the caller's contract): no handler on this CPU touches the lists while
        // `busy` is set, no other CPU ever does.
        unsafe { &mut *self.lists.get() }
    }

    /// Bytes in this CPU's lists (a snapshot when read from another CPU).
    #[inline(always)]
    pub(crate) fn cached_bytes(&self) -> usize {
        self.cached_bytes.load(Ordering::Relaxed)
    }

    /// Sets the cached byte count (pinned, on the owning CPU).
    #[inline(always)]
    pub(crate) fn set_cached_bytes(&self, bytes: usize) {
        self.cached_bytes.store(bytes, Ordering::Relaxed);
    }
}

/// A CPU's free lists: one singly linked list per [`SizeClass`] through each free block's first word, heads only
/// (the CPU's byte total is `CpuHeap::cached_bytes`). Lighter than the central `size_classes::FreeLists` (no
/// per-class counts, the heap region's bounds are constants), because every memory access of the fast path
/// counts under TCG. Each pop and push commits with one store to the head, as in `size_classes`, so a fault at
/// any instruction leaves every list well formed ([`Self::repair`] recounts the bytes).
pub(crate) struct CpuLists {
    /// The first free block of each class (null: empty).
    heads: [*mut u8; CLASS_COUNT],
    /// Set when `pop` cut a damaged list: `CpuHeap::cached_bytes` counts lost blocks until the next
    /// [`Self::take_damaged`] (the refill and flush paths) recounts.
    damaged: bool,
}

impl CpuLists {
    /// Takes a free block of `class`, or `None` if its list is empty. A link that is not a plausible block of the
    /// heap region (a damaged free block) cuts the list there: the block is still handed out (it was checked when
    /// it became the head), the rest is lost ([`Self::quarantine`] recounts).
    #[inline(always)]
    pub(crate) fn pop(&mut self, class: SizeClass) -> Option<NonNull<u8>> {
        let index = class.index();
        let head = NonNull::new(self.heads[index])?;
        // SAFETY: `head` is a free block of this class in the heap region (pushed by `push`'s contract, checked
        // plausible when it became the head), so its first word is the list's link.
        let next = unsafe { head.as_ptr().cast::<usize>().read() };
        if !is_plausible(next, class) {
            self.quarantine(class);
            return Some(head);
        }
        // The commit: the block leaves the list with this one store.
        self.heads[index] = next as *mut u8;
        Some(head)
    }

    /// Gives `block` to the list of `class`.
    ///
    /// # Safety
    /// `block` must be a free class block of `class` inside the heap region that the caller owns and never uses
    /// again (until [`Self::pop`] hands it out), and not already in a list.
    #[inline(always)]
    pub(crate) unsafe fn push(&mut self, class: SizeClass, block: NonNull<u8>) {
        let index = class.index();
        // SAFETY: the caller hands over a writable block of at least 16 bytes, 16-aligned.
        unsafe { block.as_ptr().cast::<usize>().write(self.heads[index] as usize) };
        // The link must be in memory before the head points at the block (see the type's docs).
        core::sync::atomic::compiler_fence(Ordering::Release);
        self.heads[index] = block.as_ptr();
    }

    /// Cuts the list of `class` off at its head (called by `pop` after it found a damaged link).
    #[cold]
    fn quarantine(&mut self, class: SizeClass) {
        self.heads[class.index()] = ptr::null_mut();
        self.damaged = true;
    }

    /// Whether a list was cut since the last call (then the caller recounts with [`Self::repair`]).
    pub(crate) fn take_damaged(&mut self) -> bool {
        core::mem::replace(&mut self.damaged, false)
    }

    /// Walks every list, cutting it at the first implausible link or after more blocks than a CPU may cache (a
    /// cycle), and returns the bytes the lists hold. Run after a fault while pinned, and after a quarantine.
    pub(crate) fn repair(&mut self) -> usize {
        self.damaged = false;
        let mut total = 0;
        for class in SizeClass::all() {
            let most = CPU_CACHE_LIMIT / class.block_size() + REFILL_BYTES / class.block_size() + 1;
            let index = class.index();
            let mut length = 0;
            let mut last: *mut u8 = ptr::null_mut();
            let mut cursor = self.heads[index];
            while !cursor.is_null() {
                if !is_plausible(cursor as usize, class) || length == most {
                    match NonNull::new(last) {
                        // SAFETY: `last` is the last plausible block of the list, a free block the list owns.
                        Some(last) => unsafe { last.as_ptr().cast::<usize>().write(0) },
                        None => self.heads[index] = ptr::null_mut(),
                    }
                    break;
                }
                length += 1;
                last = cursor;
                // SAFETY: `cursor` is a plausible free block of this list (see `pop`).
                cursor = unsafe { cursor.cast::<usize>().read() } as *mut u8;
            }
            total += length * class.block_size();
        }
        total
    }

    /// Empties the list of `class`, giving each block to `release`.
    pub(crate) fn drain_class(&mut self, class: SizeClass, mut release: impl FnMut(NonNull<u8>)) {
        while let Some(block) = self.pop(class) {
            release(block);
        }
    }
}

/// Whether `link` may follow a block of `class` in a list: null, or 16-aligned with the whole block inside the
/// heap region. Without short-circuiting, so the fast path takes one branch on it.
#[inline(always)]
fn is_plausible(link: usize, class: SizeClass) -> bool {
    let (start, end) = crate::heap::region();
    let offset = link.wrapping_sub(start);
    (link == 0) | (link.is_multiple_of(CLASS_ALIGN) & (offset <= end - start - class.block_size()))
}

impl Default for CpuHeap {
    fn default() -> Self {
        Self::new()
    }
}

/// The record GS base points to on a CPU that has no record of its own yet: its own address at offset 0, then a
/// [`CpuHeap`] that is always [`BUSY_NO_LISTS`].
#[repr(C)]
pub(crate) struct SharedRecord {
    /// This record's address (offset 0, as in every GS record).
    self_pointer: AtomicUsize,
    /// Padding up to [`CPU_HEAP_OFFSET`].
    _reserved: u64,
    /// Never free: every allocation takes the shared path.
    heap: CpuHeap,
}

const _: () = assert!(core::mem::offset_of!(SharedRecord, heap) == CPU_HEAP_OFFSET);

/// See [`SharedRecord`].
pub(crate) static SHARED_RECORD: SharedRecord =
    SharedRecord { self_pointer: AtomicUsize::new(0), _reserved: 0, heap: CpuHeap::new() };

/// Points this CPU's GS base at [`SHARED_RECORD`], so the heap works on it (through the shared path) before its
/// own record exists. Called by `memory::init` on the bootstrap CPU and by `cpu::init_current` first thing on
/// every CPU. Interrupts should be disabled (nothing else on this CPU may use GS meanwhile).
pub fn point_gs_at_shared_record() {
    let address = &raw const SHARED_RECORD as usize;
    SHARED_RECORD.self_pointer.store(address, Ordering::Relaxed);
    x86_64::registers::model_specific::GsBase::write(x86_64::VirtAddr::new(address as u64));
}

/// The most CPUs whose lists [`cached_bytes_of_all_cpus`] counts.
const MAX_CPUS: usize = crate::SHOOTDOWN_MAX_CPUS;
/// Every enabled CPU's record, by logical CPU index (null: none).
static CPU_HEAPS: [AtomicPtr<CpuHeap>; MAX_CPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// Turns on the per-CPU lists of the calling CPU, logical index `cpu_index`, whose GS base already points at the
/// record that holds `heap` at [`CPU_HEAP_OFFSET`]. Until then the CPU allocates through the shared path.
///
/// # Panics
/// If `cpu_index >= 64`, or if `heap` is not the `CpuHeap` of the record GS base points to.
pub fn enable_cpu_heap(cpu_index: usize, heap: &'static CpuHeap) {
    assert!(cpu_index < MAX_CPUS, "enable_cpu_heap: CPU index {cpu_index} out of range");
    assert_eq!(
        record_address() + CPU_HEAP_OFFSET,
        heap as *const CpuHeap as usize,
        "enable_cpu_heap: GS base does not point at this CpuHeap's record"
    );
    CPU_HEAPS[cpu_index].store((heap as *const CpuHeap).cast_mut(), Ordering::Release);
    heap.busy.store(FREE, Ordering::Release);
}

/// Bytes in every enabled CPU's lists (each a snapshot).
pub(crate) fn cached_bytes_of_all_cpus() -> usize {
    CPU_HEAPS
        .iter()
        .map(|slot| slot.load(Ordering::Acquire))
        .filter(|heap| !heap.is_null())
        // SAFETY: registered records are never freed; `cached_bytes` is atomic.
        .map(|heap| unsafe { (*heap).cached_bytes() })
        .sum()
}

/// The address of the record GS base points to (its word at offset 0).
#[inline(always)]
fn record_address() -> usize {
    let address: usize;
    // SAFETY: GS base points at a record whose first word is its own address (set before the first allocation
    // on every CPU, see `point_gs_at_shared_record`); the load has no other effect.
    unsafe {
        core::arch::asm!("mov {}, qword ptr gs:[0]", out(reg) address, options(nostack, preserves_flags, readonly))
    };
    address
}

/// The [`CpuHeap`] of the record GS base points to (this CPU's, or the shared record's).
#[inline(always)]
fn this_cpu_heap() -> &'static CpuHeap {
    // SAFETY: every GS record holds a `CpuHeap` at CPU_HEAP_OFFSET and is never freed (see the module docs).
    unsafe { &*((record_address() + CPU_HEAP_OFFSET) as *const CpuHeap) }
}

/// Loads the `u32` at GS-relative `OFFSET` of this CPU's record.
#[inline(always)]
fn gs_load_u32<const OFFSET: usize>() -> u32 {
    let value: u32;
    // SAFETY: GS base points at a record with a `CpuHeap` at CPU_HEAP_OFFSET on every CPU (see the module docs),
    // and the offsets used are its `busy` and `deferred` words. Not `readonly`: a pin's load must stay before the
    // store that follows it and everything after.
    unsafe {
        core::arch::asm!(
            "mov {value:e}, dword ptr gs:[{offset}]",
            value = out(reg) value,
            offset = const OFFSET,
            options(nostack, preserves_flags)
        )
    };
    value
}

/// Stores `VALUE` to the `u32` at GS-relative `OFFSET` of this CPU's record.
#[inline(always)]
fn gs_store_u32<const OFFSET: usize, const VALUE: u32>() {
    // SAFETY: as for `gs_load_u32`; the asm is a compiler barrier (no memory access moves across it).
    unsafe {
        core::arch::asm!(
            "mov dword ptr gs:[{offset}], {value}",
            offset = const OFFSET,
            value = const VALUE,
            options(nostack, preserves_flags)
        )
    };
}

/// Pins this CPU's lists if they are free: returns its [`CpuHeap`], on which the caller then runs until
/// [`unpin`]. `None` if the code this interrupted holds them, or the CPU has none (take the shared path).
#[inline(always)]
pub(crate) fn try_pin() -> Option<&'static CpuHeap> {
    if gs_load_u32::<BUSY_GS_OFFSET>() != FREE {
        return None;
    }
    // The pin (see the module docs for why the check and this store need not be one instruction).
    gs_store_u32::<BUSY_GS_OFFSET, BUSY_PINNED>();
    // `busy` was free, so this is a CPU with lists (the shared record is never free).
    Some(this_cpu_heap())
}

/// Ends the pin taken by [`try_pin`] on `heap` and makes the task switch a tick wanted meanwhile.
#[inline(always)]
pub(crate) fn unpin(heap: &CpuHeap) {
    // Every access to the lists stays before the release (a compiler barrier suffices: only this CPU's own
    // interrupt handlers look at `busy`, and they see its stores in program order).
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    heap.busy.store(FREE, Ordering::Relaxed);
    // This CPU's flag: after the store above the task may have been switched to another CPU, whose flag is the
    // one that matters.
    let deferred = gs_load_u32::<DEFERRED_GS_OFFSET>();
    if deferred != 0 {
        run_deferred_preemption();
    }
}

/// The scheduler's function for a task switch that a tick or IPI deferred while this CPU was pinned (null: none).
static DEFERRED_PREEMPTION: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the function [`unpin`] calls when a tick or reschedule IPI deferred a switch; it is called with no
/// heap state held, interrupts as the allocating code had them. A new scheduler copy installs its own.
pub fn set_deferred_preemption_hook(hook: fn()) {
    DEFERRED_PREEMPTION.store(hook as *mut (), Ordering::Release);
}

/// Clears this CPU's deferred flag and calls the scheduler's hook.
#[cold]
#[inline(never)]
fn run_deferred_preemption() {
    gs_store_u32::<DEFERRED_GS_OFFSET, 0>();
    let hook = DEFERRED_PREEMPTION.load(Ordering::Acquire);
    if !hook.is_null() {
        // SAFETY: only `set_deferred_preemption_hook` stores here, always an `fn()`.
        let hook = unsafe { core::mem::transmute::<*mut (), fn()>(hook) };
        hook();
    }
}

/// For the scheduler's timer tick and reschedule IPI, before switching tasks from an interrupt handler: whether
/// the interrupted code holds this CPU's heap pin. If so the switch must not happen now; it is recorded and made
/// when the pin ends. Call with interrupts disabled.
///
/// A pin that [`STALE_PIN_DEFERRALS`] ticks or IPIs in a row found held is taken as leaked (a fault skipped the
/// fast path's release and the code ran on; no legitimate holder keeps it with interrupts enabled for more than a
/// few instructions, except the `with_heap_pinned` test helper, for milliseconds): it is released, counted
/// ([`leaked_heap_pins_released`]), and this tick switches as usual. Without that the CPU would never be
/// preempted again.
#[inline]
pub fn defer_preemption_if_pinned() -> bool {
    if gs_load_u32::<BUSY_GS_OFFSET>() != BUSY_PINNED {
        return false;
    }
    let heap = this_cpu_heap();
    let deferrals = heap.deferred.load(Ordering::Relaxed);
    if deferrals >= STALE_PIN_DEFERRALS {
        release_leaked_pin(heap);
        return false;
    }
    heap.deferred.store(deferrals + 1, Ordering::Relaxed);
    true
}

/// How many consecutive ticks or reschedule IPIs may find this CPU's pin held before it counts as leaked: 50, half a
/// second at 100 Hz.
pub const STALE_PIN_DEFERRALS: u32 = 50;

/// Leaked pins released so far, on every CPU.
static LEAKED_PINS_RELEASED: AtomicUsize = AtomicUsize::new(0);

/// How many leaked heap pins the timer released (see [`defer_preemption_if_pinned`]).
pub fn leaked_heap_pins_released() -> usize {
    LEAKED_PINS_RELEASED.load(Ordering::Relaxed)
}

/// Releases this CPU's pin, held by no running code, after recounting its lists (interrupts disabled).
#[cold]
fn release_leaked_pin(heap: &CpuHeap) {
    // SAFETY: the pin's holder ran on without releasing it (its operation completed: see the caller), and
    // interrupts are off, so this code is the lists' only user until the release below.
    let lists = unsafe { heap.lists() };
    heap.set_cached_bytes(lists.repair());
    heap.deferred.store(0, Ordering::Relaxed);
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    heap.busy.store(FREE, Ordering::Relaxed);
    LEAKED_PINS_RELEASED.fetch_add(1, Ordering::Relaxed);
}

/// For tests: takes this CPU's pin and returns without releasing it, as fast-path code whose release store a
/// fault skipped. Returns `false` (and takes nothing) if the pin was not free. The timer releases it after
/// [`STALE_PIN_DEFERRALS`] ticks.
pub fn leak_heap_pin_for_test() -> bool {
    try_pin().is_some()
}

/// Whether the code on this CPU holds its heap pin right now (for tests and reports).
pub fn heap_pinned_on_this_cpu() -> bool {
    this_cpu_heap().busy.load(Ordering::Relaxed) == BUSY_PINNED
}

/// For the fault path, when it abandons the code running on this CPU (a task it unwinds or ends, and every
/// handler that interrupted it): if that code held this CPU's heap pin, recounts and checks the CPU's lists and
/// releases the pin. Returns whether it did. Call with interrupts disabled.
///
/// # Safety
/// The pinned code must never resume.
pub unsafe fn abandon_pin_on_this_cpu() -> bool {
    let heap = this_cpu_heap();
    if heap.busy.load(Ordering::Relaxed) != BUSY_PINNED {
        return false;
    }
    // SAFETY: the pin's holder never resumes (the caller's contract) and interrupts are off, so this code is the
    // lists' only user until the store below.
    let lists = unsafe { heap.lists() };
    heap.set_cached_bytes(lists.repair());
    // Not `unpin`: a deferred switch is the scheduler's business once the fault path is done (its next tick).
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    heap.busy.store(FREE, Ordering::Relaxed);
    true
}
