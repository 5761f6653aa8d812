//! The shell session's environment variables and their builtins: `export NAME=value`, `unset NAME`, `env`.
//!
//! Each shell task keeps one [`Environment`]. The parser expands `$NAME` and `${NAME}` from it
//! ([`Environment::lookup`]), and every application started from the session gets a copy as it starts
//! ([`Environment::snapshot`]; later changes do not reach running applications).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// The environment builtins (name, usage, summary), listed by `help` with the others.
pub const ENVIRONMENT_COMMANDS: &[(&str, &str, &str)] = &[
    ("export", "export NAME=VALUE ...", "set environment variables (inherited by applications started later)"),
    ("unset", "unset NAME ...", "remove environment variables"),
    ("env", "env", "list the environment variables"),
];

/// Most variables one session holds (so a script typing `export` in a loop cannot use up the heap).
pub const MAX_VARIABLES: usize = 256;
/// Longest `NAME=VALUE` accepted, in bytes.
pub const MAX_ASSIGNMENT_BYTES: usize = 1024;

/// One shell session's variables, by name.
#[derive(Default)]
pub struct Environment {
    variables: BTreeMap<String, String>,
}

impl Environment {
    /// The value of `name`, if set.
    pub fn lookup(&self, name: &str) -> Option<String> {
        self.variables.get(name).cloned()
    }

    /// Every variable as (name, value), sorted by name: what a new application gets.
    pub fn snapshot(&self) -> Vec<(String, String)> {
        self.variables.iter().map(|(name, value)| (name.clone(), value.clone())).collect()
    }

    /// Runs `export`, `unset` or `env` (see [`ENVIRONMENT_COMMANDS`]); `None` if `words[0]` is none of them.
    /// Returns the status for `$?`: 0, or 1 if an argument was refused (it and nothing after it is applied; the
    /// arguments before it are).
    pub fn run_builtin(&mut self, words: &[String]) -> Option<isize> {
        let status = match words[0].as_str() {
            "export" if words.len() > 1 => self.export(&words[1..]),
            "unset" if words.len() > 1 => self.unset(&words[1..]),
            "env" if words.len() == 1 => {
                for (name, value) in &self.variables {
                    crate::console::write_fmt(format_args!("{name}={value}\n"));
                }
                0
            }
            name @ ("export" | "unset" | "env") => {
                let usage =
                    ENVIRONMENT_COMMANDS.iter().find(|command| command.0 == name).map_or("", |command| command.1);
                crate::console::write_fmt(format_args!("usage: {usage}\n"));
                2
            }
            _ => return None,
        };
        Some(status)
    }

    fn export(&mut self, assignments: &[String]) -> isize {
        for assignment in assignments {
            let Some((name, value)) = assignment.split_once('=') else {
                crate::console::write_fmt(format_args!("export: `{assignment}` is not NAME=VALUE\n"));
                return 1;
            };
            if !command_line::is_variable_name(name) {
                crate::console::write_fmt(format_args!(
                    "export: `{name}` is not a variable name (a letter or _, then letters, digits, _)\n"
                ));
                return 1;
            }
            if assignment.len() > MAX_ASSIGNMENT_BYTES {
                crate::console::write_fmt(format_args!(
                    "export: {name}: {} bytes is longer than {MAX_ASSIGNMENT_BYTES}\n",
                    assignment.len()
                ));
                return 1;
            }
            if !self.variables.contains_key(name) && self.variables.len() >= MAX_VARIABLES {
                crate::console::write_fmt(format_args!("export: {name}: already {MAX_VARIABLES} variables\n"));
                return 1;
            }
            self.variables.insert(String::from(name), String::from(value));
        }
        0
    }

    fn unset(&mut self, names: &[String]) -> isize {
        for name in names {
            if !command_line::is_variable_name(name) {
                crate::console::write_fmt(format_args!("unset: `{name}` is not a variable name\n"));
                return 1;
            }
            // Unsetting a variable that is not set is not an error (POSIX `unset`).
            self.variables.remove(name);
        }
        0
    }
}
