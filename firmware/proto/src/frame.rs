//! What one frame says: the frame types, and the byte layout of a frame's body.
//!
//! Owns the meaning of every frame (hello, catalog, snapshot, changes, heartbeat) and how a body
//! is written with postcard's serializer and read back. Receives frames to write from the caller
//! (borrowed slices, so a microcontroller encodes without an allocator) and verified body bytes
//! from [`crate::codec`]; emits body bytes and borrowed [`Frame`] views. No framing, no checksum,
//! no I/O: those live in `codec`.
//!
//! Values carry no type of their own: a change is a sensor id plus the bare value, and the
//! receiver learns each sensor's [`ValueKind`] from the catalog. That is why reading the changes
//! of a [`Batch`] takes a kind lookup ([`Batch::changes`]).

use postcard::ser_flavors::Flavor;
use postcard::Serializer;
use serde::{Deserialize, Serialize, Serializer as _};

use crate::error::FrameError;

/// Version of this wire format, sent in [`Hello`]. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u16 = 1;

/// A sensor's id: a small integer, dense from 0 on the box, sent as a varint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(transparent)]
pub struct SensorId(pub u32);

/// What a sensor's values are, as the catalog announces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Kind<'a> {
    /// On/off (a PIR, a door contact, "camera online").
    Binary,
    /// A number with a unit ("°C", "%", "B/s"); the unit may be empty.
    Scalar {
        /// Unit symbol shown next to the value.
        unit: &'a str,
    },
    /// An opaque byte string whose meaning the sensor's name and role define.
    Complex,
}

impl Kind<'_> {
    /// The value kind without the unit: what a decoder needs to read a change.
    pub fn value_kind(&self) -> ValueKind {
        match self {
            Kind::Binary => ValueKind::Binary,
            Kind::Scalar { .. } => ValueKind::Scalar,
            Kind::Complex => ValueKind::Complex,
        }
    }
}

/// How a value is laid out in a change: the answer a kind lookup gives for a sensor id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ValueKind {
    /// The value is the low bit of the change's key; nothing follows.
    Binary,
    /// An `f32`, 4 bytes little-endian, follows the key.
    Scalar,
    /// A varint length and that many bytes follow the key.
    Complex,
}

/// What part of the box a catalog entry describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// An input: PIR, contact, temperature probe.
    Sensor,
    /// A switched output: light, relay, siren.
    Output,
    /// The box itself: disk, card wear, temperature.
    Health,
    /// One camera's status, with what this entry says about it.
    Camera(CameraRole),
}

/// What a camera's catalog entry reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CameraRole {
    /// Binary: the RTSP session is up and frames arrive.
    Online,
    /// Binary: frames are being written to the store.
    Recording,
    /// Binary: an event recording (trigger, pre-roll, post-roll) is in progress.
    Event,
    /// Scalar: received bit rate.
    Bitrate,
}

/// One catalog line: sensor id → name, kind and role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CatalogEntry<'a> {
    /// The id changes refer to.
    pub id: SensorId,
    /// Name from the box's config, unique on the box ("front_door_pir").
    pub name: &'a str,
    /// What the values are.
    #[serde(borrow)]
    pub kind: Kind<'a>,
    /// What the sensor is part of.
    pub role: Role,
}

/// A sensor's value. Carries no type on the wire: the catalog says which variant to read.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Value<'a> {
    /// A [`ValueKind::Binary`] sensor's level (`true` = active).
    Binary(bool),
    /// A [`ValueKind::Scalar`] sensor's reading.
    Scalar(f32),
    /// A [`ValueKind::Complex`] sensor's bytes.
    Complex(&'a [u8]),
}

impl Value<'_> {
    /// Which kind of sensor this value belongs to.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Binary(_) => ValueKind::Binary,
            Value::Scalar(_) => ValueKind::Scalar,
            Value::Complex(_) => ValueKind::Complex,
        }
    }
}

/// One sensor's new value.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Change<'a> {
    /// Which sensor.
    pub id: SensorId,
    /// Its value.
    pub value: Value<'a>,
}

/// First frame of a session: who is speaking, and in which format version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Hello<'a> {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u16,
    /// The box's `[box] name`.
    pub box_name: &'a str,
}

/// A list that is either the sender's slice or a checked span of received bytes.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Seq<'a, T> {
    Items(&'a [T]),
    Wire(&'a [u8]),
}

/// Catalog entries; a catalog frame adds or replaces entries by id.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Catalog<'a> {
    entries: Seq<'a, CatalogEntry<'a>>,
}

impl<'a> Catalog<'a> {
    /// A catalog frame carrying `entries`.
    pub fn new(entries: &'a [CatalogEntry<'a>]) -> Self {
        Catalog {
            entries: Seq::Items(entries),
        }
    }

    /// The entries, in the order sent. Received catalogs were checked whole when decoded.
    pub fn entries(&self) -> CatalogEntries<'a> {
        CatalogEntries {
            entries: self.entries,
        }
    }
}

/// Iterator over a [`Catalog`]'s entries.
#[derive(Clone, Debug)]
pub struct CatalogEntries<'a> {
    entries: Seq<'a, CatalogEntry<'a>>,
}

impl<'a> Iterator for CatalogEntries<'a> {
    type Item = CatalogEntry<'a>;

    fn next(&mut self) -> Option<CatalogEntry<'a>> {
        match &mut self.entries {
            Seq::Items(items) => {
                let (first, rest) = items.split_first()?;
                *items = rest;
                Some(*first)
            }
            Seq::Wire(bytes) => {
                // Checked by `decode_body`, so an error here cannot happen; ending is the safe answer.
                let (entry, rest) = postcard::take_from_bytes::<CatalogEntry<'a>>(bytes).ok()?;
                *bytes = rest;
                Some(entry)
            }
        }
    }
}

/// Values at one time: the content of a changes frame or of a snapshot part.
///
/// On the wire each change is a key varint followed by the value's bytes, if any:
/// `key = zigzag(id − previous id) << 1 | bit`, where the previous id starts at 0 in each batch
/// and `bit` is a binary sensor's level (0 for other kinds). A binary change therefore costs only
/// its key, and ids close together cost one byte each however large they are.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Batch<'a> {
    /// When the values were taken: milliseconds since the Unix epoch on the box (a sender without
    /// a wall clock sends milliseconds since it started).
    pub time_ms: u64,
    changes: Seq<'a, Change<'a>>,
}

impl<'a> Batch<'a> {
    /// A batch of `changes` taken at `time_ms`, sent in this order (two edges of one sensor stay
    /// two changes, in order).
    pub fn new(time_ms: u64, changes: &'a [Change<'a>]) -> Self {
        Batch {
            time_ms,
            changes: Seq::Items(changes),
        }
    }

    /// The changes in order. Reading received changes needs each sensor's kind from the catalog:
    /// `kind_of` answers it, `None` for an id the receiver does not know (an error item, after
    /// which the iterator ends).
    pub fn changes<K>(&self, kind_of: K) -> Changes<'a, K>
    where
        K: Fn(SensorId) -> Option<ValueKind>,
    {
        Changes {
            changes: self.changes,
            previous_id: 0,
            kind_of,
        }
    }
}

/// Iterator over a [`Batch`]'s changes; see [`Batch::changes`].
#[derive(Clone, Debug)]
pub struct Changes<'a, K> {
    changes: Seq<'a, Change<'a>>,
    previous_id: u32,
    kind_of: K,
}

impl<'a, K> Iterator for Changes<'a, K>
where
    K: Fn(SensorId) -> Option<ValueKind>,
{
    type Item = Result<Change<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.changes {
            Seq::Items(items) => {
                let (first, rest) = items.split_first()?;
                *items = rest;
                Some(Ok(*first))
            }
            Seq::Wire(bytes) => {
                if bytes.is_empty() {
                    return None;
                }
                let read = read_change(bytes, self.previous_id, &self.kind_of);
                match read {
                    Ok((change, rest)) => {
                        *bytes = rest;
                        self.previous_id = change.id.0;
                        Some(Ok(change))
                    }
                    Err(error) => {
                        *bytes = &[];
                        Some(Err(error))
                    }
                }
            }
        }
    }
}

/// One part of a snapshot: the current value of sensors. A snapshot too large for one frame is
/// sent as several parts at the same time; the last has `last_part` set.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Snapshot<'a> {
    /// `true` on the part that completes the snapshot.
    pub last_part: bool,
    /// The values.
    pub batch: Batch<'a>,
}

/// One frame: a sequence number and what it says.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Frame<'a> {
    /// Counts frames of one session (connection) up by one, wrapping; a gap means frames were
    /// lost and the receiver must get a new snapshot.
    pub seq: u32,
    /// The frame's content.
    pub body: Body<'a>,
}

/// What a frame says.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Body<'a> {
    /// Opens a session.
    Hello(Hello<'a>),
    /// Names and kinds of sensors.
    Catalog(Catalog<'a>),
    /// Current values (part of a snapshot).
    Snapshot(Snapshot<'a>),
    /// Values that changed.
    Changes(Batch<'a>),
    /// Nothing changed; the sender is alive at `time_ms`.
    Heartbeat {
        /// Same clock as [`Batch::time_ms`].
        time_ms: u64,
    },
}

// The frame kind shares the header varint with the sequence number: `seq << 3 | kind`, so a
// frame costs one header byte while seq < 16 and two up to 2047. Three bits leave room for three
// more kinds.
const KIND_BITS: u32 = 3;
const KIND_HELLO: u8 = 0;
const KIND_CATALOG: u8 = 1;
const KIND_SNAPSHOT: u8 = 2;
const KIND_CHANGES: u8 = 3;
const KIND_HEARTBEAT: u8 = 4;

fn zigzag(delta: i64) -> u64 {
    ((delta << 1) ^ (delta >> 63)) as u64
}

fn unzigzag(encoded: u64) -> i64 {
    ((encoded >> 1) as i64) ^ -((encoded & 1) as i64)
}

/// The key varint of `change` after a change of `previous_id`.
pub(crate) fn change_key(previous_id: u32, change: &Change<'_>) -> u64 {
    let delta = i64::from(change.id.0) - i64::from(previous_id);
    let bit = matches!(change.value, Value::Binary(true));
    (zigzag(delta) << 1) | u64::from(bit)
}

fn read_change<'a, K>(
    bytes: &'a [u8],
    previous_id: u32,
    kind_of: &K,
) -> Result<(Change<'a>, &'a [u8]), FrameError>
where
    K: Fn(SensorId) -> Option<ValueKind>,
{
    let malformed = |_| FrameError::Malformed("change entry");
    let (key, rest) = postcard::take_from_bytes::<u64>(bytes).map_err(malformed)?;
    let bit = key & 1 == 1;
    let id = i64::from(previous_id) + unzigzag(key >> 1);
    let id = SensorId(u32::try_from(id).map_err(|_| FrameError::Malformed("change id"))?);
    let kind = kind_of(id).ok_or(FrameError::UnknownSensor(id))?;
    let (value, rest) = match kind {
        ValueKind::Binary => (Value::Binary(bit), rest),
        _ if bit => {
            return Err(FrameError::Malformed(
                "value bit set on a non-binary change",
            ))
        }
        ValueKind::Scalar => {
            let (scalar, rest) = postcard::take_from_bytes::<f32>(rest).map_err(malformed)?;
            (Value::Scalar(scalar), rest)
        }
        ValueKind::Complex => {
            let (bytes, rest) = postcard::take_from_bytes::<&[u8]>(rest).map_err(malformed)?;
            (Value::Complex(bytes), rest)
        }
    };
    Ok((Change { id, value }, rest))
}

impl Frame<'_> {
    fn kind_tag(&self) -> u8 {
        match self.body {
            Body::Hello(_) => KIND_HELLO,
            Body::Catalog(_) => KIND_CATALOG,
            Body::Snapshot(_) => KIND_SNAPSHOT,
            Body::Changes(_) => KIND_CHANGES,
            Body::Heartbeat { .. } => KIND_HEARTBEAT,
        }
    }

    /// Writes the body (header varint, then the kind's fields) into `ser`.
    pub(crate) fn write<F: Flavor>(&self, ser: &mut Serializer<F>) -> postcard::Result<()> {
        let header = (u64::from(self.seq) << KIND_BITS) | u64::from(self.kind_tag());
        ser.serialize_u64(header)?;
        match &self.body {
            Body::Hello(hello) => hello.serialize(&mut *ser),
            Body::Catalog(catalog) => match catalog.entries {
                Seq::Items(entries) => entries
                    .iter()
                    .try_for_each(|entry| entry.serialize(&mut *ser)),
                Seq::Wire(bytes) => ser.output.try_extend(bytes),
            },
            Body::Snapshot(snapshot) => {
                ser.serialize_bool(snapshot.last_part)?;
                write_batch(&snapshot.batch, ser)
            }
            Body::Changes(batch) => write_batch(batch, ser),
            Body::Heartbeat { time_ms } => ser.serialize_u64(*time_ms),
        }
    }
}

fn write_batch<F: Flavor>(batch: &Batch<'_>, ser: &mut Serializer<F>) -> postcard::Result<()> {
    ser.serialize_u64(batch.time_ms)?;
    match batch.changes {
        Seq::Wire(bytes) => ser.output.try_extend(bytes),
        Seq::Items(changes) => {
            let mut previous_id = 0;
            for change in changes {
                ser.serialize_u64(change_key(previous_id, change))?;
                match change.value {
                    Value::Binary(_) => {}
                    Value::Scalar(scalar) => ser.serialize_f32(scalar)?,
                    Value::Complex(bytes) => ser.serialize_bytes(bytes)?,
                }
                previous_id = change.id.0;
            }
            Ok(())
        }
    }
}

/// Reads a checksum-verified body. Checks everything that can be checked without the catalog;
/// the changes of a batch are checked as they are read ([`Batch::changes`]).
pub(crate) fn decode_body(body: &[u8]) -> Result<Frame<'_>, FrameError> {
    let (header, rest) =
        postcard::take_from_bytes::<u64>(body).map_err(|_| FrameError::Malformed("header"))?;
    let seq = u32::try_from(header >> KIND_BITS).map_err(|_| FrameError::Malformed("header"))?;
    // Masked to three bits, so the cast cannot truncate.
    let kind = (header & ((1 << KIND_BITS) - 1)) as u8;
    let body = match kind {
        KIND_HELLO => {
            // A later version may append fields to hello, so trailing bytes are allowed here.
            let (hello, _) = postcard::take_from_bytes::<Hello<'_>>(rest)
                .map_err(|_| FrameError::Malformed("hello"))?;
            Body::Hello(hello)
        }
        KIND_CATALOG => {
            let mut unread = rest;
            while !unread.is_empty() {
                let (_, after) = postcard::take_from_bytes::<CatalogEntry<'_>>(unread)
                    .map_err(|_| FrameError::Malformed("catalog entry"))?;
                unread = after;
            }
            Body::Catalog(Catalog {
                entries: Seq::Wire(rest),
            })
        }
        KIND_SNAPSHOT => {
            let (last_part, rest) = postcard::take_from_bytes::<bool>(rest)
                .map_err(|_| FrameError::Malformed("snapshot"))?;
            Body::Snapshot(Snapshot {
                last_part,
                batch: read_batch(rest)?,
            })
        }
        KIND_CHANGES => Body::Changes(read_batch(rest)?),
        KIND_HEARTBEAT => {
            let (time_ms, rest) = postcard::take_from_bytes::<u64>(rest)
                .map_err(|_| FrameError::Malformed("heartbeat"))?;
            if !rest.is_empty() {
                return Err(FrameError::Malformed("bytes after heartbeat"));
            }
            Body::Heartbeat { time_ms }
        }
        other => return Err(FrameError::UnknownFrameKind(other)),
    };
    Ok(Frame { seq, body })
}

fn read_batch(bytes: &[u8]) -> Result<Batch<'_>, FrameError> {
    let (time_ms, rest) =
        postcard::take_from_bytes::<u64>(bytes).map_err(|_| FrameError::Malformed("batch time"))?;
    Ok(Batch {
        time_ms,
        changes: Seq::Wire(rest),
    })
}
