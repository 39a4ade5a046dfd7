//! A receiver's picture of one box: catalog and current values, built by applying frames.
//!
//! Owns the catalog (id → name, kind, role), each sensor's last value, and the catalog pack
//! being received. Receives decoded frames ([`StateView::apply`]) of protocol version 1 or 2;
//! emits the updates each frame made, and refuses a frame whose sequence number is not the next
//! one (the caller must resynchronise), a hello of a newer protocol version, and a catalog whose
//! hash differs from the one its hello named. Also renders frames and values as JSON for
//! `nvrctl decode` and `--json`, and status codes in words. No I/O.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use edgenvr_proto::pack::{decode_catalog_pack, PackError};
use edgenvr_proto::{
    Batch, Body, CameraRole, CameraStatusWords, CatalogEntry, CatalogHasher, CatalogId, Change,
    Frame, FrameError, Kind, Role, SensorId, StoreStatusWords, Value, ValueKind,
    OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use serde_json::{json, Value as Json};

/// Largest catalog pack accepted, compressed: a 60,000-sensor site's pack is a few KiB, and
/// one of names without a pattern a few hundred.
pub const MAX_PACK_BYTES: usize = 16 << 20;
/// Largest catalog a pack may inflate to (a pack is data from the network).
pub const MAX_CATALOG_BYTES: usize = 64 << 20;

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
    /// A whole number in `unit` (a count, or a status code).
    Unsigned {
        /// Unit symbol, may be empty.
        unit: String,
    },
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
    /// Whole number.
    Unsigned(u64),
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
    /// The box speaks a protocol version this nvrctl does not understand.
    #[error(
        "the box speaks protocol version {theirs}; this nvrctl speaks versions {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION}: \
         update nvrctl"
    )]
    Version {
        /// The box's version.
        theirs: u16,
    },
    /// The catalog pack could not be read.
    #[error("catalog pack: {0}")]
    Pack(PackError),
    /// The catalog received is not the one the hello named (or the pack does not follow the
    /// entries this receiver has).
    #[error("the catalog received does not match the one the box announced: {0}")]
    CatalogMismatch(&'static str),
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
    /// The catalog the box's hello named (protocol version 2).
    pub catalog_id: Option<CatalogId>,
    /// Pack bytes received so far (a catalog pack arrives in parts).
    pack: Vec<u8>,
    next_seq: Option<u32>,
}

impl StateView {
    /// The kind lookup for reading batches.
    pub fn kind_of(&self, id: SensorId) -> Option<ValueKind> {
        self.sensors.get(&id.0).map(|sensor| match sensor.kind {
            SensorKind::Binary => ValueKind::Binary,
            SensorKind::Scalar { .. } => ValueKind::Scalar,
            SensorKind::Complex => ValueKind::Complex,
            SensorKind::Unsigned { .. } => ValueKind::Unsigned,
        })
    }

    /// The catalog's entries in id order, as the wire format hashes them.
    pub fn catalog_entries(&self) -> impl Iterator<Item = CatalogEntry<'_>> {
        self.sensors.values().map(|sensor| CatalogEntry {
            id: SensorId(sensor.id),
            name: &sensor.name,
            kind: match &sensor.kind {
                SensorKind::Binary => Kind::Binary,
                SensorKind::Scalar { unit } => Kind::Scalar { unit },
                SensorKind::Complex => Kind::Complex,
                SensorKind::Unsigned { unit } => Kind::Unsigned { unit },
            },
            role: sensor.role,
        })
    }

    /// The id of the catalog this view holds.
    pub fn held_catalog_id(&self) -> CatalogId {
        let mut hasher = CatalogHasher::new();
        self.catalog_entries().for_each(|entry| hasher.add(&entry));
        hasher.finish()
    }

    /// Adds (or replaces) one catalog entry, keeping a value it already had.
    pub fn add_entry(&mut self, entry: &CatalogEntry<'_>) {
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

    /// Whether the catalog the hello named is the one held (always `true` for a version 1 box,
    /// whose hello names none).
    pub fn catalog_complete(&self) -> bool {
        self.catalog_id
            .is_none_or(|id| self.sensors.len() >= id.entries as usize)
    }

    /// A completed pack: entries after the first `base`, checked against the hello's id.
    fn apply_pack(&mut self) -> Result<(), ViewError> {
        let pack = std::mem::take(&mut self.pack);
        let mut entries: Vec<(u32, String, SensorKind, Role)> = Vec::new();
        let base = decode_catalog_pack(&pack, MAX_CATALOG_BYTES, |entry| {
            entries.push((
                entry.id.0,
                entry.name.to_string(),
                owned_kind(&entry.kind),
                entry.role,
            ));
        })
        .map_err(ViewError::Pack)?;
        if self.sensors.len() < base as usize {
            return Err(ViewError::CatalogMismatch(
                "the pack continues a catalog this receiver does not have",
            ));
        }
        // The first `base` entries stay; the pack's entries follow. A value is kept for an id
        // that stays in the catalog (a catalog republished because a sensor joined).
        let mut old = std::mem::take(&mut self.sensors);
        let kept: Vec<u32> = old.keys().copied().take(base as usize).collect();
        for id in kept {
            if let Some(sensor) = old.remove(&id) {
                self.sensors.insert(id, sensor);
            }
        }
        for (id, name, kind, role) in entries {
            let value = old
                .remove(&id)
                .filter(|previous| previous.kind == kind)
                .and_then(|previous| previous.value);
            self.sensors.insert(
                id,
                Sensor {
                    id,
                    name,
                    kind,
                    role,
                    value,
                },
            );
        }
        if let Some(announced) = self.catalog_id {
            if self.held_catalog_id() != announced {
                return Err(ViewError::CatalogMismatch("its hash differs"));
            }
        }
        Ok(())
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
                if hello.version > PROTOCOL_VERSION || hello.version < OLDEST_PROTOCOL_VERSION {
                    return Err(ViewError::Version {
                        theirs: hello.version,
                    });
                }
                self.box_name = Some(hello.box_name.to_string());
                self.version = Some(hello.version);
                self.catalog_id = hello.catalog;
                self.pack.clear();
                Ok(Vec::new())
            }
            Body::Catalog(catalog) => {
                for entry in catalog.entries() {
                    self.add_entry(&entry);
                }
                Ok(Vec::new())
            }
            Body::CatalogPack(part) => {
                if self.pack.len() + part.bytes.len() > MAX_PACK_BYTES {
                    self.pack.clear();
                    return Err(ViewError::Pack(PackError::Inflate("larger than the limit")));
                }
                self.pack.extend_from_slice(part.bytes);
                if part.last_part {
                    self.apply_pack()?;
                }
                Ok(Vec::new())
            }
            Body::Snapshot(snapshot) => {
                let updates = self.apply_batch(seq, &snapshot.batch, true)?;
                self.snapshot_complete |= snapshot.last_part;
                Ok(updates)
            }
            Body::PackedSnapshot(part) => {
                let changes: Vec<Result<Change<'_>, FrameError>> =
                    part.values(|id| self.kind_of(id)).collect();
                let updates = self.apply_changes(seq, changes, part.time_ms, true)?;
                self.snapshot_complete |= part.last_part;
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
        let changes: Vec<Result<Change<'_>, FrameError>> =
            batch.changes(|id| self.kind_of(id)).collect();
        self.apply_changes(seq, changes, batch.time_ms, from_snapshot)
    }

    /// Applies changes read from a frame, all or nothing: a frame with an unreadable change
    /// changes no value.
    fn apply_changes(
        &mut self,
        seq: u32,
        changes: Vec<Result<Change<'_>, FrameError>>,
        time_ms: u64,
        from_snapshot: bool,
    ) -> Result<Vec<Update>, ViewError> {
        let mut updates = Vec::new();
        for change in changes {
            let change = change.map_err(|error| ViewError::Frame { seq, error })?;
            updates.push(Update {
                id: change.id.0,
                value: owned_value(&change.value),
                time_ms,
                from_snapshot,
            });
        }
        for update in &updates {
            if let Some(sensor) = self.sensors.get_mut(&update.id) {
                sensor.value = Some((update.value.clone(), update.time_ms));
            }
        }
        self.time_ms = Some(time_ms);
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
                    "value": sensor.value.as_ref().map_or(Json::Null, |(value, _)| value_json(value, sensor.role)),
                    "time": sensor.value.as_ref().map_or(Json::Null, |(_, time_ms)| json!(rfc3339(*time_ms))),
                });
                if let Some(unit) = unit_of(&sensor.kind) {
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
            "value": value_json(&update.value, self.role_of(update.id)),
        })
    }

    /// The role of sensor `id` ([`Role::Sensor`] if the catalog does not have it).
    pub fn role_of(&self, id: u32) -> Role {
        self.sensors.get(&id).map_or(Role::Sensor, |s| s.role)
    }
}

/// The unit of a scalar or unsigned kind.
fn unit_of(kind: &SensorKind) -> Option<&str> {
    match kind {
        SensorKind::Scalar { unit } | SensorKind::Unsigned { unit } => Some(unit),
        _ => None,
    }
}

/// A catalog entry as JSON (`nvrctl decode`).
fn entry_json(entry: &CatalogEntry<'_>) -> Json {
    let kind = owned_kind(&entry.kind);
    let mut line = json!({
        "id": entry.id.0,
        "name": entry.name,
        "kind": kind_name(&kind),
        "role": role_name(entry.role),
    });
    if let Some(unit) = unit_of(&kind) {
        line["unit"] = json!(unit);
    }
    line
}

fn owned_kind(kind: &Kind<'_>) -> SensorKind {
    match kind {
        Kind::Binary => SensorKind::Binary,
        Kind::Scalar { unit } => SensorKind::Scalar {
            unit: unit.to_string(),
        },
        Kind::Complex => SensorKind::Complex,
        Kind::Unsigned { unit } => SensorKind::Unsigned {
            unit: unit.to_string(),
        },
    }
}

fn owned_value(value: &Value<'_>) -> SensorValue {
    match value {
        Value::Binary(level) => SensorValue::Binary(*level),
        Value::Scalar(reading) => SensorValue::Scalar(*reading),
        Value::Complex(bytes) => SensorValue::Complex(bytes.to_vec()),
        Value::Unsigned(number) => SensorValue::Unsigned(*number),
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
        SensorKind::Unsigned { .. } => "unsigned",
    }
}

/// `sensor`, `output`, `health`, `camera:online`, ...
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Sensor => "sensor",
        Role::Output => "output",
        Role::Health => "health",
        Role::Counter => "counter",
        Role::StoreStatus => "store:status",
        Role::Camera(CameraRole::Online) => "camera:online",
        Role::Camera(CameraRole::Recording) => "camera:recording",
        Role::Camera(CameraRole::Event) => "camera:event",
        Role::Camera(CameraRole::Bitrate) => "camera:bitrate",
        Role::Camera(CameraRole::FrameRate) => "camera:fps",
        Role::Camera(CameraRole::Status) => "camera:status",
    }
}

/// A status value in words, for the roles whose values are codes: a camera's status
/// (`online`, `offline: auth_failed`; codes of a later version as `state 6: reason 9`) and the
/// store's (`ok`, `read_only`, ...). `None` for other roles.
pub fn status_words(value: &SensorValue, role: Role) -> Option<String> {
    let SensorValue::Unsigned(code) = value else {
        return None;
    };
    match role {
        Role::Camera(CameraRole::Status) => Some(CameraStatusWords(*code).to_string()),
        Role::StoreStatus => Some(StoreStatusWords(*code).to_string()),
        _ => None,
    }
}

/// A value as JSON: a bool, a number (null for NaN), hex for complex bytes, and words for a
/// status ([`status_words`]).
pub fn value_json(value: &SensorValue, role: Role) -> Json {
    if let Some(words) = status_words(value, role) {
        return json!(words);
    }
    match value {
        SensorValue::Binary(level) => json!(level),
        SensorValue::Scalar(reading) => {
            serde_json::Number::from_f64(f64::from(*reading)).map_or(Json::Null, Json::Number)
        }
        SensorValue::Complex(bytes) => json!(hex(bytes)),
        SensorValue::Unsigned(number) => json!(number),
    }
}

/// A value for a table cell.
pub fn value_text(value: &SensorValue, kind: &SensorKind, role: Role) -> String {
    if let Some(words) = status_words(value, role) {
        return words;
    }
    match (value, kind) {
        (SensorValue::Binary(true), _) if role == Role::Output => "on".to_string(),
        (SensorValue::Binary(false), _) if role == Role::Output => "off".to_string(),
        (SensorValue::Binary(true), _) => "active".to_string(),
        (SensorValue::Binary(false), _) => "idle".to_string(),
        (SensorValue::Scalar(reading), SensorKind::Scalar { unit }) => {
            format!("{reading} {unit}").trim_end().to_string()
        }
        (SensorValue::Scalar(reading), _) => reading.to_string(),
        (SensorValue::Unsigned(number), SensorKind::Unsigned { unit }) => {
            format!("{number} {unit}").trim_end().to_string()
        }
        (SensorValue::Unsigned(number), _) => number.to_string(),
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
            if let Some(id) = hello.catalog {
                object["catalog"] = json!({
                    "entries": id.entries,
                    "hash": format!("{:016x}", id.hash),
                });
            }
        }
        Body::Catalog(catalog) => {
            object["frame"] = json!("catalog");
            let entries: Vec<Json> = catalog.entries().map(|e| entry_json(&e)).collect();
            object["sensors"] = json!(entries);
        }
        Body::CatalogPack(part) => {
            object["frame"] = json!("catalog_pack");
            object["last_part"] = json!(part.last_part);
            object["bytes"] = json!(part.bytes.len());
            if part.last_part {
                // The whole pack, now that it is complete: the entries it carries.
                let mut pack = view.pack.clone();
                pack.extend_from_slice(part.bytes);
                let mut entries = Vec::new();
                match decode_catalog_pack(&pack, MAX_CATALOG_BYTES, |e| {
                    entries.push(entry_json(&e))
                }) {
                    Ok(base) => {
                        object["base"] = json!(base);
                        object["sensors"] = json!(entries);
                    }
                    Err(error) => object["error"] = json!(error.to_string()),
                }
            }
        }
        Body::Snapshot(snapshot) => {
            object["frame"] = json!("snapshot");
            object["last_part"] = json!(snapshot.last_part);
            object["time"] = json!(rfc3339(snapshot.batch.time_ms));
        }
        Body::PackedSnapshot(part) => {
            object["frame"] = json!("snapshot");
            object["packed"] = json!(true);
            object["last_part"] = json!(part.last_part);
            object["time"] = json!(rfc3339(part.time_ms));
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
    let changes: Option<Vec<Result<Change<'_>, FrameError>>> = match &frame.body {
        Body::Snapshot(snapshot) => Some(snapshot.batch.changes(|id| view.kind_of(id)).collect()),
        Body::Changes(batch) => Some(batch.changes(|id| view.kind_of(id)).collect()),
        Body::PackedSnapshot(part) => Some(part.values(|id| view.kind_of(id)).collect()),
        _ => None,
    };
    if let Some(changes) = changes {
        let mut values = Vec::new();
        for change in changes {
            match change {
                Ok(change) => values.push(json!({
                    "id": change.id.0,
                    "sensor": view.name_of(change.id.0),
                    "value": value_json(&owned_value(&change.value), view.role_of(change.id.0)),
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
                    catalog: None,
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

    #[test]
    fn a_newer_protocol_version_is_refused_and_says_both_versions() {
        let bytes = wire(&[Frame {
            seq: 0,
            body: Body::Hello(Hello {
                version: PROTOCOL_VERSION + 1,
                box_name: "future",
                catalog: None,
            }),
        }]);
        let mut view = StateView::default();
        let mut results = decode_all(&bytes, &mut view);
        let error = results.remove(0).unwrap_err();
        assert_eq!(
            error,
            ViewError::Version {
                theirs: PROTOCOL_VERSION + 1
            }
        );
        let text = error.to_string();
        assert!(
            text.contains(&format!("version {}", PROTOCOL_VERSION + 1)),
            "{text}"
        );
        assert!(text.contains(&format!("1 to {PROTOCOL_VERSION}")), "{text}");
    }

    #[test]
    fn a_pack_that_is_not_the_announced_catalog_is_refused() {
        let entries = [CatalogEntry {
            id: SensorId(0),
            name: "pir",
            kind: Kind::Binary,
            role: Role::Sensor,
        }];
        let pack = edgenvr_proto::pack::encode_catalog_pack(0, &entries);
        let bytes = wire(&[
            Frame {
                seq: 0,
                body: Body::Hello(Hello {
                    version: PROTOCOL_VERSION,
                    box_name: "b",
                    catalog: Some(CatalogId {
                        entries: 1,
                        hash: 42,
                    }),
                }),
            },
            Frame {
                seq: 1,
                body: Body::CatalogPack(edgenvr_proto::CatalogPackPart {
                    last_part: true,
                    bytes: &pack,
                }),
            },
        ]);
        let mut view = StateView::default();
        let results = decode_all(&bytes, &mut view);
        assert_eq!(
            results[1],
            Err(ViewError::CatalogMismatch("its hash differs"))
        );
    }
}
