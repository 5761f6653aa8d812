//! Language items that a `no_std` kernel built with `panic=unwind` must provide.
//!
//! Until the unwinder cell exists (issue 4), a panic prints its message and location and stops the machine, and
//! `_Unwind_Resume` (called by landing pads after cleanup) does the same.

use core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    serial::write_fmt(format_args!("\nKERNEL PANIC: {info}\n"));
    power::exit(power::ExitCode::Failure)
}

/// The personality routine. Landing pads are not entered yet (no unwinder), so this is never called.
#[lang = "eh_personality"]
extern "C" fn eh_personality() {}

/// Called by a landing pad to continue unwinding; without an unwinder there is nothing to continue.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_Resume() -> ! {
    serial::write_str("\n_Unwind_Resume called without an unwinder; stopping\n");
    power::exit(power::ExitCode::Failure)
}
