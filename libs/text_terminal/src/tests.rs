use super::*;

/// A plain grid of cells.
struct Grid(Vec<u16>);

impl Cells for Grid {
    fn set(&mut self, index: usize, value: u16) {
        if let Some(cell) = self.0.get_mut(index) {
            *cell = value;
        }
    }

    fn get(&self, index: usize) -> u16 {
        self.0.get(index).copied().unwrap_or(0)
    }
}

fn screen(bytes: &[u8]) -> (Terminal, Grid) {
    let mut grid = Grid(vec![0; COLUMNS * ROWS]);
    let mut terminal = Terminal::default();
    terminal.clear(&mut grid);
    bytes.iter().for_each(|&byte| terminal.feed(byte, &mut grid));
    (terminal, grid)
}

fn row(grid: &Grid, number: usize) -> String {
    let text: String =
        grid.0[number * COLUMNS..(number + 1) * COLUMNS].iter().map(|&cell| (cell & 0xff) as u8 as char).collect();
    text.trim_end().to_string()
}

#[test]
fn backspace_space_backspace_erases() {
    let (terminal, grid) = screen(b"> helx\x08 \x08p");
    assert_eq!(row(&grid, 0), "> help");
    assert_eq!(terminal.cursor_index(), 6);
}

#[test]
fn line_editor_redraw_moves_left_and_erases() {
    // What the line editor emits to redraw after an insertion: text, erase to end of line, cursor back.
    let (terminal, grid) = screen(b"> hllo\r> hello\x1b[K\x1b[3D");
    assert_eq!(row(&grid, 0), "> hello");
    assert_eq!(terminal.cursor_index(), 4);
    let (_, grid) = screen(b"abcdef\x1b[3D\x1b[K");
    assert_eq!(row(&grid, 0), "abc");
}

#[test]
fn new_lines_scroll_at_the_bottom() {
    let mut text = Vec::new();
    for number in 0..ROWS + 2 {
        text.extend_from_slice(format!("line {number}\n").as_bytes());
    }
    let (terminal, grid) = screen(&text);
    assert_eq!(row(&grid, 0), "line 3");
    assert_eq!(row(&grid, ROWS - 2), format!("line {}", ROWS + 1));
    assert_eq!(row(&grid, ROWS - 1), "");
    assert_eq!(terminal.cursor_index(), (ROWS - 1) * COLUMNS);
}

#[test]
fn long_lines_wrap() {
    let (_, grid) = screen(&[b'x'; COLUMNS + 3]);
    assert_eq!(row(&grid, 0).len(), COLUMNS);
    assert_eq!(row(&grid, 1), "xxx");
}

#[test]
fn clear_and_home() {
    let (terminal, grid) = screen(b"junk\n\x1b[2J\x1b[Hok");
    assert_eq!(row(&grid, 0), "ok");
    assert_eq!(row(&grid, 1), "");
    assert_eq!(terminal.cursor_index(), 2);
}

#[test]
fn garbage_never_panics_or_leaves_the_grid() {
    let mut bytes = Vec::new();
    for seed in 0u32..20_000 {
        bytes.push((seed.wrapping_mul(2_654_435_761) >> 13) as u8);
    }
    bytes.extend_from_slice(b"\x1b[99999999D\x1b[99999999C\x1b[K\x1b[;?9J");
    let (terminal, _) = screen(&bytes);
    assert!(terminal.cursor_index() < COLUMNS * ROWS + 1);
}

mod pixels {
    use crate::pixels::*;

    const BGRX: (Channel, Channel, Channel) =
        (Channel { position: 16, size: 8 }, Channel { position: 8, size: 8 }, Channel { position: 0, size: 8 });

    #[test]
    fn packs_32_24_and_16_bit_pixels() {
        let (red, green, blue) = BGRX;
        let format = PixelFormat::new(32, red, green, blue).unwrap();
        assert_eq!(format.bytes_per_pixel, 4);
        assert_eq!(format.pack(Rgb { red: 0x12, green: 0x34, blue: 0x56 }), 0x12_3456);
        assert_eq!(PixelFormat::new(24, red, green, blue).unwrap().bytes_per_pixel, 3);
        let rgb565 = PixelFormat::new(
            16,
            Channel { position: 11, size: 5 },
            Channel { position: 5, size: 6 },
            Channel { position: 0, size: 5 },
        )
        .unwrap();
        assert_eq!(rgb565.pack(Rgb { red: 0xff, green: 0xff, blue: 0xff }), 0xffff);
        assert_eq!(rgb565.pack(Rgb { red: 0xaa, green: 0, blue: 0 }), 0x15 << 11);
    }

    #[test]
    fn refuses_unsupported_layouts() {
        let (red, green, blue) = BGRX;
        assert_eq!(PixelFormat::new(8, red, green, blue), Err(FormatError::Depth(8)));
        assert_eq!(PixelFormat::new(16, red, green, blue), Err(FormatError::Channel(16, 8)));
        let wide = Channel { position: 0, size: 10 };
        assert_eq!(PixelFormat::new(32, red, green, wide), Err(FormatError::Channel(0, 10)));
        let empty = Channel { position: 0, size: 0 };
        assert_eq!(PixelFormat::new(32, empty, green, blue), Err(FormatError::Channel(0, 0)));
    }

    #[test]
    fn blends_and_maps_attributes() {
        let (fg, bg) = cell_colors(0x0741);
        assert_eq!((fg, bg), (VGA_PALETTE[7], VGA_PALETTE[0]));
        assert_eq!(blend(fg, bg, 0), bg);
        assert_eq!(blend(fg, bg, 255), fg);
        assert_eq!(blend(fg, bg, 128).red, (0xaa * 128 / 255) as u8);
        assert_eq!(blend(bg, fg, 255), bg);
    }

    #[test]
    fn picks_the_largest_font_that_fits_and_centres_it() {
        let fonts = [(7, 16), (9, 20), (11, 24), (14, 32)];
        let layout = GridLayout::fit(800, 600, &fonts).unwrap();
        assert_eq!((layout.font, layout.cell_width, layout.cell_height), (1, 9, 20));
        assert_eq!((layout.left, layout.top), (40, 50));
        assert_eq!(layout.cell_origin(81), (49, 70));
        assert_eq!(GridLayout::fit(1024, 768, &fonts).unwrap().font, 2);
        assert_eq!(GridLayout::fit(1280, 800, &fonts).unwrap().font, 3);
        assert_eq!(GridLayout::fit(640, 480, &fonts).unwrap().font, 0);
        assert_eq!(GridLayout::fit(559, 480, &fonts), None);
    }
}
