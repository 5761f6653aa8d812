//! The fault-injection campaign (`qemu_harness faults`): transient faults injected through QEMU's gdb stub
//! while a workload runs, each injection classified (issue 11, part 2).
//!
//! Key types: [`plan::Plan`] (what one injection does, from the seed), [`guest::Guest`] (one boot: serial
//! session plus [`crate::gdb_remote::GdbRemote`]), [`points`] (instruction points, where a fault landed),
//! [`report::Record`] (one CSV row), [`ipc`] (the 13 named channel cases).
//!
//! Control flow of a campaign:
//! 1. Boot the ISO with `-gdb tcp:127.0.0.1:PORT`; run every workload once (the golden runs: result lines and
//!    duration; a workload that fails here aborts the campaign, since nothing could be classified against it);
//!    read the cells' section ranges (`sections`) and the function listings of `task`, `scheduler` and
//!    `interrupts` (`sections CELL`, for the landing). With instruction points, the first boot then runs each
//!    workload a few more times while sampling RIP ([`profile`]) unless `--profile FILE` gave the profile.
//! 2. For each injection: read `sections` again (a swap moves cells) and the fault log's latest time.
//!    Instruction points (the default): draw an instruction of a function of the workload's cells under test
//!    that the profile saw running ([`points`], [`profile`]), stop the guest, set a `Z0` breakpoint there,
//!    let it run; type the workload's commands; on the breakpoint's first hit remove it and apply the fault on
//!    that CPU; if it is never hit, remove it and record "not activated". Timed points: at the planned moment
//!    stop the guest (0x03) and apply the fault on the planned CPU. Faults: flip a register bit, corrupt a memory
//!    word (instruction points: the word the instruction's memory operand addresses, else the one at RSP; timed:
//!    a word of a cell), or skip the instruction at RIP. RIP then gives where the fault landed. Wait for each
//!    prompt (timeout: 3 x the golden duration + 15 s); a command whose output shows the shell restarted or a
//!    swap failed is typed again (at most twice).
//! 3. Classify ([`report::classify`]): read the fault log again and look for fault lines on serial; for a
//!    workload that is not restartable (none today), if the result is wrong but a fault was seen, run it once
//!    more. A corrupted memory word is written back if it still holds the corrupted value
//!    (so later injections start from a clean image; a reloaded cell is not touched).
//! 4. After every manifested injection (recovered or failed), after an error of the harness, or when `echo` no
//!    longer answers, kill QEMU and boot again; a not-manifested or not-activated injection reuses the boot.
//! 5. Append the CSV row (`injections.csv`); at the end write and print the summary (`summary.txt`).

pub mod guest;
pub mod inject;
pub mod ipc;
pub mod plan;
pub mod points;
pub mod profile;
pub mod report;
pub mod workload;

use crate::qemu::QemuConfig;
use crate::session::{Failure, StepResult, Typing};
use guest::{Guest, WorkloadRun};
use plan::{FaultType, Plan, PointMode};
use points::{Function, NanoCore};
use profile::Profile;
use report::{Outcome, Record, RunResult};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use workload::{WORKLOADS, Workload};

/// A campaign's settings.
#[derive(Debug, Clone)]
pub struct CampaignConfig {
    /// The emulator.
    pub qemu: QemuConfig,
    /// The ISO to boot.
    pub iso: PathBuf,
    /// How to type.
    pub typing: Typing,
    /// The seed.
    pub seed: u64,
    /// Number of injections.
    pub count: usize,
    /// Output directory (`injections.csv`, `summary.txt`, `logs/`).
    pub out: PathBuf,
    /// Multiplies every timeout.
    pub timeout_scale: f64,
    /// How injection points are chosen.
    pub points: PointMode,
    /// A profile file to draw instruction points from (see [`profile`]) instead of sampling one on the first boot.
    pub profile: Option<PathBuf>,
    /// The workloads of the random campaign (`--workloads`; default [`WORKLOADS`]): only these are run, profiled
    /// and injected into, with the plans the full campaign gives them ([`plan::indices`]).
    pub workloads: Vec<Workload>,
    /// Only these injection indices of the campaign (`--indices`; `None`: all): replays single injections of a
    /// full campaign (same seed, same profile) to reproduce them.
    pub indices: Option<Vec<usize>>,
}

/// The golden run of one workload.
#[derive(Debug, Clone)]
pub struct Golden {
    /// Its result lines.
    pub result: Vec<String>,
    /// Its duration.
    pub duration: Duration,
}

/// What the campaign keeps across boots.
pub struct Campaign {
    /// Settings.
    pub config: CampaignConfig,
    /// Golden runs by workload.
    pub golden: BTreeMap<Workload, Golden>,
    /// The base image's text and functions (`nano_core.syms` beside the ISO).
    pub nano: NanoCore,
    /// The workloads run on every boot (their golden runs): the configured ones, or the IPC cases' one.
    pub workloads: Vec<Workload>,
    /// The functions each workload was seen running (instruction points are drawn from them).
    pub profile: Profile,
    boots: usize,
}

/// Cells whose function listings are fetched on every boot to say where a fault landed (context switch,
/// interrupt handlers).
const LANDING_CELLS: [&str; 3] = ["task", "scheduler", "interrupts"];

impl Campaign {
    /// A campaign with no boot yet.
    ///
    /// # Errors
    /// `nano_core.syms` is not beside the ISO (`make iso` writes both to `build/`; copy them together): without it
    /// no point could lie in the base image's heap, loader or namespace code and no landing could be called
    /// `nano_core`, so a campaign would silently measure something else.
    pub fn new(config: CampaignConfig) -> Result<Self, String> {
        let symbols = config.iso.with_file_name("nano_core.syms");
        let text = std::fs::read_to_string(&symbols).map_err(|e| {
            format!("{}: {e} (the base image's symbols must be beside the ISO; copy both)", symbols.display())
        })?;
        let nano = points::parse_nano_core(&text);
        if nano.functions.is_empty() || nano.text.is_empty() {
            return Err(format!("{}: no functions or no __text_start/__text_end", symbols.display()));
        }
        Ok(Campaign {
            workloads: config.workloads.clone(),
            config,
            golden: BTreeMap::new(),
            nano,
            profile: Profile::default(),
            boots: 0,
        })
    }

    fn scaled(&self, duration: Duration) -> Duration {
        duration.mul_f64(self.config.timeout_scale)
    }

    /// Boots a guest (log `logs/boot-N.log`); on the first boot, makes the golden runs.
    ///
    /// # Errors
    /// The boot fails, or a golden run does not complete with a result.
    pub fn boot(&mut self) -> StepResult<Guest> {
        self.boots += 1;
        let logs = self.config.out.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| Failure(format!("{}: {e}", logs.display())))?;
        let log = logs.join(format!("boot-{}.log", self.boots));
        let mut guest =
            Guest::boot(&self.config.qemu, &self.config.iso, &self.config.typing, &log, self.scaled(SECS_60))?;
        // Every boot runs each workload once before injecting: the first boot records the golden runs, later
        // ones load the same cells (so the section ranges, and with them the memory targets, are the same).
        // On the first boot each workload runs twice: the first run loads its cells, the second is the golden one
        // (so its duration, from which injection moments are drawn, does not include loading).
        let runs = if self.golden.is_empty() { 2 } else { 1 };
        for workload in self.workloads.clone().into_iter().flat_map(|workload| std::iter::repeat_n(workload, runs)) {
            let mark = guest.mark();
            let run = guest.run_workload(workload, self.scaled(SECS_60), None);
            if let Some((command, failure)) = &run.stuck {
                return Err(Failure(format!("golden run of {}: `{command}`: {failure}", workload.name())));
            }
            if run.result.is_empty() || guest.fault_line_since(mark).is_some() {
                return Err(Failure(format!(
                    "golden run of {} shows no result or a fault: {:?}",
                    workload.name(),
                    run.output
                )));
            }
            if runs == 2 || !self.golden.contains_key(&workload) {
                self.golden.insert(workload, Golden { result: run.result, duration: run.duration });
            }
        }
        if runs == 2 {
            let durations: Vec<String> = self
                .golden
                .iter()
                .map(|(workload, golden)| format!("{} {:.2} s", workload.name(), golden.duration.as_secs_f64()))
                .collect();
            println!("golden runs: {}", durations.join(", "));
        }
        guest.refresh_ranges()?;
        if guest.ranges.is_empty() {
            return Err(Failure("the guest's `sections` command listed no cell section ranges".into()));
        }
        for cell in LANDING_CELLS {
            guest.functions(cell)?;
        }
        // The IPC cases place their own points: only the random campaign samples a profile.
        let random = !self.workloads.contains(&Workload::IpcPingPong);
        if runs == 2 && random && self.config.points == PointMode::Instruction && self.profile.seen.is_empty() {
            self.sample_profile(&mut guest)?;
        }
        Ok(guest)
    }

    /// Runs every workload again while sampling RIP (see [`profile`] for how many runs), records the basic
    /// blocks of candidate functions seen and writes them to `profile.txt`.
    ///
    /// # Errors
    /// A run does not complete, the stub fails, or a listing cannot be read.
    fn sample_profile(&mut self, guest: &mut Guest) -> StepResult<()> {
        let started = Instant::now();
        let stub = |error: crate::gdb_remote::GdbError| Failure(format!("profile: {error}"));
        guest.gdb.interrupt().map_err(stub)?;
        let threads = guest.gdb.threads();
        guest.gdb.resume().map_err(stub)?;
        let threads = threads.map_err(stub)?;
        guest.poll_slice = profile::SAMPLE_INTERVAL;
        let sampled = self.sample_workloads(guest, &threads, started);
        guest.poll_slice = Duration::from_millis(5);
        sampled
    }

    /// [`Campaign::sample_profile`]'s runs, with the guest's poll slice set to the sampling interval.
    fn sample_workloads(&mut self, guest: &mut Guest, threads: &[String], started: Instant) -> StepResult<()> {
        let stub = |error: crate::gdb_remote::GdbError| Failure(format!("profile: {error}"));
        for workload in self.workloads.clone() {
            let mut rips = Vec::new();
            let mut runs = 0;
            while runs < profile::MIN_RUNS || (runs < profile::MAX_RUNS && rips.len() < profile::TARGET_SAMPLES) {
                runs += 1;
                let mut sampler =
                    |gdb: &mut crate::gdb_remote::GdbRemote, _: &[inject::SectionRange]| match profile::sample_rips(
                        gdb, threads,
                    ) {
                        Ok(sampled) => {
                            rips.extend(sampled);
                            None
                        }
                        Err(error) => Some(Err(error)),
                    };
                let run = guest.run_workload(workload, self.scaled(SECS_60), Some(&mut sampler));
                if let Some((command, failure)) = &run.stuck {
                    return Err(Failure(format!("profile run of {}: `{command}`: {failure}", workload.name())));
                }
                if let Some(Err(error)) = &run.injected {
                    return Err(Failure(format!("profile run of {}: sampling failed: {error}", workload.name())));
                }
            }
            *self.profile.samples.entry(workload).or_default() += rips.len();
            // A swap moved cells: listings of moved cells are dropped and read again.
            guest.refresh_ranges()?;
            let candidates = candidates(self, guest, workload).map_err(Failure)?;
            let mut outside = BTreeMap::<String, usize>::new();
            for &rip in &rips {
                if !candidates.iter().any(|function| (function.start..function.start + function.size).contains(&rip)) {
                    let place = points::landing(rip, false, &guest.ranges, &guest.known_functions(), &self.nano).place;
                    *outside.entry(place.chars().take(60).collect()).or_default() += 1;
                }
            }
            let mut outside: Vec<(String, usize)> = outside.into_iter().collect();
            outside.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
            outside.truncate(profile::OUTSIDE_PLACES);
            self.profile.outside.insert(workload, outside);
            for function in candidates {
                let inside = |rip: &&u64| (function.start..function.start + function.size).contains(*rip);
                let hits: Vec<u64> = rips.iter().filter(inside).copied().collect();
                if hits.is_empty() {
                    continue;
                }
                guest.gdb.interrupt().map_err(stub)?;
                let code = ipc::read_code(&mut guest.gdb, function.start, function.size as usize);
                guest.gdb.resume().map_err(stub)?;
                self.profile.record(workload, &function, &code.map_err(stub)?, &hits);
            }
        }
        let text = self.profile.to_text();
        let path = self.config.out.join("profile.txt");
        std::fs::write(&path, &text).map_err(|e| Failure(format!("{}: {e}", path.display())))?;
        println!(
            "profile ({:.1} s): {}; written to {}",
            started.elapsed().as_secs_f64(),
            self.profile
                .to_text()
                .lines()
                .skip(1)
                .take_while(|line| line.starts_with('#'))
                .map(|line| &line[2..])
                .collect::<Vec<_>>()
                .join("; "),
            path.display()
        );
        Ok(())
    }

    /// Folds a clean run's duration into the workload's expected duration (an exponential moving average with
    /// weight 1/4), from which injection moments are drawn: the golden run can be slower than later ones (TCG's
    /// translation cache warms up, host load changes), and moments drawn from a stale duration would fall after
    /// the workload.
    pub fn update_duration(&mut self, workload: Workload, duration: Duration) {
        if let Some(golden) = self.golden.get_mut(&workload) {
            golden.duration = golden.duration.mul_f64(0.75) + duration.mul_f64(0.25);
        }
    }

    /// The per-command timeout of `workload`.
    pub fn command_timeout(&self, workload: Workload) -> Duration {
        let golden = self.golden.get(&workload).map_or(SECS_60, |golden| golden.duration);
        self.scaled(golden * 3 + Duration::from_secs(15))
    }

    /// Classifies the run after an injection (shared by the random campaign and the IPC cases): reads the fault
    /// log; re-runs once if the workload is not restartable and needs it. Returns the outcome and a detail.
    pub fn classify_run(
        &self,
        guest: &mut Guest,
        workload: Workload,
        run: &WorkloadRun,
        mark: crate::transcript::Position,
        last_fault: u64,
    ) -> (Outcome, String) {
        let golden = &self.golden[&workload];
        let first = match &run.stuck {
            _ if guest.exited() => RunResult::Down,
            Some(_) => RunResult::Hang,
            None => RunResult::Completed { right: run.result == golden.result },
        };
        if let Some(Err(error)) = &run.injected {
            return (Outcome::Failed, format!("system down: {error}"));
        }
        match first {
            RunResult::Down => return (Outcome::Failed, "system down: QEMU exited".into()),
            RunResult::Hang => {
                let command = run.stuck.as_ref().map(|(command, _)| command.clone()).unwrap_or_default();
                let line = guest.fault_line_since(mark).unwrap_or_default();
                return (Outcome::Failed, format!("hang: `{command}` gave no prompt back; {line}"));
            }
            RunResult::Completed { .. } => {}
        }
        let timeout = self.command_timeout(workload);
        // Serial fault lines are looked for before `faults` runs: its listing repeats older records' reasons.
        let serial_fault = guest.fault_line_since(mark);
        let records = match guest.fault_records(timeout) {
            Ok(records) => records,
            Err(failure) => return (Outcome::Failed, format!("hang: `faults` gave no prompt back: {failure}")),
        };
        let logged = records.iter().find(|(time, line)| *time > last_fault && !line.ends_with(" killed"));
        let fault_line =
            serial_fault.or_else(|| logged.map(|(_, line)| line.clone())).or_else(|| run.retries.first().cloned());
        let mut detail = match &first {
            RunResult::Completed { right: true } => "result right".to_string(),
            _ => format!("wrong result {:?}", run.result),
        };
        if let Some(line) = &fault_line {
            detail += &format!("; fault: {line}");
        }
        if !run.retries.is_empty() {
            detail += &format!("; {}", run.retries.join("; "));
        }
        let rerun = if matches!(first, RunResult::Completed { right: false })
            && fault_line.is_some()
            && !workload.restartable()
        {
            let again = guest.run_workload(workload, timeout, None);
            let result = match again.stuck {
                _ if guest.exited() => RunResult::Down,
                Some(_) => RunResult::Hang,
                None => RunResult::Completed { right: again.result == golden.result },
            };
            detail += &format!("; re-run: {result:?}");
            Some(result)
        } else {
            None
        };
        (report::classify(&first, fault_line.is_some(), rerun.as_ref()), detail)
    }
}

const SECS_60: Duration = Duration::from_secs(60);

/// The latest fault-log time (µs), 0 if the log is empty.
///
/// # Errors
/// `faults` gives no prompt back.
pub fn latest_fault(guest: &mut Guest, timeout: Duration) -> StepResult<u64> {
    Ok(guest.fault_records(timeout)?.iter().map(|(time, _)| *time).max().unwrap_or(0))
}

/// An instruction point drawn for one injection.
#[derive(Debug, Clone)]
struct ChosenPoint {
    /// The instruction's address.
    address: u64,
    /// `CELL+0xOFFSET` (from the cell's text start, or nano_core's).
    name: String,
    /// The function holding it.
    function: String,
}

/// The functions instruction points of `workload` may lie in: those of the cells it exercises and the base
/// image's functions it exercises.
///
/// # Errors
/// A listing cannot be read.
fn candidates(campaign: &Campaign, guest: &mut Guest, workload: Workload) -> Result<Vec<Function>, String> {
    let mut candidates = Vec::new();
    for cell in workload.cells_under_test() {
        candidates.extend(guest.functions(cell).map_err(|failure| failure.to_string())?);
    }
    let parts = workload.nano_core_under_test();
    candidates.extend(
        campaign
            .nano
            .functions
            .iter()
            .filter(|function| parts.iter().any(|part| function.name.contains(part)))
            .cloned(),
    );
    Ok(candidates)
}

/// Draws the plan's instruction point among the basic blocks of its workload's candidate functions that the
/// profile saw running and the functions of the workload's focus cells ([`Profile::points`]; among the whole
/// candidates if that is empty); `None` if there are none. A block
/// starts at an instruction boundary, so it is decoded from its own first byte.
///
/// # Errors
/// A listing or the stub fails.
fn choose_point(campaign: &Campaign, guest: &mut Guest, plan: &Plan) -> Result<Option<ChosenPoint>, String> {
    let candidates = candidates(campaign, guest, plan.workload)?;
    let candidates = campaign.profile.points(plan.workload, &candidates);
    let Some((function, offset)) = points::choose(&candidates, plan.point_fraction) else { return Ok(None) };
    let length = (offset + 16).min(function.size) as usize;
    let gdb = &mut guest.gdb;
    gdb.interrupt().map_err(|e| e.to_string())?;
    let code = ipc::read_code(gdb, function.start, length);
    gdb.resume().map_err(|e| e.to_string())?;
    let code = code.map_err(|e| e.to_string())?;
    let address = points::instruction_at(&code, function.start, offset)
        .ok_or_else(|| format!("no instruction decodes at {:#x}+{offset:#x}", function.start))?;
    let base = guest
        .ranges
        .iter()
        .find(|range| range.kind == "Text" && range.cell == function.cell)
        .map_or(campaign.nano.text.start, |range| range.start);
    Ok(Some(ChosenPoint {
        address,
        name: format!("{}+{:#x}", function.cell, address - base),
        function: points::short_name(&function.name),
    }))
}

/// What applying a fault did.
#[derive(Debug, Clone, Default)]
struct Applied {
    /// The CSV's target and address columns.
    target: (String, String),
    /// A corrupted word's address and original value.
    original: Option<(u64, u64)>,
    /// RIP when the fault was applied, and whether the byte before it is `hlt` (the CPU was halted).
    rip: Option<(u64, bool)>,
}

/// Applies the plan's fault to the selected CPU of the stopped guest; `point`: at an instruction point (memory
/// faults then corrupt the word the instruction's memory operand addresses, or the word at RSP if it has none),
/// otherwise at a moment (memory faults corrupt the planned word of a cell). Returns the detail.
fn apply_fault(
    gdb: &mut crate::gdb_remote::GdbRemote,
    plan: &Plan,
    ranges: &[inject::SectionRange],
    memory: Option<&(String, u64)>,
    point: bool,
    applied: &mut Applied,
) -> crate::gdb_remote::GdbResult<String> {
    use crate::gdb_remote::{RIP, RSP};
    let (rip, _) = gdb.read_register(RIP)?;
    let after_hlt = gdb.read_memory(rip.wrapping_sub(1), 1).is_ok_and(|byte| byte == [0xf4]);
    Ok(match plan.fault {
        FaultType::RegisterBit => {
            let (what, detail) = inject::flip_register(gdb, plan, ranges)?;
            applied.target = (crate::gdb_remote::REGISTER_NAMES[plan.register].to_string(), what);
            detail
        }
        FaultType::SkipInstruction => {
            let (what, detail) = inject::skip_instruction(gdb, ranges)?;
            applied.target = ("rip".into(), what);
            detail
        }
        FaultType::MemoryWord => {
            let (what, address) = if point {
                let bytes = gdb.read_memory(rip, 15).or_else(|_| gdb.read_memory(rip, 1))?;
                let operand = match points::memory_operand(&bytes, rip) {
                    Some(operand) => {
                        let mut address = operand.displacement;
                        if let Some(base) = operand.base {
                            address = address.wrapping_add(gdb.read_register(base)?.0);
                        }
                        if let Some((index, scale)) = operand.index {
                            address = address.wrapping_add(gdb.read_register(index)?.0.wrapping_mul(u64::from(scale)));
                        }
                        // An operand that does not translate (a bad pointer the code is about to fault on) falls
                        // back to the stack word.
                        gdb.read_memory(address & !7, 8).is_ok().then_some(("operand", address & !7))
                    }
                    None => None,
                };
                match operand {
                    Some(found) => found,
                    None => ("stack", gdb.read_register(RSP)?.0 & !7),
                }
            } else {
                let (cell, address) = memory.cloned().unwrap_or_default();
                (if cell.is_empty() { "none" } else { "cell" }, address)
            };
            let word = inject::corrupt_word(gdb, address, plan.mask)?;
            applied.original = Some((address, word));
            let place =
                memory.filter(|_| !point).map_or_else(|| inject::locate(ranges, address), |(cell, _)| cell.clone());
            applied.target = (format!("{what} {place}"), format!("{address:#x} mask {:#x}", plan.mask));
            format!("word {word:#x} -> {:#x}", word ^ plan.mask)
        }
    })
    .inspect(|_| applied.rip = Some((rip, after_hlt)))
}

/// Runs one planned injection on `guest`; returns its record, whether the guest can be reused, and the
/// workload's duration if the fault did not manifest (a clean run, for [`Campaign::update_duration`]).
fn inject_one(campaign: &Campaign, guest: &mut Guest, plan: &Plan) -> (Record, bool, Option<Duration>) {
    let timeout = campaign.command_timeout(plan.workload);
    let mode = campaign.config.points;
    let mut record = Record {
        seed: campaign.config.seed,
        index: plan.index.to_string(),
        fault: plan.fault.name().into(),
        workload: plan.workload.name().into(),
        points: mode.name().into(),
        point: String::new(),
        landed: String::new(),
        landed_in: String::new(),
        target: String::new(),
        address: String::new(),
        outcome: Outcome::Failed,
        detail: String::new(),
    };
    guest.note(&format!("injection {} {:?}", plan.index, plan));
    // The ranges are read again before every injection: a swap reloads cells elsewhere and frees the old
    // copies, so a memory target or landing drawn from older ranges could lie in freed memory.
    if let Err(failure) = guest.refresh_ranges() {
        record.detail = format!("the guest did not answer `sections` before the injection: {failure}");
        return (record, false, None);
    }
    let last_fault = match latest_fault(guest, timeout) {
        Ok(time) => time,
        Err(failure) => {
            record.detail = format!("the guest did not answer before the injection: {failure}");
            return (record, false, None);
        }
    };
    let point = match mode {
        PointMode::Time => None,
        PointMode::Instruction => {
            let chosen = choose_point(campaign, guest, plan).and_then(|chosen| {
                let chosen = chosen.ok_or_else(|| "no functions to draw a point from".to_string())?;
                let gdb = &mut guest.gdb;
                gdb.interrupt()
                    .and_then(|_| gdb.breakpoint(chosen.address, true))
                    .and_then(|()| gdb.resume())
                    .map_err(|e| e.to_string())?;
                Ok(chosen)
            });
            match chosen {
                Ok(chosen) => Some(chosen),
                Err(error) => {
                    // A harness or stub problem, not an outcome of the fault: counted as not activated.
                    record.outcome = Outcome::NotActivated;
                    record.detail = format!("no point armed: {error}");
                    return (record, false, None);
                }
            }
        }
    };
    if let Some(chosen) = &point {
        record.point = chosen.name.clone();
        guest.note(&format!("point {} {:#x} in {}", chosen.name, chosen.address, chosen.function));
    }
    let memory = match (plan.fault, &point) {
        (FaultType::MemoryWord, None) => inject::memory_target(plan, &guest.ranges)
            .map(|(range, address)| (format!("{}/{}", range.cell, range.kind), address)),
        _ => None,
    };
    let golden = campaign.golden[&plan.workload].duration;
    let at = Instant::now() + golden.mul_f64(plan.moment);
    let mut applied = Applied::default();
    let force = std::cell::Cell::new(false);
    let breakpoint = point.as_ref().map(|chosen| chosen.address);
    let mut injector = |gdb: &mut crate::gdb_remote::GdbRemote, ranges: &[inject::SectionRange]| {
        let thread = match breakpoint {
            Some(address) => match gdb.poll_stop(Duration::from_millis(5)) {
                Ok(None) => return None,
                Err(error) => return Some(Err(error)),
                Ok(Some(stop)) => {
                    let thread = stop
                        .split(';')
                        .find_map(|part| part.split_once("thread:"))
                        .map_or_else(|| "1".to_string(), |(_, id)| id.to_string());
                    let removed = gdb.select_thread(&thread).and_then(|()| gdb.breakpoint(address, false));
                    if let Err(error) = removed {
                        return Some(Err(error));
                    }
                    thread
                }
            },
            None => {
                if Instant::now() < at && !force.get() {
                    return None;
                }
                match gdb.interrupt().and_then(|_| inject::select_cpu(gdb, plan.cpu)) {
                    Ok(thread) => thread,
                    Err(error) => return Some(Err(error)),
                }
            }
        };
        let result = apply_fault(gdb, plan, ranges, memory.as_ref(), breakpoint.is_some(), &mut applied)
            .and_then(|detail| gdb.resume().map(|()| format!("cpu {thread}: {detail}")));
        Some(result)
    };
    let mark = guest.mark();
    let mut run = guest.run_workload(plan.workload, timeout, Some(&mut injector));
    if run.injected.is_none() && run.stuck.is_none() && breakpoint.is_none() {
        // The workload ended before the moment came (it ran faster than its golden run): inject now, into
        // whatever runs after it; the fault-log check and the health check below still see its effect.
        force.set(true);
        let ranges = guest.ranges.clone();
        run.injected =
            injector(&mut guest.gdb, &ranges).map(|result| result.map(|detail| detail + " (after the workload)"));
    }
    (record.target, record.address) = applied.target.clone();
    if let Some((rip, after_hlt)) = applied.rip {
        let landing = points::landing(rip, after_hlt, &guest.ranges, &guest.known_functions(), &campaign.nano);
        (record.landed, record.landed_in) = (landing.category, landing.place);
    }
    if let (Some(address), None) = (breakpoint, &run.injected) {
        // Never hit: no fault was applied. The breakpoint is removed so that later injections do not stop there.
        record.outcome = Outcome::NotActivated;
        let stuck = run.stuck.as_ref().map(|(command, failure)| format!("; `{command}` stuck: {failure}"));
        record.detail = format!("point not reached during the workload{}", stuck.clone().unwrap_or_default());
        let removed = !guest.exited()
            && guest
                .gdb
                .interrupt()
                .and_then(|_| guest.gdb.breakpoint(address, false))
                .and_then(|()| guest.gdb.resume())
                .is_ok();
        let reusable = removed && stuck.is_none() && guest.healthy(campaign.scaled(Duration::from_secs(10)));
        return (record, reusable, None);
    }
    let injected_detail = match &run.injected {
        Some(Ok(detail)) => detail.clone(),
        _ => String::new(),
    };
    let (outcome, detail) = campaign.classify_run(guest, plan.workload, &run, mark, last_fault);
    record.outcome = outcome;
    record.detail = format!("{injected_detail}; {detail}");
    // Only a fault that did not manifest leaves the boot reusable: a recovered fault can leave state behind that
    // recovery does not repair (an unregistered spin lock held forever, a leaked task, a damaged heap word) and
    // that would make later injections on the same boot fail, or look recovered, for reasons of their own.
    let mut reusable = outcome == Outcome::NotManifested;
    if reusable && let Some((address, word)) = applied.original {
        reusable = restore_word(guest, address, word, plan.mask);
    }
    reusable = reusable && guest.healthy(campaign.scaled(Duration::from_secs(10)));
    let clean = (outcome == Outcome::NotManifested).then_some(run.duration);
    (record, reusable, clean)
}

/// Writes `word` back at `address` if it still holds `word ^ mask`; false if the stub failed.
fn restore_word(guest: &mut Guest, address: u64, word: u64, mask: u64) -> bool {
    let result = (|| {
        guest.gdb.interrupt()?;
        let now = guest.gdb.read_memory(address, 8)?;
        if u64::from_le_bytes(now.try_into().expect("8 bytes")) == word ^ mask {
            guest.gdb.write_memory(address, &word.to_le_bytes())?;
        }
        guest.gdb.resume()
    })();
    result.is_ok()
}

/// Runs the random campaign; writes `injections.csv` and `summary.txt` under the output directory and prints
/// the summary. Returns the records.
///
/// # Errors
/// The output cannot be written, or the golden runs fail (nothing can be classified then).
pub fn run_campaign(config: CampaignConfig) -> Result<Vec<Record>, String> {
    let started = Instant::now();
    std::fs::create_dir_all(&config.out).map_err(|e| format!("{}: {e}", config.out.display()))?;
    let csv_path = config.out.join("injections.csv");
    let mut csv = std::fs::File::create(&csv_path).map_err(|e| format!("{}: {e}", csv_path.display()))?;
    writeln!(csv, "{}", report::CSV_HEADER).map_err(|e| e.to_string())?;
    let mut campaign = Campaign::new(config)?;
    if let Some(path) = &campaign.config.profile {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        campaign.profile = Profile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut guest: Option<Guest> = None;
    let mut records = Vec::new();
    let mut indices = plan::indices(&campaign.workloads, campaign.config.count);
    if let Some(only) = &campaign.config.indices {
        indices.retain(|index| only.contains(index));
    }
    for index in indices {
        let plan = plan::plan(campaign.config.seed, index);
        if guest.is_none() {
            guest = Some(boot_with_retry(&mut campaign)?);
        }
        let current = guest.as_mut().expect("booted above");
        let (record, reusable, clean) = inject_one(&campaign, current, &plan);
        if let Some(duration) = clean {
            campaign.update_duration(plan.workload, duration);
        }
        println!(
            "injection {index:>4} {:<16} {:<8} {:<14} {}",
            record.fault,
            record.workload,
            record.outcome.name(),
            record.detail.chars().take(110).collect::<String>()
        );
        writeln!(csv, "{}", record.csv_line()).map_err(|e| e.to_string())?;
        records.push(record);
        if !reusable {
            guest = None;
        }
    }
    drop(guest);
    let late = records.iter().filter(|record| record.detail.contains("(after the workload)")).count();
    let header = format!(
        "fault-injection campaign: seed {}, {} injections ({late} injected just after the workload ended), {} boots, \
         {:.0} s, {} CPU(s), image {}{}",
        campaign.config.seed,
        records.len(),
        campaign.boots,
        started.elapsed().as_secs_f64(),
        campaign.config.qemu.cpus,
        campaign.config.iso.display(),
        if campaign.workloads == WORKLOADS {
            String::new()
        } else {
            let names: Vec<&str> = campaign.workloads.iter().map(|workload| workload.name()).collect();
            format!(", workloads {}", names.join(","))
        }
    );
    write_summary(&campaign.config.out, &header, &records)?;
    Ok(records)
}

/// Boots, retrying once (a boot can time out under host load).
///
/// # Errors
/// Both boots failed.
pub fn boot_with_retry(campaign: &mut Campaign) -> Result<Guest, String> {
    campaign.boot().or_else(|first| {
        eprintln!("faults: boot failed ({first}); retrying once");
        campaign.boot().map_err(|second| format!("boot failed twice: {first}; then {second}"))
    })
}

/// Writes and prints the summary.
///
/// # Errors
/// The file cannot be written.
pub fn write_summary(out: &Path, header: &str, records: &[Record]) -> Result<(), String> {
    let text = report::summary(header, records);
    print!("\n{text}");
    let path = out.join("summary.txt");
    std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))
}
