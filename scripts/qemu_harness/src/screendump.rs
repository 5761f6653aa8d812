//! Reading the framebuffer console back from a QEMU `screendump` (a binary PPM of what the display shows).
//!
//! The guest logs where its 80x25 grid is ("screen console: framebuffer WxH, ...; 80x25 cells of CWxCH pixels
//! (Noto Sans Mono N px) at (L, T)"); [`Geometry::from_log_line`] reads that line. [`decode`] then cuts the image
//! into cells and names each cell's character by rendering every printable ASCII glyph of the same font
//! (`noto-sans-mono-bitmap`, drawn here on the host) in the console's colours, light grey (0xaa) on black, and
//! picking the rendering that matches: exactly, up to [`TOLERANCE`] per channel (for 16-bit modes). A cell drawn in
//! swapped colours is the block cursor. A cell that matches no glyph reads as `?`, so text that is not drawn, or
//! drawn wrongly, cannot pass a check of the rows.

use crate::session::{Failure, StepResult};
use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster};
use regex::Regex;

/// Columns of the console grid.
pub const COLUMNS: usize = 80;
/// Rows of the console grid.
pub const ROWS: usize = 25;
/// The console's foreground grey level (VGA colour 7, light grey) on black.
const FOREGROUND: u8 = 0xaa;
/// The largest per-channel difference still taken as a match (16-bit modes keep 5 or 6 bits per channel).
pub const TOLERANCE: u8 = 8;

/// An RGB image.
#[derive(Debug, Clone)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major RGB triples.
    pub pixels: Vec<[u8; 3]>,
}

impl Image {
    /// Parses a binary PPM (`P6`, maximum value 255), as QEMU's `screendump` writes it.
    ///
    /// # Errors
    /// Not a P6 PPM, a maximum other than 255, or fewer pixel bytes than the header announces.
    pub fn from_ppm(bytes: &[u8]) -> StepResult<Image> {
        let mut fields = Vec::new();
        let mut position = 0;
        while fields.len() < 4 {
            while position < bytes.len() && bytes[position].is_ascii_whitespace() {
                position += 1;
            }
            if bytes.get(position) == Some(&b'#') {
                while position < bytes.len() && bytes[position] != b'\n' {
                    position += 1;
                }
                continue;
            }
            let start = position;
            while position < bytes.len() && !bytes[position].is_ascii_whitespace() {
                position += 1;
            }
            if start == position {
                return Err(Failure("screendump: truncated PPM header".into()));
            }
            fields.push(String::from_utf8_lossy(&bytes[start..position]).into_owned());
        }
        let number = |text: &str| text.parse::<usize>().map_err(|e| Failure(format!("screendump: {text:?}: {e}")));
        if fields[0] != "P6" || fields[3] != "255" {
            return Err(Failure(format!("screendump: not an 8-bit P6 PPM: {fields:?}")));
        }
        let (width, height) = (number(&fields[1])?, number(&fields[2])?);
        let data = bytes.get(position + 1..).unwrap_or_default();
        if data.len() < width * height * 3 {
            return Err(Failure(format!("screendump: {} pixel bytes for {width}x{height}", data.len())));
        }
        let pixels = data[..width * height * 3].chunks(3).map(|p| [p[0], p[1], p[2]]).collect();
        Ok(Image { width, height, pixels })
    }

    fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        self.pixels[y * self.width + x]
    }
}

/// Where the guest drew its grid, from its boot log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Screen size in pixels.
    pub screen: (usize, usize),
    /// Cell size in pixels (the font's raster width and height).
    pub cell: (usize, usize),
    /// Top-left pixel of the grid.
    pub origin: (usize, usize),
}

impl Geometry {
    /// The pattern of the guest's log line (see the module documentation).
    pub const LOG_PATTERN: &'static str = r"screen console: framebuffer (\d+)x(\d+), \d+ bits per pixel; 80x25 cells of (\d+)x(\d+) pixels \(Noto Sans Mono \d+ px\) at \((\d+), (\d+)\)";

    /// Reads the geometry from the guest's log line, or `None` if `line` is not that line.
    pub fn from_log_line(line: &str) -> Option<Geometry> {
        let found = Regex::new(Self::LOG_PATTERN).expect("constant pattern").captures(line)?;
        let value = |index: usize| found[index].parse::<usize>().ok();
        Some(Geometry { screen: (value(1)?, value(2)?), cell: (value(3)?, value(4)?), origin: (value(5)?, value(6)?) })
    }
}

/// The screen read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The 25 rows, trailing blanks trimmed; `?` for a cell that matches no glyph.
    pub rows: Vec<String>,
    /// The cursor's cell (column, row), if one cell is drawn in swapped colours.
    pub cursor: Option<(usize, usize)>,
}

/// One candidate rendering: the expected grey level of each pixel of a cell.
struct Candidate {
    character: char,
    inverted: bool,
    levels: Vec<u8>,
}

/// Renders every printable ASCII character, normal and swapped, at `cell` size.
fn candidates(cell: (usize, usize)) -> StepResult<Vec<Candidate>> {
    let height = match cell.1 {
        16 => RasterHeight::Size16,
        20 => RasterHeight::Size20,
        24 => RasterHeight::Size24,
        32 => RasterHeight::Size32,
        other => return Err(Failure(format!("screendump: no {other}-pixel Noto Sans Mono raster"))),
    };
    let mut list = Vec::new();
    for character in ' '..='~' {
        let raster = get_raster(character, FontWeight::Regular, height)
            .ok_or_else(|| Failure(format!("screendump: no glyph for {character:?}")))?;
        if raster.width() != cell.0 {
            return Err(Failure(format!("screendump: glyphs are {} pixels wide, cells {}", raster.width(), cell.0)));
        }
        for inverted in [false, true] {
            let (foreground, background) = if inverted { (0, FOREGROUND) } else { (FOREGROUND, 0) };
            let levels = raster
                .pixels()
                .iter()
                .map(|&intensity| {
                    let (fg, bg, i) = (i32::from(foreground), i32::from(background), i32::from(intensity));
                    (bg + (fg - bg) * i / 255) as u8
                })
                .collect();
            list.push(Candidate { character, inverted, levels });
        }
    }
    Ok(list)
}

/// Reads the characters of every cell of `image` laid out as `geometry` says.
///
/// # Errors
/// The image is not the size the guest logged, or the cell size is not one of the font's.
pub fn decode(image: &Image, geometry: &Geometry) -> StepResult<Decoded> {
    if (image.width, image.height) != geometry.screen {
        return Err(Failure(format!(
            "screendump is {}x{}, the guest drew on {}x{}",
            image.width, image.height, geometry.screen.0, geometry.screen.1
        )));
    }
    let candidates = candidates(geometry.cell)?;
    let (cell_width, cell_height) = geometry.cell;
    let mut rows = Vec::new();
    let mut cursor = None;
    for row in 0..ROWS {
        let mut text = String::new();
        for column in 0..COLUMNS {
            let (left, top) = (geometry.origin.0 + column * cell_width, geometry.origin.1 + row * cell_height);
            let pixels: Vec<[u8; 3]> = (0..cell_height)
                .flat_map(|y| (0..cell_width).map(move |x| (x, y)))
                .map(|(x, y)| image.pixel(left + x, top + y))
                .collect();
            let best = candidates
                .iter()
                .map(|candidate| (candidate, distance(&pixels, &candidate.levels)))
                .min_by_key(|(_, (sum, _))| *sum);
            match best {
                Some((candidate, (_, worst))) if worst <= TOLERANCE => {
                    text.push(candidate.character);
                    if candidate.inverted {
                        cursor = Some((column, row));
                    }
                }
                _ => text.push('?'),
            }
        }
        rows.push(text.trim_end().to_string());
    }
    Ok(Decoded { rows, cursor })
}

/// Checks a `screendump` of VGA text mode (QEMU draws 9x16-pixel character cells, 720x400) against the rows
/// read from the text buffer: a row holds lit pixels exactly when it holds text. This shows that what the guest
/// wrote into the buffer is what the display shows, without depending on QEMU's font.
///
/// # Errors
/// The image is not 720x400, or a row is lit without text or holds text without being lit.
pub fn check_vga_dump(image: &Image, rows: &[String]) -> StepResult<()> {
    const CELL: (usize, usize) = (9, 16);
    if (image.width, image.height) != (COLUMNS * CELL.0, ROWS * CELL.1) {
        return Err(Failure(format!("VGA text screendump is {}x{}, expected 720x400", image.width, image.height)));
    }
    for (row, text) in rows.iter().enumerate().take(ROWS) {
        let lit = (row * CELL.1..(row + 1) * CELL.1)
            .any(|y| (0..image.width).any(|x| image.pixel(x, y).iter().any(|&channel| channel > 0x20)));
        if lit != !text.trim().is_empty() {
            return Err(Failure(format!(
                "VGA text screendump row {row} is {} but the text buffer row is {text:?}",
                if lit { "lit" } else { "dark" }
            )));
        }
    }
    Ok(())
}

/// (Sum of absolute differences, largest difference) between `pixels` and the grey `levels`.
fn distance(pixels: &[[u8; 3]], levels: &[u8]) -> (u32, u8) {
    pixels.iter().zip(levels).fold((0, 0), |(sum, worst), (pixel, &level)| {
        let difference = pixel.iter().map(|&channel| channel.abs_diff(level)).max().unwrap_or(0);
        (sum + u32::from(difference), worst.max(difference))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GEOMETRY: Geometry = Geometry { screen: (800, 600), cell: (9, 20), origin: (40, 50) };

    /// Draws `text` at (column, row) as the guest does (an independent copy of its blending, for the tests).
    fn draw(image: &mut Image, column: usize, row: usize, text: &str, inverted_at: Option<usize>) {
        for (offset, character) in text.chars().enumerate() {
            let raster = get_raster(character, FontWeight::Regular, RasterHeight::Size20).unwrap();
            let (left, top) = (40 + (column + offset) * 9, 50 + row * 20);
            for y in 0..20 {
                for x in 0..9 {
                    let intensity = u32::from(raster.pixel(x, y).unwrap());
                    let level = if inverted_at == Some(offset) {
                        (170 - 170 * intensity / 255) as u8
                    } else {
                        (170 * intensity / 255) as u8
                    };
                    image.pixels[(top + y) * 800 + left + x] = [level; 3];
                }
            }
        }
    }

    fn black() -> Image {
        Image { width: 800, height: 600, pixels: vec![[0; 3]; 800 * 600] }
    }

    #[test]
    fn reads_back_drawn_text_and_the_cursor() {
        let mut image = black();
        draw(&mut image, 0, 3, "theseus> ps", None);
        draw(&mut image, 0, 4, "theseus>  ", Some(9));
        let decoded = decode(&image, &GEOMETRY).unwrap();
        assert_eq!(decoded.rows[3], "theseus> ps");
        assert_eq!(decoded.rows[4], "theseus>");
        assert_eq!(decoded.cursor, Some((9, 4)));
        assert!(decoded.rows.iter().enumerate().all(|(row, text)| row == 3 || row == 4 || text.is_empty()));
    }

    #[test]
    fn undrawn_or_damaged_text_does_not_read_as_text() {
        let decoded = decode(&black(), &GEOMETRY).unwrap();
        assert!(decoded.rows.iter().all(String::is_empty));
        assert_eq!(decoded.cursor, None);
        // A glyph drawn one pixel off, or in another colour, matches nothing.
        let mut image = black();
        draw(&mut image, 0, 0, "ps", None);
        image.pixels.rotate_right(1);
        assert_ne!(decode(&image, &GEOMETRY).unwrap().rows[0], "ps");
        let mut image = black();
        draw(&mut image, 0, 0, "ps", None);
        image.pixels.iter_mut().for_each(|pixel| pixel[0] = pixel[0].saturating_mul(2));
        assert_eq!(decode(&image, &GEOMETRY).unwrap().rows[0], "??");
    }

    #[test]
    fn a_vga_dump_must_light_exactly_the_rows_with_text() {
        let mut image = Image { width: 720, height: 400, pixels: vec![[0; 3]; 720 * 400] };
        let mut rows = vec![String::new(); ROWS];
        rows[1] = "theseus>".into();
        assert!(check_vga_dump(&image, &rows).is_err()); // text in the buffer, nothing shown
        image.pixels[16 * 720 + 5] = [0xaa; 3];
        assert!(check_vga_dump(&image, &rows).is_ok());
        rows[1].clear();
        assert!(check_vga_dump(&image, &rows).is_err()); // shown, but no text in the buffer
        assert!(check_vga_dump(&black(), &rows).is_err()); // wrong size
    }

    #[test]
    fn parses_the_log_line_and_ppm() {
        let line = "[ 9.6] INFO  screen_console: screen console: framebuffer 800x600, 24 bits per pixel; 80x25 cells of 9x20 pixels (Noto Sans Mono 20 px) at (40, 50)";
        assert_eq!(Geometry::from_log_line(line), Some(GEOMETRY));
        assert_eq!(Geometry::from_log_line("screen console: VGA text mode, 80x25 at 0xb8000"), None);
        let mut ppm = b"P6\n2 1\n255\n".to_vec();
        ppm.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        let image = Image::from_ppm(&ppm).unwrap();
        assert_eq!((image.width, image.height, image.pixels.clone()), (2, 1, vec![[1, 2, 3], [4, 5, 6]]));
        assert!(Image::from_ppm(b"P6\n2 1\n255\n\x01\x02").is_err());
        assert!(Image::from_ppm(b"P5\n2 1\n255\n\x01\x02").is_err());
        assert!(decode(&image, &GEOMETRY).is_err());
    }
}
