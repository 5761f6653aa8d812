//! The real-mode trampoline that takes an application processor from its start-up IPI to 64-bit kernel code.
//!
//! A CPU woken by a SIPI with vector `V` starts in real mode with CS = `V << 8`, IP = 0, i.e. at physical
//! `V * 4096` (Intel SDM Vol. 3A 8.4.4.1). The code below is copied to such a page below 1 MiB. It is position
//! independent: real mode addresses the page through DS = CS, 32- and 64-bit code through EBX/RBX = the page's
//! physical address. What depends on the page's address (the GDT pointer, the far-jump targets) and the
//! per-CPU values (stack, argument) are written by [`write`] into the parameter block at
//! [`PARAMS_OFFSET`] of the page.
//!
//! Steps (SDM Vol. 3A 9.9.1 "Switching to Protected Mode" and 9.8.5 "Initializing IA-32e Mode"):
//! 1. real mode: DS = CS, EBX = CS * 16; load the trampoline GDT; set CR0.PE; far jump to 32-bit code (selector 0x08);
//! 2. protected mode: flat data segments (0x10); CR4.PAE; CR3 = the kernel PML4 (below 4 GiB); IA32_EFER.LME and NXE
//!    (the kernel's page tables use the XD bit); CR0.PG and WP; far jump to 64-bit code (selector 0x18). The
//!    instruction after `mov %eax, %cr0` is fetched through the page's identity mapping;
//! 3. long mode: RSP = the CPU's stack, RDI = the argument, jump to the kernel entry (which loads the CPU's own GDT).

use memory_structs::PhysicalAddress;

/// Offset of the parameter block inside the trampoline page; the code must end before it.
pub(crate) const PARAMS_OFFSET: usize = 0xF00;
/// Parameter block layout (offsets from [`PARAMS_OFFSET`]).
const GDT_POINTER: usize = 0x00; // u16 limit, u32 base (the 6-byte operand of `lgdtl`)
const FAR_32: usize = 0x08; // u32 offset, u16 selector (m16:32 operand of `ljmpl *`)
const FAR_64: usize = 0x10; // u32 offset, u16 selector
const PAGE_TABLE: usize = 0x18; // u32 CR3
const STACK_TOP: usize = 0x20; // u64
const ENTRY: usize = 0x28; // u64
const ARGUMENT: usize = 0x30; // u64
const GDT: usize = 0x40; // 4 descriptors

/// Trampoline GDT (SDM Vol. 3A 3.4.5): null; 0x08 32-bit code; 0x10 flat data; 0x18 64-bit code (L bit).
const GDT_ENTRIES: [u64; 4] = [0, 0x00CF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF, 0x00AF_9A00_0000_FFFF];
const CODE_32_SELECTOR: u16 = 0x08;
const CODE_64_SELECTOR: u16 = 0x18;

core::arch::global_asm!(
    ".section .text.smp_trampoline, \"ax\"",
    ".global smp_trampoline_start",
    ".global smp_trampoline_protected_mode",
    ".global smp_trampoline_long_mode",
    ".global smp_trampoline_end",
    ".code16",
    "smp_trampoline_start:",
    "    cli",
    "    cld",
    "    movw %cs, %ax",
    "    movw %ax, %ds",
    "    xorl %ebx, %ebx",
    "    movw %ax, %bx",
    "    shll $4, %ebx",
    "    lgdtl {gdt_pointer}",
    "    movl %cr0, %eax",
    "    orl $1, %eax",
    "    movl %eax, %cr0",
    "    ljmpl *{far_32}",
    ".code32",
    "smp_trampoline_protected_mode:",
    "    movw $0x10, %ax",
    "    movw %ax, %ds",
    "    movw %ax, %es",
    "    movw %ax, %ss",
    "    movl %cr4, %eax",
    "    orl $(1 << 5), %eax",
    "    movl %eax, %cr4",
    "    movl {page_table}(%ebx), %eax",
    "    movl %eax, %cr3",
    "    movl $0xC0000080, %ecx",
    "    rdmsr",
    "    orl $((1 << 8) | (1 << 11)), %eax",
    "    wrmsr",
    "    movl %cr0, %eax",
    "    orl $((1 << 31) | (1 << 16)), %eax",
    "    movl %eax, %cr0",
    "    ljmpl *{far_64}(%ebx)",
    ".code64",
    "smp_trampoline_long_mode:",
    "    movl %ebx, %ebx",
    "    movq {stack_top}(%rbx), %rsp",
    "    movq {argument}(%rbx), %rdi",
    "    movq {entry}(%rbx), %rax",
    "    xorl %ebp, %ebp",
    "    pushq $0",
    "    jmpq *%rax",
    "smp_trampoline_end:",
    ".text",
    gdt_pointer = const PARAMS_OFFSET + GDT_POINTER,
    far_32 = const PARAMS_OFFSET + FAR_32,
    far_64 = const PARAMS_OFFSET + FAR_64,
    page_table = const PARAMS_OFFSET + PAGE_TABLE,
    stack_top = const PARAMS_OFFSET + STACK_TOP,
    argument = const PARAMS_OFFSET + ARGUMENT,
    entry = const PARAMS_OFFSET + ENTRY,
    options(att_syntax)
);

unsafe extern "C" {
    static smp_trampoline_start: u8;
    static smp_trampoline_protected_mode: u8;
    static smp_trampoline_long_mode: u8;
    static smp_trampoline_end: u8;
}

/// The trampoline's code bytes and the offsets of its 32- and 64-bit parts.
struct Code {
    bytes: &'static [u8],
    protected_mode_offset: usize,
    long_mode_offset: usize,
}

fn code() -> Code {
    let start = &raw const smp_trampoline_start as usize;
    let end = &raw const smp_trampoline_end as usize;
    // SAFETY: the four labels delimit the trampoline's code inside this cell's text section (global_asm above),
    // which is mapped readable for the cell's lifetime; `end >= start` because the assembler emits them in order.
    let bytes = unsafe { core::slice::from_raw_parts(start as *const u8, end - start) };
    Code {
        bytes,
        protected_mode_offset: &raw const smp_trampoline_protected_mode as usize - start,
        long_mode_offset: &raw const smp_trampoline_long_mode as usize - start,
    }
}

/// The code does not fit below the parameter block (bytes of code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrampolineTooLarge(pub usize);

/// What one application processor needs from the trampoline.
pub(crate) struct Parameters {
    /// The kernel PML4's physical address (must be below 4 GiB: CR3 is loaded in 32-bit mode).
    pub page_table: u32,
    /// The top of the CPU's stack (16-byte aligned).
    pub stack_top: u64,
    /// The 64-bit entry, `extern "C" fn(u64) -> !`.
    pub entry: u64,
    /// Its argument.
    pub argument: u64,
}

/// Writes the trampoline for a page at physical `page` into `image` (that page's bytes): code at offset 0,
/// `parameters` and the address-dependent values at [`PARAMS_OFFSET`].
///
/// # Errors
/// [`TrampolineTooLarge`] if the code overlaps the parameter block (nothing is written then).
pub(crate) fn write(
    image: &mut [u8; 4096],
    page: PhysicalAddress,
    parameters: &Parameters,
) -> Result<(), TrampolineTooLarge> {
    let code = code();
    if code.bytes.len() > PARAMS_OFFSET {
        return Err(TrampolineTooLarge(code.bytes.len()));
    }
    let base = page.value() as u32;
    image.fill(0);
    image[..code.bytes.len()].copy_from_slice(code.bytes);
    let mut put = |offset: usize, bytes: &[u8]| {
        image[PARAMS_OFFSET + offset..PARAMS_OFFSET + offset + bytes.len()].copy_from_slice(bytes)
    };
    put(GDT_POINTER, &((GDT_ENTRIES.len() * 8 - 1) as u16).to_le_bytes());
    put(GDT_POINTER + 2, &(base + (PARAMS_OFFSET + GDT) as u32).to_le_bytes());
    put(FAR_32, &(base + code.protected_mode_offset as u32).to_le_bytes());
    put(FAR_32 + 4, &CODE_32_SELECTOR.to_le_bytes());
    put(FAR_64, &(base + code.long_mode_offset as u32).to_le_bytes());
    put(FAR_64 + 4, &CODE_64_SELECTOR.to_le_bytes());
    put(PAGE_TABLE, &parameters.page_table.to_le_bytes());
    put(STACK_TOP, &parameters.stack_top.to_le_bytes());
    put(ENTRY, &parameters.entry.to_le_bytes());
    put(ARGUMENT, &parameters.argument.to_le_bytes());
    for (index, descriptor) in GDT_ENTRIES.iter().enumerate() {
        put(GDT + index * 8, &descriptor.to_le_bytes());
    }
    Ok(())
}
