//! The `newcomer` scenario: the README's "write your first application" steps, followed literally in a scratch
//! copy of the workspace (the push scenario's `build/push-scratch`, whose `target/` is already built, so only the
//! new application compiles).
//!
//! 1. Sync the scratch copy with the worktree and remove any application left by an earlier run.
//! 2. `make new-app NAME=newcomer_app`, delete its `#![forbid(unsafe_code)]` line, and check that `cellbuild build`
//!    refuses it, naming the application.
//! 3. Remove it, `make new-app NAME=newcomer_app` again, edit its message (a per-run token), `cellbuild build`.
//! 4. Boot the scratch ISO, type `newcomer_app one two`, and expect the edited message with the arguments.
//! 5. Remove the application from the scratch copy (the push scenario expects it to match the worktree).

use crate::expected as e;
use crate::push::prepare_scratch;
use crate::qemu::Firmware;
use crate::scenarios::{RunConfig, check_output};
use crate::session::{Failure, Session, StepResult};
use regex::Regex;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The scenario's name.
pub const NAME: &str = "newcomer";
/// The application the scenario creates.
const APP: &str = "newcomer_app";
/// The template's message, as `make new-app` writes it for [`APP`].
const TEMPLATE_MESSAGE: &str = "Hello from newcomer_app!";
/// The build's refusal of an application without `#![forbid(unsafe_code)]`.
const REFUSAL: &str = "applications must start with `#![forbid(unsafe_code)]`; missing in: newcomer_app";

/// Runs the scenario; `Ok` means it passed.
///
/// # Errors
/// The first failed step, as a one-line reason.
pub fn run(config: &RunConfig) -> StepResult<()> {
    let root = std::env::current_dir().map_err(|error| Failure(format!("current directory: {error}")))?;
    let scratch = root.join("build/push-scratch");
    let app_dir = scratch.join("applications").join(APP);
    prepare_scratch(&root, &scratch, None)?;
    remove_app(&app_dir)?;
    let result = build_and_boot(config, &root, &scratch, &app_dir);
    remove_app(&app_dir)?;
    result
}

fn build_and_boot(config: &RunConfig, root: &Path, scratch: &Path, app_dir: &Path) -> StepResult<()> {
    let lib = app_dir.join("src/lib.rs");
    // Step 2: the refusal of an application that does not forbid unsafe code.
    make_new_app(scratch)?;
    let text = read(&lib)?;
    if !text.contains("#![forbid(unsafe_code)]\n") {
        return Err(Failure(format!("{}: the template has no `#![forbid(unsafe_code)]` line", lib.display())));
    }
    write(&lib, &text.replace("#![forbid(unsafe_code)]\n", ""))?;
    let refused = cellbuild(root, scratch, &["--no-iso"])?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    if refused.status.success() || !stderr.contains(REFUSAL) {
        return Err(Failure(format!(
            "cellbuild without forbid(unsafe_code): expected a refusal `{REFUSAL}`, got {}: {stderr}",
            refused.status
        )));
    }
    // Step 3: the newcomer's path.
    remove_app(app_dir)?;
    make_new_app(scratch)?;
    let token = format!("{}-{}", std::process::id(), unix_seconds());
    let edited = format!("Hello from newcomer_app {token}!");
    let text = read(&lib)?;
    if !text.contains(TEMPLATE_MESSAGE) {
        return Err(Failure(format!("{}: no `{TEMPLATE_MESSAGE}` to edit", lib.display())));
    }
    write(&lib, &text.replace(TEMPLATE_MESSAGE, &edited))?;
    let built = cellbuild(root, scratch, &[])?;
    if !built.status.success() {
        let stderr = String::from_utf8_lossy(&built.stderr);
        return Err(Failure(format!("cellbuild build of the new application failed: {stderr}")));
    }
    // Step 4: run it.
    boot(config, scratch, &format!(r#"^{} arguments: \["one", "two"\]$"#, regex::escape(&edited)))
}

fn boot(config: &RunConfig, scratch: &Path, expected: &str) -> StepResult<()> {
    let iso = scratch.join("build/theseus.iso");
    std::fs::create_dir_all(&config.log_dir)
        .map_err(|error| Failure(format!("{}: {error}", config.log_dir.display())))?;
    let log_path = config.log_dir.join(format!("{NAME}.log"));
    let log = std::fs::File::create(&log_path).map_err(|error| Failure(format!("{}: {error}", log_path.display())))?;
    let mut command = config.qemu.command(&iso, Firmware::Bios);
    let mut session = Session::spawn(&mut command, config.scenario_timeout, config.typing.clone(), Some(log))?;
    let prompt = Regex::new(e::PROMPT).map_err(|error| Failure(format!("bad prompt pattern: {error}")))?;
    session.expect(&prompt, config.boot_timeout)?;
    let line = format!("{APP} one two");
    let output = session.command(&line, &prompt, config.command_timeout)?;
    let result = check_output(&line, &output, &[expected], &[]);
    match &result {
        Ok(()) => session.note(&format!("PASS after {:.2} s", session.elapsed().as_secs_f64())),
        Err(failure) => session.note(&format!("FAIL: {failure}")),
    }
    result
}

/// `make new-app NAME=newcomer_app`, run in the scratch copy exactly as the README says.
fn make_new_app(scratch: &Path) -> StepResult<()> {
    let output = Command::new("make")
        .current_dir(scratch)
        .args(["new-app", &format!("NAME={APP}")])
        .output()
        .map_err(|error| Failure(format!("cannot run make: {error}")))?;
    if !output.status.success() {
        return Err(Failure(format!("make new-app failed: {}", String::from_utf8_lossy(&output.stderr))));
    }
    Ok(())
}

/// Runs this worktree's `cellbuild build --root <scratch>` with `extra` arguments.
fn cellbuild(root: &Path, scratch: &Path, extra: &[&str]) -> StepResult<Output> {
    let binary: PathBuf = root.join("scripts/target/release/cellbuild");
    Command::new(&binary)
        .arg("build")
        .arg("--root")
        .arg(scratch)
        .args(extra)
        .output()
        .map_err(|error| Failure(format!("cannot run {}: {error}", binary.display())))
}

fn remove_app(app_dir: &Path) -> StepResult<()> {
    match std::fs::remove_dir_all(app_dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(Failure(format!("{}: {error}", app_dir.display()))),
    }
}

fn read(path: &Path) -> StepResult<String> {
    std::fs::read_to_string(path).map_err(|error| Failure(format!("{}: {error}", path.display())))
}

fn write(path: &Path, text: &str) -> StepResult<()> {
    std::fs::write(path, text).map_err(|error| Failure(format!("{}: {error}", path.display())))
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}
