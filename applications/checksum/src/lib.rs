//! The checksum application: CRC-32, Adler-32 and MD5 of each argument, computed by no_std crates from the cargo
//! registry (`crc32fast`, `adler2`, `md5`, all with `default-features = false`).
//!
//! Usage: `checksum [TEXT...]`. Each TEXT (the UTF-8 bytes of the word, without a newline) gets one line:
//!
//! ```text
//! crc32=414fa339 adler32=5bdc0fda md5=9e107d9d372bb6826bd81d3542a419d6 len=43 "The quick brown fox jumps over the lazy dog"
//! ```
//!
//! With no argument it checksums [`TEST_VECTOR`]. The `checksum` QEMU scenario compares these lines with values the
//! host computes from the same bytes.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

app_io::entry!(main);

/// The text checksummed when no argument is given.
pub const TEST_VECTOR: &str = "The quick brown fox jumps over the lazy dog";

/// One output line for `bytes`: the three checksums in lowercase hexadecimal, the length in bytes, the text quoted.
pub fn line(text: &str) -> String {
    let bytes = text.as_bytes();
    let crc32 = crc32fast::hash(bytes);
    let mut adler = adler2::Adler32::new();
    adler.write_slice(bytes);
    let digest = md5::compute(bytes);
    let mut line = alloc::format!("crc32={crc32:08x} adler32={:08x} md5=", adler.checksum());
    for byte in digest.0 {
        // Writing into a `String` cannot fail.
        let _ = write!(line, "{byte:02x}");
    }
    let _ = write!(line, " len={} {text:?}", bytes.len());
    line
}

/// Entry point: prints one line per argument (or for [`TEST_VECTOR`] without one). Returns 0.
pub fn main(args: Vec<String>) -> isize {
    let texts: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let texts = if texts.is_empty() { alloc::vec![TEST_VECTOR] } else { texts };
    for text in texts {
        app_io::println!("{}", line(text));
    }
    app_io::exit_code::SUCCESS
}
