//! The screen console: VGA text mode when GRUB leaves one (BIOS boots), else the Multiboot2 linear framebuffer
//! (UEFI boots), drawn with the Noto Sans Mono bitmap font.
//!
//! # Purpose
//! A second console beside COM1 for a machine with a screen. Output bytes are interpreted like a small terminal
//! (`text_terminal::Terminal`): printable ASCII is drawn at the cursor, `\n` starts a new line (scrolling at the
//! bottom), `\r` returns to column 0, backspace (0x08) moves left, and the CSI escapes the line editor emits are
//! honoured: `ESC [ n D`/`C` (cursor left/right), `ESC [ K` (erase to end of line), `ESC [ 2 J` and `ESC [ H`
//! (clear, home). Others are dropped. Both back ends show the same 80x25 grid:
//! - `vga`: the cells are the text buffer's own words at 0xb8000; the hardware cursor follows the text cursor;
//! - `framebuffer`: the cells are drawn as glyphs (16, 24 or 32 bits per pixel, any RGB order), the largest font
//!   of 16/20/24/32 px that fits, centred, with a block cursor; see that module for the drawing strategy.
//!
//! # Key functions
//! [`init`] ([`ScreenError`]), [`write_bytes`], [`write_str`], [`write_fmt`], [`is_ready`], [`mode`].
//!
//! # Control flow
//! 1. [`init`] reads `boot_info::framebuffer()`: a direct-RGB framebuffer selects the framebuffer back end; an
//!    EGA-text one, or none, selects VGA text mode; any other (indexed colour, unknown type, unsupported depth, a
//!    screen smaller than 560x400) is refused with a [`ScreenError`] and a log line saying why, and the console
//!    stays off. The chosen back end is mapped (uncached) and cleared, and its mode is logged.
//! 2. Writers take [`SCREEN`] and feed bytes to the terminal state machine, which sets cells in the back end;
//!    after each write the cursor is moved.
#![no_std]

extern crate alloc;

mod framebuffer;
mod vga;

use boot_info::FramebufferKind;
use core::fmt;
use framebuffer::Framebuffer;
pub use framebuffer::FramebufferMode;
use memory_structs::PhysicalAddress;
use spin::Mutex;
use text_terminal::Terminal;
use vga::VgaText;

pub use text_terminal::{COLUMNS, ROWS};

/// The back end and the terminal state, `None` before [`init`] (or after it failed). Lock order: a leaf lock,
/// taken with interrupts disabled so a logger call from an interrupt handler on this CPU cannot deadlock.
static SCREEN: Mutex<Option<Screen>> = Mutex::new(None);

/// The terminal and what it draws into.
struct Screen {
    back: Back,
    terminal: Terminal,
}

/// Where the cells go.
enum Back {
    /// The VGA text buffer.
    Vga(VgaText),
    /// A linear framebuffer.
    Framebuffer(alloc::boxed::Box<Framebuffer>),
}

/// Which back end the screen console uses (for the `machine` command and the boot log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenMode {
    /// VGA text mode, 80x25 at physical 0xb8000.
    VgaText,
    /// A linear framebuffer.
    Framebuffer(FramebufferMode),
}

/// Why the screen console could not be set up (it then stays off: [`write_bytes`] does nothing).
#[derive(Debug)]
pub enum ScreenError {
    /// Mapping the text buffer or framebuffer failed.
    Map(memory::MapError),
    /// The framebuffer uses indexed colour (a palette of `colors` entries), which is not drawn.
    IndexedColour {
        /// Palette entries announced by the bootloader.
        colors: u16,
    },
    /// The framebuffer tag's type byte is not one this console draws on.
    UnknownType(u8),
    /// The direct-RGB layout is not drawable (depth other than 16/24/32, or an odd channel).
    PixelFormat(text_terminal::pixels::FormatError),
    /// The pitch (bytes per row) is smaller than a row of `width` pixels, or not a multiple of the pixel size.
    Pitch {
        /// Bytes per row, as reported.
        pitch: usize,
        /// Pixels per row, as reported.
        width: usize,
    },
    /// The framebuffer's address is not aligned to its pixel size.
    Misaligned(PhysicalAddress),
    /// The screen cannot hold 80x25 cells of the smallest font (7x16 pixels).
    TooSmall {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
    },
}

impl fmt::Display for ScreenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScreenError::Map(error) => write!(f, "mapping the screen failed: {error:?}"),
            ScreenError::IndexedColour { colors } => {
                write!(f, "the framebuffer uses indexed colour ({colors} palette entries), which is not supported")
            }
            ScreenError::UnknownType(kind) => write!(f, "unsupported framebuffer type {kind}"),
            ScreenError::PixelFormat(error) => write!(f, "unsupported pixel format: {error:?}"),
            ScreenError::Pitch { pitch, width } => write!(f, "pitch {pitch} bytes does not fit {width} pixels"),
            ScreenError::Misaligned(address) => write!(f, "framebuffer at {:#x} is not pixel-aligned", address.value()),
            ScreenError::TooSmall { width, height } => {
                write!(f, "a {width}x{height} screen cannot hold {COLUMNS}x{ROWS} cells of the 7x16 font")
            }
        }
    }
}

/// Chooses, maps and clears the back end (see the crate documentation) and logs the mode. Later calls do nothing.
///
/// # Errors
/// [`ScreenError`] (also logged as a warning); the console then stays off.
pub fn init() -> Result<(), ScreenError> {
    let result = x86_64::instructions::interrupts::without_interrupts(|| {
        let mut screen = SCREEN.lock();
        if screen.is_some() {
            return Ok(None);
        }
        let back = match boot_info::framebuffer() {
            Some(info) if info.kind != FramebufferKind::EgaText => {
                Back::Framebuffer(alloc::boxed::Box::new(Framebuffer::map(&info)?))
            }
            _ => Back::Vga(VgaText::map().map_err(ScreenError::Map)?),
        };
        let mut new = Screen { back, terminal: Terminal::default() };
        new.clear();
        new.show_cursor();
        let mode = new.mode();
        *screen = Some(new);
        Ok(Some(mode))
    });
    // Logged after the lock is released: a log mirror into this console would otherwise deadlock.
    match result {
        Ok(Some(ScreenMode::VgaText)) => log::info!("screen console: VGA text mode, {COLUMNS}x{ROWS} at 0xb8000"),
        Ok(Some(ScreenMode::Framebuffer(mode))) => log::info!(
            "screen console: framebuffer {}x{}, {} bits per pixel; {COLUMNS}x{ROWS} cells of {}x{} pixels (Noto Sans Mono {} px) at ({}, {})",
            mode.width,
            mode.height,
            mode.bits_per_pixel,
            mode.cell_width,
            mode.font_height,
            mode.font_height,
            mode.left,
            mode.top
        ),
        Ok(None) => {}
        Err(ref error) => log::warn!("screen console: off: {error}"),
    }
    result.map(|_| ())
}

/// Whether [`init`] succeeded.
pub fn is_ready() -> bool {
    mode().is_some()
}

/// The back end in use, or `None` if the console is off.
pub fn mode() -> Option<ScreenMode> {
    x86_64::instructions::interrupts::without_interrupts(|| SCREEN.lock().as_ref().map(Screen::mode))
}

impl Screen {
    fn mode(&self) -> ScreenMode {
        match &self.back {
            Back::Vga(_) => ScreenMode::VgaText,
            Back::Framebuffer(framebuffer) => ScreenMode::Framebuffer(framebuffer.mode()),
        }
    }

    fn clear(&mut self) {
        match &mut self.back {
            Back::Vga(vga) => self.terminal.clear(vga),
            Back::Framebuffer(framebuffer) => self.terminal.clear(&mut **framebuffer),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        match &mut self.back {
            Back::Vga(vga) => bytes.iter().for_each(|&byte| self.terminal.feed(byte, vga)),
            Back::Framebuffer(framebuffer) => {
                bytes.iter().for_each(|&byte| self.terminal.feed(byte, &mut **framebuffer))
            }
        }
    }

    fn show_cursor(&mut self) {
        let index = self.terminal.cursor_index();
        match &mut self.back {
            Back::Vga(vga) => vga.show_cursor(index),
            Back::Framebuffer(framebuffer) => framebuffer.show_cursor(index),
        }
    }
}

/// Draws `bytes` (see the crate documentation for what is interpreted). Does nothing before [`init`].
pub fn write_bytes(bytes: &[u8]) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        if let Some(screen) = SCREEN.lock().as_mut() {
            screen.feed(bytes);
            screen.show_cursor();
        }
    });
}

/// Formats and draws `arguments` under one lock acquisition (usable as a `logger::set_mirror` sink).
pub fn write_fmt(arguments: fmt::Arguments<'_>) {
    struct Writer<'a>(&'a mut Screen);
    impl fmt::Write for Writer<'_> {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            self.0.feed(text.as_bytes());
            Ok(())
        }
    }
    x86_64::instructions::interrupts::without_interrupts(|| {
        if let Some(screen) = SCREEN.lock().as_mut() {
            // Writer never fails; a failing Display impl only truncates this line.
            let _ = fmt::Write::write_fmt(&mut Writer(screen), arguments);
            screen.show_cursor();
        }
    });
}

/// Draws `text`.
pub fn write_str(text: &str) {
    write_bytes(text.as_bytes());
}
