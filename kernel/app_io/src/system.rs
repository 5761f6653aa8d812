//! System information for applications: snapshots of the task table and of the loaded cells and their
//! dependencies (the `top` and `cells` applications).
//!
//! Everything here is a copy, taken when called: plain owned data (strings and numbers), no reference into the
//! scheduler or the namespaces, so holding a snapshot pins nothing and the system may change right after.
//! - [`tasks`] ([`TaskInfo`]), [`scheduler_policy`], [`online_cpu_count`]: what the shell's `ps` shows, from
//!   `scheduler::task_summaries`.
//! - [`cells`] ([`CellInfo`], [`CellKind`]): what `ns` shows; [`dependency_graph`] ([`DependencyGraph`]): what
//!   `deps` shows, from `cell_graph` (one relocation-counted edge per pair of cells).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use dep_graph::{Edge as DependencyEdge, Node as CellNode};

/// One task, as `ps` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    /// The task id (what `kill` and `bt` take).
    pub id: u64,
    /// Its name (an application's task is named after the application).
    pub name: String,
    /// Its run state: `runnable`, `running`, `blocked`, `stopped`, `exited`...
    pub state: &'static str,
    /// The CPU it runs on, or last ran on (0-based).
    pub cpu: usize,
    /// Whether it may run on that CPU only.
    pub pinned: bool,
    /// Whether it is a CPU's idle task.
    pub idle: bool,
    /// Its priority, when the scheduling policy in use has priorities (0 lowest, 255 highest).
    pub priority: Option<u8>,
    /// How many times a CPU switched to it since it started.
    pub switches: u64,
}

/// A snapshot of every task that has not been reaped, ordered by id.
pub fn tasks() -> Vec<TaskInfo> {
    scheduler::task_summaries()
        .into_iter()
        .map(|summary| TaskInfo {
            id: summary.id.value(),
            name: summary.name,
            state: summary.state.name(),
            cpu: summary.cpu,
            pinned: summary.pinned,
            idle: summary.kind == task::TaskKind::Idle,
            priority: summary.policy_data.priority,
            switches: summary.switches,
        })
        .collect()
}

/// The name of the scheduling policy in use (`round_robin` or `priority`).
pub fn scheduler_policy() -> String {
    scheduler::policy_name()
}

/// How many CPUs are scheduling tasks.
pub fn online_cpu_count() -> usize {
    scheduler::online_cpu_count()
}

/// What a loaded cell is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// The statically linked base image (`nano_core`).
    Base,
    /// A kernel cell (`k-<cell>.o`).
    Kernel,
    /// An application, or a library only applications use (`a-<cell>.o`).
    Application,
}

/// One loaded cell, as `ns` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellInfo {
    /// The cell name (the package name, e.g. `greeting_v1`).
    pub name: String,
    /// The namespace it is loaded in (`kernel` or `application`).
    pub namespace: String,
    /// Base image, kernel cell or application.
    pub kind: CellKind,
    /// Bytes of code.
    pub text_bytes: usize,
    /// Bytes of read-only data (including unwind tables).
    pub read_only_data_bytes: usize,
    /// Bytes of data and bss.
    pub data_bytes: usize,
    /// Relocations applied when it was loaded.
    pub relocations: usize,
}

/// Why system information is not available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemInfoError {
    /// The kernel has not installed its cell namespaces (only possible very early in boot).
    NamespacesNotInstalled,
}

impl fmt::Display for SystemInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemInfoError::NamespacesNotInstalled => f.write_str("the system namespaces are not installed"),
        }
    }
}

/// A snapshot of every loaded cell of the kernel namespace, then of the application namespace, each sorted by
/// name.
///
/// # Errors
/// [`SystemInfoError::NamespacesNotInstalled`].
pub fn cells() -> Result<Vec<CellInfo>, SystemInfoError> {
    let kernel = system_namespaces::kernel_namespace().ok_or(SystemInfoError::NamespacesNotInstalled)?;
    let application = system_namespaces::application_namespace().ok_or(SystemInfoError::NamespacesNotInstalled)?;
    let mut list = Vec::new();
    for namespace in [kernel, application] {
        for cell in namespace.cells() {
            let kind = match (cell.kind, &cell.object_file) {
                (cell_namespace::CellKind::Application, _) => CellKind::Application,
                (_, None) => CellKind::Base,
                (_, Some(_)) => CellKind::Kernel,
            };
            list.push(CellInfo {
                name: cell.name,
                namespace: String::from(namespace.name()),
                kind,
                text_bytes: cell.sizes.text,
                read_only_data_bytes: cell.sizes.read_only_data,
                data_bytes: cell.sizes.data,
                relocations: cell.relocation_count,
            });
        }
    }
    Ok(list)
}

/// Every loaded cell (both namespaces) and every dependency edge between two of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependencyGraph {
    /// The cells: kernel namespace first, each namespace's cells by name.
    pub cells: Vec<CellNode>,
    /// One edge per (dependent, cell depended on) pair, sorted; `relocations` counts the dependent's relocations
    /// that resolved into the other cell (at least 1).
    pub edges: Vec<DependencyEdge>,
}

impl DependencyGraph {
    /// The cell named `name`, if it is loaded.
    pub fn cell(&self, name: &str) -> Option<&CellNode> {
        self.cells.iter().find(|cell| cell.name == name)
    }

    /// The edges from `name` to the cells it depends on (empty for an unknown cell).
    pub fn dependencies_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a DependencyEdge> + 'a {
        self.edges.iter().filter(move |edge| edge.from == name)
    }

    /// The edges from the cells that depend on `name` (empty for an unknown cell).
    pub fn dependents_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a DependencyEdge> + 'a {
        self.edges.iter().filter(move |edge| edge.to == name)
    }
}

/// A snapshot of the cell dependency graph (the one `deps` and `deps --dot` show).
///
/// # Errors
/// [`SystemInfoError::NamespacesNotInstalled`].
pub fn dependency_graph() -> Result<DependencyGraph, SystemInfoError> {
    let (cells, edges) = cell_graph::graph().ok_or(SystemInfoError::NamespacesNotInstalled)?;
    Ok(DependencyGraph { cells, edges })
}
