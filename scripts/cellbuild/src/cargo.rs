//! The kernel build: one `cargo build --workspace` for the kernel target, and its JSON messages.
//!
//! One invocation builds nano_core and every cell, so each dependency is compiled once with one set of unified
//! features and therefore one crate hash (the mangled names cells bind to).

use crate::error::{Context, Error, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One `compiler-artifact` message: a compiled target of one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Cargo's package id (the same string `cargo metadata` uses).
    pub package_id: String,
    /// The package's `Cargo.toml`.
    pub manifest_path: PathBuf,
    /// The target's name (for a library: the crate name, e.g. `greeting`).
    pub target_name: String,
    /// The target's crate types (`lib`, `rlib`, `staticlib`, `proc-macro`, `bin`...).
    pub crate_types: Vec<String>,
    /// The files produced (`.rlib`, `.rmeta`, `.a`...).
    pub filenames: Vec<PathBuf>,
}

impl Artifact {
    /// The library's rlib, in `deps/` with its hash. Cargo reports workspace members' rlibs at their
    /// "uplifted" path (`release/lib<name>.rlib`), which two packages with one lib name (`greeting_v1` and
    /// `greeting_v2`) overwrite; the hashed `deps/` copy beside the reported `.rmeta` is the right one.
    pub fn rlib(&self) -> Option<PathBuf> {
        let in_deps = |p: &&PathBuf| p.parent().is_some_and(|d| d.ends_with("deps"));
        if let Some(rlib) = self.filenames.iter().filter(in_deps).find(|p| p.extension().is_some_and(|e| e == "rlib")) {
            return Some(rlib.clone());
        }
        if let Some(rmeta) = self.filenames.iter().filter(in_deps).find(|p| p.extension().is_some_and(|e| e == "rmeta"))
        {
            let rlib = rmeta.with_extension("rlib");
            if rlib.exists() || self.file_ending_with(".rlib").is_some() {
                return Some(rlib);
            }
        }
        self.file_ending_with(".rlib").map(Path::to_path_buf)
    }

    /// The produced file whose name ends with `suffix` (e.g. `.rlib`, `.a`).
    pub fn file_ending_with(&self, suffix: &str) -> Option<&Path> {
        self.filenames.iter().map(PathBuf::as_path).find(|path| path.to_string_lossy().ends_with(suffix))
    }
}

/// A message of interest from `cargo build --message-format=json...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A compiled target.
    Artifact(Artifact),
    /// The end of the build, with its success.
    BuildFinished(bool),
}

/// Parses one line of cargo's JSON output. Lines of other kinds (or not JSON) give `None`.
pub fn parse_message(line: &str) -> Option<Message> {
    let value: Value = serde_json::from_str(line).ok()?;
    match value.get("reason")?.as_str()? {
        "compiler-artifact" => {
            let strings = |v: Option<&Value>| -> Vec<String> {
                v.and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                    .unwrap_or_default()
            };
            let target = value.get("target")?;
            Some(Message::Artifact(Artifact {
                package_id: value.get("package_id")?.as_str()?.to_string(),
                manifest_path: PathBuf::from(value.get("manifest_path")?.as_str()?),
                target_name: target.get("name")?.as_str()?.to_string(),
                crate_types: strings(target.get("crate_types")),
                filenames: strings(value.get("filenames")).into_iter().map(PathBuf::from).collect(),
            }))
        }
        "build-finished" => Some(Message::BuildFinished(value.get("success")?.as_bool()?)),
        _ => None,
    }
}

/// How to build the kernel workspace.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The kernel workspace root (holds `Cargo.toml` and `cfg/`).
    pub root: PathBuf,
    /// The target spec, relative to `root` (`cfg/x86_64-theseus.json`).
    pub target_spec: PathBuf,
    /// Extra arguments for `cargo build` (e.g. `--offline`).
    pub extra_args: Vec<String>,
}

/// The `-Z` flags that build core, alloc and compiler_builtins for the custom target.
pub const BUILD_STD_ARGS: [&str; 2] =
    ["-Zbuild-std=core,alloc,compiler_builtins", "-Zbuild-std-features=compiler-builtins-mem"];

/// Runs the one workspace build and returns the artifacts built for the kernel target.
///
/// Diagnostics are rendered by cargo on stderr, which is passed through.
///
/// # Errors
/// Cargo could not be started or the build failed.
pub fn build_workspace(options: &BuildOptions) -> Result<Vec<Artifact>> {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .current_dir(&options.root)
        .args(["build", "--release", "--workspace", "--target"])
        .arg(&options.target_spec)
        .args(BUILD_STD_ARGS)
        .arg("--message-format=json-render-diagnostics")
        .args(&options.extra_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let line = crate::tools::describe(&command);
    eprintln!("cellbuild: {line}");
    let mut child = command.spawn().context(format_args!("cannot run `{line}`"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut artifacts = Vec::new();
    let mut finished = None;
    for line in BufReader::new(stdout).lines() {
        match parse_message(&line?) {
            Some(Message::Artifact(artifact)) => artifacts.push(artifact),
            Some(Message::BuildFinished(success)) => finished = Some(success),
            None => {}
        }
    }
    let status = child.wait()?;
    if !status.success() || finished != Some(true) {
        return Err(Error(format!("the kernel build failed ({status}); see cargo's messages above")));
    }
    let target_dir_component = target_dir_component(&options.target_spec);
    Ok(artifacts
        .into_iter()
        .filter(|artifact| artifact.filenames.iter().any(|f| has_component(f, &target_dir_component)))
        .collect())
}

/// The directory cargo names after a JSON target spec (`cfg/x86_64-theseus.json` -> `x86_64-theseus`).
/// Artifacts under it were built for the kernel; others (build scripts, proc macros) for the host.
pub fn target_dir_component(target_spec: &Path) -> String {
    target_spec.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn has_component(path: &Path, component: &str) -> bool {
    path.components().any(|c| c.as_os_str() == component)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_artifact_message() {
        let line = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/kernel/greeting_v1#0.1.0","manifest_path":"/w/kernel/greeting_v1/Cargo.toml","target":{"kind":["lib"],"crate_types":["lib"],"name":"greeting","src_path":"/w/kernel/greeting_v1/src/lib.rs"},"filenames":["/w/target/x86_64-theseus/release/libgreeting.rlib","/w/target/x86_64-theseus/release/deps/libgreeting-0123.rmeta"],"fresh":false}"#;
        let Some(Message::Artifact(artifact)) = parse_message(line) else { panic!("not parsed") };
        assert_eq!(artifact.package_id, "path+file:///w/kernel/greeting_v1#0.1.0");
        assert_eq!(artifact.target_name, "greeting");
        assert_eq!(artifact.crate_types, ["lib"]);
        assert_eq!(
            artifact.file_ending_with(".rlib"),
            Some(Path::new("/w/target/x86_64-theseus/release/libgreeting.rlib"))
        );
        assert_eq!(artifact.rlib().unwrap(), Path::new("/w/target/x86_64-theseus/release/deps/libgreeting-0123.rlib"));
        assert!(has_component(&artifact.filenames[0], "x86_64-theseus"));
        assert!(!has_component(Path::new("/w/target/release/deps/x.rlib"), "x86_64-theseus"));
    }

    #[test]
    fn parses_build_finished_and_ignores_others() {
        assert_eq!(
            parse_message(r#"{"reason":"build-finished","success":false}"#),
            Some(Message::BuildFinished(false))
        );
        assert_eq!(parse_message(r#"{"reason":"build-script-executed"}"#), None);
        assert_eq!(parse_message("Compiling foo"), None);
    }

    #[test]
    fn target_component_is_spec_stem() {
        assert_eq!(target_dir_component(Path::new("cfg/x86_64-theseus.json")), "x86_64-theseus");
    }
}
