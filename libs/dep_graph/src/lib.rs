//! The cell dependency graph: edges with relocation counts, and a Graphviz DOT writer.
//!
//! # Purpose
//! The shell's `deps CELL` lists one cell's edges, `deps --dot` prints the whole graph in DOT between the marker
//! lines [`DOT_BEGIN`] and [`DOT_END`], so a host script can cut it out of a console log and `dot -Tsvg` can draw
//! it. The graph is built by the caller (from the namespaces' per-section dependency records) as [`Node`]s and
//! [`Edge`]s; [`write_dot`] writes it with every identifier quoted and escaped, so any cell name is valid DOT.
//! [`write_tree`] draws one cell's dependencies (or dependents) as a text tree, depth-limited ([`TreeOptions`]),
//! each repeated cell marked [`REPEAT_MARK`] (the `cells` application).
//!
//! Pure safe code with no kernel reach, so applications may depend on it (`app-facing` in its `Cargo.toml`).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod tree;
pub use tree::{CUT_MARK, Direction, REPEAT_MARK, TreeOptions, TreeStyle, write_tree};

use alloc::string::String;
use core::fmt;

/// The line before the DOT text.
pub const DOT_BEGIN: &str = "----- BEGIN DOT -----";
/// The line after the DOT text.
pub const DOT_END: &str = "----- END DOT -----";

/// One cell of the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The cell name.
    pub name: String,
    /// Its namespace (`kernel`, `application`): nodes are grouped into one cluster per namespace.
    pub namespace: String,
}

/// `from` has `relocations` relocations that resolve to sections of `to`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// The dependent cell.
    pub from: String,
    /// The cell depended on.
    pub to: String,
    /// Relocations of `from` that point into `to` (at least 1).
    pub relocations: usize,
}

/// Writes `text` as a DOT quoted string: `"` and `\` escaped, control characters replaced by spaces.
fn quoted(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    for character in text.chars() {
        match character {
            '"' | '\\' => {
                out.write_char('\\')?;
                out.write_char(character)?;
            }
            control if control.is_control() => out.write_char(' ')?,
            other => out.write_char(other)?,
        }
    }
    out.write_char('"')
}

/// Writes the graph as a DOT `digraph` named `cells`: one `subgraph cluster_N` per namespace (in the order nodes
/// first name them), then one edge per [`Edge`] labelled with its relocation count. Lines end in `\n`.
///
/// # Errors
/// Only the errors of `out`.
pub fn write_dot(out: &mut impl fmt::Write, nodes: &[Node], edges: &[Edge]) -> fmt::Result {
    out.write_str("digraph cells {\n  rankdir=LR;\n  node [shape=box];\n")?;
    let mut namespaces: alloc::vec::Vec<&str> = alloc::vec::Vec::new();
    for node in nodes {
        if !namespaces.contains(&node.namespace.as_str()) {
            namespaces.push(&node.namespace);
        }
    }
    for (index, namespace) in namespaces.iter().enumerate() {
        write!(out, "  subgraph cluster_{index} {{\n    label=")?;
        quoted(out, namespace)?;
        out.write_str(";\n")?;
        for node in nodes.iter().filter(|node| node.namespace == *namespace) {
            out.write_str("    ")?;
            quoted(out, &node.name)?;
            out.write_str(";\n")?;
        }
        out.write_str("  }\n")?;
    }
    for edge in edges {
        out.write_str("  ")?;
        quoted(out, &edge.from)?;
        out.write_str(" -> ")?;
        quoted(out, &edge.to)?;
        writeln!(out, " [label=\"{}\"];", edge.relocations)?;
    }
    out.write_str("}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small parser for the DOT subset [`write_dot`] writes: returns the edges, or the first line it rejects.
    fn parse(text: &str) -> Result<Vec<(String, String, usize)>, String> {
        let mut lines = text.lines();
        if lines.next() != Some("digraph cells {") {
            return Err("no digraph header".into());
        }
        let mut depth = 1;
        let mut edges = Vec::new();
        for line in lines {
            let line = line.trim();
            if depth == 0 {
                return Err(format!("text after the graph: {line}"));
            }
            if line == "}" {
                depth -= 1;
            } else if line.starts_with("subgraph cluster_") && line.ends_with('{') {
                depth += 1;
            } else if let Some(rest) = line.strip_suffix(';') {
                let (name, rest) = quoted_prefix(rest)?.map_or((None, rest), |(name, rest)| (Some(name), rest));
                match (name, rest.trim()) {
                    (Some(_), "") => {}
                    (Some(from), rest) if rest.starts_with("->") => {
                        let (to, label) =
                            quoted_prefix(rest[2..].trim())?.ok_or(format!("edge without target: {line}"))?;
                        let count = label
                            .trim()
                            .strip_prefix("[label=\"")
                            .and_then(|label| label.strip_suffix("\"]"))
                            .and_then(|count| count.parse().ok())
                            .ok_or(format!("bad edge label: {line}"))?;
                        edges.push((from, to, count));
                    }
                    (None, attribute) if attribute.contains('=') => {}
                    _ => return Err(format!("bad statement: {line}")),
                }
            } else {
                return Err(format!("bad line: {line}"));
            }
        }
        if depth != 0 {
            return Err("unbalanced braces".into());
        }
        Ok(edges)
    }

    /// A leading DOT quoted string (unescaped) and the rest, or `None` if `text` does not start with `"`.
    fn quoted_prefix(text: &str) -> Result<Option<(String, &str)>, String> {
        let Some(body) = text.strip_prefix('"') else { return Ok(None) };
        let mut name = String::new();
        let mut escaped = false;
        for (index, character) in body.char_indices() {
            match (escaped, character) {
                (false, '\\') => escaped = true,
                (false, '"') => return Ok(Some((name, &body[index + 1..]))),
                (_, character) => {
                    name.push(character);
                    escaped = false;
                }
            }
        }
        Err(format!("unterminated string: {text}"))
    }

    fn node(name: &str, namespace: &str) -> Node {
        Node { name: name.into(), namespace: namespace.into() }
    }

    fn edge(from: &str, to: &str, relocations: usize) -> Edge {
        Edge { from: from.into(), to: to.into(), relocations }
    }

    #[test]
    fn writes_parsable_dot_with_every_edge() {
        let nodes = [node("hello", "application"), node("greeting_v1", "kernel"), node("nano_core", "kernel")];
        let edges = [edge("hello", "greeting_v1", 2), edge("greeting_v1", "nano_core", 5)];
        let mut text = String::new();
        write_dot(&mut text, &nodes, &edges).unwrap();
        assert!(text.contains("label=\"application\""));
        assert_eq!(
            parse(&text).unwrap(),
            vec![("hello".into(), "greeting_v1".into(), 2), ("greeting_v1".into(), "nano_core".into(), 5)]
        );
    }

    #[test]
    fn quotes_awkward_names() {
        let nodes = [node("a\"b\\c", "k"), node("new\nline", "k")];
        let edges = [edge("a\"b\\c", "new\nline", 1)];
        let mut text = String::new();
        write_dot(&mut text, &nodes, &edges).unwrap();
        assert_eq!(parse(&text).unwrap(), vec![("a\"b\\c".into(), "new line".into(), 1)]);
    }

    #[test]
    fn the_parser_rejects_broken_dot() {
        assert!(parse("digraph cells {\n  \"a\" -> ;\n}\n").is_err());
        assert!(parse("digraph cells {\n  \"a\";\n").is_err());
        assert!(parse("graph x {\n}\n").is_err());
    }
}
