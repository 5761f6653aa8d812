//! `deps CELL` (one cell's dependencies and dependents, with relocation counts) and `deps --dot` (the whole
//! kernel and application dependency graph in Graphviz DOT between marker lines).
//!
//! The graph comes from `cell_graph` (the namespaces' per-section dependency records: each relocation of a section
//! that resolved to another cell's section counts once for the edge cell -> that cell).

use alloc::string::String;
use alloc::vec::Vec;

use dep_graph::Edge;

/// `deps CELL | deps --dot`.
pub fn deps(words: &[String]) {
    let [_, argument] = words else {
        crate::console::write_str("usage: deps CELL | deps --dot\n");
        return;
    };
    let Some((nodes, edges)) = cell_graph::graph() else {
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
