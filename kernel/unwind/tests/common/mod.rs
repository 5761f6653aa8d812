//! Shared helpers of the unwind host tests: the fixture cell (a real rustc object for the kernel target) loaded
//! into low host memory by `cell_namespace`, and unwind-info registration for it and for this test executable.
//!
//! The fixture (`tests/fixtures/`, its own cargo workspace) is built once per test binary for the kernel target
//! into `tests/fixtures/target` (cargo makes later builds no-ops), and its rlib's single object is extracted with
//! `ar`. The memory provider and trap stub come from cell_namespace's own test helpers.
#![allow(dead_code, reason = "each test binary uses a different subset of these helpers")]

#[path = "../../../cell_namespace/tests/common/mod.rs"]
mod namespace_helpers;

use std::ffi::{CStr, c_int, c_void};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use cell_loader::ObjectFile;
use cell_loader::SectionKind;
use cell_namespace::{
    CellMemory, CellNamespace, LoadedCell, Manifest, ObjectDirectory, RegionKind, parse_base_symbols,
};
use memory_structs::VirtualAddress;
use unwind::{UnwindInfo, UnwindInfoDescription, UnwindRegistry};

pub use namespace_helpers::{HostMemory, leak_aligned, trap_stub};

/// The object file name of the fixture cell.
pub const OBJECT: &str = "k-unwind_fixture.o";
/// The fixture's cell name.
pub const CELL: &str = "unwind_fixture";

/// The fixture object, built on first use.
pub fn fixture_object() -> &'static [u8] {
    static OBJECT_BYTES: OnceLock<&'static [u8]> = OnceLock::new();
    OBJECT_BYTES.get_or_init(build_fixture)
}

fn build_fixture() -> &'static [u8] {
    let deps = namespace_helpers::build_fixture_workspace(Path::new(env!("CARGO_MANIFEST_DIR")));
    let mut rlibs: Vec<(std::time::SystemTime, std::path::PathBuf)> = std::fs::read_dir(&deps)
        .expect("read the fixture's deps directory")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?;
            (name.starts_with("libunwind_fixture-") && name.ends_with(".rlib"))
                .then(|| Some((std::fs::metadata(&path).ok()?.modified().ok()?, path)))?
        })
        .collect();
    rlibs.sort();
    let rlib = rlibs.pop().expect("the fixture rlib").1;
    let listing = Command::new("ar").arg("t").arg(&rlib).output().expect("run ar t");
    let listing = String::from_utf8(listing.stdout).expect("ar output is UTF-8");
    let objects: Vec<&str> = listing.lines().filter(|name| name.ends_with(".o")).collect();
    assert_eq!(objects.len(), 1, "{rlib:?} should hold exactly one object: {objects:?}");
    let output = Command::new("ar").arg("p").arg(&rlib).arg(objects[0]).output().expect("run ar p");
    assert!(output.status.success(), "ar p {rlib:?} failed");
    leak_aligned(&output.stdout)
}

/// A low-memory trampoline `movabs r11, target; jmp r11`, within reach of the fixture's PC-relative calls.
pub fn trampoline_to(target: usize) -> VirtualAddress {
    let mut region = HostMemory::default().allocate(4096, RegionKind::Text).expect("allocate a trampoline");
    let bytes = region.as_mut_slice().expect("fresh region is writable");
    bytes[..2].copy_from_slice(&[0x49, 0xbb]);
    bytes[2..10].copy_from_slice(&(target as u64).to_le_bytes());
    bytes[10..13].copy_from_slice(&[0x41, 0xff, 0xe3]);
    region.finalize().expect("finalize the trampoline");
    let address = region.start_address();
    std::mem::forget(region);
    address
}

/// The loaded fixture: its namespace (leaked, so the cell stays loaded) and cell.
pub struct LoadedFixture {
    /// The namespace holding it.
    pub namespace: &'static CellNamespace,
    /// The fixture cell.
    pub cell: Arc<LoadedCell>,
}

/// Loads the fixture once per test binary. `_Unwind_Resume` (called by its cleanup pads) is bound to a trampoline
/// to `unwind_resume`; every other outside symbol to a trap.
pub fn loaded_fixture(unwind_resume: usize) -> &'static LoadedFixture {
    static FIXTURE: OnceLock<LoadedFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let object = fixture_object();
        let parsed = ObjectFile::parse(object).expect("fixture parses");
        let resume = trampoline_to(unwind_resume);
        let mut base = String::from("# test base image\n");
        for symbol in parsed.symbols() {
            if symbol.definition == cell_loader::SymbolDefinition::Undefined && !symbol.name.is_empty() {
                let address = if symbol.name == "_Unwind_Resume" { resume } else { trap_stub() };
                base.push_str(&format!("{:x} 10 T {}\n", address.value(), symbol.name));
            }
        }
        let mut manifest = format!("cell {CELL} kernel {OBJECT} {CELL}\ndep nano_core\n");
        for (_, symbol) in parsed.exported_symbols() {
            manifest.push_str(&format!("sym {}\n", symbol.name));
        }
        let mut directory = ObjectDirectory::new();
        directory.insert(OBJECT, object);
        let manifest = Manifest::parse(&manifest).expect("manifest parses");
        let namespace = CellNamespace::new("kernel", Arc::new(HostMemory::default()), directory, manifest, None);
        namespace.add_base_image("nano_core", &parse_base_symbols(&base).expect("base symbols")).expect("base image");
        let cell = namespace.load_cell(CELL).expect("fixture loads");
        LoadedFixture { namespace: Box::leak(Box::new(namespace)), cell }
    })
}

fn range(start: usize, end: usize) -> std::ops::Range<VirtualAddress> {
    VirtualAddress::new(start)..VirtualAddress::new(end)
}

/// The registration of a loaded cell: its text sections' span, its `.eh_frame` and `.gcc_except_table*`.
pub fn cell_description(cell: &Arc<LoadedCell>) -> UnwindInfoDescription {
    let text = cell.sections().iter().filter(|section| section.kind() == SectionKind::Text);
    let start = text.clone().map(|section| section.address().value()).min().expect("text sections");
    let end = text.map(|section| section.address().value() + section.size_in_bytes()).max().expect("text sections");
    let eh_frame = cell.eh_frames().next().expect("an .eh_frame");
    UnwindInfoDescription {
        name: cell.name().to_string(),
        text: range(start, end),
        eh_frame: range(eh_frame.address().value(), eh_frame.address().value() + eh_frame.size_in_bytes()),
        gcc_except_tables: cell
            .gcc_except_tables()
            .map(|table| range(table.address().value(), table.address().value() + table.size_in_bytes()))
            .collect(),
        owner: Some(cell.clone()),
    }
}

/// Registers the fixture cell in `registry`.
pub fn register_fixture(registry: &UnwindRegistry, fixture: &LoadedFixture) -> Arc<UnwindInfo> {
    // SAFETY: the cell's sections are loaded, relocated and never change; `owner` keeps their memory alive.
    unsafe { registry.register(cell_description(&fixture.cell)) }.expect("register the fixture")
}

/// The address range of the fixture function at hash-free `path`: its text section.
pub fn function_range(fixture: &LoadedFixture, path: &str) -> std::ops::Range<u64> {
    let start = fixture.namespace.find_function(CELL, path).expect("fixture function").value();
    let section = fixture.cell.section_containing(VirtualAddress::new(start)).expect("its section");
    start as u64..(section.address().value() + section.size_in_bytes()) as u64
}

struct Segments {
    text: Option<std::ops::Range<usize>>,
    eh_frame_hdr: Option<usize>,
    read_only: Vec<std::ops::Range<usize>>,
}

unsafe extern "C" fn collect_segments(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut c_void) -> c_int {
    // SAFETY: dl_iterate_phdr passes a valid info for the main program first, and our `Segments` as data.
    let (info, segments) = unsafe { (&*info, &mut *data.cast::<Segments>()) };
    // SAFETY: phdr points to phnum program headers of the object.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let base = info.dlpi_addr as usize;
    for header in headers {
        let start = base + header.p_vaddr as usize;
        let end = start + header.p_memsz as usize;
        match header.p_type {
            libc::PT_LOAD if header.p_flags & libc::PF_X != 0 => segments.text = Some(start..end),
            libc::PT_LOAD if header.p_flags & libc::PF_W == 0 => segments.read_only.push(start..end),
            libc::PT_GNU_EH_FRAME => segments.eh_frame_hdr = Some(start),
            _ => {}
        }
    }
    // The main program comes first: stop there.
    1
}

/// Registers this test executable's own `.eh_frame` (found through `PT_GNU_EH_FRAME`) in `registry`, so walks can
/// pass through host frames (the test functions, std, the unwind runtime itself).
pub fn register_host(registry: &UnwindRegistry) -> Arc<UnwindInfo> {
    let mut segments = Segments { text: None, eh_frame_hdr: None, read_only: Vec::new() };
    // SAFETY: the callback matches dl_iterate_phdr's contract and only reads what it is given.
    unsafe { libc::dl_iterate_phdr(Some(collect_segments), (&raw mut segments).cast()) };
    let text = segments.text.expect("an executable segment");
    let header = segments.eh_frame_hdr.expect("PT_GNU_EH_FRAME");
    // SAFETY: .eh_frame_hdr is mapped: version, eh_frame_ptr encoding, FDE count encoding, table encoding, then
    // eh_frame_ptr.
    let (encoding, pointer) = unsafe {
        let bytes = header as *const u8;
        (bytes.add(1).read(), (bytes.add(4) as *const i32).read_unaligned())
    };
    assert_eq!(encoding, 0x1b, "eh_frame_ptr encoding (pcrel sdata4)");
    let eh_frame = (header as i64 + 4 + i64::from(pointer)) as usize;
    let segment = segments
        .read_only
        .iter()
        .find(|segment| segment.contains(&eh_frame))
        .expect("the segment holding .eh_frame")
        .clone();
    let description = UnwindInfoDescription {
        name: "host test executable".into(),
        text: range(text.start, text.end),
        eh_frame: range(eh_frame, segment.end),
        gcc_except_tables: vec![range(segment.start, segment.end)],
        owner: None,
    };
    // SAFETY: the executable's read-only segment is mapped and immutable for the life of the process.
    unsafe { registry.register(description) }.expect("register the host executable")
}

/// The name of a symbol at `address` in this process, for messages (dladdr).
pub fn host_symbol(address: u64) -> String {
    // SAFETY: Dl_info is plain pointers and integers, for which all-zero is valid.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address and writes `info`.
    if unsafe { libc::dladdr(address as *const c_void, &mut info) } != 0 && !info.dli_sname.is_null() {
        // SAFETY: dli_sname is a NUL-terminated string owned by the dynamic linker.
        let name = unsafe { CStr::from_ptr(info.dli_sname) }.to_string_lossy();
        format!("{:#}", rustc_demangle::demangle(&name))
    } else {
        format!("{address:#x}")
    }
}
