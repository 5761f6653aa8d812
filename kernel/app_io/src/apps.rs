//! Starting another application by name: [`run`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::TaskHandle;

/// Starts application `name` (as the shell would for a command line `name args[1..]`) as a task of its own, and
/// returns its handle; [`TaskHandle::join`] gives its exit code. `args[0]` is conventionally `name`.
///
/// # Errors
/// A description of why it could not start: no application of that name, no valid typed entry
/// (`not an application: ...`), or no memory for the task.
pub fn run(name: &str, args: Vec<String>) -> Result<TaskHandle<isize>, String> {
    spawn::spawn_application(name, args).map(|handle| TaskHandle { handle }).map_err(|error| format!("{name}: {error}"))
}
