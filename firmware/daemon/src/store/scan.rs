//! The recovery scan of one slot file: which segment it holds and how many of its fragments are
//! intact. Reads with positioned reads on a `&File`; writes nothing (repairs are the caller's).
//!
//! The scan walks from the init segment along the chain of fragments and event records and stops
//! at the first entry that does not continue it (another segment id — an older lap's bytes —, a
//! wrong index or position, a length past the slot end, an event record failing its checksum,
//! in a linked chain an entry that does not link to the one before it — bytes of an earlier
//! write of the same segment id) or, when asked to verify, a fragment whose checksum fails.
//! Everything before that point is kept: it is what the writer completed, in the order it wrote
//! it (design/storage.md, "Recovery", states the rule).

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::format::{
    is_tail_cover, EventRecord, FragmentHeader, HeaderError, SlotHeader, CRC32C,
    FRAGMENT_HEADER_BYTES, FREE_HEADER_BYTES, MAX_EVENT_RECORD_BYTES, SLOT_HEADER_BYTES,
};

/// One intact fragment found in a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragmentInfo {
    /// 0-based position in its segment.
    pub index: u32,
    /// Offset of the fragment's private header in the slot file.
    pub offset: u64,
    /// Offset of its `moof` (the fragment body, `moof` + `mdat`).
    pub body_offset: u64,
    /// Length of the body.
    pub body_len: u32,
    /// Wall-clock time of its first frame, Unix ms, as the recorder stamped it.
    pub wall_ms: i64,
    /// Media time of its first frame since the segment started, 90 kHz.
    pub base_90k: u64,
    /// Media duration, 90 kHz.
    pub duration_90k: u32,
    /// Video frames.
    pub frame_count: u32,
    /// Syncs of the segment before this fragment was written.
    pub segment_syncs: u32,
    /// The stored checksum, re-checked when the fragment is read back.
    pub crc: u32,
    /// Video is missing before this fragment (see [`FragmentHeader::discontinuity`]).
    pub discontinuity: bool,
}

impl FragmentInfo {
    /// Offset just past this fragment.
    pub fn end_offset(&self) -> u64 {
        self.body_offset + u64::from(self.body_len)
    }
}

/// How deeply to check fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Headers only: chain of segment id, index and lengths. Enough for slots that were synced
    /// when the writer left them.
    Headers,
    /// Headers and every fragment's checksum (reads the whole slot).
    Checksums,
}

/// Why the walk through a slot's fragments ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// At the `free` box covering the slot's tail: the writer's clean end.
    TailCover,
    /// At the slot's last byte.
    SlotEnd,
    /// At bytes that are not a fragment header or event record (torn write, zeroes, garbage).
    NotAFragment,
    /// At an event record that fails its checksum or does not continue the chain.
    BadEventRecord,
    /// At a fragment of another segment: an older lap's bytes.
    OlderLap,
    /// At a fragment whose checksum failed.
    ChecksumFailed {
        /// Its index in the segment.
        index: u32,
    },
    /// At a fragment whose declared length runs past the slot end.
    TooLong,
    /// At a fragment of this segment that does not link to the entry before it: bytes of an
    /// earlier write of the same segment id (a segment restarted after a power cut lost its
    /// header), never this write's continuation.
    BrokenLink {
        /// Its index in the segment.
        index: u32,
    },
}

/// What a slot holds.
#[derive(Clone, Debug)]
pub struct SlotScan {
    /// The segment header, when the slot holds a valid one.
    pub header: Option<SlotHeader>,
    /// The intact event records, in chain order.
    pub events: Vec<EventRecord>,
    /// Why there is no header (`Empty` for a never-written slot).
    pub header_problem: Option<HeaderError>,
    /// The init segment failed its checksum (the slot is then treated as empty).
    pub init_damaged: bool,
    /// The intact fragments, in order.
    pub fragments: Vec<FragmentInfo>,
    /// Where the next fragment would go: the end of the last intact fragment (or of the init
    /// segment).
    pub end_offset: u64,
    /// Why the walk stopped.
    pub end: ScanEnd,
}

/// Scans one slot file of `slot_bytes` bytes.
pub fn scan_slot(
    file: &File,
    slot_bytes: u64,
    store_id: u64,
    slot_index: u32,
    verify: Verify,
) -> std::io::Result<SlotScan> {
    let mut empty = SlotScan {
        header: None,
        events: Vec::new(),
        header_problem: None,
        init_damaged: false,
        fragments: Vec::new(),
        end_offset: 0,
        end: ScanEnd::NotAFragment,
    };
    let mut region = vec![0u8; SLOT_HEADER_BYTES as usize];
    file.read_exact_at(&mut region, 0)?;
    let header = match SlotHeader::decode(&region) {
        Ok(header) if header.store_id == store_id && header.slot_index == slot_index => header,
        Ok(_) => {
            empty.header_problem = Some(HeaderError::Field("store_id/slot_index"));
            return Ok(empty);
        }
        Err(problem) => {
            empty.header_problem = Some(problem);
            return Ok(empty);
        }
    };
    let init_end = SLOT_HEADER_BYTES + u64::from(header.init_len);
    if init_end + FREE_HEADER_BYTES > slot_bytes {
        empty.header_problem = Some(HeaderError::Field("init_len"));
        return Ok(empty);
    }
    // The chain's running link: the checksum of the last entry accepted.
    let mut link = header.linked.then(|| SlotHeader::stored_crc(&region));
    let mut init = vec![0u8; header.init_len as usize];
    file.read_exact_at(&mut init, SLOT_HEADER_BYTES)?;
    if CRC32C.checksum(&init) != header.init_crc {
        empty.init_damaged = true;
        return Ok(empty);
    }

    let mut fragments = Vec::new();
    let mut events = Vec::new();
    let mut record = Vec::new();
    let mut offset = init_end;
    let mut head = [0u8; FRAGMENT_HEADER_BYTES as usize];
    let mut body = Vec::new();
    let end = loop {
        let remaining = slot_bytes - offset;
        if remaining < FREE_HEADER_BYTES {
            break ScanEnd::SlotEnd;
        }
        let head_len = remaining.min(FRAGMENT_HEADER_BYTES) as usize;
        let head = &mut head[..head_len];
        file.read_exact_at(head, offset)?;
        if is_tail_cover(head, remaining) {
            break ScanEnd::TailCover;
        }
        if let Some(declared) = EventRecord::declared_len(head) {
            // Records are small and rare: always checked, whatever `verify` says.
            if declared > remaining.min(MAX_EVENT_RECORD_BYTES) {
                break ScanEnd::BadEventRecord;
            }
            record.resize(declared as usize, 0);
            file.read_exact_at(&mut record, offset)?;
            match EventRecord::decode(&record, link) {
                Some((event, segment_id, crc))
                    if segment_id == header.segment_id
                        && event.after_fragments as usize == fragments.len() =>
                {
                    events.push(event);
                    link = link.map(|_| crc);
                    offset += declared;
                    continue;
                }
                Some((_, segment_id, _)) if segment_id != header.segment_id => {
                    break ScanEnd::OlderLap
                }
                _ => break ScanEnd::BadEventRecord,
            }
        }
        let Some((fragment, crc)) = FragmentHeader::decode(head) else {
            break ScanEnd::NotAFragment;
        };
        if fragment.segment_id != header.segment_id {
            break ScanEnd::OlderLap;
        }
        if fragment.index as usize != fragments.len() {
            break ScanEnd::NotAFragment;
        }
        if link.is_some_and(|link| link != fragment.link) {
            break ScanEnd::BrokenLink {
                index: fragment.index,
            };
        }
        let body_offset = offset + FRAGMENT_HEADER_BYTES;
        let end_offset = body_offset + u64::from(fragment.body_len);
        if end_offset > slot_bytes {
            break ScanEnd::TooLong;
        }
        if verify == Verify::Checksums {
            body.resize(fragment.body_len as usize, 0);
            file.read_exact_at(&mut body, body_offset)?;
            if !FragmentHeader::checksum_matches(head, &body, crc) {
                break ScanEnd::ChecksumFailed {
                    index: fragment.index,
                };
            }
        }
        fragments.push(FragmentInfo {
            index: fragment.index,
            offset,
            body_offset,
            body_len: fragment.body_len,
            wall_ms: fragment.wall_ms,
            base_90k: fragment.base_90k,
            duration_90k: fragment.duration_90k,
            frame_count: fragment.frame_count,
            segment_syncs: fragment.segment_syncs,
            crc,
            discontinuity: fragment.discontinuity,
        });
        link = link.map(|_| crc);
        offset = end_offset;
    };
    Ok(SlotScan {
        header: Some(header),
        events,
        header_problem: None,
        init_damaged: false,
        fragments,
        end_offset: offset,
        end,
    })
}
