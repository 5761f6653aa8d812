//! A heap-free allocator of free ranges of unit numbers (frame numbers or page numbers).
//!
//! # Purpose
//! The frame allocator must exist before the heap does, so its bookkeeping cannot use `alloc`. This crate keeps the
//! *free* units as a sorted array of disjoint, non-adjacent ranges in fixed-capacity storage (a const generic
//! `CAPACITY`), so a [`RangeAllocator`] can live in a `static` and work from the first instruction of the kernel.
//! Units are plain `usize` numbers; the caller decides whether a unit is a 4 KiB frame, a 4 KiB page, or anything else.
//!
//! # Key types
//! - [`UnitRange`]: a half-open range `start..end` of unit numbers.
//! - [`RangeAllocator`]: the free set, with `add` (union, for building from firmware data that may overlap), `reserve`
//!   (exclude, splitting ranges), `allocate` (count + alignment, first fit), `allocate_at`, `allocate_within` and
//!   `free` (strict: detects double frees and overlaps).
//! - [`AddError`], [`ReserveError`], [`AllocateError`], [`FreeError`]: one error enum per operation.
//!
//! # Control flow of a typical user
//! 1. Create an empty allocator with [`RangeAllocator::new`] (a `const fn`, so it can initialise a `static`).
//! 2. [`add`](RangeAllocator::add) every usable range (overlaps are merged), then
//!    [`reserve`](RangeAllocator::reserve) every range that must never be handed out.
//! 3. [`allocate`](RangeAllocator::allocate) / [`allocate_at`](RangeAllocator::allocate_at) ranges, and
//!    [`free`](RangeAllocator::free) each one exactly once when it is no longer used (adjacent free ranges coalesce).
//!
//! # Invariants (checked by the tests after every operation)
//! The stored ranges are non-empty, sorted by start, pairwise disjoint and never adjacent (adjacent ranges are always
//! merged), and `free_units` is the sum of their lengths. Because of coalescing, a unit range is free exactly when one
//! stored range contains it, which makes every query a single lookup.
//!
//! # Capacity
//! Every operation that could need one more stored range (splitting a range in `reserve` or `allocate*`, or adding a
//! range not adjacent to an existing one) fails with a `CapacityExceeded` error instead of losing track of units, and
//! leaves the allocator unchanged. Callers choose `CAPACITY` for the worst fragmentation they expect.
#![cfg_attr(not(test), no_std)]

use core::fmt;

/// A half-open range of unit numbers: `start` is the first unit, `end` is one past the last unit.
///
/// A `UnitRange` may be empty (`start == end`); operations that need a non-empty range say so in their `# Errors`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UnitRange {
    start: usize,
    end: usize,
}

impl UnitRange {
    /// The range `start..end` (end exclusive), or `None` if `end < start`.
    pub const fn new(start: usize, end: usize) -> Option<Self> {
        if end < start { None } else { Some(Self { start, end }) }
    }

    /// The range of `count` units starting at `start`, or `None` if `start + count` overflows `usize`.
    pub const fn with_count(start: usize, count: usize) -> Option<Self> {
        match start.checked_add(count) {
            Some(end) => Some(Self { start, end }),
            None => None,
        }
    }

    /// The empty range at 0.
    pub const fn empty() -> Self {
        Self { start: 0, end: 0 }
    }

    /// The first unit.
    pub const fn start(self) -> usize {
        self.start
    }

    /// One past the last unit (exclusive).
    pub const fn end(self) -> usize {
        self.end
    }

    /// The number of units.
    pub const fn count(self) -> usize {
        self.end - self.start
    }

    /// Whether the range holds no unit.
    pub const fn is_empty(self) -> bool {
        self.start == self.end
    }

    /// Splits into the first `count` units and the rest, or `None` if either part would be empty
    /// (`count` is 0 or not less than [`count`](Self::count)).
    pub const fn split_at(self, count: usize) -> Option<(Self, Self)> {
        if count == 0 || count >= self.count() {
            return None;
        }
        let middle = self.start + count;
        Some((Self { start: self.start, end: middle }, Self { start: middle, end: self.end }))
    }

    /// Whether `unit` lies in the range.
    pub const fn contains(self, unit: usize) -> bool {
        self.start <= unit && unit < self.end
    }

    /// Whether every unit of `other` lies in this range (an empty `other` is contained if it lies within the bounds).
    pub const fn contains_range(self, other: UnitRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Whether the two ranges share at least one unit.
    pub const fn overlaps(self, other: UnitRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The units common to both ranges, or `None` if they share none.
    pub const fn intersection(self, other: UnitRange) -> Option<UnitRange> {
        let start = if self.start > other.start { self.start } else { other.start };
        let end = if self.end < other.end { self.end } else { other.end };
        if start < end { Some(UnitRange { start, end }) } else { None }
    }
}

impl fmt::Debug for UnitRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.start, self.end)
    }
}

/// Why [`RangeAllocator::add`] failed. The allocator is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddError {
    /// Merging `range` would need one more stored range than the capacity allows.
    CapacityExceeded {
        /// The range that could not be added.
        range: UnitRange,
        /// The allocator's capacity in ranges.
        capacity: usize,
    },
}

/// Why [`RangeAllocator::reserve`] failed. The allocator is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveError {
    /// Reserving `range` would split a free range, and the storage has no room for the extra piece.
    CapacityExceeded {
        /// The range that could not be reserved.
        range: UnitRange,
        /// The allocator's capacity in ranges.
        capacity: usize,
    },
}

/// Why an allocation failed. The allocator is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocateError {
    /// A request for zero units.
    ZeroCount,
    /// The alignment is zero or not a power of two.
    InvalidAlignment(usize),
    /// No free range can hold `count` units at the requested alignment (and within the requested bounds).
    OutOfSpace {
        /// The number of units requested.
        count: usize,
        /// The requested alignment in units.
        alignment: usize,
        /// The total number of free units at the time of the request.
        free_units: usize,
    },
    /// Every fitting free range would have to be split in two, and the storage has no room for the extra piece.
    CapacityExceeded {
        /// The allocator's capacity in ranges.
        capacity: usize,
    },
    /// [`RangeAllocator::allocate_at`]: some unit of the requested range is not free.
    NotFree(UnitRange),
}

/// Why [`RangeAllocator::free`] failed. The allocator is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeError {
    /// A request to free an empty range.
    EmptyRange,
    /// Some unit of `range` is already free: a double free, or a range that was never allocated.
    AlreadyFree {
        /// The range passed to `free`.
        range: UnitRange,
        /// The free range it overlaps.
        overlapping: UnitRange,
    },
    /// Freeing `range` would need one more stored range than the capacity allows (the units stay allocated).
    CapacityExceeded {
        /// The range that could not be freed.
        range: UnitRange,
        /// The allocator's capacity in ranges.
        capacity: usize,
    },
}

/// A set of free unit ranges with fixed capacity `CAPACITY` (in ranges), needing no heap.
///
/// Storage is `CAPACITY * 16` bytes on 64-bit targets. All operations are `O(CAPACITY)`.
pub struct RangeAllocator<const CAPACITY: usize> {
    /// `ranges[..len]` are the free ranges, sorted, disjoint and non-adjacent (see the crate docs).
    ranges: [UnitRange; CAPACITY],
    len: usize,
    free_units: usize,
}

impl<const CAPACITY: usize> Default for RangeAllocator<CAPACITY> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CAPACITY: usize> fmt::Debug for RangeAllocator<CAPACITY> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeAllocator")
            .field("free_units", &self.free_units)
            .field("ranges", &self.free_ranges())
            .finish()
    }
}

/// Rounds `value` up to a multiple of `alignment` (a power of two), or `None` on overflow.
const fn align_up(value: usize, alignment: usize) -> Option<usize> {
    match value.checked_add(alignment - 1) {
        Some(sum) => Some(sum & !(alignment - 1)),
        None => None,
    }
}

impl<const CAPACITY: usize> RangeAllocator<CAPACITY> {
    /// An allocator with no free unit.
    pub const fn new() -> Self {
        Self { ranges: [UnitRange::empty(); CAPACITY], len: 0, free_units: 0 }
    }

    /// The maximum number of disjoint free ranges this allocator can track.
    pub const fn capacity(&self) -> usize {
        CAPACITY
    }

    /// The number of free units.
    pub const fn free_units(&self) -> usize {
        self.free_units
    }

    /// The number of disjoint free ranges currently stored.
    pub const fn range_count(&self) -> usize {
        self.len
    }

    /// The free ranges, sorted by start, disjoint and non-adjacent.
    pub fn free_ranges(&self) -> &[UnitRange] {
        &self.ranges[..self.len]
    }

    /// The length of the longest free range (0 if nothing is free).
    pub fn largest_free_range(&self) -> usize {
        self.free_ranges().iter().map(|range| range.count()).max().unwrap_or(0)
    }

    /// Whether every unit of `range` is free. An empty range counts as free.
    pub fn is_free(&self, range: UnitRange) -> bool {
        range.is_empty() || self.free_ranges().iter().any(|free| free.contains_range(range))
    }

    /// The index of the first stored range whose end is at or after `unit`: the only candidate that can contain `unit`
    /// or be adjacent to it from the left.
    fn first_ending_at_or_after(&self, unit: usize) -> usize {
        self.free_ranges().partition_point(|range| range.end < unit)
    }

    /// Inserts `range` at `index`, shifting later ranges. The caller has checked that there is room.
    fn insert_at(&mut self, index: usize, range: UnitRange) {
        debug_assert!(self.len < CAPACITY);
        self.ranges.copy_within(index..self.len, index + 1);
        self.ranges[index] = range;
        self.len += 1;
    }

    /// Removes the ranges `first..last` (indices), shifting later ranges down.
    fn remove_indices(&mut self, first: usize, last: usize) {
        self.ranges.copy_within(last..self.len, first);
        self.len -= last - first;
    }

    /// Adds every unit of `range` to the free set, merging with free ranges it overlaps or touches.
    ///
    /// Units of `range` that are already free are accepted (union semantics): use this to build the free set from
    /// firmware data that may overlap. Use [`free`](Self::free) to return allocated units, which detects double frees.
    /// Adding an empty range does nothing.
    ///
    /// # Errors
    /// [`AddError::CapacityExceeded`] if `range` neither overlaps nor touches a free range and the storage is full.
    pub fn add(&mut self, range: UnitRange) -> Result<(), AddError> {
        if range.is_empty() {
            return Ok(());
        }
        // Ranges first..last overlap or touch `range`; they are merged into one.
        let first = self.first_ending_at_or_after(range.start);
        let mut last = first;
        while last < self.len && self.ranges[last].start <= range.end {
            last += 1;
        }
        if first == last {
            if self.len == CAPACITY {
                return Err(AddError::CapacityExceeded { range, capacity: CAPACITY });
            }
            self.insert_at(first, range);
            self.free_units += range.count();
            return Ok(());
        }
        let merged_start = range.start.min(self.ranges[first].start);
        let merged_end = range.end.max(self.ranges[last - 1].end);
        let previously_free: usize = self.ranges[first..last].iter().map(|free| free.count()).sum();
        self.ranges[first] = UnitRange { start: merged_start, end: merged_end };
        self.remove_indices(first + 1, last);
        self.free_units = self.free_units - previously_free + (merged_end - merged_start);
        Ok(())
    }

    /// Removes every unit of `range` from the free set, splitting free ranges where needed. Units of `range` that are
    /// not free are ignored.
    ///
    /// Returns the number of units that were free and are now reserved.
    ///
    /// # Errors
    /// [`ReserveError::CapacityExceeded`] if `range` lies strictly inside one free range (splitting it in two) and
    /// the storage is full.
    pub fn reserve(&mut self, range: UnitRange) -> Result<usize, ReserveError> {
        if range.is_empty() {
            return Ok(0);
        }
        // Ranges first..last overlap `range` (touching is not enough here).
        let first = self.free_ranges().partition_point(|free| free.end <= range.start);
        let mut last = first;
        while last < self.len && self.ranges[last].start < range.end {
            last += 1;
        }
        if first == last {
            return Ok(0);
        }
        let head = UnitRange { start: self.ranges[first].start, end: range.start };
        let tail = UnitRange { start: range.end, end: self.ranges[last - 1].end };
        let keep_head = self.ranges[first].start < range.start;
        let keep_tail = range.end < self.ranges[last - 1].end;
        let removed_ranges = last - first;
        let kept_ranges = usize::from(keep_head) + usize::from(keep_tail);
        if kept_ranges > removed_ranges && self.len == CAPACITY {
            return Err(ReserveError::CapacityExceeded { range, capacity: CAPACITY });
        }
        let previously_free: usize = self.ranges[first..last].iter().map(|free| free.count()).sum();
        self.remove_indices(first, last);
        let mut index = first;
        if keep_head {
            self.insert_at(index, head);
            index += 1;
        }
        if keep_tail {
            self.insert_at(index, tail);
        }
        let still_free = if keep_head { head.count() } else { 0 } + if keep_tail { tail.count() } else { 0 };
        let reserved = previously_free - still_free;
        self.free_units -= reserved;
        Ok(reserved)
    }

    /// Allocates `count` units whose first unit is a multiple of `alignment`, choosing the lowest such position
    /// (first fit).
    ///
    /// # Errors
    /// - [`AllocateError::ZeroCount`] if `count` is 0.
    /// - [`AllocateError::InvalidAlignment`] if `alignment` is 0 or not a power of two.
    /// - [`AllocateError::OutOfSpace`] if no free range can hold the request.
    /// - [`AllocateError::CapacityExceeded`] if the request fits only by splitting a range and the storage is full.
    pub fn allocate(&mut self, count: usize, alignment: usize) -> Result<UnitRange, AllocateError> {
        self.allocate_within(count, alignment, UnitRange { start: 0, end: usize::MAX })
    }

    /// Like [`allocate`](Self::allocate), but the allocated units must all lie within `bounds` (for example "below
    /// 4 GiB" for frames that must be reachable through a 4 GiB direct map).
    ///
    /// # Errors
    /// As for [`allocate`](Self::allocate); [`AllocateError::OutOfSpace`] also when nothing fits inside `bounds`.
    pub fn allocate_within(
        &mut self,
        count: usize,
        alignment: usize,
        bounds: UnitRange,
    ) -> Result<UnitRange, AllocateError> {
        if count == 0 {
            return Err(AllocateError::ZeroCount);
        }
        if !alignment.is_power_of_two() {
            return Err(AllocateError::InvalidAlignment(alignment));
        }
        let mut needs_split_only = false;
        for index in 0..self.len {
            let Some(window) = self.ranges[index].intersection(bounds) else { continue };
            let Some(start) = align_up(window.start, alignment) else { continue };
            let Some(candidate) = UnitRange::with_count(start, count) else { continue };
            if candidate.end > window.end {
                continue;
            }
            let free = self.ranges[index];
            if free.start < candidate.start && candidate.end < free.end && self.len == CAPACITY {
                // This fit would split `free` in two; look for one that does not.
                needs_split_only = true;
                continue;
            }
            self.take_from(index, candidate);
            return Ok(candidate);
        }
        if needs_split_only {
            Err(AllocateError::CapacityExceeded { capacity: CAPACITY })
        } else {
            Err(AllocateError::OutOfSpace { count, alignment, free_units: self.free_units })
        }
    }

    /// Allocates exactly the units of `range`.
    ///
    /// # Errors
    /// - [`AllocateError::ZeroCount`] if `range` is empty.
    /// - [`AllocateError::NotFree`] if some unit of `range` is not free.
    /// - [`AllocateError::CapacityExceeded`] if `range` lies strictly inside a free range and the storage is full.
    pub fn allocate_at(&mut self, range: UnitRange) -> Result<(), AllocateError> {
        if range.is_empty() {
            return Err(AllocateError::ZeroCount);
        }
        let index = self.first_ending_at_or_after(range.start);
        if index == self.len || !self.ranges[index].contains_range(range) {
            return Err(AllocateError::NotFree(range));
        }
        let free = self.ranges[index];
        if free.start < range.start && range.end < free.end && self.len == CAPACITY {
            return Err(AllocateError::CapacityExceeded { capacity: CAPACITY });
        }
        self.take_from(index, range);
        Ok(())
    }

    /// Removes `taken` from the stored range at `index`, which contains it. The caller has checked capacity for the
    /// split case.
    fn take_from(&mut self, index: usize, taken: UnitRange) {
        let free = self.ranges[index];
        debug_assert!(free.contains_range(taken));
        let head = UnitRange { start: free.start, end: taken.start };
        let tail = UnitRange { start: taken.end, end: free.end };
        match (head.is_empty(), tail.is_empty()) {
            (true, true) => self.remove_indices(index, index + 1),
            (false, true) => self.ranges[index] = head,
            (true, false) => self.ranges[index] = tail,
            (false, false) => {
                self.ranges[index] = head;
                self.insert_at(index + 1, tail);
            }
        }
        self.free_units -= taken.count();
    }

    /// Returns the units of `range` to the free set, merging with adjacent free ranges.
    ///
    /// # Errors
    /// - [`FreeError::EmptyRange`] if `range` is empty.
    /// - [`FreeError::AlreadyFree`] if some unit of `range` is already free (double free or a foreign range).
    /// - [`FreeError::CapacityExceeded`] if `range` touches no free range and the storage is full. The units then stay
    ///   allocated; the caller decides whether to retry later or account them as leaked.
    pub fn free(&mut self, range: UnitRange) -> Result<(), FreeError> {
        if range.is_empty() {
            return Err(FreeError::EmptyRange);
        }
        let index = self.first_ending_at_or_after(range.start);
        // Candidates: `left` ends exactly at range.start (touching), or overlaps; `right` may start at range.end.
        if index < self.len && self.ranges[index].overlaps(range) {
            return Err(FreeError::AlreadyFree { range, overlapping: self.ranges[index] });
        }
        if index + 1 < self.len && self.ranges[index + 1].overlaps(range) {
            return Err(FreeError::AlreadyFree { range, overlapping: self.ranges[index + 1] });
        }
        let touches_left = index < self.len && self.ranges[index].end == range.start;
        let right_index = if touches_left { index + 1 } else { index };
        let touches_right = right_index < self.len && self.ranges[right_index].start == range.end;
        match (touches_left, touches_right) {
            (true, true) => {
                self.ranges[index].end = self.ranges[right_index].end;
                self.remove_indices(right_index, right_index + 1);
            }
            (true, false) => self.ranges[index].end = range.end,
            (false, true) => self.ranges[right_index].start = range.start,
            (false, false) => {
                if self.len == CAPACITY {
                    return Err(FreeError::CapacityExceeded { range, capacity: CAPACITY });
                }
                self.insert_at(index, range);
            }
        }
        self.free_units += range.count();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
