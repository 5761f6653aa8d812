//! An application's entry point and exit codes: [`entry!`](crate::entry) and [`exit_code`].

/// The conventional exit codes an application's `main` returns (the shell reports any non-zero value).
pub mod exit_code {
    /// The application did what it was asked.
    pub const SUCCESS: isize = 0;
    /// The application ran but failed (e.g. a check did not pass).
    pub const FAILURE: isize = 1;
    /// The arguments were wrong (the application printed its usage).
    pub const USAGE: isize = 2;
}

/// The typed entry descriptor `entry!` emits (defined by the `spawn` cell, which checks it at load time).
pub use spawn::ApplicationEntry;

/// Declares the application's entry function: `app_io::entry!(main);` at the crate root, where
/// `main: fn(Vec<String>) -> isize` (`args[0]` is the command name; the result is the exit code, see
/// [`exit_code`]).
///
/// It emits `pub static APPLICATION_ENTRY`, a tagged, versioned descriptor holding `main`; the compiler refuses a
/// `main` of another type, and the shell refuses (`x: error: not an application: ...`) an application whose object
/// has no such descriptor, before running anything.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// This application's typed entry descriptor (read by the shell when it starts the application).
        #[used]
        pub static APPLICATION_ENTRY: $crate::ApplicationEntry = $crate::ApplicationEntry::new($main);
    };
}
