//! Swap everything: every loaded cell above nano_core (the kernel namespace's, then the application namespace's),
//! one at a time, for a fresh copy of itself with its state (`swap X X`), while the system runs.

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
    /// Cells loaded when it started, in both namespaces (base image excluded): the ones it tried.
    pub loaded: usize,
    /// The cells swapped, in order.
    pub swapped: Vec<String>,
    /// The cells whose swap failed (each changed nothing), in order.
    pub refused: Vec<Refusal>,
    /// Cells retired (still pinned) when it finished, after a final reclaim.
    pub retired: usize,
}

/// Swaps every cell loaded now (except the base image), kernel namespace first, each in name order, each for a fresh copy of itself
/// carrying its state over; calls `progress` after each swap with the cell and the outcome (the shell prints it).
/// A failure skips that cell and goes on. Ends with a reclaim.
pub fn swap_everything(progress: &mut dyn FnMut(&str, &Result<SwapReport, GateError>)) -> EverythingReport {
    let mut report = EverythingReport::default();
    let namespaces = [system_namespaces::kernel_namespace(), system_namespaces::application_namespace()];
    for namespace in namespaces.into_iter().flatten() {
        let mut names: Vec<String> = namespace
            .loaded_cells()
            .into_iter()
            .filter(|cell| !cell.is_base_image())
            .map(|cell| cell.name().to_string())
            .collect();
        names.sort();
        report.loaded += names.len();
        for name in names {
            let result = crate::swap_in(namespace, &[(&name, &name)], &SwapOptions::default());
            progress(&name, &result);
            match result {
                Ok(_) => report.swapped.push(name),
                Err(error) => report.refused.push(Refusal { cell: name, reason: alloc::format!("{error}") }),
            }
        }
    }
    report.retired = crate::reclaim().still_retired.len();
    if let Some(application) = system_namespaces::application_namespace() {
        report.retired += crate::reclaim_in(application).still_retired.len();
    }
    report
}
