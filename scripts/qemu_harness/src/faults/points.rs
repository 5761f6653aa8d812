//! Instruction injection points and where a fault landed.
//!
//! **Points** ([`super::plan::PointMode::Instruction`]): the candidates are the functions of the cells a workload
//! exercises (the guest's `sections CELL` lists each function's text section: start, size, mangled name) and the
//! base image's functions named in `nano_core.syms` that it exercises. The campaign narrows them to the basic
//! blocks its profile saw running ([`super::profile`]). One byte is drawn uniformly over their total size; the
//! function (or block) holding it is decoded from its first byte (iced-x86) and the instruction covering that
//! byte is the point, so every point is an instruction boundary.
//!
//! **Landing**: from RIP when the fault is applied, the byte before it, the cells' ranges and the function
//! listings: `idle` (the CPU halted: the byte before RIP is `hlt`, or a function named `idle`), `interrupt` (the
//! `interrupts` or `apic` cell, or a function named like an interrupt or tick handler), `context-switch` (a
//! `switch` function of the `task` or `scheduler` cell), `nano_core` (the base image's text), `task:CELL` (code
//! of another cell, run by a task), `other` (RIP outside all code: a wild jump).

use super::inject::SectionRange;
use crate::gdb_remote::REGISTER_NAMES;
use iced_x86::{Decoder, DecoderOptions, Instruction, OpKind, Register};

/// One function's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// The cell, or `nano_core`.
    pub cell: String,
    /// First address.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// Mangled name (for cells: the section name, `.text.` and all).
    pub name: String,
}

impl Function {
    fn contains(&self, address: u64) -> bool {
        (self.start..self.start + self.size).contains(&address)
    }
}

/// The `Text` functions in `sections CELL` output (`section CELL Text 0xSTART SIZE NAME`).
pub fn parse_functions(output: &str) -> Vec<Function> {
    output
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let ["section", cell, "Text", start, size, name] = words.as_slice() else { return None };
            let start = u64::from_str_radix(start.strip_prefix("0x")?, 16).ok()?;
            let size: u64 = size.parse().ok()?;
            (size > 0).then(|| Function { cell: cell.to_string(), start, size, name: name.to_string() })
        })
        .collect()
}

/// The base image's text range and functions (from `nano_core.syms`).
#[derive(Debug, Clone, Default)]
pub struct NanoCore {
    /// `__text_start..__text_end`.
    pub text: std::ops::Range<u64>,
    /// Functions (`T` symbols with a size), sorted by address.
    pub functions: Vec<Function>,
}

/// Parses `nano_core.syms` (`<hex address> <hex size> <kind> <mangled name>` per line, `#` comments).
pub fn parse_nano_core(text: &str) -> NanoCore {
    let mut nano = NanoCore::default();
    let (mut start, mut end) = (None, None);
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [address, size, kind, name] = words.as_slice() else { continue };
        let (Ok(address), Ok(size)) = (u64::from_str_radix(address, 16), u64::from_str_radix(size, 16)) else {
            continue;
        };
        match *name {
            "__text_start" => start = Some(address),
            "__text_end" => end = Some(address),
            _ if *kind == "T" && size > 0 => {
                nano.functions.push(Function { cell: "nano_core".into(), start: address, size, name: name.to_string() })
            }
            _ => {}
        }
    }
    if let (Some(start), Some(end)) = (start, end) {
        nano.text = start..end;
    }
    nano.functions.sort_by_key(|function| function.start);
    nano
}

/// The function holding the byte at `fraction` (in [0, 1)) of the candidates' total size, and that byte's
/// offset in it; `None` without candidates.
pub fn choose(candidates: &[Function], fraction: f64) -> Option<(&Function, u64)> {
    let total: u64 = candidates.iter().map(|function| function.size).sum();
    let mut at = ((fraction.clamp(0.0, 1.0) * total as f64) as u64).min(total.checked_sub(1)?);
    for function in candidates {
        if at < function.size {
            return Some((function, at));
        }
        at -= function.size;
    }
    None
}

/// The address of the instruction covering byte `offset` of `code` (a function's bytes at `start`), decoding
/// from its first byte; `None` if the bytes up to there do not decode.
pub fn instruction_at(code: &[u8], start: u64, offset: u64) -> Option<u64> {
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            return None;
        }
        if instruction.next_ip() > start + offset {
            return Some(instruction.ip());
        }
    }
    None
}

/// A memory operand: base register, index register and scale (gdb register numbers), displacement (absolute
/// for RIP-relative operands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryOperand {
    /// Base register, if any.
    pub base: Option<usize>,
    /// Index register and scale, if any.
    pub index: Option<(usize, u32)>,
    /// Displacement (the whole address for RIP-relative operands).
    pub displacement: u64,
}

/// The gdb number of a 64-bit general register (the first 16 of [`REGISTER_NAMES`]; other names, e.g. `eax`,
/// match none).
fn gdb_register(register: Register) -> Option<usize> {
    let name = format!("{register:?}").to_lowercase();
    REGISTER_NAMES[..16].iter().position(|known| *known == name)
}

/// The memory operand of the instruction at the start of `bytes` (at `address`), if it has one addressed by
/// 64-bit registers (an `fs`/`gs`-relative or 32-bit-addressed operand gives `None`).
pub fn memory_operand(bytes: &[u8], address: u64) -> Option<MemoryOperand> {
    let mut decoder = Decoder::with_ip(64, bytes, address, DecoderOptions::NONE);
    let instruction = decoder.decode();
    if instruction.is_invalid()
        || !(0..instruction.op_count()).any(|operand| instruction.op_kind(operand) == OpKind::Memory)
        || matches!(instruction.segment_prefix(), Register::FS | Register::GS)
    {
        return None;
    }
    let (base, index) = (instruction.memory_base(), instruction.memory_index());
    if base == Register::RIP {
        return Some(MemoryOperand { base: None, index: None, displacement: instruction.memory_displacement64() });
    }
    let base = match base {
        Register::None => None,
        register => Some(gdb_register(register)?),
    };
    let index = match index {
        Register::None => None,
        register => Some((gdb_register(register)?, instruction.memory_index_scale())),
    };
    Some(MemoryOperand { base, index, displacement: instruction.memory_displacement64() })
}

/// Where a fault landed: a category (see the module docs) and the place (cell or function).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landing {
    /// `idle`, `interrupt`, `context-switch`, `nano_core`, `task:CELL` or `other`.
    pub category: String,
    /// The cell and function (mangled names are shortened to their last identifiers).
    pub place: String,
}

/// The demangled name without hashes (`rustc-demangle`, alternate form), cut to 100 characters; the section
/// name prefixes `.text.` and `unlikely.` are dropped.
pub fn short_name(mangled: &str) -> String {
    let name = mangled.strip_prefix(".text.").unwrap_or(mangled);
    let name = name.strip_prefix("unlikely.").unwrap_or(name);
    format!("{:#}", rustc_demangle::demangle(name)).chars().take(100).collect()
}

/// Classifies RIP `rip` (with `after_hlt`: the byte before it is `hlt`).
pub fn landing(rip: u64, after_hlt: bool, ranges: &[SectionRange], functions: &[Function], nano: &NanoCore) -> Landing {
    let function = functions.iter().chain(&nano.functions).find(|function| function.contains(rip));
    let name = function.map(|function| short_name(&function.name)).unwrap_or_default();
    let cell = ranges
        .iter()
        .find(|range| range.kind == "Text" && (range.start..range.end).contains(&rip))
        .map(|range| range.cell.clone())
        .or_else(|| nano.text.contains(&rip).then(|| "nano_core".to_string()));
    let place = match (&cell, name.is_empty()) {
        (Some(cell), false) => format!("{cell}:{name}"),
        (Some(cell), true) => cell.clone(),
        (None, _) => format!("{rip:#x}"),
    };
    let lower = name.to_lowercase();
    let category = match cell.as_deref() {
        _ if after_hlt || lower.contains("idle") => "idle".to_string(),
        None => "other".to_string(),
        Some("interrupts" | "apic") => "interrupt".to_string(),
        Some(_) if lower.contains("interrupt") || lower.contains("tick") || lower.contains("handler") => {
            "interrupt".to_string()
        }
        Some("task" | "scheduler") if lower.contains("switch") => "context-switch".to_string(),
        Some("nano_core") => "nano_core".to_string(),
        Some(cell) => format!("task:{cell}"),
    };
    Landing { category, place }
}

/// The summary's group of a landing category: `task:CELL` counts as `task-code`; no landing (nothing was
/// applied) is `none`.
pub fn landing_group(category: &str) -> String {
    if category.starts_with("task:") {
        "task-code".to_string()
    } else if category.is_empty() {
        "none".to_string()
    } else {
        category.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_points_and_operands() {
        let listing = "section shell Text 0xffffffff90001000 16 .text._RNvCs1_5shell3run\n\
                       section shell Data 0xffffffff90009000 64 .data.x\n\
                       section shell Text 0xffffffff90002000 4 .text._RNvCs1_5shell4idle\n";
        let functions = parse_functions(listing);
        assert_eq!(functions.len(), 2);
        assert_eq!(choose(&functions, 0.0).map(|(f, at)| (f.start, at)), Some((0xffffffff90001000, 0)));
        assert_eq!(choose(&functions, 0.99).map(|(f, at)| (f.start, at)), Some((0xffffffff90002000, 3)));
        assert!(choose(&[], 0.5).is_none());
        // push rbp; mov rbp, rsp; mov rax, [rbx + rcx*8 + 0x10]; ret
        let code = [0x55, 0x48, 0x89, 0xe5, 0x48, 0x8b, 0x44, 0xcb, 0x10, 0xc3];
        assert_eq!(instruction_at(&code, 0x100, 0), Some(0x100));
        assert_eq!(instruction_at(&code, 0x100, 2), Some(0x101));
        assert_eq!(instruction_at(&code, 0x100, 8), Some(0x104));
        assert_eq!(instruction_at(&code, 0x100, 9), Some(0x109));
        assert_eq!(instruction_at(&code, 0x100, 10), None);
        let operand = memory_operand(&code[4..], 0x104).unwrap();
        assert_eq!(operand, MemoryOperand { base: Some(1), index: Some((2, 8)), displacement: 0x10 });
        assert_eq!(memory_operand(&code[1..], 0x101), None); // mov rbp, rsp has none
        // mov rax, [rip + 0x20] at 0x200 (7 bytes): the absolute address.
        let relative = memory_operand(&[0x48, 0x8b, 0x05, 0x20, 0, 0, 0], 0x200).unwrap();
        assert_eq!(relative.displacement, 0x227);
        // mov rax, gs:[0x10]: per-CPU data, not followed.
        assert_eq!(memory_operand(&[0x65, 0x48, 0x8b, 0x04, 0x25, 0x10, 0, 0, 0], 0), None);
    }

    #[test]
    fn names_and_landings() {
        assert_eq!(short_name("_RNvNtCs4QtP1EXHNth_6memory4heap5alloc"), "memory::heap::alloc");
        assert_eq!(short_name(".text._RNvCs1ip1M73Qmru_4task14context_switch"), "task::context_switch");
        assert_eq!(short_name("plain"), "plain");
        assert_eq!(short_name(".text.unlikely._RNvCs1ip1M73Qmru_4task4grow"), "task::grow");
        let ranges = super::super::inject::parse_ranges(
            "section task Text 0xffffffff90000000 0xffffffff90001000\n\
             section shell Text 0xffffffff90010000 0xffffffff90020000\n\
             section interrupts Text 0xffffffff90030000 0xffffffff90031000\n",
        );
        let functions =
            parse_functions("section task Text 0xffffffff90000100 64 .text._RNvCs1ip1M73Qmru_4task14context_switch\n");
        let nano = parse_nano_core(
            "# header\nffffffff80100000 0 T __text_start\nffffffff80200000 0 R __text_end\n\
             ffffffff80100100 40 T _RNvNtCs4QtP1EXHNth_6memory4heap5alloc\n",
        );
        let at = |rip, hlt| landing(rip, hlt, &ranges, &functions, &nano).category;
        assert_eq!(at(0xffffffff90000110, false), "context-switch");
        assert_eq!(at(0xffffffff90000800, false), "task:task");
        assert_eq!(at(0xffffffff90010010, false), "task:shell");
        assert_eq!(at(0xffffffff90010010, true), "idle");
        assert_eq!(at(0xffffffff90030010, false), "interrupt");
        assert_eq!(at(0xffffffff80100110, false), "nano_core");
        assert_eq!(
            landing(0xffffffff80100110, false, &ranges, &functions, &nano).place,
            "nano_core:memory::heap::alloc"
        );
        assert_eq!(at(0x1234, false), "other");
        assert_eq!(landing_group("task:shell"), "task-code");
        assert_eq!(landing_group("idle"), "idle");
        assert_eq!(landing_group(""), "none");
    }
}
