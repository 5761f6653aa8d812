//! The campaign's five workloads: shell commands with a checkable result printed on serial.
//!
//! Each workload is a list of commands typed one after the other (each must give the prompt back) and a pattern
//! selecting its result lines. The result of a run is the list of selected lines; the campaign compares it with
//! the result of a run before any injection on the same image (the golden run), so no expected output is
//! hard-coded here beyond the patterns.

use regex::Regex;

/// One workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// Task spawn: the `load` application spawns 4 workers that run for 1 s, joined.
    Spawn,
    /// Channels: the `test_channels` test cell twice (rendezvous and buffered ping-pong, kills of blocked ends).
    Channels,
    /// A shell command loop: `echo`, `ps`, `mem`, `uptime`, `ns`, `deps`, `ls`, twice, with `echo` between.
    Shell,
    /// A cell swap loop: `hello`, then twice: swap greeting_v1 -> greeting_v2, `hello`, swap back, `hello`.
    Swap,
    /// The heap-heavy `heap_stress` application (allocations of 1-1000 bytes, checksum).
    Heap,
}

/// Every workload, in campaign order.
pub const WORKLOADS: [Workload; 5] =
    [Workload::Spawn, Workload::Channels, Workload::Shell, Workload::Swap, Workload::Heap];

impl Workload {
    /// The name used in the CSV and the summary.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Spawn => "spawn",
            Workload::Channels => "channels",
            Workload::Shell => "shell",
            Workload::Swap => "swap",
            Workload::Heap => "heap",
        }
    }

    /// The commands, typed in order.
    pub fn commands(self) -> &'static [&'static str] {
        match self {
            Workload::Spawn => &["load 4 1"],
            Workload::Channels => &["test test_channels", "test test_channels"],
            Workload::Shell => &[
                "echo fi-begin 1 2 3",
                "ps",
                "mem",
                "uptime",
                "ns",
                "deps greeting_v1",
                "ls",
                "echo fi-middle",
                "ps",
                "mem",
                "ns",
                "echo fi-end",
            ],
            Workload::Swap => &[
                "hello",
                "swap greeting_v1 greeting_v2",
                "hello",
                "swap greeting_v2 greeting_v1",
                "hello",
                "swap greeting_v1 greeting_v2",
                "hello",
                "swap greeting_v2 greeting_v1",
                "hello",
            ],
            Workload::Heap => &["heap_stress 30000"],
        }
    }

    /// The pattern of the result lines (matched against each output line of the commands).
    pub fn result_pattern(self) -> &'static str {
        match self {
            Workload::Spawn => r"^load: ",
            Workload::Channels => r"^test_channels: (ok|FAIL|fail)|^test summary: ",
            Workload::Shell => r"^fi-(begin|middle|end)",
            Workload::Swap => r"^Hello from |^swap: (done|error)",
            Workload::Heap => r"^heap_stress: ",
        }
    }
}

/// The result lines of `output` (the commands' outputs, one after the other) for `workload`. A swap's
/// `swap: done in N us ...` line is cut to `swap: done` (its phase times differ from run to run).
pub fn result_lines(workload: Workload, output: &str) -> Vec<String> {
    let pattern = Regex::new(workload.result_pattern()).expect("the result patterns are valid");
    output
        .lines()
        .map(str::trim_end)
        .filter(|line| pattern.is_match(line))
        .map(|line| if line.starts_with("swap: done") { "swap: done" } else { line })
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_select_only_results() {
        let output = "test_channels: running\ntest_channels: finished in 140 ms\ntest_channels: ok\n\
                      test summary: 1 passed, 0 failed\n";
        assert_eq!(result_lines(Workload::Channels, output), ["test_channels: ok", "test summary: 1 passed, 0 failed"]);
        assert_eq!(result_lines(Workload::Shell, "fi-begin 1 2 3\nTID NAME\nfi-end\n"), ["fi-begin 1 2 3", "fi-end"]);
        assert!(result_lines(Workload::Heap, "unknown command: heap_stress\n").is_empty());
        let swap = "swap: verifying\nswap: done in 7449 us (stage 1 us)\nHello from greeting v2, world!\n";
        assert_eq!(result_lines(Workload::Swap, swap), ["swap: done", "Hello from greeting v2, world!"]);
    }
}
