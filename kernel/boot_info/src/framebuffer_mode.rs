//! A minimal reading of the Multiboot2 framebuffer tag (specification 2.0, 3.6.12 "Framebuffer info"): the mode
//! only (address, size, depth, type), for reports such as the shell's `machine` command. No pixel format and no
//! palette: the framebuffer console's own reader replaces this at merge.
//!
//! Tag layout: header (8), `framebuffer_addr` u64 (8), `framebuffer_pitch` u32 (16), `framebuffer_width` u32
//! (20), `framebuffer_height` u32 (24), `framebuffer_bpp` u8 (28), `framebuffer_type` u8 (29), reserved, colour info.

use memory_structs::PhysicalAddress;

/// The fixed part of the framebuffer tag that this module reads, in bytes.
pub const FRAMEBUFFER_TAG_MINIMUM_SIZE: usize = 30;

/// The kind of framebuffer (`framebuffer_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramebufferKind {
    /// 0: indexed colour (a palette).
    Indexed,
    /// 1: direct RGB colour (what OVMF's GOP gives).
    Rgb,
    /// 2: EGA text mode (80x25 characters at 0xB8000 under SeaBIOS): not a pixel framebuffer.
    EgaText,
    /// Any other value.
    Unknown(u8),
}

/// The video mode the bootloader left, from the framebuffer tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramebufferMode {
    /// Physical address of the first pixel (or character cell).
    pub address: PhysicalAddress,
    /// Bytes per line.
    pub pitch: u32,
    /// Width in pixels (characters for [`FramebufferKind::EgaText`]).
    pub width: u32,
    /// Height in pixels (lines for [`FramebufferKind::EgaText`]).
    pub height: u32,
    /// Bits per pixel (16 per character cell in EGA text mode).
    pub bits_per_pixel: u8,
    /// The framebuffer type.
    pub kind: FramebufferKind,
}

/// Reads the mode from a framebuffer tag (`tag` is the whole tag, header included); `None` if it is shorter than
/// [`FRAMEBUFFER_TAG_MINIMUM_SIZE`] or its address is beyond the physical address space.
pub fn parse_framebuffer_tag(tag: &[u8]) -> Option<FramebufferMode> {
    let field = |offset: usize| -> Option<u32> {
        let bytes = tag.get(offset..offset + 4)?;
        Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    };
    let address = u64::from(field(8)?) | (u64::from(field(12)?) << 32);
    let kind = match *tag.get(29)? {
        0 => FramebufferKind::Indexed,
        1 => FramebufferKind::Rgb,
        2 => FramebufferKind::EgaText,
        other => FramebufferKind::Unknown(other),
    };
    Some(FramebufferMode {
        address: PhysicalAddress::try_new(usize::try_from(address).ok()?).ok()?,
        pitch: field(16)?,
        width: field(20)?,
        height: field(24)?,
        bits_per_pixel: *tag.get(28)?,
        kind,
    })
}
