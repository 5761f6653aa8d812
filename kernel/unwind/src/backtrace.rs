//! Stack traces (`bt`): frames with the cell, the demangled function and the offset into it.
//!
//! The unwinder knows code ranges, not symbols; the caller supplies a [`Symbolizer`] (in the kernel, a lookup in
//! the namespace's cells: `LoadedCell::section_containing`), so this crate stays below the namespace.

use core::fmt;

use rustc_demangle::try_demangle;

use crate::frames::{EndReason, Frame, FrameIter, UnwindError};
use crate::memory::StackReader;

/// What a symbolizer knows about an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolInfo<'a> {
    /// The cell holding the address (`nano_core` for the base image).
    pub cell: &'a str,
    /// The mangled (or `no_mangle`) name of the symbol covering the address.
    pub symbol: &'a str,
    /// The symbol's first address.
    pub symbol_address: u64,
}

/// Maps code addresses to symbols.
pub trait Symbolizer {
    /// Calls `found` once with the symbol covering `address`, or not at all if there is none.
    fn with_symbol(&self, address: u64, found: &mut dyn FnMut(SymbolInfo<'_>));
}

impl<F: Fn(u64, &mut dyn FnMut(SymbolInfo<'_>))> Symbolizer for F {
    fn with_symbol(&self, address: u64, found: &mut dyn FnMut(SymbolInfo<'_>)) {
        self(address, found)
    }
}

/// One line of a stack trace.
#[derive(Clone, Copy, Debug)]
pub struct BacktraceLine<'a> {
    /// Frame number, 0 = innermost.
    pub index: usize,
    /// The frame.
    pub frame: &'a Frame,
    /// Its symbol, if the symbolizer knew it.
    pub symbol: Option<SymbolInfo<'a>>,
}

impl fmt::Display for BacktraceLine<'_> {
    /// `#3 0xffffffff80123456 greeting::greet+0x1f (cell greeting_v1) cfa 0xffff...`; without a symbol, the
    /// function start from the FDE is shown instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:<2} {:#018x} ", self.index, self.frame.instruction_pointer)?;
        match self.symbol {
            Some(symbol) => {
                let offset = self.frame.instruction_pointer.wrapping_sub(symbol.symbol_address);
                match try_demangle(symbol.symbol) {
                    Ok(demangled) => write!(f, "{demangled:#}")?,
                    Err(_) => f.write_str(symbol.symbol)?,
                }
                write!(f, "+{offset:#x} (cell {})", symbol.cell)?;
            }
            None => write!(
                f,
                "<function at {:#x}>+{:#x}",
                self.frame.function_start,
                self.frame.instruction_pointer.wrapping_sub(self.frame.function_start)
            )?,
        }
        write!(f, " cfa {:#x}", self.frame.cfa)
    }
}

/// How a stack trace ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BacktraceSummary {
    /// How many frames were written.
    pub frames: usize,
    /// The clean end, if the walk ended cleanly.
    pub end: Option<EndReason>,
    /// The error that stopped the walk, if any.
    pub error: Option<UnwindError>,
}

/// Walks `frames` and calls `line` for each frame with its symbol. Returns how the walk ended; a walk error is
/// reported in the summary, not as an `Err`, since the frames before it are still useful.
pub fn backtrace<M: StackReader>(
    frames: &mut FrameIter<'_, M>,
    symbolizer: &dyn Symbolizer,
    line: &mut dyn FnMut(BacktraceLine<'_>),
) -> BacktraceSummary {
    let mut index = 0;
    loop {
        match frames.next_frame() {
            Ok(Some(frame)) => {
                let mut emitted = false;
                symbolizer.with_symbol(frame.lookup_address, &mut |symbol| {
                    if !emitted {
                        emitted = true;
                        line(BacktraceLine { index, frame: &frame, symbol: Some(symbol) });
                    }
                });
                if !emitted {
                    line(BacktraceLine { index, frame: &frame, symbol: None });
                }
                index += 1;
            }
            Ok(None) => return BacktraceSummary { frames: index, end: frames.end_reason(), error: None },
            Err(error) => return BacktraceSummary { frames: index, end: None, error: Some(error) },
        }
    }
}

/// Writes a stack trace, one [`BacktraceLine`] per line, then a line saying how it ended.
///
/// # Errors
/// The first error of `out`.
pub fn write_backtrace<M: StackReader>(
    out: &mut dyn fmt::Write,
    frames: &mut FrameIter<'_, M>,
    symbolizer: &dyn Symbolizer,
) -> Result<BacktraceSummary, fmt::Error> {
    let mut result = Ok(());
    let summary = backtrace(frames, symbolizer, &mut |line| {
        if result.is_ok() {
            result = writeln!(out, "{line}");
        }
    });
    result?;
    match (&summary.end, &summary.error) {
        (_, Some(error)) => writeln!(out, "   (stack trace stopped: {error})")?,
        (Some(end), None) => writeln!(out, "   ({end})")?,
        (None, None) => {}
    }
    Ok(summary)
}
