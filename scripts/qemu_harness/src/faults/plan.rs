//! What each injection does, drawn from the campaign seed: fault type, workload, moment, target.
//!
//! The plan of injection `index` depends only on the seed and the index (a SplitMix64 stream seeded with both),
//! so a campaign with the same seed injects the same faults at the same fractions of the workload's expected
//! duration into the same targets. The memory target is drawn from the list of cell section ranges of the boot it
//! runs in, sorted by cell and kind, which is the same for every boot of one image. The moment is a fraction of
//! the workload's expected duration (its golden run's, then a moving average over clean runs); under TCG the guest
//! does not run at a fixed speed, so the instruction a timed fault hits differs from run to run. An instruction
//! point ([`PointMode::Instruction`], the default) is a fraction of the total text size of the workload's cells
//! under test, which names the same instruction in every boot of one image; whether and when it is first
//! executed still depends on the run.

use super::workload::{WORKLOADS, Workload};
use crate::gdb_remote::REGISTER_NAMES;

/// SplitMix64 (Steele, Lea, Flood: "Fast splittable pseudorandom number generators", OOPSLA 2014).
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0; the modulo bias is negligible for these bounds).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// A fraction in [0, 1).
    pub fn fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The three fault types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultType {
    /// One flipped bit in a register of a CPU.
    RegisterBit,
    /// Random bit flips in one 8-byte word of a cell's text, rodata or data.
    MemoryWord,
    /// The instruction at RIP is skipped (RIP advanced by its length).
    SkipInstruction,
}

/// Every fault type.
pub const FAULT_TYPES: [FaultType; 3] = [FaultType::RegisterBit, FaultType::MemoryWord, FaultType::SkipInstruction];

impl FaultType {
    /// The name in the CSV and the summary.
    pub fn name(self) -> &'static str {
        match self {
            FaultType::RegisterBit => "register-bit",
            FaultType::MemoryWord => "memory-word",
            FaultType::SkipInstruction => "skip-instruction",
        }
    }
}

/// One injection's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Its index in the campaign (0-based).
    pub index: usize,
    /// The fault type.
    pub fault: FaultType,
    /// The workload it runs during.
    pub workload: Workload,
    /// When: this fraction of the workload's expected duration after the first command is typed.
    pub moment: f64,
    /// Which CPU (an index into the stub's thread list, modulo its length).
    pub cpu: u64,
    /// Register faults: the register number (see [`REGISTER_NAMES`]); memory faults: unused.
    pub register: usize,
    /// Register faults: the bit flipped (0-63; 0-21 for rflags).
    pub bit: u32,
    /// Memory faults: which section range (an index modulo the range count) and where in it (a fraction).
    pub range_pick: u64,
    /// Memory faults: the position in the range, a fraction of its length.
    pub offset_fraction: f64,
    /// Memory faults: the mask XORed into the word (1 to 3 bits set).
    pub mask: u64,
    /// Instruction points ([`PointMode::Instruction`]): where in the text of the workload's cells under test, as
    /// a fraction of their total size (the instruction at or before that byte is the point).
    pub point_fraction: f64,
}

/// How the moment of an injection is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointMode {
    /// A breakpoint on one instruction drawn from the text of the cells the workload exercises; the fault is
    /// applied on its first hit, or not at all ("not activated") if the workload never executes it.
    Instruction,
    /// A moment drawn as a fraction of the workload's expected duration; the fault hits whatever runs then.
    Time,
}

impl PointMode {
    /// The name on the command line and in the CSV.
    pub fn name(self) -> &'static str {
        match self {
            PointMode::Instruction => "instruction",
            PointMode::Time => "time",
        }
    }

    /// The mode named `name` (`instruction` or `time`).
    pub fn from_name(name: &str) -> Option<PointMode> {
        [PointMode::Instruction, PointMode::Time].into_iter().find(|mode| mode.name() == name)
    }
}

/// The plan of injection `index` of the campaign with `seed`.
pub fn plan(seed: u64, index: usize) -> Plan {
    let mut random = SplitMix::new(seed ^ (index as u64).wrapping_mul(0xd134_2543_de82_ef95));
    let fault = FAULT_TYPES[random.below(FAULT_TYPES.len() as u64) as usize];
    let workload = WORKLOADS[index % WORKLOADS.len()];
    let moment = 0.05 + 0.9 * random.fraction();
    let cpu = random.next_u64();
    let register = random.below(REGISTER_NAMES.len() as u64) as usize;
    let bit = if register == crate::gdb_remote::RFLAGS { random.below(22) } else { random.below(64) } as u32;
    let range_pick = random.next_u64();
    let offset_fraction = random.fraction();
    let mut mask = 0u64;
    for _ in 0..=random.below(3) {
        mask |= 1 << random.below(64);
    }
    // Drawn last, so the other fields of a seed's plans are the same as before instruction points existed.
    let point_fraction = random.fraction();
    Plan { index, fault, workload, moment, cpu, register, bit, range_pick, offset_fraction, mask, point_fraction }
}

/// The indices of the first `count` injections of a campaign over `workloads` (a subset of [`WORKLOADS`]): the
/// indices `i` whose workload `WORKLOADS[i mod 5]` is selected. So a campaign over some workloads injects exactly
/// the plans the full campaign with the same seed injects into those workloads (`--count 40 --workloads swap`
/// repeats the 40 swap injections of `--count 200`); with all five it is `0..count`.
pub fn indices(workloads: &[Workload], count: usize) -> Vec<usize> {
    if workloads.is_empty() {
        return Vec::new();
    }
    (0..).filter(|index| workloads.contains(&WORKLOADS[index % WORKLOADS.len()])).take(count).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_reproducible_and_vary() {
        assert_eq!(plan(2026, 7), plan(2026, 7));
        assert_ne!(plan(2026, 7), plan(2027, 7));
        let plans: Vec<Plan> = (0..300).map(|index| plan(1, index)).collect();
        for fault in FAULT_TYPES {
            assert!(plans.iter().filter(|plan| plan.fault == fault).count() > 60, "{fault:?} is drawn");
        }
        assert!(plans.iter().all(|plan| (0.05..0.95).contains(&plan.moment) && plan.mask != 0));
        assert!(plans.iter().all(|plan| plan.register != crate::gdb_remote::RFLAGS || plan.bit < 22));
        assert!(plans.iter().all(|plan| (0.0..1.0).contains(&plan.point_fraction)));
        assert!(plans.iter().filter(|plan| plan.point_fraction < 0.5).count() > 100, "point fractions spread");
        assert_eq!(PointMode::from_name("instruction"), Some(PointMode::Instruction));
        assert_eq!(PointMode::from_name(PointMode::Time.name()), Some(PointMode::Time));
        assert_eq!(PointMode::from_name("bogus"), None);
    }

    #[test]
    fn selected_workloads_keep_their_plans() {
        assert_eq!(indices(&WORKLOADS, 7), (0..7).collect::<Vec<_>>());
        let swap = indices(&[Workload::Swap], 40);
        assert_eq!(swap.len(), 40);
        assert_eq!(&swap[..3], &[3, 8, 13]);
        assert!(swap.iter().all(|&index| plan(2026, index).workload == Workload::Swap));
        let full: Vec<usize> = (0..200).filter(|&index| plan(2026, index).workload == Workload::Swap).collect();
        assert_eq!(swap, full, "the same plans as the full campaign's swap injections");
        let two = indices(&[Workload::Shell, Workload::Swap], 5);
        assert_eq!(two, [2, 3, 7, 8, 12]);
        assert!(indices(&[], 5).is_empty());
    }
}
