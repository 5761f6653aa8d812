//! The paper's IPC comparison: 13 hand-placed faults in the channel send and receive paths, as named cases.
//!
//! `channel`'s `Sender::send` and `Receiver::receive` are generic, so their code lives in the cell that
//! instantiates them; the cases use `test_channels`' `u64` instances (the channels workload runs that cell) and
//! the wait-queue wake-ups in the `sync` cell they call. Each case puts a breakpoint on an instruction of one of
//! these functions (found by name in `sections CELL` and by decoding the function's bytes), runs the channels
//! workload, and on the first hit applies its fault once, then classifies the injection like the random campaign.
//! A case whose breakpoint is never reached is reported as not manifested, with that detail.

use super::guest::{Guest, Injector};
use super::inject::{SectionRange, locate};
use super::report::{Outcome, Record};
use super::workload::Workload;
use super::{Campaign, CampaignConfig, latest_fault};
use crate::gdb_remote::{GdbError, GdbRemote, GdbResult, RFLAGS, RIP, RSP};
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic};

/// Where in the function the breakpoint goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Its first instruction.
    Entry,
    /// Its first `call`.
    FirstCall,
    /// Its last `call`.
    LastCall,
    /// Its first `cmp` or `test`.
    FirstCompare,
}

/// What the case does at the breakpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Flip one bit of a register.
    FlipRegister(usize, u32),
    /// Skip the instruction at the breakpoint.
    Skip,
    /// XOR `mask` into the word at register + offset.
    CorruptPointee(usize, u64, u64),
    /// Return at once (at the entry: pop the return address into RIP).
    ReturnEarly,
}

/// One named case.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Its name.
    pub name: &'static str,
    /// The cell holding the function.
    pub cell: &'static str,
    /// A substring of the function's section name (mangled).
    pub function: &'static str,
    /// Where the breakpoint goes.
    pub point: Point,
    /// What it does there.
    pub action: Action,
}

const SEND: &str = "6SendermE4send";
const RECEIVE: &str = "8ReceivermE7receive";
const NOTIFY_ONE: &str = "9WaitQueue10notify_one";
const NOTIFY_ALL: &str = "9WaitQueue10notify_all";
const RDI: usize = 5;
const RSI: usize = 4;

/// The 13 cases: 7 on the send path, 6 on the receive path.
pub const CASES: [Case; 13] = [
    Case { name: "send-corrupt-self-pointer", cell: "test_channels", function: SEND, point: Point::Entry, action: Action::FlipRegister(RDI, 45) },
    Case { name: "send-flip-value", cell: "test_channels", function: SEND, point: Point::Entry, action: Action::FlipRegister(RSI, 0) },
    Case { name: "send-corrupt-shared-pointer", cell: "test_channels", function: SEND, point: Point::Entry, action: Action::CorruptPointee(RDI, 0, 1 << 44) },
    Case { name: "send-corrupt-return-address", cell: "test_channels", function: SEND, point: Point::Entry, action: Action::CorruptPointee(RSP, 0, 1 << 40) },
    Case { name: "send-skip-first-call", cell: "test_channels", function: SEND, point: Point::FirstCall, action: Action::Skip },
    Case { name: "send-skip-last-call", cell: "test_channels", function: SEND, point: Point::LastCall, action: Action::Skip },
    Case { name: "send-corrupt-waiter-pointer", cell: "sync", function: NOTIFY_ONE, point: Point::Entry, action: Action::CorruptPointee(RDI, 0, 1 << 44) },
    Case { name: "recv-corrupt-self-pointer", cell: "test_channels", function: RECEIVE, point: Point::Entry, action: Action::FlipRegister(RDI, 45) },
    Case { name: "recv-flip-empty-check", cell: "test_channels", function: RECEIVE, point: Point::FirstCompare, action: Action::FlipRegister(RFLAGS, 6) },
    Case { name: "recv-corrupt-shared-pointer", cell: "test_channels", function: RECEIVE, point: Point::Entry, action: Action::CorruptPointee(RDI, 0, 1 << 44) },
    Case { name: "recv-corrupt-return-address", cell: "test_channels", function: RECEIVE, point: Point::Entry, action: Action::CorruptPointee(RSP, 0, 1 << 40) },
    Case { name: "recv-skip-lock-release", cell: "test_channels", function: RECEIVE, point: Point::LastCall, action: Action::Skip },
    Case { name: "recv-skip-wakeup", cell: "sync", function: NOTIFY_ALL, point: Point::Entry, action: Action::ReturnEarly },
];

/// (start, size) of the first section of `output` (`sections CELL`) whose name contains `function`.
pub fn find_function(output: &str, function: &str) -> Option<(u64, usize)> {
    output.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [_, _, "Text", start, size, name] = words.as_slice() else { return None };
        if !name.contains(function) {
            return None;
        }
        Some((u64::from_str_radix(start.strip_prefix("0x")?, 16).ok()?, size.parse().ok()?))
    })
}

/// The address of `point` in the function whose bytes are `code` at `start`.
pub fn point_address(code: &[u8], start: u64, point: Point) -> Option<u64> {
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let instructions: Vec<Instruction> = decoder.iter().take_while(|instruction| !instruction.is_invalid()).collect();
    let is_call = |instruction: &&Instruction| instruction.mnemonic() == Mnemonic::Call;
    let found = match point {
        Point::Entry => instructions.first(),
        Point::FirstCall => instructions.iter().find(is_call),
        Point::LastCall => instructions.iter().rev().find(is_call),
        Point::FirstCompare => {
            instructions.iter().find(|instruction| matches!(instruction.mnemonic(), Mnemonic::Cmp | Mnemonic::Test))
        }
    };
    found.map(Instruction::ip)
}

fn apply(gdb: &mut GdbRemote, action: Action) -> GdbResult<String> {
    match action {
        Action::FlipRegister(register, bit) => {
            let (value, width) = gdb.read_register(register)?;
            gdb.write_register(register, value ^ (1 << bit), width)?;
            Ok(format!("{} {value:#x} -> {:#x}", crate::gdb_remote::REGISTER_NAMES[register], value ^ (1 << bit)))
        }
        Action::Skip => {
            let (rip, width) = gdb.read_register(RIP)?;
            let bytes = gdb.read_memory(rip, 15)?;
            let length = super::inject::instruction_length(&bytes, rip)
                .ok_or_else(|| GdbError(format!("no instruction at {rip:#x}")))?;
            gdb.write_register(RIP, rip + length as u64, width)?;
            Ok(format!("skipped {length} bytes at {rip:#x}"))
        }
        Action::CorruptPointee(register, offset, mask) => {
            let (base, _) = gdb.read_register(register)?;
            let word = super::inject::corrupt_word(gdb, base + offset, mask)?;
            Ok(format!("word at {:#x} {word:#x} -> {:#x}", base + offset, word ^ mask))
        }
        Action::ReturnEarly => {
            let (rsp, width) = gdb.read_register(RSP)?;
            let bytes = gdb.read_memory(rsp, 8)?;
            let return_address = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
            gdb.write_register(RIP, return_address, width)?;
            gdb.write_register(RSP, rsp + 8, width)?;
            Ok(format!("returned early to {return_address:#x}"))
        }
    }
}

/// Runs one case on `guest`; returns its record and whether the guest can be reused.
fn run_case(campaign: &Campaign, guest: &mut Guest, case: &Case) -> (Record, bool) {
    let timeout = campaign.command_timeout(Workload::Channels);
    let mut record = Record {
        seed: campaign.config.seed,
        index: case.name.into(),
        fault: format!("{:?}", case.action),
        workload: Workload::Channels.name().into(),
        target: format!("{}:{}", case.cell, case.function),
        address: String::new(),
        outcome: Outcome::Failed,
        detail: String::new(),
    };
    guest.note(&format!("IPC case {}", case.name));
    let prepared = (|| -> Result<(u64, u64), String> {
        let last_fault = latest_fault(guest, timeout).map_err(|f| f.to_string())?;
        let listing = guest.command(&format!("sections {}", case.cell), timeout).map_err(|f| f.to_string())?;
        let (start, size) = find_function(&listing, case.function)
            .ok_or_else(|| format!("no function matching {} in {}", case.function, case.cell))?;
        let gdb = &mut guest.gdb;
        gdb.interrupt().map_err(|e| e.to_string())?;
        let code = gdb.read_memory(start, size.min(4096)).map_err(|e| e.to_string())?;
        let address = point_address(&code, start, case.point).ok_or("the instruction was not found")?;
        gdb.breakpoint(address, true).map_err(|e| e.to_string())?;
        gdb.resume().map_err(|e| e.to_string())?;
        Ok((address, last_fault))
    })();
    let (address, last_fault) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            record.detail = format!("the case could not be set up: {error}");
            return (record, false);
        }
    };
    record.address = format!("{address:#x} ({})", locate(&guest.ranges, address));
    let action = case.action;
    let mut injector = |gdb: &mut GdbRemote, _: &[SectionRange]| -> Option<Result<String, GdbError>> {
        match gdb.poll_stop(std::time::Duration::from_millis(5)) {
            Ok(None) => None,
            Ok(Some(stop)) => Some((|| {
                if let Some(thread) = stop.split(';').find_map(|part| part.split_once("thread:")).map(|(_, id)| id) {
                    gdb.select_thread(thread)?;
                }
                gdb.breakpoint(address, false)?;
                let detail = apply(gdb, action)?;
                gdb.resume()?;
                Ok(detail)
            })()),
            Err(error) => Some(Err(error)),
        }
    };
    let injector: &mut Injector<'_> = &mut injector;
    let mark = guest.mark();
    let mut run = guest.run_workload(Workload::Channels, timeout, Some(injector));
    let reached = run.injected.is_some();
    if !reached && run.stuck.is_none() {
        let removed = guest.gdb.interrupt().and_then(|_| guest.gdb.breakpoint(address, false)).and_then(|()| guest.gdb.resume());
        if let Err(error) = removed {
            run.injected = Some(Err(error));
        }
    }
    let (outcome, detail) = campaign.classify_run(guest, Workload::Channels, &run, mark, last_fault);
    record.outcome = outcome;
    let injected = match &run.injected {
        Some(Ok(detail)) => detail.clone(),
        Some(Err(error)) => error.to_string(),
        None => "breakpoint not reached".into(),
    };
    record.detail = format!("{injected}; {detail}");
    let reusable = outcome != Outcome::Failed && guest.healthy(campaign.command_timeout(Workload::Shell));
    (record, reusable)
}

/// Runs the 13 cases; writes `ipc.csv` and `ipc-summary.txt`, prints one line per case and the count recovered.
///
/// # Errors
/// The output cannot be written, or no guest boots.
pub fn run_cases(config: CampaignConfig) -> Result<Vec<Record>, String> {
    std::fs::create_dir_all(&config.out).map_err(|e| format!("{}: {e}", config.out.display()))?;
    let mut campaign = Campaign::new(config);
    let mut guest: Option<Guest> = None;
    let mut records = Vec::new();
    for case in &CASES {
        if guest.is_none() {
            guest = Some(super::boot_with_retry(&mut campaign)?);
        }
        let (record, reusable) = run_case(&campaign, guest.as_mut().expect("booted above"), case);
        println!("ipc case {:<28} {:<14} {}", case.name, record.outcome.name(), record.detail.chars().take(120).collect::<String>());
        records.push(record);
        if !reusable {
            guest = None;
        }
    }
    let mut csv = format!("{}\n", super::report::CSV_HEADER);
    for record in &records {
        csv += &format!("{}\n", record.csv_line());
    }
    let path = campaign.config.out.join("ipc.csv");
    std::fs::write(&path, csv).map_err(|e| format!("{}: {e}", path.display()))?;
    let recovered = records.iter().filter(|record| record.outcome == Outcome::Recovered).count();
    let manifested = records.iter().filter(|record| record.outcome != Outcome::NotManifested).count();
    let text = format!(
        "IPC cases: {recovered} of {} recovered ({manifested} manifested, {} failed); Theseus: 11 of 13, MINIX 3: 0\n",
        records.len(),
        records.iter().filter(|record| record.outcome == Outcome::Failed).count()
    );
    print!("{text}");
    let path = campaign.config.out.join("ipc-summary.txt");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_in_a_function() {
        // push rbp; cmp rdi, 0; call +0; test eax, eax; call +0; ret
        let code = [0x55, 0x48, 0x83, 0xff, 0x00, 0xe8, 0, 0, 0, 0, 0x85, 0xc0, 0xe8, 0, 0, 0, 0, 0xc3];
        assert_eq!(point_address(&code, 0x1000, Point::Entry), Some(0x1000));
        assert_eq!(point_address(&code, 0x1000, Point::FirstCompare), Some(0x1001));
        assert_eq!(point_address(&code, 0x1000, Point::FirstCall), Some(0x1005));
        assert_eq!(point_address(&code, 0x1000, Point::LastCall), Some(0x100c));
    }

    #[test]
    fn functions_by_name() {
        let listing = "section test_channels Text 0xffffffff900f9000 529 .text._RNvX_7channelINtB5_6SendermE4sendCs\n\
                       section test_channels GccExceptTable 0xffffffff90103000 64 .gcc_except_table.x\n";
        assert_eq!(find_function(listing, SEND), Some((0xffffffff900f9000, 529)));
        assert_eq!(find_function(listing, RECEIVE), None);
    }
}
