//! Every string the harness types or expects, in one place, so they can be aligned with the shell's output.
//!
//! Patterns are regular expressions (`regex` crate syntax) matched against one line of serial output at a time,
//! after ANSI escapes and carriage returns are removed; the last, incomplete line is matched too.

/// The shell prompt: a line that is one optional word followed by `> ` (`theseus> `, `> `), with no newline after
/// it. Anchored at the line start so that a log line still being received (`loading a -> `) does not match.
pub const PROMPT: &str = r"^\S*> $";
/// What the harness sends after each command: Enter on a serial terminal is a carriage return.
pub const LINE_ENDING: &str = "\r";

/// `exit` with no argument: the kernel writes 0x10 to port 0xf4; QEMU exits with (0x10 << 1) | 1.
pub const EXIT_COMMAND: &str = "exit";
/// QEMU's exit status after the kernel reported success.
pub const EXIT_STATUS_SUCCESS: i32 = 33;
/// QEMU's exit status after the kernel reported failure (0x11).
pub const EXIT_STATUS_FAILURE: i32 = 35;

/// The captain cell's first log line. It proves that a loaded cell uses nano_core's single copy of the `log` crate:
/// a second copy in a cell would have its own statics (no logger installed, maximum level `Off`) and print nothing.
pub const CAPTAIN_LOGS_THROUGH_NANO_CORE: &str = r"INFO\s+captain: captain: running from a loaded cell";
/// The boot log line that reports the cells loaded at boot, with bytes, relocations and the load time.
pub const BOOT_LOAD_SUMMARY: &str = r"loaded \d+ cells at boot: \d+ bytes, \d+ relocations, in \d+ us";

/// `ns` lists the loaded cells of the shell's namespace; the first cell loaded is `captain`.
pub const NS_LISTS_CAPTAIN: &str = r"\bcaptain\b";
/// `ns` lists the first greeting cell while it is loaded.
pub const NS_LISTS_GREETING_V1: &str = r"\bgreeting_v1\b";
/// `ls` lists the object files of the namespace directory.
pub const LS_LISTS_CAPTAIN: &str = r"\bk-captain\.o\b";
/// `ls` lists the hello application's object.
pub const LS_LISTS_HELLO: &str = r"\ba-hello\.o\b";
/// `help` mentions the `swap` command (any help text listing the commands does).
pub const HELP_MENTIONS_SWAP: &str = r"\bswap\b";
/// The keyboard probe's line on a machine without an 8042 (`-machine i8042=off`).
pub const NO_PS2_CONTROLLER: &str = r"ps2_keyboard: no PS/2 controller";
/// The screen console's prompt row (rows are read with trailing blanks trimmed).
pub const SCREEN_PROMPT: &str = r"^theseus>$";
/// Keys for the screen shell: `px`, Backspace, `s`, Enter (a typo corrected by the line editor; `ps` because its
/// output fits on the 25-row screen).
pub const SCREEN_PS_KEYS: &str = "p x backspace s ret";
/// The corrected command as echoed on the screen.
pub const SCREEN_PS_TYPED: &str = r"^theseus> ps$";
/// `ps` output: the policy line, and the screen console's own shell task.
pub const SCREEN_PS_POLICY: &str = r"^scheduler policy: ";
/// `ps` lists the screen console's shell task.
pub const SCREEN_PS_LISTS_SCREEN_SHELL: &str = r"screen shell";
/// The typo, which Backspace must have erased from the screen.
pub const SCREEN_TYPO: &str = r"theseus> px";
/// `hello` through greeting_v1.
pub const HELLO_V1: &str = r"Hello from greeting v1";
/// `hello` through greeting_v2 (after the swap).
pub const HELLO_V2: &str = r"Hello from greeting v2";
/// The swap command: the old and new cells of the successful swap.
pub const SWAP_TO_V2: &str = "swap greeting_v1 greeting_v2";
/// A line reporting a phase time: a number with a time unit (ns, us, µs, ms, s, or cycles).
pub const SWAP_PHASE_TIME: &str = r"\d+(\.\d+)?\s*(ns|us|µs|ms|s|cycles)\b";
/// The shell's swap could not stop the other CPUs and patched with only local interrupts off (must never happen).
pub const SWAP_WITHOUT_STOPPING_CPUS: &str = r"could not stop the other CPUs";
/// The line ending a successful swap.
pub const SWAP_DONE: &str = r"swap: done";
/// The swap to a cell that lacks the symbol hello uses.
pub const SWAP_TO_BROKEN: &str = "swap greeting_v1 greeting_broken";
/// The swap to a cell that does not exist.
pub const SWAP_TO_MISSING: &str = "swap greeting_v1 no_such_cell";
/// The first line of a failed swap.
pub const SWAP_ERROR: &str = r"swap: error";
/// A failed swap names the missing symbol (mangled `..._8greeting5greet` or demangled `greeting::greet`).
pub const SWAP_NAMES_MISSING_SYMBOL: &str = r"(?i)symbol.*greeting";
/// An unknown command and the shell's answer.
pub const UNKNOWN_COMMAND: &str = "frobnicate";
/// The shell's answer to an unknown command.
pub const UNKNOWN_COMMAND_REPLY: &str = r"unknown command";
/// An application whose `main` has the wrong type and which declares no typed entry (`applications/bad_entry`).
pub const BAD_ENTRY: &str = "bad_entry";
/// The shell's refusal of `bad_entry`, at load time, before anything runs.
pub const BAD_ENTRY_REFUSED: &str =
    r"bad_entry: error: not an application: no typed entry \(cell bad_entry exports no bad_entry::APPLICATION_ENTRY";
/// What `bad_entry` would print if the shell called its mistyped `main`.
pub const BAD_ENTRY_RAN: &str = r"bad_entry ran";

/// A typo of `help`, and the shell's suggestion.
pub const TYPO_OF_HELP: &str = "hepl";
/// The suggestion for [`TYPO_OF_HELP`].
pub const TYPO_SUGGESTION: &str = r"unknown command: hepl; did you mean help\?";
/// `frobnicate` is far from every name: no suggestion.
pub const NO_SUGGESTION: &str = r"did you mean";
/// `help` lists each of the new system builtins with its usage.
pub const HELP_LISTS_SYSTEM_COMMANDS: &[&str] = &[
    r"^\s+echo \[WORD \.\.\.\]",
    r"^\s+clear\s",
    r"^\s+uptime\s",
    r"^\s+date\s",
    r"^\s+mem\s",
    r"^\s+reboot\s",
    r"^\s+shutdown\s",
    r"^\s+dmesg\s",
    r"^\s+log \[off\|error",
    r"^\s+deps CELL \| deps --dot\s",
    r"^\s+cat FILE\s",
];
/// `help swap` prints the usage line.
pub const HELP_SWAP_USAGE: &str = r"^usage: swap \[--fresh\] OLD NEW";
/// `echo` joins its words with one space.
pub const ECHO_LINE: &str = "echo  hello   there";
/// What [`ECHO_LINE`] prints.
pub const ECHO_OUTPUT: &str = r"^hello there$";
/// `clear` sends the ANSI clear-screen sequence (the harness strips escapes, so the output is an empty line).
pub const CLEAR_REJECT: &str = r"usage|unknown";
/// `uptime`: seconds with milliseconds, and the same as hours, minutes, seconds.
pub const UPTIME: &str = r"^up (\d+)\.\d{3} s \(\d+h \d{2}m \d{2}s\)$";
/// `date`: an ISO 8601 date in a plausible year (QEMU's RTC follows the host clock).
pub const DATE: &str = r"^20[2-9]\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-6]\d \(RTC\)$";
/// `mem`: frame, page and heap lines.
pub const MEM_LINES: &[&str] = &[
    r"^frames: [1-9]\d* free \(\d+ KiB\), \d+ in page tables, 0 leaked$",
    r"^pages:  [1-9]\d* free",
    r"^heap:   [1-9]\d* used \+ \d+ free = [1-9]\d* bytes$",
];
/// `ns` sizes the cell column from the longest name (`scheduler_round_robin`, 21 characters): the short `captain`
/// is padded past 20 characters, so its KIND column lines up with the long name's.
pub const NS_CAPTAIN_PADDED: &str = r"^kernel\s+captain {15,}kernel\s";

/// Loading an application logs an INFO line; with the shell's console level (warn) it is not shown.
pub const INFO_LINE: &str = r"\bINFO\b";
/// ... but the kernel log ring has it, for `dmesg`.
pub const DMESG_HAS_HELLO_LOAD: &str = r"INFO\s+\S+: namespace application: loaded cell hello from a-hello\.o";
/// `log` with no argument: the shell's console level.
pub const LOG_LEVEL_WARN: &str = r"^log: console level WARN$";
/// `log info` sets the level back.
pub const LOG_LEVEL_INFO: &str = r"^log: console level INFO$";
/// `log` rejects an unknown level.
pub const LOG_LEVEL_UNKNOWN: &str = r"^log: unknown level loud";
/// With the console at INFO, a swap's INFO lines are shown again.
pub const SWAP_INFO_SHOWN: &str = r"INFO\s+\S+: namespace kernel: loaded cell greeting_v2";

/// `deps hello` (after `hello` ran): its dependencies, greeting_v1 among them, then its dependents (none).
pub const DEPS_HELLO: &[&str] = &[
    r"^hello depends on [1-9]\d* cells:$",
    r"^  greeting_v1\s+\([1-9]\d* relocations\)$",
    r"^hello is used by 0 cells:$",
];
/// `deps greeting_v1`: hello uses it.
pub const DEPS_GREETING_USED_BY_HELLO: &[&str] = &[r"^greeting_v1 is used by [1-9]\d* cells:$", r"^  hello\s+\("];
/// `deps --dot`: the marker lines around a digraph with the hello -> greeting_v1 edge.
pub const DEPS_DOT: &[&str] = &[
    r"^----- BEGIN DOT -----$",
    r"^digraph cells \{$",
    r#"^  "hello" -> "greeting_v1" \[label="[1-9]\d*"\];$"#,
    r"^\}$",
    r"^----- END DOT -----$",
];
/// `deps` of a cell that is not loaded.
pub const DEPS_UNKNOWN: &str = r"^deps: no loaded cell named nosuch";

/// `cat` of a binary object: a clear description and a hex dump starting with the ELF magic.
pub const CAT_OBJECT: &[&str] =
    &[r"^cat: a-hello\.o is an ELF object \(\d+ bytes\), not text", r"^  00000000  7f 45 4c 46 "];
/// `cat cells.manifest`: the hello application's entry, depending on greeting.
pub const CAT_MANIFEST_HELLO: &str = r"^hello Application a-hello\.o crate=hello deps=\[[^\]]*greeting";
/// `cat` of a file that does not exist.
pub const CAT_MISSING: &str = r"^cat: no such file: nosuch\.o";

/// CPUs of the multiprocessor scenarios (`-smp`).
pub const SMP_CPUS: u32 = 4;
/// The last application processor's bring-up line (CPU 3 of 4).
pub const SMP_LAST_CPU_ONLINE: &str = r"smp::start: CPU 3 online \(APIC id \d+\)";
/// The bring-up summary: all four CPUs of the MADT online, three started, the timer rate.
pub const SMP_ALL_CPUS_ONLINE: &str =
    r"smp: 4 CPUs online \(4 listed by the MADT, 3 started\); timer \d+ Hz on every CPU";
/// The boot-time timer check: every CPU (0-3) took 8-12 ticks in 100 ms at 100 Hz (TCG jitter allowed; 0 fails).
pub const SMP_TIMER_TICKS_ON_EVERY_CPU: &str = r"timer check: ticks per CPU in 100 ms \(expect about 10\): 0=([89]|1[0-2]) 1=([89]|1[0-2]) 2=([89]|1[0-2]) 3=([89]|1[0-2])$";
/// The boot-time stop-the-world check: the three other CPUs stopped, their timers stood still meanwhile.
pub const SMP_STOP_THE_WORLD: &str = r"stop-the-world check: 3 other CPUs stopped in \d+ us; their timers stood still";

/// The cell whose object `make iso` damages in `build/theseus-corrupt.iso` (Makefile `CORRUPT_CELL`).
pub const CORRUPT_CELL_OBJECT: &str = "k-greeting_v2.o";
/// Boot of the corrupt ISO: a log line containing `error` and the damaged object's name, in either order.
pub fn corrupt_object_error(object: &str) -> String {
    let object = regex::escape(object);
    format!(r"(?i)\berror\b.*{object}|{object}.*\berror\b")
}

/// Every in-kernel test cell the image must contain: `test` must print `<cell>: ok` for each, and its summary
/// must count exactly this many passed (so a cell missing from the image, or one added without being listed
/// here, fails the scenario). Add a new `test_*` cell here.
pub const TEST_CELLS: &[&str] = &[
    "test_channels",
    "test_fault_paths",
    "test_fault_recovery",
    "test_policy_swap",
    "test_live_update",
    "test_sync",
    "test_tasks",
    "test_tlb",
];
/// `test`'s summary line when none failed; group 1 is the number passed (checked against [`TEST_CELLS`]).
pub const TEST_SUMMARY_NONE_FAILED: &str = r"^test summary: (\d+) passed, 0 failed$";
/// The line of test cell `cell` that passed.
pub fn test_cell_passed(cell: &str) -> String {
    format!("^{}: ok$", regex::escape(cell))
}
/// A failing in-kernel test cell's line.
pub const TEST_CELL_FAILED: &str = r": FAILED";
/// `ps` header.
pub const PS_HEADER: &str = r"\bID\s+NAME\s+STATE\s+CPU\s+POLICY\b";
/// `ps` footer with at least 20 tasks.
pub const PS_AT_LEAST_20_TASKS: &str = r"^([2-9]\d|\d{3,}) tasks$";
/// `ps` under the priority policy: its name and a priority column.
pub const PS_POLICY_PRIORITY: &str = r"^scheduler policy: priority$";
/// `ps` shows a task's priority.
pub const PS_SHOWS_PRIORITY: &str = r"\bprio \d+\b";
/// The background load (24 workers for 6 s on 4 CPUs) and its start line.
pub const LOAD_IN_BACKGROUND: &str = "load 24 6 &";
/// The shell's answer to a background command.
pub const BACKGROUND_STARTED: &str = r"^\[\d+\] load started in the background$";
/// Every worker of the background load completed, across the scheduler swap.
pub const LOAD_COMPLETED: &str = r"\bload: 24 tasks completed$";
/// The live scheduler-policy swap.
pub const SWAP_SCHEDULER: &str = "swap scheduler_round_robin scheduler_priority";
/// `kill 1` (the idle task of CPU 0) is refused.
pub const KILL_IDLE_REFUSED: &str = r"^kill: error: .*idle task";
/// `kill ID` of a running task: it ends at its next safe point.
pub const KILL_AT_SAFE_POINT: &str = r"^kill: task \d+ will stop at its next safe point$";
/// The scheduler's warning when the serial shell task is killed.
pub const SHELL_TASK_KILLED: &str = r#"task \d+ "shell" failed: killed"#;
/// `kill ID` of a task that no longer exists.
pub const KILL_NO_SUCH_TASK: &str = r"^kill: error: no task with id \d+$";
/// `kill 9999` names no task.
pub const KILL_NONEXISTENT: &str = r"^kill: error: no task with id 9999$";
/// A long foreground command, then Ctrl-C.
pub const LONG_FOREGROUND: &str = "load 2 60\r";
/// Ctrl-C as a terminal sends it.
pub const CTRL_C: &str = "\u{3}";
/// The foreground task ended by Ctrl-C.
pub const FOREGROUND_KILLED: &str = r"failed: killed$";

/// `inject pf`: the shell raises a null dereference in a new kernel task (applications cannot: it needs unsafe).
pub const INJECT_PAGE_FAULT: &str = "inject pf";
/// `inject gp`: a non-canonical read.
pub const INJECT_GENERAL_PROTECTION: &str = "inject gp";
/// `inject ud`.
pub const INJECT_INVALID_OPCODE: &str = "inject ud";
/// `inject de`.
pub const INJECT_DIVIDE_ERROR: &str = "inject de";
/// The Drop on the injected task's stack ran during unwinding.
pub const INJECT_CLEANUP_RAN: &str = r"^inject: cleanup ran";
/// The shell reports the page fault (at address 0) as the injected task's failure.
pub const INJECT_FAILED_PAGE_FAULT: &str =
    r"^inject pf: task \d+ failed: exception PageFault\(\d+\) at 0x[0-9a-f]+ \(address 0x0\)";
/// The injected #GP.
pub const INJECT_FAILED_GENERAL_PROTECTION: &str = r"^inject gp: task \d+ failed: exception GeneralProtection";
/// The injected #UD.
pub const INJECT_FAILED_INVALID_OPCODE: &str = r"^inject ud: task \d+ failed: exception InvalidOpcode";
/// The injected #DE.
pub const INJECT_FAILED_DIVIDE_ERROR: &str = r"^inject de: task \d+ failed: exception DivideError";
/// `fault_demo panic`.
pub const FAULT_DEMO_PANIC: &str = "fault_demo panic";
/// `fault_demo overflow`.
pub const FAULT_DEMO_OVERFLOW: &str = "fault_demo overflow";
/// `fault_demo oom`: a 1 GiB allocation from safe Rust.
pub const FAULT_DEMO_OOM: &str = "fault_demo oom";
/// `fault_demo pf`: the CPU-exception modes left the application (it has no unsafe way to cause them).
pub const FAULT_DEMO_PF_REMOVED: &str = "fault_demo pf";
/// `fault_demo`'s usage line (an unknown mode).
pub const FAULT_DEMO_USAGE: &str = r"^usage: fault_demo panic\|overflow\|oom";
/// The Drop on the failed task's stack ran during unwinding.
pub const FAULT_DEMO_CLEANUP_RAN: &str = r"fault_demo: cleanup ran";
/// The shell reports the panic with its message.
pub const TASK_FAILED_PANIC: &str = r"fault_demo: task \d+ failed: panicked: fault_demo: panic on request";
/// The shell reports the stack overflow.
pub const TASK_FAILED_OVERFLOW: &str = r"fault_demo: task \d+ failed: stack overflow";
/// The shell reports the failed allocation, naming its size.
pub const TASK_FAILED_OOM: &str = r"fault_demo: task \d+ failed: panicked: memory allocation of 1073741824 bytes";
/// `faults` lists the logged failures (at least the seven above).
pub const FAULT_LOG_COUNT: &str = r"^[7-9] faults logged$|^\d{2,} faults logged$";
/// A fault-log line names the cell of the faulting instruction.
pub const FAULT_LOG_NAMES_CELL: &str = r"cell fault_injection address 0x";
/// `ps`'s line of the shell task; group 1 is its id (used by `bt {shell}`).
pub const PS_SHELL_ID: &str = r"^\s*(\d+) shell\s";
/// `bt` of the shell task, with the id `ps` showed.
pub const BACKTRACE_SHELL: &str = "bt {shell}";
/// `bt` of the shell task: a frame in the shell cell, with a demangled name and offset.
pub const BACKTRACE_SHELL_FRAME: &str = r"shell::\S+\+0x[0-9a-f]+ \(cell shell\)";

/// The stateful self-swap of the task cell (its task table is carried over).
pub const SWAP_TASK_CELL: &str = "swap task task";
/// `ps` on 4 idle CPUs: the four idle tasks, `captain` (the boot thread, asleep), the serial shell and the screen
/// console's shell (the count a lost task table drops to 0).
pub const PS_SEVEN_TASKS: &str = r"^7 tasks$";
/// `ps` lists the shell task (restartable: its id changes with each restart).
pub const PS_LISTS_SHELL: &str = r"^\s+\d+ shell\s";
/// The self-swap of `task` retires the old copy: at the commit the switched-out idle task of the swapping CPU has a
/// frame in the old `task::context_switch`.
pub const SWAP_RETIRED_ONE: &str = r"\(0 old cells freed, 1 retired\)";
/// `ns -a`'s count of retired cells (the old `task` is freed once every idle task has switched through the new
/// copy, which may or may not have happened by then).
pub const NS_TASK_RETIRED_OR_FREED: &str = r"^[01] retired cells$";
/// The stateful self-swap of the scheduler core (runqueues carried over) under load.
pub const SWAP_SCHEDULER_CORE: &str = "swap scheduler scheduler";
/// `ns -a` after the scheduler swap: the old scheduler is retired, pinned at least by a stopped CPU's idle loop.
pub const NS_RETIRED_SCHEDULER: &str = r"^retired scheduler \(\d+ bytes\), [1-9]\d* pins:$";
/// A self-swap of a small leaf cell (after `hello` loaded it).
pub const SWAP_GREETING_AGAIN: &str = "swap greeting_v1 greeting_v1";
/// A pin line of `ns -a`: references held outside the namespace (after `swap --all`, every reference to a
/// retired cell is held by another retired cell, listed apart).
pub const NS_PIN_OUTSIDE: &str = r"references held outside the namespace$";
/// The count line of `ns -a`.
pub const NS_RETIRED_COUNT: &str = r"^\d+ retired cells$";
/// A pin line of `ns -a`: a stopped CPU's interrupted context.
pub const NS_PIN_INTERRUPTED: &str = r"^\s+CPU [1-3] was interrupted at 0x[0-9a-f]+$";
/// What a CPU stopped by an exception prints (the old scheduler's text unmapped under a returning CPU did this).
pub const CPU_STOPPED: &str = r"stopping this CPU|CPU EXCEPTION";
/// A long background load for swap-everything (it runs through all the swaps).
pub const LONG_LOAD_IN_BACKGROUND: &str = "load 24 15 &";
/// Swap every loaded kernel cell for a fresh copy of itself, one at a time.
pub const SWAP_EVERYTHING: &str = "swap --all";
/// One cell of `swap --all` that was swapped.
pub const SWAP_EVERYTHING_CELL: &str = r"^swap --all: \w+: swapped in \d+ us";
/// The summary of `swap --all` with nothing refused (the goal: every cell).
pub const SWAP_EVERYTHING_ALL: &str = r"^swap --all: [1-9]\d* of [1-9]\d* cells swapped, 0 refused, \d+ retired$";
/// A refusal line of `swap --all`.
pub const SWAP_EVERYTHING_REFUSED: &str = r"^swap --all: \w+: refused";

// Lines printed by background tasks may start right after a prompt on the same line: they are matched from a
// word boundary, not from the line start.
// Case study (a): scheduler policy round-robin -> priority with state transfer (`scheduler-state`).
/// `prio {load} 42`: the background `load` task (its id captured from `ps`), blocked in join for the whole
/// scenario, so a high priority does not starve anything.
pub const PRIO_LOAD_TASK: &str = "prio {load} 42";
/// Captures the id of the background `load` task (the first `load` row of `ps`).
pub const PS_LOAD_TASK_ID: &str = r"^\s*(\d+) load\s";
/// The shell's answer to [`PRIO_LOAD_TASK`].
pub const PRIO_SET: &str = r"^prio: task \d+ now has priority 42$";
/// `ps` under round-robin: the policy's own counters, nothing inherited yet (no swap happened).
pub const PS_POLICY_STATE_FRESH: &str =
    r"^policy state: [1-9]\d* decisions \(\d+ idle\), 0 inherited from the previous policy$";
/// `ps` under the priority policy after the swap: the decisions were carried over (a swap that transferred no
/// state shows 0 inherited), and the priority policy's own overtake counter is there.
pub const PS_POLICY_STATE_INHERITED_PRIORITY: &str =
    r"^policy state: [1-9]\d* decisions \(\d+ idle, \d+ overtakes\), [1-9]\d* inherited from the previous policy$";
/// `ps` under round-robin again after swapping back: carried over again.
pub const PS_POLICY_STATE_INHERITED_ROUND_ROBIN: &str =
    r"^policy state: [1-9]\d* decisions \(\d+ idle\), [1-9]\d* inherited from the previous policy$";
/// `ps` under the priority policy: the load task kept the priority set under round-robin (per-task policy data).
pub const PS_LOAD_TASK_PRIO_42: &str = r"^\s+\d+ load\s+\S+\s+\d+\*?\s+prio 42\b";
/// `ps` under round-robin: the policy's name.
pub const PS_POLICY_ROUND_ROBIN: &str = r"^scheduler policy: round_robin$";
/// The swap back to round-robin.
pub const SWAP_SCHEDULER_BACK: &str = "swap scheduler_priority scheduler_round_robin";
/// The swap to priority after swapping back: the priority set before the first swap is still there.
pub const SWAP_SCHEDULER_AGAIN: &str = SWAP_SCHEDULER;
/// The background load of this scenario (24 workers for 20 s: long enough for three swaps and four `ps`).
pub const LOAD_LONG_IN_BACKGROUND: &str = "load 24 20 &";

// Case study (b): joint application-kernel evolution (`joint-swap`).
/// The application in the background: 40 rounds of its pipe (about 14 s).
pub const PIPE_DEMO_IN_BACKGROUND: &str = "pipe_demo 40 &";
/// The shell's answer.
pub const PIPE_DEMO_STARTED: &str = r"^\[\d+\] pipe_demo started in the background$";
/// Before the swap: over a rendezvous pipe no send returns before the consumer receives.
pub const PIPE_RENDEZVOUS_ROUND: &str =
    r"\bpipe_demo: round 1: rendezvous pipe: producer sent 0 of 5 items before the consumer started, 5 received$";
/// Swapping only the channel cell: refused, its dependent stage uses the version-1 interface.
pub const SWAP_CHANNEL_ALONE: &str = "swap demo_channel_rendezvous demo_channel_buffered";
/// The refusal names the symbol the old stage needs.
pub const SWAP_NAMES_OPEN_RENDEZVOUS: &str = r"demo_channel::open_rendezvous";
/// The joint swap whose second pair is broken.
pub const SWAP_JOINT_BROKEN: &str =
    "swap demo_channel_rendezvous demo_channel_buffered pipe_stage_v1 pipe_stage_broken";
/// Its refusal names the symbol the application needs from the stage.
pub const SWAP_NAMES_OPEN_PIPE: &str = r"pipe_stage::open_pipe";
/// The joint swap of the channel cell and the application stage that uses it.
pub const SWAP_JOINT: &str = "swap demo_channel_rendezvous demo_channel_buffered pipe_stage_v1 pipe_stage_v2";
/// After the joint swap, in the same task: the producer no longer waits for each item.
pub const PIPE_BUFFERED_ROUND: &str =
    r"\bpipe_demo: round \d+: buffered pipe: producer sent 5 of 5 items before the consumer started, 5 received$";
/// The application's end: every round ran in one task, some over each kind of pipe, none failed.
pub const PIPE_DEMO_SUMMARY: &str =
    r"\bpipe_demo: 40 rounds in one task: [1-9]\d* rendezvous, [1-9]\d* buffered, 0 other$";
/// `ns` while the old cells are loaded.
pub const NS_LISTS_PIPE_V1: &str = r"\bpipe_stage_v1\b";
/// `ns` lists the old channel cell.
pub const NS_LISTS_CHANNEL_RENDEZVOUS: &str = r"\bdemo_channel_rendezvous\b";
/// `ns` after the joint swap: the new cells.
pub const NS_LISTS_PIPE_V2: &str = r"\bpipe_stage_v2\b";
/// `ns` after the joint swap: the new channel cell.
pub const NS_LISTS_CHANNEL_BUFFERED: &str = r"\bdemo_channel_buffered\b";

// Case study (c): fix a buggy service cell live (`live-fix`).
/// The client in the background.
pub const LOG_CLIENT_IN_BACKGROUND: &str = "log_client run &";
/// The shell's answer.
pub const LOG_CLIENT_STARTED: &str = r"^\[\d+\] log_client started in the background$";
/// The client's first phase ended.
pub const LOG_CLIENT_PHASE_ONE: &str = r"\blog_client: 20 records sent through demo_log v1; waiting for a new version$";
/// `log_client show` before the fix: the misbehaviour (20 appends, 2 records missing).
pub const LOG_SHOW_BUGGY: &str = r"^demo_log v1: 20 appends, 18 records stored$";
/// The live fix.
pub const SWAP_LOG_FIX: &str = "swap demo_log_buggy demo_log_fixed";
/// The client's verdict, in the same task: v1 lost records 10 and 20, v2 none, and the 18 records stored before
/// the swap are still there (a swap without state transfer leaves 20 records, 0 from before).
pub const LOG_CLIENT_VERDICT: &str =
    r"\blog_client: v1 lost records 10 20; v2 lost none; the store holds 38 records, 18 from before the swap$";
/// `log_client show` after the fix: the append count went on from 20 (carried over), no record lost since.
pub const LOG_SHOW_FIXED: &str = r"^demo_log v2: 40 appends, 38 records stored$";
/// The client task ended (with 0: the shell reports nothing else).
pub const LOG_CLIENT_DONE: &str = r"^\[\d+\] done: log_client run$";
/// Swapping the fixed log service for itself with `--fresh`: the new copy starts from its initial statics.
pub const SWAP_LOG_FRESH: &str = "swap --fresh demo_log_fixed demo_log_fixed";
/// `swap --fresh` reports that no state was copied.
pub const SWAP_NOTHING_COPIED: &str = r"state transfer .*\b0 objects \(0 bytes\) copied";
/// `log_client show` after the fresh swap: the records did not come over.
pub const LOG_SHOW_FRESH: &str = r"^demo_log v2: 0 appends, 0 records stored$";

// The `shell-language` scenario: quoting, editing keys, history, completion, `$?`, syntax errors, bad input. Each
// greeting pattern ends in `!`, so it cannot match the echoed (redrawn) command line.
/// `hello "big world"`: one argument with a space.
pub const GREETS_BIG_WORLD: &str = r"greeting v1, big world!$";
/// `hello 'x  $?'`: single quotes keep both spaces and `$?` as typed.
pub const GREETS_LITERAL_QUOTED: &str = r"greeting v1, x  \$\?!$";
/// The Home/Delete/End/Left edit of `xhello plnet`.
pub const GREETS_PLANET: &str = r"greeting v1, planet!$";
/// The `ESC [ 1 ~` / `ESC [ 4 ~` / Ctrl-A / Ctrl-E edit.
pub const GREETS_MOON: &str = r"greeting v1, moon!$";
/// The Ctrl-K edit.
pub const GREETS_SUN: &str = r"greeting v1, sun!$";
/// The Ctrl-W edit, and the history recalls of it.
pub const GREETS_CAT: &str = r"greeting v1, cat!$";
/// `hell<Tab>`: completed to `hello `.
pub const GREETS_WORLD: &str = r"greeting v1, world!$";
/// `hello captai<Tab>`: a cell name completed.
pub const GREETS_CAPTAIN: &str = r"greeting v1, captain!$";
/// `hello k-capta<Tab>`: an object file name completed.
pub const GREETS_CAPTAIN_OBJECT: &str = r"greeting v1, k-captain\.o!$";
/// `fault_demo` without arguments returns 1.
pub const FAULT_DEMO_EXITED_1: &str = r"^fault_demo: exited with 1$";
/// `hello $?` after it.
pub const GREETS_STATUS_1: &str = r"greeting v1, 1!$";
/// `hello $?` after a successful `hello`.
pub const GREETS_STATUS_0: &str = r"greeting v1, 0!$";
/// `fault_demo panic`: the application's task failed.
pub const FAULT_DEMO_FAILED: &str = r"^fault_demo: task \d+ failed";
/// `hello "s=$?"` after a failed application: the shell's failure status.
pub const GREETS_STATUS_FAILED: &str = r"greeting v1, s=134!$";
/// `hello $?` after an unknown command.
pub const GREETS_STATUS_UNKNOWN: &str = r"greeting v1, 127!$";
/// An unterminated double quote.
pub const UNTERMINATED_QUOTE: &str = r#"^shell: syntax error: unterminated " quote opened at column 7$"#;
/// A pipeline (not implemented yet) is refused, not run.
pub const PIPE_WITHOUT_COMMAND: &str = r"^shell: syntax error: missing command next to `\|` at column 7$";
/// The 10,000-byte line: 512 bytes kept, 9,488 refused, nothing run.
pub const LINE_TOO_LONG: &str =
    r"^shell: line too long: 9488 bytes over the limit of 512 were dropped; nothing was run$";
/// `hello ok` after the bad input.
pub const GREETS_OK: &str = r"greeting v1, ok!$";

// The `jobs` scenario.
/// Ctrl-Z on a foreground `load 1 1`.
pub const LOAD_STOPPED: &str = r"^\[\d+\] stopped: load 1 1$";
/// `hello $?` after it: 128 + SIGTSTP.
pub const GREETS_STATUS_STOPPED: &str = r"greeting v1, 148!$";
/// A `load 1 N` that ran to its end.
pub const LOAD_ONE_COMPLETED: &str = r"^load: 1 tasks completed$";
/// `jobs` lists the stopped job.
pub const JOBS_LISTS_STOPPED_LOAD: &str = r"^\[\d+\] stopped +load 1 1$";
/// The report of the finished background job.
pub const LOAD_JOB_DONE: &str = r"^\[\d+\] done: load 1 1$";
/// `fg` names the job it resumes.
pub const FG_LOAD: &str = r"^load 1 1$";
/// `bg` names the job it resumes.
pub const BG_LOAD: &str = r"^\[\d+\] load 1 1 &$";
/// `fg` with no jobs left.
pub const FG_NO_JOBS: &str = r"^fg: no jobs$";

/// `machine`: the firmware line under SeaBIOS and under OVMF.
pub const MACHINE_FIRMWARE_BIOS: &str = r"^firmware: BIOS\b";
/// See [`MACHINE_FIRMWARE_BIOS`].
pub const MACHINE_FIRMWARE_UEFI: &str = r"^firmware: UEFI\b";
/// `machine`: the CPU model line (vendor, brand string, family/model/stepping) and the feature list (every QEMU
/// CPU model has an APIC and a TSC).
pub const MACHINE_CPU: &str = r"^cpu: \S+ .+ family 0x[0-9a-f]+ model 0x[0-9a-f]+ stepping \d+$";
/// See [`MACHINE_CPU`].
pub const MACHINE_CPU_FEATURES: &str = r"^cpu features: .*\btsc\b.*\bapic\b";
/// `machine` with 4 CPUs: all started, four APIC ids, the x2APIC answer (QEMU 7.2's TCG drops `+x2apic`, newer
/// QEMUs offer it: either answer), the mode in use.
pub const MACHINE_FOUR_CPUS: &str =
    r"^cpus: 4 started \(APIC ids \d+ \d+ \d+ \d+\), x2APIC (yes|no), APIC mode (xAPIC|x2APIC)$";
/// `machine`: memory totals from the BIOS map (SeaBIOS) or the EFI map (OVMF).
pub const MACHINE_MEMORY_BIOS_MAP: &str = r"^memory: [1-9]\d* MiB usable of [1-9]\d* MiB in \d+ regions \(BIOS map\)$";
/// See [`MACHINE_MEMORY_BIOS_MAP`].
pub const MACHINE_MEMORY_EFI_MAP: &str = r"^memory: [1-9]\d* MiB usable of [1-9]\d* MiB in \d+ regions \(EFI map\)$";
/// `machine`: the ACPI line; SeaBIOS has an ACPI 1.0 RSDP (old tag), OVMF an ACPI 2.0 one (new tag); both list
/// the FADT and the MADT, q35 also the MCFG.
pub const MACHINE_ACPI_SEABIOS: &str =
    r"^acpi: RSDP v0 at 0x[0-9a-f]+ \(multiboot2 old RSDP tag\), tables:.* FACP\b.* APIC\b";
/// See [`MACHINE_ACPI_SEABIOS`].
pub const MACHINE_ACPI_OVMF_Q35: &str =
    r"^acpi: RSDP v2 at 0x[0-9a-f]+ \(multiboot2 new RSDP tag\), tables:.* FACP\b.* APIC\b.* MCFG\b";
/// `machine`: ACPI tables with a bad checksum are marked; none are expected under QEMU.
pub const MACHINE_ACPI_BAD_CHECKSUM: &str = r"\(bad checksum\)";
/// `machine`: the PCI count line.
pub const MACHINE_PCI_COUNT: &str = r"^pci: [1-9]\d* devices$";
/// `machine`: the host bridge QEMU always has, i440FX on `-machine pc`, Q35 (MCH) on `-machine q35`.
pub const MACHINE_PCI_HOST_BRIDGE_PC: &str = r"^  00:00\.0 8086:1237 Host bridge \[06:00\.00, header 0\]$";
/// See [`MACHINE_PCI_HOST_BRIDGE_PC`].
pub const MACHINE_PCI_HOST_BRIDGE_Q35: &str = r"^  00:00\.0 8086:29c0 Host bridge \[06:00\.00, header 0\]$";
/// `machine` on q35: the ICH9 AHCI controller, named down to its programming interface.
pub const MACHINE_PCI_AHCI_Q35: &str = r"^  00:1f\.2 8086:2922 SATA controller \(AHCI\) \[01:06\.01, header 0\]$";
/// `machine`: the framebuffer line under SeaBIOS (GRUB leaves VGA text mode).
pub const MACHINE_FRAMEBUFFER_VGA_TEXT: &str = r"^framebuffer: none \(VGA text\)$";
/// `machine`: the framebuffer line under OVMF (GRUB hands over a direct-RGB framebuffer from the GOP).
pub const MACHINE_FRAMEBUFFER_RGB: &str =
    r"^framebuffer: \d+x\d+x(16|24|32) at 0x[0-9a-f]+ \(direct RGB, pitch \d+ bytes\)$";
/// `machine`: the consoles line; QEMU always emulates the 8042, so a PS/2 keyboard is found.
pub const MACHINE_CONSOLES: &str = r"^consoles: serial COM1, screen (VGA text|framebuffer|none), keyboard PS/2$";
/// The boot log line naming the firmware type (nano_core).
pub const BOOT_LOGS_FIRMWARE_UEFI: &str = r"firmware: UEFI; memory map from the EFI map tag; ACPI RSDP revision 2";
/// The boot log line naming the local APIC mode (apic cell).
pub const BOOT_LOGS_APIC_MODE: &str = r"apic: local APIC in (xAPIC|x2APIC) mode";
/// `top -n 2 -d 200`: the first refresh's summary line (uptime with milliseconds, CPUs, policy, task count).
pub const TOP_FIRST_REFRESH: &str =
    r"^top - up \d+\.\d{3} s, \d+ CPUs, policy round_robin, \d+ tasks, refresh 1 of 2 every 200 ms$";
/// `top`'s column header.
pub const TOP_HEADER: &str = r"^   ID NAME +STATE +CPU +PRIO SWITCHES +\+NEW$";
/// `top` lists the boot CPU's idle task.
pub const TOP_LISTS_IDLE: &str = r"^ +1 idle/0 \(idle\) +runnable +0\* +- +\d+ +\d+$";
/// `top` lists itself, running.
pub const TOP_LISTS_ITSELF: &str = r"^ +\d+ top +running +\d+ +- +\d+ +\d+$";
/// `top -n 2`: the second refresh's summary line.
pub const TOP_SECOND_REFRESH: &str = r"^top - up .* refresh 2 of 2 every 200 ms$";
/// `top -n 2 -d 200`, in order: each refresh's summary, header and rows.
pub const TOP_TWO_REFRESHES: &[&str] = &[
    TOP_FIRST_REFRESH,
    TOP_HEADER,
    TOP_LISTS_IDLE,
    TOP_LISTS_ITSELF,
    TOP_SECOND_REFRESH,
    TOP_HEADER,
    TOP_LISTS_ITSELF,
];
/// A third refresh (`-n 2` must stop after two).
pub const TOP_THIRD_REFRESH: &str = r"refresh 3\b";
/// `ps -w -n 1` runs `top`: one refresh.
pub const PS_W_RUNS_TOP: &str = r"^top - up .* refresh 1 of 1 every 1000 ms$";
/// `top -n 0`: refused, with the usage line.
pub const TOP_COUNT_OUT_OF_RANGE: &str = r"^top: -n 0 is out of range$";
/// `top`'s usage line.
pub const TOP_USAGE: &str = r"^usage: top \[-n COUNT\] \[-d MS\]";
/// `ns` after `checksum`: the registry crates are application cells of their own.
pub const NS_LISTS_CRC32FAST_APP: &str = r"^application +crc32fast +app\b";
/// `ns` after `checksum`: Adler-32's crate.
pub const NS_LISTS_ADLER2_APP: &str = r"^application +adler2 +app\b";
/// `ns` after `checksum`: MD5's crate.
pub const NS_LISTS_MD5_APP: &str = r"^application +md5 +app\b";
/// Typing a registry crate's name: an application cell, but a library without an entry, so it is refused.
pub const MD5_NOT_AN_APPLICATION: &str =
    r"md5: error: not an application: no typed entry \(cell md5 exports no md5::APPLICATION_ENTRY";
/// `cells greeting_v1`: its header (a kernel cell with one direct dependency).
pub const CELLS_GREETING_HEADER: &str = r"^greeting_v1 \(kernel namespace\), 1 direct dependency$";
/// The tree's root line.
pub const CELLS_GREETING_ROOT: &str = r"^greeting_v1$";
/// `greeting_v1`'s only dependency, the base image, as the last branch.
pub const CELLS_GREETING_NANO_CORE: &str = r"^└── nano_core$";
/// `cells -a -d 1 hello`: the header (application namespace).
pub const CELLS_HELLO_HEADER: &str = r"^hello \(application namespace\), 3 direct dependencies$";
/// `cells -a -d 1 hello`: `app_io` cut at depth 1 (ASCII branch).
pub const CELLS_HELLO_APP_IO_CUT: &str = r"^\|-- app_io \.\.\.$";
/// `cells -a -d 1 hello`: `greeting_v1` cut at depth 1.
pub const CELLS_HELLO_GREETING_CUT: &str = r"^\|-- greeting_v1 \.\.\.$";
/// `cells -a -d 1 hello`: `nano_core` last (no dependencies, so not cut).
pub const CELLS_HELLO_NANO_CORE_LAST: &str = r"^`-- nano_core$";
/// `cells -a -d 1 hello`, in order.
pub const CELLS_HELLO_DEPTH_ONE: &[&str] =
    &[CELLS_HELLO_HEADER, CELLS_HELLO_APP_IO_CUT, CELLS_HELLO_GREETING_CUT, CELLS_HELLO_NANO_CORE_LAST];
/// Anything drawn two levels down (must not appear with `-d 1`).
pub const CELLS_LEVEL_TWO: &str = r"^(\|   |    )[|`]-- ";
/// `cells hello` (no limit): `app_io`'s subtree reaches `scheduler` (two or more levels down).
pub const CELLS_HELLO_REACHES_SCHEDULER: &str = r"^│   (│   )*├── scheduler$";
/// `cells hello`: a repeated cell is marked.
pub const CELLS_REPEAT_MARK: &str = r"── nano_core \(\*\)$";
/// `cells -r greeting_v1` after `hello` ran: its one dependent.
pub const CELLS_GREETING_DEPENDENT: &str = r"^└── hello$";
/// `cells nosuchcell`: the error.
pub const CELLS_UNKNOWN: &str = r"^cells: error: no loaded cell named nosuchcell \(`ns` lists them\)$";
/// `echo $?` after a command that returned 1.
pub const STATUS_ONE: &str = r"^1$";
/// `echo $?` after a command that returned 0.
pub const STATUS_ZERO: &str = r"^0$";
// The `pipes` scenario.
/// `yes hey 2 | upper`: `upper`'s output.
pub const PIPE_UPPER_HEY: &str = r"^HEY$";
/// `yes`'s own lines must not reach the console.
pub const PIPE_LOWER_HEY: &str = r"^hey$";
/// `yes abc 3 | upper | wc`: 3 lines, 3 words, 12 bytes.
pub const PIPE_WC_THREE: &str = r"^3 3 12$";
/// `yes abcdefghi 10000 | wc`: 100,000 bytes.
pub const PIPE_WC_BIG: &str = r"^10000 10000 100000$";
/// `wc` of what `fault_demo` printed before it panicked.
pub const PIPE_WC_ANY: &str = r"^\d+ \d+ \d+$";
/// `printenv NOT_SET`.
pub const PRINTENV_NOT_SET: &str = r"^printenv: NOT_SET is not set$";
/// One line of `yes`.
pub const PIPE_Y: &str = r"^y$";
/// One line of `yes | upper`.
pub const PIPE_UPPER_Y: &str = r"^Y$";
/// The last line of `ps`.
pub const PS_TASK_COUNT: &str = r"^\d+ tasks$";
/// A `ps` row of a pipeline stage (none may be left).
pub const PS_PIPE_STAGE: &str = r"^\s+\d+ (yes|upper|head|wc)\s";
/// Ctrl-C echoed by the shell.
pub const INTERRUPTED: &str = r"\^C$";
/// `hello $?` after Ctrl-C: 128 + SIGINT.
pub const GREETS_STATUS_INTERRUPTED: &str = r"greeting v1, 130!$";
/// `upper` of the line typed at the console.
pub const UPPER_TYPED: &str = r"^QUIET WORDS$";
/// `yes bg 2 | upper &`.
pub const PIPE_BACKGROUND_STARTED: &str = r"^\[\d+\] yes \| upper started in the background$";
/// The background pipeline's output.
pub const PIPE_UPPER_BG: &str = r"^(theseus> )?BG$";
/// `jobs` once it ended.
pub const PIPE_JOB_DONE: &str = r"^\[\d+\] done: yes bg 2 \| upper$";
/// `echo hi | upper`.
pub const PIPE_BUILTIN_REFUSED: &str = r"^shell: `echo` is a builtin; only applications can be stages of a pipeline$";
/// `hello $?` after a syntax error.
pub const GREETS_STATUS_SYNTAX: &str = r"greeting v1, 2!$";
/// `hello $PLACE`.
pub const GREETS_MARS: &str = r"greeting v1, mars!$";
/// `hello "${PLACE}ian"`.
pub const GREETS_MARSIAN: &str = r"greeting v1, marsian!$";
/// `hello '$PLACE'`: not expanded.
pub const GREETS_LITERAL_PLACE: &str = r"greeting v1, \$PLACE!$";
/// `env` lines, sorted by name.
pub const ENV_OTHER: &str = r"^OTHER=x$";
/// `env`: PLACE.
pub const ENV_PLACE: &str = r"^PLACE=mars$";
/// `printenv PLACE` in an application started after the export.
pub const PRINTENV_MARS: &str = r"^mars$";
/// `printenv PLACE` after `unset PLACE`.
pub const PRINTENV_PLACE_NOT_SET: &str = r"^printenv: PLACE is not set$";
/// `export 1BAD=x`.
pub const EXPORT_BAD_NAME: &str = r"^export: `1BAD` is not a variable name";
/// `hello ${PLACE`.
pub const BAD_SUBSTITUTION: &str = r"^shell: syntax error: bad substitution at column 7";
/// `help export`: the environment builtins have usage lines too.
pub const HELP_EXPORT: &str = r"^usage: export NAME=VALUE \.\.\.$";
/// Ctrl-Z on `yes | wc`.
pub const PIPE_STOPPED: &str = r"^\[\d+\] stopped: yes \| wc$";
/// `jobs` with the stopped pipeline.
pub const PIPE_JOB_STOPPED: &str = r"^\[\d+\] stopped\s+yes \| wc$";
/// `fg` echoes the resumed pipeline.
pub const FG_PIPE: &str = r"^yes \| wc$";
/// Ctrl-C killed the first stage too.
pub const YES_KILLED: &str = r"^yes: task \d+ failed: killed$";
// The USB boot matrix (`usb-*` scenarios, crate::usb_matrix).
/// GRUB failing to find a file on the way to the prompt (e.g. `error: file `/boot/grub/x86_64-efi/part_acorn.mod'
/// not found.` under OVMF when the core image loads a module the image lacks). Not every GRUB error: OVMF boots
/// also print `error: no suitable video mode found.` until `grub.cfg` loads a video driver (`insmod all_video`),
/// which belongs to the UEFI framebuffer console.
pub const GRUB_MISSING_FILE: &str = r"^error: file .* not found";
/// The kernel's memory line with 128 MiB (observed: 121 MiB usable under SeaBIOS, 115 under OVMF).
pub const BOOT_MEMORY_128M: &str = r"nano_core: memory: 1[0-2]\d MiB usable";
/// The kernel's memory line with 2 GiB (observed: 2041 MiB usable under SeaBIOS, 2035 under OVMF).
pub const BOOT_MEMORY_2G: &str = r"nano_core: memory: 20[0-4]\d MiB usable";
/// The CPU count at boot, 1 CPU.
pub const BOOT_ONE_CPU: &str = r"smp: 1 CPUs online \(1 listed by the MADT, 0 started\)";
/// The CPU count at boot, 4 CPUs.
pub const BOOT_FOUR_CPUS: &str = r"smp: 4 CPUs online \(4 listed by the MADT, 3 started\)";
/// OVMF's boot manager starting the USB stick (not a CD-ROM).
pub const OVMF_BOOTS_USB_STICK: &str = r#"^BdsDxe: starting Boot\d+ "UEFI QEMU QEMU USB HARDDRIVE"#;
/// `bench --quick` prints one line per metric, every field numeric (the names match scripts/bench/linux_bench.c),
/// then `bench: done (0 failed)`.
pub const BENCH_QUICK_LINES: &[&str] = &[
    r"^bench: metric=null_call unit=ns median=\d+ min=\d+ max=\d+ iters=\d+ runs=5$",
    r"^bench: metric=context_switch unit=ns median=[1-9]\d* min=\d+ max=\d+ iters=\d+ runs=5$",
    r"^bench: metric=spawn unit=ns median=[1-9]\d* min=\d+ max=\d+ iters=\d+ runs=5$",
    r"^bench: metric=map_unmap unit=ns median=[1-9]\d* min=\d+ max=\d+ iters=\d+ runs=5$",
    r"^bench: metric=ipc_rendezvous unit=ns median=[1-9]\d* min=\d+ max=\d+ iters=\d+ runs=5$",
    r"^bench: metric=ipc_buffered unit=ns median=[1-9]\d* min=\d+ max=\d+ iters=\d+ runs=5$",
    r"^bench: metric=heap unit=ns median=\d+ min=\d+ max=\d+ iters=\d+ runs=5$",
    r"^bench: metric=cell_load_small unit=ns median=[1-9]\d* min=\d+ max=\d+ iters=\d+ runs=5 cell=\w+ bytes=[1-9]\d* relocations=[1-9]\d* ns_per_kib=\d+ ns_per_relocation=\d+$",
    r"^bench: metric=cell_load_large unit=ns median=[1-9]\d* min=\d+ max=\d+ iters=\d+ runs=5 cell=\w+ bytes=[1-9]\d* relocations=[1-9]\d* ns_per_kib=\d+ ns_per_relocation=\d+$",
    r"^bench: profile cell=\w+ phase=relocate ns_per_load=[1-9]\d* percent=\d+\.\d$",
    r"^bench: metric=swap_excluding_load unit=ns median=[1-9]\d* min=\d+ max=\d+ iters=\d+ runs=5 cell=\w+ new=\w+ relocations_rewritten=[1-9]\d* verify_ns=\d+ state_transfer_ns=\d+ commit_ns=[1-9]\d* pin_search_ns=[1-9]\d* cleanup_ns=\d+ load_ns=[1-9]\d*$",
    r"^bench: done \(0 failed\)$",
];

// Scenario `restartable`: workers of applications restarted after a kill still deliver the result.
/// A long background ping-pong (4 rounds of 100,000 messages: 10x the 10,000-message rounds, which had ended before
/// the typed `kill` arrived in 5 of 5 attempts with the faster context switch, so a round task is still running when
/// it is killed).
pub const PING_PONG_IN_BACKGROUND: &str = "ping_pong 4 100000 &";
/// The shell's answer to it.
pub const PING_PONG_STARTED: &str = r"^\[\d+\] ping_pong started in the background$";
/// `ps` lists a round task; group 1 is its id.
pub const PS_PING_PONG_ROUND_ID: &str = r"^\s*(\d+) ping_pong-round\s";
/// The background ping-pong finished.
pub const PING_PONG_JOB_DONE: &str = r"^\[\d+\] done: ping_pong 4 100000$";
/// Its result line: every round completed (a round that failed more often than allowed prints an error instead).
/// Not anchored at a word start: a background line can land in the middle of a typed command's echo (`jo` +
/// `ping_pong: ...` on one line).
pub const PING_PONG_RESULT: &str = r"ping_pong: 4 rounds, 100000 messages each, checksum 0x[0-9a-f]{16}$";
/// The kernel log's line for the killed round's restart.
pub const PING_PONG_ROUND_RESTARTED: &str = r#"restarting task "ping_pong-round" \(restart 1 of 3\)"#;
/// A background load of 2 restartable workers for 4 s.
pub const LOAD_TWO_IN_BACKGROUND: &str = "load 2 4 &";
/// `ps` lists a load worker; group 1 is its id.
pub const PS_LOAD_WORKER_ID: &str = r"^\s*(\d+) load-worker\s";
/// The background load finished.
pub const LOAD_TWO_JOB_DONE: &str = r"^\[\d+\] done: load 2 4$";
/// Both workers completed, the killed one after its restart (not anchored at a word start, as for
/// [`PING_PONG_RESULT`]: `joload: 2 tasks completed` was seen).
pub const LOAD_TWO_COMPLETED: &str = r"load: 2 tasks completed$";
/// The kernel log's line for the killed worker's restart.
pub const LOAD_WORKER_RESTARTED: &str = r#"restarting task "load-worker" \(restart 1 of 3\)"#;
/// The shell's answer to [`LOAD_TWO_IN_BACKGROUND`].
pub const BACKGROUND_STARTED_LOAD: &str = r"^\[\d+\] load started in the background$";
/// `log error`: the console shows errors only (a killed worker's warning would otherwise land after a prompt).
pub const LOG_LEVEL_ERROR: &str = r"^log: console level ERROR$";
