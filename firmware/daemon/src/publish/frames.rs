//! Wire frames for one publishing session, and the catalog's id and pack shared by sessions.
//!
//! Owns a session's sequence counter. Receives the bus's catalog, snapshots and changes (owned
//! types from [`crate::state`]); emits encoded frames (COBS + CRC, delimiter included) appended
//! to a caller's buffer. Splits catalogs, catalog packs and snapshots into parts of at most
//! [`MAX_FRAME_BYTES`]; snapshots go out packed (binary values as bits, protocol version 2).
//! Shapes a batch of changes: the latest value of a non-binary sensor wins, every binary edge
//! stays, in order, and the batch is sorted by id (stable, so a sensor's edges keep their order)
//! because close ids cost fewer bytes. [`CatalogPacks`] computes a catalog's [`CatalogId`] and
//! compressed pack once per catalog length and hands the same bytes to every session. No I/O.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub use edgenvr_proto::MAX_FRAME_BYTES;
use edgenvr_proto::{
    catalog_entries_fitting, catalog_pack_part_capacity, changes_fitting, encode,
    pack::encode_catalog_pack, packed_snapshot_fitting, Batch, Body, Catalog, CatalogEntry,
    CatalogHasher, CatalogId, CatalogPackPart, Change, Frame, Hello, Kind, PackedSnapshot,
    SensorId, PROTOCOL_VERSION,
};

use crate::state::{SensorChange, SensorInfo, SensorKind, SensorValue};

/// Encodes the frames of one session (one TCP connection, one MQTT stream).
pub struct SessionEncoder {
    next_seq: u32,
    scratch: Vec<u8>,
}

impl Default for SessionEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// The wire view of a registered sensor.
pub fn catalog_entry(info: &SensorInfo) -> CatalogEntry<'_> {
    CatalogEntry {
        id: info.id,
        name: &info.name,
        kind: match &info.kind {
            SensorKind::Binary => Kind::Binary,
            SensorKind::Scalar { unit } => Kind::Scalar { unit },
            SensorKind::Complex => Kind::Complex,
            SensorKind::Unsigned { unit } => Kind::Unsigned { unit },
        },
        role: info.role,
    }
}

/// The id of the first `entries` sensors of `sensors` (all of them when `entries` is larger).
pub fn catalog_id(sensors: &[Arc<SensorInfo>], entries: usize) -> CatalogId {
    let mut hasher = CatalogHasher::new();
    for info in sensors.iter().take(entries) {
        hasher.add(&catalog_entry(info));
    }
    hasher.finish()
}

/// A catalog's id and its whole pack.
#[derive(Debug)]
pub struct CatalogPack {
    /// The catalog's id.
    pub id: CatalogId,
    /// The compressed catalog, base 0.
    pub pack: Vec<u8>,
}

/// The latest catalog's [`CatalogPack`], computed once and shared by every session: packing a
/// site's catalog takes tens of milliseconds, and a thousand reconnecting clients must not
/// each pay it. Sensors are only ever added, so the catalog's length names it.
#[derive(Debug, Default, Clone)]
pub struct CatalogPacks {
    latest: Arc<Mutex<Option<Arc<CatalogPack>>>>,
}

impl CatalogPacks {
    /// The pack of `sensors` (the whole catalog, in id order).
    pub fn get(&self, sensors: &[Arc<SensorInfo>]) -> Arc<CatalogPack> {
        let mut latest = self
            .latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(pack) = latest.as_ref() {
            if pack.id.entries as usize == sensors.len() {
                return pack.clone();
            }
        }
        let entries: Vec<CatalogEntry<'_>> = sensors.iter().map(|s| catalog_entry(s)).collect();
        let pack = Arc::new(CatalogPack {
            id: catalog_id(sensors, sensors.len()),
            pack: encode_catalog_pack(0, &entries),
        });
        *latest = Some(pack.clone());
        pack
    }
}

impl SessionEncoder {
    /// A session whose first frame gets sequence number 0.
    pub fn new() -> Self {
        SessionEncoder {
            next_seq: 0,
            scratch: vec![0; MAX_FRAME_BYTES],
        }
    }

    fn push(&mut self, body: Body<'_>, out: &mut Vec<u8>) {
        let frame = Frame {
            seq: self.next_seq,
            body,
        };
        match encode(&frame, &mut self.scratch) {
            Ok(bytes) => {
                out.extend_from_slice(bytes);
                self.next_seq = self.next_seq.wrapping_add(1);
            }
            // Only an entry or value larger than a whole frame gets here (a complex value of
            // over 1 KiB, a name of over 1 KiB): it cannot be sent, and the rest still can.
            Err(error) => tracing::warn!(%error, seq = frame.seq, "state frame dropped"),
        }
    }

    /// Appends the hello frame naming the session's catalog.
    pub fn hello(&mut self, box_name: &str, catalog: Option<CatalogId>, out: &mut Vec<u8>) {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            box_name,
            catalog,
        };
        self.push(Body::Hello(hello), out);
    }

    /// Appends catalog frames for `sensors` (none if it is empty): entries as they are, for the
    /// few sensors registered during a session.
    pub fn catalog(&mut self, sensors: &[Arc<SensorInfo>], out: &mut Vec<u8>) {
        let entries: Vec<CatalogEntry<'_>> = sensors.iter().map(|s| catalog_entry(s)).collect();
        let mut unsent = &entries[..];
        while !unsent.is_empty() {
            let count = catalog_entries_fitting(unsent, MAX_FRAME_BYTES);
            let (part, rest) = unsent.split_at(count);
            self.push(Body::Catalog(Catalog::new(part)), out);
            unsent = rest;
        }
    }

    /// Appends the catalog pack `pack` as parts, at most `max_parts` of them from byte
    /// `*sent` on; advances `*sent`. Returns `true` once the last part is out. (A caller with a
    /// slow socket writes a few parts at a time, so its buffer stays small.)
    pub fn catalog_pack(
        &mut self,
        pack: &[u8],
        sent: &mut usize,
        max_parts: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        let capacity = catalog_pack_part_capacity(MAX_FRAME_BYTES);
        for _ in 0..max_parts {
            let rest = pack.get(*sent..).unwrap_or_default();
            let (bytes, after) = rest.split_at(capacity.min(rest.len()));
            let last_part = after.is_empty();
            self.push(Body::CatalogPack(CatalogPackPart { last_part, bytes }), out);
            *sent += bytes.len();
            if last_part {
                return true;
            }
        }
        false
    }

    /// Appends a packed snapshot of `values` (sorted by id, one per sensor) taken at
    /// `time_ms`, in as many parts as it needs; an empty snapshot is one empty part.
    pub fn snapshot(&mut self, time_ms: u64, values: &[SensorChange], out: &mut Vec<u8>) {
        let changes: Vec<Change<'_>> = values.iter().map(wire_change).collect();
        let mut unsent = &changes[..];
        loop {
            let count = packed_snapshot_fitting(unsent, time_ms, MAX_FRAME_BYTES);
            let (part, rest) = unsent.split_at(count);
            let snapshot = PackedSnapshot::new(rest.is_empty(), time_ms, part);
            self.push(Body::PackedSnapshot(snapshot), out);
            if rest.is_empty() {
                return;
            }
            unsent = rest;
        }
    }

    /// Appends changes frames for `changes` (in the order they happened); nothing if empty.
    pub fn changes(&mut self, changes: &[SensorChange], out: &mut Vec<u8>) {
        let Some(time_ms) = changes.iter().map(|c| c.time_ms).max() else {
            return;
        };
        let batch = shape_batch(changes);
        let mut unsent = &batch[..];
        while !unsent.is_empty() {
            let count = changes_fitting(unsent, time_ms, MAX_FRAME_BYTES);
            let (part, rest) = unsent.split_at(count);
            self.push(Body::Changes(Batch::new(time_ms, part)), out);
            unsent = rest;
        }
    }

    /// Leaves a sequence number unused, so receivers see a gap: frames they should have had
    /// were never sent (the publisher lost changes and will resend state whole).
    pub fn skip_frame(&mut self) {
        self.next_seq = self.next_seq.wrapping_add(1);
    }

    /// Appends a heartbeat.
    pub fn heartbeat(&mut self, time_ms: u64, out: &mut Vec<u8>) {
        self.push(Body::Heartbeat { time_ms }, out);
    }
}

fn wire_change(change: &SensorChange) -> Change<'_> {
    Change {
        id: change.id,
        value: change.value.as_wire(),
    }
}

/// Latest value wins except for binary sensors, whose every edge stays; then sorted by id.
fn shape_batch(changes: &[SensorChange]) -> Vec<Change<'_>> {
    let mut seen_later: HashSet<SensorId> = HashSet::new();
    let mut kept: Vec<Change<'_>> = changes
        .iter()
        .rev()
        .filter(|change| {
            matches!(change.value, SensorValue::Binary(_)) || seen_later.insert(change.id)
        })
        .map(wire_change)
        .collect();
    kept.reverse();
    kept.sort_by_key(|change| change.id);
    kept
}

#[cfg(test)]
mod tests {
    use edgenvr_proto::{Feed, FrameDecoder, Role, Value, ValueKind};

    use super::*;

    fn change(id: u32, value: SensorValue) -> SensorChange {
        SensorChange {
            id: SensorId(id),
            value,
            time_ms: 1_000 + u64::from(id),
        }
    }

    #[test]
    fn a_batch_keeps_every_edge_and_the_latest_scalar() {
        let batch = [
            change(5, SensorValue::Binary(true)),
            change(1, SensorValue::Scalar(1.0)),
            change(5, SensorValue::Binary(false)),
            change(1, SensorValue::Scalar(2.0)),
            change(0, SensorValue::Binary(true)),
        ];
        let shaped = shape_batch(&batch);
        let got: Vec<(u32, Value<'_>)> = shaped.iter().map(|c| (c.id.0, c.value)).collect();
        assert_eq!(
            got,
            [
                (0, Value::Binary(true)),
                (1, Value::Scalar(2.0)),
                (5, Value::Binary(true)),
                (5, Value::Binary(false)),
            ]
        );
    }

    #[test]
    fn a_large_catalog_pack_and_snapshot_are_split_into_parts_that_decode() {
        // 20,000 binary values are 2,500 bytes of bits: three packed parts.
        let catalog: Vec<Arc<SensorInfo>> = (0..20_000)
            .map(|id| {
                Arc::new(SensorInfo {
                    id: SensorId(id),
                    name: format!("pir_{id}"),
                    kind: SensorKind::Binary,
                    role: Role::Sensor,
                })
            })
            .collect();
        let values: Vec<SensorChange> = (0..20_000)
            .map(|id| change(id, SensorValue::Binary(id % 3 == 0)))
            .collect();
        let packs = CatalogPacks::default();
        let pack = packs.get(&catalog);
        assert!(Arc::ptr_eq(&pack, &packs.get(&catalog)), "made once");
        let mut session = SessionEncoder::new();
        let mut out = Vec::new();
        session.hello("site", Some(pack.id), &mut out);
        let mut sent = 0;
        // Two parts at a time, as a slow socket takes them.
        while !session.catalog_pack(&pack.pack, &mut sent, 2, &mut out) {}
        session.snapshot(7, &values, &mut out);

        let mut decoder = FrameDecoder::<MAX_FRAME_BYTES>::new();
        let mut input = &out[..];
        let (mut next_seq, mut seen, mut last_parts) = (0, 0, 0);
        let (mut pack_bytes, mut hello_id) = (Vec::new(), None);
        loop {
            match decoder.feed(input) {
                Feed::NeedMore => break,
                Feed::Frame { frame, rest, .. } => {
                    assert_eq!(frame.seq, next_seq);
                    next_seq += 1;
                    match frame.body {
                        Body::Hello(hello) => hello_id = hello.catalog,
                        Body::CatalogPack(part) => pack_bytes.extend_from_slice(part.bytes),
                        Body::PackedSnapshot(part) => {
                            last_parts += usize::from(part.last_part);
                            for change in part.values(|_| Some(ValueKind::Binary)) {
                                let change = change.unwrap();
                                assert_eq!(change.value, Value::Binary(change.id.0 % 3 == 0));
                                seen += 1;
                            }
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                    input = rest;
                }
                Feed::Rejected { error, .. } => panic!("{error}"),
            }
        }
        let mut hasher = edgenvr_proto::CatalogHasher::new();
        edgenvr_proto::pack::decode_catalog_pack(&pack_bytes, 1 << 24, |entry| hasher.add(&entry))
            .unwrap();
        assert_eq!(
            Some(hasher.finish()),
            hello_id,
            "the pack is the catalog the hello names"
        );
        assert_eq!((seen, last_parts), (20_000, 1));
        assert!(next_seq > 3, "split into several frames");
    }

    #[test]
    fn catalog_frames_still_carry_sensors_registered_later() {
        let late = [Arc::new(SensorInfo {
            id: SensorId(7),
            name: "late_counter".into(),
            kind: SensorKind::Unsigned {
                unit: "GOPs".into(),
            },
            role: Role::Counter,
        })];
        let mut session = SessionEncoder::new();
        let mut out = Vec::new();
        session.catalog(&late, &mut out);
        let mut decoder = FrameDecoder::<MAX_FRAME_BYTES>::new();
        let Feed::Frame { frame, .. } = decoder.feed(&out) else {
            panic!("decodes");
        };
        let Body::Catalog(catalog) = frame.body else {
            panic!("a catalog frame");
        };
        let entry = catalog.entries().next().unwrap();
        assert_eq!(
            (entry.id, entry.name, entry.role),
            (SensorId(7), "late_counter", Role::Counter)
        );
    }
}
