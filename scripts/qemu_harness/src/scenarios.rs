//! The QEMU test scenarios, as a declarative table (run by [`crate::runner`]).
//!
//! Every scenario boots an ISO, waits for the shell prompt, types commands and checks their output, and ends
//! with `exit`, checking QEMU's exit status. The strings live in [`crate::expected`].

use crate::expected as e;
use crate::qemu::{Firmware, QemuConfig};
use crate::session::Typing;
use std::path::PathBuf;
use std::time::Duration;

/// Which ISO a scenario boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    /// `build/theseus.iso`.
    Normal,
    /// `build/theseus-corrupt.iso` (one object damaged).
    Corrupt,
}

/// One step of a scenario.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Wait for a line matching the pattern (no typing).
    Expect(&'static str),
    /// Wait for the corrupted object's error line (pattern built from the object name).
    ExpectCorruptObjectError,
    /// Wait for the prompt.
    Prompt,
    /// Type a command and wait for the next prompt. The output must match each `expect` pattern (in order: each
    /// on the line of the previous one's match or a later line) and no `reject` pattern. With `save`, the output is
    /// kept under that name for [`Step::SameOutput`]. `{name}` in the line is replaced by the value captured under
    /// that name ([`Step::Capture`]).
    Command {
        /// The command typed.
        line: &'static str,
        /// Patterns that must appear in the output, in order.
        expect: &'static [&'static str],
        /// Patterns that must not appear in the output.
        reject: &'static [&'static str],
        /// Name under which to keep the output.
        save: Option<&'static str>,
    },
    /// Wait for a line matching the pattern anywhere in the output so far or later (background task output).
    ExpectAnywhere(&'static str),
    /// Type text as it is, without a line ending and without waiting (e.g. a line for a foreground task, or Ctrl-C).
    Type(&'static str),
    /// Type raw bytes (not necessarily UTF-8: bad input), `times` times over, without waiting.
    TypeBytes {
        /// The bytes typed.
        bytes: &'static [u8],
        /// How many times they are typed in a row.
        times: usize,
    },
    /// Two saved outputs must be identical.
    SameOutput(&'static str, &'static str),
    /// No line of the output so far (firmware, GRUB and kernel boot messages, when placed after the prompt)
    /// matches the pattern.
    BootLogLacks(&'static str),
    /// Type a command and wait for the next prompt; the first output line matching `pattern` gives its capture
    /// group 1, kept under `name` for later command lines (`{name}`).
    Capture {
        /// The command typed.
        line: &'static str,
        /// A pattern with one capture group.
        pattern: &'static str,
        /// Name under which to keep the captured text.
        name: &'static str,
    },
    /// Capture a task's id as [`Step::Capture`] does, then type `line` (with `{name}` replaced); if its output does not
    /// match every `expect` pattern (the task ended between the two commands, e.g. a short-lived worker that a
    /// loaded host let finish), capture again and retry, at most `attempts` times. Fails with the last output.
    CaptureThenCommand {
        /// The command whose output holds the id (e.g. `ps`).
        capture_line: &'static str,
        /// A pattern with one capture group.
        pattern: &'static str,
        /// Name under which to keep the captured text.
        name: &'static str,
        /// The command typed after each capture.
        line: &'static str,
        /// Patterns that its output must match, in order.
        expect: &'static [&'static str],
        /// How many capture-and-command pairs are typed at most.
        attempts: u32,
    },
    /// Type a command until its output matches every `expect` pattern, at most `attempts` times, 250 ms apart: for a
    /// state a background task reaches on its own (e.g. all its workers spawned). Fails with the last output.
    /// `{name}` in the line is replaced as in [`Step::Command`].
    Retry {
        /// The command typed.
        line: &'static str,
        /// Patterns that must appear in the output, in order.
        expect: &'static [&'static str],
        /// How many times the command is typed at most.
        attempts: u32,
    },
    /// Type `test` (every in-kernel test cell) and check that each cell of [`e::TEST_CELLS`] printed its `ok` line,
    /// that none failed, and that the summary counts exactly that many passed.
    AllTestsPass,
    /// On the screen console (through the QEMU monitor, see [`crate::monitor`]): wait until the screen's last
    /// non-blank row is the prompt, press `keys` (QEMU key names, space-separated) on the emulated PS/2 keyboard,
    /// then wait until the screen rows match every `expect` pattern (in order, as for [`Step::Command`]) and no
    /// `reject` pattern. Only in scenarios whose name starts with `screen` (which get a monitor socket).
    Screen {
        /// The keys pressed, e.g. `h e l p ret`.
        keys: &'static str,
        /// Patterns that must appear on the screen, in order.
        expect: &'static [&'static str],
        /// Patterns that must not appear on the screen.
        reject: &'static [&'static str],
    },
    /// Type a command and wait for the next prompt; the output must contain each line `lines()` computes on the
    /// host (literally, in order, each on a later line than the previous one), e.g. the `checksum` application's
    /// values ([`crate::checksum`]).
    HostComputed {
        /// The command typed.
        line: &'static str,
        /// The expected output lines.
        lines: fn() -> Vec<String>,
    },
    /// Type the command and check QEMU's exit status.
    Exit {
        /// The command typed (`exit` or `exit N`).
        line: &'static str,
        /// The expected QEMU exit status.
        status: i32,
    },
}

/// A shorthand for a command step that only expects.
pub const fn command(line: &'static str, expect: &'static [&'static str]) -> Step {
    Step::Command { line, expect, reject: &[], save: None }
}

/// `machine` under SeaBIOS on `-machine pc` (the i440FX host bridge), 4 CPUs.
const MACHINE_BIOS_STEPS: &[Step] = &[
    Step::Prompt,
    Step::Command {
        line: "machine",
        expect: &[
            e::MACHINE_FIRMWARE_BIOS,
            e::MACHINE_CPU,
            e::MACHINE_CPU_FEATURES,
            e::MACHINE_FOUR_CPUS,
            e::MACHINE_MEMORY_BIOS_MAP,
            e::MACHINE_ACPI_SEABIOS,
            e::MACHINE_PCI_COUNT,
            e::MACHINE_PCI_HOST_BRIDGE_PC,
            e::MACHINE_FRAMEBUFFER_VGA_TEXT,
            e::MACHINE_CONSOLES,
        ],
        reject: &[e::MACHINE_ACPI_BAD_CHECKSUM],
        save: None,
    },
    EXIT_OK,
];

/// `machine` under OVMF on `-machine q35` (the EFI memory map, ACPI 2.0, the Q35 host bridge and AHCI), 4 CPUs.
const MACHINE_UEFI_STEPS: &[Step] = &[
    Step::Expect(e::BOOT_LOGS_FIRMWARE_UEFI),
    Step::Prompt,
    Step::Command {
        line: "machine",
        expect: &[
            e::MACHINE_FIRMWARE_UEFI,
            e::MACHINE_CPU,
            e::MACHINE_FOUR_CPUS,
            e::MACHINE_MEMORY_EFI_MAP,
            e::MACHINE_ACPI_OVMF_Q35,
            e::MACHINE_PCI_HOST_BRIDGE_Q35,
            e::MACHINE_PCI_AHCI_Q35,
            e::MACHINE_FRAMEBUFFER_RGB,
            e::MACHINE_CONSOLES,
        ],
        reject: &[e::MACHINE_ACPI_BAD_CHECKSUM],
        save: None,
    },
    EXIT_OK,
];

/// A CPU model offering x2APIC (`-cpu qemu64,+x2apic`) under SeaBIOS on q35 with 4 CPUs: the APIC cell reports
/// its mode, every CPU starts, and `machine` answers. (QEMU 7.2's TCG drops the flag with a warning, so there
/// this boot runs in xAPIC mode like the others; the x2APIC register path runs when firmware enables x2APIC.)
const MACHINE_X2APIC_STEPS: &[Step] = &[
    Step::Expect(e::BOOT_LOGS_APIC_MODE),
    Step::Expect(e::SMP_ALL_CPUS_ONLINE),
    Step::Prompt,
    command("machine", &[e::MACHINE_FIRMWARE_BIOS, e::MACHINE_FOUR_CPUS, e::MACHINE_PCI_HOST_BRIDGE_Q35]),
    EXIT_OK,
];

/// Extra QEMU arguments (machine type, CPU model, a disabled device), by scenario name. A table beside the
/// scenarios rather than a `Scenario` field, so that the other scenarios' entries stay as they are.
pub const EXTRA_QEMU_ARGUMENTS: &[(&str, &[&str])] = &[
    ("machine-bios-pc", &["-machine", "pc"]),
    ("machine-uefi-q35", &["-machine", "q35"]),
    ("machine-x2apic-q35", &["-machine", "q35", "-cpu", "qemu64,+x2apic"]),
    ("no-ps2", &["-machine", "pc,i8042=off"]),
];

/// The extra QEMU arguments of scenario `name` (see [`EXTRA_QEMU_ARGUMENTS`]); empty for most.
pub fn extra_qemu_arguments(name: &str) -> &'static [&'static str] {
    EXTRA_QEMU_ARGUMENTS.iter().find(|(scenario, _)| *scenario == name).map_or(&[], |(_, arguments)| arguments)
}

/// A named test.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Name used in reports and log files.
    pub name: &'static str,
    /// Firmware to boot with.
    pub firmware: Firmware,
    /// ISO to boot.
    pub image: Image,
    /// The steps, in order.
    pub steps: &'static [Step],
    /// Number of CPUs for this scenario (`-smp`), or `None` for the harness's `--smp` setting.
    pub cpus: Option<u32>,
}

const EXIT_OK: Step = Step::Exit { line: e::EXIT_COMMAND, status: e::EXIT_STATUS_SUCCESS };
const NS_HAS_CAPTAIN: Step = command("ns", &[e::NS_LISTS_CAPTAIN]);

/// Multiprocessor boot: every CPU comes up, every CPU's timer ticks, and the shell reads typed input (through the
/// serial receive interrupt).
const SMP_STEPS: &[Step] = &[
    Step::Expect(e::SMP_LAST_CPU_ONLINE),
    Step::Expect(e::SMP_ALL_CPUS_ONLINE),
    Step::Expect(e::SMP_TIMER_TICKS_ON_EVERY_CPU),
    Step::Expect(e::SMP_STOP_THE_WORLD),
    Step::Prompt,
    command("help", &[e::HELP_MENTIONS_SWAP]),
    EXIT_OK,
];

/// The example applications (README "Example applications"): `checksum` (registry crates; values computed on the
/// host), `top -n 2`, `cells` (a small cell's tree, its dependents, an unknown cell and its exit status).
const APPS_STEPS: &[Step] = &[
    Step::Prompt,
    Step::HostComputed { line: "checksum", lines: crate::checksum::default_vector },
    Step::HostComputed { line: crate::checksum::ARGUMENTS_COMMAND, lines: crate::checksum::arguments },
    command("echo $?", &[e::STATUS_ZERO]),
    command("ns", &[e::NS_LISTS_ADLER2_APP, e::NS_LISTS_CRC32FAST_APP, e::NS_LISTS_MD5_APP]),
    // The shell lists every application cell as a command, the registry crates' cells too: refused, nothing runs.
    command("md5", &[e::MD5_NOT_AN_APPLICATION]),
    Step::Command {
        line: "top -n 2 -d 200",
        expect: e::TOP_TWO_REFRESHES,
        reject: &[e::TOP_THIRD_REFRESH],
        save: None,
    },
    command("ps -w -n 1", &[e::PS_W_RUNS_TOP, e::TOP_HEADER]),
    command("top -n 0", &[e::TOP_COUNT_OUT_OF_RANGE, e::TOP_USAGE]),
    // greeting_v1 is loaded with hello, its first user.
    command("hello", &[e::HELLO_V1]),
    command("cells greeting_v1", &[e::CELLS_GREETING_HEADER, e::CELLS_GREETING_ROOT, e::CELLS_GREETING_NANO_CORE]),
    Step::Command {
        line: "cells -a -d 1 hello",
        expect: e::CELLS_HELLO_DEPTH_ONE,
        reject: &[e::CELLS_LEVEL_TWO],
        save: None,
    },
    command("cells hello", &[e::CELLS_HELLO_HEADER, e::CELLS_HELLO_REACHES_SCHEDULER, e::CELLS_REPEAT_MARK]),
    command("cells -r greeting_v1", &[e::CELLS_GREETING_DEPENDENT]),
    command("cells nosuchcell", &[e::CELLS_UNKNOWN]),
    command("echo $?", &[e::STATUS_ONE]),
    EXIT_OK,
];

/// The screen console with its own shell on the PS/2 keyboard: a typo corrected with Backspace, `ps` (listing the
/// `screen shell` task) drawn on the screen; the serial shell still works. `screen`: VGA text mode under SeaBIOS,
/// read back with `xp`; `screen-uefi`: the framebuffer under OVMF, read back from a `screendump` by matching
/// glyphs ([`crate::screendump`]).
const SCREEN_STEPS: &[Step] = &[
    Step::Prompt,
    Step::Screen {
        keys: e::SCREEN_PS_KEYS,
        expect: &[e::SCREEN_PS_TYPED, e::SCREEN_PS_POLICY, e::SCREEN_PS_LISTS_SCREEN_SHELL, e::SCREEN_PROMPT],
        reject: &[e::SCREEN_TYPO],
    },
    NS_HAS_CAPTAIN,
    EXIT_OK,
];

/// Without a PS/2 controller (QEMU `-machine pc,i8042=off`, like many UEFI PCs): the keyboard probe gives up
/// at once, says so, and both consoles still come up.
const NO_PS2_STEPS: &[Step] = &[Step::Expect(e::NO_PS2_CONTROLLER), Step::Prompt, NS_HAS_CAPTAIN, EXIT_OK];

/// The `shell` scenario's steps (1 CPU: the default; 4 CPUs: the swap goes through stop-the-world).
const SHELL_STEPS: &[Step] = &[
    Step::Prompt,
    command("help", &[e::HELP_MENTIONS_SWAP]),
    command("ls", &[e::LS_LISTS_CAPTAIN]),
    command("ls", &[e::LS_LISTS_HELLO]),
    command("ns", &[e::NS_LISTS_CAPTAIN]),
    command("hello", &[e::HELLO_V1]),
    Step::Command {
        line: e::SWAP_TO_V2,
        expect: &[e::SWAP_PHASE_TIME, e::SWAP_DONE],
        reject: &[e::SWAP_WITHOUT_STOPPING_CPUS],
        save: None,
    },
    command("hello", &[e::HELLO_V2]),
    Step::Command { line: "ns", expect: &[e::NS_LISTS_CAPTAIN], reject: &[e::NS_LISTS_GREETING_V1], save: None },
    command(e::UNKNOWN_COMMAND, &[e::UNKNOWN_COMMAND_REPLY]),
    Step::Command { line: e::BAD_ENTRY, expect: &[e::BAD_ENTRY_REFUSED], reject: &[e::BAD_ENTRY_RAN], save: None },
    command("hello", &[e::HELLO_V2]),
    // The serial shell is a restartable task: killed, it comes back as a fresh session.
    Step::Capture { line: "ps", pattern: e::PS_SHELL_ID, name: "shell" },
    command("kill {shell}", &[e::KILL_AT_SAFE_POINT]),
    Step::ExpectAnywhere(e::SHELL_TASK_KILLED),
    // The killed incarnation is gone (its id names no task) and a new shell answers. Retried: on several CPUs the
    // new shell's banner and prompt may come before or after the warning.
    Step::Retry { line: "kill {shell}", expect: &[e::KILL_NO_SUCH_TASK], attempts: 20 },
    command("ps", &[e::PS_LISTS_SHELL]),
    command("hello", &[e::HELLO_V2]),
    EXIT_OK,
];

/// The `pipes` scenario: pipelines of 2 and 3 applications, a 100,000-byte pipe, readers that exit early (the
/// writer then ends), Ctrl-C on a pipeline, `$?` after one, console input to an application, a background
/// pipeline, and the environment (`export`, `$NAME`, `unset`, `env`, inherited by `printenv`).
const PIPES_STEPS: &[Step] = &[
    Step::Prompt,
    // Two and three stages: `upper` sees `yes`'s lines; `wc` counts what `upper` wrote.
    Step::Command { line: "yes hey 2 | upper", expect: &[e::PIPE_UPPER_HEY], reject: &[e::PIPE_LOWER_HEY], save: None },
    command("yes abc 3 | upper | wc", &[e::PIPE_WC_THREE]),
    // 100,000 bytes through one pipe of 8 KiB (back-pressure: `yes` waits for `wc`).
    command("yes abcdefghi 10000 | wc", &[e::PIPE_WC_BIG]),
    // `$?` is the last stage's: 1 from `printenv` of an unset name; 0 after a failed first stage.
    command("yes a 1 | printenv NOT_SET", &[e::PRINTENV_NOT_SET]),
    command("hello $?", &[e::GREETS_STATUS_1]),
    command("fault_demo panic | wc", &[e::PIPE_WC_ANY, e::FAULT_DEMO_FAILED]),
    command("hello $?", &[e::GREETS_STATUS_0]),
    // A reader that exits early ends the writer: `yes` sees its output closed; `upper` (which ignores that, as
    // `println!` does) is ended by the shell. Neither is left running.
    command("yes | head 3", &[e::PIPE_Y, e::PIPE_Y, e::PIPE_Y]),
    command("yes | upper | head 2", &[e::PIPE_UPPER_Y]),
    Step::Command { line: "ps", expect: &[e::PS_TASK_COUNT], reject: &[e::PS_PIPE_STAGE], save: None },
    // Ctrl-C kills every stage of the foreground pipeline; `$?` is 130.
    Step::Type("yes | upper\r"),
    Step::Expect(e::PIPE_UPPER_Y),
    Step::Type("\x03"),
    Step::Expect(e::INTERRUPTED),
    // Killed, not ended by its closed output (which would exit 0, unreported).
    Step::Expect(e::YES_KILLED),
    Step::Prompt,
    command("hello $?", &[e::GREETS_STATUS_INTERRUPTED]),
    Step::Command { line: "ps", expect: &[e::PS_TASK_COUNT], reject: &[e::PS_PIPE_STAGE], save: None },
    // Ctrl-Z stops every stage (one stopped job); `fg` resumes them, Ctrl-C then ends them.
    Step::Type("yes | wc\r"),
    Step::Type("\x1a"),
    Step::Expect(e::PIPE_STOPPED),
    Step::Prompt,
    command("jobs", &[e::PIPE_JOB_STOPPED]),
    Step::Type("fg\r"),
    Step::Expect(e::FG_PIPE),
    Step::Type("\x03"),
    Step::Expect(e::INTERRUPTED),
    Step::Prompt,
    Step::Command { line: "ps", expect: &[e::PS_TASK_COUNT], reject: &[e::PS_PIPE_STAGE], save: None },
    // Console input: lines typed while `upper` runs reach it; Ctrl-D ends its input.
    Step::Type("upper\r"),
    Step::Type("quiet words\r"),
    Step::Expect(e::UPPER_TYPED),
    Step::Type("\x04"),
    Step::Prompt,
    command("hello $?", &[e::GREETS_STATUS_0]),
    // A pipeline in the background is one job.
    // (Its output comes after the prompt, so the line is typed without waiting for a prompt after it.)
    Step::Type("yes bg 2 | upper &\r"),
    Step::Expect(e::PIPE_BACKGROUND_STARTED),
    Step::ExpectAnywhere(e::PIPE_UPPER_BG),
    Step::Retry { line: "jobs", expect: &[e::PIPE_JOB_DONE], attempts: 40 },
    // A builtin cannot be a stage.
    command("echo hi | upper", &[e::PIPE_BUILTIN_REFUSED]),
    command("hello $?", &[e::GREETS_STATUS_SYNTAX]),
    // The environment: export, expansion (not in single quotes), inherited by an application, unset.
    command("export PLACE=mars OTHER=x", &[]),
    command("hello $PLACE", &[e::GREETS_MARS]),
    command("hello \"${PLACE}ian\"", &[e::GREETS_MARSIAN]),
    command("hello '$PLACE'", &[e::GREETS_LITERAL_PLACE]),
    command("env", &[e::ENV_OTHER, e::ENV_PLACE]),
    command("printenv PLACE", &[e::PRINTENV_MARS]),
    command("yes a 1 | printenv PLACE", &[e::PRINTENV_MARS]),
    command("unset PLACE", &[]),
    Step::Command { line: "env", expect: &[e::ENV_OTHER], reject: &[e::ENV_PLACE], save: None },
    command("printenv PLACE", &[e::PRINTENV_PLACE_NOT_SET]),
    command("export 1BAD=x", &[e::EXPORT_BAD_NAME]),
    command("help export", &[e::HELP_EXPORT]),
    command("hello ${PLACE", &[e::BAD_SUBSTITUTION]),
    EXIT_OK,
];

/// The `shell-commands` scenario: the system builtins, `help`, suggestions and `ns` column widths.
/// `bench --quick --profile`: every metric line of the bench application, and the loader profile.
const BENCH_QUICK_STEPS: &[Step] = &[Step::Prompt, command("bench --quick --profile", e::BENCH_QUICK_LINES), EXIT_OK];

const SHELL_COMMANDS_STEPS: &[Step] = &[
    Step::Prompt,
    command("help", e::HELP_LISTS_SYSTEM_COMMANDS),
    command("help swap", &[e::HELP_SWAP_USAGE]),
    command(e::ECHO_LINE, &[e::ECHO_OUTPUT]),
    Step::Command { line: "clear", expect: &[], reject: &[e::CLEAR_REJECT], save: None },
    command("uptime", &[e::UPTIME]),
    command("date", &[e::DATE]),
    command("mem", e::MEM_LINES),
    command(e::TYPO_OF_HELP, &[e::TYPO_SUGGESTION]),
    Step::Command {
        line: e::UNKNOWN_COMMAND,
        expect: &[e::UNKNOWN_COMMAND_REPLY],
        reject: &[e::NO_SUGGESTION],
        save: None,
    },
    command("ns", &[e::NS_CAPTAIN_PADDED]),
    command("log", &[e::LOG_LEVEL_WARN]),
    Step::Command { line: "hello", expect: &[e::HELLO_V1], reject: &[e::INFO_LINE], save: None },
    command("dmesg", &[e::DMESG_HAS_HELLO_LOAD]),
    command("deps hello", e::DEPS_HELLO),
    command("deps greeting_v1", e::DEPS_GREETING_USED_BY_HELLO),
    command("deps --dot", e::DEPS_DOT),
    command("deps nosuch", &[e::DEPS_UNKNOWN]),
    command("cat a-hello.o", e::CAT_OBJECT),
    command("cat cells.manifest", &[e::CAT_MANIFEST_HELLO]),
    command("cat nosuch.o", &[e::CAT_MISSING]),
    command("log loud", &[e::LOG_LEVEL_UNKNOWN]),
    command("log info", &[e::LOG_LEVEL_INFO]),
    command(e::SWAP_TO_V2, &[e::SWAP_INFO_SHOWN, e::SWAP_DONE]),
    Step::Exit { line: "shutdown", status: e::EXIT_STATUS_SUCCESS },
];

/// The shell's language and line editing, typed as a person would (escape sequences for the cursor keys, Ctrl
/// keys, Tab), then bad input (an overlong line, control bytes, invalid UTF-8), after which the shell still answers.
const SHELL_LANGUAGE_STEPS: &[Step] = &[
    Step::Prompt,
    // Quoting: one argument with a space in it; single quotes keep two spaces and `$?` literally.
    command("hello \"big world\"", &[e::GREETS_BIG_WORLD]),
    command("hello 'x  $?'", &[e::GREETS_LITERAL_QUOTED]),
    // Editing: Home (ESC [ H), Delete (ESC [ 3 ~), End (ESC [ F), three Lefts, an insertion.
    command("xhello plnet\x1b[H\x1b[3~\x1b[F\x1b[D\x1b[D\x1b[Da", &[e::GREETS_PLANET]),
    // The other Home/End spellings (ESC [ 1 ~, ESC [ 4 ~) and Ctrl-A / Ctrl-E.
    command("ello\x1b[1~h\x1b[4~ mo\x01\x05on", &[e::GREETS_MOON]),
    // Ctrl-K erases to the end of the line, Ctrl-W the word before the cursor.
    command("hello sun junk\x1b[D\x1b[D\x1b[D\x1b[D\x0b", &[e::GREETS_SUN]),
    command("hello dog\x17cat", &[e::GREETS_CAT]),
    // History: Up recalls the last line; Up Up Down the same.
    command("\x1b[A", &[e::GREETS_CAT]),
    command("\x1b[A\x1b[A\x1b[B", &[e::GREETS_CAT]),
    // Right (ESC [ C) after Lefts, Backspace, and Ctrl-U erasing typed text before the cursor.
    command("hello wrld\x1b[D\x1b[D\x1b[D\x1b[D\x1b[Co", &[e::GREETS_WORLD]),
    command("hello moonx\x7f", &[e::GREETS_MOON]),
    Step::Command {
        line: "junk words\x15hello sun",
        expect: &[e::GREETS_SUN],
        reject: &[e::UNKNOWN_COMMAND_REPLY],
        save: None,
    },
    // Tab completion: a command, a cell name, an object file name.
    command("hell\t", &[e::GREETS_WORLD]),
    command("hello captai\t", &[e::GREETS_CAPTAIN]),
    command("hello k-capta\t", &[e::GREETS_CAPTAIN_OBJECT]),
    // `$?`: an application's return value, 0 after success, a failed application, an unknown command.
    command("fault_demo", &[e::FAULT_DEMO_EXITED_1]),
    command("hello $?", &[e::GREETS_STATUS_1]),
    command("hello $?", &[e::GREETS_STATUS_0]),
    command("fault_demo panic", &[e::FAULT_DEMO_FAILED]),
    command("hello \"s=$?\"", &[e::GREETS_STATUS_FAILED]),
    command(e::UNKNOWN_COMMAND, &[e::UNKNOWN_COMMAND_REPLY]),
    command("hello $?", &[e::GREETS_STATUS_UNKNOWN]),
    // Syntax errors are reported, and run nothing.
    Step::Command { line: "hello \"open", expect: &[e::UNTERMINATED_QUOTE], reject: &[e::HELLO_V1], save: None },
    Step::Command { line: "hello |", expect: &[e::PIPE_WITHOUT_COMMAND], reject: &[e::HELLO_V1], save: None },
    // Bad input: a 10,000-byte line is refused whole; control bytes and invalid UTF-8 are ignored.
    Step::TypeBytes { bytes: b"a", times: 10_000 },
    Step::Command { line: "", expect: &[e::LINE_TOO_LONG], reject: &[], save: None },
    Step::TypeBytes { bytes: b"\x00\x02\x06\x0e\x10\x12\x14\x18\x19\x1a\x1c\x1d\x1e\x1f\x1b\x1b[99999999~", times: 20 },
    Step::TypeBytes { bytes: b"\xff\xfe\xc3\x28\xe2\x82\x80\xf0\x9f", times: 50 },
    command("\x15hello ok", &[e::GREETS_OK]),
    EXIT_OK,
];

/// Job control: Ctrl-Z stops a foreground application (it does not finish while stopped), `jobs`, `fg`, `bg`.
const JOBS_STEPS: &[Step] = &[
    Step::Prompt,
    Step::Type("load 1 1\r"),
    Step::Type("\x1a"),
    Step::Expect(e::LOAD_STOPPED),
    Step::Prompt,
    command("hello $?", &[e::GREETS_STATUS_STOPPED]),
    // Two seconds in the foreground: the stopped one-second job would have finished meanwhile, had it run.
    command("load 1 2", &[e::LOAD_ONE_COMPLETED]),
    Step::Command { line: "jobs", expect: &[e::JOBS_LISTS_STOPPED_LOAD], reject: &[e::LOAD_JOB_DONE], save: None },
    command("fg", &[e::FG_LOAD, e::LOAD_ONE_COMPLETED]),
    Step::Type("load 1 1\r"),
    Step::Type("\x1a"),
    Step::Expect(e::LOAD_STOPPED),
    Step::Prompt,
    command("bg", &[e::BG_LOAD]),
    Step::ExpectAnywhere(e::LOAD_ONE_COMPLETED),
    Step::Retry { line: "jobs", expect: &[e::LOAD_JOB_DONE], attempts: 40 },
    command("fg", &[e::FG_NO_JOBS]),
    EXIT_OK,
];

/// Kills a running `ping_pong` round task (a round lasts a fraction of a second: if it ended before the `kill`
/// arrived, the next round's id is captured and killed).
const KILL_PING_PONG_ROUND: Step = Step::CaptureThenCommand {
    capture_line: "ps",
    pattern: e::PS_PING_PONG_ROUND_ID,
    name: "round",
    line: "kill {round}",
    expect: &[e::KILL_AT_SAFE_POINT],
    attempts: 5,
};

/// Kills a running `load` worker (captured again if it ended before the `kill` arrived).
const KILL_LOAD_WORKER: Step = Step::CaptureThenCommand {
    capture_line: "ps",
    pattern: e::PS_LOAD_WORKER_ID,
    name: "worker",
    line: "kill {worker}",
    expect: &[e::KILL_AT_SAFE_POINT],
    attempts: 5,
};

/// Restartable application tasks (`app_io::spawn_restartable`): a killed `ping_pong` round and a killed `load`
/// worker are started again, and each program still prints its complete result.
const RESTARTABLE_STEPS: &[Step] = &[
    Step::Prompt,
    // A killed task's warning, printed while the next prompt is typed, would end up on the prompt's line.
    command("log error", &[e::LOG_LEVEL_ERROR]),
    command(e::PING_PONG_IN_BACKGROUND, &[e::PING_PONG_STARTED]),
    KILL_PING_PONG_ROUND,
    Step::Retry { line: "jobs", expect: &[e::PING_PONG_JOB_DONE], attempts: 240 },
    Step::ExpectAnywhere(e::PING_PONG_RESULT),
    command("dmesg", &[e::PING_PONG_ROUND_RESTARTED]),
    command(e::LOAD_TWO_IN_BACKGROUND, &[e::BACKGROUND_STARTED_LOAD]),
    KILL_LOAD_WORKER,
    Step::Retry { line: "jobs", expect: &[e::LOAD_TWO_JOB_DONE], attempts: 240 },
    Step::ExpectAnywhere(e::LOAD_TWO_COMPLETED),
    command("dmesg", &[e::LOAD_WORKER_RESTARTED]),
    EXIT_OK,
];

/// One scheduler self-swap of [`BACK_TO_BACK_STEPS`]: done, and no CPU stopped.
const SWAP_SCHEDULER_AGAIN: Step =
    Step::Command { line: e::SWAP_SCHEDULER_CORE, expect: &[e::SWAP_DONE], reject: &[e::CPU_STOPPED], save: None };

/// Ten `swap scheduler scheduler` typed back to back under a 24-task load; every worker completes, and the shell
/// still answers.
const BACK_TO_BACK_STEPS: &[Step] = &[
    Step::Prompt,
    command(e::LOAD_IN_BACKGROUND, &[e::BACKGROUND_STARTED]),
    SWAP_SCHEDULER_AGAIN,
    SWAP_SCHEDULER_AGAIN,
    SWAP_SCHEDULER_AGAIN,
    SWAP_SCHEDULER_AGAIN,
    SWAP_SCHEDULER_AGAIN,
    SWAP_SCHEDULER_AGAIN,
    SWAP_SCHEDULER_AGAIN,
    SWAP_SCHEDULER_AGAIN,
    SWAP_SCHEDULER_AGAIN,
    SWAP_SCHEDULER_AGAIN,
    Step::ExpectAnywhere(e::LOAD_COMPLETED),
    command("hello", &[e::HELLO_V1]),
    command("ns -a", &[e::NS_RETIRED_COUNT]),
    EXIT_OK,
];

/// The `swap-fails` scenario's steps (1 CPU and 4 CPUs, as for [`SHELL_STEPS`]).
const SWAP_FAILS_STEPS: &[Step] = &[
    Step::Prompt,
    command("hello", &[e::HELLO_V1]),
    Step::Command { line: "ns", expect: &[e::NS_LISTS_CAPTAIN], reject: &[], save: Some("ns-before") },
    command(e::SWAP_TO_BROKEN, &[e::SWAP_ERROR, e::SWAP_NAMES_MISSING_SYMBOL]),
    command("hello", &[e::HELLO_V1]),
    Step::Command { line: "ns", expect: &[], reject: &[], save: Some("ns-after") },
    Step::SameOutput("ns-before", "ns-after"),
    command(e::SWAP_TO_MISSING, &[e::SWAP_ERROR]),
    command("hello", &[e::HELLO_V1]),
    EXIT_OK,
];

/// All scenarios, in the order `test` runs them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "machine-bios-pc",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: MACHINE_BIOS_STEPS,
        cpus: Some(4),
    },
    Scenario {
        name: "machine-uefi-q35",
        firmware: Firmware::Uefi,
        image: Image::Normal,
        steps: MACHINE_UEFI_STEPS,
        cpus: Some(4),
    },
    Scenario {
        name: "machine-x2apic-q35",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: MACHINE_X2APIC_STEPS,
        cpus: Some(4),
    },
    Scenario {
        name: "fault-recovery",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: &[
            Step::Prompt,
            command(e::INJECT_PAGE_FAULT, &[e::INJECT_CLEANUP_RAN, e::INJECT_FAILED_PAGE_FAULT]),
            command(e::INJECT_GENERAL_PROTECTION, &[e::INJECT_CLEANUP_RAN, e::INJECT_FAILED_GENERAL_PROTECTION]),
            command(e::INJECT_INVALID_OPCODE, &[e::INJECT_CLEANUP_RAN, e::INJECT_FAILED_INVALID_OPCODE]),
            command(e::INJECT_DIVIDE_ERROR, &[e::INJECT_CLEANUP_RAN, e::INJECT_FAILED_DIVIDE_ERROR]),
            command(e::FAULT_DEMO_PF_REMOVED, &[e::FAULT_DEMO_USAGE]),
            command(e::FAULT_DEMO_PANIC, &[e::FAULT_DEMO_CLEANUP_RAN, e::TASK_FAILED_PANIC]),
            command(e::FAULT_DEMO_OVERFLOW, &[e::TASK_FAILED_OVERFLOW]),
            command(e::FAULT_DEMO_OOM, &[e::FAULT_DEMO_CLEANUP_RAN, e::TASK_FAILED_OOM]),
            command("hello", &[e::HELLO_V1]),
            command("faults", &[e::FAULT_LOG_COUNT, e::FAULT_LOG_NAMES_CELL]),
            Step::Capture { line: "ps", pattern: e::PS_SHELL_ID, name: "shell" },
            command(e::BACKTRACE_SHELL, &[e::BACKTRACE_SHELL_FRAME]),
            EXIT_OK,
        ],
        cpus: Some(2),
    },
    Scenario {
        name: "tasks-smp1",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: &[Step::Prompt, Step::AllTestsPass, EXIT_OK],
        cpus: Some(1),
    },
    Scenario {
        name: "tasks-smp4",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: &[Step::Prompt, Step::AllTestsPass, EXIT_OK],
        cpus: Some(4),
    },
    Scenario {
        name: "scheduler-swap",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: &[
            Step::Prompt,
            command(e::LOAD_IN_BACKGROUND, &[e::BACKGROUND_STARTED]),
            // The background `load` spawns its workers one by one while `ps` may already run: ask until they are.
            Step::Retry { line: "ps", expect: &[e::PS_HEADER, e::PS_AT_LEAST_20_TASKS], attempts: 20 },
            command(e::SWAP_SCHEDULER, &[e::SWAP_PHASE_TIME, e::SWAP_DONE]),
            command("ps", &[e::PS_POLICY_PRIORITY, e::PS_SHOWS_PRIORITY]),
            Step::ExpectAnywhere(e::LOAD_COMPLETED),
            command("kill 1", &[e::KILL_IDLE_REFUSED]),
            command("kill 9999", &[e::KILL_NONEXISTENT]),
            Step::Type(e::LONG_FOREGROUND),
            Step::Type(e::CTRL_C),
            Step::Expect(e::FOREGROUND_KILLED),
            Step::Prompt,
            EXIT_OK,
        ],
        cpus: Some(4),
    },
    Scenario {
        name: "live-swap-task",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: &[
            Step::Prompt,
            command("ps", &[e::PS_LISTS_SHELL, e::PS_SEVEN_TASKS]),
            Step::Command {
                line: e::SWAP_TASK_CELL,
                expect: &[e::SWAP_RETIRED_ONE, e::SWAP_DONE],
                reject: &[e::CPU_STOPPED],
                save: None,
            },
            command("ps", &[e::PS_LISTS_SHELL, e::PS_SEVEN_TASKS]),
            // Whether the idle task's old frame is still there depends on whether it ran since: either way `ns -a`
            // answers, and a listed retired cell is pinned by something real (checked in `swap-everything`).
            command("ns -a", &[e::NS_TASK_RETIRED_OR_FREED]),
            command("hello", &[e::HELLO_V1]),
            EXIT_OK,
        ],
        cpus: Some(4),
    },
    Scenario {
        name: "live-swap-scheduler",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: &[
            Step::Prompt,
            command(e::LOAD_IN_BACKGROUND, &[e::BACKGROUND_STARTED]),
            Step::Command {
                line: e::SWAP_SCHEDULER_CORE,
                expect: &[e::SWAP_PHASE_TIME, e::SWAP_DONE],
                reject: &[e::CPU_STOPPED],
                save: None,
            },
            Step::Command {
                line: "ps",
                expect: &[e::PS_HEADER, e::PS_AT_LEAST_20_TASKS],
                reject: &[e::CPU_STOPPED],
                save: None,
            },
            Step::ExpectAnywhere(e::LOAD_COMPLETED),
            command("ns -a", &[e::NS_RETIRED_SCHEDULER, e::NS_PIN_INTERRUPTED]),
            command("hello", &[e::HELLO_V1]),
            EXIT_OK,
        ],
        cpus: Some(4),
    },
    Scenario {
        // Ten back-to-back stateful self-swaps of the scheduler core under load on 1 CPU: each older copy that
        // still runs (an idle loop, a task returning into it) must see the newest copy's runqueues.
        name: "swap-back-to-back",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: BACK_TO_BACK_STEPS,
        cpus: Some(1),
    },
    Scenario {
        name: "swap-back-to-back-smp4",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: BACK_TO_BACK_STEPS,
        cpus: Some(4),
    },
    Scenario {
        name: "swap-everything",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: &[
            Step::Prompt,
            command(e::LONG_LOAD_IN_BACKGROUND, &[e::BACKGROUND_STARTED]),
            Step::Command {
                line: e::SWAP_EVERYTHING,
                expect: &[e::SWAP_EVERYTHING_CELL, e::SWAP_EVERYTHING_ALL],
                reject: &[e::SWAP_EVERYTHING_REFUSED, e::CPU_STOPPED],
                save: None,
            },
            command("hello", &[e::HELLO_V1]),
            command("ps", &[e::PS_HEADER]),
            Step::ExpectAnywhere(e::LOAD_COMPLETED),
            command("ns -a", &[e::NS_RETIRED_SCHEDULER]),
            // One more swap after the workload: it reclaims first, and `ns -a` then lists what genuinely pins.
            command(e::SWAP_GREETING_AGAIN, &[e::SWAP_DONE]),
            Step::Command { line: "ns -a", expect: &[e::NS_RETIRED_COUNT], reject: &[e::NS_PIN_OUTSIDE], save: None },
            EXIT_OK,
        ],
        cpus: Some(4),
    },
    Scenario {
        // Case study (a): the policy swap carries the policy's counters over (its `cell_state_transfer`), and the
        // tasks' own policy data (priorities) and the runqueues stay, both ways, under 24 workers on 4 CPUs.
        name: "scheduler-state",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: &[
            Step::Prompt,
            command(e::LOAD_LONG_IN_BACKGROUND, &[e::BACKGROUND_STARTED]),
            Step::Capture { line: "ps", pattern: e::PS_LOAD_TASK_ID, name: "load" },
            command(e::PRIO_LOAD_TASK, &[e::PRIO_SET]),
            command("ps", &[e::PS_POLICY_ROUND_ROBIN, e::PS_POLICY_STATE_FRESH, e::PS_AT_LEAST_20_TASKS]),
            command(e::SWAP_SCHEDULER, &[e::SWAP_DONE]),
            command(
                "ps",
                &[
                    e::PS_POLICY_PRIORITY,
                    e::PS_POLICY_STATE_INHERITED_PRIORITY,
                    e::PS_LOAD_TASK_PRIO_42,
                    e::PS_AT_LEAST_20_TASKS,
                ],
            ),
            command(e::SWAP_SCHEDULER_BACK, &[e::SWAP_DONE]),
            command(
                "ps",
                &[e::PS_POLICY_ROUND_ROBIN, e::PS_POLICY_STATE_INHERITED_ROUND_ROBIN, e::PS_AT_LEAST_20_TASKS],
            ),
            command(e::SWAP_SCHEDULER_AGAIN, &[e::SWAP_DONE]),
            command("ps", &[e::PS_POLICY_PRIORITY, e::PS_POLICY_STATE_INHERITED_PRIORITY, e::PS_LOAD_TASK_PRIO_42]),
            Step::ExpectAnywhere(e::LOAD_COMPLETED),
            EXIT_OK,
        ],
        cpus: Some(4),
    },
    Scenario {
        // Case study (b): a channel cell and the application stage using it change together, in one transaction,
        // while the application's task runs; a joint swap with a broken second pair changes nothing.
        name: "joint-swap",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: &[
            Step::Prompt,
            command(e::PIPE_DEMO_IN_BACKGROUND, &[e::PIPE_DEMO_STARTED]),
            Step::ExpectAnywhere(e::PIPE_RENDEZVOUS_ROUND),
            command(e::SWAP_CHANNEL_ALONE, &[e::SWAP_ERROR, e::SWAP_NAMES_OPEN_RENDEZVOUS]),
            Step::Command {
                line: "ns",
                expect: &[e::NS_LISTS_CHANNEL_RENDEZVOUS, e::NS_LISTS_PIPE_V1],
                reject: &[],
                save: Some("before"),
            },
            command(e::SWAP_JOINT_BROKEN, &[e::SWAP_ERROR, e::SWAP_NAMES_OPEN_PIPE]),
            Step::Command { line: "ns", expect: &[], reject: &[], save: Some("after-broken") },
            Step::SameOutput("before", "after-broken"),
            command(e::SWAP_JOINT, &[e::SWAP_PHASE_TIME, e::SWAP_DONE]),
            Step::ExpectAnywhere(e::PIPE_BUFFERED_ROUND),
            Step::Command {
                line: "ns",
                expect: &[e::NS_LISTS_CHANNEL_BUFFERED, e::NS_LISTS_PIPE_V2],
                reject: &[e::NS_LISTS_CHANNEL_RENDEZVOUS, e::NS_LISTS_PIPE_V1],
                save: None,
            },
            Step::ExpectAnywhere(e::PIPE_DEMO_SUMMARY),
            EXIT_OK,
        ],
        cpus: Some(2),
    },
    Scenario {
        // Case study (c): a buggy service cell misbehaves, is fixed live with its state, and its client (one task,
        // never restarted) sees the fix.
        name: "live-fix",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: &[
            Step::Prompt,
            command(e::LOG_CLIENT_IN_BACKGROUND, &[e::LOG_CLIENT_STARTED]),
            Step::ExpectAnywhere(e::LOG_CLIENT_PHASE_ONE),
            command("log_client show", &[e::LOG_SHOW_BUGGY]),
            command(e::SWAP_LOG_FIX, &[e::SWAP_PHASE_TIME, e::SWAP_DONE]),
            Step::ExpectAnywhere(e::LOG_CLIENT_VERDICT),
            command("log_client show", &[e::LOG_SHOW_FIXED]),
            Step::ExpectAnywhere(e::LOG_CLIENT_DONE),
            // A fresh start drops the state on purpose: the same swap without `--fresh` would carry it.
            command(e::SWAP_LOG_FRESH, &[e::SWAP_NOTHING_COPIED, e::SWAP_DONE]),
            command("log_client show", &[e::LOG_SHOW_FRESH]),
            EXIT_OK,
        ],
        cpus: Some(2),
    },
    Scenario {
        name: "boot-bios",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: &[
            Step::Expect(e::BOOT_LOAD_SUMMARY),
            Step::Expect(e::CAPTAIN_LOGS_THROUGH_NANO_CORE),
            Step::Prompt,
            NS_HAS_CAPTAIN,
            EXIT_OK,
        ],
        cpus: None,
    },
    Scenario {
        name: "boot-uefi",
        firmware: Firmware::Uefi,
        image: Image::Normal,
        steps: &[Step::Prompt, NS_HAS_CAPTAIN, EXIT_OK],
        cpus: None,
    },
    Scenario { name: "shell", firmware: Firmware::Bios, image: Image::Normal, steps: SHELL_STEPS, cpus: None },
    Scenario { name: "jobs", firmware: Firmware::Bios, image: Image::Normal, steps: JOBS_STEPS, cpus: None },
    Scenario {
        name: "restartable",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: RESTARTABLE_STEPS,
        cpus: None,
    },
    Scenario {
        name: "shell-language",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: SHELL_LANGUAGE_STEPS,
        cpus: None,
    },
    Scenario { name: "apps", firmware: Firmware::Bios, image: Image::Normal, steps: APPS_STEPS, cpus: None },
    Scenario { name: "pipes", firmware: Firmware::Bios, image: Image::Normal, steps: PIPES_STEPS, cpus: None },
    Scenario {
        name: "bench-quick",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: BENCH_QUICK_STEPS,
        cpus: None,
    },
    Scenario {
        name: "shell-commands",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: SHELL_COMMANDS_STEPS,
        cpus: None,
    },
    Scenario {
        name: "shell-smp4",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: SHELL_STEPS,
        cpus: Some(e::SMP_CPUS),
    },
    Scenario {
        name: "swap-fails",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: SWAP_FAILS_STEPS,
        cpus: None,
    },
    Scenario {
        name: "swap-fails-smp4",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: SWAP_FAILS_STEPS,
        cpus: Some(e::SMP_CPUS),
    },
    Scenario {
        name: "corrupt-object",
        firmware: Firmware::Bios,
        image: Image::Corrupt,
        steps: &[Step::ExpectCorruptObjectError, Step::Prompt, NS_HAS_CAPTAIN, EXIT_OK],
        cpus: None,
    },
    Scenario { name: "screen", firmware: Firmware::Bios, image: Image::Normal, steps: SCREEN_STEPS, cpus: None },
    Scenario { name: "screen-uefi", firmware: Firmware::Uefi, image: Image::Normal, steps: SCREEN_STEPS, cpus: None },
    Scenario { name: "no-ps2", firmware: Firmware::Bios, image: Image::Normal, steps: NO_PS2_STEPS, cpus: None },
    Scenario {
        name: "smp-bios",
        firmware: Firmware::Bios,
        image: Image::Normal,
        steps: SMP_STEPS,
        cpus: Some(e::SMP_CPUS),
    },
    Scenario {
        name: "smp-uefi",
        firmware: Firmware::Uefi,
        image: Image::Normal,
        steps: SMP_STEPS,
        cpus: Some(e::SMP_CPUS),
    },
];

/// How scenarios are run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// QEMU settings.
    pub qemu: QemuConfig,
    /// The normal ISO.
    pub iso: PathBuf,
    /// The ISO with a damaged object.
    pub corrupt_iso: PathBuf,
    /// The damaged object's file name.
    pub corrupt_object: String,
    /// Directory for `<scenario>.log`.
    pub log_dir: PathBuf,
    /// How to type.
    pub typing: Typing,
    /// Wait for the first prompt (BIOS; UEFI gets twice as long).
    pub boot_timeout: Duration,
    /// Wait for each command's prompt.
    pub command_timeout: Duration,
    /// Bound on a whole scenario (QEMU is killed after it).
    pub scenario_timeout: Duration,
}

pub use crate::runner::{capture, check_all_tests_passed, check_output, run, substitute};

#[cfg(test)]
mod tests;
