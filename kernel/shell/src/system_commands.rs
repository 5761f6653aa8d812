//! Small system builtins: `echo`, `clear`, `uptime`, `date`, `mem`, `reboot`, `shutdown`.

use alloc::string::String;

/// The ANSI sequence that clears the terminal and moves the cursor home.
const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";

/// `echo WORD...`: prints the words separated by one space.
pub fn echo(words: &[String]) {
    let mut line = String::new();
    for (index, word) in words[1..].iter().enumerate() {
        if index > 0 {
            line.push(' ');
        }
        line.push_str(word);
    }
    line.push('\n');
    crate::console::write_str(&line);
}

/// Prints `usage: {usage}` and returns `false` if `words` has arguments.
fn no_arguments(words: &[String], usage: &str) -> bool {
    if words.len() > 1 {
        crate::console::write_fmt(format_args!("usage: {usage}\n"));
        return false;
    }
    true
}

/// `clear`: clears the serial terminal.
pub fn clear(words: &[String]) {
    if no_arguments(words, "clear") {
        crate::console::write_str(CLEAR_SCREEN);
    }
}

/// `uptime`: time since the machine started (from the TSC), in seconds with milliseconds.
pub fn uptime(words: &[String]) {
    if !no_arguments(words, "uptime") {
        return;
    }
    let milliseconds = tsc::now_ns() / 1_000_000;
    let seconds = milliseconds / 1000;
    crate::console::write_fmt(format_args!(
        "up {}.{:03} s ({}h {:02}m {:02}s)\n",
        seconds,
        milliseconds % 1000,
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    ));
}

/// `date`: the date and time from the CMOS real-time clock.
pub fn date(words: &[String]) {
    if !no_arguments(words, "date") {
        return;
    }
    match rtc::read() {
        Ok(time) => crate::console::write_fmt(format_args!("{time} (RTC)\n")),
        Err(error) => crate::console::write_fmt(format_args!("date: error: {error}\n")),
    }
}

/// `mem`: free frames, page-table frames, free pages and heap use.
pub fn mem(words: &[String]) {
    if !no_arguments(words, "mem") {
        return;
    }
    let stats = memory::stats();
    let kib = |frames: usize| frames * 4;
    crate::console::write_fmt(format_args!(
        "frames: {} free ({} KiB), {} in page tables, {} leaked\n",
        stats.free_frames,
        kib(stats.free_frames),
        stats.page_table_frames,
        stats.leaked_frames
    ));
    crate::console::write_fmt(format_args!(
        "pages:  {} free ({} KiB of virtual space)\n",
        stats.free_pages,
        kib(stats.free_pages)
    ));
    crate::console::write_fmt(format_args!(
        "heap:   {} used + {} free = {} bytes\n",
        stats.heap_used_bytes,
        stats.heap_free_bytes,
        stats.heap_used_bytes + stats.heap_free_bytes
    ));
}

/// `reboot`: restarts the machine (keyboard-controller reset, else a triple fault).
pub fn reboot(words: &[String]) {
    if no_arguments(words, "reboot") {
        crate::console::write_str("reboot: restarting\n");
        power::reboot()
    }
}

/// `shutdown`: powers off (QEMU's isa-debug-exit with the success code; halts elsewhere).
pub fn shutdown(words: &[String]) {
    if no_arguments(words, "shutdown") {
        crate::console::write_str("shutdown: powering off\n");
        power::exit(power::ExitCode::Success)
    }
}
