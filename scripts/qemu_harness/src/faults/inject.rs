//! Applying one fault through the gdb stub to a stopped guest, and locating addresses in cells.

use super::plan::Plan;
use crate::gdb_remote::{GdbRemote, GdbResult, REGISTER_NAMES, RIP, RSP};
use iced_x86::{Decoder, DecoderOptions, Instruction};

/// One loaded cell's section range of one kind (from the guest's `sections` command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionRange {
    /// The cell.
    pub cell: String,
    /// `Text`, `ReadOnlyData` or `Data`.
    pub kind: String,
    /// First address.
    pub start: u64,
    /// First address after the range.
    pub end: u64,
}

/// Parses `sections` output lines `section CELL KIND START END` (text, rodata and data ranges only), sorted by
/// cell and kind. Other lines are ignored.
pub fn parse_ranges(output: &str) -> Vec<SectionRange> {
    let mut ranges: Vec<SectionRange> = output
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (Some("section"), Some(cell), Some(kind), Some(start), Some(end), None) =
                (words.next(), words.next(), words.next(), words.next(), words.next(), words.next())
            else {
                return None;
            };
            if !matches!(kind, "Text" | "ReadOnlyData" | "Data") {
                return None;
            }
            let parse = |text: &str| u64::from_str_radix(text.strip_prefix("0x")?, 16).ok();
            let (start, end) = (parse(start)?, parse(end)?);
            (end >= start + 8).then(|| SectionRange { cell: cell.into(), kind: kind.into(), start, end })
        })
        .collect();
    ranges.sort_by(|a, b| (&a.cell, &a.kind).cmp(&(&b.cell, &b.kind)));
    ranges
}

/// The cell (and kind) holding `address`, or `other` (the base image, stacks, heap).
pub fn locate(ranges: &[SectionRange], address: u64) -> String {
    ranges
        .iter()
        .find(|range| (range.start..range.end).contains(&address))
        .map_or_else(|| "other".to_string(), |range| format!("{}/{}", range.cell, range.kind))
}

/// Selects the plan's CPU (thread) on a stopped guest; returns its thread id.
///
/// # Errors
/// Stub errors.
pub fn select_cpu(gdb: &mut GdbRemote, pick: u64) -> GdbResult<String> {
    let threads = gdb.threads()?;
    let Some(thread) = threads.get(pick as usize % threads.len().max(1)).cloned() else {
        return Ok("1".into());
    };
    gdb.select_thread(&thread)?;
    Ok(thread)
}

/// Flips the plan's register bit; returns (target, address/bit text, detail).
///
/// # Errors
/// Stub errors.
pub fn flip_register(gdb: &mut GdbRemote, plan: &Plan, ranges: &[SectionRange]) -> GdbResult<(String, String)> {
    let (rip, _) = gdb.read_register(RIP)?;
    let (value, width) = gdb.read_register(plan.register)?;
    let bit = plan.bit.min(width as u32 * 8 - 1);
    gdb.write_register(plan.register, value ^ (1 << bit), width)?;
    Ok((
        format!("{} bit {bit} (rip {rip:#x})", REGISTER_NAMES[plan.register]),
        format!("rip in {}; {value:#x} -> {:#x}", locate(ranges, rip), value ^ (1 << bit)),
    ))
}

/// The length of the instruction in `bytes` (64-bit mode), or `None` if they do not decode.
pub fn instruction_length(bytes: &[u8], address: u64) -> Option<usize> {
    let mut decoder = Decoder::with_ip(64, bytes, address, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    decoder.decode_out(&mut instruction);
    (!instruction.is_invalid()).then(|| instruction.len())
}

/// Advances RIP over the instruction there; returns (address text, detail).
///
/// # Errors
/// Stub errors, or bytes that do not decode.
pub fn skip_instruction(gdb: &mut GdbRemote, ranges: &[SectionRange]) -> GdbResult<(String, String)> {
    let (rip, width) = gdb.read_register(RIP)?;
    let bytes = gdb.read_memory(rip, 15).or_else(|_| gdb.read_memory(rip, 1))?;
    let length = instruction_length(&bytes, rip)
        .ok_or_else(|| crate::gdb_remote::GdbError(format!("no instruction decodes at {rip:#x}")))?;
    gdb.write_register(RIP, rip + length as u64, width)?;
    Ok((format!("{rip:#x} +{length}"), format!("skipped {length} bytes in {}", locate(ranges, rip))))
}

/// The 8-byte word the plan corrupts: (range, address).
pub fn memory_target<'a>(plan: &Plan, ranges: &'a [SectionRange]) -> Option<(&'a SectionRange, u64)> {
    let range = ranges.get(plan.range_pick as usize % ranges.len().max(1))?;
    let span = range.end - range.start - 8;
    let address = (range.start + (plan.offset_fraction * span as f64) as u64) & !7;
    Some((range, address.max(range.start.next_multiple_of(8)).min(range.end - 8)))
}

/// XORs `mask` into the word at `address`; returns the original word.
///
/// # Errors
/// Stub errors.
pub fn corrupt_word(gdb: &mut GdbRemote, address: u64, mask: u64) -> GdbResult<u64> {
    let bytes = gdb.read_memory(address, 8)?;
    let original = u64::from_le_bytes(bytes.try_into().expect("8 bytes were read"));
    gdb.write_memory(address, &(original ^ mask).to_le_bytes())?;
    Ok(original)
}

/// The stack pointer of the selected CPU (for the IPC cases' return-address corruption).
///
/// # Errors
/// Stub errors.
pub fn stack_pointer(gdb: &mut GdbRemote) -> GdbResult<u64> {
    gdb.read_register(RSP).map(|(value, _)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_of_common_instructions() {
        assert_eq!(instruction_length(&[0x90], 0), Some(1)); // nop
        assert_eq!(instruction_length(&[0x48, 0x89, 0xe5], 0), Some(3)); // mov rbp, rsp
        assert_eq!(instruction_length(&[0xe8, 1, 2, 3, 4], 0), Some(5)); // call rel32
        assert_eq!(instruction_length(&[0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8], 0), Some(10)); // movabs
        assert_eq!(instruction_length(&[0x0f, 0x0b], 0), Some(2)); // ud2
        assert_eq!(instruction_length(&[0x48], 0), None); // a lone prefix
    }

    #[test]
    fn ranges_and_targets() {
        let output = "section greeting_v1 Text 0xffffffff90113000 0xffffffff90113052\n\
                      section greeting_v1 EhFrame 0xffffffff90114020 0xffffffff90114070\n\
                      section apic Data 0xffffffff9009d258 0xffffffff9009d278\nnoise\n";
        let ranges = parse_ranges(output);
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0].cell, "apic");
        assert_eq!(locate(&ranges, 0xffffffff90113010), "greeting_v1/Text");
        assert_eq!(locate(&ranges, 0x1000), "other");
        let plan = super::super::plan::plan(5, 0);
        for pick in 0..4 {
            let plan = Plan { range_pick: pick, offset_fraction: 0.999, ..plan.clone() };
            let (range, address) = memory_target(&plan, &ranges).unwrap();
            assert!(address % 8 == 0 && address >= range.start && address + 8 <= range.end);
        }
    }
}
