//! The application-facing API: console output for safe-Rust applications.
//!
//! Applications (`applications/*`, `#![forbid(unsafe_code)]`) print with [`println!`] and [`print!`]; the text goes to
//! the serial console. This cell is loaded on demand when the first application that uses it is loaded.
#![no_std]

/// Writes formatted text to the console. Used by [`print!`] and [`println!`].
#[doc(hidden)]
pub fn print_fmt(arguments: core::fmt::Arguments<'_>) {
    serial::write_fmt(arguments);
}

/// Prints formatted text to the console, without a trailing newline.
#[macro_export]
macro_rules! print {
    ($($argument:tt)*) => { $crate::print_fmt(format_args!($($argument)*)) };
}

/// Prints formatted text to the console, followed by a newline.
#[macro_export]
macro_rules! println {
    () => { $crate::print_fmt(format_args!("\n")) };
    ($($argument:tt)*) => { $crate::print_fmt(format_args!("{}\n", format_args!($($argument)*))) };
}
