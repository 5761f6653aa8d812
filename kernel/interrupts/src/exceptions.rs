//! Exception entry stubs, the dispatcher, the report, and the task-fault hook.

use core::sync::atomic::{AtomicPtr, Ordering};
use x86_64::VirtAddr;
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::InterruptDescriptorTable;

/// General-purpose registers at the moment of the exception, as saved by the entry stub (in this memory order).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs, reason = "the fields are the registers they are named after")]
pub struct SavedRegisters {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
}

/// What the CPU pushed on exception entry (SDM Vol. 3A 6.14.1, Figure 6-9): where execution was interrupted.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InterruptedFrame {
    /// RIP of the faulting instruction (faults) or of the next one (traps).
    pub instruction_pointer: u64,
    /// CS at the exception.
    pub code_segment: u64,
    /// RFLAGS at the exception.
    pub cpu_flags: u64,
    /// RSP at the exception.
    pub stack_pointer: u64,
    /// SS at the exception.
    pub stack_segment: u64,
}

/// The stack as the entry stub leaves it for [`dispatch`]. Layout shared with `exception_common`'s pushes.
#[repr(C)]
struct EntryFrame {
    registers: SavedRegisters,
    vector: u64,
    error_code: u64,
    interrupted: InterruptedFrame,
}

/// Everything known about one exception; `Copy`, so a hook can keep it after leaving the exception stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceptionInfo {
    /// The vector, 0-31 (SDM Vol. 3A 6.3, Table 6-1).
    pub vector: u8,
    /// Its mnemonic and name, e.g. `"#PF page fault"`.
    pub name: &'static str,
    /// The error code, for the vectors that push one.
    pub error_code: Option<u64>,
    /// CR2, the faulting linear address, for #PF.
    pub faulting_address: Option<u64>,
    /// Where execution was interrupted.
    pub frame: InterruptedFrame,
    /// The general-purpose registers at the exception.
    pub registers: SavedRegisters,
    /// The CPU that took the exception.
    pub cpu: cpu::CpuId,
    /// Whether a hardware interrupt was in service (the exception is in its handler, which ran on the interrupted
    /// task's stack). The dispatcher has then sent the handler's end-of-interrupt: the handler is abandoned.
    pub in_interrupt_handler: bool,
    /// Whether the exception struck while an exception handler was running on this CPU (the interrupted stack
    /// pointer lies on one of its IST stacks): that handler (the report, or the task layer's handling of an
    /// earlier exception) is abandoned; the hook must not unwind from this frame.
    pub in_exception_handler: bool,
}

/// The task layer's exception handler: called on the exception's stack (the IST stack for #PF), with interrupts
/// disabled, for exceptions raised in task context. It must not return: it ends or unwinds the task and switches
/// away. The next #PF on this CPU reuses the IST stack, so copy the [`ExceptionInfo`] before switching.
pub type ExceptionHook = fn(&ExceptionInfo) -> !;

/// The installed [`ExceptionHook`] (null: none). Replaceable at run time (the scheduler installs one, the unwinder
/// later replaces it), hence an atomic pointer rather than a lock: the dispatcher must never wait.
static EXCEPTION_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
/// Answers "is a hardware interrupt being serviced on this CPU?" (the `apic` cell installs one reading its ISR).
static IN_SERVICE_PROBE: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
/// Sends the end-of-interrupt of an abandoned handler (the `apic` cell installs its `end_of_interrupt`).
static END_OF_INTERRUPT: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// What the NMI hook decided about one NMI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NmiVerdict {
    /// A watchdog heartbeat with nothing to do: return to the interrupted code at once, without a report.
    Ignore,
    /// The CPU was stuck (no timer tick for the watchdog's threshold): report, and hand the interrupted task to the
    /// task layer as if it had faulted at the interrupted instruction.
    Stalled,
}

/// Decides what an NMI means (the NMI watchdog in `apic` installs one). Runs in the NMI handler: lock-free.
pub type NmiHook = fn(&ExceptionInfo) -> NmiVerdict;

/// The installed [`NmiHook`] (null: none; every NMI then stops the machine, as an unexpected hardware NMI).
static NMI_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs (or replaces) the hook that decides what an NMI means.
pub fn set_nmi_hook(hook: NmiHook) {
    NMI_HOOK.store(hook as *mut (), Ordering::Release);
}

fn nmi_hook() -> Option<NmiHook> {
    let pointer = NMI_HOOK.load(Ordering::Acquire);
    // SAFETY: non-null values come only from `set_nmi_hook`, which stores an `NmiHook`.
    (!pointer.is_null()).then(|| unsafe { core::mem::transmute::<*mut (), NmiHook>(pointer) })
}

/// Repairs what made a CPU stall, if it can, for an NMI the NMI hook judged a stall: returns whether it repaired
/// something, in which case the interrupted code is resumed instead of failed (e.g. a spin on a lock left taken by
/// a holder that is gone). Called on the NMI's stack with interrupts disabled; must not wait.
pub type StallRepairHook = fn(&ExceptionInfo) -> bool;

static STALL_REPAIR_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs (or replaces) the hook that may repair a stalled CPU's cause (see [`StallRepairHook`]).
pub fn set_stall_repair_hook(hook: StallRepairHook) {
    STALL_REPAIR_HOOK.store(hook as *mut (), Ordering::Release);
}

fn stall_repair_hook() -> Option<StallRepairHook> {
    let pointer = STALL_REPAIR_HOOK.load(Ordering::Acquire);
    // SAFETY: non-null values come only from `set_stall_repair_hook`, which stores a `StallRepairHook`.
    (!pointer.is_null()).then(|| unsafe { core::mem::transmute::<*mut (), StallRepairHook>(pointer) })
}

/// Installs (or replaces) the hook that handles exceptions raised in task context.
pub fn set_exception_hook(hook: ExceptionHook) {
    EXCEPTION_HOOK.store(hook as *mut (), Ordering::Release);
}

/// Removes the exception hook: every exception stops the machine again.
pub fn clear_exception_hook() {
    EXCEPTION_HOOK.store(core::ptr::null_mut(), Ordering::Release);
}

/// Installs the probe that tells whether the calling CPU is servicing a hardware interrupt (an exception then is not
/// a task's fault).
pub fn set_interrupt_in_service_probe(probe: fn() -> bool) {
    IN_SERVICE_PROBE.store(probe as *mut (), Ordering::Release);
}

/// Installs the function that sends the calling CPU's end-of-interrupt, for an exception in an interrupt handler:
/// the handler is abandoned, so its own EOI never comes (without one, the APIC would block that vector and every
/// lower-priority one on this CPU for good). Without it such an exception stops the machine.
pub fn set_end_of_interrupt(end_of_interrupt: fn()) {
    END_OF_INTERRUPT.store(end_of_interrupt as *mut (), Ordering::Release);
}

fn end_of_interrupt_hook() -> Option<fn()> {
    let pointer = END_OF_INTERRUPT.load(Ordering::Acquire);
    // SAFETY: non-null values come only from `set_end_of_interrupt`, which stores a `fn()`.
    (!pointer.is_null()).then(|| unsafe { core::mem::transmute::<*mut (), fn()>(pointer) })
}

fn exception_hook() -> Option<ExceptionHook> {
    let pointer = EXCEPTION_HOOK.load(Ordering::Acquire);
    // SAFETY: non-null values come only from `set_exception_hook`, which stores an `ExceptionHook` (function and
    // data pointers have the same size and representation on x86_64).
    (!pointer.is_null()).then(|| unsafe { core::mem::transmute::<*mut (), ExceptionHook>(pointer) })
}

fn interrupt_in_service() -> bool {
    let pointer = IN_SERVICE_PROBE.load(Ordering::Acquire);
    if pointer.is_null() {
        return false;
    }
    // SAFETY: non-null values come only from `set_interrupt_in_service_probe`, which stores a `fn() -> bool`.
    let probe = unsafe { core::mem::transmute::<*mut (), fn() -> bool>(pointer) };
    probe()
}

/// The mnemonic and name of exception `vector` (SDM Vol. 3A 6.3, Table 6-1).
pub fn exception_name(vector: u8) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range exceeded",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack-segment fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating point",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating point",
        20 => "#VE virtualization",
        21 => "#CP control protection",
        28 => "#HV hypervisor injection",
        29 => "#VC VMM communication",
        30 => "#SX security",
        _ => "reserved exception",
    }
}

/// The common part of every stub: save the general registers, call [`dispatch`] with a pointer to the
/// [`EntryFrame`], restore, drop vector and error code, return from the exception. On entry the stack holds the
/// vector, the error code and the CPU's frame; RSP is 16-byte aligned (the CPU aligns it, SDM Vol. 3A 6.14.2, and
/// the stub's two pushes plus 15 registers keep it so), as the call needs.
#[unsafe(naked)]
extern "C" fn exception_common() {
    core::arch::naked_asm!(
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        "mov rdi, rsp",
        "cld",
        "call {dispatch}",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
        "add rsp, 16",
        "iretq",
        dispatch = sym dispatch,
    )
}

macro_rules! stub {
    ($name:ident, $vector:literal) => {
        /// Entry stub for an exception without an error code: pushes 0 in its place.
        #[unsafe(naked)]
        extern "C" fn $name() {
            core::arch::naked_asm!("push 0", "push {vector}", "jmp {common}", vector = const $vector,
                common = sym exception_common)
        }
    };
    ($name:ident, $vector:literal, error_code) => {
        /// Entry stub for an exception whose error code the CPU pushed.
        #[unsafe(naked)]
        extern "C" fn $name() {
            core::arch::naked_asm!("push {vector}", "jmp {common}", vector = const $vector,
                common = sym exception_common)
        }
    };
}

stub!(divide_error, 0);
stub!(debug, 1);
stub!(non_maskable_interrupt, 2);
stub!(breakpoint, 3);
stub!(overflow, 4);
stub!(bound_range_exceeded, 5);
stub!(invalid_opcode, 6);
stub!(device_not_available, 7);
stub!(double_fault, 8, error_code);
stub!(invalid_tss, 10, error_code);
stub!(segment_not_present, 11, error_code);
stub!(stack_segment_fault, 12, error_code);
stub!(general_protection_fault, 13, error_code);
stub!(page_fault, 14, error_code);
stub!(x87_floating_point, 16);
stub!(alignment_check, 17, error_code);
stub!(machine_check, 18);
stub!(simd_floating_point, 19);
stub!(virtualization, 20);
stub!(control_protection, 21, error_code);
stub!(hypervisor_injection, 28);
stub!(vmm_communication, 29, error_code);
stub!(security, 30, error_code);

/// Vectors whose stub receives an error code from the CPU (SDM Vol. 3A 6.15).
fn pushes_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// Points the exception entries of `table` at the stubs, with IST stacks for #DF, #PF and NMI.
pub(crate) fn install(table: &mut InterruptDescriptorTable) {
    let address = |stub: extern "C" fn()| VirtAddr::new(stub as usize as u64);
    // SAFETY: each stub is a valid exception entry for its vector (it accounts for whether the CPU pushes an error
    // code and returns with `iretq`); the IST slots are the ones `cpu::init_current` fills in every CPU's TSS.
    unsafe {
        table.divide_error.set_handler_addr(address(divide_error));
        table.debug.set_handler_addr(address(debug));
        table
            .non_maskable_interrupt
            .set_handler_addr(address(non_maskable_interrupt))
            .set_stack_index(cpu::NMI_IST_INDEX);
        table.breakpoint.set_handler_addr(address(breakpoint));
        table.overflow.set_handler_addr(address(overflow));
        table.bound_range_exceeded.set_handler_addr(address(bound_range_exceeded));
        table.invalid_opcode.set_handler_addr(address(invalid_opcode));
        table.device_not_available.set_handler_addr(address(device_not_available));
        table.double_fault.set_handler_addr(address(double_fault)).set_stack_index(cpu::DOUBLE_FAULT_IST_INDEX);
        table.invalid_tss.set_handler_addr(address(invalid_tss));
        table.segment_not_present.set_handler_addr(address(segment_not_present));
        table.stack_segment_fault.set_handler_addr(address(stack_segment_fault));
        table.general_protection_fault.set_handler_addr(address(general_protection_fault));
        table.page_fault.set_handler_addr(address(page_fault)).set_stack_index(cpu::PAGE_FAULT_IST_INDEX);
        table.x87_floating_point.set_handler_addr(address(x87_floating_point));
        table.alignment_check.set_handler_addr(address(alignment_check));
        table.machine_check.set_handler_addr(address(machine_check));
        table.simd_floating_point.set_handler_addr(address(simd_floating_point));
        table.virtualization.set_handler_addr(address(virtualization));
        table.cp_protection_exception.set_handler_addr(address(control_protection));
        table.hv_injection_exception.set_handler_addr(address(hypervisor_injection));
        table.vmm_communication_exception.set_handler_addr(address(vmm_communication));
        table.security_exception.set_handler_addr(address(security));
    }
}

/// Why the dispatcher does not hand an exception to the task layer, printed before it stops the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    /// An exception while handling another one: the first handler's state (its IST stack) is in use.
    Nested,
    /// NMI (other than the watchdog's) or #MC: the CPU state or memory is not trustworthy. (A #DF is handed to
    /// the task layer, which accepts only one caused by a task's bad stack pointer.)
    Unrecoverable,
    /// A hardware interrupt is in service and no end-of-interrupt function is installed to abandon its handler.
    InInterruptHandler,
    /// No task layer is installed yet (boot).
    NoTaskLayer,
}

impl RefusalReason {
    /// The report's wording: why continuing is not attempted.
    pub fn describe(self) -> &'static str {
        match self {
            RefusalReason::Nested => {
                "exception inside an exception handler: recovery refused, its stack and state are in use"
            }
            RefusalReason::Unrecoverable => {
                "unrecoverable exception: recovery refused, an NMI or machine check leaves no state to trust"
            }
            RefusalReason::InInterruptHandler => {
                "not in task context: recovery refused, a hardware interrupt handler was running and its \
                 end-of-interrupt cannot be sent"
            }
            RefusalReason::NoTaskLayer => "not in task context: recovery refused, no task layer is installed",
        }
    }
}

/// Called by `exception_common` with the saved state. Reports, then hands a task's fault to the hook or stops.
/// Everything here runs without locks or heap ([`report`]), so a fault while COM1's, the heap's or a namespace's
/// lock is held still ends in a complete report.
extern "C" fn dispatch(entry: &mut EntryFrame) {
    let vector = entry.vector as u8;
    let info = ExceptionInfo {
        vector,
        name: exception_name(vector),
        error_code: pushes_error_code(vector).then_some(entry.error_code),
        faulting_address: (vector == 14).then(Cr2::read_raw),
        frame: entry.interrupted,
        registers: entry.registers,
        cpu: cpu::current_id(),
        in_interrupt_handler: false,
        in_exception_handler: cpu::on_exception_stack(entry.interrupted.stack_pointer as usize),
    };
    let nested = info.in_exception_handler;
    let stall = vector == 2 && nmi_hook().is_some();
    if stall && (nested || nmi_hook().is_some_and(|hook| hook(&info) == NmiVerdict::Ignore)) {
        // A heartbeat, or a stall inside an exception handler (whose stack is in use): back to it at once.
        return;
    }
    // An exception inside the previous report on this CPU (its cell lookup read damaged namespace data): report
    // this one without the lookup, or the same fault recurs until the stack overflows.
    let reporting = REPORTING.get(info.cpu.index());
    let inside_report = reporting.is_some_and(|flag| flag.swap(true, Ordering::AcqRel));
    report(&info, !inside_report);
    if let Some(flag) = reporting {
        flag.store(false, Ordering::Release);
    }
    if stall {
        serial::raw::RawWriter::write_bytes(
            b"NMI watchdog: this CPU took no timer tick for the watchdog's threshold (stuck with interrupts off)\n",
        );
        if !nested && stall_repair_hook().is_some_and(|repair| repair(&info)) {
            serial::raw::RawWriter::write_bytes(
                b"NMI watchdog: the stall's cause was repaired; resuming the interrupted code\n",
            );
            return;
        }
    }
    match recovery_path(vector, nested, stall) {
        Ok(RecoveryPath { hook, end_of_interrupt: in_handler }) => {
            if let Some(end_of_interrupt) = in_handler {
                // The handler is abandoned: its EOI is sent now, so the vector is not blocked for good.
                end_of_interrupt();
                serial::raw::RawWriter::write_bytes(
                    b"fault landed in: an interrupt handler; handler abandoned (end-of-interrupt sent)\n",
                );
            }
            if nested {
                serial::raw::RawWriter::write_bytes(
                    b"fault landed in: an exception handler; handler abandoned, the task is ended without unwinding\n",
                );
            }
            serial::raw::RawWriter::write_bytes(b"handing the fault to the task layer\n");
            hook(&ExceptionInfo { in_interrupt_handler: in_handler.is_some(), ..info })
        }
        Err(reason) => {
            serial::raw::write_fmt(format_args!("stopping ({})\n", reason.describe()));
            power::exit(power::ExitCode::Failure)
        }
    }
}

/// Where [`dispatch`] hands an exception it does not refuse.
struct RecoveryPath {
    /// The task layer's hook.
    hook: ExceptionHook,
    /// For an exception in a hardware interrupt's handler: the end-of-interrupt to send first.
    end_of_interrupt: Option<fn()>,
}

/// The task layer's hook if the exception (`vector`, `nested` inside another handler, `stall`: an NMI the NMI
/// hook judged a stuck CPU) may be handed to it, with the end-of-interrupt function to call first if it struck in
/// a hardware interrupt's handler.
///
/// An exception inside an exception handler (`nested`) is handed over too, flagged
/// ([`ExceptionInfo::in_exception_handler`]), unless its vector is the first handler's own IST vector class that
/// leaves nothing to trust (#DF, #MC, an NMI): the abandoned handler is never resumed, and the hook ends the task
/// without unwinding (no frame of it is walked), so that handler's half-written stack is never read. A #PF inside
/// a #PF handler restarts at the top of the same IST stack, over the abandoned handler's frames: harmless, as
/// they are never returned to.
fn recovery_path(vector: u8, nested: bool, stall: bool) -> Result<RecoveryPath, RefusalReason> {
    if matches!(vector, 2 | 18) && !stall {
        return Err(if nested { RefusalReason::Nested } else { RefusalReason::Unrecoverable });
    }
    // A #DF is handed over only outside any exception handler: the task layer ends the task if its stack pointer
    // was outside its stack (the exception before could not be pushed), and stops the CPU otherwise.
    if vector == 8 && nested {
        return Err(RefusalReason::Nested);
    }
    let hook = exception_hook().ok_or(RefusalReason::NoTaskLayer)?;
    if interrupt_in_service() {
        let end_of_interrupt = end_of_interrupt_hook().ok_or(RefusalReason::InInterruptHandler)?;
        return Ok(RecoveryPath { hook, end_of_interrupt: Some(end_of_interrupt) });
    }
    Ok(RecoveryPath { hook, end_of_interrupt: None })
}

/// Per CPU: a report is being printed (set around [`report`] in [`dispatch`]).
static REPORTING: [core::sync::atomic::AtomicBool; cpu::MAX_CPUS] =
    [const { core::sync::atomic::AtomicBool::new(false) }; cpu::MAX_CPUS];

/// Prints the report of one exception on COM1 without taking any lock or allocating: the polled [`serial::raw`]
/// writer, formatting straight to the port, and (if `look_up_cell`) a cell lookup that gives up at once if a
/// namespace is busy.
fn report(info: &ExceptionInfo, look_up_cell: bool) {
    use serial::raw::write_fmt as out;
    let frame = &info.frame;
    out(format_args!("\nCPU EXCEPTION {} (vector {}) on {}", info.name, info.vector, info.cpu));
    if let Some(code) = info.error_code {
        out(format_args!(", error code {code:#x}"));
    }
    out(format_args!(
        "\n  RIP {:#018x}  CS {:#x}  RFLAGS {:#x}\n  RSP {:#018x}  SS {:#x}\n",
        frame.instruction_pointer, frame.code_segment, frame.cpu_flags, frame.stack_pointer, frame.stack_segment
    ));
    if let Some(address) = info.faulting_address {
        out(format_args!("  CR2 {address:#018x}\n"));
    }
    let r = &info.registers;
    out(format_args!(
        "  RAX {:#018x} RBX {:#018x} RCX {:#018x} RDX {:#018x}\n  RSI {:#018x} RDI {:#018x} RBP {:#018x} R8  {:#018x}\n  R9  {:#018x} R10 {:#018x} R11 {:#018x} R12 {:#018x}\n  R13 {:#018x} R14 {:#018x} R15 {:#018x}\n",
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15
    ));
    if serial::is_locked() {
        out(format_args!("  (COM1's lock is held: this report is written without it)\n"));
    }
    if !look_up_cell {
        out(format_args!("  cell lookup skipped: this exception struck inside the previous report\n"));
        return;
    }
    match system_namespaces::try_cell_containing_on_cpu(info.cpu.index(), frame.instruction_pointer) {
        Ok(Some(name)) => out(format_args!("  in cell {}\n", name.as_str())),
        Ok(None) => out(format_args!("  in cell: unknown (nano_core or not loaded)\n")),
        Err(cell_namespace::NamespaceBusy) if system_namespaces::lookups_distrusted() => {
            out(format_args!("  cell lookup skipped: an earlier lookup faulted (the cell tables are damaged)\n"))
        }
        Err(cell_namespace::NamespaceBusy) => out(format_args!("  cell lookup skipped: namespace busy\n")),
    }
}
