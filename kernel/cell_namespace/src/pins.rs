//! What keeps a swapped-out cell alive: [`Pin`]s, the [`PinFinder`] that looks for them, and the records of
//! *retired* cells (swapped out, still pinned, kept mapped) that [`CellNamespace::reclaim_retired`] frees later.
//!
//! [`CellNamespace::reclaim_retired`]: crate::CellNamespace::reclaim_retired

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use memory_structs::VirtualAddress;

use crate::CellSizes;

/// A half-open address range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AddressRange {
    /// The first address inside the range.
    pub start: VirtualAddress,
    /// The first address after the range.
    pub end: VirtualAddress,
}

impl AddressRange {
    /// Whether `address` lies inside the range (start inclusive, end exclusive).
    pub fn contains(&self, address: VirtualAddress) -> bool {
        self.start <= address && address < self.end
    }

    /// The range's length in bytes (0 if `end <= start`).
    pub fn size_in_bytes(&self) -> usize {
        self.end.value().saturating_sub(self.start.value())
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.start.value(), self.end.value())
    }
}

/// Something that keeps a swapped-out (retired) cell's memory alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pin {
    /// A return address or program counter of a switched-out task's stack, inside the cell.
    Frame {
        /// The task's id.
        task: u64,
        /// The task's name.
        task_name: String,
        /// The address inside the cell.
        address: VirtualAddress,
    },
    /// The interrupted instruction (or a frame above it) of a CPU stopped for the swap.
    InterruptedContext {
        /// The CPU's id.
        cpu: usize,
        /// The address inside the cell.
        address: VirtualAddress,
    },
    /// A task whose entry function lives in the cell.
    TaskEntry {
        /// The task's id.
        task: u64,
        /// The task's name.
        task_name: String,
    },
    /// A task whose stack could not be walked (running on another CPU, or no unwind info): pins conservatively.
    Unwalkable {
        /// The task's id.
        task: u64,
        /// The task's name.
        task_name: String,
        /// Why it could not be walked.
        why: String,
    },
    /// A stored function or vtable pointer into the cell (IDT entry, hook, heap object, another cell's data, a
    /// copied static the swap could not translate...).
    Pointer {
        /// Where the pointer is stored.
        location: VirtualAddress,
        /// What it is (e.g. the static holding it and what it points to).
        what: String,
    },
    /// `Arc<LoadedSection>` / `Arc<LoadedCell>` references held by other retired cells of the namespace: the
    /// dependency records of their code, which was linked to this cell and still calls it or uses its data, and
    /// the state links of retired copies whose code was redirected to this cell's state (`keeps_alive`).
    RetiredCells {
        /// How many references.
        count: usize,
        /// The retired cells holding them, by name (each name once).
        cells: Vec<String>,
    },
    /// `Arc<LoadedCell>` / `Arc<LoadedSection>` references held outside the namespace (not counting those of
    /// [`Pin::RetiredCells`]).
    References {
        /// How many (cell references plus section references beyond the cell's own).
        count: usize,
    },
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frame { task, task_name, address } => {
                write!(f, "task {task} \"{task_name}\" has a frame at {:#x}", address.value())
            }
            Self::InterruptedContext { cpu, address } => {
                write!(f, "CPU {cpu} was interrupted at {:#x}", address.value())
            }
            Self::TaskEntry { task, task_name } => write!(f, "task {task} \"{task_name}\" starts in it"),
            Self::Unwalkable { task, task_name, why } => {
                write!(f, "task {task} \"{task_name}\" could not be walked ({why})")
            }
            Self::Pointer { location, what } => write!(f, "pointer at {:#x}: {what}", location.value()),
            Self::RetiredCells { count, cells } => {
                write!(f, "{count} references from retired cells that use it ({})", cells.join(", "))
            }
            Self::References { count } => write!(f, "{count} references held outside the namespace"),
        }
    }
}

/// Finds what still refers to a cell's code or data.
///
/// The kernel's implementation walks every task's saved stack with the unwinder, every stopped CPU's interrupted
/// context and the caller's own stack, and may scan memory for stored pointers. It may be called inside the
/// quiesced closure, so it must not take a lock that code running with interrupts enabled may hold (IRQ-safe locks
/// and the heap, whose lock is IRQ-safe, are fine; the serial port, the logger and namespace locks are not).
pub trait PinFinder {
    /// Every pin of cell `cell`, whose code and data occupy `ranges`. Empty: nothing refers to it.
    fn find_pins(&self, cell: &str, ranges: &[AddressRange]) -> Vec<Pin>;
}

/// Finds nothing (host tests; before tasking).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPins;

impl PinFinder for NoPins {
    fn find_pins(&self, _cell: &str, _ranges: &[AddressRange]) -> Vec<Pin> {
        Vec::new()
    }
}

/// One retired cell: swapped out, but still pinned, so kept mapped and executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetiredCellInfo {
    /// The cell's name.
    pub name: String,
    /// The byte sizes of its text, read-only data and data.
    pub sizes: CellSizes,
    /// The address ranges of its memory regions.
    pub ranges: Vec<AddressRange>,
    /// What pinned it when it was last checked (at its swap, or at the last reclaim).
    pub pins: Vec<Pin>,
    /// The cells it keeps alive because its code was redirected to their state (its replacements).
    pub keeps_alive: Vec<String>,
}

impl fmt::Display for RetiredCellInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.sizes.text + self.sizes.read_only_data + self.sizes.data;
        write!(f, "{} ({bytes} bytes), pinned by {} thing(s)", self.name, self.pins.len())?;
        for pin in &self.pins {
            write!(f, "; {pin}")?;
        }
        Ok(())
    }
}

/// What [`CellNamespace::reclaim_retired`](crate::CellNamespace::reclaim_retired) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReclaimReport {
    /// The retired cells freed (no longer pinned), by name.
    pub freed: Vec<String>,
    /// The retired cells still pinned.
    pub still_retired: Vec<RetiredCellInfo>,
    /// If the re-check could not run (quiescing failed): why. Nothing was freed then.
    pub quiesce_error: Option<crate::QuiesceError>,
}

impl fmt::Display for ReclaimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(error) = &self.quiesce_error {
            return write!(f, "reclaim not checked: {error}; {} cells stay retired", self.still_retired.len());
        }
        write!(f, "{} retired cells freed", self.freed.len())?;
        if !self.freed.is_empty() {
            write!(f, " ({})", self.freed.join(", "))?;
        }
        write!(f, ", {} still retired", self.still_retired.len())
    }
}
