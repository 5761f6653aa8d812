//! Host tests of the firmware-dependent tags: the EFI memory map and its type conversion, the firmware type, the
//! ACPI RSDP tags and the BIOS-area scan, the framebuffer mode. Hand-built tag bytes, valid and malformed.

use super::*;
use crate::tests::{Builder, load, rsdp_v1, rsdp_v2, typical};

/// EFI memory descriptor size as OVMF reports it (40 bytes of fields, padded to 48).
const DESCRIPTOR_SIZE: u32 = 48;

impl Builder {
    /// An EFI memory-map tag (17) with `DESCRIPTOR_SIZE` descriptors `(type, physical start, pages)`.
    pub(crate) fn efi_memory_map(self, descriptors: &[(u32, u64, u64)]) -> Self {
        let mut payload = DESCRIPTOR_SIZE.to_le_bytes().to_vec();
        payload.extend_from_slice(&1u32.to_le_bytes()); // descriptor version 1
        for (kind, start, pages) in descriptors {
            let mut descriptor = vec![0u8; DESCRIPTOR_SIZE as usize];
            descriptor[..4].copy_from_slice(&kind.to_le_bytes());
            descriptor[8..16].copy_from_slice(&start.to_le_bytes());
            descriptor[24..32].copy_from_slice(&pages.to_le_bytes());
            descriptor[32..40].copy_from_slice(&0xfu64.to_le_bytes()); // attributes: UC WC WT WB
            payload.extend_from_slice(&descriptor);
        }
        self.tag(17, &payload)
    }
}

/// What GRUB passes under OVMF: a BIOS map, the EFI system table, the EFI map, the image handle, both RSDPs.
pub(crate) fn uefi_typical() -> Builder {
    Builder::new()
        .string_tag(2, "GRUB 2.06")
        .memory_map(&[(0, 0xa0000, 1), (0x10_0000, 0x700_0000, 1)])
        .tag(12, &0x7fe_0000u64.to_le_bytes())
        .tag(14, &rsdp_v1(2))
        .tag(15, &rsdp_v2(2))
        .efi_memory_map(&[
            (7, 0, 0xa0),                  // conventional 0..640 KiB
            (4, 0x10_0000, 0x100),         // boot services data, adjacent to nothing before it
            (7, 0x20_0000, 0x100),         // conventional, adjacent
            (3, 0x30_0000, 0x10),          // boot services code, adjacent
            (2, 0x31_0000, 0x10),          // loader data, adjacent
            (5, 0x32_0000, 0x10),          // runtime services code
            (9, 0x33_0000, 0x1),           // ACPI reclaim
            (10, 0x33_1000, 0x1),          // ACPI NVS
            (11, 0xffc0_0000, 0x400),      // MMIO (flash)
            (8, 0x40_0000, 0x1),           // unusable
            (14, 0x50_0000, 0x1),          // persistent memory
            (0x8000_0001, 0x60_0000, 0x1), // OS-defined type
            (7, 0x70_0000, 0),             // empty
        ])
        .tag(20, &0x7fe_1000u64.to_le_bytes())
}

fn kinds_and_ranges(info: &BootInfo) -> Vec<(MemoryAreaKind, usize, usize)> {
    info.memory_areas().iter().map(|area| (area.kind, area.region.start.value(), area.region.end.value())).collect()
}

#[test]
fn the_efi_map_is_preferred_and_its_types_converted() {
    let info = load(&uefi_typical().finish()).unwrap();
    assert_eq!(info.firmware(), Firmware::Uefi);
    assert_eq!(info.memory_map_source(), MemoryMapSource::Efi);
    use MemoryAreaKind::*;
    assert_eq!(
        kinds_and_ranges(&info),
        [
            (Available, 0, 0xa_0000),
            (Available, 0x10_0000, 0x32_0000), // boot services data + conventional + BS code + loader data, merged
            (Reserved, 0x32_0000, 0x33_0000),
            (AcpiReclaimable, 0x33_0000, 0x33_1000),
            (Nvs, 0x33_1000, 0x33_2000),
            (Reserved, 0xffc0_0000, 0x1_0000_0000),
            (Defective, 0x40_0000, 0x40_1000),
            (Reserved, 0x50_0000, 0x50_1000),
            (Reserved, 0x60_0000, 0x60_1000),
        ]
    );
}

#[test]
fn boot_services_memory_stays_reserved_while_boot_services_run() {
    let bytes = Builder::new().efi_memory_map(&[(3, 0, 1), (4, 0x1000, 1), (7, 0x2000, 1)]).tag(18, &[]).finish();
    let info = load(&bytes).unwrap();
    use MemoryAreaKind::*;
    assert_eq!(kinds_and_ranges(&info), [(Reserved, 0, 0x2000), (Available, 0x2000, 0x3000)]);
    assert_eq!(info.firmware(), Firmware::Uefi);
}

#[test]
fn efi_type_conversion_table() {
    let expected = [
        (0, false, MemoryAreaKind::Reserved),
        (1, false, MemoryAreaKind::Available),
        (2, false, MemoryAreaKind::Available),
        (3, true, MemoryAreaKind::Available),
        (3, false, MemoryAreaKind::Reserved),
        (4, true, MemoryAreaKind::Available),
        (4, false, MemoryAreaKind::Reserved),
        (5, true, MemoryAreaKind::Reserved),
        (6, true, MemoryAreaKind::Reserved),
        (7, false, MemoryAreaKind::Available),
        (8, true, MemoryAreaKind::Defective),
        (9, true, MemoryAreaKind::AcpiReclaimable),
        (10, true, MemoryAreaKind::Nvs),
        (11, true, MemoryAreaKind::Reserved),
        (12, true, MemoryAreaKind::Reserved),
        (13, true, MemoryAreaKind::Reserved),
        (14, true, MemoryAreaKind::Reserved),
        (15, true, MemoryAreaKind::Reserved),
    ];
    for (raw, ended, kind) in expected {
        assert_eq!(EfiMemoryType::from_raw(raw).kind(ended), kind, "EFI type {raw}, boot services ended {ended}");
    }
    assert_eq!(EfiMemoryType::from_raw(77), EfiMemoryType::Unknown(77));
}

#[test]
fn only_an_efi_map_is_enough_and_neither_map_is_an_error() {
    let info = load(&Builder::new().efi_memory_map(&[(7, 0x1000, 2)]).finish()).unwrap();
    assert_eq!(info.memory_areas().len(), 1);
    assert_eq!(info.memory_map_source(), MemoryMapSource::Efi);
    let bytes = Builder::new().tag(12, &[0; 8]).finish();
    assert_eq!(load(&bytes).err(), Some(BootInfoError::MissingMemoryMap));
}

#[test]
fn firmware_is_uefi_with_any_efi_tag() {
    for tag_type in [11, 12, 18, 19, 20] {
        let bytes = Builder::new().memory_map(&[(0, 0x1000, 1)]).tag(tag_type, &[0; 8]).finish();
        let info = load(&bytes).unwrap();
        assert_eq!(info.firmware(), Firmware::Uefi, "tag {tag_type}");
        assert_eq!(info.memory_map_source(), MemoryMapSource::Bios);
    }
    assert_eq!(load(&typical().finish()).unwrap().firmware(), Firmware::Bios);
}

#[test]
fn malformed_efi_maps_are_errors() {
    // Descriptor size below 40, or not a multiple of 8.
    for descriptor_size in [0u32, 32, 44] {
        let mut payload = descriptor_size.to_le_bytes().to_vec();
        payload.extend_from_slice(&1u32.to_le_bytes());
        payload.extend_from_slice(&[0; 88]);
        let bytes = Builder::new().tag(17, &payload).finish();
        assert_eq!(
            load(&bytes).err(),
            Some(BootInfoError::MalformedEfiMemoryMap { descriptor_size, tag_size: 104 }),
            "descriptor size {descriptor_size}"
        );
    }
    // A partial descriptor.
    let mut payload = 48u32.to_le_bytes().to_vec();
    payload.extend_from_slice(&1u32.to_le_bytes());
    payload.extend_from_slice(&[0; 50]);
    let bytes = Builder::new().tag(17, &payload).finish();
    assert_eq!(load(&bytes).err(), Some(BootInfoError::MalformedEfiMemoryMap { descriptor_size: 48, tag_size: 66 }));
    // A tag shorter than its header.
    let bytes = Builder::new().raw_tag(17, 12, &[0; 8]).finish();
    assert_eq!(load(&bytes).err(), Some(BootInfoError::TagTooSmall { offset: 8, tag_type: 17, size: 12 }));
}

#[test]
fn efi_maps_beyond_capacity_are_errors_after_merging() {
    // Alternating kinds cannot merge: MAX_MEMORY_AREAS + 1 areas.
    let alternating: Vec<_> =
        (0..=MAX_MEMORY_AREAS as u64).map(|index| (7 + (index % 2) as u32 * 2, index << 12, 1)).collect();
    assert_eq!(
        load(&Builder::new().efi_memory_map(&alternating).finish()).err(),
        Some(BootInfoError::TooManyMemoryAreas { count: MAX_MEMORY_AREAS + 1 })
    );
    // The same number of adjacent conventional descriptors merges into one area.
    let adjacent: Vec<_> = (0..=MAX_MEMORY_AREAS as u64).map(|index| (7, index << 12, 1)).collect();
    let info = load(&Builder::new().efi_memory_map(&adjacent).finish()).unwrap();
    assert_eq!(kinds_and_ranges(&info), [(MemoryAreaKind::Available, 0, (MAX_MEMORY_AREAS + 1) << 12)]);
    // Page counts that overflow are clipped, not wrapped.
    let info = load(&Builder::new().efi_memory_map(&[(7, 0x1000, u64::MAX)]).finish()).unwrap();
    assert_eq!(kinds_and_ranges(&info), [(MemoryAreaKind::Available, 0x1000, (1 << 52) - 1)]);
}

#[test]
fn rsdp_tags_are_checksummed_and_the_new_one_preferred() {
    let with = |old: Option<Vec<u8>>, new: Option<Vec<u8>>| {
        let mut builder = Builder::new().memory_map(&[(0, 0x1000, 1)]);
        if let Some(old) = old {
            builder = builder.tag(14, &old);
        }
        if let Some(new) = new {
            builder = builder.tag(15, &new);
        }
        load(&builder.finish()).unwrap().acpi_rsdp()
    };
    let source = |result: Result<Rsdp, RsdpError>| result.map(|rsdp| (rsdp.source, rsdp.revision));
    assert_eq!(source(with(Some(rsdp_v1(0)), None)), Ok((RsdpSource::OldTag, 0)));
    assert_eq!(source(with(Some(rsdp_v1(0)), Some(rsdp_v2(2)))), Ok((RsdpSource::NewTag, 2)));
    // The old tag's copy holds only 20 bytes, even for an ACPI 2.0 RSDP.
    assert_eq!(source(with(Some(rsdp_v1(2)), None)), Ok((RsdpSource::OldTag, 2)));

    let mut bad_checksum = rsdp_v2(2);
    bad_checksum[8] ^= 1;
    let mut bad_extended = rsdp_v2(2);
    bad_extended[32] ^= 1;
    let mut bad_signature = rsdp_v1(0);
    bad_signature[0] = b'X';
    // A bad new tag falls back to a valid old one.
    assert_eq!(source(with(Some(rsdp_v1(0)), Some(bad_checksum.clone()))), Ok((RsdpSource::OldTag, 0)));
    // Both bad: the new tag's error; only the old one present and bad: its error.
    let sum = |bytes: &[u8]| bytes.iter().fold(0u8, |sum, byte| sum.wrapping_add(*byte));
    assert_eq!(
        with(Some(bad_signature.clone()), Some(bad_extended.clone())),
        Err(RsdpError::BadExtendedChecksum { source: RsdpSource::NewTag, sum: sum(&bad_extended) })
    );
    assert_eq!(with(Some(bad_signature), None), Err(RsdpError::BadSignature(RsdpSource::OldTag)));
    assert_eq!(
        with(None, Some(bad_checksum.clone())),
        Err(RsdpError::BadChecksum { source: RsdpSource::NewTag, sum: sum(&bad_checksum[..20]) })
    );
    // A revision-0 structure in the new tag, and a length field that is too small or too large.
    assert_eq!(
        with(None, Some(rsdp_v1(0).into_iter().chain([0; 16]).collect())),
        Err(RsdpError::RevisionTooOld { revision: 0 })
    );
    for length in [20u32, 37] {
        let mut wrong_length = rsdp_v2(2);
        wrong_length[20..24].copy_from_slice(&length.to_le_bytes());
        assert_eq!(
            with(None, Some(wrong_length)),
            Err(RsdpError::BadLength { source: RsdpSource::NewTag, length, available: 36 })
        );
    }
}

#[test]
fn the_bios_area_scan_finds_only_aligned_valid_rsdps() {
    let mut area = vec![0u8; 0x400];
    // A valid one at an unaligned offset, an aligned one with a bad checksum, then the real one.
    area[0x18..0x2c].copy_from_slice(&rsdp_v1(0));
    let mut bad = rsdp_v1(0);
    bad[9] ^= 0x40;
    area[0x40..0x54].copy_from_slice(&bad);
    area[0x100..0x124].copy_from_slice(&rsdp_v2(2));
    assert_eq!(scan_for_rsdp(&area), Some((0x100, 2)));
    assert_eq!(scan_for_rsdp(&area[..0x100]), None);
    // A revision 2 RSDP cut off by the end of the area is rejected (length beyond the bytes).
    assert_eq!(scan_for_rsdp(&area[..0x110]), None);
    assert_eq!(scan_for_rsdp(&[]), None);
}
