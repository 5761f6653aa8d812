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
//! 4. the unwinder: the base image's unwind info registered, the default end-of-unwind handler (report, stop);
//!    with kernel command-line word `unwind_self_test`, a panic is unwound and caught as a boot check;
//! 5. the kernel and application namespaces from the boot modules, cell manifest and base symbol file;
//! 6. load the `captain` cell by name and call its entry; it never returns.
#![no_std]
#![feature(abi_x86_interrupt)]
#![feature(alloc_error_handler)]
#![feature(lang_items)]
#![feature(panic_can_unwind)]
#![allow(internal_features, reason = "the eh_personality lang item is required for panic=unwind without std")]

extern crate alloc;

mod cell_memory;
mod cells;
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
    let boot_info = match load_boot_info(boot_info_physical_address) {
        Ok(boot_info) => boot_info,
        Err(error) => fail("reading the Multiboot2 information", &error),
    };
    log::info!(
        "boot information at physical {boot_info_physical_address:#x}: {} memory areas, {} modules, loader \"{}\", command line \"{}\"",
        boot_info.memory_areas().len(),
        boot_info.modules().len(),
        boot_info.bootloader_name(),
        boot_info.command_line()
    );
    log_firmware(boot_info);
    let memory_info = match memory::init(boot_info, memory::KernelImageBounds::from_linker_symbols()) {
        Ok(info) => info,
        Err(error) => fail("initializing memory", &error),
    };
    // A CPU spinning for an interrupt-safe lock has interrupts off: it must still acknowledge TLB-shootdown rounds
    // (which the lock's holder may be waiting for), so each spin turn services pending requests.
    irq_safe::set_spin_relax(memory::service_tlb_shootdown);
    log::info!(
        "memory: {} MiB usable, {} MiB free; kernel text {} KiB, rodata {} KiB, data {} KiB; heap {} MiB at {}",
        memory_info.usable_bytes >> 20,
        memory_info.free_bytes >> 20,
        memory_info.kernel_text_bytes >> 10,
        memory_info.kernel_rodata_bytes >> 10,
        memory_info.kernel_data_bytes >> 10,
        memory_info.heap_size_in_bytes >> 20,
        memory_info.heap_start
    );
    if boot_info.command_line().split_whitespace().any(|word| word == "memory_self_test") {
        match memory::self_test() {
            Ok(()) => log::info!("memory self test passed"),
            Err(error) => fail("the memory self test", &error),
        }
    }
    match runtime::init_unwinding() {
        Ok(fdes) => log::info!("unwinder: base image registered ({fdes} FDEs)"),
        Err(error) => log::error!("unwinder: base image not registered: {error}; panics will stop the machine"),
    }
    if boot_info.command_line().split_whitespace().any(|word| word == "unwind_self_test") {
        match unwind::self_test() {
            Ok(()) => log::info!("unwind self test passed"),
            Err(error) => fail("the unwind self test", &error),
        }
    }
    match cells::start_captain(boot_info) {
        Ok(never) => match never {},
        Err(error) => {
            log::error!("nano_core: failed starting the first cell: {error}; stopping");
            power::exit(power::ExitCode::Failure)
        }
    }
}

/// The boot information, converted once into our own types and kept for the kernel's lifetime.
static BOOT_INFO: spin::Once<boot_info::BootInfo> = spin::Once::new();

/// Converts the bootloader's Multiboot2 information into a [`boot_info::BootInfo`] kept in a static.
fn load_boot_info(physical_address: u32) -> Result<&'static boot_info::BootInfo, boot_info::BootInfoError> {
    /// Conversion scratch space: `BootInfo` is tens of KiB, too big for the boot stack.
    static SCRATCH: spin::Mutex<boot_info::BootInfo> = spin::Mutex::new(boot_info::BootInfo::new());
    let mut scratch = SCRATCH.lock();
    // SAFETY: `physical_address` is what GRUB passed in EBX for a Multiboot2 boot (the magic was checked), and the boot
    // page tables map physical 0..4 GiB at PHYSICAL_MEMORY_OFFSET, where GRUB places the information; nothing writes
    // it during the call.
    unsafe {
        scratch.load_from_physical(
            memory_structs::PhysicalAddress::new(physical_address as usize),
            memory::layout::PHYSICAL_MEMORY_OFFSET,
        )
    }?;
    let info = BOOT_INFO.call_once(|| scratch.clone());
    boot_info::install_global(info);
    Ok(info)
}

/// Logs the firmware type, the memory map's source and the RSDP found in the tags (before the heap exists: no
/// formatting into strings).
fn log_firmware(boot_info: &boot_info::BootInfo) {
    let (firmware, map) = (boot_info.firmware().name(), boot_info.memory_map_source().name());
    match boot_info.acpi_rsdp() {
        Ok(rsdp) => log::info!(
            "firmware: {firmware}; memory map from the {map} map tag; ACPI RSDP revision {} at {:#x} ({})",
            rsdp.revision,
            rsdp.address.value(),
            rsdp.source.description()
        ),
        Err(error) => {
            log::info!("firmware: {firmware}; memory map from the {map} map tag; no ACPI RSDP tag ({error:?})")
        }
    }
}

/// Reports a fatal boot error and stops the machine.
fn fail(what: &str, error: &dyn core::fmt::Debug) -> ! {
    log::error!("nano_core: failed {what}: {error:?}; stopping");
    power::exit(power::ExitCode::Failure)
}
