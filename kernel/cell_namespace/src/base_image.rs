//! The base symbol file: the symbols of the statically linked base image (`nano_core`).
//!
//! Text format, one symbol per line: `<hex address> <hex size> <kind> <mangled name>`, where kind is `T` (text),
//! `R` (read-only data), `D` (data) or `B` (bss) and numbers have no `0x` prefix, e.g.
//! `ffffffff80101230 2a T _RNvCs..._9nano_core5start`. Blank lines and lines starting with `#` are ignored.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use cell_loader::SectionKind;
use memory_structs::VirtualAddress;

/// One symbol of the base image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseSymbol {
    /// Its address (canonical).
    pub address: VirtualAddress,
    /// Its size in bytes.
    pub size_in_bytes: usize,
    /// Text, read-only data, data or bss.
    pub kind: SectionKind,
    /// Its mangled name.
    pub name: String,
}

/// What is wrong with one line of a base symbol file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseSymbolErrorKind {
    /// Fewer than four fields; names the missing one.
    MissingField(&'static str),
    /// More than four fields; holds the first extra one.
    ExtraField(String),
    /// The address is not hexadecimal, does not fit 64 bits, or is not canonical.
    BadAddress(String),
    /// The size is not hexadecimal or does not fit a `usize`.
    BadSize(String),
    /// The kind is not one of `T`, `R`, `D`, `B`.
    UnknownKind(String),
}

/// A base symbol file line the parser rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseSymbolError {
    /// The line number, counting from 1.
    pub line: usize,
    /// What is wrong with it.
    pub kind: BaseSymbolErrorKind,
}

impl fmt::Display for BaseSymbolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "base symbol file line {}: ", self.line)?;
        match &self.kind {
            BaseSymbolErrorKind::MissingField(field) => write!(f, "missing {field}"),
            BaseSymbolErrorKind::ExtraField(word) => write!(f, "unexpected `{word}`"),
            BaseSymbolErrorKind::BadAddress(word) => write!(f, "bad address `{word}`"),
            BaseSymbolErrorKind::BadSize(word) => write!(f, "bad size `{word}`"),
            BaseSymbolErrorKind::UnknownKind(word) => write!(f, "unknown kind `{word}` (expected T, R, D or B)"),
        }
    }
}

/// Parses a base symbol file.
///
/// # Errors
/// The first bad line as a [`BaseSymbolError`] with its 1-based line number.
pub fn parse_base_symbols(text: &str) -> Result<Vec<BaseSymbol>, BaseSymbolError> {
    let mut symbols = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let error = |kind| BaseSymbolError { line: number + 1, kind };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut words = trimmed.split_whitespace();
        let mut field = |name: &'static str| words.next().ok_or(error(BaseSymbolErrorKind::MissingField(name)));
        let address_word = field("address")?;
        let size_word = field("size")?;
        let kind_word = field("kind")?;
        let name = field("name")?;
        if let Some(extra) = words.next() {
            return Err(error(BaseSymbolErrorKind::ExtraField(extra.to_string())));
        }
        let address = u64::from_str_radix(address_word, 16)
            .ok()
            .and_then(|raw| usize::try_from(raw).ok())
            .and_then(|raw| VirtualAddress::try_new(raw).ok())
            .ok_or(error(BaseSymbolErrorKind::BadAddress(address_word.to_string())))?;
        let size_in_bytes = usize::from_str_radix(size_word, 16)
            .map_err(|_| error(BaseSymbolErrorKind::BadSize(size_word.to_string())))?;
        let kind = match kind_word {
            "T" => SectionKind::Text,
            "R" => SectionKind::ReadOnlyData,
            "D" => SectionKind::Data,
            "B" => SectionKind::Bss,
            other => return Err(error(BaseSymbolErrorKind::UnknownKind(other.to_string()))),
        };
        symbols.push(BaseSymbol { address, size_in_bytes, kind, name: name.to_string() });
    }
    Ok(symbols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_symbols_and_skips_comments() {
        let text = "# nano_core\n\nffffffff80101230 2a T _RNvCs1_9nano_core5start\n  ffffffff80200000 8 B counter  \n";
        let symbols = parse_base_symbols(text).unwrap();
        assert_eq!(
            symbols,
            [
                BaseSymbol {
                    address: VirtualAddress::new(0xffff_ffff_8010_1230),
                    size_in_bytes: 0x2a,
                    kind: SectionKind::Text,
                    name: "_RNvCs1_9nano_core5start".into(),
                },
                BaseSymbol {
                    address: VirtualAddress::new(0xffff_ffff_8020_0000),
                    size_in_bytes: 8,
                    kind: SectionKind::Bss,
                    name: "counter".into(),
                },
            ]
        );
    }

    #[test]
    fn rejects_bad_lines_with_their_numbers() {
        let cases: [(&str, BaseSymbolErrorKind); 7] = [
            ("ffff 10 T", BaseSymbolErrorKind::MissingField("name")),
            ("ffff", BaseSymbolErrorKind::MissingField("size")),
            ("ffff 10 T name extra", BaseSymbolErrorKind::ExtraField("extra".into())),
            ("0xffff 10 T name", BaseSymbolErrorKind::BadAddress("0xffff".into())),
            ("800000000000 10 T name", BaseSymbolErrorKind::BadAddress("800000000000".into())),
            ("ffff zz T name", BaseSymbolErrorKind::BadSize("zz".into())),
            ("ffff 10 W name", BaseSymbolErrorKind::UnknownKind("W".into())),
        ];
        for (line, kind) in cases {
            let text = alloc::format!("# header\n{line}\n");
            assert_eq!(parse_base_symbols(&text), Err(BaseSymbolError { line: 2, kind }), "{line:?}");
        }
    }
}
