use crate::*;

fn sample() -> Vec<(String, Vec<u8>)> {
    vec![
        ("cells.manifest".into(), b"captain kernel k-captain.o\n".to_vec()),
        ("nano_core.syms".into(), (0..=255u8).collect()),
        ("k-captain.o".into(), b"\x7fELF and some more bytes".to_vec()),
        ("empty".into(), Vec::new()),
        ("a-hello.o".into(), vec![0xab; 1001]),
    ]
}

fn pack(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let borrowed: Vec<(&str, &[u8])> = entries.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    write(&borrowed).expect("valid input")
}

/// Offset of table entry `index`'s offset field.
fn offset_field(index: usize) -> usize {
    HEADER_LENGTH + index * TABLE_ENTRY_LENGTH + MAX_NAME_LENGTH
}

fn set_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn round_trip_keeps_names_bytes_order_and_alignment() {
    let files = sample();
    let bytes = pack(&files);
    let archive = Archive::parse(&bytes).unwrap();
    assert_eq!(archive.len(), files.len());
    let entries: Vec<Entry<'_>> = archive.entries().collect();
    assert_eq!(entries.len(), files.len());
    for (entry, (name, data)) in entries.iter().zip(&files) {
        assert_eq!(entry.name, name);
        assert_eq!(entry.bytes, data.as_slice());
        let offset = entry.bytes.as_ptr() as usize - bytes.as_ptr() as usize;
        assert_eq!(offset % DATA_ALIGNMENT, 0, "{name} at {offset}");
    }
    assert_eq!(archive.entry("k-captain.o").map(|e| e.bytes), Some(files[2].1.as_slice()));
    assert!(archive.entry("missing").is_none());
}

#[test]
fn empty_archive_is_valid() {
    let bytes = write(&[]).unwrap();
    assert_eq!(bytes.len(), HEADER_LENGTH);
    let archive = Archive::parse(&bytes).unwrap();
    assert!(archive.is_empty());
    assert_eq!(archive.entries().count(), 0);
}

#[test]
fn trailing_padding_is_ignored() {
    let files = sample();
    let mut bytes = pack(&files);
    bytes.extend_from_slice(&[0xff; 100]);
    let archive = Archive::parse(&bytes).unwrap();
    assert_eq!(archive.entries().last().map(|e| e.bytes), Some(files[4].1.as_slice()));
}

#[test]
fn header_errors() {
    let good = pack(&sample());
    assert_eq!(Archive::parse(&good[..10]).unwrap_err(), ArchiveError::TooShort { length: 10 });
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(matches!(Archive::parse(&bad), Err(ArchiveError::BadMagic { found }) if found[0] == b'X'));
    let mut bad = good.clone();
    bad[8] = 2;
    assert_eq!(Archive::parse(&bad).unwrap_err(), ArchiveError::UnsupportedVersion { version: 2 });
    let mut bad = good.clone();
    bad[12..16].copy_from_slice(&(MAX_ENTRIES as u32 + 1).to_le_bytes());
    assert_eq!(Archive::parse(&bad).unwrap_err(), ArchiveError::TooManyEntries { count: MAX_ENTRIES as u32 + 1 });
    let mut bad = good.clone();
    bad[12..16].copy_from_slice(&(MAX_ENTRIES as u32).to_le_bytes());
    assert!(matches!(Archive::parse(&bad), Err(ArchiveError::TableOutOfBounds { .. })));
}

#[test]
fn truncated_archive_is_reported_with_both_lengths() {
    let good = pack(&sample());
    let cut = &good[..good.len() - 1];
    assert_eq!(
        Archive::parse(cut).unwrap_err(),
        ArchiveError::Truncated { declared: good.len() as u64, actual: good.len() - 1 }
    );
}

#[test]
fn entry_errors_name_the_entry() {
    let good = pack(&sample());
    let first_offset = u64::from_le_bytes(good[offset_field(0)..offset_field(0) + 8].try_into().unwrap());

    let mut bad = good.clone();
    set_u64(&mut bad, offset_field(1), first_offset + 1);
    assert_eq!(Archive::parse(&bad).unwrap_err(), ArchiveError::MisalignedData { index: 1, offset: first_offset + 1 });

    let mut bad = good.clone();
    set_u64(&mut bad, offset_field(1), first_offset);
    assert!(matches!(Archive::parse(&bad), Err(ArchiveError::OverlappingData { index: 1, .. })));

    let mut bad = good.clone();
    set_u64(&mut bad, offset_field(4) + 8, u64::MAX);
    assert!(matches!(Archive::parse(&bad), Err(ArchiveError::DataOutOfBounds { index: 4, length: u64::MAX, .. })));

    let mut bad = good.clone();
    let name = HEADER_LENGTH + 2 * TABLE_ENTRY_LENGTH;
    bad[name] = 0;
    assert_eq!(Archive::parse(&bad).unwrap_err(), ArchiveError::InvalidName { index: 2, problem: NameProblem::Empty });
    let mut bad = good.clone();
    bad[name + MAX_NAME_LENGTH - 1] = b'x';
    assert_eq!(
        Archive::parse(&bad).unwrap_err(),
        ArchiveError::InvalidName { index: 2, problem: NameProblem::GarbageAfterNul }
    );
    let mut bad = good.clone();
    bad[name] = 0xff;
    assert_eq!(
        Archive::parse(&bad).unwrap_err(),
        ArchiveError::InvalidName { index: 2, problem: NameProblem::NotUtf8 }
    );

    let mut bad = good.clone();
    let (first, third) = (HEADER_LENGTH, name);
    let first_name: Vec<u8> = bad[first..first + MAX_NAME_LENGTH].to_vec();
    bad[third..third + MAX_NAME_LENGTH].copy_from_slice(&first_name);
    assert_eq!(Archive::parse(&bad).unwrap_err(), ArchiveError::DuplicateName { index: 2, first: 0 });
}

/// Every truncation and every single-byte change of a real archive is either accepted or rejected, never a panic,
/// and an accepted one only yields in-bounds entries.
#[test]
fn parser_never_panics_on_damaged_bytes() {
    let good = pack(&sample());
    for length in 0..good.len() {
        let _ = Archive::parse(&good[..length]).map(|a| a.entries().count());
    }
    for position in 0..good.len() {
        for value in [0x00, 0x01, 0x07, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[position] ^= value;
            if let Ok(archive) = Archive::parse(&bad) {
                for entry in archive.entries() {
                    let start = entry.bytes.as_ptr() as usize - bad.as_ptr() as usize;
                    assert!(start + entry.bytes.len() <= bad.len());
                }
            }
        }
    }
}

#[test]
fn writer_rejects_bad_names() {
    let data: &[u8] = b"x";
    assert!(matches!(write(&[("", data)]), Err(WriteError::InvalidName { index: 0, .. })));
    let long = "n".repeat(MAX_NAME_LENGTH + 1);
    assert!(matches!(write(&[("ok", data), (&long, data)]), Err(WriteError::InvalidName { index: 1, .. })));
    assert!(matches!(write(&[("a\0b", data)]), Err(WriteError::InvalidName { index: 0, .. })));
    assert!(matches!(write(&[("a", data), ("a", data)]), Err(WriteError::DuplicateName { .. })));
    let exact = "n".repeat(MAX_NAME_LENGTH);
    let bytes = write(&[(&exact, data)]).unwrap();
    assert_eq!(Archive::parse(&bytes).unwrap().entry(&exact).map(|e| e.bytes), Some(data));
}

#[test]
fn writer_rejects_too_many_entries() {
    let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("f{i}")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    assert_eq!(write(&entries).unwrap_err(), WriteError::TooManyEntries { count: MAX_ENTRIES + 1 });
}
