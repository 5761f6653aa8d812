//! Host tests: layout, every rejection, the streaming receiver, and fuzzing with random and mutated frames.

use alloc::vec::Vec;

use crate::*;

/// xorshift64*: a small deterministic generator, so every failure reproduces.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }

    fn bytes(&mut self, length: usize) -> Vec<u8> {
        (0..length).map(|_| self.next() as u8).collect()
    }
}

fn sample_payload() -> Vec<u8> {
    let mut payload = b"\x7fELF".to_vec();
    payload.extend((0..300_u32).map(|i| (i * 31 + 7) as u8));
    payload
}

fn frame_of(payload: &[u8]) -> Vec<u8> {
    encode("greeting_v2", "greeting", payload).unwrap()
}

/// Feeds `stream` in chunks and drains every event, expiring stalls, until nothing is buffered.
fn receive_all(stream: &[u8], random: &mut Random) -> Vec<Event> {
    let mut receiver = Receiver::new();
    let mut events = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(1 + random.below(rest.len().min(97)));
        rest = tail;
        receiver.extend(chunk);
        while let Some(event) = receiver.next_event() {
            events.push(event);
        }
    }
    while receiver.is_mid_frame() {
        events.extend(receiver.expire());
        while let Some(event) = receiver.next_event() {
            events.push(event);
        }
    }
    events
}

fn frames(events: &[Event]) -> Vec<&ReceivedFrame> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Frame(frame) => Some(frame),
            Event::Rejected(_) => None,
        })
        .collect()
}

#[test]
fn encodes_the_documented_layout() {
    let frame = encode("greeting_v2", "greeting", b"OBJ").unwrap();
    assert_eq!(&frame[..4], b"CPSH");
    assert_eq!(frame[4..8], [1, 11, 8, 0]);
    assert_eq!(frame[8..12], 3_u32.to_le_bytes());
    assert_eq!(frame[12..16], crc32(&frame[..12]).to_le_bytes());
    assert_eq!(&frame[16..35], b"greeting_v2greeting");
    assert_eq!(&frame[35..38], b"OBJ");
    assert_eq!(frame[38..], crc32(&frame[..38]).to_le_bytes());
    assert_eq!(frame.len(), HEADER_LEN + 11 + 8 + 3 + TRAILER_LEN);
}

#[test]
fn round_trips_and_reports_length() {
    let payload = sample_payload();
    let mut bytes = frame_of(&payload);
    let length = bytes.len();
    bytes.extend_from_slice(b"trailing noise");
    let Ok(Parsed::Complete { frame, length: parsed_length }) = parse(&bytes) else { panic!("not parsed") };
    assert_eq!(parsed_length, length);
    assert_eq!((frame.cell, frame.crate_name, frame.payload), ("greeting_v2", "greeting", &payload[..]));
}

#[test]
fn encode_refuses_bad_names_and_payloads() {
    let long = "x".repeat(MAX_NAME_LEN + 1);
    assert_eq!(encode("", "c", b"x"), Err(EncodeError::NameLength { field: NameField::Cell, length: 0 }));
    assert_eq!(
        encode("a", &long, b"x"),
        Err(EncodeError::NameLength { field: NameField::Crate, length: MAX_NAME_LEN + 1 })
    );
    assert_eq!(encode("a b", "c", b"x"), Err(EncodeError::NameCharacter { field: NameField::Cell, character: ' ' }));
    assert_eq!(encode("a", "c-d", b"x"), Err(EncodeError::NameCharacter { field: NameField::Crate, character: '-' }));
    assert_eq!(encode("a", "c", b""), Err(EncodeError::PayloadLength { length: 0 }));
    let huge = alloc::vec![0_u8; MAX_PAYLOAD_LEN + 1];
    assert_eq!(encode("a", "c", &huge), Err(EncodeError::PayloadLength { length: MAX_PAYLOAD_LEN + 1 }));
}

/// Rewrites header byte `index` to `value` and fixes the header CRC, so the field check itself is what fails.
fn with_header_byte(index: usize, value: u8) -> Vec<u8> {
    let mut bytes = frame_of(b"OBJ");
    bytes[index] = value;
    let crc = crc32(&bytes[..12]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn rejects_each_damaged_field() {
    assert_eq!(parse(b"CPSX"), Err(FrameError::BadMagic));
    assert_eq!(parse(b"XP"), Err(FrameError::BadMagic));
    let mut bad_length = frame_of(b"OBJ");
    bad_length[9] ^= 0x40;
    assert!(matches!(parse(&bad_length), Err(FrameError::HeaderChecksum { .. })));
    assert_eq!(parse(&with_header_byte(4, 2)), Err(FrameError::UnsupportedVersion { version: 2 }));
    assert_eq!(parse(&with_header_byte(7, 1)), Err(FrameError::Reserved { value: 1 }));
    assert_eq!(parse(&with_header_byte(5, 0)), Err(FrameError::NameLength { field: NameField::Cell, length: 0 }));
    assert_eq!(parse(&with_header_byte(6, 65)), Err(FrameError::NameLength { field: NameField::Crate, length: 65 }));
    assert_eq!(parse(&with_header_byte(8, 0)), Err(FrameError::PayloadLength { length: 0 }));
    assert_eq!(parse(&with_header_byte(11, 1)), Err(FrameError::PayloadLength { length: (1 << 24) + 3 }));
    let mut bad_name = frame_of(b"OBJ");
    bad_name[HEADER_LEN] = b' ';
    let crc = crc32(&bad_name[..bad_name.len() - 4]);
    let end = bad_name.len();
    bad_name[end - 4..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(parse(&bad_name), Err(FrameError::NameByte { field: NameField::Cell, byte: b' ' }));
    let mut bad_payload = frame_of(b"OBJ");
    bad_payload[HEADER_LEN + 19] ^= 1;
    assert!(matches!(parse(&bad_payload), Err(FrameError::Checksum { .. })));
}

#[test]
fn every_prefix_is_incomplete() {
    let bytes = frame_of(&sample_payload());
    for length in 0..bytes.len() {
        let needed = if length < HEADER_LEN { HEADER_LEN } else { bytes.len() };
        assert_eq!(parse(&bytes[..length]), Ok(Parsed::Incomplete { needed }), "prefix of {length} bytes");
    }
}

#[test]
fn receiver_skips_noise_and_splits_frames() {
    let mut stream = b"boot noise CP CPS ".to_vec();
    stream.extend(frame_of(b"first"));
    stream.extend(b"between");
    stream.extend(frame_of(b"second"));
    let mut random = Random(7);
    let events = receive_all(&stream, &mut random);
    let payloads: Vec<&[u8]> = frames(&events).iter().map(|frame| &frame.payload[..]).collect();
    assert_eq!(payloads, [&b"first"[..], b"second"]);
    assert_eq!(events.len(), 2, "{events:?}");
}

#[test]
fn receiver_resynchronises_after_a_damaged_frame() {
    let mut damaged = frame_of(&sample_payload());
    damaged[HEADER_LEN + 40] ^= 0x10;
    let mut stream = damaged;
    stream.extend(frame_of(b"good"));
    let events = receive_all(&stream, &mut Random(3));
    assert!(matches!(events[0], Event::Rejected(FrameError::Checksum { .. })), "{events:?}");
    assert_eq!(frames(&events).len(), 1);
    assert_eq!(frames(&events)[0].payload, b"good");
}

#[test]
fn truncated_frame_is_reported_on_expiry_and_the_next_frame_still_arrives() {
    let whole = frame_of(&sample_payload());
    let mut receiver = Receiver::new();
    receiver.extend(&whole[..100]);
    assert_eq!(receiver.next_event(), None);
    assert!(receiver.is_mid_frame());
    assert_eq!(
        receiver.expire(),
        Some(Event::Rejected(FrameError::Truncated { received: 100, expected: whole.len() }))
    );
    assert_eq!(receiver.next_event(), None);
    assert!(!receiver.is_mid_frame(), "the truncated frame's bytes are dropped as noise");
    // A truncated frame followed at once by a short frame swallows it until expiry; the frame is found after.
    let mut stream = whole[..200].to_vec();
    stream.extend(frame_of(b"next"));
    let events = receive_all(&stream, &mut Random(11));
    assert!(matches!(events[0], Event::Rejected(FrameError::Truncated { .. })), "{events:?}");
    assert_eq!(frames(&events).len(), 1);
    assert_eq!(frames(&events)[0].payload, b"next");
}

#[test]
fn fuzz_random_bytes_never_panic_or_yield_frames() {
    let mut random = Random(0x1234_5678);
    for round in 0..2000 {
        let length = random.below(200);
        let mut bytes = random.bytes(length);
        if round % 2 == 0 {
            // Start with the magic so the header checks run too.
            bytes.splice(0..0, MAGIC);
        }
        let _ = parse(&bytes);
        let events = receive_all(&bytes, &mut random);
        assert!(frames(&events).is_empty(), "random bytes made a frame: {bytes:?}");
    }
}

#[test]
fn fuzz_mutated_frames_are_rejected_and_the_next_frame_survives() {
    let mut random = Random(0xDEAD_BEEF);
    let good = frame_of(b"the frame after");
    for _ in 0..3000 {
        let length = 1 + random.below(400);
        let payload = random.bytes(length);
        let mut bytes = frame_of(&payload);
        match random.below(4) {
            0 => {
                // Flip 1..4 bytes (xor with a non-zero value: always a change).
                for _ in 0..1 + random.below(4) {
                    let index = random.below(bytes.len());
                    bytes[index] ^= 1 + random.below(255) as u8;
                }
            }
            1 => bytes.truncate(random.below(bytes.len())),
            2 => {
                // Inside the frame: noise before its magic would leave the frame itself intact.
                let index = 1 + random.below(bytes.len() - 1);
                let count = 1 + random.below(8);
                let inserted = random.bytes(count);
                bytes.splice(index..index, inserted);
            }
            _ => {
                let start = random.below(bytes.len());
                let end = (start + 1 + random.below(8)).min(bytes.len());
                bytes.drain(start..end);
            }
        }
        let _ = parse(&bytes);
        let mut stream = bytes.clone();
        stream.extend_from_slice(&good);
        let events = receive_all(&stream, &mut random);
        let received = frames(&events);
        assert_eq!(received.len(), 1, "mutant {bytes:?} gave {events:?}");
        assert_eq!(received[0].payload, b"the frame after");
    }
}

#[test]
fn replies_round_trip() {
    let stored = Reply::Stored { name: "greeting_v2@2".into(), bytes: 2008 };
    assert_eq!(stored.to_line(), "ack greeting_v2@2 2008\n");
    assert_eq!(Reply::parse(&stored.to_line()), Some(stored));
    let rejected = Reply::Rejected { reason: "bad checksum\nsecond line".into() };
    assert_eq!(rejected.to_line(), "nack bad checksum second line\n");
    assert_eq!(
        Reply::parse("nack bad checksum second line"),
        Some(Reply::Rejected { reason: "bad checksum second line".into() })
    );
    assert_eq!(Reply::parse("theseus> "), None);
    assert_eq!(Reply::parse("ack onlyname"), None);
}
