//! The on-disk format of a store, as bytes: the marker file, the slot header and the per-fragment
//! header. Encoding and decoding only, no I/O (see design/storage.md for the picture).
//!
//! A slot file is a playable fragmented MP4:
//!
//! ```text
//! offset 0     free box, 4096 bytes: slot header (magic "EVSH", segment id, camera, checksums)
//! 4096         ftyp + moov: the segment's init segment (init_len bytes)
//! ...          per fragment: free box, 72 bytes: fragment header (magic "EVFH"), then moof + mdat;
//!              between fragments, event records: a free box (magic "EVER") with an event's state
//! ...          free box header (8 bytes) whose size reaches the slot end: covers older bytes
//! ```
//!
//! Players skip `free` boxes, so they see only the init segment and this lap's fragments.

use std::path::{Path, PathBuf};

use crate::media::VideoCodec;
use crate::mux::boxes::{put_free_box_header, put_u16, put_u32, put_u64, put_u8, put_zeros};

/// File name of the marker that makes a directory a store.
pub const MARKER_FILE: &str = "edgenvr-store.json";
/// Subdirectory holding the slot files.
pub const SLOTS_DIR: &str = "slots";
/// The `format` field of every marker.
pub const MARKER_FORMAT: &str = "edgenvr-store";
/// The format version this code writes and reads. Version 2 (issue 11) put event records in the
/// fragment chain (version 1 had one event per slot, in the slot header page) and added a flags
/// byte to fragment headers and the camera's fragment counter to slot headers. A version-1 store
/// is refused with a message saying so ([`read_marker`](super::init)); version-1 binaries refuse
/// version-2 stores the same way.
pub const FORMAT_VERSION: u32 = 2;
/// The marker is padded to one 512-byte sector so rewriting it in place is a single sector write.
pub const MARKER_BYTES: usize = 512;
/// The slot header region: one 4 KiB page, so the init segment starts page-aligned.
pub const SLOT_HEADER_BYTES: u64 = 4096;
/// The fragment header box: 8-byte box header plus 64 bytes of fields.
pub const FRAGMENT_HEADER_BYTES: u64 = 72;
/// A `free` box header covering the rest of a slot.
pub const FREE_HEADER_BYTES: u64 = 8;
/// Longest camera name, in UTF-8 bytes, that a slot header holds.
pub const MAX_CAMERA_NAME_BYTES: usize = 64;

const SLOT_MAGIC: &[u8; 4] = b"EVSH";
const FRAGMENT_MAGIC: &[u8; 4] = b"EVFH";
const EVENT_MAGIC: &[u8; 4] = b"EVER";
/// Bytes of the slot header payload covered by its checksum (the checksum follows them).
const SLOT_HEADER_CHECKED_BYTES: usize = 248;
/// Bytes of the fragment header payload covered by its checksum (the checksum follows them).
pub const FRAGMENT_HEADER_CHECKED_BYTES: usize = 60;

/// CRC-32C (Castagnoli), the checksum of headers, init segments and fragments: every byte of
/// video passes through it (the CPU's CRC instruction where it has one, see `checksum.rs`).
pub use super::checksum::CRC32C;

/// The state an init left the store in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerState {
    /// Slots are still being provisioned; `store init` resumes.
    Initialising,
    /// The store can be opened.
    Ready,
}

/// The marker file's contents (JSON, padded with spaces to [`MARKER_BYTES`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Marker {
    /// Always [`MARKER_FORMAT`].
    pub format: String,
    /// The format version, [`FORMAT_VERSION`].
    pub version: u32,
    /// Random id of this store, repeated in every slot header.
    pub store_id: u64,
    /// Number of slot files.
    pub slot_count: u32,
    /// Size of every slot file.
    pub slot_bytes: u64,
    /// Whether provisioning finished.
    pub state: MarkerState,
}

impl Marker {
    /// The marker as written: JSON padded to [`MARKER_BYTES`] with spaces and a newline.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        if bytes.len() < MARKER_BYTES {
            bytes.resize(MARKER_BYTES - 1, b' ');
            bytes.push(b'\n');
        }
        bytes
    }
}

/// The path of slot `index` inside store `dir`.
pub fn slot_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(SLOTS_DIR).join(format!("slot-{index:05}.mp4"))
}

/// What kind of recording a segment holds, as decided when it started (a segment of either kind
/// may also hold event records that start later: see [`SegmentInfo::is_event`](super::SegmentInfo)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    /// Continuous recording: wraps over the oldest.
    Continuous,
    /// Started while an event was being recorded.
    Event,
}

/// The header at the start of a slot, describing the segment it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotHeader {
    /// The store this slot belongs to.
    pub store_id: u64,
    /// The slot's own index (a copied slot file is recognised as foreign).
    pub slot_index: u32,
    /// Store-wide, strictly increasing segment number; orders segments by recording time.
    pub segment_id: u64,
    /// Camera name.
    pub camera: String,
    /// Continuous or event.
    pub kind: SegmentKind,
    /// Video codec of the segment.
    pub codec: VideoCodec,
    /// Coded width.
    pub width: u16,
    /// Coded height.
    pub height: u16,
    /// Whether the init segment has an audio track.
    pub has_audio: bool,
    /// Length of the init segment that follows the header.
    pub init_len: u32,
    /// CRC-32C of the init segment.
    pub init_crc: u32,
    /// Wall-clock time of the segment's first frame, Unix ms.
    pub start_wall_ms: i64,
    /// Bytes written to this slot file by earlier segments (wear counter).
    pub lifetime_bytes_before: u64,
    /// fdatasync calls on this slot file by earlier segments (wear counter).
    pub lifetime_syncs_before: u64,
    /// Segments written to this slot before this one (laps).
    pub laps_before: u32,
    /// Fragments the camera had written to the store before this segment: its running total,
    /// which the newest segment carries forward so the store can say how many were written,
    /// are listed and were wrapped over ([`CameraTotals`](super::CameraTotals)).
    pub camera_fragments_before: u64,
}

/// Why header bytes were not accepted.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    /// All zeroes: a slot that was never written.
    #[error("empty")]
    Empty,
    /// Not our magic, or a box header that does not fit.
    #[error("no slot header (unknown magic)")]
    NoMagic,
    /// A version this code does not read.
    #[error("slot header version {0} is not supported")]
    Version(u16),
    /// The checksum does not match.
    #[error("slot header checksum mismatch")]
    Checksum,
    /// A field has an impossible value.
    #[error("slot header field {0} is invalid")]
    Field(&'static str),
}

fn codec_byte(codec: VideoCodec) -> u8 {
    match codec {
        VideoCodec::H264 => 1,
        VideoCodec::H265 => 2,
    }
}

impl SlotHeader {
    /// Appends the 4096-byte header region (a `free` box) to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        let start = buf.len();
        put_free_box_header(buf, SLOT_HEADER_BYTES as u32);
        let payload_start = buf.len();
        buf.extend_from_slice(SLOT_MAGIC);
        put_u16(buf, FORMAT_VERSION as u16);
        put_u8(
            buf,
            match self.kind {
                SegmentKind::Continuous => 0,
                SegmentKind::Event => 1,
            },
        );
        put_u8(buf, codec_byte(self.codec));
        put_u64(buf, self.store_id);
        put_u32(buf, self.slot_index);
        put_u32(buf, self.init_len);
        put_u64(buf, self.segment_id);
        put_u32(buf, self.init_crc);
        put_u16(buf, self.width);
        put_u16(buf, self.height);
        put_u64(buf, self.start_wall_ms as u64);
        put_u64(buf, self.lifetime_bytes_before);
        put_u64(buf, self.lifetime_syncs_before);
        put_u32(buf, self.laps_before);
        put_u8(buf, u8::from(self.has_audio));
        put_u64(buf, self.camera_fragments_before);
        let name = self.camera.as_bytes();
        let name = name.get(..MAX_CAMERA_NAME_BYTES).unwrap_or(name);
        put_u8(buf, name.len() as u8);
        buf.extend_from_slice(name);
        put_zeros(buf, SLOT_HEADER_CHECKED_BYTES - (buf.len() - payload_start));
        let crc = CRC32C.checksum(&buf[payload_start..]);
        put_u32(buf, crc);
        // The rest of the page stays zero.
        put_zeros(buf, SLOT_HEADER_BYTES as usize - (buf.len() - start));
    }

    /// Decodes the header region (at least [`SLOT_HEADER_BYTES`] bytes).
    pub fn decode(region: &[u8]) -> Result<SlotHeader, HeaderError> {
        let region = region
            .get(..SLOT_HEADER_BYTES as usize)
            .ok_or(HeaderError::NoMagic)?;
        if region.iter().all(|b| *b == 0) {
            return Err(HeaderError::Empty);
        }
        let mut r = Reader::new(region);
        if r.u32() != Some(SLOT_HEADER_BYTES as u32) || r.take(4) != Some(b"free") {
            return Err(HeaderError::NoMagic);
        }
        let payload = region.get(8..).ok_or(HeaderError::NoMagic)?;
        if r.take(4) != Some(SLOT_MAGIC) {
            return Err(HeaderError::NoMagic);
        }
        let version = r.u16().ok_or(HeaderError::NoMagic)?;
        if u32::from(version) != FORMAT_VERSION {
            return Err(HeaderError::Version(version));
        }
        let checked = payload
            .get(..SLOT_HEADER_CHECKED_BYTES)
            .ok_or(HeaderError::Checksum)?;
        let stored_crc = payload
            .get(SLOT_HEADER_CHECKED_BYTES..SLOT_HEADER_CHECKED_BYTES + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes);
        if stored_crc != Some(CRC32C.checksum(checked)) {
            return Err(HeaderError::Checksum);
        }
        let field = |name| HeaderError::Field(name);
        let kind = match r.u8().ok_or(field("kind"))? {
            0 => SegmentKind::Continuous,
            1 => SegmentKind::Event,
            _ => return Err(field("kind")),
        };
        let codec = match r.u8().ok_or(field("codec"))? {
            1 => VideoCodec::H264,
            2 => VideoCodec::H265,
            _ => return Err(field("codec")),
        };
        let store_id = r.u64().ok_or(field("store_id"))?;
        let slot_index = r.u32().ok_or(field("slot_index"))?;
        let init_len = r.u32().ok_or(field("init_len"))?;
        let segment_id = r.u64().ok_or(field("segment_id"))?;
        let init_crc = r.u32().ok_or(field("init_crc"))?;
        let width = r.u16().ok_or(field("width"))?;
        let height = r.u16().ok_or(field("height"))?;
        let start_wall_ms = r.u64().ok_or(field("start_wall_ms"))? as i64;
        let lifetime_bytes_before = r.u64().ok_or(field("lifetime_bytes"))?;
        let lifetime_syncs_before = r.u64().ok_or(field("lifetime_syncs"))?;
        let laps_before = r.u32().ok_or(field("laps"))?;
        let has_audio = r.u8().ok_or(field("has_audio"))? != 0;
        let camera_fragments_before = r.u64().ok_or(field("camera_fragments"))?;
        let name_len = usize::from(r.u8().ok_or(field("camera"))?);
        if name_len > MAX_CAMERA_NAME_BYTES {
            return Err(field("camera"));
        }
        let camera = r
            .take(name_len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or(field("camera"))?
            .to_owned();
        Ok(SlotHeader {
            store_id,
            slot_index,
            segment_id,
            camera,
            kind,
            codec,
            width,
            height,
            has_audio,
            init_len,
            init_crc,
            start_wall_ms,
            lifetime_bytes_before,
            lifetime_syncs_before,
            laps_before,
            camera_fragments_before,
        })
    }
}

/// Most sensors an event record names; more are dropped from the end (the config's sensors are
/// few, so this only bounds what a damaged or hostile record can claim).
pub const MAX_EVENT_SENSORS: usize = 32;
/// Longest sensor name an event record holds, in bytes (config names are at most 32 characters).
pub const MAX_EVENT_SENSOR_BYTES: usize = 64;
/// Longest event record: fixed fields, [`MAX_EVENT_SENSORS`] names, checksum.
pub const MAX_EVENT_RECORD_BYTES: u64 =
    EVENT_RECORD_FIXED_BYTES + (MAX_EVENT_SENSORS * (1 + MAX_EVENT_SENSOR_BYTES)) as u64 + 4;
/// Box header, magic, version, flags, reserved, segment id, position, event id, three times,
/// sensor count.
const EVENT_RECORD_FIXED_BYTES: u64 = 8 + 4 + 1 + 1 + 2 + 8 + 4 + 8 + 8 + 8 + 8 + 1;
const EVENT_ENDED_FLAG: u8 = 1;

/// An event as recorded: what happened, when, and which video it asks for. Written into the
/// fragment chain as an [`EventRecord`] whenever it changes (begin, a sensor joins, end) and
/// at the start of each further segment while it lasts; the newest record of an event wins.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventInfo {
    /// Store-wide event number, assigned by the camera writer when the event begins.
    pub id: u64,
    /// When the event started (first trigger), Unix ms.
    pub start_wall_ms: i64,
    /// Where its video is to start: the trigger minus the camera's pre-roll, Unix ms. The
    /// listing clips it to the video that exists (and rounds it down to a key frame).
    pub video_from_wall_ms: i64,
    /// When it ended (post-roll over), Unix ms; `None` while it lasts or if the recorder stopped.
    pub end_wall_ms: Option<i64>,
    /// Names of the sensors that triggered it.
    pub sensors: Vec<String>,
}

/// One event record in a segment's chain: the event's state at the time of writing, and how
/// many of the segment's fragments precede the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// The fragments of the segment written before this record.
    pub after_fragments: u32,
    /// The event's state.
    pub event: EventInfo,
}

impl EventRecord {
    /// Appends the record box (a `free` box, [`EventRecord::encoded_len`] bytes) for segment
    /// `segment_id` to `buf`. Sensor names beyond [`MAX_EVENT_SENSORS`] or longer than
    /// [`MAX_EVENT_SENSOR_BYTES`] are left out.
    pub fn encode(&self, segment_id: u64, buf: &mut Vec<u8>) {
        let sensors: Vec<&String> = self.kept_sensors().collect();
        let size = self.encoded_len();
        let start = buf.len();
        put_free_box_header(buf, size as u32);
        buf.extend_from_slice(EVENT_MAGIC);
        put_u8(buf, FORMAT_VERSION as u8);
        let ended = self.event.end_wall_ms.is_some();
        put_u8(buf, if ended { EVENT_ENDED_FLAG } else { 0 });
        put_u16(buf, 0);
        put_u64(buf, segment_id);
        put_u32(buf, self.after_fragments);
        put_u64(buf, self.event.id);
        put_u64(buf, self.event.start_wall_ms as u64);
        put_u64(buf, self.event.video_from_wall_ms as u64);
        put_u64(buf, self.event.end_wall_ms.unwrap_or(0) as u64);
        put_u8(buf, sensors.len() as u8);
        for sensor in sensors {
            put_u8(buf, sensor.len() as u8);
            buf.extend_from_slice(sensor.as_bytes());
        }
        let crc = CRC32C.checksum(&buf[start + 8..]);
        put_u32(buf, crc);
        debug_assert_eq!((buf.len() - start) as u64, size);
    }

    /// Bytes [`EventRecord::encode`] appends.
    pub fn encoded_len(&self) -> u64 {
        EVENT_RECORD_FIXED_BYTES + self.kept_sensors().map(|s| 1 + s.len() as u64).sum::<u64>() + 4
    }

    fn kept_sensors(&self) -> impl Iterator<Item = &String> {
        self.event
            .sensors
            .iter()
            .filter(|s| s.len() <= MAX_EVENT_SENSOR_BYTES)
            .take(MAX_EVENT_SENSORS)
    }

    /// The declared size of the record box starting at `head` (its first bytes), when `head`
    /// starts with an event record's box header and magic; `None` otherwise.
    pub fn declared_len(head: &[u8]) -> Option<u64> {
        let mut r = Reader::new(head);
        let size = u64::from(r.u32()?);
        (r.take(4)? == b"free" && r.take(4)? == EVENT_MAGIC).then_some(size)
    }

    /// Decodes a whole record box, checking its checksum; returns the record and its segment id.
    /// `None` for anything else (damage, another box, a different version).
    pub fn decode(bytes: &[u8]) -> Option<(EventRecord, u64)> {
        let size = usize::try_from(Self::declared_len(bytes)?).ok()?;
        if !(EVENT_RECORD_FIXED_BYTES as usize + 4..=MAX_EVENT_RECORD_BYTES as usize)
            .contains(&size)
        {
            return None;
        }
        let bytes = bytes.get(..size)?;
        let (checked, crc) = bytes.get(8..)?.split_at(size - 8 - 4);
        if CRC32C.checksum(checked) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut r = Reader::new(checked);
        r.take(4)?;
        if u32::from(r.u8()?) != FORMAT_VERSION {
            return None;
        }
        let flags = r.u8()?;
        r.u16()?;
        let segment_id = r.u64()?;
        let after_fragments = r.u32()?;
        let id = r.u64()?;
        let start_wall_ms = r.u64()? as i64;
        let video_from_wall_ms = r.u64()? as i64;
        let end_wall_ms = r.u64()? as i64;
        let count = usize::from(r.u8()?);
        if count > MAX_EVENT_SENSORS {
            return None;
        }
        let mut sensors = Vec::with_capacity(count);
        for _ in 0..count {
            let len = usize::from(r.u8()?);
            let name = std::str::from_utf8(r.take(len)?).ok()?;
            sensors.push(name.to_owned());
        }
        if r.remaining() != 0 {
            return None;
        }
        let event = EventInfo {
            id,
            start_wall_ms,
            video_from_wall_ms,
            end_wall_ms: (flags & EVENT_ENDED_FLAG != 0).then_some(end_wall_ms),
            sensors,
        };
        Some((
            EventRecord {
                after_fragments,
                event,
            },
            segment_id,
        ))
    }
}

/// The private header written (as a `free` box) before each fragment's `moof`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    /// The segment the fragment belongs to; a different id means an older lap's bytes.
    pub segment_id: u64,
    /// 0 for the segment's first fragment, then increasing by one.
    pub index: u32,
    /// Length of the `moof` + `mdat` that follow.
    pub body_len: u32,
    /// Wall-clock time of the fragment's first frame, Unix ms (as given by the caller).
    pub wall_ms: i64,
    /// Media time of the first frame since the segment started, 90 kHz.
    pub base_90k: u64,
    /// Media duration of the fragment, 90 kHz.
    pub duration_90k: u32,
    /// Video frames in the fragment.
    pub frame_count: u32,
    /// fdatasync calls on this segment before this fragment was written (wear counter).
    pub segment_syncs: u32,
    /// Video is missing before this fragment: the camera's media time jumped (a reconnect, or
    /// the gap between two events of an events-mode camera). The segment's own timeline runs on
    /// without the gap; the wall clock says how long it was.
    pub discontinuity: bool,
}

/// [`FragmentHeader::discontinuity`] in the flags byte.
const DISCONTINUITY_FLAG: u8 = 1;

impl FragmentHeader {
    /// Appends the 72-byte header box to `buf`; the checksum covers the fields and `body`.
    pub fn encode(&self, body: &[u8], buf: &mut Vec<u8>) {
        self.encode_pieces([body], buf);
    }

    /// [`FragmentHeader::encode`] for a body given in pieces (the fragment's head, then each
    /// frame's bytes), hashed in order as if joined.
    pub fn encode_pieces<'a>(&self, body: impl IntoIterator<Item = &'a [u8]>, buf: &mut Vec<u8>) {
        put_free_box_header(buf, FRAGMENT_HEADER_BYTES as u32);
        let payload_start = buf.len();
        buf.extend_from_slice(FRAGMENT_MAGIC);
        put_u8(buf, FORMAT_VERSION as u8);
        put_u8(
            buf,
            if self.discontinuity {
                DISCONTINUITY_FLAG
            } else {
                0
            },
        );
        put_zeros(buf, 2);
        put_u64(buf, self.segment_id);
        put_u32(buf, self.index);
        put_u32(buf, self.body_len);
        put_u64(buf, self.wall_ms as u64);
        put_u64(buf, self.base_90k);
        put_u32(buf, self.duration_90k);
        put_u32(buf, self.frame_count);
        put_u32(buf, self.segment_syncs);
        put_zeros(
            buf,
            FRAGMENT_HEADER_CHECKED_BYTES - (buf.len() - payload_start),
        );
        let mut digest = CRC32C.digest();
        digest.update(&buf[payload_start..]);
        for piece in body {
            digest.update(piece);
        }
        put_u32(buf, digest.finalize());
    }

    /// Decodes a header box; `None` when the bytes are not a fragment header (e.g. the `free`
    /// box that covers the slot's tail, an older format, or garbage). Returns the stored checksum
    /// alongside, to be checked against the body with [`FragmentHeader::checksum_matches`].
    pub fn decode(bytes: &[u8]) -> Option<(FragmentHeader, u32)> {
        let bytes = bytes.get(..FRAGMENT_HEADER_BYTES as usize)?;
        let mut r = Reader::new(bytes);
        if r.u32()? != FRAGMENT_HEADER_BYTES as u32 || r.take(4)? != b"free" {
            return None;
        }
        if r.take(4)? != FRAGMENT_MAGIC || u32::from(r.u8()?) != FORMAT_VERSION {
            return None;
        }
        let flags = r.u8()?;
        r.take(2)?;
        let header = FragmentHeader {
            segment_id: r.u64()?,
            index: r.u32()?,
            body_len: r.u32()?,
            wall_ms: r.u64()? as i64,
            base_90k: r.u64()?,
            duration_90k: r.u32()?,
            frame_count: r.u32()?,
            segment_syncs: r.u32()?,
            discontinuity: flags & DISCONTINUITY_FLAG != 0,
        };
        let crc_at = 8 + FRAGMENT_HEADER_CHECKED_BYTES;
        let crc = u32::from_be_bytes(bytes.get(crc_at..crc_at + 4)?.try_into().ok()?);
        Some((header, crc))
    }

    /// Whether `stored_crc` matches this header (re-encoded from `header_bytes`) and `body`.
    pub fn checksum_matches(header_bytes: &[u8], body: &[u8], stored_crc: u32) -> bool {
        let Some(fields) = header_bytes.get(8..8 + FRAGMENT_HEADER_CHECKED_BYTES) else {
            return false;
        };
        let mut digest = CRC32C.digest();
        digest.update(fields);
        digest.update(body);
        digest.finalize() == stored_crc
    }
}

/// Whether `bytes` start with a `free` box header that ends exactly at `remaining` bytes, i.e.
/// the cover over a slot's tail.
pub fn is_tail_cover(bytes: &[u8], remaining: u64) -> bool {
    let mut r = Reader::new(bytes);
    r.u32().map(u64::from) == Some(remaining) && r.take(4) == Some(b"free")
}

/// A bounds-checked big-endian cursor over untrusted bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(count)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2)?.try_into().ok().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_be_bytes)
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SlotHeader {
        SlotHeader {
            store_id: 0x1122_3344_5566_7788,
            slot_index: 7,
            segment_id: 42,
            camera: "front".into(),
            kind: SegmentKind::Continuous,
            codec: VideoCodec::H265,
            width: 320,
            height: 240,
            has_audio: true,
            init_len: 700,
            init_crc: 0xdead_beef,
            start_wall_ms: 1_700_000_000_000,
            lifetime_bytes_before: 1 << 33,
            lifetime_syncs_before: 99,
            laps_before: 3,
            camera_fragments_before: 1234,
        }
    }

    #[test]
    fn slot_header_round_trips_in_one_page() {
        let mut buf = Vec::new();
        header().encode(&mut buf);
        assert_eq!(buf.len(), SLOT_HEADER_BYTES as usize);
        assert_eq!(&buf[..8], &[0, 0, 0x10, 0, b'f', b'r', b'e', b'e']);
        assert_eq!(&buf[8..12], b"EVSH");
        assert_eq!(SlotHeader::decode(&buf), Ok(header()));
    }

    #[test]
    fn slot_header_rejects_damage_and_reports_empty() {
        let mut buf = Vec::new();
        header().encode(&mut buf);
        buf[40] ^= 1;
        assert_eq!(SlotHeader::decode(&buf), Err(HeaderError::Checksum));
        assert_eq!(SlotHeader::decode(&[0u8; 4096]), Err(HeaderError::Empty));
        assert_eq!(SlotHeader::decode(&[1u8; 10]), Err(HeaderError::NoMagic));
    }

    #[test]
    fn fragment_header_layout_and_checksum() {
        let fragment = FragmentHeader {
            segment_id: 5,
            index: 2,
            body_len: 3,
            wall_ms: -1,
            base_90k: 180_000,
            duration_90k: 90_000,
            frame_count: 25,
            segment_syncs: 1,
            discontinuity: true,
        };
        let body = [1u8, 2, 3];
        let mut buf = Vec::new();
        fragment.encode(&body, &mut buf);
        assert_eq!(buf.len(), FRAGMENT_HEADER_BYTES as usize);
        assert_eq!(
            &buf[..12],
            &[0, 0, 0, 72, b'f', b'r', b'e', b'e', b'E', b'V', b'F', b'H']
        );
        let (decoded, crc) = FragmentHeader::decode(&buf).unwrap();
        assert_eq!(decoded, fragment);
        assert!(FragmentHeader::checksum_matches(&buf, &body, crc));
        assert!(!FragmentHeader::checksum_matches(&buf, &[1, 2, 4], crc));
    }

    #[test]
    fn tail_cover_is_recognised_only_with_the_exact_size() {
        let mut buf = Vec::new();
        put_free_box_header(&mut buf, 1000);
        assert!(is_tail_cover(&buf, 1000));
        assert!(!is_tail_cover(&buf, 1001));
        assert!(FragmentHeader::decode(&buf).is_none());
    }

    fn record(end_wall_ms: Option<i64>, sensors: Vec<String>) -> EventRecord {
        EventRecord {
            after_fragments: 3,
            event: EventInfo {
                id: 17,
                start_wall_ms: 1_700_000_005_000,
                video_from_wall_ms: 1_700_000_000_000,
                end_wall_ms,
                sensors,
            },
        }
    }

    #[test]
    fn event_records_round_trip_and_reject_every_bit_flip() {
        for end in [None, Some(1_700_000_009_500)] {
            let record = record(end, vec!["pir-door".into(), "pir-yard".into()]);
            let mut bytes = Vec::new();
            record.encode(42, &mut bytes);
            assert_eq!(bytes.len() as u64, record.encoded_len());
            assert_eq!(&bytes[4..12], b"freeEVER");
            assert_eq!(EventRecord::declared_len(&bytes), Some(bytes.len() as u64));
            assert_eq!(EventRecord::decode(&bytes), Some((record.clone(), 42)));
            // A record is never mistaken for a fragment header, nor a fragment for a record.
            assert!(FragmentHeader::decode(&bytes).is_none());
            for bit in 0..bytes.len() * 8 {
                let mut damaged = bytes.clone();
                damaged[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(
                    EventRecord::decode(&damaged),
                    None,
                    "bit {bit} flipped and still decoded"
                );
            }
        }
        assert_eq!(EventRecord::decode(&[0u8; 100]), None);
    }

    #[test]
    fn an_event_record_keeps_at_most_its_bounds_of_sensors() {
        let crowded = record(Some(1), vec!["x".repeat(32); 100]);
        let mut bytes = Vec::new();
        crowded.encode(1, &mut bytes);
        assert!(bytes.len() as u64 <= MAX_EVENT_RECORD_BYTES);
        let (decoded, _) = EventRecord::decode(&bytes).unwrap();
        assert_eq!(decoded.event.sensors.len(), MAX_EVENT_SENSORS);
        let overlong = record(None, vec!["y".repeat(65), "ok".into()]);
        let mut bytes = Vec::new();
        overlong.encode(1, &mut bytes);
        let (decoded, _) = EventRecord::decode(&bytes).unwrap();
        assert_eq!(decoded.event.sensors, vec!["ok".to_string()]);
    }

    #[test]
    fn marker_is_one_sector_of_json() {
        let marker = Marker {
            format: MARKER_FORMAT.into(),
            version: FORMAT_VERSION,
            store_id: 9,
            slot_count: 4,
            slot_bytes: 1 << 20,
            state: MarkerState::Ready,
        };
        let bytes = marker.encode();
        assert_eq!(bytes.len(), MARKER_BYTES);
        let parsed: Marker = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed, marker);
    }
}
