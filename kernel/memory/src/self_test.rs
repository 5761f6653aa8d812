//! An in-kernel check of the memory system, for the QEMU test run: it exercises what host tests cannot (real page
//! tables, permissions, TLB flushes, the heap) and fails loudly, naming the step.

extern crate alloc;

use crate::errors::AccessError;
use crate::{Permissions, map_new, stats};
use alloc::boxed::Box;
use alloc::vec::Vec;
use memory_structs::PAGE_SIZE;

/// The step of [`self_test`] that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfTestFailure {
    /// What was being checked.
    pub step: &'static str,
}

fn check(condition: bool, step: &'static str) -> Result<(), SelfTestFailure> {
    if condition { Ok(()) } else { Err(SelfTestFailure { step }) }
}

/// Maps any error of `step` to a failure naming it.
fn fail<E>(step: &'static str) -> impl FnOnce(E) -> SelfTestFailure {
    move |_| SelfTestFailure { step }
}

/// Maps, writes, reads, remaps, patches and drops a mapping, allocates from the heap, and checks that every counter
/// returns to its starting value. Call after [`init`](crate::init), on one CPU.
///
/// # Errors
/// [`SelfTestFailure`] naming the first check that failed.
pub fn self_test() -> Result<(), SelfTestFailure> {
    // Warm up: the first mapping in a fresh part of the page region allocates page-table frames, which are never
    // freed; measure only after they exist.
    drop(map_new(4 * PAGE_SIZE, Permissions::ReadWrite).map_err(fail("warm-up map_new"))?);
    let before = stats();
    {
        let mut mapping = map_new(3 * PAGE_SIZE + 1, Permissions::ReadWrite).map_err(fail("map_new"))?;
        check(mapping.size_in_bytes() == 4 * PAGE_SIZE, "size rounds up to whole pages")?;
        check(stats().free_frames == before.free_frames - 4, "map_new takes 4 frames")?;
        check(mapping.as_slice::<u64>(0, 512 * 4).map_err(fail("as_slice"))?.iter().all(|word| *word == 0), "zeroed")?;
        for (index, word) in
            mapping.as_slice_mut::<u64>(0, 512 * 4).map_err(fail("as_slice_mut"))?.iter_mut().enumerate()
        {
            *word = index as u64 * 3;
        }
        check(*mapping.as_type::<u64>(8 * 100).map_err(fail("as_type"))? == 300, "read back")?;
        check(
            matches!(mapping.as_type::<u64>(4 * PAGE_SIZE - 4), Err(AccessError::OutOfBounds { .. })),
            "out of bounds refused",
        )?;
        check(matches!(mapping.as_type::<u64>(4), Err(AccessError::Misaligned { .. })), "misaligned refused")?;

        mapping.remap(Permissions::ReadOnly).map_err(fail("remap read-only"))?;
        check(matches!(mapping.as_type_mut::<u8>(0), Err(AccessError::NotWritable)), "read-only refuses writes")?;
        // SAFETY: no reference into the mapping is live, and only this CPU uses it.
        unsafe { mapping.write_through_direct_map(16, &7u64.to_le_bytes()) }.map_err(fail("direct-map patch"))?;
        check(*mapping.as_type::<u64>(16).map_err(fail("as_type after patch"))? == 7, "patch visible")?;
        mapping.remap(Permissions::ReadExecute).map_err(fail("remap executable"))?;
        check(mapping.permissions() == Permissions::ReadExecute, "permissions recorded")?;
    }
    let after_drop = stats();
    check(after_drop.free_frames == before.free_frames, "dropping MappedPages frees its frames")?;
    check(after_drop.free_pages == before.free_pages, "dropping MappedPages frees its pages")?;

    let values: Vec<u64> = (0..10_000).collect();
    check(stats().heap_used_bytes >= before.heap_used_bytes + 80_000, "heap use grows")?;
    check(values.iter().sum::<u64>() == 49_995_000, "heap data intact")?;
    drop(values);
    check(stats().heap_used_bytes == before.heap_used_bytes, "heap use returns")?;
    check(stats().leaked_frames == 0, "no leaked frames")?;
    small_blocks()
}

/// Size-class blocks: each live block counts its class size as used, a freed one counts as free again, and
/// blocks handed out again (from the class list) do not overlap.
fn small_blocks() -> Result<(), SelfTestFailure> {
    const BLOCKS: usize = 64;
    const SIZE: usize = 40;
    let class = size_classes::SizeClass::of(core::alloc::Layout::new::<[u8; SIZE]>())
        .ok_or(SelfTestFailure { step: "a 40-byte block has a size class" })?;
    let mut blocks: Vec<Box<[u8; SIZE]>> = Vec::with_capacity(BLOCKS);
    let base = stats().heap_used_bytes;
    for round in 0..2u8 {
        for index in 0..BLOCKS {
            blocks.push(Box::new([index as u8 ^ round; SIZE]));
        }
        check(stats().heap_used_bytes == base + BLOCKS * class.block_size(), "live class blocks count as used")?;
        let intact =
            blocks.iter().enumerate().all(|(index, block)| block.iter().all(|&byte| byte == index as u8 ^ round));
        check(intact, "class blocks do not overlap")?;
        blocks.clear();
        check(stats().heap_used_bytes == base, "freed class blocks count as free")?;
    }
    Ok(())
}
