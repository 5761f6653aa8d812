//! The kernel log builtins: `dmesg` (the kept log) and `log LEVEL` (what the console shows).

use alloc::string::String;
use alloc::vec::Vec;
use log::LevelFilter;

/// The console level once the prompt appears: warnings and errors.
pub const SHELL_CONSOLE_LEVEL: LevelFilter = LevelFilter::Warn;

/// `dmesg`: prints the kernel log ring, oldest first.
pub fn dmesg(words: &[String]) {
    if words.len() > 1 {
        crate::console::write_str("usage: dmesg\n");
        return;
    }
    // Reserved before taking the ring's lock, so the copy under it never allocates.
    let mut text: Vec<u8> = Vec::with_capacity(logger::RING_BYTES);
    logger::read_ring(|piece| {
        let room = text.capacity() - text.len();
        text.extend_from_slice(&piece[..piece.len().min(room)]);
    });
    crate::console::write_bytes(&text);
}

/// Parses a level name as `log LEVEL` takes it.
fn parse_level(name: &str) -> Option<LevelFilter> {
    Some(match name {
        "off" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warn" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

/// `log [LEVEL]`: shows or sets the console's log level (every record still goes to the ring `dmesg` prints).
pub fn log_level(words: &[String]) {
    match words {
        [_] => crate::console::write_fmt(format_args!("log: console level {}\n", logger::console_level())),
        [_, name] => match parse_level(name) {
            Some(level) => {
                logger::set_console_level(level);
                crate::console::write_fmt(format_args!("log: console level {level}\n"));
            }
            None => crate::console::write_fmt(format_args!(
                "log: unknown level {name} (usage: log [off|error|warn|info|debug|trace])\n"
            )),
        },
        _ => crate::console::write_str("usage: log [off|error|warn|info|debug|trace]\n"),
    }
}
