//! Host tests: hand-built Multiboot2 structures, valid and malformed.

use super::*;
use crate::convert::module_name;
use memory_structs::PhysicalAddress;

/// Builds a Multiboot2 information structure tag by tag, as a bootloader would (3.6.1, 3.6.2).
pub(crate) struct Builder {
    bytes: Vec<u8>,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Self { bytes: vec![0; 8] }
    }

    pub(crate) fn raw_tag(mut self, tag_type: u32, size: u32, payload: &[u8]) -> Self {
        self.bytes.extend_from_slice(&tag_type.to_le_bytes());
        self.bytes.extend_from_slice(&size.to_le_bytes());
        self.bytes.extend_from_slice(payload);
        while !self.bytes.len().is_multiple_of(8) {
            self.bytes.push(0);
        }
        self
    }

    pub(crate) fn tag(self, tag_type: u32, payload: &[u8]) -> Self {
        let size = 8 + payload.len() as u32;
        self.raw_tag(tag_type, size, payload)
    }

    pub(crate) fn string_tag(self, tag_type: u32, text: &str) -> Self {
        let mut payload = text.as_bytes().to_vec();
        payload.push(0);
        self.tag(tag_type, &payload)
    }

    pub(crate) fn memory_map(self, areas: &[(u64, u64, u32)]) -> Self {
        let mut payload = Vec::new();
        payload.extend_from_slice(&24u32.to_le_bytes());
        payload.extend_from_slice(&0u32.to_le_bytes());
        for (base, length, kind) in areas {
            payload.extend_from_slice(&base.to_le_bytes());
            payload.extend_from_slice(&length.to_le_bytes());
            payload.extend_from_slice(&kind.to_le_bytes());
            payload.extend_from_slice(&0u32.to_le_bytes());
        }
        self.tag(6, &payload)
    }

    pub(crate) fn module(self, start: u32, end: u32, command_line: &str) -> Self {
        let mut payload = Vec::new();
        payload.extend_from_slice(&start.to_le_bytes());
        payload.extend_from_slice(&end.to_le_bytes());
        payload.extend_from_slice(command_line.as_bytes());
        payload.push(0);
        self.tag(3, &payload)
    }

    /// Appends the end tag and fixes `total_size`.
    pub(crate) fn finish(self) -> Aligned {
        let mut this = self.raw_tag(0, 8, &[]);
        let total = this.bytes.len() as u32;
        this.bytes[..4].copy_from_slice(&total.to_le_bytes());
        Aligned::new(&this.bytes)
    }
}

/// Bytes stored in `u64`s so that the slice is 8-byte aligned, as the specification guarantees.
pub(crate) struct Aligned {
    words: Vec<u64>,
    length: usize,
}

impl Aligned {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8) + 1];
        // SAFETY: the u64 buffer is at least `bytes.len()` bytes long.
        let target = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) };
        target[..bytes.len()].copy_from_slice(bytes);
        Self { words, length: bytes.len() }
    }
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the buffer holds at least `length` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.length) }
    }
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, with exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.length) }
    }
}

pub(crate) const PHYSICAL: PhysicalAddress = PhysicalAddress::new(0x5000);

pub(crate) fn load(bytes: &Aligned) -> Result<Box<BootInfo>, BootInfoError> {
    let mut info = Box::new(BootInfo::new());
    info.load_from_bytes(bytes.bytes(), PHYSICAL)?;
    Ok(info)
}

pub(crate) fn typical() -> Builder {
    Builder::new()
        .string_tag(1, "test=all")
        .string_tag(2, "GRUB 2.12")
        .module(0x7000, 0x7100, "k#captain-1234.o")
        .module(0x20_0000, 0x20_0800, "/modules/manifest extra words")
        .memory_map(&[(0, 0x9fc00, 1), (0xf0000, 0x10000, 2), (0x10_0000, 0x7ee_0000, 1), (0x7fe_0000, 0x2_0000, 3)])
        .tag(15, &rsdp_v2(2))
}

/// A valid ACPI 1.0 RSDP (20 bytes) with `revision`.
pub(crate) fn rsdp_v1(revision: u8) -> Vec<u8> {
    let mut bytes = b"RSD PTR ".to_vec();
    bytes.push(0); // checksum, fixed below
    bytes.extend_from_slice(b"BOCHS ");
    bytes.push(revision);
    bytes.extend_from_slice(&0x7fe_1234u32.to_le_bytes());
    bytes[8] = 0u8.wrapping_sub(bytes.iter().fold(0u8, |sum, byte| sum.wrapping_add(*byte)));
    bytes
}

/// A valid ACPI 2.0+ RSDP (36 bytes) with `revision`.
pub(crate) fn rsdp_v2(revision: u8) -> Vec<u8> {
    let mut bytes = rsdp_v1(revision);
    bytes.extend_from_slice(&36u32.to_le_bytes());
    bytes.extend_from_slice(&0x7fe_5678u64.to_le_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    bytes[32] = 0u8.wrapping_sub(bytes.iter().fold(0u8, |sum, byte| sum.wrapping_add(*byte)));
    bytes
}

#[test]
fn converts_a_typical_grub_structure() {
    let bytes = typical().finish();
    let info = load(&bytes).unwrap();
    assert_eq!(info.command_line(), "test=all");
    assert_eq!(info.bootloader_name(), "GRUB 2.12");
    assert_eq!(info.information_region().start, PHYSICAL);
    assert_eq!(info.information_region().size_in_bytes(), bytes.bytes().len());
    let areas = info.memory_areas();
    assert_eq!(areas.len(), 4);
    assert_eq!(areas[0].region.end.value(), 0x9fc00);
    assert_eq!(areas[1].kind, MemoryAreaKind::Reserved);
    assert_eq!(areas[2].kind, MemoryAreaKind::Available);
    assert_eq!(areas[3].kind, MemoryAreaKind::AcpiReclaimable);
    let modules = info.modules();
    assert_eq!(modules.len(), 2);
    assert_eq!(modules[0].name.as_str(), "k#captain-1234.o");
    assert_eq!(modules[0].region.start.value(), 0x7000);
    assert_eq!(modules[0].region.size_in_bytes(), 0x100);
    assert_eq!(modules[1].name.as_str(), "manifest");
    assert_eq!(info.module_named("manifest").unwrap().region.end.value(), 0x20_0800);
    assert!(info.module_named("missing").is_none());
    // Tag 15 follows the header (8), cmdline (24), name (24), modules (32 + 48), memory map (112).
    let rsdp = info.acpi_rsdp().unwrap();
    assert_eq!((rsdp.revision, rsdp.source), (2, RsdpSource::NewTag));
    let offset = rsdp.address.value() - PHYSICAL.value();
    assert_eq!(&bytes.bytes()[offset..offset + 36], &rsdp_v2(2)[..]);
    assert_eq!(info.firmware(), Firmware::Bios);
    assert_eq!(info.memory_map_source(), MemoryMapSource::Bios);
}

#[test]
fn memory_area_kinds_keep_unknown_values() {
    let bytes = Builder::new().memory_map(&[(0, 0x1000, 4), (0x1000, 0x1000, 5), (0x2000, 0x1000, 77)]).finish();
    let info = load(&bytes).unwrap();
    let kinds: Vec<_> = info.memory_areas().iter().map(|area| area.kind).collect();
    assert_eq!(kinds, [MemoryAreaKind::Nvs, MemoryAreaKind::Defective, MemoryAreaKind::Unknown(77)]);
}

#[test]
fn areas_are_clipped_to_52_bits_and_empty_ones_dropped() {
    let bytes = Builder::new()
        .memory_map(&[(0x1000, 0, 1), (u64::MAX - 10, 100, 2), ((1 << 52) - 0x1000, 0x10_0000, 1)])
        .finish();
    let info = load(&bytes).unwrap();
    assert_eq!(info.memory_areas().len(), 1);
    assert_eq!(info.memory_areas()[0].region.end.value(), (1 << 52) - 1);
}

#[test]
fn missing_optional_tags_give_empty_strings() {
    let info = load(&Builder::new().memory_map(&[(0, 0x1000, 1)]).finish()).unwrap();
    assert_eq!(info.command_line(), "");
    assert_eq!(info.bootloader_name(), "");
    assert!(info.modules().is_empty());
    assert_eq!(info.acpi_rsdp(), Err(RsdpError::NotFound));
    assert_eq!(info.framebuffer(), None);
}

#[test]
fn module_names_come_from_the_first_word_of_the_command_line() {
    assert_eq!(module_name("k#a.o"), "k#a.o");
    assert_eq!(module_name("  /boot/x/y.o --flag"), "y.o");
    assert_eq!(module_name(""), "");
    assert_eq!(module_name("dir/"), "");
}

#[test]
fn missing_memory_map_is_an_error() {
    assert_eq!(load(&Builder::new().string_tag(1, "x").finish()).err(), Some(BootInfoError::MissingMemoryMap));
}

#[test]
fn limits_are_enforced() {
    let long_name = "n".repeat(MAX_MODULE_NAME_LENGTH + 1);
    let bytes = Builder::new().memory_map(&[(0, 0x1000, 1)]).module(0, 1, &long_name).finish();
    assert_eq!(load(&bytes).err(), Some(BootInfoError::ModuleNameTooLong { index: 0, length: 65 }));

    let exact_name = "n".repeat(MAX_MODULE_NAME_LENGTH);
    let bytes = Builder::new().memory_map(&[(0, 0x1000, 1)]).module(0, 1, &exact_name).finish();
    assert_eq!(load(&bytes).unwrap().modules()[0].name.as_str(), exact_name);

    let mut builder = Builder::new().memory_map(&[(0, 0x1000, 1)]);
    for index in 0..=MAX_MODULES {
        builder = builder.module(index as u32, index as u32 + 1, "m");
    }
    assert_eq!(load(&builder.finish()).err(), Some(BootInfoError::TooManyModules));

    let areas: Vec<_> = (0..=MAX_MEMORY_AREAS as u64).map(|index| (index << 12, 0x1000, 1)).collect();
    assert_eq!(
        load(&Builder::new().memory_map(&areas).finish()).err(),
        Some(BootInfoError::TooManyMemoryAreas { count: MAX_MEMORY_AREAS + 1 })
    );

    let long_line = "c".repeat(MAX_COMMAND_LINE_LENGTH + 1);
    let bytes = Builder::new().memory_map(&[(0, 0x1000, 1)]).string_tag(1, &long_line).finish();
    assert_eq!(load(&bytes).err(), Some(BootInfoError::CommandLineTooLong { length: MAX_COMMAND_LINE_LENGTH + 1 }));

    let long_loader = "g".repeat(MAX_BOOTLOADER_NAME_LENGTH + 1);
    let bytes = Builder::new().memory_map(&[(0, 0x1000, 1)]).string_tag(2, &long_loader).finish();
    assert_eq!(load(&bytes).err(), Some(BootInfoError::BootloaderNameTooLong { length: 129 }));
}

#[test]
fn malformed_strings_are_errors() {
    let bytes = Builder::new().memory_map(&[(0, 0x1000, 1)]).tag(1, b"no-nul").finish();
    assert_eq!(load(&bytes).err(), Some(BootInfoError::InvalidCommandLine(StringProblem::MissingNul)));
    let bytes = Builder::new().memory_map(&[(0, 0x1000, 1)]).tag(2, &[0xff, 0xfe, 0]).finish();
    assert_eq!(load(&bytes).err(), Some(BootInfoError::InvalidBootloaderName(StringProblem::NotUtf8)));
    let mut payload = vec![0, 0, 0, 0, 1, 0, 0, 0];
    payload.extend_from_slice(&[0xc3, 0x28, 0]);
    let bytes = Builder::new().memory_map(&[(0, 0x1000, 1)]).tag(3, &payload).finish();
    assert_eq!(
        load(&bytes).err(),
        Some(BootInfoError::InvalidModuleName { index: 0, problem: StringProblem::NotUtf8 })
    );
}

#[test]
fn module_ending_before_its_start_is_an_error() {
    let bytes = Builder::new().memory_map(&[(0, 0x1000, 1)]).module(0x2000, 0x1000, "m").finish();
    assert_eq!(load(&bytes).err(), Some(BootInfoError::InvalidModuleRange { index: 0, start: 0x2000, end: 0x1000 }));
}

#[test]
fn structural_errors_are_reported() {
    // total_size too small, not a multiple of 8, larger than the buffer.
    let mut bytes = typical().finish();
    let length = bytes.bytes().len() as u32;
    for (total, _) in [(8u32, ()), (length - 4, ()), (length + 8, ())] {
        bytes.bytes_mut()[..4].copy_from_slice(&total.to_le_bytes());
        assert_eq!(load(&bytes).err(), Some(BootInfoError::InvalidTotalSize { total_size: total as usize }));
    }

    // A tag whose size runs past the end.
    let bytes = Builder::new().raw_tag(1, 4000, b"x\0").finish();
    assert_eq!(load(&bytes).err(), Some(BootInfoError::TagOutOfBounds { offset: 8, tag_type: 1, size: 4000 }));

    // Tag sizes below the header, or below the fixed part of a module / memory map / RSDP tag.
    for (tag_type, size) in [(1, 4), (3, 12), (6, 8), (14, 20), (15, 40)] {
        let bytes = Builder::new().raw_tag(tag_type, size, &[0; 8]).finish();
        assert_eq!(load(&bytes).err(), Some(BootInfoError::TagTooSmall { offset: 8, tag_type, size }));
    }

    // Memory map with an unexpected entry size, or a partial entry.
    let mut payload = 32u32.to_le_bytes().to_vec();
    payload.extend_from_slice(&[0; 36]);
    let bytes = Builder::new().tag(6, &payload).finish();
    assert_eq!(load(&bytes).err(), Some(BootInfoError::MalformedMemoryMap { entry_size: 32, tag_size: 48 }));
    let mut payload = 24u32.to_le_bytes().to_vec();
    payload.extend_from_slice(&[0; 20]);
    let bytes = Builder::new().tag(6, &payload).finish();
    assert_eq!(load(&bytes).err(), Some(BootInfoError::MalformedMemoryMap { entry_size: 24, tag_size: 32 }));

    // An end tag in the middle, and no end tag at all.
    let mut raw = vec![0u8; 8];
    raw.extend_from_slice(&[0, 0, 0, 0, 8, 0, 0, 0]);
    raw.extend_from_slice(&[1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let total = raw.len() as u32;
    raw[..4].copy_from_slice(&total.to_le_bytes());
    assert_eq!(load(&Aligned::new(&raw)).err(), Some(BootInfoError::EndTagNotLast { offset: 8 }));
    let mut raw = vec![0u8; 8];
    raw.extend_from_slice(&[1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let total = raw.len() as u32;
    raw[..4].copy_from_slice(&total.to_le_bytes());
    assert_eq!(load(&Aligned::new(&raw)).err(), Some(BootInfoError::MissingEndTag));
}

#[test]
fn misaligned_input_is_rejected_and_failure_leaves_the_value_empty() {
    let bytes = typical().finish();
    let mut info = load(&bytes).unwrap();
    let mut shifted = vec![0u8; bytes.bytes().len() + 8];
    let offset = 8 - (shifted.as_ptr() as usize % 8) + 1; // deliberately misaligned by one byte
    shifted[offset..offset + bytes.bytes().len() - 1].copy_from_slice(&bytes.bytes()[..bytes.bytes().len() - 1]);
    let slice = &shifted[offset..];
    assert!(matches!(info.load_from_bytes(slice, PHYSICAL), Err(BootInfoError::Misaligned { .. })));
    assert!(info.modules().is_empty() && info.memory_areas().is_empty() && info.command_line().is_empty());
}

#[test]
fn load_from_physical_reads_through_the_offset() {
    let bytes = typical().finish();
    let virtual_address = bytes.bytes().as_ptr() as usize;
    let physical = PhysicalAddress::new(0x8000);
    let mut info = Box::new(BootInfo::new());
    // SAFETY: `virtual_address - 0x8000 + 0x8000` is the test buffer, which holds the whole structure.
    unsafe { info.load_from_physical(physical, virtual_address - 0x8000) }.unwrap();
    assert_eq!(info.modules().len(), 2);
    assert_eq!(info.information_region().start, physical);
    // SAFETY: these calls fail before reading memory.
    unsafe {
        assert_eq!(info.load_from_physical(PhysicalAddress::zero(), 0), Err(BootInfoError::NullAddress));
        assert_eq!(
            info.load_from_physical(PhysicalAddress::new(0x8004), 0),
            Err(BootInfoError::Misaligned { address: 0x8004 })
        );
        assert!(matches!(
            info.load_from_physical(PhysicalAddress::new(0x8000), usize::MAX),
            Err(BootInfoError::AddressOverflow { .. })
        ));
    }
}

/// Fuzz-style robustness: corrupt random bytes of a valid structure and truncate it; parsing must never panic.
#[test]
fn random_corruption_never_panics() {
    for original in [typical().finish(), crate::tests_firmware::uefi_typical().finish()] {
        corrupt_and_load(&original);
    }
}

fn corrupt_and_load(original: &Aligned) {
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut info = Box::new(BootInfo::new());
    for _ in 0..20_000 {
        let mut bytes = Aligned::new(original.bytes());
        for _ in 0..1 + next() % 4 {
            let index = (next() as usize) % bytes.length;
            bytes.bytes_mut()[index] = next() as u8;
        }
        // Occasionally truncate the slice below the announced total_size.
        let length = if next() % 8 == 0 { (next() as usize) % bytes.length } else { bytes.length };
        let slice = &bytes.bytes()[..length];
        let _ = info.load_from_bytes(slice, PHYSICAL);
    }
}
