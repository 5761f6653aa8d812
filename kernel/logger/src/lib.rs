//! The `log` crate's backend: one timestamped line per record, kept in a ring buffer and shown on the serial
//! console up to a console level.
//!
//! Lines look like `[    1.234567] INFO  cell_namespace: loaded captain ...`: seconds since the TSC was reset
//! (about machine power-on; see the `tsc` cell), level, the record's target (its module path), and the message.
//!
//! # Ring buffer and console level
//! Every record that passes `log`'s maximum level is formatted on the stack (a [`LINE_BYTES`] buffer; longer
//! records are cut and end in a newline) and appended to a fixed [`RING_BYTES`] ring that overwrites the oldest
//! text ([`read_ring`], the shell's `dmesg`). Nothing on this path allocates. The record is also written to COM1 if
//! its level is at or above the console level ([`set_console_level`]; at boot everything, the shell lowers it to
//! warnings once its prompt appears). [`set_console_level`] raises `log`'s maximum level when needed, so that
//! `log debug` also records debug lines.
//!
//! Each line is one `serial::write_bytes` call, which writes it under one acquisition of the COM1 lock (interrupts
//! disabled), so a log line from another CPU or an interrupt handler is never interleaved with it.
//!
//! Lock: [`RING`] protects the ring's bytes and positions; it is taken with interrupts disabled, only around a copy,
//! and no other lock is taken while it is held (the console write happens after it is released).
//!
//! A second sink (a screen console) can be added with [`set_mirror`]: each record shown on the console is then
//! also passed to it, until [`set_mirror`]`(None)`.
//!
//! Control flow: nano_core calls [`init`] once after `serial::init` and `tsc::calibrate`; afterwards every crate,
//! nano_core's or a loaded cell's, logs through the one `log` instance linked into nano_core.
#![no_std]

use core::fmt::Write;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use irq_safe::IrqSafeMutex;
use log::{Level, LevelFilter, Log, Metadata, Record};
use log_ring::{LineBuffer, LogRing};

/// Bytes of log text the ring keeps (the oldest are overwritten).
pub const RING_BYTES: usize = 64 * 1024;
/// The longest log line kept or shown, in bytes (longer records are cut).
pub const LINE_BYTES: usize = 512;

/// The kept log text. Lock order: a leaf (nothing is locked while it is held).
static RING: IrqSafeMutex<LogRing<RING_BYTES>> = IrqSafeMutex::new(LogRing::new());
/// The most verbose level shown on the console, as `LevelFilter as usize` (0 = off, 5 = trace).
static CONSOLE_LEVEL: AtomicUsize = AtomicUsize::new(LevelFilter::Trace as usize);

/// The mirror sink (null: none): a `fn(fmt::Arguments)` stored by [`set_mirror`].
static MIRROR: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs (`Some`) or removes (`None`) a second sink that receives every log line shown on the console (with
/// its trailing newline) after the serial console. The sink may be called in interrupt context and from any CPU:
/// it must not block on a lock the interrupted code may hold (take its own lock with interrupts disabled).
pub fn set_mirror(sink: Option<fn(core::fmt::Arguments<'_>)>) {
    MIRROR.store(sink.map_or(core::ptr::null_mut(), |sink| sink as *mut ()), Ordering::Release);
}

struct RingLogger;

static LOGGER: RingLogger = RingLogger;

impl Log for RingLogger {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let nanoseconds = tsc::now_ns();
        let mut line = LineBuffer::<LINE_BYTES>::new();
        // `LineBuffer` never fails (it truncates), so the result carries nothing.
        let _ = write!(
            line,
            "[{:5}.{:06}] {:5} {}: {}",
            nanoseconds / 1_000_000_000,
            (nanoseconds % 1_000_000_000) / 1000,
            record.level(),
            record.target(),
            record.args()
        );
        line.end_with(b'\n');
        RING.lock().push(line.as_bytes());
        if shown_on_console(record.level()) {
            serial::write_bytes(line.as_bytes());
            let mirror = MIRROR.load(Ordering::Acquire);
            if !mirror.is_null() {
                // SAFETY: non-null values come only from `set_mirror`, which stores a `fn(fmt::Arguments)`.
                let sink = unsafe { core::mem::transmute::<*mut (), fn(core::fmt::Arguments<'_>)>(mirror) };
                // `LineBuffer` cuts at a UTF-8 boundary, so the text is valid; a lossy fallback never panics.
                let text = core::str::from_utf8(line.as_bytes()).unwrap_or("<log line not UTF-8>\n");
                sink(format_args!("{text}"));
            }
        }
    }

    fn flush(&self) {}
}

/// Whether a record of `level` goes to the console.
fn shown_on_console(level: Level) -> bool {
    level as usize <= CONSOLE_LEVEL.load(Ordering::Relaxed)
}

/// Installs the logger with `level` as the maximum level recorded (and shown). Later calls only change the level.
pub fn init(level: LevelFilter) {
    // Only the first call installs; a later one fails with `SetLoggerError` and keeps the same logger, as documented.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Shows only records at `level` or more severe on the console (all of them still go to the ring). Raises `log`'s
/// maximum level to `level` if it was lower, so the newly shown records are produced at all.
pub fn set_console_level(level: LevelFilter) {
    CONSOLE_LEVEL.store(level as usize, Ordering::Relaxed);
    if log::max_level() < level {
        log::set_max_level(level);
    }
}

/// The console level set last.
pub fn console_level() -> LevelFilter {
    match CONSOLE_LEVEL.load(Ordering::Relaxed) {
        0 => LevelFilter::Off,
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Calls `out` with the kept log text, oldest first (whole lines), while holding the ring's lock with interrupts
/// disabled: `out` must only copy (it must not log or take a lock).
pub fn read_ring(out: impl FnMut(&[u8])) {
    RING.lock().read(out);
}
