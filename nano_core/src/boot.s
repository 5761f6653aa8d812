/*
 * nano_core boot code: Multiboot2 header and the 32-bit -> 64-bit switch.
 *
 * GRUB enters `_start` in 32-bit protected mode, paging off, with EAX = 0x36d76289 and EBX = the physical address of
 * the Multiboot2 information (Multiboot2 spec, 3.3 "I386 machine state"). This code:
 *   1. builds boot page tables (2 MiB pages, Intel SDM Vol. 3A 4.5):
 *      - physical 0..1 GiB identity-mapped (PML4[0]), for the rest of this code;
 *      - physical 0..1 GiB at 0xFFFFFFFF80000000 (PML4[511], PDPT[510]), where the kernel is linked;
 *      - physical 0..4 GiB at 0xFFFF800000000000 (PML4[256]), the direct map the memory crate starts from;
 *   2. enables PAE, long mode and NXE (EFER), paging and write protection;
 *   3. loads a minimal 64-bit GDT and far-jumps to 64-bit code;
 *   4. switches to the kernel stack in the higher half and calls `rust_main(magic, info_physical_address)`.
 * The memory crate later replaces these tables with ones it owns and drops the identity map.
 */

.set MB2_MAGIC, 0xe85250d6
.set MB2_ARCH_I386, 0
.set PAGE_PRESENT_WRITABLE, 0x3
.set PAGE_HUGE_PRESENT_WRITABLE, 0x83

.section .multiboot2, "a"
.balign 8
mb2_header_start:
    .long MB2_MAGIC
    .long MB2_ARCH_I386
    .long mb2_header_end - mb2_header_start
    .long 0x100000000 - (MB2_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header_start))
    /* framebuffer tag (Multiboot2 spec 3.1.10): type 5, flags 1 (optional), size 20, width/height/depth 0 (no
     * preference). It tells GRUB the kernel can use a linear framebuffer; without it GRUB under UEFI (no VGA text)
     * passes no console at all. grub.cfg's `gfxpayload=keep` keeps GRUB's own mode: text under BIOS. */
    .balign 8
    .short 5
    .short 1
    .long 20
    .long 0
    .long 0
    .long 0
    /* end tag */
    .balign 8
    .short 0
    .short 0
    .long 8
mb2_header_end:

.section .boot.text, "ax"
.code32
.global _start
_start:
    cli
    cld
    movl $boot_stack_top, %esp
    movl %eax, %edi                 /* first argument of rust_main: the Multiboot2 magic */
    movl %ebx, %esi                 /* second argument: physical address of the boot information */

    /* PD0..PD3: 2048 entries of 2 MiB pages covering physical 0..4 GiB. */
    movl $boot_pd, %ebx
    xorl %ecx, %ecx
1:
    movl %ecx, %eax
    shll $21, %eax
    orl $PAGE_HUGE_PRESENT_WRITABLE, %eax
    movl %eax, (%ebx, %ecx, 8)
    movl %ecx, %eax
    shrl $11, %eax
    movl %eax, 4(%ebx, %ecx, 8)
    incl %ecx
    cmpl $2048, %ecx
    jne 1b

    /* Low PDPT: entry 0 -> PD0 (identity 0..1 GiB). */
    movl $boot_pd, %eax
    orl $PAGE_PRESENT_WRITABLE, %eax
    movl %eax, boot_pdpt_low
    /* High PDPT: entry 510 -> PD0 (0xFFFFFFFF80000000 -> physical 0). */
    movl %eax, boot_pdpt_high + 510 * 8
    /* Direct-map PDPT: entries 0..3 -> PD0..PD3. */
    movl %eax, boot_pdpt_direct
    addl $4096, %eax
    movl %eax, boot_pdpt_direct + 8
    addl $4096, %eax
    movl %eax, boot_pdpt_direct + 16
    addl $4096, %eax
    movl %eax, boot_pdpt_direct + 24

    /* PML4: 0 -> low, 256 -> direct map, 511 -> high. */
    movl $boot_pdpt_low, %eax
    orl $PAGE_PRESENT_WRITABLE, %eax
    movl %eax, boot_pml4
    movl $boot_pdpt_direct, %eax
    orl $PAGE_PRESENT_WRITABLE, %eax
    movl %eax, boot_pml4 + 256 * 8
    movl $boot_pdpt_high, %eax
    orl $PAGE_PRESENT_WRITABLE, %eax
    movl %eax, boot_pml4 + 511 * 8

    movl $boot_pml4, %eax
    movl %eax, %cr3

    /* CR4.PAE (bit 5). */
    movl %cr4, %eax
    orl $(1 << 5), %eax
    movl %eax, %cr4

    /* EFER (MSR 0xC0000080): LME (bit 8) and NXE (bit 11). */
    movl $0xC0000080, %ecx
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax
    wrmsr

    /* CR0: PG (bit 31), WP (bit 16), PE (bit 0). */
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax
    movl %eax, %cr0

    lgdt boot_gdt_pointer
    ljmp $0x08, $long_mode_start

.code64
long_mode_start:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $initial_kernel_stack_top, %rsp
    xorq %rbp, %rbp
    movabsq $rust_main, %rax
    call *%rax
2:
    cli
    hlt
    jmp 2b

.section .boot.rodata, "a"
.balign 8
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF        /* 0x08: 64-bit code, present, ring 0 */
    .quad 0x00CF92000000FFFF        /* 0x10: data, present, writable */
boot_gdt_end:
boot_gdt_pointer:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

.section .boot.bss, "aw", @nobits
.balign 4096
boot_pml4:
    .skip 4096
boot_pdpt_low:
    .skip 4096
boot_pdpt_high:
    .skip 4096
boot_pdpt_direct:
    .skip 4096
boot_pd:
    .skip 4096 * 4
boot_stack_bottom:
    .skip 4096
boot_stack_top:

.section .bss.initial_kernel_stack, "aw", @nobits
.balign 4096
.global initial_kernel_stack_bottom
initial_kernel_stack_bottom:
    .skip 512 * 1024
.global initial_kernel_stack_top
initial_kernel_stack_top:
