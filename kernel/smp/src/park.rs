//! Taking a CPU out of service: [`park_current_cpu`] halts the calling CPU for good (a fault outside any task),
//! after removing it from the online set (`cpu::count`, which stop-the-world waits for) and from the TLB
//! shootdown's participants, so no later stop-the-world or unmap waits for a CPU that will never answer.
//! [`withdraw_current_cpu`] does the same for a while (tests simulate a halted CPU with it).

use core::marker::PhantomData;
use cpu::CpuId;

use crate::stop::STOP_LOCK;

/// The calling CPU, taken out of the online set and the shootdown by [`withdraw_current_cpu`], with interrupts
/// disabled. Not `Send`: [`Withdrawn::rejoin`] must run on the same CPU.
#[must_use = "a withdrawn CPU must rejoin before it enables interrupts or touches memory others may unmap"]
#[derive(Debug)]
pub struct Withdrawn {
    cpu: CpuId,
    interrupts_were_enabled: bool,
    _not_send: PhantomData<*const ()>,
}

/// Disables interrupts and takes the calling CPU out of the online set, then out of the TLB shootdown: no
/// stop-the-world and no shootdown round started afterwards waits for it, exactly as for a halted CPU. While
/// withdrawn, the CPU must not use memory that others may unmap (it receives no shootdowns) and must not take
/// locks that a stop-the-world closure or a shootdown sender might wait for.
pub fn withdraw_current_cpu() -> Withdrawn {
    let interrupts_were_enabled = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::disable();
    let cpu = cpu::current_id();
    cpu::mark_offline(cpu);
    memory::leave_tlb_shootdown(cpu.index());
    Withdrawn { cpu, interrupts_were_enabled, _not_send: PhantomData }
}

impl Withdrawn {
    /// The withdrawn CPU.
    pub fn cpu(&self) -> CpuId {
        self.cpu
    }

    /// Puts the CPU back: joins the shootdown again (flushing its whole TLB: it missed every round meanwhile), then
    /// the online set, both under the stop-the-world lock so that no stop starts counting CPUs in between (a stop
    /// in progress finishes first: it does not wait for this CPU), then restores interrupts.
    pub fn rejoin(self) {
        let guard = STOP_LOCK.lock();
        memory::join_tlb_shootdown(self.cpu.index());
        cpu::mark_online_again(self.cpu);
        drop(guard);
        // A swap of `interrupts` while this CPU was away moved the IDT (no stop reached this CPU to reload it).
        interrupts::load();
        if self.interrupts_were_enabled {
            x86_64::instructions::interrupts::enable();
        }
    }
}

/// Halts the calling CPU for good, after [`withdraw_current_cpu`]: the fault path's end for an exception outside
/// any task ("stopping this CPU"). Its current task, if any, never runs again.
pub fn park_current_cpu() -> ! {
    // Never rejoins: the token is kept (not dropped into a rejoin) until the end of time.
    let _withdrawn = withdraw_current_cpu();
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
