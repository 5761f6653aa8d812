//! The first cell: nano_core loads it by name from its object file and calls [`init`].
//!
//! Everything the captain uses is loaded on demand: its reference to `shell::run` makes the loader find the `shell`
//! cell in the manifest and load it (and, recursively, what the shell needs) before `captain` itself is published.
//!
//! Control flow of [`init`]:
//! 1. report that the system above nano_core is running from loaded cells;
//! 2. interrupts (IDT, APICs, the timer on every CPU), interrupt-driven serial input, the other CPUs (parked idle
//!    entering the scheduler), tasking (the boot thread becomes the `shell` task), the receiver of pushed cells;
//! 3. run the serial shell, which never returns.
#![no_std]

/// Entry point called by nano_core once the kernel namespace exists. Never returns.
#[inline(never)]
pub fn init() -> ! {
    log::info!("captain: running from a loaded cell");
    // ---- begin: interrupts, APIC, SMP bring-up (cells cpu, acpi_tables, interrupts, apic, smp, serial_input) ----
    bring_up_interrupts_and_cpus();
    // ---- end: interrupts, APIC, SMP bring-up ----
    log::info!("captain: starting the serial shell");
    shell::run()
}

/// Interrupts, timers, serial input and the other CPUs. A failure is logged and the system goes on without that
/// part (with interrupts left disabled if the bootstrap CPU's own set-up failed).
fn bring_up_interrupts_and_cpus() {
    let info = match smp::init_bootstrap_cpu() {
        Ok(info) => info,
        Err(error) => {
            log::error!("captain: interrupt set-up failed: {error:?}; continuing without interrupts");
            return;
        }
    };
    if let Err(error) = serial_input::init() {
        log::error!("captain: interrupt-driven serial input unavailable ({error:?}); input stays polled");
    }
    // ---- begin: tasking (scheduler hooks; the boot thread becomes task "shell"; APs enter the scheduler) ----
    if let Err(error) = tasking::init("shell") {
        log::error!("captain: tasking failed to start: {error:?}");
    }
    // ---- end: tasking ----
    x86_64::instructions::interrupts::enable();
    let started = smp::start_application_processors(tasking::application_processor_entry).unwrap_or_else(|error| {
        log::error!("captain: starting the other CPUs failed: {error:?}");
        0
    });
    log::info!(
        "smp: {} CPUs online ({} listed by the MADT, {started} started); timer {} Hz on every CPU, LAPIC timer {} kHz (divide 16) calibrated against the TSC",
        cpu::count(),
        info.cpus_listed,
        apic::TICK_HZ,
        info.apic.timer_counts_per_second / 1000
    );
    smp::log_timer_check(100);
    smp::log_stop_the_world_check();
    push_receiver::start(); // COM2: objects pushed from the host (`make push`), if QEMU has a second serial port
}
