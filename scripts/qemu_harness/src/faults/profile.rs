//! The execution profile behind instruction points: which code each workload really runs.
//!
//! On the campaign's first boot, after the golden runs, each workload runs again (at least [`MIN_RUNS`], until
//! [`TARGET_SAMPLES`] samples or [`MAX_RUNS`] runs) while the harness samples RIP through the gdb stub (stop the
//! guest, read RIP, let it run again, every `SAMPLE_INTERVAL` plus the stub's round trips). A sample inside a candidate function (see
//! [`super::points`]) names the *basic block* holding it (decoded from the function's first byte: blocks start at
//! the function's entry, at branch targets inside it and after every branch, call or return); a sample just after
//! a `hlt` (a halted CPU, not the workload) is dropped. Instruction points are drawn uniformly over the bytes of
//! the seen blocks of the injection's workload, so a point lies on a path the workload executes. The profile is
//! written to `profile.txt` in the output directory and can be read back with `--profile FILE`: the seed then
//! draws the same points again (sampling itself depends on the guest's timing). Blocks are named by cell,
//! function (mangled name) and offsets in it, not by address, so a profile holds across boots and across a swap
//! that reloads a cell elsewhere.

use super::points::Function;
use super::workload::{WORKLOADS, Workload};
use crate::gdb_remote::{GdbRemote, GdbResult, RIP};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic};
use std::collections::{BTreeMap, BTreeSet};

/// How long the guest runs between two samples at least (the stub's round trips add to it).
pub const SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);
/// The fewest sampled runs of each workload.
pub const MIN_RUNS: usize = 2;
/// The most sampled runs of each workload.
pub const MAX_RUNS: usize = 10;
/// Sampled runs of a workload stop once this many RIP samples were taken.
pub const TARGET_SAMPLES: usize = 200;

/// One basic block of a function: `start..end` are byte offsets from the function's first byte.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Block {
    /// The cell, or `nano_core`.
    pub cell: String,
    /// The function's mangled name (as in [`Function::name`]).
    pub function: String,
    /// First byte's offset.
    pub start: u64,
    /// Offset of the first byte after it.
    pub end: u64,
}

/// The seen blocks, by workload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Every seen block, by workload.
    pub seen: BTreeMap<Workload, BTreeSet<Block>>,
    /// RIP samples taken, by workload (0 for a profile read from a file).
    pub samples: BTreeMap<Workload, usize>,
    /// Samples that named a block (in a candidate function, not after `hlt`), by workload.
    pub kept: BTreeMap<Workload, usize>,
    /// Where the other samples were, most frequent first (at most [`OUTSIDE_PLACES`]), by workload.
    pub outside: BTreeMap<Workload, Vec<(String, usize)>>,
}

/// How many places outside the candidates a profile's comments name per workload.
pub const OUTSIDE_PLACES: usize = 4;

/// Why a profile file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileError {
    /// A line is not `WORKLOAD CELL FUNCTION START END` (hex offsets, START < END) with a known workload.
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProfileError::BadLine { line, text } => write!(
                f,
                "profile line {line} is not `WORKLOAD CELL FUNCTION START END` with a known workload: {text:?}"
            ),
        }
    }
}

/// The basic block of `code` (a function's bytes at `start`) holding the instruction at `rip`, as offsets from
/// `start`, and whether the instruction before `rip` is `hlt`; `None` if `rip` is not an instruction boundary of
/// the decoding from the first byte (or the bytes do not decode up to it).
pub fn basic_block(code: &[u8], start: u64, rip: u64) -> Option<(u64, u64, bool)> {
    let end = start + code.len() as u64;
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    let (mut leaders, mut boundary, mut after_hlt) = (BTreeSet::from([start]), false, false);
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            break;
        }
        if instruction.ip() == rip {
            boundary = true;
        }
        if instruction.next_ip() == rip {
            after_hlt = instruction.mnemonic() == Mnemonic::Hlt;
        }
        if instruction.flow_control() != FlowControl::Next {
            leaders.insert(instruction.next_ip());
            let target = instruction.near_branch_target();
            if (start..end).contains(&target) {
                leaders.insert(target);
            }
        }
    }
    if !boundary {
        return None;
    }
    let first = *leaders.range(..=rip).next_back()?;
    let last = leaders.range(rip + 1..).next().copied().unwrap_or(end).min(end);
    Some((first - start, last - start, after_hlt))
}

impl Profile {
    /// Adds the block of every sample in `rips` that lies in `function` (whose bytes are `code`) to `workload`'s
    /// seen blocks, dropping samples just after a `hlt`; returns how many samples were kept.
    pub fn record(&mut self, workload: Workload, function: &Function, code: &[u8], rips: &[u64]) -> usize {
        let seen = self.seen.entry(workload).or_default();
        let mut kept = 0;
        for &rip in rips.iter().filter(|rip| (function.start..function.start + function.size).contains(rip)) {
            if let Some((start, end, false)) = basic_block(code, function.start, rip) {
                seen.insert(Block { cell: function.cell.clone(), function: function.name.clone(), start, end });
                kept += 1;
            }
        }
        *self.kept.entry(workload).or_default() += kept;
        kept
    }

    /// The seen blocks of `workload` among `candidates`, each as a [`Function`] covering just the block (same
    /// cell and name; start and size of the block); `None` if the profile has none there (no profile, or
    /// sampling missed them all: points are then drawn from the whole candidates).
    pub fn blocks(&self, workload: Workload, candidates: &[Function]) -> Option<Vec<Function>> {
        let seen = self.seen.get(&workload)?;
        let blocks: Vec<Function> = seen
            .iter()
            .filter_map(|block| {
                let function = candidates
                    .iter()
                    .find(|function| function.cell == block.cell && function.name == block.function)?;
                (block.end <= function.size).then(|| Function {
                    cell: function.cell.clone(),
                    start: function.start + block.start,
                    size: block.end - block.start,
                    name: function.name.clone(),
                })
            })
            .collect();
        (!blocks.is_empty()).then_some(blocks)
    }

    /// The functions points of `workload` are drawn from: the seen blocks among `candidates` (see
    /// [`Profile::blocks`]) and every candidate function of the workload's focus cells
    /// ([`Workload::focus_cells`]) not already holding a seen block, in the candidates' order after the blocks;
    /// all of `candidates` if that is empty. Depends only on the profile and the candidates (the image's
    /// listings), so a seed and a `--profile` file draw the same points again.
    pub fn points(&self, workload: Workload, candidates: &[Function]) -> Vec<Function> {
        let mut points = self.blocks(workload, candidates).unwrap_or_default();
        let seen = self.seen.get(&workload);
        let focus = workload.focus_cells();
        points.extend(
            candidates
                .iter()
                .filter(|function| focus.contains(&function.cell.as_str()))
                .filter(|function| {
                    !seen.is_some_and(|seen| {
                        seen.iter().any(|block| block.cell == function.cell && block.function == function.name)
                    })
                })
                .cloned(),
        );
        if points.is_empty() { candidates.to_vec() } else { points }
    }

    /// The file form: a comment line per workload (samples, blocks, bytes), then one
    /// `WORKLOAD CELL FUNCTION START END` line per block (hex offsets).
    pub fn to_text(&self) -> String {
        let mut text =
            String::from("# basic blocks seen running during the profile runs: WORKLOAD CELL FUNCTION START END\n");
        for workload in self.samples.keys().chain(self.seen.keys()).collect::<BTreeSet<_>>() {
            let seen = self.seen.get(workload).cloned().unwrap_or_default();
            let samples = self.samples.get(workload).copied().unwrap_or(0);
            let kept = self.kept.get(workload).copied().unwrap_or(0);
            let outside: Vec<String> = self
                .outside
                .get(workload)
                .into_iter()
                .flatten()
                .map(|(place, count)| format!("{place} {count}"))
                .collect();
            let bytes: u64 = seen.iter().map(|block| block.end - block.start).sum();
            let functions = seen.iter().map(|block| (&block.cell, &block.function)).collect::<BTreeSet<_>>().len();
            text += &format!(
                "# {}: {samples} RIP samples ({kept} in blocks of candidates), {} blocks ({bytes} bytes) in \
                 {functions} functions; most other samples: {}\n",
                workload.name(),
                seen.len(),
                outside.join(", ")
            );
        }
        for (workload, seen) in &self.seen {
            for block in seen {
                text += &format!(
                    "{} {} {} {:#x} {:#x}\n",
                    workload.name(),
                    block.cell,
                    block.function,
                    block.start,
                    block.end
                );
            }
        }
        text
    }

    /// Parses [`Profile::to_text`]'s form (`#` lines and blank lines are skipped).
    ///
    /// # Errors
    /// [`ProfileError::BadLine`] for any other line that is not five words with a known workload and hex
    /// offsets `START < END`.
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let mut profile = Profile::default();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || ProfileError::BadLine { line: number + 1, text: line.to_string() };
            let words: Vec<&str> = line.split_whitespace().collect();
            let [workload, cell, function, start, end] = words.as_slice() else { return Err(bad()) };
            let workload = WORKLOADS
                .iter()
                .chain(&[Workload::IpcPingPong])
                .find(|known| known.name() == *workload)
                .ok_or_else(bad)?;
            let hex = |text: &str| text.strip_prefix("0x").and_then(|digits| u64::from_str_radix(digits, 16).ok());
            let (Some(start), Some(end)) = (hex(start), hex(end)) else { return Err(bad()) };
            if start >= end {
                return Err(bad());
            }
            let block = Block { cell: cell.to_string(), function: function.to_string(), start, end };
            profile.seen.entry(*workload).or_default().insert(block);
        }
        Ok(profile)
    }
}

/// Stops the guest, reads the RIP of every CPU in `threads` (with one CPU: of the stopped one, without
/// selecting it), lets it run again.
///
/// # Errors
/// Stub errors (the guest is resumed if it was stopped and the stub still answers).
pub fn sample_rips(gdb: &mut GdbRemote, threads: &[String]) -> GdbResult<Vec<u64>> {
    gdb.interrupt()?;
    let rips = (|| {
        if threads.len() <= 1 {
            return Ok(vec![gdb.read_register(RIP)?.0]);
        }
        let mut rips = Vec::new();
        for thread in threads {
            gdb.select_thread(thread)?;
            rips.push(gdb.read_register(RIP)?.0);
        }
        Ok(rips)
    })();
    gdb.resume()?;
    rips
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::points;

    // 0x100: test edi, edi; 0x102: je 0x108; 0x104: inc eax; 0x106: jmp 0x10a; 0x108: dec eax; 0x10a: hlt;
    // 0x10b: ret
    const CODE: [u8; 12] = [0x85, 0xff, 0x74, 0x04, 0xff, 0xc0, 0xeb, 0x02, 0xff, 0xc8, 0xf4, 0xc3];

    #[test]
    fn basic_blocks() {
        assert_eq!(basic_block(&CODE, 0x100, 0x100), Some((0, 4, false)));
        assert_eq!(basic_block(&CODE, 0x100, 0x102), Some((0, 4, false)));
        assert_eq!(basic_block(&CODE, 0x100, 0x104), Some((4, 8, false)));
        assert_eq!(basic_block(&CODE, 0x100, 0x108), Some((8, 10, false)));
        assert_eq!(basic_block(&CODE, 0x100, 0x10a), Some((10, 12, false)));
        assert_eq!(basic_block(&CODE, 0x100, 0x10b), Some((10, 12, true)), "after hlt");
        assert_eq!(basic_block(&CODE, 0x100, 0x101), None, "inside an instruction");
        assert_eq!(basic_block(&CODE, 0x100, 0x200), None, "outside");
    }

    fn blocks_of(profile: &Profile, function: &Function) -> Vec<Function> {
        profile.blocks(Workload::Heap, std::slice::from_ref(function)).unwrap()
    }

    #[test]
    fn focus_cells_widen_the_points() {
        let f = |cell: &str, start, size, name: &str| Function { cell: cell.into(), start, size, name: name.into() };
        let candidates = [
            f("sync", 0x100, 12, "wait"),
            f("ping_pong", 0x200, 12, "send"),
            f("ping_pong", 0x300, 40, "receive"),
            f("task", 0x400, 8, "spawn"),
        ];
        // No profile: every candidate of the focus cell, not the whole candidates.
        let empty = Profile::default();
        assert_eq!(empty.points(Workload::Channels, &candidates), [candidates[1].clone(), candidates[2].clone()]);
        // A workload without focus cells and no profile: the whole candidates, as before.
        assert_eq!(empty.points(Workload::Heap, &candidates), candidates);
        // Seen blocks first; a focus function holding a seen block contributes only that block.
        let mut profile = Profile::default();
        let send = f("ping_pong", 0x200, 12, "send");
        assert_eq!(profile.record(Workload::Channels, &send, &CODE, &[0x204]), 1);
        assert_eq!(profile.record(Workload::Channels, &candidates[0], &CODE, &[0x100]), 1);
        let points = profile.points(Workload::Channels, &candidates);
        let expected = [f("ping_pong", 0x204, 4, "send"), f("sync", 0x100, 4, "wait"), candidates[2].clone()];
        assert_eq!(points, expected);
        // The same profile, read back from its file form, and the same listings draw the same points.
        let again = Profile::parse(&profile.to_text()).unwrap();
        assert_eq!(again.points(Workload::Channels, &candidates), points);
        assert_eq!(points::choose(&points, 0.5), points::choose(&again.points(Workload::Channels, &candidates), 0.5));
    }

    #[test]
    fn record_blocks_and_file_form() {
        let function = Function { cell: "a".into(), start: 0x100, size: 12, name: "f".into() };
        let mut profile = Profile::default();
        assert_eq!(profile.blocks(Workload::Heap, std::slice::from_ref(&function)), None, "no profile");
        // In the function: two samples in one block, one after hlt (dropped), one inside an instruction (dropped);
        // one outside it.
        assert_eq!(profile.record(Workload::Heap, &function, &CODE, &[0x104, 0x106, 0x10b, 0x101, 0x50]), 2);
        let moved = Function { start: 0x900, ..function.clone() };
        let blocks = profile.blocks(Workload::Heap, &[moved]).unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!((blocks[0].start, blocks[0].size), (0x904, 4), "found by name after a move");
        let other = Function { name: "g".into(), ..function.clone() };
        assert_eq!(profile.blocks(Workload::Heap, &[other]), None, "another image's profile");
        profile.samples.insert(Workload::Heap, 5);
        assert_eq!(profile.points(Workload::Heap, std::slice::from_ref(&function)), blocks_of(&profile, &function));
        let text = profile.to_text();
        assert!(
            text.contains("# heap: 5 RIP samples (2 in blocks of candidates), 1 blocks (4 bytes) in 1 functions"),
            "{text}"
        );
        assert!(text.contains("heap a f 0x4 0x8\n"), "{text}");
        assert_eq!(Profile::parse(&text).unwrap().seen, profile.seen);
        assert_eq!(
            Profile::parse("heap a f 0x4\n"),
            Err(ProfileError::BadLine { line: 1, text: "heap a f 0x4".into() })
        );
        assert!(Profile::parse("heap a f 0x8 0x4\n").is_err());
        assert!(Profile::parse("nosuch a f 0x0 0x4\n").is_err());
    }
}
