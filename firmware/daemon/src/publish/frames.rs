//! Wire frames for one publishing session.
//!
//! Owns a session's sequence counter. Receives the bus's catalog, snapshots and changes (owned
//! types from [`crate::state`]); emits encoded frames (COBS + CRC, delimiter included) appended
//! to a caller's buffer. Splits catalogs and snapshots into parts of at most
//! [`MAX_FRAME_BYTES`], and shapes a batch of changes: the latest value of a scalar or complex
//! sensor wins, every binary edge stays, in order, and the batch is sorted by id (stable, so a
//! sensor's edges keep their order) because close ids cost fewer bytes. No I/O.

use std::collections::HashSet;
use std::sync::Arc;

pub use edgenvr_proto::MAX_FRAME_BYTES;
use edgenvr_proto::{
    catalog_entries_fitting, changes_fitting, encode, Batch, Body, Catalog, CatalogEntry, Change,
    Frame, Hello, Kind, SensorId, Snapshot, PROTOCOL_VERSION,
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

    /// Appends the hello frame.
    pub fn hello(&mut self, box_name: &str, out: &mut Vec<u8>) {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            box_name,
        };
        self.push(Body::Hello(hello), out);
    }

    /// Appends catalog frames for `sensors` (none if it is empty).
    pub fn catalog(&mut self, sensors: &[Arc<SensorInfo>], out: &mut Vec<u8>) {
        let entries: Vec<CatalogEntry<'_>> = sensors
            .iter()
            .map(|info| CatalogEntry {
                id: info.id,
                name: &info.name,
                kind: match &info.kind {
                    SensorKind::Binary => Kind::Binary,
                    SensorKind::Scalar { unit } => Kind::Scalar { unit },
                    SensorKind::Complex => Kind::Complex,
                },
                role: info.role,
            })
            .collect();
        let mut unsent = &entries[..];
        while !unsent.is_empty() {
            let count = catalog_entries_fitting(unsent, MAX_FRAME_BYTES);
            let (part, rest) = unsent.split_at(count);
            self.push(Body::Catalog(Catalog::new(part)), out);
            unsent = rest;
        }
    }

    /// Appends a snapshot of `values` (sorted by id) taken at `time_ms`, in as many parts as it
    /// needs; an empty snapshot is one empty part.
    pub fn snapshot(&mut self, time_ms: u64, values: &[SensorChange], out: &mut Vec<u8>) {
        let changes: Vec<Change<'_>> = values.iter().map(wire_change).collect();
        let mut unsent = &changes[..];
        loop {
            let count = changes_fitting(unsent, time_ms, MAX_FRAME_BYTES);
            let (part, rest) = unsent.split_at(count);
            let snapshot = Snapshot {
                last_part: rest.is_empty(),
                batch: Batch::new(time_ms, part),
            };
            self.push(Body::Snapshot(snapshot), out);
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
    fn a_large_snapshot_is_split_into_parts_that_decode() {
        let catalog: Vec<Arc<SensorInfo>> = (0..5_000)
            .map(|id| {
                Arc::new(SensorInfo {
                    id: SensorId(id),
                    name: format!("pir_{id}"),
                    kind: SensorKind::Binary,
                    role: Role::Sensor,
                })
            })
            .collect();
        let values: Vec<SensorChange> = (0..5_000)
            .map(|id| change(id, SensorValue::Binary(id % 3 == 0)))
            .collect();
        let mut session = SessionEncoder::new();
        let mut out = Vec::new();
        session.hello("site", &mut out);
        session.catalog(&catalog, &mut out);
        session.snapshot(7, &values, &mut out);

        let mut decoder = FrameDecoder::<MAX_FRAME_BYTES>::new();
        let mut input = &out[..];
        let (mut next_seq, mut entries, mut seen, mut last_parts) = (0, 0, 0, 0);
        loop {
            match decoder.feed(input) {
                Feed::NeedMore => break,
                Feed::Frame { frame, rest, .. } => {
                    assert_eq!(frame.seq, next_seq);
                    next_seq += 1;
                    match frame.body {
                        Body::Catalog(catalog) => entries += catalog.entries().count(),
                        Body::Snapshot(part) => {
                            last_parts += usize::from(part.last_part);
                            for change in part.batch.changes(|_| Some(ValueKind::Binary)) {
                                let change = change.unwrap();
                                assert_eq!(change.value, Value::Binary(change.id.0 % 3 == 0));
                                seen += 1;
                            }
                        }
                        _ => {}
                    }
                    input = rest;
                }
                Feed::Rejected { error, .. } => panic!("{error}"),
            }
        }
        assert_eq!((entries, seen, last_parts), (5_000, 5_000, 1));
        assert!(next_seq > 3, "split into several frames");
    }
}
