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

/// Version of this wire format, sent in [`Hello`]. Bumped on any change of the contract.
///
/// - 1: hello, catalog, snapshot, changes, heartbeat; binary, scalar and complex values.
/// - 2: adds the catalog id to [`Hello`] (and a receiver's hello naming the catalog it has),
///   compressed catalogs ([`CatalogPackPart`]), packed snapshots ([`PackedSnapshot`], binary
///   values as bits), [`ValueKind::Unsigned`] values, and the roles [`Role::Counter`],
///   [`Role::StoreStatus`], [`CameraRole::FrameRate`] and [`CameraRole::Status`]. Everything of
///   version 1 reads the same, so a version 2 receiver understands a version 1 sender.
pub const PROTOCOL_VERSION: u16 = 2;

/// The oldest version a receiver of this crate understands.
pub const OLDEST_PROTOCOL_VERSION: u16 = 1;

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
    /// A whole number: a count (with a unit, e.g. "GOPs") or a status code whose meaning the
    /// role defines (see [`crate::CameraState`]). Version 2.
    Unsigned {
        /// Unit shown next to the value; may be empty.
        unit: &'a str,
    },
}

impl Kind<'_> {
    /// The value kind without the unit: what a decoder needs to read a change.
    pub fn value_kind(&self) -> ValueKind {
        match self {
            Kind::Binary => ValueKind::Binary,
            Kind::Scalar { .. } => ValueKind::Scalar,
            Kind::Complex => ValueKind::Complex,
            Kind::Unsigned { .. } => ValueKind::Unsigned,
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
    /// A varint follows the key. Version 2.
    Unsigned,
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
    /// A count that only grows while the box runs (fragments overwritten, GOPs dropped): an
    /// unsigned value, or a scalar when the sender reports it by exception; the name ties it to
    /// its camera or part. Version 2.
    Counter,
    /// Unsigned: the store's [`crate::StoreState`]. Version 2.
    StoreStatus,
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
    /// Scalar: received frames per second. Version 2.
    FrameRate,
    /// Unsigned: the camera's state and why, as [`crate::camera_status_code`] packs them.
    /// Version 2.
    Status,
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
    /// A [`ValueKind::Unsigned`] sensor's number.
    Unsigned(u64),
}

impl Value<'_> {
    /// Which kind of sensor this value belongs to.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Binary(_) => ValueKind::Binary,
            Value::Scalar(_) => ValueKind::Scalar,
            Value::Complex(_) => ValueKind::Complex,
            Value::Unsigned(_) => ValueKind::Unsigned,
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

/// Which catalog a session uses: how many entries, and a hash of them (CRC-64/XZ over each
/// entry's catalog-frame encoding, in id order; see [`CatalogHasher`]).
///
/// A box's catalog only grows, so a receiver that has the first `entries` of a longer catalog
/// needs only the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CatalogId {
    /// Entries covered.
    pub entries: u32,
    /// Their hash.
    pub hash: u64,
}

/// First frame of a session: who is speaking, in which format version, and (version 2) which
/// catalog.
///
/// A box sends it first. A version 2 receiver sends one too, at once after connecting, naming
/// the catalog it already has (`catalog`), so the box can leave the catalog out (see the crate
/// README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Hello<'a> {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u16,
    /// The box's `[box] name` (a receiver's hello: the receiver's name, e.g. "nvrctl").
    pub box_name: &'a str,
    /// The sender's catalog (a box), or the one the receiver has (a receiver's hello); `None`
    /// for none, and from version 1 senders.
    pub catalog: Option<CatalogId>,
}

/// CRC-64/XZ: 8 bytes is plenty to tell catalogs apart (it is no defence against a forger, and
/// needs none: a receiver that got the wrong catalog sees the hash of what it decoded differ).
const CATALOG_CRC: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_XZ);

/// Computes a [`CatalogId`] entry by entry, without an allocator.
pub struct CatalogHasher {
    digest: crc::Digest<'static, u64>,
    entries: u32,
}

impl Default for CatalogHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl CatalogHasher {
    /// A hasher of an empty catalog.
    pub fn new() -> Self {
        CatalogHasher {
            digest: CATALOG_CRC.digest(),
            entries: 0,
        }
    }

    /// Adds the next entry (entries go in id order).
    pub fn add(&mut self, entry: &CatalogEntry<'_>) {
        // The digest flavor cannot fail, and every entry serialises.
        let _ = postcard::serialize_with_flavor(entry, DigestFlavor(&mut self.digest));
        self.entries = self.entries.saturating_add(1);
    }

    /// The id of the entries added so far.
    pub fn finish(&self) -> CatalogId {
        CatalogId {
            entries: self.entries,
            hash: self.digest.clone().finalize(),
        }
    }
}

struct DigestFlavor<'d, 'c>(&'d mut crc::Digest<'c, u64>);

impl Flavor for DigestFlavor<'_, '_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.update(&[data]);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.update(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

impl Hello<'_> {
    fn write<F: Flavor>(&self, ser: &mut Serializer<F>) -> postcard::Result<()> {
        ser.serialize_u16(self.version)?;
        ser.serialize_str(self.box_name)?;
        if self.version < 2 {
            // Exactly a version 1 hello.
            return Ok(());
        }
        // Version 2: entries 0 says "no catalog"; an empty catalog needs no id.
        let id = self.catalog.unwrap_or(CatalogId {
            entries: 0,
            hash: 0,
        });
        ser.serialize_u32(id.entries)?;
        ser.output.try_extend(&id.hash.to_le_bytes())
    }
}

fn read_hello(bytes: &[u8]) -> Result<Hello<'_>, FrameError> {
    let malformed = |_| FrameError::Malformed("hello");
    let (version, rest) = postcard::take_from_bytes::<u16>(bytes).map_err(malformed)?;
    let (box_name, rest) = postcard::take_from_bytes::<&str>(rest).map_err(malformed)?;
    // Version 1 ends here; later versions may append fields after the catalog id, so trailing
    // bytes are allowed.
    let catalog = if rest.is_empty() {
        None
    } else {
        let (entries, rest) = postcard::take_from_bytes::<u32>(rest).map_err(malformed)?;
        let hash = rest
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .ok_or(FrameError::Malformed("hello"))?;
        (entries > 0).then_some(CatalogId { entries, hash })
    };
    Ok(Hello {
        version,
        box_name,
        catalog,
    })
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
    /// Part of a compressed catalog (version 2).
    CatalogPack(CatalogPackPart<'a>),
    /// Part of a snapshot with binary values as bits (version 2).
    PackedSnapshot(PackedSnapshot<'a>),
}

/// One part of a compressed catalog: the parts of one pack, concatenated in order, are the
/// pack's bytes (see the `pack` feature's `decode_catalog_pack`, and the crate README for the
/// layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CatalogPackPart<'a> {
    /// `true` on the part that completes the pack.
    pub last_part: bool,
    /// This part's bytes of the pack.
    pub bytes: &'a [u8],
}

/// One part of a snapshot whose values are positional: the part covers the ids
/// `first_id .. first_id + span`, a binary sensor's value is one bit, and the other values
/// follow in id order without keys. At a site of 60,000 binary sensors that is 7.5 KB instead
/// of ~60 KB of changes.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PackedSnapshot<'a> {
    /// `true` on the part that completes the snapshot.
    pub last_part: bool,
    /// When the values were taken (as [`Batch::time_ms`]).
    pub time_ms: u64,
    /// The first id covered.
    pub first_id: SensorId,
    /// How many consecutive ids are covered.
    pub span: u32,
    values: PackedSeq<'a>,
}

#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum PackedSeq<'a> {
    /// Changes sorted by id, one per id at most, all inside the span.
    Items(&'a [Change<'a>]),
    /// From the wire: the presence bitmap if there is one, then the bits and values.
    Wire {
        presence: Option<&'a [u8]>,
        rest: &'a [u8],
    },
}

/// `flags` bit 0 of a packed snapshot: this is the last part.
const PACKED_LAST_PART: u8 = 1;
/// `flags` bit 1: a presence bitmap follows (some ids in the span have no value).
const PACKED_PRESENCE: u8 = 2;

impl<'a> PackedSnapshot<'a> {
    /// A part holding `changes`: sorted by id, at most one per id (a snapshot holds each
    /// sensor's current value once). The span runs from the first id to the last.
    pub fn new(last_part: bool, time_ms: u64, changes: &'a [Change<'a>]) -> Self {
        let first_id = changes.first().map_or(SensorId(0), |c| c.id);
        let span = changes.last().map_or(0, |last| {
            last.id.0.saturating_sub(first_id.0).saturating_add(1)
        });
        PackedSnapshot {
            last_part,
            time_ms,
            first_id,
            span,
            values: PackedSeq::Items(changes),
        }
    }

    /// The values, in id order. Like [`Batch::changes`], reading needs each id's kind:
    /// `kind_of` answers it (`None` for an id the receiver does not know, which is an error
    /// when the part has a value for it).
    pub fn values<K>(&self, kind_of: K) -> PackedValues<'a, K>
    where
        K: Fn(SensorId) -> Option<ValueKind>,
    {
        PackedValues {
            part: *self,
            kind_of,
            index: 0,
            bits: None,
            bit: 0,
            failed: false,
        }
    }

    fn write<F: Flavor>(&self, ser: &mut Serializer<F>) -> postcard::Result<()> {
        let changes = match self.values {
            PackedSeq::Items(changes) => changes,
            PackedSeq::Wire { presence, rest } => {
                // A received part written again: its bytes as they came.
                let flags = u8::from(self.last_part)
                    | if presence.is_some() {
                        PACKED_PRESENCE
                    } else {
                        0
                    };
                ser.output.try_push(flags)?;
                ser.serialize_u64(self.time_ms)?;
                ser.serialize_u32(self.first_id.0)?;
                ser.serialize_u32(self.span)?;
                if let Some(presence) = presence {
                    ser.output.try_extend(presence)?;
                }
                return ser.output.try_extend(rest);
            }
        };
        let full = changes.len() as u64 == u64::from(self.span);
        let flags = u8::from(self.last_part) | if full { 0 } else { PACKED_PRESENCE };
        ser.output.try_push(flags)?;
        ser.serialize_u64(self.time_ms)?;
        ser.serialize_u32(self.first_id.0)?;
        ser.serialize_u32(self.span)?;
        if !full {
            let offsets = changes.iter().map(|c| c.id.0.wrapping_sub(self.first_id.0));
            write_bits(ser, self.span as usize, offsets)?;
        }
        let binaries = changes.iter().filter_map(|c| match c.value {
            Value::Binary(level) => Some(level),
            _ => None,
        });
        let count = binaries.clone().count();
        let set = binaries
            .enumerate()
            .filter(|(_, level)| *level)
            .map(|(n, _)| n as u32);
        write_bits(ser, count, set)?;
        for change in changes {
            write_value(ser, &change.value)?;
        }
        Ok(())
    }
}

/// Writes a bitmap of `len` bits (LSB first in each byte) with the bits at `set` (ascending)
/// set.
fn write_bits<F: Flavor>(
    ser: &mut Serializer<F>,
    len: usize,
    set: impl Iterator<Item = u32>,
) -> postcard::Result<()> {
    let mut set = set.peekable();
    for byte_index in 0..len.div_ceil(8) {
        let mut byte = 0u8;
        let base = (byte_index * 8) as u32;
        while let Some(bit) = set.next_if(|bit| *bit < base + 8) {
            byte |= 1 << (bit.wrapping_sub(base) & 7);
        }
        ser.output.try_push(byte)?;
    }
    Ok(())
}

fn bit_at(bitmap: &[u8], index: usize) -> Option<bool> {
    bitmap
        .get(index / 8)
        .map(|byte| byte & (1 << (index % 8)) != 0)
}

/// Iterator over a [`PackedSnapshot`]'s values; see [`PackedSnapshot::values`].
#[derive(Clone, Debug)]
pub struct PackedValues<'a, K> {
    part: PackedSnapshot<'a>,
    kind_of: K,
    /// Next offset in the span.
    index: u32,
    /// Once the binary bits are located: the bits, and the values after them.
    bits: Option<(&'a [u8], &'a [u8])>,
    /// Next binary bit.
    bit: usize,
    failed: bool,
}

impl<'a, K> PackedValues<'a, K>
where
    K: Fn(SensorId) -> Option<ValueKind>,
{
    fn present(&self, presence: Option<&[u8]>, offset: u32) -> bool {
        presence.is_none_or(|bitmap| bit_at(bitmap, offset as usize) == Some(true))
    }

    /// Counts the binary values of the span (a first pass over the kinds) to find where the
    /// bits end and the other values begin.
    fn locate_bits(
        &self,
        presence: Option<&[u8]>,
        rest: &'a [u8],
    ) -> Result<(&'a [u8], &'a [u8]), FrameError> {
        let mut binaries = 0usize;
        for offset in 0..self.part.span {
            if !self.present(presence, offset) {
                continue;
            }
            let id = SensorId(self.part.first_id.0.wrapping_add(offset));
            match (self.kind_of)(id) {
                None => return Err(FrameError::UnknownSensor(id)),
                Some(ValueKind::Binary) => binaries += 1,
                Some(_) => {}
            }
        }
        let bytes = binaries.div_ceil(8);
        if rest.len() < bytes {
            return Err(FrameError::Malformed("packed snapshot bits"));
        }
        Ok(rest.split_at(bytes))
    }

    fn next_value(&mut self) -> Option<Result<Change<'a>, FrameError>> {
        let (presence, rest) = match self.part.values {
            PackedSeq::Items(items) => {
                let (first, others) = items.split_first()?;
                self.part.values = PackedSeq::Items(others);
                return Some(Ok(*first));
            }
            PackedSeq::Wire { presence, rest } => (presence, rest),
        };
        let (bits, mut values) = match self.bits {
            Some(located) => located,
            None => match self.locate_bits(presence, rest) {
                Ok(located) => located,
                Err(error) => return Some(Err(error)),
            },
        };
        while self.index < self.part.span {
            let offset = self.index;
            self.index += 1;
            if !self.present(presence, offset) {
                continue;
            }
            let id = SensorId(self.part.first_id.0.wrapping_add(offset));
            let kind = match (self.kind_of)(id) {
                Some(kind) => kind,
                None => return Some(Err(FrameError::UnknownSensor(id))),
            };
            let value = if kind == ValueKind::Binary {
                let level = bit_at(bits, self.bit).unwrap_or(false);
                self.bit += 1;
                Value::Binary(level)
            } else {
                match read_value(values, kind) {
                    Ok((value, rest)) => {
                        values = rest;
                        value
                    }
                    Err(error) => return Some(Err(error)),
                }
            };
            self.bits = Some((bits, values));
            return Some(Ok(Change { id, value }));
        }
        self.bits = Some((bits, values));
        if !values.is_empty() {
            return Some(Err(FrameError::Malformed(
                "bytes after packed snapshot values",
            )));
        }
        None
    }
}

impl<'a, K> Iterator for PackedValues<'a, K>
where
    K: Fn(SensorId) -> Option<ValueKind>,
{
    type Item = Result<Change<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.next_value();
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }
}

// The frame kind shares the header varint with the sequence number: `seq << 3 | kind`, so a
// frame costs one header byte while seq < 16 and two up to 2047. Kind 7 is kept for a later
// version: an extension kind whose body starts with a varint sub-kind.
const KIND_BITS: u32 = 3;
const KIND_HELLO: u8 = 0;
const KIND_CATALOG: u8 = 1;
const KIND_SNAPSHOT: u8 = 2;
const KIND_CHANGES: u8 = 3;
const KIND_HEARTBEAT: u8 = 4;
const KIND_CATALOG_PACK: u8 = 5;
const KIND_PACKED_SNAPSHOT: u8 = 6;

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
        kind => read_value(rest, kind)?,
    };
    Ok((Change { id, value }, rest))
}

/// Reads a non-binary value's bytes.
fn read_value(bytes: &[u8], kind: ValueKind) -> Result<(Value<'_>, &[u8]), FrameError> {
    let malformed = |_| FrameError::Malformed("value");
    Ok(match kind {
        ValueKind::Binary => return Err(FrameError::Malformed("binary value outside its bit")),
        ValueKind::Scalar => {
            let (scalar, rest) = postcard::take_from_bytes::<f32>(bytes).map_err(malformed)?;
            (Value::Scalar(scalar), rest)
        }
        ValueKind::Complex => {
            let (value, rest) = postcard::take_from_bytes::<&[u8]>(bytes).map_err(malformed)?;
            (Value::Complex(value), rest)
        }
        ValueKind::Unsigned => {
            let (value, rest) = postcard::take_from_bytes::<u64>(bytes).map_err(malformed)?;
            (Value::Unsigned(value), rest)
        }
    })
}

/// Writes a value's bytes (nothing for a binary value: its level travels as a bit).
fn write_value<F: Flavor>(ser: &mut Serializer<F>, value: &Value<'_>) -> postcard::Result<()> {
    match value {
        Value::Binary(_) => Ok(()),
        Value::Scalar(scalar) => ser.serialize_f32(*scalar),
        Value::Complex(bytes) => ser.serialize_bytes(bytes),
        Value::Unsigned(number) => ser.serialize_u64(*number),
    }
}

impl Frame<'_> {
    fn kind_tag(&self) -> u8 {
        match self.body {
            Body::Hello(_) => KIND_HELLO,
            Body::Catalog(_) => KIND_CATALOG,
            Body::Snapshot(_) => KIND_SNAPSHOT,
            Body::Changes(_) => KIND_CHANGES,
            Body::Heartbeat { .. } => KIND_HEARTBEAT,
            Body::CatalogPack(_) => KIND_CATALOG_PACK,
            Body::PackedSnapshot(_) => KIND_PACKED_SNAPSHOT,
        }
    }

    /// Writes the body (header varint, then the kind's fields) into `ser`.
    pub(crate) fn write<F: Flavor>(&self, ser: &mut Serializer<F>) -> postcard::Result<()> {
        let header = (u64::from(self.seq) << KIND_BITS) | u64::from(self.kind_tag());
        ser.serialize_u64(header)?;
        match &self.body {
            Body::Hello(hello) => hello.write(ser),
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
            Body::CatalogPack(part) => {
                ser.serialize_bool(part.last_part)?;
                ser.output.try_extend(part.bytes)
            }
            Body::PackedSnapshot(part) => part.write(ser),
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
                write_value(ser, &change.value)?;
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
        KIND_HELLO => Body::Hello(read_hello(rest)?),
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
        KIND_CATALOG_PACK => {
            let (last_part, bytes) = postcard::take_from_bytes::<bool>(rest)
                .map_err(|_| FrameError::Malformed("catalog pack"))?;
            Body::CatalogPack(CatalogPackPart { last_part, bytes })
        }
        KIND_PACKED_SNAPSHOT => Body::PackedSnapshot(read_packed_snapshot(rest)?),
        other => return Err(FrameError::UnknownFrameKind(other)),
    };
    Ok(Frame { seq, body })
}

fn read_packed_snapshot(bytes: &[u8]) -> Result<PackedSnapshot<'_>, FrameError> {
    let malformed = |_| FrameError::Malformed("packed snapshot");
    let (&flags, rest) = bytes
        .split_first()
        .ok_or(FrameError::Malformed("packed snapshot"))?;
    if flags & !(PACKED_LAST_PART | PACKED_PRESENCE) != 0 {
        return Err(FrameError::Malformed("packed snapshot flags"));
    }
    let (time_ms, rest) = postcard::take_from_bytes::<u64>(rest).map_err(malformed)?;
    let (first_id, rest) = postcard::take_from_bytes::<u32>(rest).map_err(malformed)?;
    let (span, rest) = postcard::take_from_bytes::<u32>(rest).map_err(malformed)?;
    // Every id of the span takes at least one bit of this frame (of the presence bitmap, or of
    // the binary bits), so a span longer than 8 bits a byte is a lie; and ids stay in u32.
    if span as usize > rest.len().saturating_mul(8) || first_id.checked_add(span).is_none() {
        return Err(FrameError::Malformed("packed snapshot span"));
    }
    let (presence, rest) = if flags & PACKED_PRESENCE != 0 {
        let bytes = (span as usize).div_ceil(8);
        if rest.len() < bytes {
            return Err(FrameError::Malformed("packed snapshot presence"));
        }
        let (presence, rest) = rest.split_at(bytes);
        (Some(presence), rest)
    } else {
        (None, rest)
    };
    Ok(PackedSnapshot {
        last_part: flags & PACKED_LAST_PART != 0,
        time_ms,
        first_id: SensorId(first_id),
        span,
        values: PackedSeq::Wire { presence, rest },
    })
}

fn read_batch(bytes: &[u8]) -> Result<Batch<'_>, FrameError> {
    let (time_ms, rest) =
        postcard::take_from_bytes::<u64>(bytes).map_err(|_| FrameError::Malformed("batch time"))?;
    Ok(Batch {
        time_ms,
        changes: Seq::Wire(rest),
    })
}
