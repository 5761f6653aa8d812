//! A task that faults inside `schedule` after it made itself `Blocked` (a join) must be unwound as a running
//! task: its landing pads may block again. In the campaign (session 13, seed 2026), a flipped runqueue word in
//! `load`'s `join` faulted there; the queue was repaired, but `load` was still marked `Blocked` while it unwound,
//! and the drop of its `RestartableTask` (which joins the killed run) could not register as a waiter and switched
//! out for good: `load 4 1` never gave the prompt back.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use spawn::TaskBuilder;
use task::{ExceptionKind, ExitValue, FailureReason};

use crate::wait_until_finished;

/// Set by [`JoinOnDrop`] once its join returned.
static JOINED_IN_DROP: AtomicBool = AtomicBool::new(false);
/// Set by the test to let the task the faulting one was blocked on end (only after the faulting task ended, or
/// the test gave up): so only the landing pad's own join can wake the faulting task.
static RELEASE_WAITED: AtomicBool = AtomicBool::new(false);

/// Joins its task when dropped (a landing pad that blocks).
struct JoinOnDrop(Option<spawn::JoinHandle<u64>>);

impl Drop for JoinOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take()
            && matches!(handle.join(), Ok(ExitValue::Completed(1)))
        {
            JOINED_IN_DROP.store(true, Ordering::Release);
        }
    }
}

/// The faulting task of [`fault_while_blocked`]: holds a [`JoinOnDrop`] of a task that sleeps 30 ms, then joins
/// another (which runs until the test releases it) with the one-shot fault armed for its CPU's next `schedule` of
/// a blocked task.
fn block_then_fault(cpu: usize) {
    let Ok(slow) = TaskBuilder::new("blocked_slow").pin(cpu).spawn(|| {
        scheduler::sleep(Duration::from_millis(30));
        1u64
    }) else {
        return;
    };
    let _guard = JoinOnDrop(Some(slow));
    let Ok(waited) = TaskBuilder::new("blocked_waited").pin(cpu).spawn(|| {
        while !RELEASE_WAITED.load(Ordering::Acquire) {
            scheduler::sleep(Duration::from_millis(2));
        }
        2u64
    }) else {
        return;
    };
    // Interrupts off from the request to the join's `schedule`: no other task of this CPU may schedule in between
    // (it would take the fault).
    let _ = task::interrupts::disable();
    scheduler::set_blocked_runqueue_fault_once(cpu, crate::fault);
    let _ = waited.join();
}

/// A task blocked in a join faults in `schedule` (`scheduler::set_blocked_runqueue_fault_once`, with this cell's
/// `fault`: a `ud2` in `fault_injection`, called holding the runqueue lock); its landing pad
/// joins another task. It must end `Failed` with #UD after that join returned. Without the fault path's
/// `scheduler::resume_running_after_fault`, the landing pad's join never returns and the task never ends.
pub(crate) fn fault_while_blocked() -> Result<(), String> {
    let name = "fault_while_blocked";
    let cpu = cpu::online().last().ok_or("fault_while_blocked: no CPU online")?.index();
    JOINED_IN_DROP.store(false, Ordering::Release);
    RELEASE_WAITED.store(false, Ordering::Release);
    let handle = TaskBuilder::new(name)
        .pin(cpu)
        .spawn(move || block_then_fault(cpu))
        .map_err(|error| format!("{name}: spawn: {error}"))?;
    let ended = wait_until_finished(&handle, || {
        format!("{name}: the task that faulted while blocked did not end within 3 s (its landing pad's join hung?)")
    });
    RELEASE_WAITED.store(true, Ordering::Release);
    ended?;
    if scheduler::runqueue_fault_pending(cpu) {
        return Err(format!("{name}: the requested fault never happened"));
    }
    match handle.join().map_err(|error| format!("{name}: join: {error:?}"))? {
        ExitValue::Failed(FailureReason::Exception { kind: ExceptionKind::InvalidOpcode, .. }) => {}
        other => return Err(format!("{name}: the faulting task ended with {other:?}")),
    }
    if !JOINED_IN_DROP.load(Ordering::Acquire) {
        return Err(format!("{name}: the landing pad's join did not return the joined task's value"));
    }
    serial::write_fmt(format_args!(
        "{name}: a task blocked in a join faulted in schedule on CPU {cpu}; it was unwound running and its landing \
         pad joined another task\n"
    ));
    Ok(())
}
