//! Swap everything: every loaded kernel cell above nano_core, one at a time, for a fresh copy of itself with its
//! state (`swap X X`), while the system runs.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use cell_namespace::{SwapOptions, SwapReport};

use crate::GateError;

/// A cell whose swap failed, and why (the gate's error, as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The cell.
    pub cell: String,
    /// The error's message.
    pub reason: String,
}

/// What [`swap_everything`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EverythingReport {
    /// Kernel cells loaded when it started (base image excluded): the ones it tried.
    pub loaded: usize,
    /// The cells swapped, in order.
    pub swapped: Vec<String>,
    /// The cells whose swap failed (each changed nothing), in order.
    pub refused: Vec<Refusal>,
    /// Cells retired (still pinned) when it finished, after a final reclaim.
    pub retired: usize,
}

/// Swaps every kernel cell loaded now (except the base image), in name order, each for a fresh copy of itself
/// carrying its state over; calls `progress` after each swap with the cell and the outcome (the shell prints it).
/// A failure skips that cell and goes on. Ends with a reclaim.
pub fn swap_everything(progress: &mut dyn FnMut(&str, &Result<SwapReport, GateError>)) -> EverythingReport {
    let Some(kernel) = system_namespaces::kernel_namespace() else { return EverythingReport::default() };
    let mut names: Vec<String> = kernel
        .loaded_cells()
        .into_iter()
        .filter(|cell| !cell.is_base_image())
        .map(|cell| cell.name().to_string())
        .collect();
    names.sort();
    let mut report = EverythingReport { loaded: names.len(), ..EverythingReport::default() };
    for name in names {
        let result = crate::swap(&[(&name, &name)], &SwapOptions::default());
        progress(&name, &result);
        match result {
            Ok(_) => report.swapped.push(name),
            Err(error) => report.refused.push(Refusal { cell: name, reason: alloc::format!("{error}") }),
        }
    }
    report.retired = crate::reclaim().still_retired.len();
    report
}
