//! A dependency tree drawn in text: [`write_tree`] (the `cells` application's output).

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::Edge;

/// Which way the tree follows the edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A node's children are the cells it depends on (`from` -> `to`).
    Dependencies,
    /// A node's children are the cells that depend on it (`to` -> `from`).
    Dependents,
}

/// The characters that draw the tree's branches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeStyle {
    /// Box-drawing characters: `├── `, `└── `, `│   `.
    Unicode,
    /// Plain ASCII: `|-- `, `` `-- ``, `|   `.
    Ascii,
}

impl TreeStyle {
    /// The (middle child, last child, continuing line) strings, each four columns wide.
    fn branches(self) -> (&'static str, &'static str, &'static str) {
        match self {
            TreeStyle::Unicode => ("├── ", "└── ", "│   "),
            TreeStyle::Ascii => ("|-- ", "`-- ", "|   "),
        }
    }
}

/// How [`write_tree`] draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeOptions {
    /// The deepest level drawn (the root is level 0); `None` for no limit. A node at this level that has children
    /// is drawn with [`CUT_MARK`] after its name.
    pub max_depth: Option<usize>,
    /// Follow dependencies or dependents.
    pub direction: Direction,
    /// Branch characters.
    pub style: TreeStyle,
}

/// Appended to a node already drawn (with its children) earlier in the tree; its children are not drawn again.
pub const REPEAT_MARK: &str = " (*)";
/// Appended to a node whose children are below the depth limit.
pub const CUT_MARK: &str = " ...";

/// One node to draw: its name, its level, and the prefix of its line (the branch columns of its ancestors).
struct Pending<'a> {
    name: &'a str,
    depth: usize,
    prefix: String,
    /// The branch string before the name (empty for the root).
    branch: &'static str,
}

/// The children of `name` in `direction`, sorted by name and without duplicates.
fn children<'a>(edges: &'a [Edge], name: &str, direction: Direction) -> Vec<&'a str> {
    let mut names: Vec<&str> = edges
        .iter()
        .filter_map(|edge| match direction {
            Direction::Dependencies if edge.from == name => Some(edge.to.as_str()),
            Direction::Dependents if edge.to == name => Some(edge.from.as_str()),
            _ => None,
        })
        .filter(|child| *child != name)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Writes the tree rooted at `root` over `edges`, one node per line (`\n`-terminated), depth first, children in
/// name order. A node drawn earlier (anywhere in the tree) is drawn again with [`REPEAT_MARK`] and not expanded,
/// so every cell's subtree appears once and cycles end; a node at `options.max_depth` with children gets
/// [`CUT_MARK`] (and may still be expanded where it recurs higher up). Returns the number of lines written.
///
/// # Errors
/// Only the errors of `out`.
pub fn write_tree(
    out: &mut impl fmt::Write,
    root: &str,
    edges: &[Edge],
    options: &TreeOptions,
) -> Result<usize, fmt::Error> {
    let (middle, last, continuing) = options.style.branches();
    let mut expanded: BTreeSet<&str> = BTreeSet::new();
    let mut stack = alloc::vec![Pending { name: root, depth: 0, prefix: String::new(), branch: "" }];
    let mut lines = 0;
    while let Some(node) = stack.pop() {
        lines += 1;
        write!(out, "{}{}{}", node.prefix, node.branch, node.name)?;
        let node_children = children(edges, node.name, options.direction);
        if expanded.contains(node.name) {
            writeln!(out, "{REPEAT_MARK}")?;
            continue;
        }
        if node_children.is_empty() {
            expanded.insert(node.name);
            writeln!(out)?;
            continue;
        }
        if options.max_depth.is_some_and(|max| node.depth >= max) {
            writeln!(out, "{CUT_MARK}")?;
            continue;
        }
        writeln!(out)?;
        expanded.insert(node.name);
        // The columns under this node: a continuing line if it has later siblings, blanks if it was the last one.
        let mut child_prefix = node.prefix.clone();
        match node.branch {
            "" => {}
            branch if branch == last => child_prefix.push_str("    "),
            _ => child_prefix.push_str(continuing),
        }
        let count = node_children.len();
        // Pushed in reverse so the first child is popped (drawn) first.
        for (index, child) in node_children.into_iter().enumerate().rev() {
            let branch = if index + 1 == count { last } else { middle };
            stack.push(Pending { name: child, depth: node.depth + 1, prefix: child_prefix.clone(), branch });
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(from: &str, to: &str) -> Edge {
        Edge { from: from.into(), to: to.into(), relocations: 1 }
    }

    fn draw(root: &str, edges: &[Edge], max_depth: Option<usize>, direction: Direction, style: TreeStyle) -> String {
        let mut text = String::new();
        let lines = write_tree(&mut text, root, edges, &TreeOptions { max_depth, direction, style }).unwrap();
        assert_eq!(lines, text.lines().count());
        text
    }

    fn sample() -> Vec<Edge> {
        vec![
            edge("hello", "greeting_v1"),
            edge("hello", "app_io"),
            edge("app_io", "serial"),
            edge("app_io", "nano_core"),
            edge("greeting_v1", "nano_core"),
            edge("serial", "nano_core"),
        ]
    }

    #[test]
    fn draws_branches_and_marks_repeats() {
        let text = draw("hello", &sample(), None, Direction::Dependencies, TreeStyle::Unicode);
        assert_eq!(
            text,
            "hello\n├── app_io\n│   ├── nano_core\n│   └── serial\n│       └── nano_core (*)\n└── greeting_v1\n    └── nano_core (*)\n"
        );
    }

    #[test]
    fn ascii_style() {
        let text = draw("hello", &sample(), None, Direction::Dependencies, TreeStyle::Ascii);
        assert_eq!(
            text,
            "hello\n|-- app_io\n|   |-- nano_core\n|   `-- serial\n|       `-- nano_core (*)\n`-- greeting_v1\n    `-- nano_core (*)\n"
        );
    }

    #[test]
    fn depth_limit_cuts_and_a_cut_node_is_expanded_where_it_recurs_higher() {
        let text = draw("hello", &sample(), Some(1), Direction::Dependencies, TreeStyle::Ascii);
        assert_eq!(text, "hello\n|-- app_io ...\n`-- greeting_v1 ...\n");
        let edges = [edge("a", "b"), edge("b", "c"), edge("c", "d"), edge("a", "c")];
        let text = draw("a", &edges, Some(2), Direction::Dependencies, TreeStyle::Ascii);
        // `c` is cut under `b` (level 2) but expanded as `a`'s direct child.
        assert_eq!(text, "a\n|-- b\n|   `-- c ...\n`-- c\n    `-- d\n");
        assert_eq!(draw("a", &edges, Some(0), Direction::Dependencies, TreeStyle::Ascii), "a ...\n");
    }

    #[test]
    fn dependents_and_cycles() {
        let text = draw("nano_core", &sample(), None, Direction::Dependents, TreeStyle::Ascii);
        assert_eq!(
            text,
            "nano_core\n|-- app_io\n|   `-- hello\n|-- greeting_v1\n|   `-- hello (*)\n`-- serial\n    `-- app_io (*)\n"
        );
        let cycle = [edge("a", "b"), edge("b", "a"), edge("a", "a")];
        assert_eq!(draw("a", &cycle, None, Direction::Dependencies, TreeStyle::Ascii), "a\n`-- b\n    `-- a (*)\n");
        assert_eq!(draw("lonely", &cycle, None, Direction::Dependencies, TreeStyle::Ascii), "lonely\n");
    }
}
