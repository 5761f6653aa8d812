//! The shell's builtin commands and the dispatch to applications.

use alloc::string::String;
use alloc::vec::Vec;

use crate::cells;
use crate::environment::Environment;
use crate::jobs::Jobs;
use crate::{cat, deps, log_commands, system_commands};

/// One builtin: its name, its usage line, and what it does.
struct Builtin {
    name: &'static str,
    usage: &'static str,
    summary: &'static str,
    run: fn(&[String]),
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "help",
        usage: "help [COMMAND]",
        summary: "list commands and applications, or one command's usage",
        run: help,
    },
    Builtin {
        name: "ns",
        usage: "ns [-a]",
        summary: "list loaded cells: sizes, relocations, dependencies (-a: also retired cells and their pins)",
        run: namespaces,
    },
    Builtin { name: "ls", usage: "ls", summary: "list the object files in the namespace directories", run: list_files },
    Builtin {
        name: "swap",
        usage: "swap [--fresh] OLD NEW [OLD NEW ...] | swap --all",
        summary: "replace loaded cells with others from the directory, live",
        run: swap,
    },
    Builtin {
        name: "ps",
        usage: "ps | ps -w [-n COUNT] [-d MS]",
        summary: "list tasks: id, name, state, CPU, policy data (-w: refresh, the `top` application)",
        run: tasks,
    },
    Builtin { name: "kill", usage: "kill ID", summary: "stop a task at its next safe point", run: kill },
    Builtin {
        name: "bt",
        usage: "bt ID",
        summary: "print a task's stack trace (function, cell, offset)",
        run: backtrace,
    },
    Builtin {
        name: "inject",
        usage: "inject pf|gp|ud|de",
        summary: "raise a CPU exception in a new task",
        run: crate::inject::inject,
    },
    Builtin {
        name: "faults",
        usage: "faults",
        summary: "print the fault log (task, cell, address, kind, time)",
        run: faults,
    },
    Builtin {
        name: "sections",
        usage: "sections [CELL]",
        summary: "section address ranges of every loaded cell, or every section of one cell (fault injection)",
        run: crate::sections::sections,
    },
    Builtin {
        name: "prio",
        usage: "prio ID PRIORITY",
        summary: "set a task's priority (0..=255, used by scheduler_priority)",
        run: priority,
    },
    Builtin {
        name: "test",
        usage: "test [NAME ...]",
        summary: "run in-kernel test cells (test_*), all or the named ones",
        run: test,
    },
    Builtin {
        name: "bench",
        usage: "bench [NAME ...] | bench --quick|--full [--profile]",
        summary: "run in-kernel benchmark cells (bench_*), all or the named ones; with --: the bench application",
        run: bench,
    },
    Builtin {
        name: "exit",
        usage: "exit [success|failure|CODE]",
        summary: "leave the system (QEMU isa-debug-exit; halts on hardware)",
        run: exit,
    },
    Builtin { name: "echo", usage: "echo [WORD ...]", summary: "print the words", run: system_commands::echo },
    Builtin { name: "clear", usage: "clear", summary: "clear the terminal (ANSI)", run: system_commands::clear },
    Builtin {
        name: "uptime",
        usage: "uptime",
        summary: "time since the machine started",
        run: system_commands::uptime,
    },
    Builtin { name: "date", usage: "date", summary: "date and time from the CMOS clock", run: system_commands::date },
    Builtin { name: "mem", usage: "mem", summary: "free frames, pages and heap use", run: system_commands::mem },
    Builtin {
        name: "machine",
        usage: "machine [--memory-map]",
        summary: "what the OS found: firmware, CPU, memory, ACPI tables, PCI devices, framebuffer, consoles",
        run: crate::machine::machine,
    },
    Builtin { name: "reboot", usage: "reboot", summary: "restart the machine", run: system_commands::reboot },
    Builtin {
        name: "shutdown",
        usage: "shutdown",
        summary: "power off (QEMU isa-debug-exit with success)",
        run: system_commands::shutdown,
    },
    Builtin { name: "dmesg", usage: "dmesg", summary: "print the kernel log ring", run: log_commands::dmesg },
    Builtin {
        name: "log",
        usage: "log [off|error|warn|info|debug|trace]",
        summary: "show or set the console's kernel log level (dmesg keeps everything)",
        run: log_commands::log_level,
    },
    Builtin {
        name: "deps",
        usage: "deps CELL | deps --dot",
        summary: "a cell's dependencies and dependents with relocation counts; --dot: the whole graph in DOT",
        run: deps::deps,
    },
    Builtin {
        name: "cat",
        usage: "cat FILE",
        summary: "print a file of the namespace directories (text; hex summary for objects) or cells.manifest",
        run: cat::cat,
    },
];

/// Names of the builtin commands.
pub fn builtin_names() -> Vec<String> {
    BUILTINS
        .iter()
        .map(|builtin| builtin.name)
        .chain(crate::jobs::JOB_COMMANDS.iter().map(|command| command.0))
        .chain(crate::environment::ENVIRONMENT_COMMANDS.iter().map(|command| command.0))
        .map(String::from)
        .collect()
}

/// Whether `name` is a builtin command (builtins cannot be pipeline stages).
pub fn is_builtin(name: &str) -> bool {
    builtin_names().iter().any(|builtin| builtin == name)
}

/// `$?` after an unknown command (as in POSIX shells).
pub const STATUS_UNKNOWN_COMMAND: isize = 127;

/// Runs one command, already split into words (`words` is not empty); `background` if the line ended in `&`.
/// Returns its exit status for `$?`: 0 for most builtins (they report their own errors), the job and environment
/// builtins' status, the application's status (see `Jobs::run_foreground`), [`STATUS_UNKNOWN_COMMAND`].
pub fn execute(words: &[String], background: bool, jobs: &mut Jobs, environment: &mut Environment) -> isize {
    // `ps -w [OPTIONS]` is the refreshing `ps`: the `top` application with the same options.
    if let [ps, watch, options @ ..] = words
        && ps == "ps"
        && watch == "-w"
    {
        let top: Vec<String> = core::iter::once(String::from("top")).chain(options.iter().cloned()).collect();
        return execute(&top, background, jobs, environment);
    }
    let name = words[0].as_str();
    let job_command = crate::jobs::JOB_COMMANDS.iter().any(|command| command.0 == name)
        || crate::environment::ENVIRONMENT_COMMANDS.iter().any(|command| command.0 == name);
    if job_command && background {
        crate::console::write_fmt(format_args!("{name}: builtins cannot run in the background\n"));
        return 1;
    }
    if let Some(status) = jobs.run_builtin(words) {
        return status;
    }
    if let Some(status) = environment.run_builtin(words) {
        return status;
    }
    // `bench --quick` and the like run the `bench` application; `bench [NAME ...]` the bench cells.
    let bench_application = name == "bench" && words.get(1).is_some_and(|word| word.starts_with("--"));
    if let Some(builtin) = BUILTINS.iter().find(|builtin| builtin.name == name && !bench_application) {
        if background {
            crate::console::write_fmt(format_args!("{name}: builtins cannot run in the background\n"));
            return 1;
        }
        (builtin.run)(words);
        return 0;
    }
    run_applications(core::slice::from_ref(&words.to_vec()), background, jobs, environment)
}

/// Runs a pipeline of applications (`commands[i][0]` names each), in the foreground or the background; returns
/// its status for `$?` ([`STATUS_UNKNOWN_COMMAND`], with nothing started, if one names no application).
pub fn run_applications(
    commands: &[Vec<String>],
    background: bool,
    jobs: &mut Jobs,
    environment: &Environment,
) -> isize {
    let applications = cells::names();
    let missing = commands.iter().find(|args| !applications.iter().any(|application| *application == args[0]));
    let status = match missing {
        Some(_) => None,
        None if background => jobs.start_background(commands, &environment.snapshot()),
        None => jobs.run_foreground(commands, &environment.snapshot()),
    };
    status.unwrap_or_else(|| {
        let name = missing.map_or(commands[0][0].as_str(), |args| args[0].as_str());
        unknown(name, &applications);
        STATUS_UNKNOWN_COMMAND
    })
}

/// Reports an unknown command, with the nearest builtin or application name if one is close.
fn unknown(name: &str, applications: &[String]) {
    let candidates = BUILTINS
        .iter()
        .map(|builtin| builtin.name)
        .chain(crate::jobs::JOB_COMMANDS.iter().map(|command| command.0))
        .chain(crate::environment::ENVIRONMENT_COMMANDS.iter().map(|command| command.0))
        .chain(applications.iter().map(String::as_str));
    match nearest_name::nearest(name, candidates) {
        Some(suggestion) => crate::console::write_fmt(format_args!(
            "unknown command: {name}; did you mean {suggestion}? (type `help`)\n"
        )),
        None => crate::console::write_fmt(format_args!("unknown command: {name} (type `help`)\n")),
    }
}

fn tasks(words: &[String]) {
    if words.len() > 1 {
        crate::console::write_str("usage: ps | ps -w [-n COUNT] [-d MS]\n");
        return;
    }
    crate::jobs::print_tasks();
}

fn kill(words: &[String]) {
    match words {
        [_, id] => crate::jobs::kill(id),
        _ => crate::console::write_str("usage: kill ID\n"),
    }
}

fn backtrace(words: &[String]) {
    let [_, id] = words else {
        crate::console::write_str("usage: bt ID\n");
        return;
    };
    let Ok(number) = id.parse::<u64>() else {
        crate::console::write_fmt(format_args!("bt: not a task id: {id}\n"));
        return;
    };
    if let Err(error) = fault_recovery::print_backtrace(task::TaskId::new(number)) {
        crate::console::write_fmt(format_args!("bt: error: {error}\n"));
    }
}

fn faults(words: &[String]) {
    if words.len() > 1 {
        crate::console::write_str("usage: faults\n");
        return;
    }
    fault_recovery::print_fault_log();
}

fn priority(words: &[String]) {
    match words {
        [_, id, priority] => crate::jobs::set_priority(id, priority),
        _ => crate::console::write_str("usage: prio ID PRIORITY\n"),
    }
}

fn help(words: &[String]) {
    match words {
        [_] => {}
        [_, name] => {
            let table_command = crate::jobs::JOB_COMMANDS
                .iter()
                .chain(crate::environment::ENVIRONMENT_COMMANDS)
                .find(|command| command.0 == name);
            match BUILTINS.iter().find(|builtin| builtin.name == name) {
                Some(builtin) => {
                    crate::console::write_fmt(format_args!("usage: {}\n  {}\n", builtin.usage, builtin.summary))
                }
                None if let Some((_, usage, summary)) = table_command => {
                    crate::console::write_fmt(format_args!("usage: {usage}\n  {summary}\n"))
                }
                None if cells::names().contains(name) => {
                    crate::console::write_fmt(format_args!("{name}: an application (usage: {name} [ARG ...])\n"))
                }
                None => crate::console::write_fmt(format_args!("help: no such command: {name}\n")),
            }
            return;
        }
        _ => {
            crate::console::write_str("usage: help [COMMAND]\n");
            return;
        }
    }
    crate::console::write_str("Builtin commands:\n");
    for builtin in BUILTINS {
        crate::console::write_fmt(format_args!("  {:<30} {}\n", builtin.usage, builtin.summary));
    }
    for (_, usage, summary) in crate::jobs::JOB_COMMANDS.iter().chain(crate::environment::ENVIRONMENT_COMMANDS) {
        crate::console::write_fmt(format_args!("  {usage:<30} {summary}\n"));
    }
    let names = cells::names();
    crate::console::write_str("Applications (loaded on demand):\n");
    if names.is_empty() {
        crate::console::write_str("  (none)\n");
    }
    for name in names {
        crate::console::write_fmt(format_args!("  {name}\n"));
    }
}

fn namespaces(words: &[String]) {
    let all = match words.get(1).map(String::as_str) {
        None => false,
        Some("-a") if words.len() == 2 => true,
        Some(_) => {
            crate::console::write_str("usage: ns [-a]\n");
            return;
        }
    };
    cells::print_cells();
    if all {
        cells::print_retired();
    }
}

fn list_files(words: &[String]) {
    if words.len() > 1 {
        crate::console::write_str("usage: ls\n");
        return;
    }
    cells::print_files();
}

fn swap(words: &[String]) {
    if words.len() == 2 && words[1] == "--all" {
        cells::swap_everything();
        return;
    }
    let fresh = words.get(1).is_some_and(|word| word == "--fresh");
    let arguments = &words[1 + usize::from(fresh)..];
    if arguments.is_empty() || !arguments.len().is_multiple_of(2) || arguments.iter().any(|word| word.starts_with("--"))
    {
        crate::console::write_str(
            "usage: swap [--fresh] OLD NEW [OLD NEW ...] (--fresh: start the new cells without the old state) | swap \
             --all\n",
        );
        return;
    }
    let pairs: Vec<(&str, &str)> = arguments.chunks_exact(2).map(|pair| (pair[0].as_str(), pair[1].as_str())).collect();
    cells::swap(&pairs, &cell_namespace::SwapOptions { fresh });
}

fn test(words: &[String]) {
    let (passed, failed) = cells::run_cell_entries("test_", &words[1..]);
    crate::console::write_fmt(format_args!("test summary: {passed} passed, {failed} failed\n"));
}

fn bench(words: &[String]) {
    let (passed, failed) = cells::run_cell_entries("bench_", &words[1..]);
    crate::console::write_fmt(format_args!("bench summary: {passed} ran, {failed} failed\n"));
}

fn exit(words: &[String]) {
    let code = match words.get(1).map(String::as_str) {
        None | Some("success") => power::ExitCode::Success,
        Some("failure") => power::ExitCode::Failure,
        Some(text) => match parse_number(text) {
            Some(value) => power::ExitCode::Other(value),
            None => {
                crate::console::write_str("usage: exit [success|failure|CODE] (CODE is 0..=255, decimal or 0x hex)\n");
                return;
            }
        },
    };
    crate::console::write_str("exit: leaving the system\n");
    power::exit(code)
}

/// Parses a decimal or `0x`-prefixed hexadecimal byte.
fn parse_number(text: &str) -> Option<u8> {
    match text.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}
