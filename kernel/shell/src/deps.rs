//! `deps CELL` (one cell's dependencies and dependents, with relocation counts) and `deps --dot` (the whole
//! kernel and application dependency graph in Graphviz DOT between marker lines).
//!
//! The edges come from the namespaces' per-section dependency records: each relocation of a section that resolved
//! to another cell's section counts once for the edge (cell -> that cell).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use dep_graph::{Edge, Node};

/// Every loaded cell of both namespaces and every edge between cells, sorted.
fn graph() -> Option<(Vec<Node>, Vec<Edge>)> {
    let namespaces = [system_namespaces::kernel_namespace()?, system_namespaces::application_namespace()?];
    let mut nodes = Vec::new();
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for namespace in namespaces {
        for cell in namespace.loaded_cells() {
            nodes.push(Node { name: String::from(cell.name()), namespace: String::from(namespace.name()) });
            for section in cell.sections() {
                for dependency in section.dependencies() {
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

/// `deps CELL | deps --dot`.
pub fn deps(words: &[String]) {
    let [_, argument] = words else {
        crate::console::write_str("usage: deps CELL | deps --dot\n");
        return;
    };
    let Some((nodes, edges)) = graph() else {
        crate::console::write_str("deps: the system namespaces are not installed\n");
        return;
    };
    if argument == "--dot" {
        let mut text = String::new();
        // Writing into a `String` cannot fail.
        let _ = dep_graph::write_dot(&mut text, &nodes, &edges);
        crate::console::write_fmt(format_args!("{}\n{text}{}\n", dep_graph::DOT_BEGIN, dep_graph::DOT_END));
        return;
    }
    if !nodes.iter().any(|node| node.name == *argument) {
        crate::console::write_fmt(format_args!("deps: no loaded cell named {argument} (see `ns`)\n"));
        return;
    }
    print_side(argument, "depends on", edges.iter().filter(|edge| edge.from == *argument).map(|e| (&e.to, e)));
    print_side(argument, "is used by", edges.iter().filter(|edge| edge.to == *argument).map(|e| (&e.from, e)));
}

/// Prints `{cell} {verb} N cells:` and one `  name  (R relocations)` line per edge.
fn print_side<'a>(cell: &str, verb: &str, edges: impl Iterator<Item = (&'a String, &'a Edge)>) {
    let edges: Vec<(&String, &Edge)> = edges.collect();
    crate::console::write_fmt(format_args!("{cell} {verb} {} cells:\n", edges.len()));
    let width = edges.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, edge) in edges {
        crate::console::write_fmt(format_args!("  {name:<width$}  ({} relocations)\n", edge.relocations));
    }
}
