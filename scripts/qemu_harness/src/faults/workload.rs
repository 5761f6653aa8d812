//! The campaign's five workloads (and the IPC cases' `ipc-ping-pong`): shell commands with a checkable result
//! printed on serial.
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
    /// Channels: the `ping_pong` application (8 rounds of 32 messages to an echo task over a rendezvous and a
    /// buffered channel; each round a restartable task).
    Channels,
    /// The IPC cases' workload (not in [`WORKLOADS`]): the channels workload's `ping_pong 8 32` (each round a
    /// restartable task), whose `u64` channel instances the cases break in; a separate variant because the IPC
    /// cases place their own points (no profile, no random plan).
    IpcPingPong,
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
            Workload::IpcPingPong => "ipc-ping-pong",
            Workload::Shell => "shell",
            Workload::Swap => "swap",
            Workload::Heap => "heap",
        }
    }

    /// The workload named `name` (one of [`WORKLOADS`]' names or `ipc-ping-pong`).
    pub fn from_name(name: &str) -> Option<Workload> {
        WORKLOADS.iter().chain(&[Workload::IpcPingPong]).copied().find(|workload| workload.name() == name)
    }

    /// The commands, typed in order.
    pub fn commands(self) -> &'static [&'static str] {
        match self {
            Workload::Spawn => &["load 4 1"],
            Workload::Channels => &["ping_pong 8 32"],
            Workload::IpcPingPong => &["ping_pong 8 32"],
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

    /// The cells whose text the workload exercises (instruction points are drawn from their functions).
    pub fn cells_under_test(self) -> &'static [&'static str] {
        match self {
            Workload::Spawn => &["load", "app_io", "spawn", "scheduler", "task", "scheduler_round_robin"],
            Workload::Channels => &["ping_pong", "sync", "scheduler", "task", "app_io"],
            Workload::IpcPingPong => &["ping_pong", "sync", "scheduler", "task", "app_io"],
            Workload::Shell => &["shell", "line_editor", "command_line", "cell_graph"],
            Workload::Swap => &["live_update", "greeting_v1", "greeting_v2", "hello", "app_io"],
            Workload::Heap => &["heap_stress", "app_io"],
        }
    }

    /// The cells whose every function is a point besides the blocks the profile saw: the workload's own
    /// application, whose run is too short for RIP sampling to see it. `ping_pong` runs for about 0.1 s, mostly
    /// blocked on its channels, so its samples land in the idle loop; the channel's generic `send`/`receive`
    /// are instantiated (for `u64`) in `ping_pong`'s own text, so this draws points on the send/receive paths.
    /// A point there that the run does not reach is counted as not activated.
    pub fn focus_cells(self) -> &'static [&'static str] {
        match self {
            Workload::Channels => &["ping_pong"],
            _ => &[],
        }
    }

    /// Substrings of the mangled names of the base image's (nano_core's) functions the workload exercises, which
    /// are points too: the heap allocator and the loader and namespace code are linked into nano_core. The heap's
    /// per-CPU fast path is inlined into the global allocator's entry points (`__rust_alloc`, `__rust_dealloc`,
    /// `__rust_realloc`, which every cell's `Box`/`Vec` calls), so those are named besides `memory::heap` and
    /// `memory::heap_cpu`.
    pub fn nano_core_under_test(self) -> &'static [&'static str] {
        match self {
            Workload::Heap => {
                &["6memory4heap", "6memory8heap_cpu", "12___rust_alloc", "14___rust_dealloc", "14___rust_realloc"]
            }
            Workload::Swap => &["11cell_loader", "14cell_namespace"],
            _ => &[],
        }
    }

    /// Whether recovery is expected to deliver the result by itself: the workload's workers are restartable
    /// tasks (`spawn`, `channels`, `heap`, `ipc-ping-pong`), or the harness re-types a command a restarted shell lost
    /// (`shell`, and every workload) or whose swap failed transactionally (`swap`). All are, since the IPC cases
    /// moved from the `test_channels` test cell (not restartable) to `ping_pong`; for a workload that is not, the
    /// classification re-runs it once after a wrong result with a fault seen.
    pub fn restartable(self) -> bool {
        true
    }

    /// The pattern of the result lines (matched against each output line of the commands).
    pub fn result_pattern(self) -> &'static str {
        match self {
            Workload::Spawn => r"^load: ",
            Workload::Channels | Workload::IpcPingPong => r"^ping_pong: ",
            Workload::Shell => r"^fi-(begin|middle|end)",
            Workload::Swap => r"^Hello from |^swap: (done|error)",
            Workload::Heap => r"^heap_stress: ",
        }
    }
}

/// The workloads of a comma-separated list of [`WORKLOADS`]' names (`--workloads swap,shell`), in campaign order,
/// each once.
///
/// # Errors
/// A message naming an unknown name (or `ipc-ping-pong`, the IPC cases' own workload), or an empty list.
pub fn parse_list(list: &str) -> Result<Vec<Workload>, String> {
    let mut chosen = Vec::new();
    for name in list.split(',').map(str::trim).filter(|name| !name.is_empty()) {
        let workload = WORKLOADS.iter().copied().find(|workload| workload.name() == name).ok_or_else(|| {
            let known: Vec<&str> = WORKLOADS.iter().map(|workload| workload.name()).collect();
            format!("unknown workload `{name}` (known: {})", known.join(", "))
        })?;
        chosen.push(workload);
    }
    if chosen.is_empty() {
        return Err("no workload named".into());
    }
    Ok(WORKLOADS.into_iter().filter(|workload| chosen.contains(workload)).collect())
}

/// The line a freshly (re)started serial shell prints before its first prompt.
pub const SHELL_BANNER: &str = "type `help` for commands.";

/// Why a command's output asks for typing the command again, if it does: the shell restarted while it ran (its
/// banner is in the output), or a swap failed (`swap: error`; a swap is transactional, so re-issuing it is sound).
pub fn retry_reason(output: &str) -> Option<&'static str> {
    if output.lines().any(|line| line.contains(SHELL_BANNER)) {
        Some("shell restarted")
    } else if output.lines().any(|line| line.trim_start().starts_with("swap: error")) {
        Some("swap failed")
    } else {
        None
    }
}

/// Whether `output`, of `command` typed again after the shell restarted while an earlier attempt ran, shows that
/// the earlier attempt's swap had committed: `swap OLD NEW` answers `swap: error: cell OLD is not loaded` (a swap
/// whose task failed past its commit point keeps the new cell, and the restarted shell cannot tell). The command
/// then counts as `swap: done`; the workload's next `hello` checks that the new version really runs.
pub fn committed_before_restart(command: &str, output: &str) -> bool {
    let mut words = command.split_whitespace();
    let (Some("swap"), Some(old)) = (words.next(), words.next()) else { return false };
    let refusal = format!("swap: error: cell {old} is not loaded in this namespace");
    output.lines().any(|line| line.trim_start().starts_with(&refusal))
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
        assert_eq!(
            result_lines(Workload::IpcPingPong, "ping_pong: 8 rounds\nping_pong-round\n"),
            ["ping_pong: 8 rounds"]
        );
        assert_eq!(result_lines(Workload::Channels, "ping_pong: 8 rounds\nping_pong-round\n"), ["ping_pong: 8 rounds"]);
        assert_eq!(result_lines(Workload::Shell, "fi-begin 1 2 3\nTID NAME\nfi-end\n"), ["fi-begin 1 2 3", "fi-end"]);
        assert!(result_lines(Workload::Heap, "unknown command: heap_stress\n").is_empty());
        let swap = "swap: verifying\nswap: done in 7449 us (stage 1 us)\nHello from greeting v2, world!\n";
        assert_eq!(result_lines(Workload::Swap, swap), ["swap: done", "Hello from greeting v2, world!"]);
    }

    #[test]
    fn retries_and_cells() {
        assert_eq!(retry_reason("ps\n\nTheseus-style cell OS: type `help` for commands.\n"), Some("shell restarted"));
        assert_eq!(retry_reason("swap: error: verification failed\n"), Some("swap failed"));
        assert_eq!(retry_reason("swap: done in 5 us\nHello\n"), None);
        let refused = "swap: error: cell greeting_v1 is not loaded in this namespace; nothing was changed\n";
        assert!(committed_before_restart("swap greeting_v1 greeting_v2", refused));
        assert!(!committed_before_restart("swap greeting_v2 greeting_v1", refused), "another cell");
        assert!(!committed_before_restart("swap greeting_v1 greeting_v2", "swap: error: verification failed\n"));
        assert!(!committed_before_restart("hello", refused));
        for workload in WORKLOADS {
            assert!(!workload.cells_under_test().is_empty());
            // A focus cell's functions must be candidates too, or they could never be drawn.
            for cell in workload.focus_cells() {
                assert!(workload.cells_under_test().contains(cell), "{cell} of {}", workload.name());
            }
        }
        assert_eq!(Workload::Channels.focus_cells(), ["ping_pong"]);
        // The heap's fast path runs inlined in the global allocator's entry points, not in `memory::heap`.
        for entry in ["_RNvCseulmdZsCeCG_7___rustc12___rust_alloc", "_RNvCseulmdZsCeCG_7___rustc14___rust_dealloc"] {
            assert!(Workload::Heap.nano_core_under_test().iter().any(|part| entry.contains(part)), "{entry}");
        }
        let handler = "_RNvCseulmdZsCeCG_7___rustc26___rust_alloc_error_handler";
        assert!(!Workload::Heap.nano_core_under_test().iter().any(|part| handler.contains(part)));
        assert!(WORKLOADS.iter().all(|workload| workload.restartable()));
        assert!(Workload::IpcPingPong.restartable() && !WORKLOADS.contains(&Workload::IpcPingPong));
    }

    #[test]
    fn workload_lists() {
        assert_eq!(parse_list("swap"), Ok(vec![Workload::Swap]));
        assert_eq!(parse_list("swap,shell"), Ok(vec![Workload::Shell, Workload::Swap]), "campaign order");
        assert_eq!(parse_list(" heap , heap,"), Ok(vec![Workload::Heap]), "duplicates and blanks");
        assert_eq!(parse_list("spawn,channels,shell,swap,heap"), Ok(WORKLOADS.to_vec()));
        assert!(parse_list("").is_err());
        assert!(parse_list("swap,bogus").unwrap_err().contains("`bogus`"));
        assert!(parse_list("ipc-ping-pong").is_err(), "the IPC cases' workload is not a campaign workload");
        for workload in WORKLOADS.iter().chain(&[Workload::IpcPingPong]) {
            assert_eq!(Workload::from_name(workload.name()), Some(*workload));
        }
        assert_eq!(Workload::from_name("nope"), None);
    }
}
