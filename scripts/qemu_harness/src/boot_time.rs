//! The boot-time benchmark: time from starting QEMU to the first shell prompt, several runs per firmware; also
//! Linux to its busybox shell ([`measure_linux_once`]) for `make bench`.

use crate::expected as e;
use crate::qemu::{Firmware, QemuConfig};
use crate::session::{Failure, Session, StepResult, Typing};
use regex::Regex;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Boots `iso` once and returns the seconds until the prompt; then exits the guest.
///
/// # Errors
/// No prompt within `timeout`.
pub fn measure_once(
    qemu: &QemuConfig,
    iso: &Path,
    firmware: Firmware,
    timeout: Duration,
    typing: &Typing,
) -> StepResult<f64> {
    let prompt = Regex::new(e::PROMPT).map_err(|e| Failure(e.to_string()))?;
    let mut session =
        Session::spawn(&mut qemu.command(iso, firmware), timeout + Duration::from_secs(30), typing.clone(), None)?;
    session.expect(&prompt, timeout)?;
    let seconds = session.elapsed().as_secs_f64();
    // A clean exit when the shell supports it; killed otherwise (on drop).
    if session.send_line(e::EXIT_COMMAND).is_ok() {
        let _ = session.wait_for_exit(Duration::from_secs(10));
    }
    Ok(seconds)
}

/// The busybox shell's prompt in the Linux benchmark initramfs (`scripts/bench/init.sh` sets `PS1='/ # '`).
pub const LINUX_PROMPT: &str = r"^/ # $";

/// The QEMU command for booting the Linux `kernel` with `initrd` and command line `append`: the same flags as
/// ours (`qemu.arguments`, TCG, `-m`, `-smp`, firmware), with `-kernel`/`-initrd`/`-append` instead of `-cdrom`.
pub fn linux_command(qemu: &QemuConfig, kernel: &Path, initrd: &Path, append: &str, firmware: Firmware) -> Command {
    let mut arguments = qemu.arguments(Path::new(""), firmware);
    if arguments.first().map(String::as_str) == Some("-cdrom") {
        arguments.drain(..2);
    }
    let mut command = Command::new(&qemu.binary);
    command.arg("-kernel").arg(kernel).arg("-initrd").arg(initrd).arg("-append").arg(append).args(arguments);
    command
}

/// Boots Linux to its busybox shell once and returns the seconds until the prompt; then powers it off.
///
/// # Errors
/// No prompt within `timeout`.
pub fn measure_linux_once(
    qemu: &QemuConfig,
    kernel: &Path,
    initrd: &Path,
    firmware: Firmware,
    timeout: Duration,
    typing: &Typing,
) -> StepResult<f64> {
    let prompt = Regex::new(LINUX_PROMPT).map_err(|e| Failure(e.to_string()))?;
    let mut command = linux_command(qemu, kernel, initrd, "console=ttyS0 quiet", firmware);
    let mut session = Session::spawn(&mut command, timeout + Duration::from_secs(30), typing.clone(), None)?;
    session.expect(&prompt, timeout)?;
    let seconds = session.elapsed().as_secs_f64();
    // Killed on drop if poweroff does not end it.
    if session.send_line("poweroff -f").is_ok() {
        let _ = session.wait_for_exit(Duration::from_secs(10));
    }
    Ok(seconds)
}

/// The median of `samples` (mean of the two middle values for an even count); `None` if empty.
pub fn median(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 { sorted[middle] } else { (sorted[middle - 1] + sorted[middle]) / 2.0 })
}

/// One report line: `boot-time bios: median 0.85 s; samples 0.84 0.85 0.86`.
pub fn report(firmware: Firmware, samples: &[f64]) -> String {
    let list: Vec<String> = samples.iter().map(|s| format!("{s:.2}")).collect();
    match median(samples) {
        Some(m) => format!("boot-time {}: median {m:.2} s; samples {}", firmware.name(), list.join(" ")),
        None => format!("boot-time {}: no successful boot", firmware.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn report_format() {
        assert_eq!(
            report(Firmware::Bios, &[0.844, 0.851, 0.9]),
            "boot-time bios: median 0.85 s; samples 0.84 0.85 0.90"
        );
    }
}
