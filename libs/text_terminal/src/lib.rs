//! The screen console's terminal state machine: a cursor over a grid of 80x25 cells, and the escape parser.
//!
//! Key types: [`Terminal`] (cursor and parser state), [`Cells`] (the grid it draws into: the VGA text buffer or
//! the framebuffer back end in the kernel, a plain array in the tests). Control flow: [`Terminal::feed`] takes one
//! output byte at a time; plain bytes are drawn or move the cursor, `ESC [` starts a CSI sequence whose final byte
//! acts. The [`pixels`] module holds the arithmetic of drawing these cells on a linear framebuffer (blending,
//! pixel packing, the VGA palette, the grid's placement).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod pixels;
#[cfg(test)]
mod tests;

/// Columns of the text screen.
pub const COLUMNS: usize = 80;
/// Rows of the text screen.
pub const ROWS: usize = 25;
/// Light grey on black (VGA attribute byte 0x07), in the cell's high byte.
pub const ATTRIBUTE: u16 = 0x07 << 8;
/// Longest CSI parameter accepted (larger numbers saturate).
const MAX_PARAMETER: u16 = 999;

/// A grid of `COLUMNS * ROWS` cells, row-major, character in the low byte and attribute in the high byte.
pub trait Cells {
    /// Writes cell `index` (out of range: ignored).
    fn set(&mut self, index: usize, value: u16);
    /// Reads cell `index` (out of range: 0).
    fn get(&self, index: usize) -> u16;
}

/// Where the parser is in an escape sequence.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Parser {
    /// Plain text.
    #[default]
    Text,
    /// After ESC.
    AfterEscape,
    /// After `ESC [`, collecting the numeric parameter.
    Csi(Option<u16>),
}

/// Cursor position and parser state.
#[derive(Default)]
pub struct Terminal {
    row: usize,
    column: usize,
    escape: Parser,
}

impl Terminal {
    /// The cursor as a cell index.
    pub fn cursor_index(&self) -> usize {
        self.row * COLUMNS + self.column
    }

    /// Blanks the screen and homes the cursor.
    pub fn clear(&mut self, cells: &mut impl Cells) {
        (0..COLUMNS * ROWS).for_each(|index| cells.set(index, ATTRIBUTE | u16::from(b' ')));
        self.row = 0;
        self.column = 0;
    }

    /// Interprets one output byte.
    pub fn feed(&mut self, byte: u8, cells: &mut impl Cells) {
        match (self.escape, byte) {
            (Parser::Text, 0x1b) => self.escape = Parser::AfterEscape,
            (Parser::Text, _) => self.plain(byte, cells),
            (Parser::AfterEscape, b'[') => self.escape = Parser::Csi(None),
            (Parser::AfterEscape, _) => self.escape = Parser::Text,
            (Parser::Csi(parameter), b'0'..=b'9') => {
                let value = parameter.unwrap_or(0).saturating_mul(10).saturating_add(u16::from(byte - b'0'));
                self.escape = Parser::Csi(Some(value.min(MAX_PARAMETER)));
            }
            (Parser::Csi(_), b';' | b'?') => {}
            (Parser::Csi(parameter), _) => {
                self.escape = Parser::Text;
                self.csi(byte, parameter, cells);
            }
        }
    }

    fn plain(&mut self, byte: u8, cells: &mut impl Cells) {
        match byte {
            b'\n' => self.new_line(cells),
            b'\r' => self.column = 0,
            0x08 => self.column = self.column.saturating_sub(1),
            b'\t' => {
                let next = (self.column / 8 + 1) * 8;
                self.column = next.min(COLUMNS - 1);
            }
            0x20..=0x7e => self.put(byte, cells),
            0x80..=0xff => self.put(0xfe, cells), // UTF-8 bytes: a block (code page 437) per byte
            _ => {}
        }
    }

    fn put(&mut self, byte: u8, cells: &mut impl Cells) {
        if self.column >= COLUMNS {
            self.new_line(cells);
        }
        cells.set(self.cursor_index(), ATTRIBUTE | u16::from(byte));
        self.column += 1;
    }

    fn new_line(&mut self, cells: &mut impl Cells) {
        self.column = 0;
        if self.row + 1 < ROWS {
            self.row += 1;
            return;
        }
        for index in 0..COLUMNS * (ROWS - 1) {
            cells.set(index, cells.get(index + COLUMNS));
        }
        (COLUMNS * (ROWS - 1)..COLUMNS * ROWS).for_each(|index| cells.set(index, ATTRIBUTE | u16::from(b' ')));
    }

    fn csi(&mut self, command: u8, parameter: Option<u16>, cells: &mut impl Cells) {
        let count = usize::from(parameter.unwrap_or(1).max(1));
        match command {
            b'D' => self.column = self.column.min(COLUMNS - 1).saturating_sub(count),
            b'C' => self.column = (self.column + count).min(COLUMNS - 1),
            b'K' => {
                let start = self.cursor_index().min(self.row * COLUMNS + COLUMNS);
                (start..(self.row + 1) * COLUMNS).for_each(|index| cells.set(index, ATTRIBUTE | u16::from(b' ')));
            }
            b'J' if parameter == Some(2) => {
                let (row, column) = (self.row, self.column);
                self.clear(cells);
                (self.row, self.column) = (row, column);
            }
            b'H' => {
                self.row = 0;
                self.column = 0;
            }
            _ => {}
        }
    }
}
