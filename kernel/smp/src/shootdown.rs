//! The TLB shootdown IPI ([`interrupts::TLB_SHOOTDOWN_IPI_VECTOR`]): this cell gives the memory system its
//! transport (current CPU, "send the IPI to CPU n", the clock) and handles the IPI; the protocol itself lives in
//! `memory` (its `shootdown` module), which every unmap and permission change goes through.
//!
//! A CPU joins the shootdown once it can answer: the bootstrap CPU right after the handler is registered, each
//! application processor at the end of its set-up, before it reports itself started. Code here that spins with
//! interrupts disabled (stop-the-world, waits for other CPUs) services pending requests in its loop
//! ([`memory::service_tlb_shootdown`]), so a sender waiting for this CPU never deadlocks against it.

use interrupts::TLB_SHOOTDOWN_IPI_VECTOR;
use x86_64::structures::idt::InterruptStackFrame;

/// Registers the IPI handler, then the memory system's transport (in this order: a round may send the IPI as soon
/// as the transport is registered).
pub(crate) fn init() -> Result<(), interrupts::RegisterError> {
    interrupts::register_handler(TLB_SHOOTDOWN_IPI_VECTOR, shootdown_interrupt)?;
    memory::register_tlb_shootdown(memory::ShootdownTransport {
        current_cpu: current_cpu_index,
        send_ipi: send_shootdown_ipi,
        now_ns: tsc::now_ns,
    });
    Ok(())
}

/// This copy's shootdown-IPI handler, for a swap of this cell to move the gate to (`crate::cell_state_transfer`).
/// The transport's functions cannot move: `memory` keeps the first transport for good (a `Once` in the base
/// image), so a swapped-out copy of this cell stays retired, pinned by them, and keeps serving as the transport.
pub(crate) const HANDLER: (u8, interrupts::InterruptHandler) = (TLB_SHOOTDOWN_IPI_VECTOR, shootdown_interrupt);

/// The calling CPU starts answering shootdowns (and flushes its whole TLB, see `memory::join_tlb_shootdown`).
pub(crate) fn join_current() {
    memory::join_tlb_shootdown(cpu::current_id().index());
}

fn current_cpu_index() -> usize {
    cpu::current_id().index()
}

fn send_shootdown_ipi(target: usize) -> bool {
    cpu::CpuId::new(target).is_some_and(|target| apic::send_ipi(target, TLB_SHOOTDOWN_IPI_VECTOR).is_ok())
}

/// Flushes what the current request asks for (if this CPU is a target that has not acknowledged it yet: a request
/// already serviced by polling leaves nothing to do), then EOI.
extern "x86-interrupt" fn shootdown_interrupt(_frame: InterruptStackFrame) {
    memory::service_tlb_shootdown();
    apic::end_of_interrupt();
}
