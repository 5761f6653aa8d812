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
//!
//! [`now_ns`] runs on every scheduling decision, so it converts with one multiplication and a shift by a scale
//! fixed at calibration ([`ns_scale`]: ns per tick in 32.32 fixed point), not a 128-bit division per call (a
//! `__udivti3` loop of soft division, costly under TCG). The scale's rounding error is below one part in 10^9 at
//! any frequency up to 4 GHz, far below the calibration's own (one PIT period of the 10 ms window, ~1e-4).
#![cfg_attr(not(test), no_std)]

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

/// Input clock of the 8254 PIT in Hz.
const PIT_FREQUENCY_HZ: u64 = 1_193_182;
/// Length of the calibration window in ms.
const CALIBRATION_MS: u64 = 10;

/// TSC ticks per second, measured by [`calibrate`]; 0 before that.
static TSC_FREQUENCY_HZ: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick in 32.32 fixed point ([`ns_scale`] of the measured frequency); 0 before [`calibrate`].
static NS_PER_TICK_SCALED: AtomicU64 = AtomicU64::new(0);

/// Fractional bits of the fixed-point scale.
const SCALE_SHIFT: u32 = 32;

/// The fixed-point scale (ns per tick, [`SCALE_SHIFT`] fractional bits) for a TSC of `hz` ticks per second, or
/// `None` for 0 Hz or a scale that does not fit 64 bits (below 1 Hz).
pub const fn ns_scale(hz: u64) -> Option<u64> {
    if hz == 0 {
        return None;
    }
    let scale = ((1_000_000_000_u128) << SCALE_SHIFT) / hz as u128;
    if scale > u64::MAX as u128 { None } else { Some(scale as u64) }
}

/// `ticks` TSC ticks in ns, with `scale` from [`ns_scale`]: `ticks * scale >> 32`, computed in 128 bits (one
/// 64x64 multiplication). Saturates at `u64::MAX` ns (584 years).
#[inline]
pub const fn ticks_to_ns(ticks: u64, scale: u64) -> u64 {
    let ns = (ticks as u128 * scale as u128) >> SCALE_SHIFT;
    if ns > u64::MAX as u128 { u64::MAX } else { ns as u64 }
}

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
    // `ticks > 0` makes `frequency >= 100` Hz, for which the scale fits (`ns_scale` refuses only below 1 Hz).
    let scale = ns_scale(frequency).ok_or(CalibrationError::TscNotCounting)?;
    TSC_FREQUENCY_HZ.store(frequency, Ordering::Relaxed);
    NS_PER_TICK_SCALED.store(scale, Ordering::Relaxed);
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
    match NS_PER_TICK_SCALED.load(Ordering::Relaxed) {
        0 => 0,
        scale => ticks_to_ns(read_tsc(), scale),
    }
}

/// Busy-waits until `nanoseconds` of TSC time ([`now_ns`]) have passed, calling nothing that could switch tasks
/// (interrupts stay as they are). Returns at once before calibration (the clock would not move).
pub fn spin_ns(nanoseconds: u64) {
    if frequency_hz().is_none() {
        return;
    }
    let end = now_ns().saturating_add(nanoseconds);
    while now_ns() < end {
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact conversion the fixed-point one replaces.
    fn exact_ns(ticks: u64, hz: u64) -> u64 {
        u64::try_from(ticks as u128 * 1_000_000_000 / hz as u128).unwrap_or(u64::MAX)
    }

    #[test]
    fn matches_the_exact_conversion_within_a_part_per_billion() {
        for hz in [1_000_000, 999_999_937, 1_000_000_000, 2_099_999_000, 2_893_204_117, 3_999_999_999, 5_000_000_000] {
            let scale = ns_scale(hz).expect("scale");
            for ticks in [0, 1, 12_345, hz, 3_600 * hz, 86_400 * hz, u64::MAX / 8] {
                let (fixed, exact) = (ticks_to_ns(ticks, scale), exact_ns(ticks, hz));
                // The scale is rounded down: never ahead of the exact value, behind by at most 1 ns + 1e-9.
                assert!(fixed <= exact, "hz {hz} ticks {ticks}: {fixed} > {exact}");
                assert!(exact - fixed <= 1 + exact / 1_000_000_000, "hz {hz} ticks {ticks}: {fixed} vs {exact}");
            }
        }
    }

    #[test]
    fn is_monotonic() {
        let scale = ns_scale(2_893_204_117).expect("scale");
        let mut last = 0;
        for ticks in (0..10_000_000_u64).step_by(997) {
            let ns = ticks_to_ns(ticks, scale);
            assert!(ns >= last);
            last = ns;
        }
    }

    #[test]
    fn refuses_zero_and_sub_hertz_frequencies() {
        assert_eq!(ns_scale(0), None);
        assert!(ns_scale(1).is_some());
        assert_eq!(ticks_to_ns(u64::MAX, u64::MAX), u64::MAX);
    }
}
