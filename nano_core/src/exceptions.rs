//! Early exception handlers: any CPU exception prints a report and stops the machine.
//!
//! The report names the vector, the error code (for vectors that push one), RIP, CR2 (for page faults) and, once
//! the kernel namespace exists, the cell whose section contains RIP. A double fault runs on its own IST stack so a
//! kernel stack overflow still gets a report. The tasking layer replaces this IDT with one that unwinds the faulting
//! task instead (issue 4).

use spin::Once;
use x86_64::VirtAddr;
use x86_64::registers::control::Cr2;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};
use x86_64::structures::tss::TaskStateSegment;

/// Size of the double-fault IST stack in bytes.
const DOUBLE_FAULT_STACK_SIZE: usize = 16 * 1024;
/// IST slot (0-based index into the TSS's interrupt stack table) used by the double-fault handler.
const DOUBLE_FAULT_IST_INDEX: u16 = 0;

struct Tables {
    gdt: GlobalDescriptorTable,
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static mut DOUBLE_FAULT_STACK: [u8; DOUBLE_FAULT_STACK_SIZE] = [0; DOUBLE_FAULT_STACK_SIZE];
static TSS: Once<TaskStateSegment> = Once::new();
static TABLES: Once<Tables> = Once::new();
static IDT: Once<InterruptDescriptorTable> = Once::new();

/// Loads a GDT with a TSS (for the double-fault stack) and the early IDT.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let stack_start = VirtAddr::from_ptr(&raw const DOUBLE_FAULT_STACK);
        tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] = stack_start + DOUBLE_FAULT_STACK_SIZE as u64;
        tss
    });
    let tables = TABLES.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        Tables { gdt, code, data, tss }
    });
    tables.gdt.load();
    // SAFETY: the selectors come from the GDT just loaded, which lives in a static for the rest of the kernel's life;
    // the code and data descriptors are the flat 64-bit kernel segments the boot code also used.
    unsafe {
        use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
        CS::set_reg(tables.code);
        DS::set_reg(tables.data);
        ES::set_reg(tables.data);
        SS::set_reg(tables.data);
        x86_64::instructions::tables::load_tss(tables.tss);
    }
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        idt.divide_error.set_handler_fn(divide_error);
        idt.debug.set_handler_fn(debug);
        idt.non_maskable_interrupt.set_handler_fn(non_maskable_interrupt);
        idt.breakpoint.set_handler_fn(breakpoint);
        idt.overflow.set_handler_fn(overflow);
        idt.bound_range_exceeded.set_handler_fn(bound_range_exceeded);
        idt.invalid_opcode.set_handler_fn(invalid_opcode);
        idt.device_not_available.set_handler_fn(device_not_available);
        // SAFETY: the IST index names the stack installed in the TSS above, used by no other handler.
        unsafe {
            idt.double_fault.set_handler_fn(double_fault).set_stack_index(DOUBLE_FAULT_IST_INDEX);
        }
        idt.invalid_tss.set_handler_fn(invalid_tss);
        idt.segment_not_present.set_handler_fn(segment_not_present);
        idt.stack_segment_fault.set_handler_fn(stack_segment_fault);
        idt.general_protection_fault.set_handler_fn(general_protection_fault);
        idt.page_fault.set_handler_fn(page_fault);
        idt.x87_floating_point.set_handler_fn(x87_floating_point);
        idt.alignment_check.set_handler_fn(alignment_check);
        idt.simd_floating_point.set_handler_fn(simd_floating_point);
        idt
    });
    idt.load();
}

/// Prints the report for one exception and stops the machine (QEMU exits with failure; real hardware halts).
fn report(name: &str, vector: u8, error_code: Option<u64>, frame: &InterruptStackFrame) -> ! {
    let rip = frame.instruction_pointer.as_u64();
    serial::write_fmt(format_args!("\nCPU EXCEPTION {name} (vector {vector})"));
    if let Some(code) = error_code {
        serial::write_fmt(format_args!(", error code {code:#x}"));
    }
    serial::write_fmt(format_args!(
        "\n  RIP {rip:#018x}  CS {:#x}  RFLAGS {:#x}\n  RSP {:#018x}  SS {:#x}\n",
        frame.code_segment.0,
        frame.cpu_flags.bits(),
        frame.stack_pointer.as_u64(),
        frame.stack_segment.0
    ));
    if vector == 14 {
        match Cr2::read() {
            Ok(address) => serial::write_fmt(format_args!("  CR2 {:#018x}\n", address.as_u64())),
            Err(error) => serial::write_fmt(format_args!("  CR2 non-canonical ({:#x})\n", error.0)),
        }
    }
    match system_namespaces::cell_containing(rip) {
        Some(name) => serial::write_fmt(format_args!("  in cell {}\n", name.as_str())),
        None => serial::write_str("  in cell: unknown (nano_core or not loaded)\n"),
    }
    serial::write_str("stopping\n");
    power::exit(power::ExitCode::Failure)
}

macro_rules! handler {
    ($function:ident, $name:literal, $vector:literal) => {
        extern "x86-interrupt" fn $function(frame: InterruptStackFrame) {
            report($name, $vector, None, &frame)
        }
    };
    ($function:ident, $name:literal, $vector:literal, error_code) => {
        extern "x86-interrupt" fn $function(frame: InterruptStackFrame, error_code: u64) {
            report($name, $vector, Some(error_code), &frame)
        }
    };
}

handler!(divide_error, "#DE divide error", 0);
handler!(debug, "#DB debug", 1);
handler!(non_maskable_interrupt, "NMI", 2);
handler!(breakpoint, "#BP breakpoint", 3);
handler!(overflow, "#OF overflow", 4);
handler!(bound_range_exceeded, "#BR bound range exceeded", 5);
handler!(invalid_opcode, "#UD invalid opcode", 6);
handler!(device_not_available, "#NM device not available", 7);
handler!(invalid_tss, "#TS invalid TSS", 10, error_code);
handler!(segment_not_present, "#NP segment not present", 11, error_code);
handler!(stack_segment_fault, "#SS stack-segment fault", 12, error_code);
handler!(general_protection_fault, "#GP general protection", 13, error_code);
handler!(x87_floating_point, "#MF x87 floating point", 16);
handler!(alignment_check, "#AC alignment check", 17, error_code);
handler!(simd_floating_point, "#XM SIMD floating point", 19);

extern "x86-interrupt" fn double_fault(frame: InterruptStackFrame, error_code: u64) -> ! {
    report("#DF double fault", 8, Some(error_code), &frame)
}

extern "x86-interrupt" fn page_fault(frame: InterruptStackFrame, error_code: PageFaultErrorCode) {
    report("#PF page fault", 14, Some(error_code.bits()), &frame)
}
