//! A receiver's picture of one box: catalog and current values, built by applying frames.
//!
//! Owns the catalog (id → name, kind, role) and each sensor's last value. Receives decoded
//! frames ([`StateView::apply`]); emits the updates each frame made, and refuses a frame whose
//! sequence number is not the next one (the caller must resynchronise). Also renders frames and
//! values as JSON for `nvrctl decode` and `--json`. No I/O.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use edgenvr_proto::{
    Batch, Body, CameraRole, Frame, FrameError, Kind, Role, SensorId, Value, ValueKind,
};
use serde_json::{json, Value as Json};

/// A sensor's kind as the catalog said.
#[derive(Clone, Debug, PartialEq)]
pub enum SensorKind {
    /// On/off.
    Binary,
    /// A number in `unit`.
    Scalar {
        /// Unit symbol, may be empty.
        unit: String,
    },
    /// Opaque bytes.
    Complex,
}

/// A value, owned.
#[derive(Clone, Debug, PartialEq)]
pub enum SensorValue {
    /// Binary level.
    Binary(bool),
    /// Scalar reading.
    Scalar(f32),
    /// Complex bytes.
    Complex(Vec<u8>),
}

/// One catalog line and its current value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sensor {
    /// Wire id.
    pub id: u32,
    /// Name on the box.
    pub name: String,
    /// Kind.
    pub kind: SensorKind,
    /// Role.
    pub role: Role,
    /// Last value and when it was taken (Unix ms), once known.
    pub value: Option<(SensorValue, u64)>,
}

/// A value a frame set.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    /// Wire id.
    pub id: u32,
    /// The new value.
    pub value: SensorValue,
    /// When it was taken, Unix ms.
    pub time_ms: u64,
    /// From a snapshot (`true`) or a change (`false`).
    pub from_snapshot: bool,
}

/// Why a frame could not be applied.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ViewError {
    /// Frames were lost between the last one and this.
    #[error("sequence gap: expected frame {expected}, got {got}")]
    Gap {
        /// The next sequence number.
        expected: u32,
        /// The one received.
        got: u32,
    },
    /// A change could not be read (e.g. a sensor missing from the catalog).
    #[error("frame {seq}: {error}")]
    Frame {
        /// Its sequence number.
        seq: u32,
        /// What went wrong.
        error: FrameError,
    },
}

/// Catalog and values of one box, as received.
#[derive(Clone, Debug, Default)]
pub struct StateView {
    /// From the hello frame.
    pub box_name: Option<String>,
    /// Protocol version from the hello frame.
    pub version: Option<u16>,
    /// By id.
    pub sensors: BTreeMap<u32, Sensor>,
    /// A snapshot's last part arrived.
    pub snapshot_complete: bool,
    /// Time of the latest frame that carried one, Unix ms.
    pub time_ms: Option<u64>,
    next_seq: Option<u32>,
}

impl StateView {
    /// The kind lookup for reading batches.
    pub fn kind_of(&self, id: SensorId) -> Option<ValueKind> {
        self.sensors.get(&id.0).map(|sensor| match sensor.kind {
            SensorKind::Binary => ValueKind::Binary,
            SensorKind::Scalar { .. } => ValueKind::Scalar,
            SensorKind::Complex => ValueKind::Complex,
        })
    }

    /// Applies one frame; returns the values it set. A frame out of sequence is refused.
    pub fn apply(&mut self, frame: &Frame<'_>) -> Result<Vec<Update>, ViewError> {
        if let Some(expected) = self.next_seq {
            if frame.seq != expected {
                return Err(ViewError::Gap {
                    expected,
                    got: frame.seq,
                });
            }
        }
        self.next_seq = Some(frame.seq.wrapping_add(1));
        let seq = frame.seq;
        match &frame.body {
            Body::Hello(hello) => {
                self.box_name = Some(hello.box_name.to_string());
                self.version = Some(hello.version);
                Ok(Vec::new())
            }
            Body::Catalog(catalog) => {
                for entry in catalog.entries() {
                    let value = self.sensors.remove(&entry.id.0).and_then(|old| old.value);
                    let sensor = Sensor {
                        id: entry.id.0,
                        name: entry.name.to_string(),
                        kind: owned_kind(&entry.kind),
                        role: entry.role,
                        value,
                    };
                    self.sensors.insert(entry.id.0, sensor);
                }
                Ok(Vec::new())
            }
            Body::Snapshot(snapshot) => {
                let updates = self.apply_batch(seq, &snapshot.batch, true)?;
                self.snapshot_complete |= snapshot.last_part;
                Ok(updates)
            }
            Body::Changes(batch) => self.apply_batch(seq, batch, false),
            Body::Heartbeat { time_ms } => {
                self.time_ms = Some(*time_ms);
                Ok(Vec::new())
            }
        }
    }

    fn apply_batch(
        &mut self,
        seq: u32,
        batch: &Batch<'_>,
        from_snapshot: bool,
    ) -> Result<Vec<Update>, ViewError> {
        let mut updates = Vec::new();
        for change in batch.changes(|id| self.kind_of(id)) {
            let change = change.map_err(|error| ViewError::Frame { seq, error })?;
            updates.push(Update {
                id: change.id.0,
                value: owned_value(&change.value),
                time_ms: batch.time_ms,
                from_snapshot,
            });
        }
        for update in &updates {
            if let Some(sensor) = self.sensors.get_mut(&update.id) {
                sensor.value = Some((update.value.clone(), update.time_ms));
            }
        }
        self.time_ms = Some(batch.time_ms);
        Ok(updates)
    }

    /// The sequence number the next frame must have (`None`: any, as at the start of a session).
    pub fn expected_seq(&self) -> Option<u32> {
        self.next_seq
    }

    /// Sets the sequence number the next frame must have: `None` starts a new session (an MQTT
    /// retained message carries its own session), `Some` continues one.
    pub fn expect_seq(&mut self, next: Option<u32>) {
        self.next_seq = next;
    }

    /// The name of sensor `id`, or `#id` if the catalog does not have it.
    pub fn name_of(&self, id: u32) -> String {
        self.sensors
            .get(&id)
            .map_or_else(|| format!("#{id}"), |sensor| sensor.name.clone())
    }

    /// The whole state as one JSON object (`nvrctl state --json`).
    pub fn to_json(&self) -> Json {
        let sensors: Vec<Json> = self
            .sensors
            .values()
            .map(|sensor| {
                let mut object = json!({
                    "id": sensor.id,
                    "name": sensor.name,
                    "kind": kind_name(&sensor.kind),
                    "role": role_name(sensor.role),
                    "value": sensor.value.as_ref().map_or(Json::Null, |(value, _)| value_json(value)),
                    "time": sensor.value.as_ref().map_or(Json::Null, |(_, time_ms)| json!(rfc3339(*time_ms))),
                });
                if let SensorKind::Scalar { unit } = &sensor.kind {
                    object["unit"] = json!(unit);
                }
                object
            })
            .collect();
        json!({
            "box": self.box_name,
            "time": self.time_ms.map(rfc3339),
            "sensors": sensors,
        })
    }

    /// One update as a JSON line (`nvrctl watch --json`).
    pub fn update_json(&self, update: &Update) -> Json {
        json!({
            "event": if update.from_snapshot { "snapshot" } else { "change" },
            "box": self.box_name,
            "time": rfc3339(update.time_ms),
            "sensor": self.name_of(update.id),
            "id": update.id,
            "value": value_json(&update.value),
        })
    }
}

fn owned_kind(kind: &Kind<'_>) -> SensorKind {
    match kind {
        Kind::Binary => SensorKind::Binary,
        Kind::Scalar { unit } => SensorKind::Scalar {
            unit: unit.to_string(),
        },
        Kind::Complex => SensorKind::Complex,
    }
}

fn owned_value(value: &Value<'_>) -> SensorValue {
    match value {
        Value::Binary(level) => SensorValue::Binary(*level),
        Value::Scalar(reading) => SensorValue::Scalar(*reading),
        Value::Complex(bytes) => SensorValue::Complex(bytes.to_vec()),
    }
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(time_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(time_ms)).to_string()
}

/// `binary`, `scalar`, `complex`.
pub fn kind_name(kind: &SensorKind) -> &'static str {
    match kind {
        SensorKind::Binary => "binary",
        SensorKind::Scalar { .. } => "scalar",
        SensorKind::Complex => "complex",
    }
}

/// `sensor`, `output`, `health`, `camera:online`, ...
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Sensor => "sensor",
        Role::Output => "output",
        Role::Health => "health",
        Role::Camera(CameraRole::Online) => "camera:online",
        Role::Camera(CameraRole::Recording) => "camera:recording",
        Role::Camera(CameraRole::Event) => "camera:event",
        Role::Camera(CameraRole::Bitrate) => "camera:bitrate",
    }
}

/// A value as JSON: a bool, a number (null for NaN), or hex for complex bytes.
pub fn value_json(value: &SensorValue) -> Json {
    match value {
        SensorValue::Binary(level) => json!(level),
        SensorValue::Scalar(reading) => {
            serde_json::Number::from_f64(f64::from(*reading)).map_or(Json::Null, Json::Number)
        }
        SensorValue::Complex(bytes) => json!(hex(bytes)),
    }
}

/// A value for a table cell.
pub fn value_text(value: &SensorValue, kind: &SensorKind) -> String {
    match (value, kind) {
        (SensorValue::Binary(true), _) => "active".to_string(),
        (SensorValue::Binary(false), _) => "idle".to_string(),
        (SensorValue::Scalar(reading), SensorKind::Scalar { unit }) => format!("{reading} {unit}"),
        (SensorValue::Scalar(reading), _) => reading.to_string(),
        (SensorValue::Complex(bytes), _) => hex(bytes),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A frame as JSON for `nvrctl decode`, read with the catalog in `view` (which it then updates).
/// Returns the JSON and, if the frame could not be fully read or applied, the reason.
pub fn frame_json(
    view: &mut StateView,
    frame: &Frame<'_>,
    offset: u64,
) -> (Json, Option<ViewError>) {
    let mut object = json!({ "offset": offset, "seq": frame.seq });
    match &frame.body {
        Body::Hello(hello) => {
            object["frame"] = json!("hello");
            object["version"] = json!(hello.version);
            object["box"] = json!(hello.box_name);
        }
        Body::Catalog(catalog) => {
            object["frame"] = json!("catalog");
            let entries: Vec<Json> = catalog
                .entries()
                .map(|entry| {
                    let kind = owned_kind(&entry.kind);
                    let mut line = json!({
                        "id": entry.id.0,
                        "name": entry.name,
                        "kind": kind_name(&kind),
                        "role": role_name(entry.role),
                    });
                    if let SensorKind::Scalar { unit } = &kind {
                        line["unit"] = json!(unit);
                    }
                    line
                })
                .collect();
            object["sensors"] = json!(entries);
        }
        Body::Snapshot(snapshot) => {
            object["frame"] = json!("snapshot");
            object["last_part"] = json!(snapshot.last_part);
            object["time"] = json!(rfc3339(snapshot.batch.time_ms));
        }
        Body::Changes(batch) => {
            object["frame"] = json!("changes");
            object["time"] = json!(rfc3339(batch.time_ms));
        }
        Body::Heartbeat { time_ms } => {
            object["frame"] = json!("heartbeat");
            object["time"] = json!(rfc3339(*time_ms));
        }
    }
    // Changes are listed as far as they can be read, even when a later one cannot.
    let batch = match &frame.body {
        Body::Snapshot(snapshot) => Some(snapshot.batch),
        Body::Changes(batch) => Some(*batch),
        _ => None,
    };
    if let Some(batch) = batch {
        let mut values = Vec::new();
        for change in batch.changes(|id| view.kind_of(id)) {
            match change {
                Ok(change) => values.push(json!({
                    "id": change.id.0,
                    "sensor": view.name_of(change.id.0),
                    "value": value_json(&owned_value(&change.value)),
                })),
                Err(error) => {
                    object["error"] = json!(error.to_string());
                    break;
                }
            }
        }
        object["values"] = json!(values);
    }
    let problem = view.apply(frame).err();
    if let Some(ViewError::Gap { expected, got }) = &problem {
        object["warning"] = json!(format!(
            "sequence gap: expected frame {expected}, got {got}"
        ));
        // A capture may start mid-stream or skip frames: reported, then read on from here.
        view.next_seq = None;
        let _ = view.apply(frame);
    }
    (object, problem)
}

#[cfg(test)]
mod tests {
    use edgenvr_proto::{encode, Catalog, CatalogEntry, Change, Feed, FrameDecoder, Hello};

    use super::*;

    fn decode_all(bytes: &[u8], view: &mut StateView) -> Vec<Result<Vec<Update>, ViewError>> {
        let mut decoder: Box<FrameDecoder> = Box::default();
        let mut input = bytes;
        let mut results = Vec::new();
        while let Feed::Frame { frame, rest, .. } = decoder.feed(input) {
            results.push(view.apply(&frame));
            input = rest;
        }
        results
    }

    fn wire(frames: &[Frame<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for frame in frames {
            let mut buf = [0u8; 1024];
            out.extend_from_slice(encode(frame, &mut buf).unwrap());
        }
        out
    }

    #[test]
    fn a_gap_is_refused() {
        let entries = [CatalogEntry {
            id: SensorId(0),
            name: "pir",
            kind: Kind::Binary,
            role: Role::Sensor,
        }];
        let change = [Change {
            id: SensorId(0),
            value: Value::Binary(true),
        }];
        let bytes = wire(&[
            Frame {
                seq: 0,
                body: Body::Hello(Hello {
                    version: 1,
                    box_name: "b",
                }),
            },
            Frame {
                seq: 1,
                body: Body::Catalog(Catalog::new(&entries)),
            },
            Frame {
                seq: 3,
                body: Body::Changes(Batch::new(5, &change)),
            },
        ]);
        let mut view = StateView::default();
        let results = decode_all(&bytes, &mut view);
        assert_eq!(
            results.last(),
            Some(&Err(ViewError::Gap {
                expected: 2,
                got: 3
            }))
        );
        assert_eq!(view.sensors[&0].value, None);
    }
}
