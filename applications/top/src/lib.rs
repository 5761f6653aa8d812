//! The top application: the task table of `ps`, redrawn on the console every interval (the "`ps -w`").
//!
//! Usage: `top [-n COUNT] [-d MS]`. Each refresh clears the terminal (`ESC [ 2 J`, `ESC [ H`) and prints a summary
//! line (uptime, CPUs, policy, task count, refresh number) and one row per task: id, name, state, CPU (`*` pinned),
//! priority (when the policy has one), switches since the task started and since the previous refresh. It stops
//! after COUNT refreshes (`-n`; default: never), waiting MS milliseconds between them (`-d`, 10..=60000, default
//! 1000); Ctrl-C at the shell stops it any time. Applications cannot read the console yet, so `q` does not quit.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

app_io::entry!(main);

/// The usage line printed for bad arguments.
const USAGE: &str = "usage: top [-n COUNT] [-d MS]   (COUNT >= 1 refreshes; MS in 10..=60000, default 1000)";

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    /// Refreshes before exiting; `None` runs until killed.
    count: Option<u64>,
    /// Time between refreshes.
    interval_ms: u64,
}

/// Parses `args[1..]`; `Err` carries the message to print before the usage line.
fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options { count: None, interval_ms: 1000 };
    let mut words = args.iter().skip(1);
    while let Some(flag) = words.next() {
        let value = words.next().ok_or_else(|| alloc::format!("top: {flag} needs a value"))?;
        let number: u64 = value.parse().map_err(|_| alloc::format!("top: not a number: {value}"))?;
        match flag.as_str() {
            "-n" if number >= 1 => options.count = Some(number),
            "-d" if (10..=60_000).contains(&number) => options.interval_ms = number,
            "-n" | "-d" => return Err(alloc::format!("top: {flag} {number} is out of range")),
            _ => return Err(alloc::format!("top: unknown option {flag}")),
        }
    }
    Ok(options)
}

/// Prints one refresh; `previous` maps task ids to their switch counts at the last refresh (updated here).
fn draw(refresh: u64, options: &Options, previous: &mut BTreeMap<u64, u64>) {
    let tasks = app_io::tasks();
    let uptime_ms = app_io::now_ns() / 1_000_000;
    let of_count = options.count.map(|count| alloc::format!(" of {count}")).unwrap_or_default();
    app_io::print!("\x1b[2J\x1b[H");
    app_io::println!(
        "top - up {}.{:03} s, {} CPUs, policy {}, {} tasks, refresh {refresh}{of_count} every {} ms",
        uptime_ms / 1000,
        uptime_ms % 1000,
        app_io::online_cpu_count(),
        app_io::scheduler_policy(),
        tasks.len(),
        options.interval_ms
    );
    app_io::println!("   ID NAME                 STATE     CPU  PRIO SWITCHES     +NEW");
    for task in &tasks {
        let name = if task.idle { alloc::format!("{} (idle)", task.name) } else { task.name.clone() };
        let pin = if task.pinned { "*" } else { " " };
        let priority = task.priority.map(|priority| alloc::format!("{priority}")).unwrap_or_else(|| "-".into());
        let new = task.switches.saturating_sub(previous.get(&task.id).copied().unwrap_or(0));
        app_io::println!(
            "{:>5} {:<20} {:<9} {:>3}{pin} {:>4} {:>8} {:>8}",
            task.id,
            name,
            task.state,
            task.cpu,
            priority,
            task.switches,
            new
        );
    }
    *previous = tasks.iter().map(|task| (task.id, task.switches)).collect();
}

/// Entry point: redraws the task table until COUNT refreshes are done (or forever). Returns 0, or 2 (usage).
pub fn main(args: Vec<String>) -> isize {
    let options = match parse(&args) {
        Ok(options) => options,
        Err(message) => {
            app_io::println!("{message}\n{USAGE}");
            return app_io::exit_code::USAGE;
        }
    };
    let mut previous = BTreeMap::new();
    let mut refresh = 1;
    loop {
        draw(refresh, &options, &mut previous);
        if options.count.is_some_and(|count| refresh >= count) {
            return app_io::exit_code::SUCCESS;
        }
        refresh += 1;
        app_io::sleep(Duration::from_millis(options.interval_ms));
    }
}
