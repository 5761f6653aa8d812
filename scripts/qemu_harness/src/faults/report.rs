//! Classification of one injection, the CSV of every injection, and the summary tables.
//!
//! Rule (see README "Fault-injection campaign"):
//! - **not activated** (instruction points only): the breakpoint was never hit, so no fault was applied;
//! - **not manifested**: the workload's result equals the golden run's and no fault was seen;
//! - **recovered**: a fault was seen (a new fault-log record other than a kill, a fault report line on serial,
//!   or a command the harness had to type again because the shell restarted or a swap failed), and the result is
//!   right; for the one workload that is not restartable (`channels`) also when it is right on a re-run;
//! - **failed**: the result is wrong (also after the re-run), a command did not give the prompt back within its
//!   timeout (a hang), or QEMU exited or its gdb stub stopped answering (system down).

/// How one injection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The injection point was never executed: no fault was applied.
    NotActivated,
    /// No effect seen.
    NotManifested,
    /// A fault was logged and the workload's result is right.
    Recovered,
    /// Wrong result, hang, or system down.
    Failed,
}

impl Outcome {
    /// The name in the CSV.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::NotActivated => "not-activated",
            Outcome::NotManifested => "not-manifested",
            Outcome::Recovered => "recovered",
            Outcome::Failed => "failed",
        }
    }
}

/// What one workload run showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    /// Every command gave the prompt back; the result lines equal (`true`) the golden run's or not.
    Completed {
        /// Whether the result lines equal the golden run's.
        right: bool,
    },
    /// A command did not give the prompt back in time.
    Hang,
    /// QEMU exited, or the gdb stub failed.
    Down,
}

/// Classifies an injection from its first run, whether a fault was logged, and the re-run (if one was made).
pub fn classify(first: &RunResult, fault_logged: bool, rerun: Option<&RunResult>) -> Outcome {
    match (first, fault_logged, rerun) {
        (RunResult::Completed { right: true }, false, _) => Outcome::NotManifested,
        (RunResult::Completed { right: true }, true, _) => Outcome::Recovered,
        (RunResult::Completed { right: false }, true, Some(RunResult::Completed { right: true })) => Outcome::Recovered,
        _ => Outcome::Failed,
    }
}

/// One CSV row.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The campaign seed.
    pub seed: u64,
    /// The injection's index, or the case name for the IPC cases.
    pub index: String,
    /// The fault type's name.
    pub fault: String,
    /// The workload's name.
    pub workload: String,
    /// How the moment was chosen (`instruction` or `time`; the IPC cases: `case`).
    pub points: String,
    /// The injection point: `CELL+0xOFFSET` of the instruction (instruction points), empty for timed ones.
    pub point: String,
    /// Where the CPU was when the fault was applied (see [`super::points::landing`]): category.
    pub landed: String,
    /// The cell and function there.
    pub landed_in: String,
    /// The target cell (memory) or register name (register).
    pub target: String,
    /// The address (memory word, or RIP at the stop) and the bit or mask.
    pub address: String,
    /// The classification.
    pub outcome: Outcome,
    /// What was seen (one line; commas are replaced).
    pub detail: String,
}

/// The CSV header line.
pub const CSV_HEADER: &str = "seed,index,type,workload,points,point,landed,landed_in,target,address_bit,outcome,detail";

impl Record {
    /// The CSV line (no field contains a comma or a quote: they are replaced by `;` and `'`).
    pub fn csv_line(&self) -> String {
        let clean = |text: &str| text.replace([',', '\n', '\r'], ";").replace('"', "'");
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            self.seed,
            clean(&self.index),
            clean(&self.fault),
            clean(&self.workload),
            clean(&self.points),
            clean(&self.point),
            clean(&self.landed),
            clean(&self.landed_in),
            clean(&self.target),
            clean(&self.address),
            self.outcome.name(),
            clean(&self.detail)
        )
    }
}

/// Counts of one group of records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Injections in the group.
    pub total: usize,
    /// Not activated (the point was never executed).
    pub not_activated: usize,
    /// Not manifested.
    pub not_manifested: usize,
    /// Recovered.
    pub recovered: usize,
    /// Failed.
    pub failed: usize,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        self.total += 1;
        match outcome {
            Outcome::NotActivated => self.not_activated += 1,
            Outcome::NotManifested => self.not_manifested += 1,
            Outcome::Recovered => self.recovered += 1,
            Outcome::Failed => self.failed += 1,
        }
    }

    /// Recovered faults as a percentage of manifested ones; `None` if none manifested.
    pub fn recovery_rate(&self) -> Option<f64> {
        let manifested = self.recovered + self.failed;
        (manifested > 0).then(|| 100.0 * self.recovered as f64 / manifested as f64)
    }
}

fn table(title: &str, groups: &[(String, Counts)]) -> String {
    let mut text = format!(
        "{title:<18} {:>6} {:>13} {:>14} {:>10} {:>9} {:>7} {:>14}\n",
        "total", "not-activated", "not-manifested", "manifested", "recovered", "failed", "recovery-rate"
    );
    for (name, counts) in groups {
        let rate = counts.recovery_rate().map_or_else(|| "-".to_string(), |rate| format!("{rate:.1}%"));
        text += &format!(
            "{name:<18} {:>6} {:>13} {:>14} {:>10} {:>9} {:>7} {:>14}\n",
            counts.total,
            counts.not_activated,
            counts.not_manifested,
            counts.recovered + counts.failed,
            counts.recovered,
            counts.failed,
            rate
        );
    }
    text
}

fn group_by(records: &[Record], key: impl Fn(&Record) -> String) -> Vec<(String, Counts)> {
    let mut groups: Vec<(String, Counts)> = Vec::new();
    for record in records {
        let name = key(record);
        match groups.iter_mut().find(|(known, _)| *known == name) {
            Some((_, counts)) => counts.add(record.outcome),
            None => {
                let mut counts = Counts::default();
                counts.add(record.outcome);
                groups.push((name, counts));
            }
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let mut all = Counts::default();
    records.iter().for_each(|record| all.add(record.outcome));
    groups.push(("all".to_string(), all));
    groups
}

/// The summary: a header line, then the tables by fault type, by workload, by where the fault landed (the
/// landing category, `task:CELL` grouped as `task-code`), and by the cell of task code.
pub fn summary(header: &str, records: &[Record]) -> String {
    let in_tasks: Vec<Record> = records.iter().filter(|record| record.landed.starts_with("task:")).cloned().collect();
    format!(
        "{header}\n\n{}\n{}\n{}\n{}",
        table("by fault type", &group_by(records, |record| record.fault.clone())),
        table("by workload", &group_by(records, |record| record.workload.clone())),
        table("by where landed", &group_by(records, |record| super::points::landing_group(&record.landed))),
        table("task code by cell", &group_by(&in_tasks, |record| record.landed["task:".len()..].to_string()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_rule() {
        let right = RunResult::Completed { right: true };
        let wrong = RunResult::Completed { right: false };
        assert_eq!(classify(&right, false, None), Outcome::NotManifested);
        assert_eq!(classify(&right, true, None), Outcome::Recovered);
        assert_eq!(classify(&wrong, true, Some(&right)), Outcome::Recovered);
        assert_eq!(classify(&wrong, true, Some(&wrong)), Outcome::Failed);
        assert_eq!(classify(&wrong, false, None), Outcome::Failed);
        assert_eq!(classify(&RunResult::Hang, true, None), Outcome::Failed);
        assert_eq!(classify(&RunResult::Down, false, None), Outcome::Failed);
        assert_eq!(classify(&right, false, None).name(), "not-manifested");
    }

    fn record(fault: &str, workload: &str, outcome: Outcome) -> Record {
        Record {
            seed: 1,
            index: "0".into(),
            fault: fault.into(),
            workload: workload.into(),
            points: "instruction".into(),
            point: "shell+0x10".into(),
            landed: "task:shell".into(),
            landed_in: "shell:shell::run".into(),
            target: "rax".into(),
            address: "0x1 bit 3".into(),
            outcome,
            detail: "a, b".into(),
        }
    }

    #[test]
    fn csv_and_summary() {
        let records = [
            record("register-bit", "heap", Outcome::Recovered),
            record("register-bit", "heap", Outcome::Failed),
            record("memory-word", "swap", Outcome::NotManifested),
            record("memory-word", "swap", Outcome::NotActivated),
        ];
        assert_eq!(
            records[0].csv_line(),
            "1,0,register-bit,heap,instruction,shell+0x10,task:shell,shell:shell::run,rax,0x1 bit 3,recovered,a; b"
        );
        assert_eq!(records[0].csv_line().split(',').count(), CSV_HEADER.split(',').count());
        let text = summary("campaign", &records);
        let row = |name: &str| {
            text.lines()
                .find(|line| line.starts_with(name))
                .map(|line| line.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        };
        assert_eq!(row("register-bit"), "2 0 0 2 1 1 50.0%");
        assert_eq!(row("memory-word"), "2 1 1 0 0 0 -");
        assert_eq!(row("task-code "), "4 1 1 2 1 1 50.0%");
        assert_eq!(row("shell "), "4 1 1 2 1 1 50.0%");
        assert!(text.lines().filter(|line| line.starts_with("all ")).count() == 4);
    }
}
