//! The `push` scenario: new code into a running system, end to end (`make push`, issue 8 item 4).
//!
//! Unlike the declarative scenarios it acts on the host between shell commands, so it has its own runner:
//! 1. Sync a scratch copy of the workspace (`build/push-scratch`: the tracked and untracked-but-not-ignored files,
//!    rewritten only where they differ, so its cargo build stays incremental across runs; on first use it gets a
//!    copy of `target/` so build-std and registry crates are not rebuilt). The tracked tree is never modified.
//! 2. Build the copy as it is, then edit `greeting_v2`'s message in it (a fresh token every run), so the push
//!    rebuilds only that cell.
//! 3. Boot the normal ISO with COM2 on a Unix socket; `hello` prints v1.
//! 4. Send three bad frames: a bad checksum, a truncated frame (the sender stalls), a valid frame whose payload is
//!    not ELF. Each must be answered with a `nack`, reported on the console, and `ls` must be unchanged.
//! 5. Push the edited cell with `cellbuild push` (the code behind `make push`), against the running image's
//!    `build/nano_core.syms` and `build/cells.manifest`. Its exports must equal the image's `greeting_v2` entry by
//!    mangled name: building in a scratch copy gives the same crate hashes (cargo hashes path packages relative to
//!    the workspace root), which is what lets its object bind to the running nano_core.
//! 6. `ls` lists `k-greeting_v2@2.o`; `swap greeting_v1 greeting_v2@2`; `hello` prints the edited message.
//!
//! The expected strings of this scenario are the constants below.

use crate::expected as e;
use crate::qemu::Firmware;
use crate::scenarios::{RunConfig, check_output};
use crate::session::{Failure, Session, StepResult};
use cellbuild::push::{PushOptions, exchange};
use push_frame::Reply;
use regex::Regex;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The scenario's name.
pub const NAME: &str = "push";
/// The cell the scenario edits and pushes.
const CELL: &str = "greeting_v2";
/// The text of greeting_v2's message that the scenario rewrites (it must occur in `kernel/greeting_v2/src/lib.rs`).
const ORIGINAL_MESSAGE: &str = "Hello from greeting v2";
/// The kernel target spec, relative to a workspace root.
const TARGET_SPEC: &str = "cfg/x86_64-theseus.json";
/// The name the guest stores the first push of `greeting_v2` under.
const STORED_NAME: &str = "greeting_v2@2";
/// The console line of a stored push.
const CONSOLE_STORED: &str = r"^push: stored greeting_v2@2 \(\d+ bytes, crate greeting\)$";
/// The console line of a rejected push, then what it must name per bad frame.
const CONSOLE_REJECTED: &str = r"^push: rejected: ";
const REJECT_CHECKSUM: &str = "bad checksum";
const REJECT_TRUNCATED: &str = "truncated frame";
const REJECT_NOT_ELF: &str = "not an ELF file";
/// The first line of `ls` output.
const LS_FIRST_LINE: &str = "kernel namespace:";
/// `ls` after the push lists the stored object.
const LS_LISTS_PUSHED: &str = r"\bk-greeting_v2@2\.o\b";
/// The swap that applies the pushed version.
const SWAP_TO_PUSHED: &str = "swap greeting_v1 greeting_v2@2";

/// Runs the push scenario; `Ok` means it passed.
///
/// # Errors
/// The first failed step, as a one-line reason.
pub fn run(config: &RunConfig) -> StepResult<()> {
    let root = std::env::current_dir().map_err(|error| Failure(format!("current directory: {error}")))?;
    let build = root.join("build");
    let scratch = build.join("push-scratch");
    let token = format!("{}-{}", unix_seconds(), std::process::id());
    // Build the unedited copy first (outside the guest's time limit: the first build of a new copy recompiles every
    // workspace crate), then edit, so that the push itself rebuilds only the edited cell, as `make push` would.
    prepare_scratch(&root, &scratch, None)?;
    cellbuild::cargo::build_workspace(&cellbuild::cargo::BuildOptions {
        root: scratch.clone(),
        target_spec: PathBuf::from(TARGET_SPEC),
        extra_args: Vec::new(),
    })
    .map_err(|error| Failure(format!("building the scratch copy: {error}")))?;
    prepare_scratch(&root, &scratch, Some(&token))?;
    let socket = build.join("push-test.sock");
    // A stale socket file would make QEMU fail to bind.
    let _ = std::fs::remove_file(&socket);
    let mut qemu = config.qemu.clone();
    qemu.extra.extend(["-serial".into(), format!("unix:{},server=on,wait=off", socket.display())]);
    std::fs::create_dir_all(&config.log_dir)
        .map_err(|error| Failure(format!("{}: {error}", config.log_dir.display())))?;
    let log_path = config.log_dir.join(format!("{NAME}.log"));
    let log = std::fs::File::create(&log_path).map_err(|error| Failure(format!("{}: {error}", log_path.display())))?;
    if !config.iso.exists() {
        return Err(Failure(format!("{} does not exist (run `make iso`)", config.iso.display())));
    }
    let mut command = qemu.command(&config.iso, Firmware::Bios);
    let mut session = Session::spawn(&mut command, config.scenario_timeout, config.typing.clone(), Some(log))?;
    session.note(&format!("{} {}", qemu.binary.display(), qemu.arguments(&config.iso, Firmware::Bios).join(" ")));
    let result = run_steps(config, &mut session, &root, &scratch, &socket, &token);
    match &result {
        Ok(()) => session.note(&format!("PASS after {:.2} s", session.elapsed().as_secs_f64())),
        Err(failure) => session.note(&format!("FAIL: {failure}")),
    }
    result
}

fn unix_seconds() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs().into())
}

fn regex(pattern: &str) -> StepResult<Regex> {
    Regex::new(pattern).map_err(|error| Failure(format!("bad pattern /{pattern}/: {error}")))
}

fn run_steps(
    config: &RunConfig,
    session: &mut Session,
    root: &Path,
    scratch: &Path,
    socket: &Path,
    token: &str,
) -> StepResult<()> {
    let prompt = regex(e::PROMPT)?;
    let wait = config.command_timeout;
    session.expect(&prompt, config.boot_timeout)?;
    let output = session.command("hello", &prompt, wait)?;
    check_output("hello", &output, &[e::HELLO_V1], &[])?;
    let listing_before = listing(&session.command("ls", &prompt, wait)?);

    let object = std::fs::read(root.join("build/cells/k-greeting_v2.o"))
        .map_err(|error| Failure(format!("build/cells/k-greeting_v2.o: {error} (run `make iso`)")))?;
    for (what, bytes, reason) in bad_frames(&object)? {
        session.note(&format!("push a frame with {what}"));
        let reply = exchange(socket, &bytes, wait).map_err(|error| Failure(format!("{what}: {error}")))?;
        match reply {
            Reply::Rejected { reason: given } if given.contains(reason) => {}
            other => return Err(Failure(format!("{what}: expected a nack naming `{reason}`, got {other:?}"))),
        }
        session.expect_anywhere(&regex(&format!("{CONSOLE_REJECTED}.*{}", regex::escape(reason)))?, wait)?;
    }
    let listing_after = listing(&session.command("ls", &prompt, wait)?);
    if listing_after != listing_before {
        return Err(Failure(format!("`ls` changed after rejected pushes: {listing_before:?} -> {listing_after:?}")));
    }

    let started = Instant::now();
    session.note("cellbuild push --cell greeting_v2 (scratch copy)");
    let summary = cellbuild::push::push(&PushOptions {
        root: scratch.to_path_buf(),
        target_spec: PathBuf::from(TARGET_SPEC),
        out_dir: PathBuf::from("build"),
        image_dir: Some(root.join("build")),
        cell: CELL.into(),
        socket: socket.to_path_buf(),
        reply_timeout: wait,
        cargo_args: Vec::new(),
    })
    .map_err(|error| Failure(format!("cellbuild push: {error}")))?;
    session.note(&summary.to_string());
    if summary.stored_as != STORED_NAME || summary.same_crate_hash != Some(true) {
        return Err(Failure(format!(
            "push stored {} (expected {STORED_NAME}), same crate hash as the image: {:?} (expected yes)",
            summary.stored_as, summary.same_crate_hash
        )));
    }
    session.expect_anywhere(&regex(CONSOLE_STORED)?, wait)?;
    let output = session.command("ls", &prompt, wait)?;
    check_output("ls", &output, &[LS_LISTS_PUSHED], &[])?;
    let output = session.command(SWAP_TO_PUSHED, &prompt, wait)?;
    check_output(SWAP_TO_PUSHED, &output, &[e::SWAP_DONE], &[e::SWAP_ERROR])?;
    session.note(&format!(
        "push (build {:.1} s) to swap done: {:.2} s",
        summary.build_seconds,
        started.elapsed().as_secs_f64()
    ));
    let output = session.command("hello", &prompt, wait)?;
    let edited = regex::escape(&edited_message(token));
    check_output("hello", &output, &[&edited], &[e::HELLO_V1])?;

    session.send_line(e::EXIT_COMMAND)?;
    let exit = session.wait_for_exit(wait)?;
    if exit.code() != Some(e::EXIT_STATUS_SUCCESS) {
        return Err(Failure(format!("`exit`: QEMU {}", crate::session::describe_status(Some(exit)))));
    }
    Ok(())
}

/// The directory listing in `ls` output, without console lines printed before it (the push receiver's reports).
fn listing(output: &str) -> String {
    output.find(LS_FIRST_LINE).map_or(output, |start| &output[start..]).to_string()
}

/// The three bad frames: (what, bytes, the text the guest's nack must contain).
fn bad_frames(object: &[u8]) -> StepResult<Vec<(&'static str, Vec<u8>, &'static str)>> {
    let frame = push_frame::encode(CELL, "greeting", object).map_err(|error| Failure(error.to_string()))?;
    let mut corrupted = frame.clone();
    let middle = frame.len() / 2;
    corrupted[middle] ^= 0x5A;
    let truncated = frame[..middle].to_vec();
    let not_elf_payload = b"this is a text file, not an ELF object; the guest must refuse it.\n".repeat(4);
    let not_elf = push_frame::encode(CELL, "greeting", &not_elf_payload).map_err(|error| Failure(error.to_string()))?;
    Ok(vec![
        ("a bad checksum", corrupted, REJECT_CHECKSUM),
        ("a truncated frame", truncated, REJECT_TRUNCATED),
        ("a non-ELF payload", not_elf, REJECT_NOT_ELF),
    ])
}

/// greeting_v2's message after the scenario's edit.
fn edited_message(token: &str) -> String {
    format!("Hello from pushed greeting v2 {token}")
}

/// Brings the scratch copy up to date with the worktree, with greeting_v2's message edited if `token` is given
/// (see the module docs). Files are rewritten only where they differ, so cargo's fingerprints stay valid.
pub(crate) fn prepare_scratch(root: &Path, scratch: &Path, token: Option<&str>) -> StepResult<()> {
    let listing = Command::new("git")
        .current_dir(root)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output()
        .map_err(|error| Failure(format!("cannot run git ls-files: {error}")))?;
    if !listing.status.success() {
        return Err(Failure(format!("git ls-files failed: {}", String::from_utf8_lossy(&listing.stderr))));
    }
    let io = |path: &Path, error: std::io::Error| Failure(format!("{}: {error}", path.display()));
    for name in listing.stdout.split(|&byte| byte == 0).filter(|name| !name.is_empty()) {
        let relative = Path::new(std::str::from_utf8(name).map_err(|_| Failure("non-UTF-8 file name".into()))?);
        let source = root.join(relative);
        let Ok(contents) = std::fs::read(&source) else { continue }; // Listed but deleted in the worktree.
        let mut contents = contents;
        if let (Some(token), true) = (token, relative == Path::new("kernel/greeting_v2/src/lib.rs")) {
            let text = String::from_utf8_lossy(&contents);
            if !text.contains(ORIGINAL_MESSAGE) {
                return Err(Failure(format!("{}: no `{ORIGINAL_MESSAGE}` to edit", source.display())));
            }
            contents = text.replace(ORIGINAL_MESSAGE, &edited_message(token)).into_bytes();
        }
        let destination = scratch.join(relative);
        if std::fs::read(&destination).is_ok_and(|existing| existing == contents) {
            continue;
        }
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent).map_err(|error| io(parent, error))?;
        }
        std::fs::write(&destination, &contents).map_err(|error| io(&destination, error))?;
    }
    for part in ["target/x86_64-theseus", "target/release"] {
        let (from, to) = (root.join(part), scratch.join(part));
        if from.exists() && !to.exists() {
            let parent = to.parent().expect("has a parent");
            std::fs::create_dir_all(parent).map_err(|error| io(parent, error))?;
            let status = Command::new("cp").arg("-a").arg(&from).arg(&to).status().map_err(|error| io(&from, error))?;
            if !status.success() {
                return Err(Failure(format!("cp -a {} {} failed", from.display(), to.display())));
            }
        }
    }
    Ok(())
}
