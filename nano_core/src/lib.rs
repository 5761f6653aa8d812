//! nano_core: the statically linked base image, the only part of the system not loaded at run time.
//!
//! It holds what must exist before the first cell can be loaded: the Multiboot2 header and 32->64-bit boot code
//! (`boot.s`), the serial logger, early exception handlers, the memory system (frames, pages, page tables, heap),
//! and the cell loader with the kernel `CellNamespace`. Every crate nano_core links is kept whole in the image
//! (`--whole-archive`, no section garbage collection), so loaded cells bind to these single copies of `core`,
//! `alloc`, `log`, `spin` and the rest, statics included.
//!
//! Control flow of [`rust_main`]:
//! 1. serial console, TSC calibration, logger;
//! 2. early IDT: any CPU exception prints a report and stops the machine;
//! 3. boot information, memory (frame and page allocators, our own page tables, heap);
//! 4. the kernel and application namespaces from the boot modules, cell manifest and base symbol file;
//! 5. load the `captain` cell by name and call its entry; it never returns.
#![no_std]
#![feature(abi_x86_interrupt)]
#![feature(lang_items)]
#![allow(internal_features, reason = "the eh_personality lang item is required for panic=unwind without std")]

mod exceptions;
mod runtime;

core::arch::global_asm!(include_str!("boot.s"), options(att_syntax));

/// The value GRUB leaves in EAX for a Multiboot2 boot (Multiboot2 spec, 3.3).
const MULTIBOOT2_BOOTLOADER_MAGIC: u32 = 0x36d7_6289;

/// The Rust entry point, called by `boot.s` in 64-bit mode on the initial kernel stack.
///
/// `magic` is the bootloader's EAX and `boot_info_physical_address` its EBX.
#[unsafe(no_mangle)]
pub extern "C" fn rust_main(magic: u32, boot_info_physical_address: u32) -> ! {
    serial::init();
    let tsc_result = tsc::calibrate();
    logger::init(log::LevelFilter::Info);
    log::info!("nano_core: booting");
    match tsc_result {
        Ok(hz) => log::info!("TSC frequency {} MHz", hz / 1_000_000),
        Err(error) => log::warn!("TSC calibration failed ({error:?}); timestamps read 0"),
    }
    exceptions::init();
    if magic != MULTIBOOT2_BOOTLOADER_MAGIC {
        log::error!("not booted by a Multiboot2 loader (magic {magic:#x}); stopping");
        power::exit(power::ExitCode::Failure);
    }
    log::info!("boot information at physical {boot_info_physical_address:#x}");
    power::exit(power::ExitCode::Success)
}
