//! The typed entry descriptor every application exports, and its check at load time.
//!
//! An application's entry is `fn(Vec<String>) -> isize`. A symbol name does not carry a Rust function's type (v0
//! mangling of a plain function is only its path), so the shell cannot tell a proper `main` from a `main` of
//! another type by looking at the symbol. Instead each application exports a descriptor, written by
//! `app_io::entry!(main)`: `pub static APPLICATION_ENTRY: ApplicationEntry = ApplicationEntry::new(main)`. The only
//! constructor takes an `fn(Vec<String>) -> isize`, so the compiler checks the type; the descriptor starts with a
//! magic tag and a layout version, which [`find_entry`] checks (with the room left in its section) before it
//! reads the function pointer. An application without a descriptor, or with a malformed one, is refused with
//! [`EntryError`] and nothing runs.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::Ordering;

use cell_namespace::{CellNamespace, FindFunctionError};
use memory_structs::VirtualAddress;

/// The tag at the start of every [`ApplicationEntry`].
const MAGIC: [u8; 8] = *b"APPENTRY";
/// The layout version of [`ApplicationEntry`]; bumped when its fields change.
pub const ENTRY_VERSION: u32 = 1;
/// The hash-free name (after `<crate>::`) of the descriptor static `app_io::entry!` emits.
pub const ENTRY_SYMBOL: &str = "APPLICATION_ENTRY";

/// An application's typed entry: emitted by `app_io::entry!`, read by [`find_entry`].
#[repr(C)]
pub struct ApplicationEntry {
    magic: [u8; 8],
    version: u32,
    main: fn(Vec<String>) -> isize,
}

impl ApplicationEntry {
    /// The descriptor of entry function `main` (`args[0]` is the command name; the return value is the exit
    /// code, see `app_io::exit_code`).
    pub const fn new(main: fn(Vec<String>) -> isize) -> Self {
        Self { magic: MAGIC, version: ENTRY_VERSION, main }
    }
}

/// Why a cell is not a runnable application.
#[derive(Debug)]
pub enum EntryError {
    /// The cell could not be loaded, or exports no `<crate>::APPLICATION_ENTRY` data object.
    Missing(FindFunctionError),
    /// The descriptor's section is too small to hold an [`ApplicationEntry`] (bytes left at the symbol).
    TooSmall(usize),
    /// The descriptor does not start with the magic tag (the first 8 bytes found).
    BadMagic([u8; 8]),
    /// The descriptor's layout version is not [`ENTRY_VERSION`] (the version found).
    BadVersion(u32),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(error) => write!(f, "no typed entry ({error}; add `app_io::entry!(main);`)"),
            Self::TooSmall(bytes) => write!(f, "entry descriptor truncated ({bytes} bytes)"),
            Self::BadMagic(bytes) => write!(f, "entry descriptor has a bad tag {bytes:02x?}"),
            Self::BadVersion(version) => write!(f, "entry descriptor version {version}, expected {ENTRY_VERSION}"),
        }
    }
}

/// Finds and checks the entry descriptor `<crate_name>::APPLICATION_ENTRY` of cell `cell` (loading it if needed);
/// returns its entry function.
///
/// # Errors
/// [`EntryError`]: no descriptor, too little room for one, a bad tag or a bad version.
pub fn find_entry(
    namespace: &CellNamespace,
    cell: &str,
    crate_name: &str,
) -> Result<fn(Vec<String>) -> isize, EntryError> {
    let mut path = String::from(crate_name);
    path.push_str("::");
    path.push_str(ENTRY_SYMBOL);
    let (address, room) = namespace.find_data(cell, &path).map_err(EntryError::Missing)?;
    if room < size_of::<ApplicationEntry>() {
        return Err(EntryError::TooSmall(room));
    }
    let pointer = address.value() as *const u8;
    // SAFETY: `address` is an exported data symbol of a loaded cell with at least `size_of::<ApplicationEntry>()`
    // bytes of its section after it (checked above); the namespace keeps the cell loaded while we read. Reading
    // the first 8 bytes as bytes is valid for any contents.
    let magic = unsafe { pointer.cast::<[u8; 8]>().read_unaligned() };
    if magic != MAGIC {
        return Err(EntryError::BadMagic(magic));
    }
    // SAFETY: as above; a `u32` is valid for any bits, and `version` sits at its `repr(C)` offset.
    let version =
        unsafe { pointer.add(core::mem::offset_of!(ApplicationEntry, version)).cast::<u32>().read_unaligned() };
    if version != ENTRY_VERSION {
        return Err(EntryError::BadVersion(version));
    }
    // The tag and version match, so the object was built by `ApplicationEntry::new` (its fields are private, and
    // the constructor type-checks `main`) in this same build: the pointer field is a valid
    // `fn(Vec<String>) -> isize`, relocated by the loader. (A static of another type named `APPLICATION_ENTRY`
    // that happens to start with the same 12 bytes would defeat this; the tag guards against accidents, and
    // applications are reviewed source, not adversaries.)
    // SAFETY: the `main` field of an `ApplicationEntry` written by its constructor, in bounds (checked; see
    // above); read unaligned, so the symbol's alignment does not matter.
    let main = unsafe {
        pointer.add(core::mem::offset_of!(ApplicationEntry, main)).cast::<fn(Vec<String>) -> isize>().read_unaligned()
    };
    Ok(main)
}

/// [`find_entry`], remembered in the loaded cell ([`LoadedCell::entry_memo`](cell_namespace::LoadedCell::entry_memo)):
/// while cell `cell` stays the same loaded cell, later calls return the checked entry without looking the
/// descriptor up again. A swapped-in or reloaded cell is a new `LoadedCell` with an empty memo, so it is checked
/// afresh.
///
/// # Errors
/// As [`find_entry`].
pub fn find_entry_memoized(
    namespace: &CellNamespace,
    cell: &str,
    crate_name: &str,
) -> Result<fn(Vec<String>) -> isize, EntryError> {
    if let Some(loaded) = namespace.cell(cell) {
        let word = loaded.entry_memo().load(Ordering::Acquire);
        if word != 0 {
            // SAFETY: only the store below writes the memo of this cell, with the address of an entry function
            // `find_entry` checked in it (the address lies in one of its sections); the cell is the same loaded
            // cell (its `Arc` is held) and cells are never modified in place, so the function is still there.
            return Ok(unsafe { core::mem::transmute::<usize, fn(Vec<String>) -> isize>(word) });
        }
    }
    let main = find_entry(namespace, cell, crate_name)?;
    // Remember it only in the cell that holds the function: a swap between the lookup and here installs another
    // `LoadedCell`, whose sections do not contain `main`.
    if let Some(loaded) = namespace.cell(cell)
        && loaded.section_containing(VirtualAddress::new(main as usize)).is_some()
    {
        loaded.entry_memo().store(main as usize, Ordering::Release);
    }
    Ok(main)
}
