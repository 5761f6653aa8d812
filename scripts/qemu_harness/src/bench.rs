//! `qemu_harness bench` (`make bench`): the microbenchmarks on both sides and the boot times, in one run.
//!
//! Control flow:
//! 1. Boot our ISO (BIOS), type `bench --full --profile` (or `--quick`), collect its `bench:` lines.
//! 2. Boot the Debian kernel with the benchmark initramfs (`scripts/bench/setup_linux.sh`) with the same QEMU flags
//!    and `benchmode=ITERS,SPAWN,LOADS` (the same counts as ours), collect its `bench:` lines.
//! 3. Boot each side `runs` times per firmware (BIOS, OVMF) to its shell prompt ([`crate::boot_time`]).
//! 4. Print the joined table, the loader profile and the boot table; write `results.csv`, `results.svg`,
//!    `boot.csv` and both raw outputs into the output directory.

use crate::bench_report::{self, Metric};
use crate::boot_time;
use crate::qemu::{Firmware, QemuConfig};
use crate::session::{Failure, Session, StepResult, Typing};
use regex::Regex;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything `bench` needs.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// QEMU flags shared by both sides.
    pub qemu: QemuConfig,
    /// Our ISO.
    pub iso: PathBuf,
    /// The Linux kernel image.
    pub kernel: PathBuf,
    /// The benchmark initramfs.
    pub initrd: PathBuf,
    /// Output directory (created).
    pub out: PathBuf,
    /// `--quick` counts instead of the full ones.
    pub quick: bool,
    /// Boots per firmware and side (0 skips the boot table).
    pub runs: usize,
    /// Time allowed for one side's benchmark run.
    pub timeout: Duration,
    /// Time allowed for one boot to its prompt (BIOS; twice that under OVMF).
    pub boot_timeout: Duration,
    /// Typing settings.
    pub typing: Typing,
}

/// The iteration counts, as `bench`'s `FULL`/`QUICK` (applications/bench/src/lib.rs): fast, spawn, cell load.
fn counts(quick: bool) -> (u32, u32, u32) {
    if quick { (100, 10, 2) } else { (1000, 1000, 1000) }
}

/// Waits for `bench: done (N failed)`, then returns every complete `bench:` metric, profile, scaling or error line so far
/// (lines still arriving when a pattern matched would be cut short, so the whole transcript is read at the end).
fn collect(session: &mut Session, timeout: Duration) -> StepResult<Vec<String>> {
    let done = Regex::new(r"^bench: done \(\d+ failed\)").map_err(|e| Failure(e.to_string()))?;
    let found = session.expect(&done, timeout)?;
    let prefixes = ["bench: metric=", "bench: profile ", "bench: scaling ", "bench: error"];
    let mut lines: Vec<String> = session
        .transcript()
        .lines()
        .iter()
        .filter(|line| prefixes.iter().any(|prefix| line.starts_with(prefix)))
        .cloned()
        .collect();
    lines.push(found.line);
    Ok(lines)
}

fn log_file(out: &Path, name: &str) -> Option<File> {
    File::create(out.join(name)).ok()
}

/// Runs our side: boot, `bench --full --profile`, collect, exit.
pub fn run_ours(config: &BenchConfig) -> StepResult<Vec<String>> {
    let prompt = Regex::new(crate::expected::PROMPT).map_err(|e| Failure(e.to_string()))?;
    let mut command = config.qemu.command(&config.iso, Firmware::Bios);
    let log = log_file(&config.out, "ours.log");
    let mut session = Session::spawn(&mut command, config.timeout + config.boot_timeout, config.typing.clone(), log)?;
    session.expect(&prompt, config.boot_timeout)?;
    session.send_line(if config.quick { "bench --quick --profile" } else { "bench --full --profile" })?;
    let lines = collect(&mut session, config.timeout)?;
    if session.send_line(crate::expected::EXIT_COMMAND).is_ok() {
        let _ = session.wait_for_exit(Duration::from_secs(10));
    }
    Ok(lines)
}

/// Runs the Linux side: boot with `benchmode=...`, collect until the program's `bench: done`.
pub fn run_linux(config: &BenchConfig) -> StepResult<Vec<String>> {
    let (fast, spawn, loads) = counts(config.quick);
    let append = format!("console=ttyS0 quiet benchmode={fast},{spawn},{loads}");
    let mut command = boot_time::linux_command(&config.qemu, &config.kernel, &config.initrd, &append, Firmware::Bios);
    let log = log_file(&config.out, "linux.log");
    let mut session = Session::spawn(&mut command, config.timeout + config.boot_timeout, config.typing.clone(), log)?;
    let lines = collect(&mut session, config.timeout + config.boot_timeout)?;
    let _ = session.wait_for_exit(Duration::from_secs(20));
    Ok(lines)
}

/// Boots each side `runs` times per firmware; returns (firmware, side, samples in s).
fn boot_times(config: &BenchConfig) -> Vec<(Firmware, &'static str, Vec<f64>)> {
    let mut table = Vec::new();
    for firmware in [Firmware::Bios, Firmware::Uefi] {
        let timeout = if firmware == Firmware::Bios { config.boot_timeout } else { config.boot_timeout * 2 };
        let mut ours = Vec::new();
        let mut linux = Vec::new();
        for run in 1..=config.runs {
            match boot_time::measure_once(&config.qemu, &config.iso, firmware, timeout, &config.typing) {
                Ok(seconds) => ours.push(seconds),
                Err(failure) => eprintln!("bench: boot ours {} run {run}: {failure}", firmware.name()),
            }
            let measured = boot_time::measure_linux_once(
                &config.qemu,
                &config.kernel,
                &config.initrd,
                firmware,
                timeout,
                &config.typing,
            );
            match measured {
                Ok(seconds) => linux.push(seconds),
                Err(failure) => eprintln!("bench: boot linux {} run {run}: {failure}", firmware.name()),
            }
        }
        table.push((firmware, "ours", ours));
        table.push((firmware, "linux", linux));
    }
    table
}

fn parse_all(lines: &[String]) -> Vec<Metric> {
    lines.iter().filter_map(|line| bench_report::parse_metric(line)).collect()
}

/// Runs everything and writes the report; returns whether both sides printed every metric without error.
///
/// # Errors
/// A side did not finish, or a file could not be written.
pub fn run(config: &BenchConfig) -> Result<bool, String> {
    std::fs::create_dir_all(&config.out).map_err(|e| format!("{}: {e}", config.out.display()))?;
    let write = |name: &str, text: &str| {
        std::fs::write(config.out.join(name), text).map_err(|e| format!("{}: {e}", config.out.join(name).display()))
    };
    eprintln!("bench: our side ({})", if config.quick { "quick" } else { "full" });
    let ours = run_ours(config).map_err(|f| format!("our side: {f}"))?;
    write("ours.txt", &(ours.join("\n") + "\n"))?;
    eprintln!("bench: Linux side");
    let linux = run_linux(config).map_err(|f| format!("Linux side: {f}"))?;
    write("linux.txt", &(linux.join("\n") + "\n"))?;
    let rows = bench_report::join(&parse_all(&ours), &parse_all(&linux));
    let title = format!("ours / Linux 6.1, same QEMU (TCG, -m {}, -smp {})", config.qemu.memory, config.qemu.cpus);
    write("results.csv", &bench_report::csv(&rows))?;
    write("results.svg", &bench_report::svg(&rows, &title))?;
    println!("{}", bench_report::table(&rows));
    // The loader profile and scaling lines, the swap's phases (its metric line carries them) and our errors.
    let printed = ["bench: profile", "bench: scaling", "bench: metric=swap_excluding_load", "bench: error"];
    for line in ours.iter().filter(|line| printed.iter().any(|prefix| line.starts_with(prefix))) {
        println!("{line}");
    }
    for line in linux.iter().filter(|line| line.starts_with("bench: error")) {
        println!("linux {line}");
    }
    let mut boot_csv = String::from("firmware,side,median_s,samples_s\n");
    for (firmware, side, samples) in boot_times(config) {
        let median = boot_time::median(&samples);
        let list: Vec<String> = samples.iter().map(|s| format!("{s:.2}")).collect();
        let median_text = median.map_or_else(|| "-".to_string(), |m| format!("{m:.2}"));
        println!("boot {} {side}: median {median_text} s; samples {}", firmware.name(), list.join(" "));
        boot_csv.push_str(&format!("{},{side},{median_text},{}\n", firmware.name(), list.join(" ")));
    }
    if config.runs > 0 {
        write("boot.csv", &boot_csv)?;
    }
    println!("bench: wrote {}/results.csv, results.svg, boot.csv", config.out.display());
    let complete = |lines: &[String]| lines.iter().any(|line| line == "bench: done (0 failed)");
    Ok(complete(&ours) && complete(&linux) && rows.iter().all(bench_report::Row::is_complete))
}
