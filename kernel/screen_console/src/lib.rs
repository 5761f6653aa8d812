//! The screen console: VGA text mode (80x25 cells at physical 0xb8000), as GRUB leaves a BIOS-booted PC.
//!
//! # Purpose
//! A second console beside COM1 for a machine with a screen. Output bytes are interpreted like a small terminal:
//! printable ASCII is drawn at the cursor, `\n` starts a new line (scrolling at the bottom), `\r` returns to
//! column 0, backspace (0x08) moves left, and the CSI escapes the line editor emits are honoured: `ESC [ n D`/`C`
//! (cursor left/right), `ESC [ K` (erase to end of line), `ESC [ 2 J` and `ESC [ H` (clear, home). Others are
//! dropped. The hardware cursor follows the text cursor.
//!
//! # Key functions
//! [`init`] ([`ScreenError`]), [`write_bytes`], [`write_str`], [`write_fmt`], [`is_ready`].
//!
//! # Control flow
//! 1. [`init`] maps the text buffer with `memory::map_device_memory` and clears it.
//! 2. Writers take [`SCREEN`] and feed bytes to the `text_terminal::Terminal` state machine, which writes cells
//!    volatilely.
//!
//! Limit: the Multiboot2 framebuffer (UEFI boots) is not drawn yet; under OVMF the text buffer is simply unseen.
#![no_std]

use memory::{MappedPages, Permissions};
use memory_structs::PhysicalAddress;
use spin::Mutex;
use text_terminal::Terminal;

pub use text_terminal::{COLUMNS, ROWS};

/// Physical address of the VGA colour text buffer (IBM VGA reference: memory map B8000h-BFFFFh).
const TEXT_BUFFER: usize = 0xb8000;

/// The mapped text buffer and the terminal state, `None` before [`init`]. Lock order: a leaf lock (taken with
/// interrupts disabled so a logger call from an interrupt handler on this CPU cannot deadlock).
static SCREEN: Mutex<Option<Screen>> = Mutex::new(None);

/// The text buffer's mapping and the terminal drawing into it.
struct Screen {
    pages: MappedPages,
    terminal: Terminal,
}

/// Why the screen console could not be set up.
#[derive(Debug)]
pub enum ScreenError {
    /// Mapping the text buffer failed.
    Map(memory::MapError),
}

/// Maps and clears the text buffer. Later calls do nothing.
///
/// # Errors
/// [`ScreenError::Map`]; the console then stays off ([`write_bytes`] does nothing).
pub fn init() -> Result<(), ScreenError> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut screen = SCREEN.lock();
        if screen.is_some() {
            return Ok(());
        }
        // SAFETY: 0xb8000 is the VGA text buffer, device memory outside RAM (map_device_memory refuses RAM); only
        // this cell accesses it, with volatile 16-bit writes, which the device tolerates.
        let pages = unsafe {
            memory::map_device_memory(PhysicalAddress::new(TEXT_BUFFER), COLUMNS * ROWS * 2, Permissions::ReadWrite)
        }
        .map_err(ScreenError::Map)?;
        let mut new = Screen { pages, terminal: Terminal::default() };
        new.terminal.clear(&mut cells(&new.pages));
        *screen = Some(new);
        Ok(())
    })
}

/// Whether [`init`] succeeded.
pub fn is_ready() -> bool {
    x86_64::instructions::interrupts::without_interrupts(|| SCREEN.lock().is_some())
}

/// Draws `bytes` (see the crate documentation for what is interpreted). Does nothing before [`init`].
pub fn write_bytes(bytes: &[u8]) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        if let Some(screen) = SCREEN.lock().as_mut() {
            let mut cells = cells(&screen.pages);
            for &byte in bytes {
                screen.terminal.feed(byte, &mut cells);
            }
            move_hardware_cursor(screen.terminal.cursor_index());
        }
    });
}

/// Formats and draws `arguments` under one lock acquisition (usable as a `logger::set_mirror` sink).
pub fn write_fmt(arguments: core::fmt::Arguments<'_>) {
    struct Writer<'a>(&'a mut Screen);
    impl core::fmt::Write for Writer<'_> {
        fn write_str(&mut self, text: &str) -> core::fmt::Result {
            let mut cells = cells(&self.0.pages);
            text.bytes().for_each(|byte| self.0.terminal.feed(byte, &mut cells));
            Ok(())
        }
    }
    x86_64::instructions::interrupts::without_interrupts(|| {
        if let Some(screen) = SCREEN.lock().as_mut() {
            // Writer never fails; a failing Display impl only truncates this line.
            let _ = core::fmt::Write::write_fmt(&mut Writer(screen), arguments);
            move_hardware_cursor(screen.terminal.cursor_index());
        }
    });
}

/// Draws `text`.
pub fn write_str(text: &str) {
    write_bytes(text.as_bytes());
}

/// The text buffer as cells (character in the low byte, attribute in the high byte).
fn cells(pages: &MappedPages) -> VgaCells {
    VgaCells { base: pages.start_address().value() as *mut u16 }
}

/// Volatile access to the mapped 80x25 text buffer.
struct VgaCells {
    base: *mut u16,
}

impl text_terminal::Cells for VgaCells {
    fn set(&mut self, index: usize, value: u16) {
        if index < COLUMNS * ROWS {
            // SAFETY: `base` is the start of the mapping of the whole buffer (COLUMNS * ROWS cells), which lives
            // as long as `SCREEN`'s `Screen`, held locked while this runs; index is in bounds.
            unsafe { self.base.add(index).write_volatile(value) }
        }
    }

    fn get(&self, index: usize) -> u16 {
        if index < COLUMNS * ROWS {
            // SAFETY: as in `set`.
            unsafe { self.base.add(index).read_volatile() }
        } else {
            0
        }
    }
}

/// Moves the blinking hardware cursor to cell `index` (CRT controller registers 0x0e/0x0f, cursor location).
fn move_hardware_cursor(index: usize) {
    use x86_64::instructions::port::Port;
    let mut select = Port::<u8>::new(0x3d4);
    let mut data = Port::<u8>::new(0x3d5);
    // SAFETY: the VGA CRT controller's index/data ports; selecting and writing the cursor location registers has
    // no effect beyond moving the cursor. Callers hold `SCREEN`, so the index/data pair is not interleaved.
    unsafe {
        select.write(0x0f);
        data.write((index & 0xff) as u8);
        select.write(0x0e);
        data.write(((index >> 8) & 0xff) as u8);
    }
}
