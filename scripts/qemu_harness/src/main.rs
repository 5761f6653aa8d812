//! `qemu_harness`: command-line front of the QEMU test harness (see the library docs).

use qemu_harness::boot_time;
use qemu_harness::expected as e;
use qemu_harness::qemu::{Firmware, QemuConfig};
use qemu_harness::scenarios::{self, RunConfig, SCENARIOS};
use qemu_harness::session::Typing;
use qemu_harness::{bench, faults, newcomer, push, usb_matrix};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: qemu_harness <command> [options]

commands:
  test        run the QEMU scenarios (all, or those named with --only)
  list        list the scenarios
  boot-time   boot N times under BIOS and under OVMF; print median and samples of the time to the prompt
              (--matrix: N times per USB matrix configuration, printed as a Markdown table)
  bench       microbenchmarks of ours and Linux in the same QEMU, the table, CSV, SVG and boot times (make bench)
  faults      fault-injection campaign over QEMU's gdb stub (--count, --seed, --out; --ipc: the 13 channel cases)

options:
  --iso FILE             ISO to boot (default: build/theseus.iso)
  --corrupt-iso FILE     ISO with a damaged object (default: build/theseus-corrupt.iso)
  --corrupt-object NAME  file name of the damaged object (default: k-greeting_v2.o)
  --only A,B             run only these scenarios
  --logs DIR             serial logs directory (default: build/logs)
  --qemu FILE            emulator binary (default: qemu-system-x86_64)
  --ovmf FILE            UEFI firmware (default: /usr/share/ovmf/OVMF.fd)
  --smp N                number of CPUs (default: 1)
  --timeout-scale F      multiply every timeout by F (default: 1)
  --char-delay-ms N      pause after each typed character (default: 2)
  --runs N               boot-time runs per firmware (default: 5; bench: 0 skips the boot table)
  --matrix               boot-time: each USB matrix configuration instead of the CD-ROM per firmware
  --linux-kernel FILE    bench: Linux kernel (default: build/bench/linux/vmlinuz)
  --linux-initrd FILE    bench: its initramfs (default: build/bench/linux/initramfs.gz)
  --out DIR              bench, faults: output directory (default: build/bench, build/faults)
  --quick                bench: the quick iteration counts
  --seed N               faults: campaign seed (default: 2026)
  --count N              faults: number of injections (default: 500)
  --ipc                  faults: run the 13 named IPC cases instead of random injections
  --indices A,B          faults: run only these injections of the campaign (of those --count and --workloads
                         give), to replay single injections with the same seed and --profile
  --points instruction|time  faults: breakpoints on instructions of functions the workload was seen running
                         (default), or moments drawn from the workload's duration
  --profile FILE         faults: draw instruction points from this profile (a campaign's profile.txt)
                         instead of sampling one on the first boot
  --workloads A,B        faults: run only these workloads (spawn, channels, shell, swap, heap; default: all), with
                         the injections the full campaign of the same seed gives them
";

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match run(&arguments) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("qemu_harness: error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(arguments: &[String]) -> Result<ExitCode, String> {
    let Some((command, rest)) = arguments.split_first() else {
        print!("{USAGE}");
        return Err("no command given".into());
    };
    let mut config = RunConfig {
        qemu: QemuConfig::default(),
        iso: PathBuf::from("build/theseus.iso"),
        corrupt_iso: PathBuf::from("build/theseus-corrupt.iso"),
        corrupt_object: e::CORRUPT_CELL_OBJECT.to_string(),
        log_dir: PathBuf::from("build/logs"),
        typing: Typing { line_ending: e::LINE_ENDING.to_string(), char_delay: Duration::from_millis(2) },
        boot_timeout: Duration::from_secs(60),
        command_timeout: Duration::from_secs(30),
        scenario_timeout: Duration::from_secs(300),
    };
    let mut only: Option<Vec<String>> = None;
    let mut scale = 1.0f64;
    let mut runs = 5usize;
    let mut matrix = false;
    let mut linux_kernel = PathBuf::from("build/bench/linux/vmlinuz");
    let mut linux_initrd = PathBuf::from("build/bench/linux/initramfs.gz");
    let mut out: Option<PathBuf> = None;
    let mut quick = false;
    let (mut seed, mut count, mut ipc) = (2026u64, 500usize, false);
    let mut points = faults::plan::PointMode::Instruction;
    let mut profile = None;
    let mut workloads = faults::workload::WORKLOADS.to_vec();
    let mut indices = None;
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let mut value = || rest.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--iso" => config.iso = PathBuf::from(value()?),
            "--corrupt-iso" => config.corrupt_iso = PathBuf::from(value()?),
            "--corrupt-object" => config.corrupt_object = value()?,
            "--only" => only = Some(value()?.split(',').map(String::from).filter(|s| !s.is_empty()).collect()),
            "--logs" => config.log_dir = PathBuf::from(value()?),
            "--qemu" => config.qemu.binary = PathBuf::from(value()?),
            "--ovmf" => config.qemu.ovmf = PathBuf::from(value()?),
            "--smp" => config.qemu.cpus = value()?.parse().map_err(|e| format!("--smp: {e}"))?,
            "--timeout-scale" => scale = value()?.parse().map_err(|e| format!("--timeout-scale: {e}"))?,
            "--char-delay-ms" => {
                config.typing.char_delay =
                    Duration::from_millis(value()?.parse().map_err(|e| format!("--char-delay-ms: {e}"))?)
            }
            "--matrix" => matrix = true,
            "--runs" => runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--linux-kernel" => linux_kernel = PathBuf::from(value()?),
            "--linux-initrd" => linux_initrd = PathBuf::from(value()?),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--quick" => quick = true,
            "--seed" => seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--count" => count = value()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--ipc" => ipc = true,
            "--profile" => profile = Some(PathBuf::from(value()?)),
            "--workloads" => {
                workloads = faults::workload::parse_list(&value()?).map_err(|e| format!("--workloads: {e}"))?
            }
            "--indices" => {
                let list: Result<Vec<usize>, _> = value()?.split(',').map(str::parse).collect();
                indices = Some(list.map_err(|e| format!("--indices: {e}"))?);
            }
            "--points" => {
                let name = value()?;
                points = faults::plan::PointMode::from_name(&name)
                    .ok_or_else(|| format!("--points: `{name}` is neither `instruction` nor `time`"))?;
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    if scale.is_nan() || scale <= 0.0 {
        return Err("--timeout-scale must be positive".into());
    }
    config.boot_timeout = config.boot_timeout.mul_f64(scale);
    config.command_timeout = config.command_timeout.mul_f64(scale);
    config.scenario_timeout = config.scenario_timeout.mul_f64(scale);
    match command.as_str() {
        "list" => {
            for scenario in SCENARIOS.iter().chain(usb_matrix::scenarios()) {
                println!(
                    "{} ({}, {:?} image, {} steps)",
                    scenario.name,
                    scenario.firmware.name(),
                    scenario.image,
                    scenario.steps.len()
                );
            }
            println!("{} (bios, normal image with COM2 on a socket; host edits, builds and pushes a cell)", push::NAME);
            println!(
                "{} (bios, scratch image: make new-app, edit, build, run it; refusal without forbid)",
                newcomer::NAME
            );
            Ok(ExitCode::SUCCESS)
        }
        "test" => {
            let selected: Vec<_> = match &only {
                None => SCENARIOS.iter().chain(usb_matrix::scenarios()).collect(),
                Some(names) => {
                    let table = || SCENARIOS.iter().chain(usb_matrix::scenarios());
                    let known = |n: &str| n == push::NAME || n == newcomer::NAME || table().any(|s| s.name == n);
                    if let Some(unknown) = names.iter().find(|n| !known(n.as_str())) {
                        return Err(format!("no scenario named `{unknown}` (see `qemu_harness list`)"));
                    }
                    table().filter(|s| names.iter().any(|n| n == s.name)).collect()
                }
            };
            let (mut passed, mut failed) = (0, 0);
            let mut record =
                |name: &str, started: Instant, result: Result<(), qemu_harness::session::Failure>| match result {
                    Ok(()) => {
                        passed += 1;
                        println!("PASS {name} ({:.2}s)", started.elapsed().as_secs_f64());
                    }
                    Err(failure) => {
                        failed += 1;
                        let log = config.log_dir.join(format!("{name}.log"));
                        let reason = failure.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
                        println!("FAIL {name}: {reason} (log: {})", log.display());
                    }
                };
            for scenario in selected {
                let started = Instant::now();
                record(scenario.name, started, scenarios::run(scenario, &config));
            }
            if only.as_ref().is_none_or(|names| names.iter().any(|n| n == push::NAME)) {
                let started = Instant::now();
                record(push::NAME, started, push::run(&config));
            }
            if only.as_ref().is_none_or(|names| names.iter().any(|n| n == newcomer::NAME)) {
                let started = Instant::now();
                record(newcomer::NAME, started, newcomer::run(&config));
            }
            println!("{passed} passed, {failed} failed");
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        "boot-time" => {
            if !config.iso.exists() {
                return Err(format!("{} does not exist (run `make iso`)", config.iso.display()));
            }
            if matrix {
                return Ok(boot_time_matrix(&config, runs));
            }
            let mut all_ok = true;
            for firmware in [Firmware::Bios, Firmware::Uefi] {
                let timeout = match firmware {
                    Firmware::Bios => config.boot_timeout,
                    Firmware::Uefi => config.boot_timeout * 2,
                };
                let mut samples = Vec::new();
                for run in 1..=runs {
                    match boot_time::measure_once(&config.qemu, &config.iso, firmware, timeout, &config.typing) {
                        Ok(seconds) => samples.push(seconds),
                        Err(failure) => {
                            all_ok = false;
                            eprintln!("boot-time {} run {run}: {failure}", firmware.name());
                        }
                    }
                }
                println!("{}", boot_time::report(firmware, &samples));
            }
            Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        "bench" => {
            for file in [&config.iso, &linux_kernel, &linux_initrd] {
                if !file.exists() {
                    return Err(format!("{} does not exist (run `make bench`)", file.display()));
                }
            }
            let bench_config = bench::BenchConfig {
                qemu: config.qemu.clone(),
                iso: config.iso.clone(),
                kernel: linux_kernel,
                initrd: linux_initrd,
                out: out.unwrap_or_else(|| PathBuf::from("build/bench")),
                quick,
                runs,
                timeout: config.scenario_timeout * 4,
                boot_timeout: config.boot_timeout,
                typing: config.typing.clone(),
            };
            let complete = bench::run(&bench_config)?;
            Ok(if complete { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        "faults" => {
            if !config.iso.exists() {
                return Err(format!("{} does not exist (run `make iso`)", config.iso.display()));
            }
            let campaign = faults::CampaignConfig {
                qemu: config.qemu.clone(),
                iso: config.iso.clone(),
                typing: config.typing.clone(),
                seed,
                count,
                out: out.unwrap_or_else(|| PathBuf::from("build/faults")),
                timeout_scale: scale,
                points,
                profile,
                workloads,
                indices,
            };
            let records = if ipc { faults::ipc::run_cases(campaign)? } else { faults::run_campaign(campaign)? };
            // Every injection has a classification by construction; the exit status says the campaign ran.
            println!("faults: {} injections classified", records.len());
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    }
}

/// `boot-time --matrix`: `runs` boots of each USB matrix configuration, one Markdown table row each.
fn boot_time_matrix(config: &RunConfig, runs: usize) -> ExitCode {
    let mut all_ok = true;
    println!("| firmware | machine | CPUs | memory | median to prompt (s) | samples (s) |");
    println!("|---|---|---|---|---|---|");
    for boot in usb_matrix::MATRIX {
        let (scenario, hardware) = (&boot.scenario, &boot.hardware);
        let mut qemu = config.qemu.clone();
        qemu.cpus = scenario.cpus.unwrap_or(qemu.cpus);
        hardware.apply(&mut qemu);
        let timeout = match scenario.firmware {
            Firmware::Bios => config.boot_timeout,
            Firmware::Uefi => config.boot_timeout * 2,
        };
        let mut samples = Vec::new();
        for run in 1..=runs {
            match boot_time::measure_once(&qemu, &config.iso, scenario.firmware, timeout, &config.typing) {
                Ok(seconds) => samples.push(seconds),
                Err(failure) => {
                    all_ok = false;
                    eprintln!("boot-time {} run {run}: {failure}", scenario.name);
                }
            }
        }
        let median = boot_time::median(&samples).map_or("no boot".to_string(), |m| format!("{m:.2}"));
        let list: Vec<String> = samples.iter().map(|s| format!("{s:.2}")).collect();
        println!(
            "| {} | {} | {} | {} MiB | {median} | {} |",
            scenario.firmware.name(),
            hardware.machine,
            qemu.cpus,
            hardware.memory_mib,
            list.join(" ")
        );
    }
    if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
