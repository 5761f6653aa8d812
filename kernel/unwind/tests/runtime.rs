//! The unwinding runtime end to end on the host: real landing pads (LLVM's, in the fixture cell and in this
//! executable) entered by the runtime, `_Unwind_Resume` continuing, and `catch_unwind` catching.
//!
//! This executable's `_Unwind_Resume` is defined below: objects of this runtime go to `unwind::resume_unwinding`,
//! anything else (std's own panics) to libgcc's. The fixture's `_Unwind_Resume` is bound to it too.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use common::{loaded_fixture, register_fixture, register_host};
use unwind::{
    ExceptionCause, PanicCause, Registers, UnwindCause, UnwindEnd, UnwindOptions, catch_unwind, global_registry,
    pool_in_use, set_end_handler, start_unwinding, start_unwinding_from, with_current_registers,
};

type ResumeFunction = unsafe extern "C" fn(*mut u8) -> !;

/// `_Unwind_Resume` for the whole test executable.
///
/// # Safety
/// Called by landing pads with their exception pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Unwind_Resume(exception: *mut u8) -> ! {
    // SAFETY: a landing pad's exception pointer is a readable exception object of some runtime.
    if unsafe { unwind::is_own_exception(exception) } {
        // SAFETY: ours, passed on by the landing pad that received it.
        unsafe { unwind::resume_unwinding(exception) }
    }
    static NEXT: OnceLock<usize> = OnceLock::new();
    let next = *NEXT.get_or_init(|| {
        // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT finds libgcc_s's definition.
        unsafe { libc::dlsym(libc::RTLD_NEXT, c"_Unwind_Resume".as_ptr()) as usize }
    });
    if next == 0 {
        std::process::abort();
    }
    // SAFETY: libgcc's _Unwind_Resume has this signature.
    unsafe { std::mem::transmute::<usize, ResumeFunction>(next)(exception) }
}

fn end_handler(end: UnwindEnd) -> ! {
    eprintln!("unwind ended without a catch: {end:?}");
    std::process::abort()
}

type Callback = extern "C-unwind" fn(u64) -> u64;

fn setup() -> std::sync::MutexGuard<'static, ()> {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        set_end_handler(end_handler);
        register_host(global_registry());
        register_fixture(global_registry(), loaded_fixture(_Unwind_Resume as *const () as usize));
    });
    // One runtime test at a time: they share the drop log and the exception pool.
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn guarded() -> extern "C-unwind" fn(u64, Callback, Callback) -> u64 {
    let fixture = loaded_fixture(_Unwind_Resume as *const () as usize);
    let address = fixture.namespace.find_function(common::CELL, "unwind_fixture::guarded").unwrap().value();
    // SAFETY: the fixture's guarded is `extern "C-unwind" fn(u64, Callback, Callback) -> u64`, loaded at `address`.
    unsafe { std::mem::transmute::<usize, extern "C-unwind" fn(u64, Callback, Callback) -> u64>(address) }
}

/// Drop log in decimal: fixture guard `id` appends digit `id + 1`, a host guard appends 9.
static DROPS: AtomicU64 = AtomicU64::new(0);

fn log_drop(id: u64) {
    let _ =
        DROPS.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |log| Some(log.wrapping_mul(10).wrapping_add(id + 1)));
}

extern "C-unwind" fn on_drop(id: u64) -> u64 {
    log_drop(id);
    0
}

struct HostGuard;

impl Drop for HostGuard {
    fn drop(&mut self) {
        log_drop(8);
    }
}

extern "C-unwind" fn panicking_callback(_argument: u64) -> u64 {
    let _guard = HostGuard;
    start_unwinding(UnwindCause::Panic(PanicCause::with_message("boom")), UnwindOptions::default())
}

extern "C-unwind" fn faulting_callback(_argument: u64) -> u64 {
    // Pretend the instruction after the capture faulted: the registers of this frame, with an exact PC.
    let registers: Registers = with_current_registers(|registers| *registers);
    let cause = UnwindCause::Exception(ExceptionCause {
        vector: 14,
        error_code: Some(2),
        instruction_pointer: registers.instruction_pointer().unwrap(),
        fault_address: Some(0x10),
    });
    let _guard = HostGuard;
    // SAFETY: `registers` describe this live frame (captured just above); everything below it is abandoned.
    unsafe { start_unwinding_from(&registers, cause, UnwindOptions::default()) }
}

#[test]
fn a_panic_runs_every_drop_innermost_first_and_is_caught() {
    let _serial = setup();
    DROPS.store(0, Ordering::SeqCst);
    let result = catch_unwind(|| {
        let _outer = HostGuard;
        guarded()(3, panicking_callback, on_drop)
    });
    let Err(UnwindCause::Panic(cause)) = result else { panic!("expected a caught panic: {result:?}") };
    assert_eq!(cause.message.as_str(), "boom");
    // Host guard in the callback (9), fixture guards 0..=3 (1, 2, 3, 4), host guard around the call (9).
    assert_eq!(DROPS.load(Ordering::SeqCst), 912_349);
    assert_eq!(pool_in_use(), 0, "the exception object was freed");
}

#[test]
fn a_fault_unwinds_the_callers_but_not_the_faulting_frame() {
    let _serial = setup();
    DROPS.store(0, Ordering::SeqCst);
    let result = catch_unwind(|| guarded()(1, faulting_callback, on_drop));
    let Err(UnwindCause::Exception(cause)) = result else { panic!("expected a caught exception: {result:?}") };
    assert_eq!((cause.vector, cause.error_code, cause.fault_address), (14, Some(2), Some(0x10)));
    // The faulting frame's own guard is leaked (its pads are skipped); the fixture's guards 0 and 1 drop.
    assert_eq!(DROPS.load(Ordering::SeqCst), 12);
    assert_eq!(pool_in_use(), 0);
}

#[test]
fn nested_catches_and_resume_unwind() {
    let _serial = setup();
    DROPS.store(0, Ordering::SeqCst);
    let outer = catch_unwind(|| {
        let inner = catch_unwind(|| guarded()(0, panicking_callback, on_drop));
        let Err(cause) = inner else { return 0 };
        // The inner catch got it; re-raise it past the outer one.
        let _guard = HostGuard;
        unwind::resume_unwind(cause)
    });
    assert!(matches!(outer, Err(UnwindCause::Panic(cause)) if cause.message.as_str() == "boom"), "{outer:?}");
    assert_eq!(DROPS.load(Ordering::SeqCst), 919);
    // Without an unwind, catch_unwind is transparent.
    extern "C-unwind" fn add_forty(x: u64) -> u64 {
        x + 40
    }
    assert_eq!(catch_unwind(|| guarded()(2, add_forty, on_drop)), Ok(42));
    assert_eq!(pool_in_use(), 0);
}

#[test]
fn many_unwinds_reuse_the_pool() {
    let _serial = setup();
    for _ in 0..(unwind::POOL_SIZE * 3) {
        let result = catch_unwind(|| guarded()(1, panicking_callback, on_drop));
        assert!(result.is_err());
    }
    assert_eq!(pool_in_use(), 0);
}
