//! The framebuffer back end: the 80x25 cell grid drawn with Noto Sans Mono (the `noto-sans-mono-bitmap` crate,
//! anti-aliased, 16/20/24/32 px) on the linear framebuffer the bootloader set up (UEFI GOP, or a VBE mode).
//!
//! - Geometry: the largest font whose 80x25 grid fits is chosen and the grid is centred
//!   (`text_terminal::pixels::GridLayout`); the margins stay black.
//! - Cells: a shadow copy of every cell's value is kept in RAM, so reading a cell (the terminal's scroll copies
//!   rows) never reads the framebuffer, which is slow uncached memory on real hardware, and a cell is redrawn only
//!   when its value changes: scrolling redraws the cells whose text differs from the row below.
//! - Cursor: a block cursor, drawn as the cell with foreground and background swapped.
//! - Pixels: 16, 24 or 32 bits with any RGB channel positions; the mapping is uncached (the memory crate offers no
//!   write-combining mapping).

use crate::ScreenError;
use boot_info::{FramebufferInfo, FramebufferKind};
use memory::{MappedPages, Permissions};
use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};
use text_terminal::pixels::{Channel, GridLayout, PixelFormat, Rgb, blend, cell_colors};
use text_terminal::{COLUMNS, ROWS};

/// Bytes per page (the mapping granularity).
const PAGE_SIZE: usize = 4096;

/// The font sizes offered, smallest first (all compiled in: about 95 KiB of glyphs).
const HEIGHTS: [RasterHeight; 4] =
    [RasterHeight::Size16, RasterHeight::Size20, RasterHeight::Size24, RasterHeight::Size32];
/// The font weight.
const WEIGHT: FontWeight = FontWeight::Regular;
/// Drawn for cell bytes outside printable ASCII (the terminal stores one 0xfe per byte of a UTF-8 sequence).
const REPLACEMENT: char = '\u{fffd}';

/// The mapped framebuffer, its layout, and the shadow cells.
pub(crate) struct Framebuffer {
    /// The mapping (held for its lifetime: dropping it unmaps the framebuffer).
    _pages: MappedPages,
    /// Virtual address of the first pixel, inside `_pages` (which starts at the page holding it).
    first_pixel: usize,
    pitch: usize,
    format: PixelFormat,
    layout: GridLayout,
    height: RasterHeight,
    /// The value last drawn in each cell (0: not drawn yet, so the first write of any value draws).
    shadow: [u16; COLUMNS * ROWS],
    /// The cell currently drawn as the cursor.
    cursor: Option<usize>,
    /// Screen width and height in pixels.
    size: (usize, usize),
}

/// What the framebuffer console shows, for the boot log and `screen_console::mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramebufferMode {
    /// Screen width in pixels.
    pub width: usize,
    /// Screen height in pixels.
    pub height: usize,
    /// Bits per pixel.
    pub bits_per_pixel: usize,
    /// Font raster height in pixels (16, 20, 24 or 32); also the cell height.
    pub font_height: usize,
    /// Cell width in pixels.
    pub cell_width: usize,
    /// Left edge of the grid in pixels.
    pub left: usize,
    /// Top edge of the grid in pixels.
    pub top: usize,
}

/// Checks that `info` is a framebuffer this back end can draw, and where the grid goes.
fn check(info: &FramebufferInfo) -> Result<(PixelFormat, GridLayout, usize), ScreenError> {
    let (red, green, blue) = match info.kind {
        FramebufferKind::Rgb { red, green, blue } => (red, green, blue),
        FramebufferKind::Indexed { colors } => return Err(ScreenError::IndexedColour { colors }),
        FramebufferKind::EgaText => return Err(ScreenError::UnknownType(2)),
        FramebufferKind::Unknown(kind) => return Err(ScreenError::UnknownType(kind)),
    };
    let channel = |field: boot_info::ColorField| Channel { position: field.position, size: field.size };
    let format = PixelFormat::new(info.bits_per_pixel, channel(red), channel(green), channel(blue))
        .map_err(ScreenError::PixelFormat)?;
    let (width, height) = (info.width as usize, info.height as usize);
    let pitch = info.pitch as usize;
    let alignment = if format.bytes_per_pixel == 3 { 1 } else { format.bytes_per_pixel };
    if pitch < width * format.bytes_per_pixel || !pitch.is_multiple_of(alignment) {
        return Err(ScreenError::Pitch { pitch, width });
    }
    if !info.address.value().is_multiple_of(alignment) {
        return Err(ScreenError::Misaligned(info.address));
    }
    let cells = HEIGHTS.map(|height| (get_raster_width(WEIGHT, height), height.val()));
    let layout = GridLayout::fit(width, height, &cells).ok_or(ScreenError::TooSmall { width, height })?;
    let bytes = info.size_in_bytes().ok_or(ScreenError::Pitch { pitch, width })?;
    Ok((format, layout, bytes))
}

impl Framebuffer {
    /// Checks and maps the framebuffer described by `info` and paints it black.
    ///
    /// # Errors
    /// [`ScreenError`]: an unsupported format (indexed colour, a depth other than 16/24/32, odd channels), a
    /// screen too small for 80x25 cells of the smallest font, or the mapping failed.
    pub(crate) fn map(info: &FramebufferInfo) -> Result<Framebuffer, ScreenError> {
        let (format, layout, bytes) = check(info)?;
        // SAFETY: the bootloader reported this range as the framebuffer: device memory (map_device_memory refuses
        // RAM), used only by this cell, written with plain volatile stores of whole pixels.
        let pages = unsafe { memory::map_device_memory(info.address, bytes, Permissions::ReadWrite) }
            .map_err(ScreenError::Map)?;
        let first_pixel = pages.start_address().value() + info.address.value() % PAGE_SIZE;
        let mut framebuffer = Framebuffer {
            _pages: pages,
            first_pixel,
            pitch: info.pitch as usize,
            format,
            layout,
            height: HEIGHTS[layout.font],
            shadow: [0; COLUMNS * ROWS],
            cursor: None,
            size: (info.width as usize, info.height as usize),
        };
        let black = framebuffer.format.pack(Rgb::default());
        let (width, height) = framebuffer.size;
        (0..height).for_each(|y| (0..width).for_each(|x| framebuffer.write_pixel(x, y, black)));
        Ok(framebuffer)
    }

    /// The mode, for logs and `screen_console::mode`.
    pub(crate) fn mode(&self) -> FramebufferMode {
        FramebufferMode {
            width: self.size.0,
            height: self.size.1,
            bits_per_pixel: self.format.bytes_per_pixel * 8,
            font_height: self.layout.cell_height,
            cell_width: self.layout.cell_width,
            left: self.layout.left,
            top: self.layout.top,
        }
    }

    /// Draws the block cursor at cell `index` (out of range: no cursor), restoring the cell it was on before.
    pub(crate) fn show_cursor(&mut self, index: usize) {
        if self.cursor == Some(index) {
            return;
        }
        if let Some(old) = self.cursor.take() {
            self.draw_cell(old, self.shadow[old], false);
        }
        if index < COLUMNS * ROWS {
            self.draw_cell(index, self.shadow[index], true);
            self.cursor = Some(index);
        }
    }

    /// Draws cell `index` showing `value` (character low byte, attribute high byte), colours swapped if `inverted`.
    fn draw_cell(&mut self, index: usize, value: u16, inverted: bool) {
        let byte = (value & 0xff) as u8;
        let character = if (0x20..=0x7e).contains(&byte) { char::from(byte) } else { REPLACEMENT };
        let raster = get_raster(character, WEIGHT, self.height).or_else(|| get_raster(' ', WEIGHT, self.height));
        let (mut foreground, mut background) = cell_colors(value);
        if inverted {
            core::mem::swap(&mut foreground, &mut background);
        }
        let (left, top) = self.layout.cell_origin(index);
        for y in 0..self.layout.cell_height {
            for x in 0..self.layout.cell_width {
                let intensity = raster.and_then(|raster| raster.pixel(x, y)).unwrap_or(0);
                let pixel = self.format.pack(blend(foreground, background, intensity));
                self.write_pixel(left + x, top + y, pixel);
            }
        }
    }

    /// Stores `pixel` (already packed) at (`x`, `y`); outside the screen: ignored.
    fn write_pixel(&mut self, x: usize, y: usize, pixel: u32) {
        if x >= self.size.0 || y >= self.size.1 {
            return;
        }
        let address = self.first_pixel + y * self.pitch + x * self.format.bytes_per_pixel;
        // `map` checked `pitch >= width * bytes_per_pixel` and mapped `pitch * height` bytes from the first pixel
        // (`self._pages`, owned by `self`). The 32- and 16-bit stores are aligned because `check` refuses unaligned
        // framebuffers (GOP and VBE ones are page-aligned); 24-bit pixels are stored byte by byte.
        // SAFETY: `x < width` and `y < height`, so the pixel's bytes lie inside that mapping, and stores are aligned.
        unsafe {
            let base = address as *mut u8;
            match self.format.bytes_per_pixel {
                4 => base.cast::<u32>().write_volatile(pixel),
                2 => base.cast::<u16>().write_volatile(pixel as u16),
                _ => (0..3).for_each(|byte| base.add(byte).write_volatile((pixel >> (8 * byte)) as u8)),
            }
        }
    }
}

/// Cells are kept in [`Framebuffer::shadow`]; setting one draws it if its value changed.
impl text_terminal::Cells for Framebuffer {
    fn set(&mut self, index: usize, value: u16) {
        if index < COLUMNS * ROWS && self.shadow[index] != value {
            self.shadow[index] = value;
            self.draw_cell(index, value, false);
            if self.cursor == Some(index) {
                self.cursor = None;
            }
        }
    }

    fn get(&self, index: usize) -> u16 {
        self.shadow.get(index).copied().unwrap_or(0)
    }
}
