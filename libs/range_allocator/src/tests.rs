//! Host tests: unit tests per operation, capacity limits, and a randomized comparison against a bitmap model.

use super::*;

fn range(start: usize, end: usize) -> UnitRange {
    UnitRange::new(start, end).expect("test range must be ordered")
}

/// Checks the structural invariants documented in the crate docs.
fn check_invariants<const N: usize>(allocator: &RangeAllocator<N>) {
    let ranges = allocator.free_ranges();
    let mut total = 0;
    for (index, free) in ranges.iter().enumerate() {
        assert!(!free.is_empty(), "empty stored range {free:?}");
        total += free.count();
        if index > 0 {
            // Strictly after and not adjacent: there is at least one used unit between two free ranges.
            assert!(ranges[index - 1].end < free.start, "unsorted, overlapping or adjacent: {ranges:?}");
        }
    }
    assert_eq!(total, allocator.free_units(), "free_units out of sync: {ranges:?}");
}

#[test]
fn unit_range_basics() {
    assert_eq!(UnitRange::new(5, 3), None);
    assert_eq!(UnitRange::with_count(usize::MAX, 1), None);
    let r = range(4, 10);
    assert_eq!(r.count(), 6);
    assert!(r.contains(4) && r.contains(9) && !r.contains(10));
    assert!(r.overlaps(range(9, 12)) && !r.overlaps(range(10, 12)));
    assert_eq!(r.intersection(range(8, 20)), Some(range(8, 10)));
    assert_eq!(r.intersection(range(10, 20)), None);
    assert!(r.contains_range(range(5, 10)) && !r.contains_range(range(3, 5)));
    assert_eq!(format!("{r:?}"), "0x4..0xa");
}

#[test]
fn add_merges_overlapping_and_adjacent_ranges() {
    let mut allocator = RangeAllocator::<8>::new();
    allocator.add(range(10, 20)).unwrap();
    allocator.add(range(30, 40)).unwrap();
    allocator.add(range(20, 25)).unwrap(); // touches the first
    assert_eq!(allocator.free_ranges(), &[range(10, 25), range(30, 40)]);
    allocator.add(range(15, 35)).unwrap(); // overlaps both: union
    assert_eq!(allocator.free_ranges(), &[range(10, 40)]);
    allocator.add(range(0, 0)).unwrap(); // empty: no-op
    allocator.add(range(0, 5)).unwrap();
    assert_eq!(allocator.free_ranges(), &[range(0, 5), range(10, 40)]);
    assert_eq!(allocator.free_units(), 35);
    check_invariants(&allocator);
}

#[test]
fn reserve_splits_trims_and_ignores_used_units() {
    let mut allocator = RangeAllocator::<8>::new();
    allocator.add(range(0, 100)).unwrap();
    assert_eq!(allocator.reserve(range(0, 1)), Ok(1)); // page 0
    assert_eq!(allocator.reserve(range(40, 50)), Ok(10)); // split
    assert_eq!(allocator.free_ranges(), &[range(1, 40), range(50, 100)]);
    assert_eq!(allocator.reserve(range(35, 55)), Ok(10)); // spans a hole: only free units count
    assert_eq!(allocator.free_ranges(), &[range(1, 35), range(55, 100)]);
    assert_eq!(allocator.reserve(range(200, 300)), Ok(0));
    assert_eq!(allocator.reserve(range(0, 1000)), Ok(79));
    assert_eq!(allocator.free_units(), 0);
    assert_eq!(allocator.range_count(), 0);
    check_invariants(&allocator);
}

#[test]
fn allocate_is_first_fit_and_honours_alignment() {
    let mut allocator = RangeAllocator::<8>::new();
    allocator.add(range(3, 10)).unwrap();
    allocator.add(range(20, 100)).unwrap();
    assert_eq!(allocator.allocate(4, 1), Ok(range(3, 7)));
    assert_eq!(allocator.allocate(4, 1), Ok(range(20, 24))); // 7..10 is too small
    assert_eq!(allocator.allocate(2, 1), Ok(range(7, 9)));
    assert_eq!(allocator.allocate(8, 16), Ok(range(32, 40)));
    assert_eq!(allocator.free_ranges(), &[range(9, 10), range(24, 32), range(40, 100)]);
    assert_eq!(allocator.allocate(1, 0), Err(AllocateError::InvalidAlignment(0)));
    assert_eq!(allocator.allocate(1, 3), Err(AllocateError::InvalidAlignment(3)));
    assert_eq!(allocator.allocate(0, 1), Err(AllocateError::ZeroCount));
    check_invariants(&allocator);
}

#[test]
fn allocate_within_respects_bounds() {
    let mut allocator = RangeAllocator::<8>::new();
    allocator.add(range(0, 100)).unwrap();
    assert_eq!(allocator.allocate_within(10, 1, range(50, 200)), Ok(range(50, 60)));
    assert_eq!(
        allocator.allocate_within(10, 8, range(95, 200)),
        Err(AllocateError::OutOfSpace { count: 10, alignment: 8, free_units: 90 })
    );
    assert_eq!(allocator.allocate_within(5, 1, range(0, 5)), Ok(range(0, 5)));
    check_invariants(&allocator);
}

#[test]
fn allocation_near_usize_max_does_not_overflow() {
    let mut allocator = RangeAllocator::<4>::new();
    allocator.add(range(usize::MAX - 10, usize::MAX)).unwrap();
    assert!(matches!(allocator.allocate(4, 1 << 62), Err(AllocateError::OutOfSpace { .. })));
    assert_eq!(allocator.allocate(10, 1), Ok(range(usize::MAX - 10, usize::MAX)));
    assert!(matches!(allocator.allocate(1, 1), Err(AllocateError::OutOfSpace { .. })));
    allocator.free(range(usize::MAX - 10, usize::MAX)).unwrap();
    check_invariants(&allocator);
}

#[test]
fn exhaustion_reports_out_of_space_and_recovers_after_free() {
    let mut allocator = RangeAllocator::<4>::new();
    allocator.add(range(0, 16)).unwrap();
    let mut taken = Vec::new();
    for _ in 0..4 {
        taken.push(allocator.allocate(4, 1).unwrap());
    }
    assert_eq!(allocator.allocate(1, 1), Err(AllocateError::OutOfSpace { count: 1, alignment: 1, free_units: 0 }));
    allocator.free(taken[2]).unwrap();
    assert_eq!(allocator.allocate(4, 4), Ok(range(8, 12)));
    check_invariants(&allocator);
}

#[test]
fn fragmentation_can_make_a_request_fail_despite_enough_free_units() {
    let mut allocator = RangeAllocator::<16>::new();
    allocator.add(range(0, 16)).unwrap();
    let singles: Vec<_> = (0..16).map(|_| allocator.allocate(1, 1).unwrap()).collect();
    for single in singles.iter().step_by(2) {
        allocator.free(*single).unwrap();
    }
    assert_eq!(allocator.free_units(), 8);
    assert_eq!(allocator.range_count(), 8);
    assert_eq!(allocator.largest_free_range(), 1);
    assert!(matches!(allocator.allocate(2, 1), Err(AllocateError::OutOfSpace { free_units: 8, .. })));
    // Freeing the odd ones coalesces everything back into one range.
    for single in singles.iter().skip(1).step_by(2) {
        allocator.free(*single).unwrap();
    }
    assert_eq!(allocator.free_ranges(), &[range(0, 16)]);
    check_invariants(&allocator);
}

#[test]
fn free_coalesces_left_right_and_both() {
    let mut allocator = RangeAllocator::<8>::new();
    allocator.add(range(0, 30)).unwrap();
    allocator.allocate_at(range(0, 30)).unwrap();
    allocator.free(range(10, 20)).unwrap();
    allocator.free(range(20, 25)).unwrap(); // left neighbour
    assert_eq!(allocator.free_ranges(), &[range(10, 25)]);
    allocator.free(range(5, 10)).unwrap(); // right neighbour
    assert_eq!(allocator.free_ranges(), &[range(5, 25)]);
    allocator.free(range(27, 30)).unwrap();
    allocator.free(range(25, 27)).unwrap(); // both
    assert_eq!(allocator.free_ranges(), &[range(5, 30)]);
    allocator.free(range(0, 2)).unwrap(); // neither
    assert_eq!(allocator.free_ranges(), &[range(0, 2), range(5, 30)]);
    check_invariants(&allocator);
}

#[test]
fn double_free_and_overlapping_free_are_errors() {
    let mut allocator = RangeAllocator::<8>::new();
    allocator.add(range(0, 100)).unwrap();
    let block = allocator.allocate(10, 1).unwrap();
    allocator.free(block).unwrap();
    assert_eq!(allocator.free(block), Err(FreeError::AlreadyFree { range: block, overlapping: range(0, 100) }));
    let a = allocator.allocate(10, 1).unwrap(); // 0..10
    let _b = allocator.allocate(10, 1).unwrap(); // 10..20
    allocator.free(a).unwrap();
    // 5..15 half overlaps the free range 0..10.
    assert_eq!(
        allocator.free(range(5, 15)),
        Err(FreeError::AlreadyFree { range: range(5, 15), overlapping: range(0, 10) })
    );
    // 15..25 overlaps the free range 20..100 further right.
    assert_eq!(
        allocator.free(range(15, 25)),
        Err(FreeError::AlreadyFree { range: range(15, 25), overlapping: range(20, 100) })
    );
    assert_eq!(allocator.free(range(3, 3)), Err(FreeError::EmptyRange));
    check_invariants(&allocator);
}

#[test]
fn free_detects_overlap_with_range_after_a_touching_one() {
    let mut allocator = RangeAllocator::<8>::new();
    allocator.add(range(0, 10)).unwrap();
    allocator.add(range(20, 30)).unwrap();
    // Touches 0..10 on the left and overlaps 20..30.
    assert_eq!(
        allocator.free(range(10, 25)),
        Err(FreeError::AlreadyFree { range: range(10, 25), overlapping: range(20, 30) })
    );
    check_invariants(&allocator);
}

#[test]
fn allocate_at_requires_every_unit_free() {
    let mut allocator = RangeAllocator::<8>::new();
    allocator.add(range(0, 10)).unwrap();
    allocator.add(range(20, 30)).unwrap();
    assert_eq!(allocator.allocate_at(range(5, 25)), Err(AllocateError::NotFree(range(5, 25))));
    assert_eq!(allocator.allocate_at(range(10, 11)), Err(AllocateError::NotFree(range(10, 11))));
    assert_eq!(allocator.allocate_at(range(40, 41)), Err(AllocateError::NotFree(range(40, 41))));
    assert_eq!(allocator.allocate_at(range(3, 3)), Err(AllocateError::ZeroCount));
    allocator.allocate_at(range(22, 24)).unwrap();
    assert_eq!(allocator.free_ranges(), &[range(0, 10), range(20, 22), range(24, 30)]);
    assert!(allocator.is_free(range(24, 30)) && !allocator.is_free(range(21, 23)));
    check_invariants(&allocator);
}

#[test]
fn capacity_limit_is_an_error_and_leaves_state_unchanged() {
    let mut allocator = RangeAllocator::<2>::new();
    allocator.add(range(0, 10)).unwrap();
    allocator.add(range(20, 30)).unwrap();
    assert_eq!(allocator.add(range(40, 50)), Err(AddError::CapacityExceeded { range: range(40, 50), capacity: 2 }));
    allocator.add(range(10, 12)).unwrap(); // touching still works when full
    assert_eq!(allocator.reserve(range(4, 5)), Err(ReserveError::CapacityExceeded { range: range(4, 5), capacity: 2 }));
    assert_eq!(allocator.reserve(range(0, 2)), Ok(2)); // trimming needs no slot
    assert_eq!(allocator.allocate_at(range(5, 6)), Err(AllocateError::CapacityExceeded { capacity: 2 }));
    // An aligned fit that would split 2..12 (at 4..6) falls through to 20..22, which does not split.
    assert_eq!(allocator.allocate(2, 4), Ok(range(20, 22)));
    assert_eq!(allocator.allocate(2, 8), Err(AllocateError::CapacityExceeded { capacity: 2 }));
    let before: Vec<_> = allocator.free_ranges().to_vec();
    allocator.allocate_at(range(2, 12)).unwrap();
    allocator.add(range(100, 110)).unwrap();
    assert_eq!(allocator.free(range(2, 3)), Err(FreeError::CapacityExceeded { range: range(2, 3), capacity: 2 }));
    assert_eq!(allocator.free_ranges(), &[range(22, 30), range(100, 110)]);
    assert_ne!(before, allocator.free_ranges());
    check_invariants(&allocator);
}

/// A small deterministic PRNG (xorshift64*), so the randomized test is reproducible without dependencies.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// The reference model: one bool per unit, `true` = free.
struct Bitmap(Vec<bool>);

impl Bitmap {
    fn all_free(&self, r: UnitRange) -> bool {
        (r.start..r.end).all(|unit| self.0[unit])
    }
    fn any_free(&self, r: UnitRange) -> bool {
        (r.start..r.end).any(|unit| self.0[unit])
    }
    fn set(&mut self, r: UnitRange, free: bool) {
        for unit in r.start..r.end {
            self.0[unit] = free;
        }
    }
    /// The lowest aligned position holding `count` free units, as first fit must find.
    fn first_fit(&self, count: usize, alignment: usize) -> Option<UnitRange> {
        (0..self.0.len())
            .step_by(alignment)
            .map(|start| range(start, start + count))
            .find(|candidate| candidate.end <= self.0.len() && self.all_free(*candidate))
    }
    fn ranges(&self) -> Vec<UnitRange> {
        let mut ranges = Vec::new();
        let mut start = None;
        for (unit, free) in self.0.iter().copied().chain([false]).enumerate() {
            match (free, start) {
                (true, None) => start = Some(unit),
                (false, Some(first)) => {
                    ranges.push(range(first, unit));
                    start = None;
                }
                _ => {}
            }
        }
        ranges
    }
}

#[test]
fn randomized_operations_match_a_bitmap_model() {
    const UNITS: usize = 2048;
    // Capacity above UNITS / 2 means the storage can never be the limiting factor, so every result must match
    // the model exactly.
    let mut allocator = RangeAllocator::<1100>::new();
    let mut model = Bitmap(vec![false; UNITS]);
    let mut prng = Prng(0x5eed_1234_abcd_0001);
    let mut allocated: Vec<UnitRange> = Vec::new();
    let random_range = |prng: &mut Prng| {
        let start = prng.below(UNITS);
        let count = 1 + prng.below(64.min(UNITS - start));
        range(start, start + count)
    };

    for step in 0..20_000 {
        match prng.below(10) {
            0 => {
                let r = random_range(&mut prng);
                allocator.add(r).unwrap();
                // Units added that were allocated become free: forget those allocations.
                allocated.retain(|a| !a.overlaps(r));
                model.set(r, true);
            }
            1 => {
                let r = random_range(&mut prng);
                let was_free = (r.start..r.end).filter(|unit| model.0[*unit]).count();
                assert_eq!(allocator.reserve(r), Ok(was_free), "step {step}");
                model.set(r, false);
            }
            2..=4 => {
                let count = 1 + prng.below(40);
                let alignment = 1 << prng.below(5);
                let expected = model.first_fit(count, alignment);
                match allocator.allocate(count, alignment) {
                    Ok(got) => {
                        assert_eq!(Some(got), expected, "step {step}");
                        model.set(got, false);
                        allocated.push(got);
                    }
                    Err(AllocateError::OutOfSpace { .. }) => assert_eq!(expected, None, "step {step}"),
                    Err(error) => panic!("step {step}: unexpected {error:?}"),
                }
            }
            5 => {
                let r = random_range(&mut prng);
                let result = allocator.allocate_at(r);
                if model.all_free(r) {
                    assert_eq!(result, Ok(()), "step {step}");
                    model.set(r, false);
                    allocated.push(r);
                } else {
                    assert_eq!(result, Err(AllocateError::NotFree(r)), "step {step}");
                }
            }
            6..=8 if !allocated.is_empty() => {
                let index = prng.below(allocated.len());
                let r = allocated.swap_remove(index);
                // A reserve may have covered it meanwhile; the model says whether it is used.
                assert!(!model.any_free(r));
                allocator.free(r).unwrap();
                model.set(r, true);
            }
            _ => {
                // A random free must succeed exactly when no unit is already free.
                let r = random_range(&mut prng);
                let result = allocator.free(r);
                if model.any_free(r) {
                    assert!(matches!(result, Err(FreeError::AlreadyFree { .. })), "step {step}: {result:?}");
                } else {
                    assert_eq!(result, Ok(()), "step {step}");
                    model.set(r, true);
                    allocated.retain(|a| !a.overlaps(r));
                }
            }
        }
        check_invariants(&allocator);
        assert_eq!(allocator.free_ranges(), model.ranges().as_slice(), "step {step}");
    }
}

#[test]
fn randomized_small_capacity_never_loses_units() {
    // With a tiny capacity, operations may fail with CapacityExceeded, but a failed operation must change nothing.
    let mut allocator = RangeAllocator::<4>::new();
    let mut prng = Prng(42);
    allocator.add(range(0, 512)).unwrap();
    let mut allocated: Vec<UnitRange> = Vec::new();
    for step in 0..5_000 {
        let before: Vec<_> = allocator.free_ranges().to_vec();
        let free_before = allocator.free_units();
        if prng.below(2) == 0 {
            match allocator.allocate(1 + prng.below(16), 1 << prng.below(4)) {
                Ok(r) => allocated.push(r),
                Err(_) => assert_eq!(allocator.free_ranges(), before.as_slice(), "step {step}"),
            }
        } else if !allocated.is_empty() {
            let index = prng.below(allocated.len());
            match allocator.free(allocated[index]) {
                Ok(()) => {
                    allocated.swap_remove(index);
                }
                Err(FreeError::CapacityExceeded { .. }) => {
                    assert_eq!(allocator.free_ranges(), before.as_slice(), "step {step}");
                    assert_eq!(allocator.free_units(), free_before);
                }
                Err(error) => panic!("step {step}: {error:?}"),
            }
        }
        check_invariants(&allocator);
        let in_use: usize = allocated.iter().map(|r| r.count()).sum();
        assert_eq!(allocator.free_units() + in_use, 512, "step {step}");
    }
}

#[test]
fn unit_ranges_split_into_two_non_empty_parts_only() {
    let range = UnitRange::new(10, 14).unwrap();
    let (first, second) = range.split_at(1).unwrap();
    assert_eq!((first.start(), first.end(), second.start(), second.end()), (10, 11, 11, 14));
    assert!(range.split_at(0).is_none());
    assert!(range.split_at(4).is_none());
}
