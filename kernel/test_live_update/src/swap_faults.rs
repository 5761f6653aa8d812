//! Step 6: a fault in the swapping task during a live swap (issue 12). A task swaps `greeting_v1` for
//! `greeting_v2` with a fault (`ud2`) armed at one point of the swap (`cell_namespace::inject_swap_fault`): after
//! staging, after building, inside the quiesced phase before the first store, right after the first store, after
//! every store (before the pin search), inside the cleanup (past the commit point, between removing the old cell
//! and publishing the new one: the rollback must publish it; and in the publication, holding the namespace's state
//! lock, which the unwind leaves taken: the swap's landing pad must release it), and after the whole swap in its
//! own frame. Each
//! point runs twice: with the
//! task unwound (the swap's landing pad rolls back) and ended without unwinding (`fault_recovery`'s nested-fault
//! path: only the failure hook's recovery from the task's stack can roll back). Then: the task failed; before the
//! commit point the namespace is exactly as before (v1 loaded, v2 not, `greet` says v1), past it exactly as after;
//! every other CPU's timer ticks (no CPU left stopped); and a following swap works (the gate, the transaction lock
//! and the stop-the-world are free). An unwound fault before the commit must be rolled back by the swap's own
//! landing pad, not by the failure hook (this caught the unwinder entering landing pads without popping the call's
//! pushed arguments, `DW_CFA_GNU_args_size`).

use alloc::format;
use alloc::string::String;

use cell_namespace::{SwapFaultPoint, SwapOptions};
use kernel_test_support::{ensure, wait_for};
use spawn::TaskBuilder;
use task::ExitValue;

use crate::{V1, V2, swap};

const POINTS: [SwapFaultPoint; 8] = [
    SwapFaultPoint::Staged,
    SwapFaultPoint::Built,
    SwapFaultPoint::Transfer,
    SwapFaultPoint::Patching,
    SwapFaultPoint::Patched,
    SwapFaultPoint::Cleanup,
    SwapFaultPoint::Publishing,
    SwapFaultPoint::Completed,
];

pub(crate) fn fault_in_swapping_task_rolls_back() -> Result<(), String> {
    for point in POINTS {
        for unwound in [true, false] {
            one(point, unwound).map_err(|error| format!("{point:?} ({}): {error}", how(unwound)))?;
        }
    }
    Ok(())
}

fn how(unwound: bool) -> &'static str {
    if unwound { "unwound" } else { "ended without unwinding" }
}

fn one(point: SwapFaultPoint, unwound: bool) -> Result<(), String> {
    let kernel = system_namespaces::kernel_namespace().ok_or("no kernel namespace")?;
    ensure!(kernel.cell(V1).is_some() && kernel.cell(V2).is_none(), "not starting from greeting_v1");
    let recoveries = live_update::recoveries();
    let swapper = TaskBuilder::new("swap-fault")
        .spawn(move || {
            cell_namespace::inject_swap_fault(point);
            if !unwound {
                fault_recovery::fault_in_next_fault_path();
            }
            live_update::swap(&[(V1, V2)], &SwapOptions::default()).is_ok()
        })
        .map_err(kernel_test_support::spawn_error)?;
    match swapper.join().map_err(|error| format!("join: {error:?}"))? {
        ExitValue::Failed(_) => {}
        ExitValue::Completed(done) => return Err(format!("the swapping task did not fault (swap ok: {done})")),
    }
    let committed = matches!(point, SwapFaultPoint::Cleanup | SwapFaultPoint::Publishing | SwapFaultPoint::Completed);
    // Unwound from a function the swap called, the swap's own landing pad rolls back (the failure hook finds
    // nothing held); otherwise only the failure hook's recovery can (a fault in `swap_quiesced`'s own frame, or
    // no unwinding at all).
    let by_hook = live_update::recoveries() != recoveries;
    let hook_expected = point == SwapFaultPoint::Completed || !unwound;
    ensure!(
        by_hook == hook_expected,
        "recovered by the failure hook: {by_hook}, expected {hook_expected} (a landing pad that did not run, or ran \
         wrongly)"
    );
    let (loaded, absent, version) = if committed { (V2, V1, "greeting v2") } else { (V1, V2, "greeting v1") };
    ensure!(
        kernel.cell(loaded).is_some() && kernel.cell(absent).is_none(),
        "{loaded} should be loaded and {absent} not: {:?}",
        kernel.cells().iter().map(|cell| cell.name.clone()).collect::<alloc::vec::Vec<_>>()
    );
    let text = greeting::greet("test");
    ensure!(text.contains(version), "greet() says {text:?}, expected {version}");
    for other in cpu::online().filter(|cpu| *cpu != cpu::current_id()) {
        let before = apic::ticks(other);
        ensure!(wait_for(1000, || apic::ticks(other) != before), "CPU {} is not ticking", other.index());
    }
    // The gate, the transaction lock and the stop-the-world are free: the swap (or the swap back) works.
    let (old, new) = if committed { (V2, V1) } else { (V1, V2) };
    swap(old, new)?;
    if !committed {
        ensure!(greeting::greet("test").contains("greeting v2"), "the swap after the fault did not switch");
        swap(V2, V1)?;
    }
    live_update::reclaim();
    Ok(())
}
