//! The exit hook: told about every spawned task whose body has ended, on that task, just before it exits.
//!
//! `live_update` installs it to re-check retired cells that the exiting task was pinning (a frame or its entry
//! in a swapped-out cell): the task runs normally there (interrupts enabled, its body's frames gone), so the hook
//! may block or stop the world.

use core::sync::atomic::{AtomicPtr, Ordering};

use task::TaskRef;

/// Called on a spawned task after its body ended (completed or unwound), before it is marked exited.
pub type ExitHook = fn(&TaskRef);

/// The installed [`ExitHook`] (null: none); an atomic pointer so the exit path never waits.
static EXIT_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs (or replaces) the hook told about every exiting spawned task.
pub fn set_exit_hook(hook: ExitHook) {
    EXIT_HOOK.store(hook as *mut (), Ordering::Release);
}

/// Calls the exit hook, if any, for `task` (the current task).
pub(crate) fn report_exit(task: &TaskRef) {
    let pointer = EXIT_HOOK.load(Ordering::Acquire);
    if !pointer.is_null() {
        // SAFETY: non-null values come only from `set_exit_hook`, which stores an `ExitHook`.
        let hook = unsafe { core::mem::transmute::<*mut (), ExitHook>(pointer) };
        hook(task);
    }
}
