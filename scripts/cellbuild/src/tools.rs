//! Running external programs (`ld`, `objcopy`, `grub-mkrescue`) with errors that show their output.

use crate::error::{Error, Result};
use std::path::Path;
use std::process::Command;

/// Runs `command` to completion. Its output is captured and shown only if it fails.
///
/// # Errors
/// The program could not be started, or exited unsuccessfully (the error holds the command line and its stderr).
pub fn run(command: &mut Command) -> Result<()> {
    let line = describe(command);
    let output = command.output().map_err(|error| Error(format!("cannot run `{line}`: {error}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error(format!(
        "`{line}` failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

/// Returns a copy of `input` without `.debug*` sections at `output` (`objcopy --strip-debug` keeps relocations).
///
/// # Errors
/// `objcopy` failed.
pub fn strip_debug(input: &Path, output: &Path) -> Result<()> {
    run(Command::new("objcopy").arg("--strip-debug").arg(input).arg(output))
}

/// The command line of `command`, for messages.
pub fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for argument in command.get_args() {
        line.push(' ');
        line.push_str(&argument.to_string_lossy());
    }
    line
}
