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
