//! Pixel arithmetic for drawing the cell grid on a linear framebuffer: colour blending, packing into a pixel of
//! any direct-RGB layout, the VGA palette, and where the grid goes on the screen. Pure functions, host-tested;
//! the screen console's framebuffer back end does the memory writes.

use crate::{COLUMNS, ROWS};

/// An 8-bit-per-channel colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rgb {
    /// Red, 0..=255.
    pub red: u8,
    /// Green, 0..=255.
    pub green: u8,
    /// Blue, 0..=255.
    pub blue: u8,
}

/// The 16 colours of a VGA attribute nibble (IBM VGA BIOS default palette: 0 black, 7 light grey, 8 dark grey,
/// 15 white; intensities 0x00/0xaa/0x55/0xff).
pub const VGA_PALETTE: [Rgb; 16] = {
    const fn c(red: u8, green: u8, blue: u8) -> Rgb {
        Rgb { red, green, blue }
    }
    [
        c(0x00, 0x00, 0x00),
        c(0x00, 0x00, 0xaa),
        c(0x00, 0xaa, 0x00),
        c(0x00, 0xaa, 0xaa),
        c(0xaa, 0x00, 0x00),
        c(0xaa, 0x00, 0xaa),
        c(0xaa, 0x55, 0x00),
        c(0xaa, 0xaa, 0xaa),
        c(0x55, 0x55, 0x55),
        c(0x55, 0x55, 0xff),
        c(0x55, 0xff, 0x55),
        c(0x55, 0xff, 0xff),
        c(0xff, 0x55, 0x55),
        c(0xff, 0x55, 0xff),
        c(0xff, 0xff, 0x55),
        c(0xff, 0xff, 0xff),
    ]
};

/// The foreground and background colours of a cell value (attribute in the high byte: low nibble foreground,
/// high nibble background, as in VGA text mode; the blink bit is taken as a background intensity bit).
pub fn cell_colors(cell: u16) -> (Rgb, Rgb) {
    let attribute = (cell >> 8) as usize;
    (VGA_PALETTE[attribute & 0x0f], VGA_PALETTE[(attribute >> 4) & 0x0f])
}

/// `background` moved towards `foreground` by `intensity` / 255 (0: background, 255: foreground), per channel,
/// rounded down: `bg + (fg - bg) * intensity / 255`. The screen test on the host uses the same formula.
pub fn blend(foreground: Rgb, background: Rgb, intensity: u8) -> Rgb {
    let mix = |fg: u8, bg: u8| {
        let (fg, bg, i) = (i32::from(fg), i32::from(bg), i32::from(intensity));
        (bg + (fg - bg) * i / 255) as u8
    };
    Rgb {
        red: mix(foreground.red, background.red),
        green: mix(foreground.green, background.green),
        blue: mix(foreground.blue, background.blue),
    }
}

/// One channel of a pixel: `size` bits at bit `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    /// Bit position of the channel's least significant bit.
    pub position: u8,
    /// Width in bits, 1..=8.
    pub size: u8,
}

/// A direct-RGB pixel layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    /// Bytes per pixel: 2, 3 or 4.
    pub bytes_per_pixel: usize,
    /// The red channel.
    pub red: Channel,
    /// The green channel.
    pub green: Channel,
    /// The blue channel.
    pub blue: Channel,
}

/// Why a pixel layout cannot be drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatError {
    /// Bits per pixel other than 16, 24 or 32; carries the value.
    Depth(u8),
    /// A channel of 0 or more than 8 bits, or one reaching past the pixel; carries (position, size).
    Channel(u8, u8),
}

impl PixelFormat {
    /// Checks a layout given as bits per pixel and (position, size) per channel.
    ///
    /// # Errors
    /// [`FormatError`], naming the depth or the bad channel.
    pub fn new(bits_per_pixel: u8, red: Channel, green: Channel, blue: Channel) -> Result<Self, FormatError> {
        if !matches!(bits_per_pixel, 16 | 24 | 32) {
            return Err(FormatError::Depth(bits_per_pixel));
        }
        for channel in [red, green, blue] {
            if channel.size == 0 || channel.size > 8 || u32::from(channel.position) + u32::from(channel.size) > 32 {
                return Err(FormatError::Channel(channel.position, channel.size));
            }
            if u32::from(channel.position) + u32::from(channel.size) > u32::from(bits_per_pixel) {
                return Err(FormatError::Channel(channel.position, channel.size));
            }
        }
        Ok(PixelFormat { bytes_per_pixel: usize::from(bits_per_pixel / 8), red, green, blue })
    }

    /// The pixel value of `color` (each channel's top `size` bits, shifted to its position).
    pub fn pack(&self, color: Rgb) -> u32 {
        let channel = |value: u8, channel: Channel| (u32::from(value) >> (8 - channel.size)) << channel.position;
        channel(color.red, self.red) | channel(color.green, self.green) | channel(color.blue, self.blue)
    }
}

/// Where the 80x25 grid sits on a framebuffer, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridLayout {
    /// Index into the candidate cell sizes given to [`GridLayout::fit`].
    pub font: usize,
    /// Width of one cell.
    pub cell_width: usize,
    /// Height of one cell.
    pub cell_height: usize,
    /// Left edge of the grid.
    pub left: usize,
    /// Top edge of the grid.
    pub top: usize,
}

impl GridLayout {
    /// The largest of `cells` (candidate (width, height) cell sizes, any order) whose 80x25 grid fits in a
    /// `width` x `height` pixel screen, with the grid centred; `None` if none fits.
    pub fn fit(width: usize, height: usize, cells: &[(usize, usize)]) -> Option<GridLayout> {
        let (font, &(cell_width, cell_height)) = cells
            .iter()
            .enumerate()
            .filter(|(_, (w, h))| w * COLUMNS <= width && h * ROWS <= height)
            .max_by_key(|(_, (w, h))| w * h)?;
        Some(GridLayout {
            font,
            cell_width,
            cell_height,
            left: (width - cell_width * COLUMNS) / 2,
            top: (height - cell_height * ROWS) / 2,
        })
    }

    /// The top-left pixel of cell `index` (row-major; `index < COLUMNS * ROWS`).
    pub fn cell_origin(&self, index: usize) -> (usize, usize) {
        (self.left + (index % COLUMNS) * self.cell_width, self.top + (index / COLUMNS) * self.cell_height)
    }
}
