//! The shell's command-line parser: a line of text in, a [`Pipeline`] of commands (each a list of words) out.
//!
//! Purpose: keep the shell's language in one host-testable place that never panics, whatever the input.
//! Key items: [`parse_with`] (the entry; [`parse`] without variables), [`Pipeline`] (the result), [`ParseError`]
//! (what was wrong, and where), [`is_variable_name`].
//!
//! Syntax (a small subset of POSIX `sh`, XCU 2.2-2.6):
//! - words are separated by spaces and tabs;
//! - `'...'` quotes everything literally up to the next `'`;
//! - `"..."` quotes too, except that `\"`, `\\` and `\$` stand for `"`, `\` and `$` (any other backslash stays as
//!   it is) and `$?` is expanded;
//! - outside quotes a backslash makes the next character literal;
//! - `$?` (outside single quotes) expands to the exit status of the last command, given by the caller;
//! - `$NAME` and `${NAME}` (outside single quotes; NAME is a letter or `_` then letters, digits and `_`) expand
//!   to the variable's value from the caller's lookup, or to nothing if it is unset; the expansion is never split
//!   into several words. A `$` followed by anything else stays a `$`; `${` without a valid name and a `}` is an
//!   error;
//! - `|` (outside quotes) separates the commands of a pipeline; `&` (outside quotes) as the last token runs the
//!   whole line in the background, anywhere else it is an error.
//!
//! Control flow of [`parse`]: one pass over the characters with a quoting state (none, single, double); a word is
//! pushed at an unquoted separator, a command at `|`, and the end checks for an open quote or a dangling escape.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Longest line [`parse`] accepts, in bytes (the line editor's own limit is lower; this bounds any caller).
pub const MAX_LINE_BYTES: usize = 4096;

/// A parsed line: one or more commands joined by `|`, each with at least one word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    /// The commands in order; `commands[i]`'s output feeds `commands[i + 1]`. Never empty, no command is empty.
    pub commands: Vec<Vec<String>>,
    /// The line ended in an unquoted `&`.
    pub background: bool,
}

/// Why a line could not be parsed. Positions are byte offsets into the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// A quote opened at `position` was never closed.
    UnterminatedQuote {
        /// The quote character, `'` or `"`.
        quote: char,
        /// Where it opened.
        position: usize,
    },
    /// The line ends in a backslash with nothing to escape.
    TrailingBackslash,
    /// A `|` at `position` has no command before or after it.
    EmptyCommand {
        /// Where the `|` is.
        position: usize,
    },
    /// An `&` at `position` that is not the last token of the line.
    MisplacedAmpersand {
        /// Where the `&` is.
        position: usize,
    },
    /// A `${` at `position` is not followed by a variable name and a `}`.
    BadSubstitution {
        /// Where the `$` is.
        position: usize,
    },
    /// The line is longer than [`MAX_LINE_BYTES`].
    TooLong {
        /// Its length in bytes.
        length: usize,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnterminatedQuote { quote, position } => {
                write!(formatter, "unterminated {quote} quote opened at column {}", position + 1)
            }
            Self::TrailingBackslash => write!(formatter, "the line ends in a backslash"),
            Self::EmptyCommand { position } => {
                write!(formatter, "missing command next to `|` at column {}", position + 1)
            }
            Self::MisplacedAmpersand { position } => {
                write!(formatter, "`&` at column {} must end the line", position + 1)
            }
            Self::BadSubstitution { position } => {
                write!(formatter, "bad substitution at column {}: `${{` needs a NAME and a `}}`", position + 1)
            }
            Self::TooLong { length } => write!(formatter, "line of {length} bytes is longer than {MAX_LINE_BYTES}"),
        }
    }
}

/// Quoting state while scanning.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    /// Inside `'...'` opened at this byte offset.
    Single(usize),
    /// Inside `"..."` opened at this byte offset.
    Double(usize),
}

/// The pieces being built.
#[derive(Default)]
struct Builder {
    commands: Vec<Vec<String>>,
    words: Vec<String>,
    word: String,
    /// A word has begun (possibly empty, as after `""`).
    in_word: bool,
}

impl Builder {
    fn push_char(&mut self, character: char) {
        self.word.push(character);
        self.in_word = true;
    }

    fn end_word(&mut self) {
        if self.in_word {
            self.words.push(core::mem::take(&mut self.word));
            self.in_word = false;
        }
    }

    /// Ends the current command at a `|` (or the end of the line) at `position`.
    fn end_command(&mut self, position: usize) -> Result<(), ParseError> {
        self.end_word();
        if self.words.is_empty() {
            return Err(ParseError::EmptyCommand { position });
        }
        self.commands.push(core::mem::take(&mut self.words));
        Ok(())
    }
}

/// Whether `name` can name a variable: an ASCII letter or `_`, then ASCII letters, digits and `_` (POSIX XBD 3.235).
pub fn is_variable_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

/// Parses `line` with no variables set (`$NAME` expands to nothing): [`parse_with`].
///
/// # Errors
/// As [`parse_with`].
pub fn parse(line: &str, last_status: isize) -> Result<Option<Pipeline>, ParseError> {
    parse_with(line, last_status, &|_| None)
}

/// What a `$` at the current position expands to, and how many characters after the `$` it used.
fn expand_dollar(
    rest: &str,
    position: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(String, usize)>, ParseError> {
    if let Some(braced) = rest.strip_prefix('{') {
        let name = braced.split('}').next().filter(|name| braced.len() > name.len() && is_variable_name(name));
        let name = name.ok_or(ParseError::BadSubstitution { position })?;
        return Ok(Some((lookup(name).unwrap_or_default(), name.chars().count() + 2)));
    }
    let length =
        rest.find(|character: char| !(character.is_ascii_alphanumeric() || character == '_')).unwrap_or(rest.len());
    let name = &rest[..length];
    if !is_variable_name(name) {
        return Ok(None);
    }
    Ok(Some((lookup(name).unwrap_or_default(), name.len())))
}

/// Parses `line`; `last_status` is what `$?` expands to and `lookup` gives the value of `$NAME` / `${NAME}`
/// (`None`: unset, expands to nothing). Returns `Ok(None)` for a line with no words (blank).
///
/// # Errors
/// A [`ParseError`] for an open quote, a trailing backslash, a `|` without a command on one side, an `&` that does
/// not end the line, a bad `${...}`, or a line over [`MAX_LINE_BYTES`]. Never panics.
pub fn parse_with(
    line: &str,
    last_status: isize,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Pipeline>, ParseError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(ParseError::TooLong { length: line.len() });
    }
    let mut builder = Builder::default();
    let mut quote = Quote::None;
    let mut background_at: Option<usize> = None;
    let mut last_pipe: Option<usize> = None;
    let mut characters = line.char_indices().peekable();
    while let Some((position, character)) = characters.next() {
        if let Some(ampersand) = background_at {
            if !character.is_whitespace() {
                return Err(ParseError::MisplacedAmpersand { position: ampersand });
            }
            continue;
        }
        let next = characters.peek().map(|&(_, next)| next);
        match (quote, character) {
            (Quote::Single(_), '\'') | (Quote::Double(_), '"') => quote = Quote::None,
            (Quote::Single(_), _) => builder.push_char(character),
            (Quote::None | Quote::Double(_), '$') if next == Some('?') => {
                characters.next();
                builder.word.push_str(&alloc::format!("{last_status}"));
                builder.in_word = true;
            }
            (Quote::None | Quote::Double(_), '$') => match expand_dollar(&line[position + 1..], position, lookup)? {
                Some((value, used)) => {
                    for _ in 0..used {
                        characters.next();
                    }
                    builder.word.push_str(&value);
                    // An unquoted expansion to nothing makes no word (as in `sh`); a quoted one makes an empty one.
                    builder.in_word |= !value.is_empty() || matches!(quote, Quote::Double(_));
                }
                None => builder.push_char('$'),
            },
            (Quote::Double(_), '\\') => match next {
                Some(escaped @ ('"' | '\\' | '$')) => {
                    characters.next();
                    builder.push_char(escaped);
                }
                _ => builder.push_char('\\'),
            },
            (Quote::Double(_), _) => builder.push_char(character),
            (Quote::None, '\\') => match characters.next() {
                Some((_, escaped)) => builder.push_char(escaped),
                None => return Err(ParseError::TrailingBackslash),
            },
            (Quote::None, '\'') => {
                quote = Quote::Single(position);
                builder.in_word = true;
            }
            (Quote::None, '"') => {
                quote = Quote::Double(position);
                builder.in_word = true;
            }
            (Quote::None, '|') => {
                builder.end_command(position)?;
                last_pipe = Some(position);
            }
            (Quote::None, '&') => {
                builder.end_word();
                background_at = Some(position);
            }
            (Quote::None, ' ' | '\t') => builder.end_word(),
            (Quote::None, _) => builder.push_char(character),
        }
    }
    match quote {
        Quote::Single(position) => return Err(ParseError::UnterminatedQuote { quote: '\'', position }),
        Quote::Double(position) => return Err(ParseError::UnterminatedQuote { quote: '"', position }),
        Quote::None => {}
    }
    builder.end_word();
    if builder.words.is_empty() && builder.commands.is_empty() {
        return match background_at {
            Some(position) => Err(ParseError::MisplacedAmpersand { position }),
            None => Ok(None),
        };
    }
    builder.end_command(last_pipe.unwrap_or(line.len()))?;
    Ok(Some(Pipeline { commands: builder.commands, background: background_at.is_some() }))
}

#[cfg(test)]
mod tests;
