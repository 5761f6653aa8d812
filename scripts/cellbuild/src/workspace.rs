//! What `cargo metadata` says about the kernel workspace: its members, their kinds, and nano_core's
//! dependency closure (crates linked into the base image, which therefore never become cells).

use crate::error::{Context, Error, Result};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The package that becomes the statically linked base image.
pub const BASE_PACKAGE: &str = "nano_core";

/// Where a cell lives, which decides its object name prefix and namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CellKind {
    /// `kernel/*`, `libs/*` and third-party crates that a kernel cell needs: `k-<cell>.o`, kernel namespace.
    Kernel,
    /// `applications/*` (`#![forbid(unsafe_code)]`) and third-party crates only applications need: `a-<cell>.o`,
    /// application namespace.
    Application,
}

impl CellKind {
    /// The word used in `cells.manifest`.
    pub fn as_str(self) -> &'static str {
        match self {
            CellKind::Kernel => "kernel",
            CellKind::Application => "application",
        }
    }

    /// The object file name of cell `cell`: `k-<cell>.o` or `a-<cell>.o`.
    pub fn object_file_name(self, cell: &str) -> String {
        match self {
            CellKind::Kernel => format!("k-{cell}.o"),
            CellKind::Application => format!("a-{cell}.o"),
        }
    }
}

/// One package of the workspace (or a dependency of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Cargo's package id.
    pub id: String,
    /// The package name (the cell name, e.g. `greeting_v1`).
    pub name: String,
    /// The package version.
    pub version: String,
    /// The package's `Cargo.toml`.
    pub manifest_path: PathBuf,
    /// The library target's name (the crate name, e.g. `greeting`) and root source file, if it has one.
    pub lib: Option<(String, PathBuf)>,
    /// Ids of the packages it depends on normally (not dev or build dependencies).
    pub normal_dependencies: Vec<String>,
    /// Whether its `Cargo.toml` says `[package.metadata.cell] app-facing = true`: a crate that applications may
    /// depend on (see [`Workspace::check_application_dependencies`]).
    pub app_facing: bool,
}

/// The `Cargo.toml` key (under `[package.metadata.cell]`) that marks a crate as one applications may use.
pub const APP_FACING_KEY: &str = "app-facing";

/// The workspace `Cargo.toml` key (under `[workspace.metadata.cell]`) listing third-party crates (from the cargo
/// registry) that applications may depend on directly: a registry crate's own `Cargo.toml` cannot be marked, so
/// the workspace vouches for it instead (see [`Workspace::check_application_dependencies`]).
pub const APP_FACING_THIRD_PARTY_KEY: &str = "app-facing-third-party";

/// The kernel workspace as cargo sees it.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The workspace root.
    pub root: PathBuf,
    /// Every package in the dependency graph, by id.
    pub packages: BTreeMap<String, Package>,
    /// Ids of the workspace members.
    pub members: BTreeSet<String>,
    /// Names of the third-party crates listed under `[workspace.metadata.cell] app-facing-third-party`.
    pub app_facing_third_party: BTreeSet<String>,
}

impl Workspace {
    /// Runs `cargo metadata` in `root`.
    ///
    /// # Errors
    /// Cargo failed or printed something unexpected.
    pub fn load(root: &Path) -> Result<Workspace> {
        let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["metadata", "--format-version", "1"])
            .output()
            .context("cannot run `cargo metadata`")?;
        if !output.status.success() {
            return Err(Error(format!(
                "`cargo metadata` failed in {}:\n{}",
                root.display(),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        Workspace::from_metadata(root, &text)
    }

    /// Parses `cargo metadata --format-version 1` output.
    ///
    /// # Errors
    /// The text is not the expected JSON.
    pub fn from_metadata(root: &Path, json: &str) -> Result<Workspace> {
        let bad = |what: &str| Error(format!("unexpected `cargo metadata` output: {what}"));
        let value: Value = serde_json::from_str(json).context("`cargo metadata` output")?;
        let mut dependencies: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some(nodes) = value.pointer("/resolve/nodes").and_then(Value::as_array) {
            for node in nodes {
                let id = node.get("id").and_then(Value::as_str).ok_or_else(|| bad("node id"))?;
                let mut normal = Vec::new();
                for dep in node.get("deps").and_then(Value::as_array).into_iter().flatten() {
                    let is_normal = dep
                        .get("dep_kinds")
                        .and_then(Value::as_array)
                        .is_some_and(|kinds| kinds.iter().any(|k| k.get("kind").is_some_and(Value::is_null)));
                    if let (true, Some(pkg)) = (is_normal, dep.get("pkg").and_then(Value::as_str)) {
                        normal.push(pkg.to_string());
                    }
                }
                dependencies.insert(id.to_string(), normal);
            }
        }
        let mut packages = BTreeMap::new();
        for package in value.get("packages").and_then(Value::as_array).ok_or_else(|| bad("packages"))? {
            let field = |name: &str| package.get(name).and_then(Value::as_str).ok_or_else(|| bad(name));
            let id = field("id")?.to_string();
            let lib = package
                .get("targets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|target| {
                    target.get("kind").and_then(Value::as_array).is_some_and(|kinds| {
                        kinds.iter().any(|k| matches!(k.as_str(), Some("lib" | "rlib" | "staticlib")))
                    })
                })
                .and_then(|target| {
                    Some((target.get("name")?.as_str()?.to_string(), PathBuf::from(target.get("src_path")?.as_str()?)))
                });
            packages.insert(
                id.clone(),
                Package {
                    normal_dependencies: dependencies.get(&id).cloned().unwrap_or_default(),
                    id,
                    name: field("name")?.to_string(),
                    version: field("version")?.to_string(),
                    manifest_path: PathBuf::from(field("manifest_path")?),
                    lib,
                    app_facing: package.pointer(&format!("/metadata/cell/{APP_FACING_KEY}"))
                        == Some(&Value::Bool(true)),
                },
            );
        }
        let members = value
            .get("workspace_members")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("workspace_members"))?
            .iter()
            .filter_map(|m| m.as_str().map(String::from))
            .collect();
        let app_facing_third_party = match value.pointer(&format!("/metadata/cell/{APP_FACING_THIRD_PARTY_KEY}")) {
            None => BTreeSet::new(),
            Some(list) => list
                .as_array()
                .and_then(|names| names.iter().map(|name| name.as_str().map(String::from)).collect::<Option<_>>())
                .ok_or_else(|| {
                    Error(format!(
                        "`[workspace.metadata.cell] {APP_FACING_THIRD_PARTY_KEY}` must be a list of crate names, \
                         not {list}"
                    ))
                })?,
        };
        Ok(Workspace { root: root.to_path_buf(), packages, members, app_facing_third_party })
    }

    /// The workspace member named `name`.
    pub fn member(&self, name: &str) -> Option<&Package> {
        self.members.iter().filter_map(|id| self.packages.get(id)).find(|p| p.name == name)
    }

    /// Ids of `start` and every package it depends on, transitively (normal dependencies only).
    pub fn closure(&self, start: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.to_string()];
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Some(package) = self.packages.get(&id) {
                stack.extend(package.normal_dependencies.iter().cloned());
            }
        }
        seen
    }

    /// The kind of a workspace member, from where it lives: `applications/` gives applications, anything else
    /// (`kernel/`, `libs/`) kernel cells.
    pub fn kind_of(&self, package: &Package) -> CellKind {
        let relative = package.manifest_path.strip_prefix(&self.root).unwrap_or(&package.manifest_path);
        if relative.starts_with("applications") { CellKind::Application } else { CellKind::Kernel }
    }

    /// Workspace members that become cells: every member with a library, except the base package and the
    /// crates in its dependency closure (those are linked into nano_core). Sorted by kind, then name.
    pub fn cell_packages(&self) -> Vec<&Package> {
        let base = self.member(BASE_PACKAGE).map(|p| self.closure(&p.id)).unwrap_or_default();
        let mut cells: Vec<&Package> = self
            .members
            .iter()
            .filter(|id| !base.contains(*id))
            .filter_map(|id| self.packages.get(id))
            .filter(|p| p.lib.is_some())
            .collect();
        cells.sort_by_key(|p| (self.kind_of(p), p.name.clone()));
        cells
    }

    /// Checks that every application's crate root forbids unsafe code.
    ///
    /// # Errors
    /// Names every application whose `src/lib.rs` lacks `#![forbid(unsafe_code)]`.
    pub fn check_applications_forbid_unsafe(&self) -> Result<()> {
        let mut offenders = Vec::new();
        for package in self.cell_packages() {
            if self.kind_of(package) != CellKind::Application {
                continue;
            }
            let (_, source) = package.lib.as_ref().expect("cells have a library");
            let text = std::fs::read_to_string(source).context(source.display())?;
            if !forbids_unsafe_code(&text) {
                offenders.push(format!("{} ({})", package.name, source.display()));
            }
        }
        if offenders.is_empty() {
            return Ok(());
        }
        Err(Error(format!(
            "applications must start with `#![forbid(unsafe_code)]`; missing in: {}",
            offenders.join(", ")
        )))
    }

    /// Checks that every application depends only on app-facing crates (`[package.metadata.cell] app-facing =
    /// true`): the crates whose public API safe Rust may call without breaking the kernel. A crate exposing
    /// privileged operations as safe functions (or any crate not reviewed for that) is not app-facing, so an
    /// application cannot reach it even though the application itself forbids `unsafe`. Only direct (normal)
    /// dependencies are checked: an application can name nothing else, and an app-facing crate must not re-export
    /// such functions from its own dependencies. Another application is always an allowed dependency (a library
    /// shared by applications): it is held to the same rules itself (`#![forbid(unsafe_code)]` and this check).
    /// A third-party crate (not a workspace member, e.g. from the cargo registry) is allowed when the workspace lists
    /// its name under `[workspace.metadata.cell] app-facing-third-party`: its own `Cargo.toml` cannot be marked.
    ///
    /// # Errors
    /// Names every offending application and dependency.
    pub fn check_application_dependencies(&self) -> Result<()> {
        let mut offenders = Vec::new();
        for package in self.cell_packages() {
            if self.kind_of(package) != CellKind::Application {
                continue;
            }
            for dependency in package.normal_dependencies.iter().filter_map(|id| self.packages.get(id)) {
                let is_application = self.kind_of(dependency) == CellKind::Application;
                let is_listed_third_party =
                    !self.members.contains(&dependency.id) && self.app_facing_third_party.contains(&dependency.name);
                if !dependency.app_facing && !is_application && !is_listed_third_party {
                    offenders.push(format!("application `{}` depends on `{}`", package.name, dependency.name));
                }
            }
        }
        if offenders.is_empty() {
            return Ok(());
        }
        Err(Error(format!(
            "applications may only depend on crates marked `[package.metadata.cell] {APP_FACING_KEY} = true` (or, \
             for third-party crates, listed in the workspace's `[workspace.metadata.cell] \
             {APP_FACING_THIRD_PARTY_KEY}`): {}",
            offenders.join(", ")
        )))
    }

    /// Names of members whose library root says `#![cfg_attr(not(test), no_std)]`: the crates whose unit
    /// tests run on the host.
    pub fn host_testable(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .members
            .iter()
            .filter_map(|id| self.packages.get(id))
            .filter(|p| {
                p.lib.as_ref().is_some_and(|(_, source)| {
                    std::fs::read_to_string(source).is_ok_and(|text| is_host_testable(&text))
                })
            })
            .map(|p| p.name.clone())
            .collect();
        names.sort();
        names
    }
}

/// Whether crate-root source `text` has an inner attribute `#![forbid(...)]` that lists `unsafe_code`
/// (outside comments).
pub fn forbids_unsafe_code(text: &str) -> bool {
    inner_attributes(text).any(|attribute| {
        attribute
            .strip_prefix("forbid(")
            .is_some_and(|rest| rest.trim_end_matches(')').split(',').any(|lint| lint.trim() == "unsafe_code"))
    })
}

/// Whether crate-root source `text` has `#![cfg_attr(not(test), no_std)]`.
pub fn is_host_testable(text: &str) -> bool {
    inner_attributes(text).any(|attribute| attribute == "cfg_attr(not(test),no_std)")
}

/// The contents of each `#![...]` line, with whitespace removed except inside `forbid(...)` lists.
fn inner_attributes(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines().filter_map(|line| {
        let line = line.trim();
        let body = line.strip_prefix("#![")?;
        let body = body.split("//").next()?.trim_end();
        let body = body.strip_suffix(']')?;
        Some(body.chars().filter(|c| !c.is_whitespace()).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbid_unsafe_detection() {
        assert!(forbids_unsafe_code("//! doc\n#![no_std]\n#![forbid(unsafe_code)]\n"));
        assert!(forbids_unsafe_code("#![forbid(missing_docs, unsafe_code)]"));
        assert!(!forbids_unsafe_code("#![no_std]\n// #![forbid(unsafe_code)]\n"));
        assert!(!forbids_unsafe_code("#![deny(unsafe_code)]"));
        assert!(!forbids_unsafe_code("#![forbid(unsafe_op_in_unsafe_fn)]"));
    }

    #[test]
    fn host_testable_detection() {
        assert!(is_host_testable("//! x\n#![cfg_attr(not(test), no_std)]\n"));
        assert!(!is_host_testable("#![no_std]\n"));
    }

    #[test]
    fn object_names() {
        assert_eq!(CellKind::Kernel.object_file_name("captain"), "k-captain.o");
        assert_eq!(CellKind::Application.object_file_name("hello"), "a-hello.o");
    }

    fn package(id: &str, name: &str, path: &str, deps: &[&str]) -> String {
        package_with_metadata(id, name, path, deps, "null")
    }

    fn package_with_metadata(id: &str, name: &str, path: &str, deps: &[&str], metadata: &str) -> String {
        let deps: Vec<String> =
            deps.iter().map(|d| format!(r#"{{"pkg":"{d}","dep_kinds":[{{"kind":null,"target":null}}]}}"#)).collect();
        format!(
            r#"{{"id":"{id}","name":"{name}","version":"0.1.0","manifest_path":"/w/{path}/Cargo.toml","metadata":{metadata},"targets":[{{"kind":["lib"],"name":"{name}","src_path":"/w/{path}/src/lib.rs"}}]}}|{{"id":"{id}","deps":[{}]}}"#,
            deps.join(",")
        )
    }

    fn workspace_of(entries: &[String], members: &[&str]) -> Workspace {
        workspace_with_metadata(entries, members, "null").unwrap()
    }

    fn workspace_with_metadata(entries: &[String], members: &[&str], metadata: &str) -> Result<Workspace> {
        let (packages, nodes): (Vec<&str>, Vec<&str>) = entries.iter().map(|e| e.split_once('|').unwrap()).unzip();
        let members: Vec<String> = members.iter().map(|m| format!("{m:?}")).collect();
        let json = format!(
            r#"{{"packages":[{}],"workspace_members":[{}],"resolve":{{"nodes":[{}]}},"metadata":{metadata}}}"#,
            packages.join(","),
            members.join(","),
            nodes.join(",")
        );
        Workspace::from_metadata(Path::new("/w"), &json)
    }

    #[test]
    fn applications_may_use_listed_third_party_crates() {
        let entries = [
            package("nc", "nano_core", "nano_core", &[]),
            package("crc", "crc32fast", "registry/crc32fast", &[]),
            package("md", "md5", "registry/md5", &[]),
            package("app", "checksum", "applications/checksum", &["crc", "md"]),
        ];
        let members = ["nc", "app"];
        let listed = r#"{"cell":{"app-facing-third-party":["crc32fast"]}}"#;
        let error =
            workspace_with_metadata(&entries, &members, listed).unwrap().check_application_dependencies().unwrap_err();
        assert!(error.0.contains("application `checksum` depends on `md5`"), "{error}");
        assert!(!error.0.contains("`crc32fast`"), "{error}");
        let both = r#"{"cell":{"app-facing-third-party":["crc32fast","md5"]}}"#;
        workspace_with_metadata(&entries, &members, both).unwrap().check_application_dependencies().unwrap();
        // The list names third-party crates only: a workspace member of that name is still checked by its marking.
        let member_entries = [
            package("nc", "nano_core", "nano_core", &[]),
            package("k", "kcell", "kernel/kcell", &[]),
            package("app", "checksum", "applications/checksum", &["k"]),
        ];
        let member_listed = r#"{"cell":{"app-facing-third-party":["kcell"]}}"#;
        assert!(
            workspace_with_metadata(&member_entries, &["nc", "k", "app"], member_listed)
                .unwrap()
                .check_application_dependencies()
                .is_err()
        );
        let malformed = r#"{"cell":{"app-facing-third-party":"crc32fast"}}"#;
        assert!(workspace_with_metadata(&entries, &members, malformed).is_err());
    }

    #[test]
    fn applications_depend_only_on_app_facing_crates() {
        let facing = r#"{"cell":{"app-facing":true}}"#;
        let entries = [
            package("nc", "nano_core", "nano_core", &[]),
            package_with_metadata("io", "app_io", "kernel/app_io", &["inj"], facing),
            package("inj", "fault_injection", "kernel/fault_injection", &[]),
            package_with_metadata("no", "not_facing", "kernel/not_facing", &[], r#"{"cell":{"app-facing":false}}"#),
            package("good", "good_app", "applications/good_app", &["io"]),
        ];
        let members = ["nc", "io", "inj", "no", "good"];
        // An app-facing dependency is accepted, even though that crate itself uses a kernel-only one.
        workspace_of(&entries, &members).check_application_dependencies().unwrap();
        let mut bad = entries.to_vec();
        bad.push(package("bad", "bad_app", "applications/bad_app", &["io", "inj", "no"]));
        let error =
            workspace_of(&bad, &[&members[..], &["bad"]].concat()).check_application_dependencies().unwrap_err();
        assert!(error.0.contains("application `bad_app` depends on `fault_injection`"), "{error}");
        assert!(error.0.contains("application `bad_app` depends on `not_facing`"), "{error}");
        assert!(!error.0.contains("`app_io`") && !error.0.contains("good_app"), "{error}");
        // An application may depend on another application (itself checked by the same rules).
        let mut shared = entries.to_vec();
        shared.push(package("user", "user_app", "applications/user_app", &["good"]));
        workspace_of(&shared, &[&members[..], &["user"]].concat()).check_application_dependencies().unwrap();
        // Kernel cells may depend on anything.
        let mut kernel = entries.to_vec();
        kernel.push(package("k", "kernel_cell", "kernel/kernel_cell", &["inj"]));
        workspace_of(&kernel, &[&members[..], &["k"]].concat()).check_application_dependencies().unwrap();
    }

    #[test]
    fn cells_exclude_base_closure() {
        let entries = [
            package("nc", "nano_core", "nano_core", &["mem", "log"]),
            package("mem", "memory", "kernel/memory", &["ms"]),
            package("ms", "memory_structs", "libs/memory_structs", &[]),
            package("cap", "captain", "kernel/captain", &["mem"]),
            package("hello", "hello", "applications/hello", &["cap"]),
            package("log", "log", "registry/log", &[]),
        ];
        let (packages, nodes): (Vec<&str>, Vec<&str>) = entries.iter().map(|e| e.split_once('|').unwrap()).unzip();
        let json = format!(
            r#"{{"packages":[{}],"workspace_members":["nc","mem","ms","cap","hello"],"resolve":{{"nodes":[{}]}}}}"#,
            packages.join(","),
            nodes.join(",")
        );
        let workspace = Workspace::from_metadata(Path::new("/w"), &json).unwrap();
        let base = workspace.closure("nc");
        assert!(base.contains("ms") && base.contains("log") && !base.contains("cap"));
        let cells: Vec<(&str, CellKind)> =
            workspace.cell_packages().iter().map(|p| (p.name.as_str(), workspace.kind_of(p))).collect();
        assert_eq!(cells, [("captain", CellKind::Kernel), ("hello", CellKind::Application)]);
    }
}
