//! The nearest known name to a mistyped word, for the shell's "did you mean".
//!
//! [`distance`] is the Levenshtein edit distance plus adjacent transpositions (optimal string alignment), counted
//! in characters; [`nearest`] picks the closest candidate within a bound that grows with the word's length, so that
//! `hepl` suggests `help` but `frobnicate` suggests nothing. Ties go to the first candidate in the given order.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::vec::Vec;

/// The edit distance between `a` and `b`: insertions, deletions, substitutions and swaps of two adjacent characters.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the dynamic-programming table: two before the current one (for transpositions).
    let mut before: Vec<usize> = (0..=b.len()).collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = alloc::vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1).min(current[j - 1] + 1).min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        core::mem::swap(&mut before, &mut previous);
        core::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The largest distance [`nearest`] accepts for a word of `length` characters: 1 up to 4 characters, 2 up to 8,
/// then 3.
pub fn max_distance(length: usize) -> usize {
    match length {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    }
}

/// The candidate nearest to `word`, if one is within [`max_distance`] of it and is not `word` itself.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let bound = max_distance(word.chars().count());
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let found = distance(word, candidate);
        if found == 0 || found > bound {
            continue;
        }
        if best.is_none_or(|(distance, _)| found < distance) {
            best = Some((found, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMANDS: &[&str] = &["help", "echo", "clear", "uptime", "date", "mem", "ns", "ls", "swap", "hello"];

    #[test]
    fn distances() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("hepl", "help"), 1, "an adjacent swap counts once");
        assert_eq!(distance("ca", "abc"), 3, "optimal string alignment: no edit of a transposed pair");
        assert_eq!(distance("dtae", "date"), 1);
    }

    #[test]
    fn suggestions() {
        assert_eq!(nearest("hepl", COMMANDS.iter().copied()), Some("help"));
        assert_eq!(nearest("uptme", COMMANDS.iter().copied()), Some("uptime"));
        assert_eq!(nearest("helo", COMMANDS.iter().copied()), Some("help"), "ties go to the first candidate");
        assert_eq!(nearest("frobnicate", COMMANDS.iter().copied()), None);
        assert_eq!(nearest("help", COMMANDS.iter().copied()), None, "an exact name is not a suggestion");
        assert_eq!(nearest("", COMMANDS.iter().copied()), None);
    }
}
