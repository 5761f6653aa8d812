//! The Multiboot2 framebuffer tag (type 8): where the bootloader left the screen and how its pixels are laid out.
//!
//! Layout (Multiboot2 specification 2.0, 3.6.12 "Framebuffer info", with the field widths GRUB writes, from
//! `struct multiboot_tag_framebuffer_common` in GRUB's `include/multiboot2.h`: the reserved field after the type is
//! 16 bits, so the colour information starts at byte 32):
//!
//! | offset | size | field                                                              |
//! |--------|------|--------------------------------------------------------------------|
//! | 0      | 4    | type (8)                                                           |
//! | 4      | 4    | size                                                               |
//! | 8      | 8    | physical address of the first pixel                                |
//! | 16     | 4    | pitch: bytes from one pixel row (or text row) to the next          |
//! | 20     | 4    | width (pixels, or text columns for EGA text)                       |
//! | 24     | 4    | height (pixels, or text rows for EGA text)                         |
//! | 28     | 1    | bits per pixel                                                     |
//! | 29     | 1    | type: 0 indexed colour, 1 direct RGB, 2 EGA text                   |
//! | 30     | 2    | reserved                                                           |
//! | 32     | -    | colour info: indexed: u16 palette size then 3-byte entries; RGB:   |
//! |        |      | red position, red size, green position, green size, blue position, |
//! |        |      | blue size (one byte each, bit positions from bit 0 of the pixel)   |
//!
//! The tag is untrusted input: [`parse`] never panics, and anything it cannot describe is kept as
//! [`FramebufferKind::Unknown`] rather than guessed at. Whether a console can draw on a framebuffer is the console's
//! decision; this module only reports what the bootloader said.

use memory_structs::PhysicalAddress;

/// Size of the fixed part of the tag (everything before the colour information), in bytes.
pub(crate) const FIXED_SIZE: usize = 32;
/// The tag type of the framebuffer tag (3.6.12).
pub(crate) const TAG_TYPE: u32 = 8;

/// One colour channel of a direct-RGB pixel: `size` bits starting at bit `position` of the pixel value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ColorField {
    /// Bit position of the channel's least significant bit within the pixel (0 = the pixel's bit 0).
    pub position: u8,
    /// Width of the channel in bits (typically 5, 6 or 8).
    pub size: u8,
}

/// How the framebuffer's pixels (or cells) encode colour, as the tag's type byte says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramebufferKind {
    /// Type 0: each pixel is an index into a palette of `colors` entries (not drawn by the screen console).
    Indexed {
        /// Number of palette entries the bootloader announced.
        colors: u16,
    },
    /// Type 1: each pixel holds the three channels directly.
    Rgb {
        /// The red channel.
        red: ColorField,
        /// The green channel.
        green: ColorField,
        /// The blue channel.
        blue: ColorField,
    },
    /// Type 2: EGA/VGA text mode (`width` x `height` character cells, 2 bytes each).
    EgaText,
    /// A type byte this crate does not know, or a colour-info part too short for its type; carries the type byte.
    Unknown(u8),
}

/// The framebuffer the bootloader set up, converted from the Multiboot2 tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramebufferInfo {
    /// Physical address of the first pixel (top-left).
    pub address: PhysicalAddress,
    /// Bytes from the start of one pixel row to the next (at least `width * bits_per_pixel / 8` when sane).
    pub pitch: u32,
    /// Visible width in pixels (text columns for [`FramebufferKind::EgaText`]).
    pub width: u32,
    /// Visible height in pixels (text rows for [`FramebufferKind::EgaText`]).
    pub height: u32,
    /// Bits per pixel (16 for EGA text cells).
    pub bits_per_pixel: u8,
    /// The colour encoding.
    pub kind: FramebufferKind,
}

impl FramebufferInfo {
    /// The bytes the visible rows span (`pitch * height`), or `None` if that overflows `usize`.
    pub fn size_in_bytes(&self) -> Option<usize> {
        (self.pitch as usize).checked_mul(self.height as usize)
    }
}

fn read_u8(tag: &[u8], offset: usize) -> Option<u8> {
    tag.get(offset).copied()
}

fn read_u16(tag: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_le_bytes([read_u8(tag, offset)?, read_u8(tag, offset + 1)?]))
}

fn read_u32(tag: &[u8], offset: usize) -> Option<u32> {
    let field = tag.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes([field[0], field[1], field[2], field[3]]))
}

fn read_u64(tag: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from(read_u32(tag, offset)?) | (u64::from(read_u32(tag, offset + 4)?) << 32))
}

/// Converts one framebuffer tag: `tag` holds the whole tag (header included, `size` bytes as its header says).
///
/// Returns `None` if `tag` is shorter than the fixed part ([`FIXED_SIZE`] bytes) or the address is not a valid
/// physical address; a known type whose colour information is cut short becomes [`FramebufferKind::Unknown`].
pub(crate) fn parse(tag: &[u8]) -> Option<FramebufferInfo> {
    if tag.len() < FIXED_SIZE || read_u32(tag, 0)? != TAG_TYPE {
        return None;
    }
    let address = PhysicalAddress::try_new(usize::try_from(read_u64(tag, 8)?).ok()?).ok()?;
    let type_byte = read_u8(tag, 29)?;
    let field = |offset: usize| Some(ColorField { position: read_u8(tag, offset)?, size: read_u8(tag, offset + 1)? });
    let kind = match type_byte {
        0 => read_u16(tag, FIXED_SIZE).map(|colors| FramebufferKind::Indexed { colors }),
        1 => (|| {
            Some(FramebufferKind::Rgb {
                red: field(FIXED_SIZE)?,
                green: field(FIXED_SIZE + 2)?,
                blue: field(FIXED_SIZE + 4)?,
            })
        })(),
        2 => Some(FramebufferKind::EgaText),
        _ => None,
    }
    .unwrap_or(FramebufferKind::Unknown(type_byte));
    Some(FramebufferInfo {
        address,
        pitch: read_u32(tag, 16)?,
        width: read_u32(tag, 20)?,
        height: read_u32(tag, 24)?,
        bits_per_pixel: read_u8(tag, 28)?,
        kind,
    })
}

/// The framebuffer of the system's boot information ([`crate::global`]): `None` before nano_core published it, or
/// if the bootloader passed no (usable) framebuffer tag. The screen console draws on it; the `machine` command
/// prints it.
pub fn framebuffer() -> Option<FramebufferInfo> {
    crate::global().and_then(crate::BootInfo::framebuffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A type-8 tag as GRUB writes it: OVMF's 800x600 32-bit BGRX mode.
    pub(crate) fn rgb_tag() -> Vec<u8> {
        let mut tag = Vec::new();
        tag.extend_from_slice(&TAG_TYPE.to_le_bytes());
        tag.extend_from_slice(&38u32.to_le_bytes());
        tag.extend_from_slice(&0x8000_0000u64.to_le_bytes());
        tag.extend_from_slice(&3200u32.to_le_bytes());
        tag.extend_from_slice(&800u32.to_le_bytes());
        tag.extend_from_slice(&600u32.to_le_bytes());
        tag.extend_from_slice(&[32, 1, 0, 0]);
        tag.extend_from_slice(&[16, 8, 8, 8, 0, 8]);
        tag
    }

    #[test]
    fn parses_an_rgb_tag() {
        let info = parse(&rgb_tag()).unwrap();
        assert_eq!(info.address, PhysicalAddress::new(0x8000_0000));
        assert_eq!((info.pitch, info.width, info.height, info.bits_per_pixel), (3200, 800, 600, 32));
        let field = |position, size| ColorField { position, size };
        assert_eq!(info.kind, FramebufferKind::Rgb { red: field(16, 8), green: field(8, 8), blue: field(0, 8) });
        assert_eq!(info.size_in_bytes(), Some(3200 * 600));
    }

    #[test]
    fn other_types_and_truncated_tags() {
        let mut tag = rgb_tag();
        tag[29] = 2;
        assert_eq!(parse(&tag).unwrap().kind, FramebufferKind::EgaText);
        tag[29] = 0;
        assert_eq!(parse(&tag).unwrap().kind, FramebufferKind::Indexed { colors: 8 * 256 + 16 });
        tag[29] = 7;
        assert_eq!(parse(&tag).unwrap().kind, FramebufferKind::Unknown(7));
        // RGB with its colour info cut short: kept, but as Unknown.
        let mut short = rgb_tag();
        short.truncate(FIXED_SIZE + 3);
        assert_eq!(parse(&short).unwrap().kind, FramebufferKind::Unknown(1));
        // Shorter than the fixed part, or another tag type: nothing.
        assert_eq!(parse(&rgb_tag()[..FIXED_SIZE - 1]), None);
        let mut other = rgb_tag();
        other[0] = 9;
        assert_eq!(parse(&other), None);
        // Every prefix parses without panicking.
        (0..=rgb_tag().len()).for_each(|length| _ = parse(&rgb_tag()[..length]));
    }

    /// A whole boot information structure (memory map, the given framebuffer tag, end tag), 8-aligned.
    fn structure_with(framebuffer_tag: &[u8]) -> Vec<u64> {
        let mut bytes = vec![0u8; 8];
        bytes.extend_from_slice(&[6, 0, 0, 0, 40, 0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 0]); // memory map, 1 entry
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(framebuffer_tag);
        bytes.resize(bytes.len().next_multiple_of(8), 0);
        bytes.extend_from_slice(&[0, 0, 0, 0, 8, 0, 0, 0]);
        let total = bytes.len() as u32;
        bytes[..4].copy_from_slice(&total.to_le_bytes());
        bytes.chunks(8).map(|word| u64::from_le_bytes(word.try_into().unwrap())).collect()
    }

    #[test]
    fn the_boot_information_carries_the_framebuffer() {
        let words = structure_with(&rgb_tag());
        // SAFETY: (test) reinterpreting initialised u64s as bytes; the slice borrows `words`.
        let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) };
        let mut info = Box::new(crate::BootInfo::new());
        info.load_from_bytes(bytes, PhysicalAddress::new(0x1000)).unwrap();
        assert_eq!(info.framebuffer(), parse(&rgb_tag()));
        assert!(info.framebuffer().is_some());
        // A tag too short to describe a framebuffer is ignored, not an error.
        let words = structure_with(&{
            let mut tag = rgb_tag()[..16].to_vec();
            tag[4..8].copy_from_slice(&16u32.to_le_bytes());
            tag
        });
        // SAFETY: (test) as above.
        let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) };
        info.load_from_bytes(bytes, PhysicalAddress::new(0x1000)).unwrap();
        assert_eq!(info.framebuffer(), None);
    }

    #[test]
    fn an_address_beyond_the_physical_space_is_refused() {
        let mut tag = rgb_tag();
        tag[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse(&tag), None);
    }
}
