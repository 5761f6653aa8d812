//! Expected output of the `checksum` application, computed on the host from the same bytes.
//!
//! CRC-32 comes from `push_frame`'s own table-driven implementation (written from the IEEE 802.3 polynomial, not
//! from `crc32fast`, which the application uses), Adler-32 and MD5 from the `adler2` and `md5` crates built for the
//! host; the unit test checks all three against values Python's `zlib.crc32`, `zlib.adler32` and `hashlib.md5`
//! gave for the same strings. The application's line format is documented in `applications/checksum`.

/// The text the application checksums when given no argument (`checksum::TEST_VECTOR`).
pub const TEST_VECTOR: &str = "The quick brown fox jumps over the lazy dog";

/// The line `checksum TEXT` prints for `text`.
pub fn line(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut adler = adler2::Adler32::new();
    adler.write_slice(bytes);
    format!(
        "crc32={:08x} adler32={:08x} md5={:x} len={} {text:?}",
        push_frame::crc32(bytes),
        adler.checksum(),
        md5::compute(bytes),
        bytes.len()
    )
}

/// `checksum` with no argument: one line, for [`TEST_VECTOR`].
pub fn default_vector() -> Vec<String> {
    vec![line(TEST_VECTOR)]
}

/// The words of [`ARGUMENTS_COMMAND`], as the shell passes them.
pub const ARGUMENTS: [&str; 2] = ["abc", "hello world"];
/// `checksum` with two arguments, one of them quoted.
pub const ARGUMENTS_COMMAND: &str = r#"checksum abc "hello world""#;

/// The lines of [`ARGUMENTS_COMMAND`], in order.
pub fn arguments() -> Vec<String> {
    ARGUMENTS.iter().map(|text| line(text)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values_match_python() {
        // From Python 3: "%08x %08x %s" % (zlib.crc32(t), zlib.adler32(t), hashlib.md5(t).hexdigest()).
        assert_eq!(
            line(TEST_VECTOR),
            r#"crc32=414fa339 adler32=5bdc0fda md5=9e107d9d372bb6826bd81d3542a419d6 len=43 "The quick brown fox jumps over the lazy dog""#
        );
        assert_eq!(line("abc"), r#"crc32=352441c2 adler32=024d0127 md5=900150983cd24fb0d6963f7d28e17f72 len=3 "abc""#);
        assert_eq!(
            arguments()[1],
            r#"crc32=0d4a1185 adler32=1a0b045d md5=5eb63bbbe01eeed093cb22bb8f5acdc3 len=11 "hello world""#
        );
        assert_eq!(line(""), r#"crc32=00000000 adler32=00000001 md5=d41d8cd98f00b204e9800998ecf8427e len=0 """#);
    }
}
