//! The paper's IPC comparison: 13 hand-placed faults in the channel send and receive paths, as named cases.
//!
//! `channel`'s `Sender::send` and `Receiver::receive` are generic, so their code lives in the cell that
//! instantiates them; the cases use `ping_pong`'s `u64` instances (their workload, `ipc-ping-pong`, runs
//! `ping_pong 8 32`, each round a restartable task, as the channels workload does) and the wait-queue wake-ups in the
//! `sync` cell they call. Each case puts a breakpoint on an instruction of one of
//! these functions (found by name in `sections CELL` and by decoding the function's bytes), runs the channels
//! workload, and on the first hit applies its fault once, then classifies the injection like the random campaign.
//! A case whose breakpoint is never reached is reported as not manifested, with that detail.

use super::guest::{Guest, Injector};
use super::inject::{SectionRange, locate};
use super::report::{Outcome, Record};
use super::workload::Workload;
use super::{Campaign, CampaignConfig, latest_fault};
use crate::gdb_remote::{GdbError, GdbRemote, GdbResult, RFLAGS, RIP, RSP};
use iced_x86::{Decoder, DecoderOptions, Instruction, MemorySize, Mnemonic, OpKind, Register};

/// Where in the function the breakpoint goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Its first instruction.
    Entry,
    /// Its first `cmp` or `test`.
    FirstCompare,
    /// The instruction after its first `cmp` or `test` (the conditional jump that uses the flags).
    AfterFirstCompare,
    /// Its first spin-lock release: a `mov byte ptr [reg], 0` with a base register other than RSP (a
    /// `spin::Mutex`), or a `mov qword ptr [reg], 0` right after a `cmp` and a `jne` (an `owned_spin` guard's drop:
    /// the holder compared with its own token, then cleared; the channels' and wait queues' locks since session 11).
    LockRelease,
    /// Its first direct call to the function of `sync` whose section name contains this text.
    CallTo(&'static str),
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

const SEND: &str = "6SenderyE4send";
const RECEIVE: &str = "8ReceiveryE7receive";
const NOTIFY_ONE: &str = "9WaitQueue10notify_one";
const NOTIFY_ALL: &str = "9WaitQueue10notify_all";
const RAX: usize = 0;
const RSI: usize = 4;
const RDI: usize = 5;
const ZERO_FLAG: u32 = 6;

const fn case(name: &'static str, cell: &'static str, function: &'static str, point: Point, action: Action) -> Case {
    Case { name, cell, function, point, action }
}

/// The 13 cases: 7 on the send path, 6 on the receive path.
pub const CASES: [Case; 13] = [
    case("send-corrupt-self-pointer", "ping_pong", SEND, Point::Entry, Action::FlipRegister(RDI, 45)),
    case("send-flip-value", "ping_pong", SEND, Point::Entry, Action::FlipRegister(RSI, 0)),
    case("send-corrupt-shared-pointer", "ping_pong", SEND, Point::Entry, Action::CorruptPointee(RDI, 0, 1 << 44)),
    case("send-corrupt-return-address", "ping_pong", SEND, Point::Entry, Action::CorruptPointee(RSP, 0, 1 << 40)),
    case("send-skip-lock-release", "ping_pong", SEND, Point::LockRelease, Action::Skip),
    case("send-skip-wakeup", "ping_pong", SEND, Point::CallTo(NOTIFY_ONE), Action::Skip),
    case("send-corrupt-waiter-queue", "sync", NOTIFY_ONE, Point::Entry, Action::CorruptPointee(RDI, 0, 1 << 44)),
    case("recv-corrupt-self-pointer", "ping_pong", RECEIVE, Point::Entry, Action::FlipRegister(RDI, 45)),
    case("recv-flip-length", "ping_pong", RECEIVE, Point::FirstCompare, Action::FlipRegister(RAX, 0)),
    case(
        "recv-flip-empty-branch",
        "ping_pong",
        RECEIVE,
        Point::AfterFirstCompare,
        Action::FlipRegister(RFLAGS, ZERO_FLAG),
    ),
    case("recv-corrupt-return-address", "ping_pong", RECEIVE, Point::Entry, Action::CorruptPointee(RSP, 0, 1 << 40)),
    case("recv-skip-lock-release", "ping_pong", RECEIVE, Point::LockRelease, Action::Skip),
    case("recv-skip-wakeup", "ping_pong", RECEIVE, Point::CallTo(NOTIFY_ALL), Action::Skip),
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

/// The address of `point` in the function whose bytes are `code` at `start`; `call_target` is the address of
/// the function a [`Point::CallTo`] looks for.
pub fn point_address(code: &[u8], start: u64, point: Point, call_target: Option<u64>) -> Option<u64> {
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let instructions: Vec<Instruction> = decoder.iter().take_while(|instruction| !instruction.is_invalid()).collect();
    let is_compare = |instruction: &Instruction| matches!(instruction.mnemonic(), Mnemonic::Cmp | Mnemonic::Test);
    let found = match point {
        Point::Entry => instructions.first(),
        Point::FirstCompare => instructions.iter().find(|instruction| is_compare(instruction)),
        Point::AfterFirstCompare => {
            let at = instructions.iter().position(is_compare)?;
            instructions.get(at + 1)
        }
        Point::LockRelease => instructions.iter().enumerate().find_map(|(index, instruction)| {
            let zero_store = instruction.mnemonic() == Mnemonic::Mov
                && instruction.op0_kind() == OpKind::Memory
                && instruction.memory_base() != Register::RSP;
            let byte = instruction.memory_size() == MemorySize::UInt8
                && instruction.op1_kind() == OpKind::Immediate8
                && instruction.immediate8() == 0;
            let owned = instruction.memory_size() == MemorySize::UInt64
                && instruction.op1_kind() == OpKind::Immediate32to64
                && instruction.immediate32to64() == 0
                && index >= 2
                && instructions[index - 1].mnemonic() == Mnemonic::Jne
                && instructions[index - 2].mnemonic() == Mnemonic::Cmp;
            (zero_store && (byte || owned)).then_some(instruction)
        }),
        Point::CallTo(_) => instructions.iter().find(|instruction| {
            instruction.mnemonic() == Mnemonic::Call && Some(instruction.near_branch_target()) == call_target
        }),
    };
    found.map(Instruction::ip)
}

/// `length` bytes at `address`, read in chunks the stub's packet size allows.
pub(super) fn read_code(gdb: &mut GdbRemote, address: u64, length: usize) -> GdbResult<Vec<u8>> {
    let mut code = Vec::with_capacity(length);
    while code.len() < length {
        let chunk = (length - code.len()).min(512);
        code.extend(gdb.read_memory(address + code.len() as u64, chunk)?);
    }
    Ok(code)
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
    }
}

/// Runs one case on `guest`; returns its record and whether the guest can be reused.
///
/// # Errors
/// The case cannot be set up (function or instruction not found, the stub fails before the injection).
fn run_case(campaign: &Campaign, guest: &mut Guest, case: &Case) -> Result<(Record, bool), String> {
    let timeout = campaign.command_timeout(Workload::IpcPingPong);
    let mut record = Record {
        seed: campaign.config.seed,
        index: case.name.into(),
        fault: format!("{:?}", case.action),
        workload: Workload::IpcPingPong.name().into(),
        points: "case".into(),
        point: String::new(),
        landed: String::new(),
        landed_in: String::new(),
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
        let call_target = match case.point {
            Point::CallTo(callee) => {
                let listing = guest.command("sections sync", timeout).map_err(|f| f.to_string())?;
                Some(find_function(&listing, callee).ok_or_else(|| format!("no function matching {callee} in sync"))?.0)
            }
            _ => None,
        };
        let gdb = &mut guest.gdb;
        gdb.interrupt().map_err(|e| e.to_string())?;
        let code = read_code(gdb, start, size.min(8192));
        let code = match code {
            Ok(code) => code,
            Err(error) => {
                gdb.resume().map_err(|e| e.to_string())?;
                return Err(error.to_string());
            }
        };
        let Some(address) = point_address(&code, start, case.point, call_target) else {
            gdb.resume().map_err(|e| e.to_string())?;
            return Err(format!("no {:?} instruction in the function", case.point));
        };
        gdb.breakpoint(address, true).map_err(|e| e.to_string())?;
        gdb.resume().map_err(|e| e.to_string())?;
        Ok((address, last_fault))
    })();
    let (address, last_fault) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return Err(format!("IPC case {}: cannot be set up: {error}", case.name)),
    };
    record.address = format!("{address:#x} ({})", locate(&guest.ranges, address));
    let landing = super::points::landing(address, false, &guest.ranges, &guest.known_functions(), &campaign.nano);
    (record.point, record.landed, record.landed_in) = (record.address.clone(), landing.category, landing.place);
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
    let mut run = guest.run_workload(Workload::IpcPingPong, timeout, Some(injector));
    let reached = run.injected.is_some();
    if !reached && run.stuck.is_none() {
        let removed =
            guest.gdb.interrupt().and_then(|_| guest.gdb.breakpoint(address, false)).and_then(|()| guest.gdb.resume());
        if let Err(error) = removed {
            run.injected = Some(Err(error));
        }
    }
    let (outcome, detail) = campaign.classify_run(guest, Workload::IpcPingPong, &run, mark, last_fault);
    record.outcome = outcome;
    let injected = match &run.injected {
        Some(Ok(detail)) => detail.clone(),
        Some(Err(error)) => error.to_string(),
        None => "breakpoint not reached".into(),
    };
    record.detail = format!("{injected}; {detail}");
    // As in the random campaign: a manifested fault (recovered or failed) ends the boot.
    let reusable = outcome == Outcome::NotManifested && guest.healthy(campaign.command_timeout(Workload::Shell));
    Ok((record, reusable))
}

/// Runs the 13 cases; writes `ipc.csv` and `ipc-summary.txt`, prints one line per case and the count recovered.
///
/// # Errors
/// The output cannot be written, no guest boots, or a case cannot be set up (a harness or image problem, not a
/// classification).
pub fn run_cases(config: CampaignConfig) -> Result<Vec<Record>, String> {
    std::fs::create_dir_all(&config.out).map_err(|e| format!("{}: {e}", config.out.display()))?;
    let mut campaign = Campaign::new(config)?;
    campaign.workloads = vec![Workload::IpcPingPong];
    let mut guest: Option<Guest> = None;
    let mut records = Vec::new();
    for case in &CASES {
        if guest.is_none() {
            guest = Some(super::boot_with_retry(&mut campaign)?);
        }
        let (record, reusable) = run_case(&campaign, guest.as_mut().expect("booted above"), case)?;
        println!(
            "ipc case {:<28} {:<14} {}",
            case.name,
            record.outcome.name(),
            record.detail.chars().take(120).collect::<String>()
        );
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
        // push rbp; cmp rdi, 0; je +0; mov byte [rsp], 0; mov byte [rbx], 0; call +0x10; ret
        let code = [
            0x55, 0x48, 0x83, 0xff, 0x00, 0x74, 0x00, 0xc6, 0x04, 0x24, 0x00, 0xc6, 0x03, 0x00, 0xe8, 0x10, 0, 0, 0,
            0xc3,
        ];
        let at = |point| point_address(&code, 0x1000, point, Some(0x1013 + 0x10));
        assert_eq!(at(Point::Entry), Some(0x1000));
        assert_eq!(at(Point::FirstCompare), Some(0x1001));
        assert_eq!(at(Point::AfterFirstCompare), Some(0x1005));
        assert_eq!(at(Point::LockRelease), Some(0x100b));
        assert_eq!(at(Point::CallTo("x")), Some(0x100e));
        assert_eq!(point_address(&code, 0x1000, Point::CallTo("x"), Some(0x2000)), None);
        // mov qword [rax+0x40], 0 (a field cleared: no compare before); cmp rcx, rdx; jne +8;
        // mov qword [rax+0x40], 0 (an owned_spin release); ret
        let owned = [
            0x48, 0xc7, 0x40, 0x40, 0, 0, 0, 0, 0x48, 0x39, 0xd1, 0x75, 0x08, 0x48, 0xc7, 0x40, 0x40, 0, 0, 0, 0, 0xc3,
        ];
        assert_eq!(point_address(&owned, 0x1000, Point::LockRelease, None), Some(0x100d));
    }

    #[test]
    fn functions_by_name() {
        let listing = "section ping_pong Text 0xffffffff900f9000 529 .text._RNvX_7channelINtB5_6SenderyE4sendCs\n\
                       section ping_pong GccExceptTable 0xffffffff90103000 64 .gcc_except_table.x\n";
        assert_eq!(find_function(listing, SEND), Some((0xffffffff900f9000, 529)));
        assert_eq!(find_function(listing, RECEIVE), None);
    }
}
