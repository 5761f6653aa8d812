//! The VGA text-mode back end: 80x25 cells at physical 0xb8000, as GRUB leaves a BIOS-booted PC.

use memory::{MappedPages, Permissions};
use memory_structs::PhysicalAddress;
use text_terminal::{COLUMNS, ROWS};
use x86_64::instructions::port::Port;

/// Physical address of the VGA colour text buffer (IBM VGA reference: memory map B8000h-BFFFFh).
const TEXT_BUFFER: usize = 0xb8000;

/// The mapped text buffer.
pub(crate) struct VgaText {
    pages: MappedPages,
}

impl VgaText {
    /// Maps the text buffer.
    ///
    /// # Errors
    /// The mapping failed.
    pub(crate) fn map() -> Result<VgaText, memory::MapError> {
        // SAFETY: 0xb8000 is the VGA text buffer, device memory outside RAM (map_device_memory refuses RAM); only
        // this cell accesses it, with volatile 16-bit writes, which the device tolerates.
        let pages = unsafe {
            memory::map_device_memory(PhysicalAddress::new(TEXT_BUFFER), COLUMNS * ROWS * 2, Permissions::ReadWrite)
        }?;
        Ok(VgaText { pages })
    }

    /// Moves the blinking hardware cursor to cell `index` (CRT controller registers 0x0e/0x0f, cursor location).
    /// Callers hold the console lock, so the index/data port pair is not interleaved.
    pub(crate) fn show_cursor(&mut self, index: usize) {
        let mut select = Port::<u8>::new(0x3d4);
        let mut data = Port::<u8>::new(0x3d5);
        // SAFETY: the VGA CRT controller's index/data ports; selecting and writing the cursor location registers
        // has no effect beyond moving the cursor; `&mut self` (under the console lock) keeps the pair together.
        unsafe {
            select.write(0x0f);
            data.write((index & 0xff) as u8);
            select.write(0x0e);
            data.write(((index >> 8) & 0xff) as u8);
        }
    }

    fn base(&self) -> *mut u16 {
        self.pages.start_address().value() as *mut u16
    }
}

/// Cells are the buffer's own 16-bit words (character in the low byte, attribute in the high byte).
impl text_terminal::Cells for VgaText {
    fn set(&mut self, index: usize, value: u16) {
        if index < COLUMNS * ROWS {
            // SAFETY: `base` is the start of the mapping of the whole buffer (COLUMNS * ROWS cells), owned by
            // `self`; index is in bounds.
            unsafe { self.base().add(index).write_volatile(value) }
        }
    }

    fn get(&self, index: usize) -> u16 {
        if index < COLUMNS * ROWS {
            // SAFETY: as in `set`.
            unsafe { self.base().add(index).read_volatile() }
        } else {
            0
        }
    }
}
