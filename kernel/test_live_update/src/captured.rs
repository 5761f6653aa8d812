//! Captured addresses across swaps: the IDT every CPU's IDTR names, and the handlers and hooks cells register.
//!
//! 4. **`swap interrupts interrupts` moves every CPU to the new IDT.** After the swap, a handler registered
//!    through the (new) `interrupts` on a free vector must run on every CPU when an IPI on that vector is sent to
//!    each (a CPU still using the old IDT would find the vector not present: #NP with an interrupt in service,
//!    which stops the machine); every CPU's timer must keep ticking; and a reclaim must free the old copy (or the
//!    test names what still pins it).
//! 5. **Handler cells re-register on their own swap.** `swap X X` for each cell that registered IDT handlers or
//!    hooks; afterwards the IPI and timer checks again, and no retired copy of any of them may be pinned by an IDT
//!    gate, nor a retired `fault_recovery` or `apic` by a stored hook.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use cell_namespace::Pin;
use kernel_test_support::{ensure, wait_for};
use x86_64::structures::idt::InterruptStackFrame;

use crate::swap;

/// A vector no cell uses (devices use 0x20-0x2F, the reschedule IPI 0x40, the system IPIs 0xF1-0xFF).
const TEST_VECTOR: u8 = 0x70;

/// Bit `n` is set once CPU `n` ran [`test_interrupt`].
static SEEN_ON: AtomicU64 = AtomicU64::new(0);

extern "x86-interrupt" fn test_interrupt(_frame: InterruptStackFrame) {
    SEEN_ON.fetch_or(1 << cpu::current_id().index(), Ordering::AcqRel);
    apic::end_of_interrupt();
}

/// The cells whose self-swap moves IDT gates or hooks (`fault_recovery`: the exception, end-of-unwind and failure
/// hooks; `live_update`: the exit hook), in swap order.
/// Cells not loaded (`push_receiver` is not always) are skipped.
const HANDLER_CELLS: &[&str] =
    &["apic", "smp", "tasking", "serial_input", "push_receiver", "fault_recovery", "live_update"];

/// Cells whose retired copies must not be pinned by any stored pointer after a reclaim (every hook they had
/// registered was moved); the others keep registrations that cannot move (see the README's table).
/// (`serial_input`'s receive source and `smp`'s shootdown transport sit in `Once`s of the base image.)
const NO_STORED_POINTERS: &[&str] = &["interrupts", "apic", "fault_recovery"];

pub(crate) fn interrupts_self_swap() -> Result<(), String> {
    swap("interrupts", "interrupts")?;
    every_cpu_takes_a_new_handler()?;
    timers_tick_everywhere()?;
    let reclaimed = live_update::reclaim();
    let left: Vec<_> = live_update::retired().into_iter().filter(|info| info.name == "interrupts").collect();
    ensure!(left.is_empty(), "the old interrupts copy is still retired after a reclaim: {left:?} ({reclaimed})");
    Ok(())
}

pub(crate) fn handler_cells_move() -> Result<(), String> {
    let kernel = system_namespaces::kernel_namespace().ok_or("no kernel namespace")?;
    for cell in HANDLER_CELLS {
        if kernel.cell(cell).is_some() {
            swap(cell, cell)?;
        }
    }
    every_cpu_takes_a_new_handler()?;
    timers_tick_everywhere()?;
    live_update::reclaim();
    for info in live_update::retired() {
        let checked = HANDLER_CELLS.contains(&info.name.as_str()) || info.name == "interrupts";
        if !checked {
            continue;
        }
        log::info!("{}: retired {} after its swap, pinned by {:?}", crate::CELL, info.name, info.pins);
        let gate = info.pins.iter().find(|pin| matches!(pin, Pin::Pointer { what, .. } if what.contains("IDT")));
        ensure!(gate.is_none(), "a retired {} is still pinned by an IDT gate: {gate:?}", info.name);
        let stored = info.pins.iter().find(|pin| matches!(pin, Pin::Pointer { .. }));
        let strict = NO_STORED_POINTERS.contains(&info.name.as_str());
        ensure!(!strict || stored.is_none(), "a retired {} is still pinned by a stored pointer: {stored:?}", info.name);
    }
    Ok(())
}

/// Registers [`test_interrupt`] on [`TEST_VECTOR`] through the current `interrupts`, sends the vector to every
/// online CPU, and checks that each ran the handler within 1 s; deregisters it again.
fn every_cpu_takes_a_new_handler() -> Result<(), String> {
    SEEN_ON.store(0, Ordering::Release);
    interrupts::register_handler(TEST_VECTOR, test_interrupt)
        .map_err(|error| format!("register vector {TEST_VECTOR:#x}: {error:?}"))?;
    let cpus: Vec<cpu::CpuId> = cpu::online().collect();
    let expected = cpus.iter().fold(0u64, |mask, cpu| mask | 1 << cpu.index());
    let mut sent = Ok(());
    for &target in &cpus {
        if let Err(error) = apic::send_ipi(target, TEST_VECTOR) {
            sent = Err(format!("IPI to CPU {}: {error:?}", target.index()));
            break;
        }
    }
    let all = sent.is_ok() && wait_for(1000, || SEEN_ON.load(Ordering::Acquire) & expected == expected);
    // Deregistered whatever happened: a later run registers it again.
    let removed = interrupts::deregister_handler(TEST_VECTOR);
    sent?;
    let seen = SEEN_ON.load(Ordering::Acquire);
    ensure!(all, "the handler on vector {TEST_VECTOR:#x} ran on CPUs {seen:#b}, expected {expected:#b}");
    removed.map_err(|error| format!("deregister vector {TEST_VECTOR:#x}: {error:?}"))?;
    Ok(())
}

/// Every online CPU's timer ticks at least twice in 100 ms (10 expected at 100 Hz).
fn timers_tick_everywhere() -> Result<(), String> {
    let cpus: Vec<cpu::CpuId> = cpu::online().collect();
    let before: Vec<u64> = cpus.iter().map(|cpu| apic::ticks(*cpu)).collect();
    // Busy, not a sleep: a sleep needs this CPU's timer to wake up.
    let until = tsc::now_ns() + 100_000_000;
    while tsc::now_ns() < until {
        core::hint::spin_loop();
    }
    for (cpu, before) in cpus.iter().zip(before) {
        let ticks = apic::ticks(*cpu) - before;
        ensure!(ticks >= 2, "CPU {} took {ticks} timer ticks in 100 ms after the swaps", cpu.index());
    }
    Ok(())
}
