//! Shared helpers of the cell_namespace host tests: fixture objects built by rustc, a host memory provider, and
//! namespaces with a test base image.
//!
//! The fixtures (`tests/fixtures/`, its own cargo workspace) are built once per test binary for the kernel target
//! with the pinned toolchain into `tests/fixtures/target`; cargo makes later builds no-ops. Each rlib's single
//! object is extracted with `ar`.
#![allow(dead_code, reason = "each test binary uses a different subset of these helpers")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use cell_loader::ObjectFile;
use cell_namespace::{
    CellMemory, CellNamespace, Manifest, MemoryError, MemoryRegion, ObjectDirectory, RegionKind, parse_base_symbols,
};
use memory_structs::VirtualAddress;

/// The fixture objects, 8-byte aligned and leaked.
pub struct Fixtures {
    /// `fixture_a`: calls `fixture_b`, defines `fixture_a_offset` (called back by `fixture_b`).
    pub a: &'static [u8],
    /// `fixture_b`, version 1.
    pub b: &'static [u8],
    /// `fixture_b`, version 2 (same library name, different package).
    pub b_v2: &'static [u8],
    /// `fixture_b` without `version`.
    pub b_partial: &'static [u8],
    /// `fixture_b` v2 whose exported `EVENTS` is twice as large.
    pub b_resized: &'static [u8],
    /// `fixture_b` v2 whose `version` is a static.
    pub b_retyped: &'static [u8],
    /// `fixture_b` v2 whose `CALLS` is renamed `INVOCATIONS`.
    pub b_renamed: &'static [u8],
    /// `fixture_b` v2 with `CALLS` renamed and a `cell_state_transfer` calling [`TRANSFER_HOOK`].
    pub b_transfer: &'static [u8],
    /// `fixture_c`, version 1.
    pub c: &'static [u8],
    /// `fixture_c` without `c_value`.
    pub c_partial: &'static [u8],
    /// `fixture_user`, built against `fixture_b` version 1 and `fixture_c`.
    pub user: &'static [u8],
}

impl Fixtures {
    /// Every fixture object with its cell name, object file name, crate name and manifest dependency.
    pub fn cells(&self) -> [(&'static str, &'static str, &'static str, &'static [u8], &'static str); 11] {
        [
            ("fixture_a", OBJECT_A, "fixture_a", self.a, "fixture_b"),
            ("fixture_b", OBJECT_B, "fixture_b", self.b, "fixture_a"),
            ("fixture_b_v2", OBJECT_B_V2, "fixture_b", self.b_v2, "fixture_a"),
            ("fixture_b_partial", OBJECT_B_PARTIAL, "fixture_b", self.b_partial, "fixture_a"),
            ("fixture_b_resized", "k-fixture_b_resized.o", "fixture_b", self.b_resized, "fixture_a"),
            ("fixture_b_retyped", "k-fixture_b_retyped.o", "fixture_b", self.b_retyped, "fixture_a"),
            ("fixture_b_renamed", "k-fixture_b_renamed.o", "fixture_b", self.b_renamed, "fixture_a"),
            ("fixture_b_transfer", "k-fixture_b_transfer.o", "fixture_b", self.b_transfer, "fixture_a"),
            ("fixture_c", "k-fixture_c.o", "fixture_c", self.c, "nano_core"),
            ("fixture_c_partial", "k-fixture_c_partial.o", "fixture_c", self.c_partial, "nano_core"),
            ("fixture_user", "k-fixture_user.o", "fixture_user", self.user, "fixture_b"),
        ]
    }
}

/// Object file names in the test directory.
pub const OBJECT_A: &str = "k-fixture_a.o";
/// Object file name of `fixture_b`.
pub const OBJECT_B: &str = "k-fixture_b.o";
/// Object file name of `fixture_b_v2`.
pub const OBJECT_B_V2: &str = "k-fixture_b_v2.o";
/// Object file name of `fixture_b_partial`.
pub const OBJECT_B_PARTIAL: &str = "k-fixture_b_partial.o";

/// Copies `bytes` into a leaked, 8-byte-aligned buffer (the loader reads ELF tables in place).
pub fn leak_aligned(bytes: &[u8]) -> &'static [u8] {
    let words: &'static mut [u64] = vec![0_u64; bytes.len().div_ceil(8).max(1)].leak();
    // SAFETY: the u64 buffer is initialised, at least `bytes.len()` bytes long, and u8 has no alignment needs;
    // the buffer is leaked, so the slice lives forever and nothing else refers to it.
    let buffer = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes.len()) };
    buffer.copy_from_slice(bytes);
    buffer
}

/// Builds the fixture workspace `<crate_dir>/tests/fixtures` (its own cargo workspace) for the kernel target
/// into `<crate_dir>/tests/fixtures/target` (a no-op when up to date) and returns its `deps` directory.
/// `crate_dir` is the directory of a crate two levels below the repository root (`kernel/<crate>`).
///
/// # Panics
/// If cargo cannot run or the build fails (the panic shows cargo's stderr).
pub fn build_fixture_workspace(crate_dir: &Path) -> PathBuf {
    let fixtures = crate_dir.join("tests/fixtures");
    let target_spec = crate_dir.join("../../cfg/x86_64-theseus.json");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&fixtures)
        .args(["build", "--release", "-Zbuild-std=core,alloc,compiler_builtins"])
        .args(["-Zbuild-std-features=compiler-builtins-mem", "-Zjson-target-spec"])
        .arg("--manifest-path")
        .arg(fixtures.join("Cargo.toml"))
        .arg("--target")
        .arg(&target_spec)
        .arg("--target-dir")
        .arg(fixtures.join("target"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("run cargo to build the fixtures");
    assert!(output.status.success(), "fixture build failed:\n{}", String::from_utf8_lossy(&output.stderr));
    fixtures.join("target/x86_64-theseus/release/deps")
}

/// The fixture objects, built on first use.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(build_fixtures)
}

fn build_fixtures() -> Fixtures {
    let deps = build_fixture_workspace(Path::new(env!("CARGO_MANIFEST_DIR")));
    let object = |package: &str, library: &str| leak_aligned(&extract_object(&rlib_of(&deps, package, library)));
    Fixtures {
        a: object("fixture_a", "fixture_a"),
        b: object("fixture_b", "fixture_b"),
        b_v2: object("fixture_b_v2", "fixture_b"),
        b_partial: object("fixture_b_partial", "fixture_b"),
        b_resized: object("fixture_b_resized", "fixture_b"),
        b_retyped: object("fixture_b_retyped", "fixture_b"),
        b_renamed: object("fixture_b_renamed", "fixture_b"),
        b_transfer: object("fixture_b_transfer", "fixture_b"),
        c: object("fixture_c", "fixture_c"),
        c_partial: object("fixture_c_partial", "fixture_c"),
        user: object("fixture_user", "fixture_user"),
    }
}

/// The rlib of the package in directory `package`, whose library is named `library`.
///
/// Packages share the library name `fixture_b`, so the uplifted `release/libfixture_b.rlib` is ambiguous (cargo's
/// JSON messages name that one too). Each `deps/<library>-<hash>.d` dep-info file names its package's sources and
/// its `deps/lib<library>-<hash>.rlib`; the newest one whose sources are in `package/` wins.
fn rlib_of(deps: &Path, package: &str, library: &str) -> PathBuf {
    let source = format!(" {package}/src/lib.rs");
    let mut candidates: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(deps)
        .expect("read the fixtures' deps directory")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let hash = name.strip_prefix(&format!("{library}-"))?.strip_suffix(".d")?;
            let dep_info = std::fs::read_to_string(&path).ok()?;
            let rlib = deps.join(format!("lib{library}-{hash}.rlib"));
            let modified = std::fs::metadata(&rlib).ok()?.modified().ok()?;
            dep_info.lines().any(|line| line.ends_with(&source)).then_some((modified, rlib))
        })
        .collect();
    candidates.sort();
    candidates.pop().unwrap_or_else(|| panic!("no rlib for {package} in {deps:?}")).1
}

/// The single `.o` member of an rlib.
fn extract_object(rlib: &Path) -> Vec<u8> {
    let listing = Command::new("ar").arg("t").arg(rlib).output().expect("run ar t");
    assert!(listing.status.success(), "ar t {rlib:?} failed");
    let listing = String::from_utf8(listing.stdout).expect("ar output is UTF-8");
    let objects: Vec<&str> = listing.lines().filter(|name| name.ends_with(".o")).collect();
    assert_eq!(objects.len(), 1, "{rlib:?} should hold exactly one object: {objects:?}");
    let output = Command::new("ar").arg("p").arg(rlib).arg(objects[0]).output().expect("run ar p");
    assert!(output.status.success(), "ar p {rlib:?} failed");
    output.stdout
}

/// Where host regions are placed: below 2 GiB, so `R_X86_64_32S` works in a host process.
const REGION_BASE: usize = 0x2000_0000;
const REGION_LIMIT: usize = 0x7000_0000;
/// The largest region the host provider hands out (mutated objects ask for huge bss).
const MAX_REGION: usize = 16 << 20;
const PAGE: usize = 4096;
static NEXT_ADDRESS: AtomicUsize = AtomicUsize::new(REGION_BASE);

/// A host memory provider: `mmap` at fixed low addresses, `mprotect` for W^X. Counts its live regions.
#[derive(Default)]
pub struct HostMemory {
    live: Arc<AtomicUsize>,
}

impl HostMemory {
    /// How many regions this provider allocated that are not yet freed.
    pub fn live_regions(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

fn final_protection(kind: RegionKind) -> i32 {
    match kind {
        RegionKind::Text => libc::PROT_READ | libc::PROT_EXEC,
        RegionKind::ReadOnlyData => libc::PROT_READ,
        RegionKind::Data => libc::PROT_READ | libc::PROT_WRITE,
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

impl CellMemory for HostMemory {
    fn allocate(&self, size_in_bytes: usize, kind: RegionKind) -> Result<Box<dyn MemoryRegion>, MemoryError> {
        let out_of_memory = MemoryError::OutOfMemory { size_in_bytes, kind };
        if size_in_bytes == 0 || size_in_bytes > MAX_REGION {
            return Err(out_of_memory);
        }
        let size = size_in_bytes.next_multiple_of(PAGE);
        for _ in 0..100_000 {
            // One guard page between regions; wrap around to reuse freed ranges.
            let start = NEXT_ADDRESS.fetch_add(size + PAGE, Ordering::SeqCst);
            if start + size > REGION_LIMIT {
                let _ =
                    NEXT_ADDRESS.compare_exchange(start + size + PAGE, REGION_BASE, Ordering::SeqCst, Ordering::SeqCst);
                continue;
            }
            // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; a fresh anonymous mapping has no
            // other owner.
            let pointer = unsafe {
                libc::mmap(
                    start as *mut libc::c_void,
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if pointer == libc::MAP_FAILED {
                if errno() == libc::EEXIST {
                    continue;
                }
                return Err(out_of_memory);
            }
            if pointer as usize != start {
                // An old kernel that ignores MAP_FIXED_NOREPLACE placed it elsewhere: give it back.
                // SAFETY: the mapping was just created by us and nothing refers to it.
                unsafe { libc::munmap(pointer, size) };
                continue;
            }
            self.live.fetch_add(1, Ordering::SeqCst);
            return Ok(Box::new(HostRegion { start, size, kind, finalized: false, live: self.live.clone() }));
        }
        Err(out_of_memory)
    }
}

/// One `mmap`ed region; unmapped on drop.
pub struct HostRegion {
    start: usize,
    size: usize,
    kind: RegionKind,
    finalized: bool,
    live: Arc<AtomicUsize>,
}

impl HostRegion {
    fn protect(&self, protection: i32) -> Result<(), MemoryError> {
        // SAFETY: the range is exactly this region's own mapping.
        let result = unsafe { libc::mprotect(self.start as *mut libc::c_void, self.size, protection) };
        if result == 0 { Ok(()) } else { Err(MemoryError::PermissionChange { kind: self.kind, code: errno() }) }
    }
}

impl MemoryRegion for HostRegion {
    fn start_address(&self) -> VirtualAddress {
        VirtualAddress::new(self.start)
    }

    fn size_in_bytes(&self) -> usize {
        self.size
    }

    fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        if self.finalized {
            return None;
        }
        // SAFETY: the region is mapped read-write until finalized, is `size` bytes long, and `&mut self` makes
        // this the only reference to its bytes.
        Some(unsafe { std::slice::from_raw_parts_mut(self.start as *mut u8, self.size) })
    }

    fn finalize(&mut self) -> Result<(), MemoryError> {
        self.protect(final_protection(self.kind))?;
        self.finalized = true;
        Ok(())
    }

    unsafe fn patch(&self, offset: usize, bytes: &[u8]) -> Result<(), MemoryError> {
        let end = offset.checked_add(bytes.len()).filter(|&end| end <= self.size);
        if end.is_none() {
            return Err(MemoryError::OutOfBounds { offset, length: bytes.len(), region_size: self.size });
        }
        self.protect(libc::PROT_READ | libc::PROT_WRITE)?;
        // One store per relocated value, as the trait asks.
        let place = self.start + offset;
        // SAFETY: the range is inside this mapping, which is now writable; the caller guarantees nobody executes
        // or accesses these bytes meanwhile; unaligned writes are used for the unaligned places.
        unsafe {
            match bytes.len() {
                2 => std::ptr::write_unaligned(place as *mut u16, u16::from_le_bytes(bytes.try_into().unwrap())),
                4 => std::ptr::write_unaligned(place as *mut u32, u32::from_le_bytes(bytes.try_into().unwrap())),
                8 => std::ptr::write_unaligned(place as *mut u64, u64::from_le_bytes(bytes.try_into().unwrap())),
                _ => std::ptr::copy_nonoverlapping(bytes.as_ptr(), place as *mut u8, bytes.len()),
            }
        }
        self.protect(if self.finalized { final_protection(self.kind) } else { libc::PROT_READ | libc::PROT_WRITE })
    }
}

impl Drop for HostRegion {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours; every section referring to it is gone (the region is dropped last).
        unsafe { libc::munmap(self.start as *mut libc::c_void, self.size) };
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The address of a shared `ud2` trap stub (in low memory, within reach of the fixtures' PC-relative calls),
/// which the test base image uses for every symbol the fixtures need from outside (`panic_cannot_unwind`,
/// `rust_eh_personality`).
pub fn trap_stub() -> VirtualAddress {
    static STUB: OnceLock<usize> = OnceLock::new();
    let address = *STUB.get_or_init(|| {
        let mut region = HostMemory::default().allocate(PAGE, RegionKind::Text).expect("allocate the trap stub");
        region.as_mut_slice().expect("fresh region is writable")[..2].copy_from_slice(&[0x0f, 0x0b]);
        region.finalize().expect("finalize the trap stub");
        let address = region.start_address().value();
        std::mem::forget(region);
        address
    });
    VirtualAddress::new(address)
}

/// What `fixture_b_transfer`'s `cell_state_transfer` does, through `fixture_transfer_hook`: set by a test (the
/// tests of one binary that use it run it under [`TRANSFER_HOOK_USERS`]).
pub static TRANSFER_HOOK: std::sync::Mutex<Option<TransferHook>> = std::sync::Mutex::new(None);

/// A test's state-transfer behaviour: 0 = success.
pub type TransferHook = fn(&cell_namespace::StateTransfer<'_>) -> u64;
/// Serializes the tests that set [`TRANSFER_HOOK`].
pub static TRANSFER_HOOK_USERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `fixture_transfer_hook`, reached from the fixture through [`hook_stub`]: runs [`TRANSFER_HOOK`] (1 if unset).
extern "C" fn transfer_hook_entry(transfer: *const cell_namespace::StateTransfer<'_>) -> u64 {
    let hook = *TRANSFER_HOOK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // SAFETY: the fixture passes on the `&StateTransfer` the swap gave its `cell_state_transfer`, which lives for
    // the whole call.
    let transfer = unsafe { &*transfer };
    hook.map_or(1, |hook| hook(transfer))
}

/// The address of a stub in low memory (within reach of the fixtures' PC-relative calls) that jumps to
/// [`transfer_hook_entry`]: `movabs rax, imm64; jmp rax`.
pub fn hook_stub() -> VirtualAddress {
    static STUB: OnceLock<usize> = OnceLock::new();
    let address = *STUB.get_or_init(|| {
        let mut region = HostMemory::default().allocate(PAGE, RegionKind::Text).expect("allocate the hook stub");
        let bytes = region.as_mut_slice().expect("fresh region is writable");
        bytes[..2].copy_from_slice(&[0x48, 0xb8]);
        bytes[2..10].copy_from_slice(&(transfer_hook_entry as extern "C" fn(_) -> u64 as usize as u64).to_le_bytes());
        bytes[10..12].copy_from_slice(&[0xff, 0xe0]);
        region.finalize().expect("finalize the hook stub");
        let address = region.start_address().value();
        std::mem::forget(region);
        address
    });
    VirtualAddress::new(address)
}

/// The exported symbols of an object.
pub fn exports(object: &'static [u8]) -> Vec<String> {
    let object = ObjectFile::parse(object).expect("fixture parses");
    object.exported_symbols().map(|(_, symbol)| symbol.name.to_string()).collect()
}

/// The base symbol file text for the fixtures: every undefined symbol of the fixtures that no fixture defines,
/// pointing at the trap stub.
pub fn base_symbol_file() -> String {
    let fixtures = fixtures();
    let objects: Vec<&'static [u8]> = fixtures.cells().iter().map(|cell| cell.3).collect();
    let defined: Vec<String> = objects.iter().copied().flat_map(exports).collect();
    let mut text = String::from("# test base image: every outside symbol is a trap\n");
    let mut seen = Vec::new();
    for object in objects {
        let object = ObjectFile::parse(object).expect("fixture parses");
        for symbol in object.symbols() {
            let undefined = symbol.definition == cell_loader::SymbolDefinition::Undefined && !symbol.name.is_empty();
            if undefined && !defined.iter().any(|name| name == symbol.name) && !seen.contains(&symbol.name) {
                seen.push(symbol.name);
                let address = if symbol.name == "fixture_transfer_hook" { hook_stub() } else { trap_stub() };
                text.push_str(&format!("{:x} 2 T {}\n", address.value(), symbol.name));
            }
        }
    }
    text
}

/// The manifest text for the fixtures.
pub fn manifest_text() -> String {
    let fixtures = fixtures();
    let mut text = String::from("# fixture cells\n");
    for (cell, object_file, crate_name, object, dependency) in fixtures.cells() {
        text.push_str(&format!("cell {cell} kernel {object_file} {crate_name}\ndep nano_core\ndep {dependency}\n"));
        for symbol in exports(object) {
            text.push_str(&format!("sym {symbol}\n"));
        }
    }
    text
}

/// A namespace over the fixture objects (optionally with `a` replaced), with the test base image unless
/// `with_base_image` is false. Returns the namespace and its memory provider.
pub fn namespace_with(a: &'static [u8], with_base_image: bool) -> (CellNamespace, Arc<HostMemory>) {
    let fixtures = fixtures();
    let mut directory = ObjectDirectory::new();
    for (_, object_file, _, object, _) in fixtures.cells() {
        directory.insert(object_file, object);
    }
    directory.insert(OBJECT_A, a);
    let manifest = Manifest::parse(&manifest_text()).expect("fixture manifest parses");
    let memory = Arc::new(HostMemory::default());
    let namespace = CellNamespace::new("kernel", memory.clone(), directory, manifest, None);
    if with_base_image {
        let symbols = parse_base_symbols(&base_symbol_file()).expect("base symbol file parses");
        namespace.add_base_image("nano_core", &symbols).expect("base image");
    }
    (namespace, memory)
}

/// A namespace over the pristine fixtures, with the test base image.
pub fn namespace() -> (CellNamespace, Arc<HostMemory>) {
    namespace_with(fixtures().a, true)
}

/// Everything observable about a namespace's contents: cell names and (symbol, address) pairs.
pub fn snapshot(namespace: &CellNamespace) -> (Vec<String>, Vec<(String, VirtualAddress)>) {
    let cells = namespace.loaded_cells().iter().map(|cell| cell.name().to_string()).collect();
    (cells, namespace.symbols())
}

/// A fixture function `extern "C" fn(u64) -> u64`, found by its hash-free path in cell `cell`.
pub fn function(namespace: &CellNamespace, cell: &str, path: &str) -> extern "C" fn(u64) -> u64 {
    let address = namespace.find_function(cell, path).unwrap_or_else(|error| panic!("{path}: {error}"));
    // SAFETY: the address is the entry of a loaded, relocated and finalized (executable) fixture function declared
    // `extern "C" fn(u64) -> u64` (the integer calling convention is the same with soft-float).
    unsafe { std::mem::transmute::<usize, extern "C" fn(u64) -> u64>(address.value()) }
}

/// A fixture function `extern "C" fn() -> u64`.
pub fn getter(namespace: &CellNamespace, cell: &str, path: &str) -> extern "C" fn() -> u64 {
    let address = namespace.find_function(cell, path).unwrap_or_else(|error| panic!("{path}: {error}"));
    // SAFETY: as in `function`, for a fixture function declared `extern "C" fn() -> u64`.
    unsafe { std::mem::transmute::<usize, extern "C" fn() -> u64>(address.value()) }
}
