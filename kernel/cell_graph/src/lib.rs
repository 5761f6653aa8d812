//! The running system's cell dependency graph, built once for every user: the shell's `deps` and the
//! application-facing `app_io::system` (the `cells` application).
//!
//! # Purpose
//! Both namespaces keep, per section of each loaded cell, the sections its relocations resolved to. [`graph`]
//! folds those records into one [`Node`] per loaded cell and one [`Edge`] per (cell, cell depended on) pair,
//! counting relocations, as plain data (`dep_graph`'s types: owned strings, no references into the namespaces).
//!
//! # Control flow
//! 1. Take the kernel and application namespaces from `system_namespaces`.
//! 2. For each loaded cell of each: push its node; for each section dependency whose target section belongs to
//!    another cell, count one relocation for that edge.
//! 3. Return the nodes (kernel namespace first, each namespace's cells by name) and the edges sorted by
//!    (from, to).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

pub use dep_graph::{Edge, Node};

/// Every loaded cell of both namespaces and every edge between two different cells, sorted; `None` before
/// nano_core has installed the system namespaces.
pub fn graph() -> Option<(Vec<Node>, Vec<Edge>)> {
    let namespaces = [system_namespaces::kernel_namespace()?, system_namespaces::application_namespace()?];
    let mut nodes = Vec::new();
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for namespace in namespaces {
        let mut cells = namespace.loaded_cells();
        cells.sort_by(|left, right| left.name().cmp(right.name()));
        for cell in cells {
            nodes.push(Node { name: String::from(cell.name()), namespace: String::from(namespace.name()) });
            for section in cell.sections() {
                for dependency in section.dependencies() {
                    // A section whose cell is gone (being freed) has no edge to count.
                    let Some(target) = dependency.section.parent_cell() else { continue };
                    if target.name() != cell.name() {
                        *counts.entry((String::from(cell.name()), String::from(target.name()))).or_default() += 1;
                    }
                }
            }
        }
    }
    let edges = counts.into_iter().map(|((from, to), relocations)| Edge { from, to, relocations }).collect();
    Some((nodes, edges))
}
