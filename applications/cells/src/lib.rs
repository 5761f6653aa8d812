//! The cells application: draws a loaded cell's dependency tree in text, from the graph `deps` shows.
//!
//! Usage: `cells [-d DEPTH] [-r] [-a] CELL`. The tree follows CELL's dependencies (`-r`: the cells that depend on
//! it), in both namespaces, to DEPTH levels below CELL (default: no limit). A cell already drawn with its
//! subtree is drawn again with ` (*)` and not expanded; a cell below the depth limit ends in ` ...`. Branches use
//! box-drawing characters (`-a`: ASCII). An unknown CELL prints an error and returns 1.
//!
//! ```text
//! theseus> cells -d 1 hello
//! hello (application namespace), 3 direct dependencies
//! hello
//! ├── app_io ...
//! ├── greeting_v1 ...
//! └── nano_core
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use dep_graph::{Direction, TreeOptions, TreeStyle};

app_io::entry!(main);

/// The usage line printed for bad arguments.
const USAGE: &str = "usage: cells [-d DEPTH] [-r] [-a] CELL   (-r: dependents instead of dependencies; -a: ASCII)";

/// Parses `args[1..]` into the tree options and the cell name; `Err` carries the message to print.
fn parse(args: &[String]) -> Result<(TreeOptions, &str), String> {
    let mut options = TreeOptions { max_depth: None, direction: Direction::Dependencies, style: TreeStyle::Unicode };
    let mut cell = None;
    let mut words = args.iter().skip(1);
    while let Some(word) = words.next() {
        match word.as_str() {
            "-d" => {
                let value = words.next().ok_or_else(|| String::from("cells: -d needs a depth"))?;
                let depth = value.parse().map_err(|_| alloc::format!("cells: not a depth: {value}"))?;
                options.max_depth = Some(depth);
            }
            "-r" => options.direction = Direction::Dependents,
            "-a" => options.style = TreeStyle::Ascii,
            flag if flag.starts_with('-') => return Err(alloc::format!("cells: unknown option {flag}")),
            name if cell.is_none() => cell = Some(name),
            extra => return Err(alloc::format!("cells: one CELL only (also got {extra})")),
        }
    }
    let cell = cell.ok_or_else(|| String::from("cells: no CELL given"))?;
    Ok((options, cell))
}

/// Entry point: prints the tree. Returns 0, 1 (unknown cell, no namespaces) or 2 (usage).
pub fn main(args: Vec<String>) -> isize {
    let (options, name) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            app_io::println!("{message}\n{USAGE}");
            return app_io::exit_code::USAGE;
        }
    };
    let graph = match app_io::dependency_graph() {
        Ok(graph) => graph,
        Err(error) => {
            app_io::println!("cells: error: {error}");
            return app_io::exit_code::FAILURE;
        }
    };
    let Some(cell) = graph.cell(name) else {
        app_io::println!("cells: error: no loaded cell named {name} (`ns` lists them)");
        return app_io::exit_code::FAILURE;
    };
    let (count, what) = match options.direction {
        Direction::Dependencies => (graph.dependencies_of(name).count(), "direct dependenc"),
        Direction::Dependents => (graph.dependents_of(name).count(), "direct dependent"),
    };
    let plural = match (count, options.direction) {
        (1, Direction::Dependencies) => "y",
        (_, Direction::Dependencies) => "ies",
        (1, Direction::Dependents) => "",
        (_, Direction::Dependents) => "s",
    };
    app_io::println!("{name} ({} namespace), {count} {what}{plural}", cell.namespace);
    let mut text = String::new();
    // Writing into a `String` cannot fail.
    let _ = dep_graph::write_tree(&mut text, name, &graph.edges, &options);
    app_io::print!("{text}");
    app_io::exit_code::SUCCESS
}
