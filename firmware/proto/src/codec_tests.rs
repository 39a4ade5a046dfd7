//! Tests of encoding and the streaming decoder: round trips, sizes, the golden PIR frame,
//! corrupted and truncated streams.

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, println, vec};

use proptest::prelude::*;

use super::*;
use crate::frame::{
    Batch, Body, CameraRole, Catalog, CatalogId, CatalogPackPart, Hello, Kind, PackedSnapshot,
    Role, SensorId, Snapshot, ValueKind, PROTOCOL_VERSION,
};

const PIR: SensorId = SensorId(0);
const TEMPERATURE: SensorId = SensorId(1);
const PLATE: SensorId = SensorId(2);
const STATUS: SensorId = SensorId(5);
/// The last id of a 60,000-sensor site.
const FAR_PIR: SensorId = SensorId(59_999);

/// 2025-11-24 17:00:00 UTC in Unix milliseconds: a realistic (6-byte) time varint.
const TIME_MS: u64 = 1_764_003_600_000;

fn kind_of(id: SensorId) -> Option<ValueKind> {
    match id {
        TEMPERATURE => Some(ValueKind::Scalar),
        PLATE => Some(ValueKind::Complex),
        STATUS => Some(ValueKind::Unsigned),
        SensorId(id) if id < 60_000 => Some(ValueKind::Binary),
        _ => None,
    }
}

/// A frame copied out of the decoder, comparable with `==`.
#[derive(Clone, Debug, PartialEq)]
enum Owned {
    Hello(u16, String, Option<CatalogId>),
    Catalog(Vec<(u32, String, String, Role)>),
    Snapshot(bool, u64, Vec<(u32, OwnedValue)>),
    Changes(u64, Vec<(u32, OwnedValue)>),
    Heartbeat(u64),
    CatalogPack(bool, Vec<u8>),
    PackedSnapshot(bool, u64, Vec<(u32, OwnedValue)>),
}

#[derive(Clone, Debug, PartialEq)]
enum OwnedValue {
    Binary(bool),
    /// Bits, so NaN compares equal to itself.
    Scalar(u32),
    Complex(Vec<u8>),
    Unsigned(u64),
}

fn owned_change(change: Result<Change<'_>, FrameError>) -> Result<(u32, OwnedValue), FrameError> {
    let change = change?;
    let value = match change.value {
        Value::Binary(level) => OwnedValue::Binary(level),
        Value::Scalar(scalar) => OwnedValue::Scalar(scalar.to_bits()),
        Value::Complex(bytes) => OwnedValue::Complex(bytes.to_vec()),
        Value::Unsigned(number) => OwnedValue::Unsigned(number),
    };
    Ok((change.id.0, value))
}

fn owned_changes(batch: &Batch<'_>) -> Result<Vec<(u32, OwnedValue)>, FrameError> {
    batch.changes(kind_of).map(owned_change).collect()
}

fn owned(frame: &Frame<'_>) -> Result<(u32, Owned), FrameError> {
    let body = match &frame.body {
        Body::Hello(hello) => {
            Owned::Hello(hello.version, hello.box_name.to_string(), hello.catalog)
        }
        Body::Catalog(catalog) => Owned::Catalog(
            catalog
                .entries()
                .map(|entry| {
                    let kind = format!("{:?}", entry.kind);
                    (entry.id.0, entry.name.to_string(), kind, entry.role)
                })
                .collect(),
        ),
        Body::Snapshot(snapshot) => Owned::Snapshot(
            snapshot.last_part,
            snapshot.batch.time_ms,
            owned_changes(&snapshot.batch)?,
        ),
        Body::Changes(batch) => Owned::Changes(batch.time_ms, owned_changes(batch)?),
        Body::Heartbeat { time_ms } => Owned::Heartbeat(*time_ms),
        Body::CatalogPack(part) => Owned::CatalogPack(part.last_part, part.bytes.to_vec()),
        Body::PackedSnapshot(part) => Owned::PackedSnapshot(
            part.last_part,
            part.time_ms,
            part.values(kind_of)
                .map(owned_change)
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok((frame.seq, body))
}

/// What the decoder said about one stream, in order.
#[derive(Debug, PartialEq)]
enum Event {
    Frame(u32, Owned),
    Rejected(FrameError),
}

/// Feeds `stream` in chunks of `chunk_bytes` and records every answer.
fn decode_stream(stream: &[u8], chunk_bytes: usize) -> Vec<Event> {
    let mut decoder = FrameDecoder::<MAX_FRAME_BYTES>::new();
    let mut events = Vec::new();
    for chunk in stream.chunks(chunk_bytes.max(1)) {
        let mut input = chunk;
        loop {
            match decoder.feed(input) {
                Feed::NeedMore => break,
                Feed::Frame { frame, rest, .. } => {
                    events.push(match owned(&frame) {
                        Ok((seq, body)) => Event::Frame(seq, body),
                        Err(error) => Event::Rejected(error),
                    });
                    input = rest;
                }
                Feed::Rejected { error, rest, .. } => {
                    events.push(Event::Rejected(error));
                    input = rest;
                }
            }
        }
    }
    events
}

fn wire(frame: &Frame<'_>) -> Vec<u8> {
    let mut buf = [0u8; MAX_FRAME_BYTES];
    encode(frame, &mut buf).expect("test frames fit").to_vec()
}

const CATALOG: [CatalogEntry<'static>; 6] = [
    CatalogEntry {
        id: PIR,
        name: "front_door_pir",
        kind: Kind::Binary,
        role: Role::Sensor,
    },
    CatalogEntry {
        id: TEMPERATURE,
        name: "cabinet_temperature",
        kind: Kind::Scalar { unit: "°C" },
        role: Role::Health,
    },
    CatalogEntry {
        id: PLATE,
        name: "gate_plate",
        kind: Kind::Complex,
        role: Role::Sensor,
    },
    CatalogEntry {
        id: SensorId(3),
        name: "front_door_online",
        kind: Kind::Binary,
        role: Role::Camera(CameraRole::Online),
    },
    CatalogEntry {
        id: STATUS,
        name: "front_door_status",
        kind: Kind::Unsigned { unit: "" },
        role: Role::Camera(CameraRole::Status),
    },
    CatalogEntry {
        id: FAR_PIR,
        name: "far_pir",
        kind: Kind::Binary,
        role: Role::Sensor,
    },
];

const CHANGES: [Change<'static>; 6] = [
    Change {
        id: PIR,
        value: Value::Binary(true),
    },
    // Two edges of one sensor in one batch stay two changes, in order.
    Change {
        id: PIR,
        value: Value::Binary(false),
    },
    Change {
        id: TEMPERATURE,
        value: Value::Scalar(21.5),
    },
    Change {
        id: PLATE,
        value: Value::Complex(b"AB-123"),
    },
    Change {
        id: STATUS,
        value: Value::Unsigned(51),
    },
    Change {
        id: FAR_PIR,
        value: Value::Binary(true),
    },
];

/// One value per sensor of the catalog's first six ids, sorted, as a snapshot holds them.
const SNAPSHOT_VALUES: [Change<'static>; 4] = [
    Change {
        id: PIR,
        value: Value::Binary(true),
    },
    Change {
        id: TEMPERATURE,
        value: Value::Scalar(21.5),
    },
    Change {
        id: PLATE,
        value: Value::Complex(b"AB-123"),
    },
    // Id 3 (front_door_online) has no value yet: the part carries a presence bitmap.
    Change {
        id: STATUS,
        value: Value::Unsigned(51),
    },
];

/// One frame of every kind, seq 0..=5, then the kinds of version 2.
fn every_kind() -> Vec<Frame<'static>> {
    vec![
        Frame {
            seq: 0,
            body: Body::Hello(Hello {
                version: PROTOCOL_VERSION,
                box_name: "garage",
                catalog: Some(CatalogId {
                    entries: 6,
                    hash: 0x0123_4567_89ab_cdef,
                }),
            }),
        },
        Frame {
            seq: 1,
            body: Body::Catalog(Catalog::new(&CATALOG)),
        },
        Frame {
            seq: 2,
            body: Body::Snapshot(Snapshot {
                last_part: true,
                batch: Batch::new(TIME_MS, &CHANGES[1..]),
            }),
        },
        Frame {
            seq: 3,
            body: Body::Changes(Batch::new(TIME_MS + 40, &CHANGES)),
        },
        Frame {
            seq: 4,
            body: Body::Heartbeat {
                time_ms: TIME_MS + 5_000,
            },
        },
        Frame {
            seq: u32::MAX,
            body: Body::Changes(Batch::new(0, &[])),
        },
        Frame {
            seq: 6,
            body: Body::CatalogPack(CatalogPackPart {
                last_part: false,
                bytes: &[0x00, 0x01, 0xfe, 0xff],
            }),
        },
        Frame {
            seq: 7,
            body: Body::PackedSnapshot(PackedSnapshot::new(true, TIME_MS, &SNAPSHOT_VALUES)),
        },
        Frame {
            seq: 8,
            body: Body::PackedSnapshot(PackedSnapshot::new(false, TIME_MS, &[])),
        },
    ]
}

fn expected(frame: &Frame<'_>) -> Event {
    let (seq, body) = owned(frame).expect("sent frames read back");
    Event::Frame(seq, body)
}

#[test]
fn every_frame_kind_round_trips() {
    for frame in every_kind() {
        let bytes = wire(&frame);
        assert_eq!(bytes.last(), Some(&DELIMITER));
        assert_eq!(bytes.iter().filter(|byte| **byte == DELIMITER).count(), 1);
        assert_eq!(decode_stream(&bytes, bytes.len()), vec![expected(&frame)]);
    }
}

#[test]
fn stream_of_frames_decodes_in_any_chunking() {
    let frames = every_kind();
    let stream: Vec<u8> = frames.iter().flat_map(|frame| wire(frame)).collect();
    let want: Vec<Event> = frames.iter().map(expected).collect();
    for chunk_bytes in [1, 2, 3, 7, 64, stream.len()] {
        assert_eq!(
            decode_stream(&stream, chunk_bytes),
            want,
            "chunks of {chunk_bytes}"
        );
    }
}

#[test]
fn two_edges_in_one_batch_stay_two_changes() {
    let frame = &every_kind()[3];
    let events = decode_stream(&wire(frame), MAX_FRAME_BYTES);
    let Some(Event::Frame(_, Owned::Changes(_, changes))) = events.first() else {
        panic!("expected a changes frame, got {events:?}");
    };
    assert_eq!(
        changes.get(..2),
        Some(
            &[
                (0, OwnedValue::Binary(true)),
                (0, OwnedValue::Binary(false))
            ][..]
        )
    );
}

#[test]
fn reencoding_a_received_frame_gives_the_same_bytes() {
    for frame in every_kind() {
        let bytes = wire(&frame);
        let mut decoder = FrameDecoder::<MAX_FRAME_BYTES>::new();
        let Feed::Frame {
            frame: received, ..
        } = decoder.feed(&bytes)
        else {
            panic!("frame {} did not decode", frame.seq);
        };
        assert_eq!(wire(&received), bytes);
    }
}

/// Bytes of a changes frame with `changes`, all of them: COBS, header, time, CRC, delimiter.
fn changes_frame_bytes(seq: u32, changes: &[Change<'_>]) -> usize {
    wire(&Frame {
        seq,
        body: Body::Changes(Batch::new(TIME_MS, changes)),
    })
    .len()
}

#[test]
fn one_pir_change_costs_at_most_4_bytes_beyond_the_frame_header() {
    // Sequence numbers across a long session (the header varint grows with them).
    for seq in [1, 100, 100_000, u32::MAX] {
        let header_bytes = changes_frame_bytes(seq, &[]);
        for id in [PIR, SensorId(16_383), FAR_PIR] {
            let one = [Change {
                id,
                value: Value::Binary(true),
            }];
            let total_bytes = changes_frame_bytes(seq, &one);
            let payload_bytes = total_bytes - header_bytes;
            println!(
                "PIR change, id {:>5}, seq {:>10}: frame {total_bytes} bytes = header+time+CRC+COBS {header_bytes} + change {payload_bytes}",
                id.0, seq
            );
            assert!(payload_bytes <= 4, "{payload_bytes} bytes for id {}", id.0);
        }
    }
}

/// `count` distinct pseudo-random ids below 60,000 (a fixed LCG, so the figures are stable).
fn site_ids(count: usize, sorted: bool) -> Vec<Change<'static>> {
    let mut state: u64 = 0x5eed;
    let mut ids: Vec<u32> = Vec::new();
    while ids.len() < count {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let id = ((state >> 33) % 60_000) as u32;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if sorted {
        ids.sort_unstable();
    }
    ids.iter()
        .enumerate()
        .map(|(n, id)| Change {
            id: SensorId(*id),
            value: Value::Binary(n % 2 == 0),
        })
        .collect()
}

#[test]
fn binary_changes_amortise_under_4_bytes_at_site_scale() {
    // 200 changes/s at a 60,000-sensor site; batches of 20 are 100 ms windows, 100 are 500 ms.
    for batch in [1, 5, 20, 100] {
        for sorted in [false, true] {
            let changes = site_ids(batch, sorted);
            let fitting = changes_fitting(&changes, TIME_MS, MAX_FRAME_BYTES);
            assert_eq!(fitting, batch);
            let total_bytes = changes_frame_bytes(12_345, &changes);
            let per_change = total_bytes as f64 / batch as f64;
            println!(
                "batch of {batch:>3} binary changes, ids {}: {total_bytes:>4} bytes on the wire, {per_change:.2} bytes/change amortised",
                if sorted { "sorted  " } else { "unsorted" }
            );
            if batch >= 20 {
                assert!(per_change <= 4.0, "{per_change} bytes per change");
            }
        }
    }
}

#[test]
fn split_batches_fit_the_frame_limit() {
    let changes = site_ids(2_000, true);
    let mut unsent = &changes[..];
    let mut frames = 0;
    while !unsent.is_empty() {
        let count = changes_fitting(unsent, TIME_MS, MAX_FRAME_BYTES);
        let (part, rest) = unsent.split_at(count);
        let bytes = wire(&Frame {
            seq: u32::MAX,
            body: Body::Snapshot(Snapshot {
                last_part: rest.is_empty(),
                batch: Batch::new(TIME_MS, part),
            }),
        });
        assert!(bytes.len() <= MAX_FRAME_BYTES);
        // Not wastefully small either: the worst-case estimate stays within a few bytes.
        if !rest.is_empty() {
            assert!(bytes.len() > MAX_FRAME_BYTES - 16, "{} bytes", bytes.len());
        }
        unsent = rest;
        frames += 1;
    }
    assert!(frames > 1);
    let entries: Vec<CatalogEntry<'_>> = (0..200)
        .map(|id| CatalogEntry {
            id: SensorId(id),
            name: "a_sensor_name_of_typical_length",
            kind: Kind::Scalar { unit: "°C" },
            role: Role::Sensor,
        })
        .collect();
    let count = catalog_entries_fitting(&entries, MAX_FRAME_BYTES);
    assert!(count > 1 && count < entries.len());
    let bytes = wire(&Frame {
        seq: u32::MAX,
        body: Body::Catalog(Catalog::new(&entries[..count])),
    });
    assert!(bytes.len() <= MAX_FRAME_BYTES);
}

/// The worked example of the README: front door PIR (id 0) goes active, frame 1 of the session,
/// at 2025-11-24 17:00:00 UTC.
const GOLDEN_PIR_FRAME: [u8; 12] = [
    0x0b, 0x0b, 0x80, 0xad, 0xbb, 0xb6, 0xab, 0x33, 0x01, 0x43, 0x8f, 0x00,
];

#[test]
fn golden_pir_change_frame() {
    let change = [Change {
        id: PIR,
        value: Value::Binary(true),
    }];
    let frame = Frame {
        seq: 1,
        body: Body::Changes(Batch::new(TIME_MS, &change)),
    };
    let bytes = wire(&frame);
    println!("PIR change frame: {bytes:02x?}");
    assert_eq!(bytes, GOLDEN_PIR_FRAME);
}

#[test]
fn every_single_bit_flip_is_rejected_and_the_next_frame_decodes() {
    let frames = every_kind();
    let mut cases = 0;
    for (damaged, next) in frames.iter().zip(frames.iter().skip(1)) {
        let good = wire(damaged);
        let next_bytes = wire(next);
        // Every byte except the delimiter (see the next test for a damaged delimiter).
        for byte in 0..good.len() - 1 {
            for bit in 0..8 {
                let mut stream = good.clone();
                stream[byte] ^= 1 << bit;
                stream.extend_from_slice(&next_bytes);
                let events = decode_stream(&stream, stream.len());
                let (last, before) = events.split_last().expect("some event");
                assert_eq!(
                    last,
                    &expected(next),
                    "byte {byte} bit {bit} of {damaged:?}"
                );
                assert!(
                    !before.is_empty(),
                    "byte {byte} bit {bit}: nothing rejected"
                );
                assert!(
                    before
                        .iter()
                        .all(|event| matches!(event, Event::Rejected(_))),
                    "byte {byte} bit {bit}: damaged frame accepted: {before:?}"
                );
                cases += 1;
            }
        }
    }
    println!("{cases} single-bit flips, all rejected");
}

#[test]
fn a_damaged_delimiter_costs_two_frames_and_the_third_decodes() {
    let frames = every_kind();
    let mut stream = wire(&frames[3]);
    let delimiter = stream.len() - 1;
    stream[delimiter] = 0x01;
    stream.extend(wire(&frames[4]));
    stream.extend(wire(&frames[5]));
    let events = decode_stream(&stream, 5);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(events[0], Event::Rejected(_)));
    assert_eq!(events[1], expected(&frames[5]));
}

#[test]
fn rejections_say_where_and_how_much() {
    let frames = every_kind();
    let first = wire(&frames[0]);
    let mut damaged = wire(&frames[4]);
    damaged[1] ^= 0x10;
    let mut stream = first.clone();
    stream.extend_from_slice(&damaged);
    stream.extend(wire(&frames[5]));
    let mut decoder = FrameDecoder::<MAX_FRAME_BYTES>::new();
    let Feed::Frame { offset, rest, .. } = decoder.feed(&stream) else {
        panic!("first frame");
    };
    assert_eq!(offset, 0);
    let Feed::Rejected {
        error,
        offset,
        skipped_bytes,
        rest,
    } = decoder.feed(rest)
    else {
        panic!("damaged frame accepted");
    };
    assert_eq!(error, FrameError::Checksum);
    assert_eq!(offset, first.len() as u64);
    assert_eq!(skipped_bytes, damaged.len() as u64);
    let Feed::Frame { offset, rest, .. } = decoder.feed(rest) else {
        panic!("frame after the damaged one");
    };
    assert_eq!(offset, (first.len() + damaged.len()) as u64);
    assert!(rest.is_empty());
}

#[test]
fn an_overlong_run_is_skipped_to_the_next_delimiter() {
    let mut stream = vec![0x55u8; MAX_FRAME_BYTES * 3];
    stream.push(DELIMITER);
    let heartbeat = &every_kind()[4];
    stream.extend(wire(heartbeat));
    let events = decode_stream(&stream, 100);
    assert_eq!(
        events,
        vec![
            Event::Rejected(FrameError::TooLong {
                limit_bytes: MAX_FRAME_BYTES
            }),
            expected(heartbeat)
        ]
    );
}

#[test]
fn a_change_for_an_unknown_sensor_is_an_error_not_a_guess() {
    let unknown = [Change {
        id: SensorId(70_000),
        value: Value::Binary(true),
    }];
    let frame = Frame {
        seq: 9,
        body: Body::Changes(Batch::new(TIME_MS, &unknown)),
    };
    assert_eq!(
        decode_stream(&wire(&frame), 64),
        vec![Event::Rejected(FrameError::UnknownSensor(SensorId(70_000)))]
    );
}

fn valid_stream() -> Vec<u8> {
    every_kind().iter().flat_map(|frame| wire(frame)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_bytes_never_panic(
        stream in proptest::collection::vec(any::<u8>(), 0..3000),
        chunk_bytes in 1usize..400,
    ) {
        let _ = decode_stream(&stream, chunk_bytes);
    }

    #[test]
    fn random_bytes_that_look_like_frames_never_panic(
        // Few delimiters and small ids: more bodies reach the frame parser.
        stream in proptest::collection::vec(prop_oneof![9 => 1u8..16, 1 => Just(0u8), 2 => any::<u8>()], 0..600),
        chunk_bytes in 1usize..64,
    ) {
        let _ = decode_stream(&stream, chunk_bytes);
    }

    #[test]
    fn a_truncated_stream_yields_exactly_its_complete_frames(
        cut in 0usize..200,
        chunk_bytes in 1usize..50,
    ) {
        let frames = every_kind();
        let stream = valid_stream();
        let cut = cut.min(stream.len());
        let mut complete = 0;
        let mut end = 0;
        for frame in &frames {
            end += wire(frame).len();
            if end <= cut {
                complete += 1;
            }
        }
        let want: Vec<Event> = frames.iter().take(complete).map(expected).collect();
        prop_assert_eq!(decode_stream(&stream[..cut], chunk_bytes), want);
    }

    #[test]
    fn garbage_before_a_stream_costs_at_most_one_frame(
        garbage in proptest::collection::vec(any::<u8>(), 0..300),
        chunk_bytes in 1usize..50,
    ) {
        let frames = every_kind();
        let mut stream = garbage;
        stream.extend(valid_stream());
        let events = decode_stream(&stream, chunk_bytes);
        let decoded: Vec<&Event> = events.iter().filter(|event| matches!(event, Event::Frame(..))).collect();
        // The garbage's tail merges with the first frame unless it ended in a delimiter.
        prop_assert!(decoded.len() >= frames.len() - 1);
        let want: Vec<Event> = frames.iter().map(expected).collect();
        for (got, want) in decoded.iter().rev().zip(want.iter().rev()) {
            prop_assert_eq!(*got, want);
        }
    }
}

/// A version 1 box's hello ("garage", seq 0), as every version 1 session starts (written by the
/// version 1 encoder): kept so a version 2 receiver is held to reading it.
const GOLDEN_V1_HELLO: [u8; 13] = [
    0x01, 0x0b, 0x01, 0x06, 0x67, 0x61, 0x72, 0x61, 0x67, 0x65, 0x56, 0x79, 0x00,
];

#[test]
fn golden_v1_hello_reads_as_version_1_without_a_catalog() {
    let events = decode_stream(&GOLDEN_V1_HELLO, 3);
    assert_eq!(
        events,
        vec![Event::Frame(0, Owned::Hello(1, "garage".into(), None))]
    );
    // And a version 1 hello is still written byte for byte as version 1 wrote it.
    let v1 = Frame {
        seq: 0,
        body: Body::Hello(Hello {
            version: 1,
            box_name: "garage",
            catalog: None,
        }),
    };
    println!("v1 hello: {:02x?}", wire(&v1));
    assert_eq!(wire(&v1), GOLDEN_V1_HELLO);
}

/// The version 2 hello of the README: box "garage", catalog of 6 entries with hash
/// 0x0123456789abcdef.
const GOLDEN_V2_HELLO: [u8; 22] = [
    0x01, 0x14, 0x02, 0x06, 0x67, 0x61, 0x72, 0x61, 0x67, 0x65, 0x06, 0xef, 0xcd, 0xab, 0x89, 0x67,
    0x45, 0x23, 0x01, 0x74, 0xe5, 0x00,
];

#[test]
fn golden_v2_hello() {
    let bytes = wire(&every_kind()[0]);
    println!("v2 hello: {bytes:02x?}");
    assert_eq!(bytes, GOLDEN_V2_HELLO);
}

/// The packed snapshot of the README: PIR active, 21.5 °C, plate "AB-123", id 3 without a
/// value, camera status 51, frame 7, last part.
const GOLDEN_V2_PACKED_SNAPSHOT: [u8; 28] = [
    0x09, 0x3e, 0x03, 0x80, 0xad, 0xbb, 0xb6, 0xab, 0x33, 0x04, 0x06, 0x27, 0x01, 0x01, 0x0d, 0xac,
    0x41, 0x06, 0x41, 0x42, 0x2d, 0x31, 0x32, 0x33, 0x33, 0xcb, 0xb3, 0x00,
];

#[test]
fn golden_v2_packed_snapshot() {
    let bytes = wire(&every_kind()[6 + 1]);
    println!("v2 packed snapshot: {bytes:02x?}");
    assert_eq!(bytes, GOLDEN_V2_PACKED_SNAPSHOT);
}

/// Every sensor of a 60,000-binary + 2,000-scalar site, as a snapshot holds them.
fn site_snapshot() -> Vec<Change<'static>> {
    (0..62_000u32)
        .map(|id| Change {
            id: SensorId(id),
            value: if id < 60_000 {
                Value::Binary(id % 10 == 0)
            } else {
                Value::Scalar(20.0 + (id % 7) as f32)
            },
        })
        .collect()
}

fn site_kind(id: SensorId) -> Option<ValueKind> {
    match id.0 {
        0..60_000 => Some(ValueKind::Binary),
        60_000..62_000 => Some(ValueKind::Scalar),
        _ => None,
    }
}

/// Splits `values` into packed parts as a sender does; returns the wire bytes.
fn packed_parts(values: &[Change<'_>]) -> Vec<Vec<u8>> {
    let mut parts = Vec::new();
    let mut unsent = values;
    loop {
        let count = packed_snapshot_fitting(unsent, TIME_MS, MAX_FRAME_BYTES);
        let (part, rest) = unsent.split_at(count);
        parts.push(wire(&Frame {
            seq: u32::MAX,
            body: Body::PackedSnapshot(PackedSnapshot::new(rest.is_empty(), TIME_MS, part)),
        }));
        if rest.is_empty() {
            return parts;
        }
        unsent = rest;
    }
}

#[test]
fn a_site_snapshot_packs_binary_values_as_bits() {
    let values = site_snapshot();
    let parts = packed_parts(&values);
    let packed: usize = parts.iter().map(Vec::len).sum();
    let mut as_changes = 0;
    let mut unsent = &values[..];
    while !unsent.is_empty() {
        let count = changes_fitting(unsent, TIME_MS, MAX_FRAME_BYTES);
        let (part, rest) = unsent.split_at(count);
        as_changes += wire(&Frame {
            seq: u32::MAX,
            body: Body::Snapshot(Snapshot {
                last_part: rest.is_empty(),
                batch: Batch::new(TIME_MS, part),
            }),
        })
        .len();
        unsent = rest;
    }
    println!(
        "snapshot of 60,000 binary + 2,000 scalar sensors: {packed} B in {} packed parts, {as_changes} B as version 1 snapshot changes",
        parts.len()
    );
    // 7,500 bytes of bits and 8,000 of scalars, plus frame overhead.
    assert!(packed < 17_000, "{packed}");
    let mut seen = 0u32;
    for bytes in &parts {
        assert!(bytes.len() <= MAX_FRAME_BYTES);
        let mut decoder = FrameDecoder::<MAX_FRAME_BYTES>::new();
        let Feed::Frame { frame, .. } = decoder.feed(bytes) else {
            panic!("part does not decode");
        };
        let Body::PackedSnapshot(part) = frame.body else {
            panic!("not a packed part");
        };
        for change in part.values(site_kind) {
            let change = change.expect("values read");
            assert_eq!(change, values[seen as usize]);
            seen += 1;
        }
    }
    assert_eq!(seen, 62_000);
}

#[test]
fn packed_parts_with_gaps_carry_presence_and_skip_sensors_without_a_value() {
    // Every third sensor has no value: the parts need presence bitmaps.
    let values: Vec<Change<'static>> = site_snapshot()
        .into_iter()
        .filter(|c| c.id.0 % 3 != 1)
        .collect();
    let mut seen = Vec::new();
    for bytes in packed_parts(&values) {
        let mut decoder = FrameDecoder::<MAX_FRAME_BYTES>::new();
        let Feed::Frame { frame, .. } = decoder.feed(&bytes) else {
            panic!("part does not decode");
        };
        let Body::PackedSnapshot(part) = frame.body else {
            panic!("not a packed part");
        };
        seen.extend(
            part.values(site_kind)
                .map(|c| owned_change(c).expect("values read")),
        );
    }
    let want: Vec<(u32, OwnedValue)> = values
        .iter()
        .map(|c| owned_change(Ok(*c)).expect("owned"))
        .collect();
    assert_eq!(seen, want);
}

#[test]
fn a_packed_value_for_an_unknown_sensor_is_an_error() {
    let frame = &every_kind()[7];
    let bytes = wire(frame);
    let mut decoder = FrameDecoder::<MAX_FRAME_BYTES>::new();
    let Feed::Frame { frame, .. } = decoder.feed(&bytes) else {
        panic!("decodes");
    };
    let Body::PackedSnapshot(part) = frame.body else {
        panic!("packed");
    };
    // The receiver's catalog lacks the status sensor (id 5).
    let missing_status = |id: SensorId| if id == STATUS { None } else { kind_of(id) };
    let values: Vec<Result<Change<'_>, FrameError>> = part.values(missing_status).collect();
    assert_eq!(
        values,
        vec![Err(FrameError::UnknownSensor(STATUS))],
        "the error comes first: nothing is applied from a part that cannot be read"
    );
    drop(values);
}

#[test]
fn a_version_2_hello_without_a_catalog_reads_as_none() {
    let frame = Frame {
        seq: 0,
        body: Body::Hello(Hello {
            version: PROTOCOL_VERSION,
            box_name: "nvrctl",
            catalog: None,
        }),
    };
    assert_eq!(
        decode_stream(&wire(&frame), 64),
        vec![Event::Frame(
            0,
            Owned::Hello(PROTOCOL_VERSION, "nvrctl".into(), None)
        )]
    );
}
