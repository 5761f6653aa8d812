//! Mutation test: thousands of randomly corrupted copies of a real object. Loading each must return `Ok` or
//! `Err`: never panic, never crash. A rejected mutant leaves the namespace unchanged and no region behind, with an
//! error a corrupted object can cause, naming the cell; a loaded one is published whole (both cells, every export
//! in the symbol map). Each outcome (loaded, parse error, link error) must occur a minimum number of times.

mod common;

use cell_namespace::LoadError;
use common::{leak_aligned, namespace_with, snapshot};

/// xorshift64*: a fixed-seed PRNG, so a failure reproduces.
struct Random(u64);

impl Random {
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

const ITERATIONS: usize = 3000;
/// Each outcome (loaded, a parse error, an error found after parsing) must occur at least this often, or the
/// corpus does not exercise it.
const MINIMUM_PER_OUTCOME: usize = ITERATIONS / 50;

/// How one mutant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Loaded,
    ParseError,
    /// Rejected after parsing: a section too large, an undefined or duplicate symbol, a relocation that does not
    /// fit.
    LinkError,
}

/// The outcome of a rejected load, or a message if the error is one that a corrupted object of a cell that is in
/// the manifest and the directory cannot cause (the loader confused its inputs), or names the wrong cell.
fn rejection(error: &LoadError) -> Result<Outcome, String> {
    let (outcome, cell) = match error {
        LoadError::Parse { cell, .. } => (Outcome::ParseError, cell),
        LoadError::SectionTooLarge { cell, .. }
        | LoadError::UndefinedSymbol { cell, .. }
        | LoadError::Relocation { cell, .. }
        | LoadError::DuplicateSymbol { cell, .. } => (Outcome::LinkError, cell),
        other => return Err(format!("an error a corrupted object cannot cause: {other:?}")),
    };
    if cell != "fixture_a" && cell != "fixture_b" {
        return Err(format!("the error names cell {cell:?}, not the loaded fixture_a or its dependency: {error}"));
    }
    Ok(outcome)
}

/// Checks a mutant that loaded: fixture_a is published (with fixture_b if it still needs it), with memory, and every symbol the mutant exports is in
/// the symbol map.
fn check_loaded(
    iteration: usize,
    object: &'static [u8],
    namespace: &cell_namespace::CellNamespace,
    memory: &common::HostMemory,
) {
    let (cells, symbols) = snapshot(namespace);
    assert!(cells.iter().any(|cell| cell == "fixture_a"), "iteration {iteration}: fixture_a not published: {cells:?}");
    // fixture_b is not required: a mutated relocation may no longer name any of fixture_b's symbols (e.g. its
    // symbol index now selects one of fixture_a's own), and then nothing needs fixture_b.
    for export in common::exports(object) {
        assert!(
            symbols.iter().any(|(name, _)| *name == export),
            "iteration {iteration}: loaded, but its export {export} is not in the symbol map"
        );
    }
    assert!(memory.live_regions() > 0, "iteration {iteration}: loaded without memory");
}

#[test]
fn corrupted_objects_are_loaded_whole_or_rejected_cleanly() {
    let pristine = common::fixtures().a;
    let mut random = Random(0x5eed_cafe_f00d_0001);
    let table = u64::from_le_bytes(pristine[40..48].try_into().unwrap()) as usize;
    let mut counts = std::collections::BTreeMap::<Outcome, usize>::new();
    for iteration in 0..ITERATIONS {
        let mut object = pristine.to_vec();
        // Flip 1 to 4 bytes; half the time aim at the headers and tables (the interesting part of the file).
        for _ in 0..1 + random.below(4) {
            let position = if random.below(2) == 0 {
                (table + random.below(object.len() - table)).min(object.len() - 1)
            } else {
                random.below(object.len())
            };
            object[position] ^= 1 << random.below(8);
        }
        let object = leak_aligned(&object);
        let (namespace, memory) = namespace_with(object, true);
        let before = snapshot(&namespace);
        let outcome = match namespace.load_cell("fixture_a") {
            Ok(_) => {
                check_loaded(iteration, object, &namespace, &memory);
                Outcome::Loaded
            }
            Err(error) => {
                assert_eq!(snapshot(&namespace), before, "iteration {iteration}: {error}");
                assert_eq!(memory.live_regions(), 0, "iteration {iteration}: {error}");
                rejection(&error).unwrap_or_else(|message| panic!("iteration {iteration}: {message}"))
            }
        };
        *counts.entry(outcome).or_default() += 1;
    }
    println!("{ITERATIONS} mutants: {counts:?}");
    // The corpus must exercise every outcome, or the checks above prove nothing for the missing one.
    for outcome in [Outcome::Loaded, Outcome::ParseError, Outcome::LinkError] {
        let count = counts.get(&outcome).copied().unwrap_or(0);
        assert!(count >= MINIMUM_PER_OUTCOME, "only {count} mutants ended {outcome:?} (of {counts:?})");
    }
}
