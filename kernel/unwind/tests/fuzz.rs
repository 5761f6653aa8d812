//! Fuzz-style robustness: random mutations of real `.eh_frame` and LSDA bytes (the fixture cell's, as LLVM emitted
//! them for the kernel target, and this executable's) must give errors or results, never a panic.

mod common;

use common::{loaded_fixture, register_host};
use memory_structs::VirtualAddress;
use unwind::{
    FrameCursor, FrameIter, RA, RBP, RSP, Registers, SliceStack, UnwindInfoDescription, UnwindRegistry, find_action,
};

extern "C-unwind" fn unreachable_resume(_exception: *mut u8) {
    std::process::abort();
}

/// xorshift64* (Vigna): deterministic, so a failure reproduces.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

fn mutate(random: &mut Random, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    match random.below(4) {
        0 => bytes.truncate(random.below(original.len() + 1)),
        _ => {
            for _ in 0..=random.below(4) {
                let index = random.below(bytes.len());
                bytes[index] = match random.below(3) {
                    0 => random.next() as u8,
                    1 => bytes[index] ^ (1 << random.below(8)),
                    _ => [0, 0xff, 0x7f, 0x80][random.below(4)],
                };
            }
        }
    }
    bytes
}

/// The loaded fixture's relocated `.eh_frame` bytes and its LSDAs (address, bytes to the end of the table).
fn fixture_sections() -> (Vec<u8>, Vec<(u64, Vec<u8>)>) {
    let fixture = loaded_fixture(unreachable_resume as *const () as usize);
    let section_bytes = |address: usize, size: usize| {
        // SAFETY: a loaded, finalized read-only section of a cell that stays loaded.
        unsafe { std::slice::from_raw_parts(address as *const u8, size) }.to_vec()
    };
    let eh_frame = fixture.cell.eh_frames().next().unwrap();
    let eh_frame = section_bytes(eh_frame.address().value(), eh_frame.size_in_bytes());
    let lsdas = fixture
        .cell
        .gcc_except_tables()
        .map(|table| (table.address().value() as u64, section_bytes(table.address().value(), table.size_in_bytes())))
        .collect();
    (eh_frame, lsdas)
}

/// Registers `bytes` as an `.eh_frame` over a huge text range and walks from every indexed FDE.
fn exercise_eh_frame(bytes: &[u8], random: &mut Random) {
    if bytes.is_empty() {
        return;
    }
    let start = bytes.as_ptr() as usize;
    let registry = UnwindRegistry::new();
    let description = UnwindInfoDescription {
        name: "fuzz".into(),
        text: VirtualAddress::new(0x1000)..VirtualAddress::new(0x7fff_ffff_0000),
        eh_frame: VirtualAddress::new(start)..VirtualAddress::new(start + bytes.len()),
        gcc_except_tables: Vec::new(),
        owner: None,
    };
    // SAFETY: `bytes` outlives the registry (dropped at the end of this function) and does not change.
    let Ok(info) = (unsafe { registry.register(description) }) else { return };
    let words: Vec<u64> = (0..64).map(|_| random.next() % 0x1_0000).collect();
    for fde in info.fdes().iter().take(16) {
        for address in [fde.function_start, (fde.function_start + fde.function_end) / 2, fde.function_end - 1] {
            let mut registers = Registers::new();
            registers.set(RA, Some(address));
            registers.set(RSP, Some(0x8000));
            registers.set(RBP, Some(0x8040));
            let stack = SliceStack { base: 0x8000, words: &words };
            let mut frames = FrameIter::new(&registry, stack, FrameCursor::exact(registers)).with_limit(8);
            while let Ok(Some(_)) = frames.next_frame() {}
        }
    }
}

#[test]
fn mutated_eh_frames_never_panic() {
    let (fixture_eh_frame, _) = fixture_sections();
    // A slice of this executable's own .eh_frame too: more CIEs, FDEs and CFA programs.
    let registry = UnwindRegistry::new();
    let host = register_host(&registry);
    let host_fdes = host.fdes().len();
    assert!(host_fdes > 100, "the host .eh_frame indexes ({host_fdes} FDEs)");
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    exercise_eh_frame(&fixture_eh_frame, &mut random);
    for _ in 0..3000 {
        let mutated = mutate(&mut random, &fixture_eh_frame);
        exercise_eh_frame(&mutated, &mut random);
    }
}

#[test]
fn mutated_lsdas_never_panic() {
    let (_, lsdas) = fixture_sections();
    assert!(!lsdas.is_empty(), "the fixture has LSDAs");
    let mut random = Random(0x0123_4567_89ab_cdef);
    for _ in 0..20_000 {
        let (address, original) = &lsdas[random.below(lsdas.len())];
        let mutated = mutate(&mut random, original);
        for lookup in 0..8 {
            let _ = find_action(&mutated, *address, 0x1000, 0x1000 + lookup * 16 + random.below(16) as u64);
        }
        // Extreme addresses must not overflow either.
        let _ = find_action(&mutated, u64::MAX - 4, u64::MAX - 8, u64::MAX);
    }
}
