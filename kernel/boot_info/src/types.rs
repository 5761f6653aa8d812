//! Our own boot-information types: fixed capacity, no heap, no `multiboot2` types.

use crate::firmware::{Firmware, MemoryMapSource};
use crate::rsdp::{Rsdp, RsdpError};
use core::fmt;
use memory_structs::PhysicalAddress;

/// The maximum number of memory-map entries kept. GRUB under OVMF reports well under 100.
pub const MAX_MEMORY_AREAS: usize = 256;
/// The maximum number of boot modules (one per cell object, plus the manifest and symbol table).
pub const MAX_MODULES: usize = 256;
/// The maximum length of a module name, in bytes (UTF-8).
pub const MAX_MODULE_NAME_LENGTH: usize = 64;
/// The maximum length of the kernel command line, in bytes (UTF-8).
pub const MAX_COMMAND_LINE_LENGTH: usize = 512;
/// The maximum length of the bootloader name, in bytes (UTF-8).
pub const MAX_BOOTLOADER_NAME_LENGTH: usize = 128;
/// The largest boot information structure accepted, in bytes (1 MiB). GRUB's is a few KiB even with hundreds of
/// modules; a larger `total_size` means corrupted input.
pub const MAX_BOOT_INFO_SIZE: usize = 1 << 20;

/// A half-open physical byte range `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PhysicalRegion {
    /// The first byte.
    pub start: PhysicalAddress,
    /// One past the last byte (exclusive).
    pub end: PhysicalAddress,
}

impl PhysicalRegion {
    /// The size in bytes.
    pub const fn size_in_bytes(&self) -> usize {
        self.end.value() - self.start.value()
    }
}

/// The type of a memory-map entry (Multiboot2 specification 2.0, 3.6.8 "Memory map").
///
/// Unknown values are kept, never transmuted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryAreaKind {
    /// Type 1: RAM available for general use.
    Available,
    /// Type 2: reserved (firmware, MMIO, or unusable for another reason).
    #[default]
    Reserved,
    /// Type 3: ACPI tables; usable after the OS has read them.
    AcpiReclaimable,
    /// Type 4: ACPI non-volatile storage, to be preserved across hibernation.
    Nvs,
    /// Type 5: defective RAM.
    Defective,
    /// Any other type value, as reported.
    Unknown(u32),
}

impl MemoryAreaKind {
    /// Converts the raw Multiboot2 memory-map type.
    pub const fn from_raw(raw: u32) -> Self {
        match raw {
            1 => Self::Available,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::Nvs,
            5 => Self::Defective,
            other => Self::Unknown(other),
        }
    }
}

/// One entry of the bootloader's memory map, clipped to the 52-bit physical address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryArea {
    /// The physical bytes covered (not necessarily page-aligned).
    pub region: PhysicalRegion,
    /// What the memory may be used for.
    pub kind: MemoryAreaKind,
}

/// A UTF-8 string of at most `N` bytes stored inline (no heap).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BoundedString<const N: usize> {
    bytes: [u8; N],
    length: usize,
}

impl<const N: usize> BoundedString<N> {
    /// The empty string.
    pub const fn new() -> Self {
        Self { bytes: [0; N], length: 0 }
    }

    /// Copies `text` if it fits, otherwise returns `None`.
    pub fn try_from_str(text: &str) -> Option<Self> {
        let mut string = Self::new();
        let target = string.bytes.get_mut(..text.len())?;
        target.copy_from_slice(text.as_bytes());
        string.length = text.len();
        Some(string)
    }

    /// The string. Always valid UTF-8, because it was copied from a `&str`.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.length]).unwrap_or_default()
    }
}

impl<const N: usize> Default for BoundedString<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for BoundedString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for BoundedString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One boot module (Multiboot2 specification 2.0, 3.6.6 "Modules").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Module {
    /// The physical bytes of the module (`end` exclusive). Not necessarily page-aligned.
    pub region: PhysicalRegion,
    /// The module's name: the final path component of the first word of its command line. With the GRUB line
    /// `module2 /modules/k#foo.o k#foo.o` the command line is `k#foo.o`; a line naming a path gives its file name.
    pub name: BoundedString<MAX_MODULE_NAME_LENGTH>,
}

/// Why a string of the boot information could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringProblem {
    /// No terminating NUL byte within the tag (the specification requires one).
    MissingNul,
    /// The bytes before the NUL are not UTF-8.
    NotUtf8,
}

/// Why the boot information was rejected. Offsets are in bytes from the start of the boot information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootInfoError {
    /// The physical address is 0.
    NullAddress,
    /// The physical address (or the given slice) is not 8-byte aligned, as the specification requires (3.6.2).
    Misaligned {
        /// The offending address.
        address: usize,
    },
    /// Physical address plus virtual offset overflows.
    AddressOverflow {
        /// The physical address given.
        physical_address: usize,
        /// The virtual offset given.
        offset: usize,
    },
    /// `total_size` is below 16 (header plus end tag), not a multiple of 8, larger than [`MAX_BOOT_INFO_SIZE`], or
    /// larger than the bytes provided.
    InvalidTotalSize {
        /// The reported total size in bytes.
        total_size: usize,
    },
    /// A tag's size is below 8, or below the minimum for its type.
    TagTooSmall {
        /// Offset of the tag.
        offset: usize,
        /// The tag's type.
        tag_type: u32,
        /// The tag's reported size in bytes.
        size: u32,
    },
    /// A tag extends past `total_size`.
    TagOutOfBounds {
        /// Offset of the tag.
        offset: usize,
        /// The tag's type.
        tag_type: u32,
        /// The tag's reported size in bytes.
        size: u32,
    },
    /// No end tag (type 0, size 8) terminates the tag list.
    MissingEndTag,
    /// The end tag is not the last 8 bytes of the structure.
    EndTagNotLast {
        /// Offset of the end tag.
        offset: usize,
    },
    /// The structure has neither a memory-map tag (type 6) nor an EFI memory-map tag (type 17).
    MissingMemoryMap,
    /// The memory-map tag's `entry_size` is not the 24 bytes of version 0, or its size is not a whole number of
    /// entries.
    MalformedMemoryMap {
        /// The reported entry size in bytes.
        entry_size: u32,
        /// The tag's reported size in bytes.
        tag_size: u32,
    },
    /// The EFI memory-map tag's descriptor size is below 40 bytes or not a multiple of 8, or its size is not a
    /// whole number of descriptors (UEFI 2.10, 7.2; Multiboot2 3.6.19).
    MalformedEfiMemoryMap {
        /// The reported descriptor size in bytes.
        descriptor_size: u32,
        /// The tag's reported size in bytes.
        tag_size: u32,
    },
    /// More memory-map entries than [`MAX_MEMORY_AREAS`] (for the EFI map: after merging adjacent areas).
    TooManyMemoryAreas {
        /// The number of entries reported.
        count: usize,
    },
    /// More module tags than [`MAX_MODULES`].
    TooManyModules,
    /// A module's end lies before its start.
    InvalidModuleRange {
        /// The module's index in boot order.
        index: usize,
        /// Reported start address.
        start: u32,
        /// Reported end address.
        end: u32,
    },
    /// A module's command line is unreadable.
    InvalidModuleName {
        /// The module's index in boot order.
        index: usize,
        /// What is wrong with it.
        problem: StringProblem,
    },
    /// A module's name is longer than [`MAX_MODULE_NAME_LENGTH`].
    ModuleNameTooLong {
        /// The module's index in boot order.
        index: usize,
        /// The name's length in bytes.
        length: usize,
    },
    /// The kernel command line is unreadable.
    InvalidCommandLine(StringProblem),
    /// The kernel command line is longer than [`MAX_COMMAND_LINE_LENGTH`].
    CommandLineTooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// The bootloader name is unreadable.
    InvalidBootloaderName(StringProblem),
    /// The bootloader name is longer than [`MAX_BOOTLOADER_NAME_LENGTH`].
    BootloaderNameTooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// The `multiboot2` crate rejected a structure that passed our own validation (a bug in one of the two).
    RejectedByParser,
}

/// The boot information, converted into our own types.
///
/// Create it with [`BootInfo::new`] (a `const fn`, so it can initialise a `static`) and fill it with
/// [`load_from_physical`](Self::load_from_physical) or [`load_from_bytes`](Self::load_from_bytes). Its size is about
/// 30 KiB; prefer a `static` over the boot stack.
#[derive(Clone)]
pub struct BootInfo {
    pub(crate) memory_areas: [MemoryArea; MAX_MEMORY_AREAS],
    pub(crate) memory_area_count: usize,
    pub(crate) modules: [Module; MAX_MODULES],
    pub(crate) module_count: usize,
    pub(crate) information_region: PhysicalRegion,
    pub(crate) command_line: BoundedString<MAX_COMMAND_LINE_LENGTH>,
    pub(crate) bootloader_name: BoundedString<MAX_BOOTLOADER_NAME_LENGTH>,
    pub(crate) acpi_rsdp: Result<Rsdp, RsdpError>,
    pub(crate) firmware: Firmware,
    pub(crate) memory_map_source: MemoryMapSource,
    pub(crate) framebuffer: Option<crate::FramebufferInfo>,
}

impl Default for BootInfo {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for BootInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootInfo")
            .field("information_region", &self.information_region)
            .field("bootloader_name", &self.bootloader_name)
            .field("command_line", &self.command_line)
            .field("memory_areas", &self.memory_areas())
            .field("modules", &self.modules())
            .field("acpi_rsdp", &self.acpi_rsdp)
            .field("firmware", &self.firmware)
            .field("memory_map_source", &self.memory_map_source)
            .field("framebuffer", &self.framebuffer)
            .finish()
    }
}

impl BootInfo {
    /// An empty boot information (no areas, no modules, empty strings).
    pub const fn new() -> Self {
        const EMPTY_AREA: MemoryArea = MemoryArea {
            region: PhysicalRegion { start: PhysicalAddress::zero(), end: PhysicalAddress::zero() },
            kind: MemoryAreaKind::Reserved,
        };
        const EMPTY_MODULE: Module = Module {
            region: PhysicalRegion { start: PhysicalAddress::zero(), end: PhysicalAddress::zero() },
            name: BoundedString::new(),
        };
        Self {
            memory_areas: [EMPTY_AREA; MAX_MEMORY_AREAS],
            memory_area_count: 0,
            modules: [EMPTY_MODULE; MAX_MODULES],
            module_count: 0,
            information_region: PhysicalRegion { start: PhysicalAddress::zero(), end: PhysicalAddress::zero() },
            command_line: BoundedString::new(),
            bootloader_name: BoundedString::new(),
            acpi_rsdp: Err(RsdpError::NotFound),
            firmware: Firmware::Bios,
            memory_map_source: MemoryMapSource::Bios,
            framebuffer: None,
        }
    }

    /// Empties this value in place (without building a 30 KiB temporary).
    pub(crate) fn clear(&mut self) {
        self.memory_area_count = 0;
        self.module_count = 0;
        self.information_region = PhysicalRegion::default();
        self.command_line = BoundedString::new();
        self.bootloader_name = BoundedString::new();
        self.acpi_rsdp = Err(RsdpError::NotFound);
        self.firmware = Firmware::Bios;
        self.memory_map_source = MemoryMapSource::Bios;
        self.framebuffer = None;
    }

    /// The memory map, in the bootloader's order (not sorted; entries may overlap if the firmware says so).
    pub fn memory_areas(&self) -> &[MemoryArea] {
        &self.memory_areas[..self.memory_area_count]
    }

    /// The boot modules, in the bootloader's order.
    pub fn modules(&self) -> &[Module] {
        &self.modules[..self.module_count]
    }

    /// The first module whose name is exactly `name`.
    pub fn module_named(&self, name: &str) -> Option<&Module> {
        self.modules().iter().find(|module| module.name.as_str() == name)
    }

    /// The physical bytes of the Multiboot2 information structure itself (`end` exclusive). They must stay
    /// reserved while anything refers into them (for example the ACPI RSDP copy).
    pub fn information_region(&self) -> PhysicalRegion {
        self.information_region
    }

    /// The kernel command line (empty if the bootloader gave none).
    pub fn command_line(&self) -> &str {
        self.command_line.as_str()
    }

    /// The bootloader's name, e.g. `GRUB 2.12` (empty if the bootloader gave none).
    pub fn bootloader_name(&self) -> &str {
        self.bootloader_name.as_str()
    }

    /// The ACPI RSDP from the boot information, validated (signature, checksum, and for ACPI 2.0+ length and
    /// extended checksum): tag 15 "ACPI new RSDP" if it holds a valid one, else tag 14 "ACPI old RSDP"
    /// (specification 3.6.16 and 3.6.17). Under UEFI this is the reliable way to find ACPI. The address is that of
    /// the copy inside [`information_region`](Self::information_region).
    ///
    /// # Errors
    /// [`RsdpError::NotFound`] if neither tag is present (under BIOS, `acpi_tables` then scans the BIOS area);
    /// otherwise why the preferred tag's copy is invalid.
    pub fn acpi_rsdp(&self) -> Result<Rsdp, RsdpError> {
        self.acpi_rsdp
    }

    /// The firmware that started the machine (UEFI if any EFI tag is present).
    pub fn firmware(&self) -> Firmware {
        self.firmware
    }

    /// Which tag [`memory_areas`](Self::memory_areas) came from: the EFI map when present, else the BIOS map.
    pub fn memory_map_source(&self) -> MemoryMapSource {
        self.memory_map_source
    }

    /// The framebuffer the bootloader set up (the first framebuffer tag, specification 3.6.12), or `None` if it
    /// passed none or one shorter than the tag's fixed part. GRUB passes an EGA-text one under BIOS and a direct-RGB
    /// one under UEFI. See [`crate::framebuffer()`] for the running system's.
    pub fn framebuffer(&self) -> Option<crate::FramebufferInfo> {
        self.framebuffer
    }
}
