//! qemu_harness: boots the ISO headless in QEMU (TCG) and drives its serial shell like a person.
//!
//! Key types: [`session::Session`] (one guest: type, expect with timeouts, exit status, log),
//! [`transcript::Transcript`] (serial output as lines with an `expect` cursor), [`ansi::AnsiStripper`],
//! [`scenarios::Scenario`] (the declarative test table), [`qemu::QemuConfig`].
//!
//! Control flow of `qemu_harness test`:
//! 1. For each scenario, start QEMU on the ISO (BIOS or OVMF) with the serial port on stdin/stdout and a hard
//!    timeout; the stripped serial output goes to `build/logs/<scenario>.log`.
//! 2. Run its steps: wait for the prompt, type each command, wait for the next prompt, check the output.
//! 3. End with `exit`, which makes the kernel write to the `isa-debug-exit` port; check QEMU's exit status.
//! 4. Print `PASS name (secs)` or `FAIL name: reason (log: path)`, then `N passed, M failed`.
//!
//! The USB boot matrix ([`usb_matrix`]: the image on an emulated USB stick, both firmwares, both machine types,
//! 1 and 4 CPUs, 128 MiB and 2 GiB) runs after the table's scenarios. The `push` scenario ([`push`]) is run after those: it acts on the
//! host between commands; then the `newcomer` scenario ([`newcomer`]) follows the README's first-application steps in the same scratch copy.
//!
//! `qemu_harness boot-time` boots several times per firmware and reports the time to the first prompt;
//! `boot-time --matrix` does so for each matrix configuration and prints a table.
//! `qemu_harness bench` ([`bench`]) runs the microbenchmarks on our side and on Linux and reports both.
//!
//! `qemu_harness faults` runs the fault-injection campaign ([`faults`]): faults injected through QEMU's gdb stub
//! ([`gdb_remote::GdbRemote`]) while workloads run, each injection classified, a CSV and a summary written.

pub mod ansi;
pub mod bench;
pub mod bench_report;
pub mod boot_time;
pub mod checksum;
pub mod expected;
pub mod faults;
pub mod gdb_remote;
pub mod monitor;
pub mod newcomer;
pub mod push;
pub mod qemu;
pub mod runner;
pub mod scenarios;
pub mod screendump;
pub mod session;
pub mod transcript;
pub mod usb_matrix;
