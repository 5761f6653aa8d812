//! The `log` crate's backend: one timestamped line per record on the serial console.
//!
//! Lines look like `[    1.234567] INFO  cell_namespace: loaded captain ...`: seconds since the TSC was reset
//! (about machine power-on; see the `tsc` cell), level, the record's target (its module path), and the message.
//!
//! Each record is one `serial::write_fmt` call, which formats it before taking the COM1 lock and then writes each
//! line under one acquisition (interrupts disabled), so a log line from another CPU or an interrupt handler is never
//! interleaved with it (lines up to `serial::LINE_BUFFER_BYTES`; a message with embedded newlines is several lines).
//!
//! Control flow: nano_core calls [`init`] once after `serial::init` and `tsc::calibrate`; afterwards every crate,
//! nano_core's or a loaded cell's, logs through the one `log` instance linked into nano_core.
#![no_std]

use log::{LevelFilter, Log, Metadata, Record};

struct SerialLogger;

static LOGGER: SerialLogger = SerialLogger;

impl Log for SerialLogger {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let nanoseconds = tsc::now_ns();
        serial::write_fmt(format_args!(
            "[{:5}.{:06}] {:5} {}: {}\n",
            nanoseconds / 1_000_000_000,
            (nanoseconds % 1_000_000_000) / 1000,
            record.level(),
            record.target(),
            record.args()
        ));
    }

    fn flush(&self) {}
}

/// Installs the serial logger with `level` as the maximum level. Later calls only change the level.
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
