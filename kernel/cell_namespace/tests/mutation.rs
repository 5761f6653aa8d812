//! Mutation test: thousands of randomly corrupted copies of a real object. Loading each must return `Ok` or
//! `Err`: never panic, never crash, and never leave a failed load's memory behind.

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

#[test]
fn corrupted_objects_never_panic() {
    let pristine = common::fixtures().a;
    let mut random = Random(0x5eed_cafe_f00d_0001);
    let table = u64::from_le_bytes(pristine[40..48].try_into().unwrap()) as usize;
    let (mut loaded, mut parse_errors, mut other_errors) = (0, 0, 0);
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
        let (namespace, memory) = namespace_with(leak_aligned(&object), true);
        let before = snapshot(&namespace);
        match namespace.load_cell("fixture_a") {
            Ok(_) => loaded += 1,
            Err(error) => {
                assert_eq!(snapshot(&namespace), before, "iteration {iteration}: {error}");
                assert_eq!(memory.live_regions(), 0, "iteration {iteration}: {error}");
                match error {
                    LoadError::Parse { .. } => parse_errors += 1,
                    _ => other_errors += 1,
                }
            }
        }
    }
    println!("{ITERATIONS} mutants: {loaded} loaded, {parse_errors} parse errors, {other_errors} other errors");
    assert_eq!(loaded + parse_errors + other_errors, ITERATIONS);
    // The corpus must exercise both outcomes, or the test proves nothing.
    assert!(loaded > 0 && parse_errors > ITERATIONS / 10, "{loaded} loaded, {parse_errors} parse errors");
}
