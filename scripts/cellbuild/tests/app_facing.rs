//! The application-dependency rule on a real fixture workspace, read through `cargo metadata`: an application
//! that depends on a crate not marked `[package.metadata.cell] app-facing = true` is refused, naming both.

use cellbuild::workspace::Workspace;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cellbuild-test-{}-{name}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes crate `path` (a library) with `Cargo.toml` extra text `extra` (dependencies, metadata).
fn write_crate(root: &Path, path: &str, extra: &str) {
    let name = path.rsplit('/').next().unwrap();
    let dir = root.join(path);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n{extra}\n");
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "#![no_std]\n#![forbid(unsafe_code)]\n").unwrap();
}

/// A workspace with nano_core, an app-facing `app_io`, a kernel-only `fault_injection`, and application `demo`
/// whose dependencies are `demo_dependencies`.
fn fixture(name: &str, demo_dependencies: &str) -> Workspace {
    let root = scratch(name);
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"nano_core\", \"kernel/*\", \"applications/*\"]\nresolver = \"2\"\n",
    )
    .unwrap();
    write_crate(&root, "nano_core", "");
    write_crate(&root, "kernel/app_io", "[package.metadata.cell]\napp-facing = true\n");
    write_crate(&root, "kernel/fault_injection", "");
    write_crate(&root, "applications/demo", &format!("[dependencies]\n{demo_dependencies}"));
    Workspace::load(&root).unwrap()
}

#[test]
fn application_with_an_app_facing_dependency_is_accepted() {
    let workspace = fixture("app-facing-ok", "app_io = { path = \"../../kernel/app_io\" }\n");
    assert!(workspace.member("app_io").unwrap().app_facing);
    assert!(!workspace.member("fault_injection").unwrap().app_facing);
    workspace.check_application_dependencies().unwrap();
}

#[test]
fn application_depending_on_a_kernel_only_crate_is_refused() {
    let workspace = fixture(
        "app-facing-refused",
        "app_io = { path = \"../../kernel/app_io\" }\nfault_injection = { path = \"../../kernel/fault_injection\" }\n",
    );
    let error = workspace.check_application_dependencies().unwrap_err();
    assert!(error.0.contains("application `demo` depends on `fault_injection`"), "{error}");
    assert!(!error.0.contains("`app_io`"), "{error}");
}
