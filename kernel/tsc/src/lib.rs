//! Monotonic time in nanoseconds from the time-stamp counter (TSC), calibrated against the PIT.
//!
//! The TSC counts at a constant rate on every CPU this kernel targets (invariant TSC, Intel SDM Vol. 3B 18.17);
//! QEMU under TCG derives it from the host clock. Its frequency is unknown until measured, so [`calibrate`] counts TSC
//! ticks across a 10 ms one-shot of PIT channel 2 (8254 PIT, input clock 1.193182 MHz).
//!
//! Control flow:
//! 1. nano_core calls [`calibrate`] once, early (about 10 ms, polling, interrupts off);
//! 2. everyone calls [`now_ns`]: nanoseconds since the TSC was reset (machine power-on or reset),
//!    or `0` before calibration.
#![no_std]

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

/// Input clock of the 8254 PIT in Hz.
const PIT_FREQUENCY_HZ: u64 = 1_193_182;
/// Length of the calibration window in ms.
const CALIBRATION_MS: u64 = 10;

/// TSC ticks per second, measured by [`calibrate`]; 0 before that.
static TSC_FREQUENCY_HZ: AtomicU64 = AtomicU64::new(0);

/// Calibration could not produce a usable frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalibrationError {
    /// The PIT never signalled the end of the window (no PIT, or channel 2 output not wired to port 0x61 bit 5).
    PitTimeout,
    /// The TSC did not advance during the window.
    TscNotCounting,
}

fn read_tsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Measures the TSC frequency against PIT channel 2 and stores it for [`now_ns`].
///
/// Takes about 10 ms. Returns the frequency in Hz.
///
/// # Errors
/// [`CalibrationError`] if the PIT does not answer or the TSC does not count; [`now_ns`] then keeps returning 0.
pub fn calibrate() -> Result<u64, CalibrationError> {
    let count = PIT_FREQUENCY_HZ * CALIBRATION_MS / 1000;
    let mut speaker_control: Port<u8> = Port::new(0x61);
    let mut command: Port<u8> = Port::new(0x43);
    let mut channel2: Port<u8> = Port::new(0x42);
    // SAFETY: ports 0x42/0x43/0x61 are the legacy PIT channel 2 and its gate; this kernel uses them for nothing
    // else (the speaker is switched off by clearing bit 1), and calibration runs once, single-threaded, at boot.
    let (start, end) = unsafe {
        let control = speaker_control.read();
        speaker_control.write((control & !0x02) | 0x01);
        // Channel 2, access lobyte/hibyte, mode 0 (interrupt on terminal count), binary.
        command.write(0b1011_0000);
        channel2.write((count & 0xff) as u8);
        channel2.write((count >> 8) as u8);
        let start = read_tsc();
        let mut spins: u64 = 0;
        while speaker_control.read() & 0x20 == 0 {
            spins += 1;
            if spins > 100_000_000 {
                return Err(CalibrationError::PitTimeout);
            }
        }
        (start, read_tsc())
    };
    let ticks = end.saturating_sub(start);
    if ticks == 0 {
        return Err(CalibrationError::TscNotCounting);
    }
    let frequency = ticks * 1000 / CALIBRATION_MS;
    TSC_FREQUENCY_HZ.store(frequency, Ordering::Relaxed);
    Ok(frequency)
}

/// The calibrated TSC frequency in Hz, or `None` before [`calibrate`] succeeded.
pub fn frequency_hz() -> Option<u64> {
    match TSC_FREQUENCY_HZ.load(Ordering::Relaxed) {
        0 => None,
        hz => Some(hz),
    }
}

/// Nanoseconds since the TSC was reset (about machine power-on), or 0 before calibration.
pub fn now_ns() -> u64 {
    match frequency_hz() {
        None => 0,
        Some(hz) => ((read_tsc() as u128) * 1_000_000_000 / hz as u128) as u64,
    }
}
