//! The first cell: nano_core loads it by name from its object file and calls [`init`].
//!
//! Everything the captain uses is loaded on demand: its reference to `shell::run` makes the loader find the `shell`
//! cell in the manifest and load it (and, recursively, what the shell needs) before `captain` itself is published.
//!
//! Control flow of [`init`]:
//! 1. report that the system above nano_core is running from loaded cells;
//! 2. interrupts (IDT, APICs, the timer on every CPU), interrupt-driven serial input, the other CPUs (parked idle
//!    entering the scheduler), tasking (the boot thread becomes the `captain` task), with `selfcheck` on the kernel
//!    command line the timer and stop-the-world checks, the receiver of pushed cells;
//! 3. the screen console (VGA text mode, mirroring the kernel log from step 1 until its shell starts) with the PS/2
//!    keyboard, and a restartable shell task on it;
//! 4. the serial shell as a restartable task `shell`; the boot thread then sleeps for good.
#![no_std]

/// Entry point called by nano_core once the kernel namespace exists. Never returns.
#[inline(never)]
pub fn init() -> ! {
    start_screen_log();
    log::info!("captain: running from a loaded cell");
    // ---- begin: interrupts, APIC, SMP bring-up (cells cpu, acpi_tables, interrupts, apic, smp, serial_input) ----
    bring_up_interrupts_and_cpus();
    // ---- end: interrupts, APIC, SMP bring-up ----
    start_screen_shell();
    log::info!("captain: starting the serial shell");
    start_serial_shell()
}

/// How many times a shell task is restarted after failing (a fault in a command it runs in its own task, a kill)
/// before it stays down. A shell that keeps faulting in one cell also triggers fault recovery's reload of that cell.
const SHELL_RESTART_LIMIT: usize = 100;

/// Runs the serial shell as a restartable task `shell` (a fresh session after each failure, like a respawned
/// getty), then parks the boot thread (task `captain`) for good. Without tasking, the boot thread runs the shell
/// itself.
fn start_serial_shell() -> ! {
    let spawned = spawn::TaskBuilder::new("shell").spawn_restartable(SHELL_RESTART_LIMIT, || -> () { shell::run() });
    if let Err(error) = spawned {
        log::error!("captain: cannot start the serial shell as a task ({error:?}); running it on the boot thread");
        shell::run()
    }
    loop {
        scheduler::sleep(core::time::Duration::from_secs(3600));
    }
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
    // ---- begin: tasking (scheduler hooks; the boot thread becomes task "captain"; APs enter the scheduler) ----
    if let Err(error) = tasking::init("captain") {
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
    // The boot-time self-checks cost about 130 ms: only with `selfcheck` on the kernel command line (`make test`
    // builds its ISO with it; the smp scenarios check their lines).
    if self_checks_requested() {
        smp::log_timer_check(100);
        smp::log_stop_the_world_check();
    }
    push_receiver::start(); // COM2: objects pushed from the host (`make push`), if QEMU has a second serial port
}

/// Whether the kernel command line holds the word `selfcheck`.
fn self_checks_requested() -> bool {
    boot_info::global().is_some_and(|info| info.command_line().split_whitespace().any(|word| word == "selfcheck"))
}

/// Maps the VGA text buffer and mirrors the kernel log there until the screen shell starts.
fn start_screen_log() {
    match screen_console::init() {
        Ok(()) => logger::set_mirror(Some(screen_console::write_fmt)),
        Err(error) => log::warn!("captain: no screen console: {error:?}"),
    }
}

/// Sets up the PS/2 keyboard and spawns the shell task of the screen console (task `screen shell`).
fn start_screen_shell() {
    if !screen_console::is_ready() {
        return;
    }
    let set_wake_hook: Option<shell::SetWakeHook> = match ps2_keyboard::init() {
        Ok(()) => {
            log::info!("captain: PS/2 keyboard: scancode set {:?}", ps2_keyboard::scancode_set());
            Some(ps2_keyboard::set_wake_hook)
        }
        Err(error) => {
            log::warn!("captain: no PS/2 keyboard ({error:?}); the screen shell gets no input");
            None
        }
    };
    let console = shell::Console {
        try_read_byte: ps2_keyboard::try_read_byte,
        write_bytes: screen_console::write_bytes,
        set_wake_hook,
    };
    let spawned = spawn::TaskBuilder::new("screen shell").spawn_restartable(SHELL_RESTART_LIMIT, move || -> () {
        logger::set_mirror(None);
        shell::run_on(console)
    });
    if let Err(error) = spawned {
        log::error!("captain: cannot start the screen shell: {error:?}");
    }
}
