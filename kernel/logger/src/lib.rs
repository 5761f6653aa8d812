//! The `log` crate's backend: one timestamped line per record on the serial console.
//!
//! Lines look like `[    1.234567] INFO  cell_namespace: loaded captain ...`: seconds since the TSC was reset
//! (about machine power-on; see the `tsc` cell), level, the record's target (its module path), and the message.
//!
//! Each record is one `serial::write_fmt` call, which formats it before taking the COM1 lock and then writes each
//! line under one acquisition (interrupts disabled), so a log line from another CPU or an interrupt handler is never
//! interleaved with it (lines up to `serial::LINE_BUFFER_BYTES`; a message with embedded newlines is several lines).
//!
//! A second sink (a screen console) can be added with [`set_mirror`]: each record is then also passed to it, until
//! [`set_mirror`]`(None)`.
//!
//! Control flow: nano_core calls [`init`] once after `serial::init` and `tsc::calibrate`; afterwards every crate,
//! nano_core's or a loaded cell's, logs through the one `log` instance linked into nano_core.
#![no_std]

use core::sync::atomic::{AtomicPtr, Ordering};
use log::{LevelFilter, Log, Metadata, Record};

/// The mirror sink (null: none): a `fn(fmt::Arguments)` stored by [`set_mirror`].
static MIRROR: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs (`Some`) or removes (`None`) a second sink that receives every log line (with its trailing newline)
/// after the serial console. The sink may be called in interrupt context and from any CPU: it must not block on a
/// lock the interrupted code may hold (take its own lock with interrupts disabled).
pub fn set_mirror(sink: Option<fn(core::fmt::Arguments<'_>)>) {
    MIRROR.store(sink.map_or(core::ptr::null_mut(), |sink| sink as *mut ()), Ordering::Release);
}

struct SerialLogger;

static LOGGER: SerialLogger = SerialLogger;

impl Log for SerialLogger {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let nanoseconds = tsc::now_ns();
        let line = |sink: fn(core::fmt::Arguments<'_>)| {
            sink(format_args!(
                "[{:5}.{:06}] {:5} {}: {}\n",
                nanoseconds / 1_000_000_000,
                (nanoseconds % 1_000_000_000) / 1000,
                record.level(),
                record.target(),
                record.args()
            ))
        };
        line(serial::write_fmt);
        let mirror = MIRROR.load(Ordering::Acquire);
        if !mirror.is_null() {
            // SAFETY: non-null values come only from `set_mirror`, which stores a `fn(fmt::Arguments)`.
            line(unsafe { core::mem::transmute::<*mut (), fn(core::fmt::Arguments<'_>)>(mirror) });
        }
    }

    fn flush(&self) {}
}

/// Installs the serial logger with `level` as the maximum level. Later calls only change the level.
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
