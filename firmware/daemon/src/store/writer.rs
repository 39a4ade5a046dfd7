//! A camera's writer: turns GOPs into fragments in the camera's current slot, and event changes
//! into event records between them, starting a new segment (in a new slot) when the stream
//! parameters change, the segment is long enough (continuous recording), or the next GOP does not
//! fit the rest of the slot.
//!
//! Receives [`Gop`]s and event changes ([`CameraWriter::begin_event`],
//! [`CameraWriter::end_event`]); writes slot files with positioned writes (one vectored `pwritev`
//! per GOP — the fragment's header and `moof` from a reused buffer, the video straight from the
//! GOP's frames, never copied — and one `pwrite` per event record, plus one fdatasync per
//! `sync_interval` and at each event's end); publishes each
//! fragment and record to the store's index so listings include it at once. Blocking I/O on the
//! caller's thread; a writer is `Send` and is used by one thread (or task via `spawn_blocking`)
//! at a time.
//!
//! Media time: a segment's timeline runs on without gaps. When the camera's media time jumps
//! (a reconnect, or the hours between two events of an events-mode camera), the next fragment is
//! marked as a discontinuity and placed right after the previous one on the segment's timeline;
//! its wall-clock stamp says when it really was. So an events-mode camera fills its slots with
//! events back to back instead of spending a slot per event (design/storage.md, "Events").

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::format::{
    slot_path, EventInfo, EventRecord, FragmentHeader, SegmentKind, SlotHeader, CRC32C,
    FRAGMENT_HEADER_BYTES, FREE_HEADER_BYTES, MAX_CAMERA_NAME_BYTES, MAX_EVENT_RECORD_BYTES,
    SLOT_HEADER_BYTES,
};
use super::scan::FragmentInfo;
use super::{ring, RingState, SlotState, Store, StoreError};
use crate::media::{Gop, StreamParams, TIMESCALE_90K};
use crate::mux::{self, FragmentTimes};

/// A jump in media time between GOPs larger than this (half a second; far above any camera's
/// frame interval) means video is missing: the next fragment is a discontinuity.
const MAX_MEDIA_JUMP_90K: i64 = TIMESCALE_90K as i64 / 2;

/// Room every fragment leaves behind it in the slot for one event record, so the end of an
/// event always fits in the segment that holds its last video.
const RECORD_ROOM_BYTES: u64 = MAX_EVENT_RECORD_BYTES;

/// How a camera's segments are cut and synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterOptions {
    /// Target segment length in 90 kHz ticks of media time: once a segment is at least this
    /// long, the next GOP starts a new one (segments end on key frames, so they run up to one
    /// GOP longer). `None`: a segment ends only when its slot is full — what events mode uses,
    /// so short events share a slot instead of costing one each.
    pub segment_90k: Option<i64>,
    /// Longest time written data stays unsynced, the bound on video a power cut loses. Checked
    /// when a GOP is appended; call [`CameraWriter::sync`] from a timer if GOPs may stop.
    /// `Duration::ZERO` syncs every GOP.
    pub sync_interval: Duration,
    /// Slots this camera may hold before it wraps over its own oldest; `None` for an equal split
    /// of the store between the open writers (see `ring.rs`).
    pub share_slots: Option<u32>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            // 10 s segments, the ffmpeg one-liner's choice and the README's default.
            segment_90k: Some(10 * i64::from(TIMESCALE_90K)),
            // 2 s: at 4 Mbit/s a power cut loses at most ~1 MB of video.
            sync_interval: Duration::from_secs(2),
            share_slots: None,
        }
    }
}

/// Writes one camera's GOPs into the store. Obtain with [`Store::camera_writer`]; finish with
/// [`CameraWriter::close`] (dropping it also syncs, but cannot report errors).
///
/// An open writer is what gives a camera its share of the store: keep one per configured camera
/// for the life of the process, across RTSP reconnects (a reconnect's jump in media time becomes
/// a discontinuity in the segment). Closing the writer says the camera is gone, and its video
/// becomes the first to be overwritten by the others.
#[derive(Debug)]
pub struct CameraWriter {
    store: Store,
    camera: String,
    options: WriterOptions,
    segment: Option<OpenSegment>,
    /// The event being recorded, if any (its id assigned): every segment started while it lasts
    /// opens with its record.
    event: Option<EventInfo>,
    /// Reused buffers: the bytes of one write (for a GOP, everything before its frames' bytes),
    /// and an init segment.
    write_buf: Vec<u8>,
    init_buf: Vec<u8>,
}

#[derive(Debug)]
struct OpenSegment {
    slot: u32,
    path: PathBuf,
    file: File,
    segment_id: u64,
    params: Arc<StreamParams>,
    /// Where the next fragment or record goes (over the tail cover).
    next_offset: u64,
    next_index: u32,
    /// Maps the camera's media time onto the segment's gapless timeline.
    timeline: Timeline,
    last_sync: Instant,
    dirty: bool,
    syncs: u32,
    /// The checksum of the chain's last entry (the slot header's before the first): what the
    /// next entry links to.
    link: u32,
    /// The store's generation when the segment started (see `attach.rs`).
    generation: u64,
}

/// A segment's timeline: where each GOP goes in media time, with the gaps in the camera's media
/// time taken out.
#[derive(Clone, Copy, Debug)]
struct Timeline {
    /// The camera's media time of the segment's first frame.
    first_pts_90k: i64,
    /// Added to (pts − first) to place a frame: the sum of the gaps taken out.
    offset_90k: i64,
    /// Where the camera's next GOP would start if nothing was missing.
    expected_pts_90k: i64,
    /// Media duration of the segment so far.
    duration_90k: i64,
    /// The camera's audio time of the segment's first audio frame, and the audio offset.
    first_audio_pts: Option<i64>,
    audio_offset: i64,
}

/// Where one GOP goes on a segment's timeline.
#[derive(Clone, Copy, Debug)]
struct Placement {
    times: FragmentTimes,
    discontinuity: bool,
    timeline_after: Timeline,
}

impl Timeline {
    fn new(first_pts_90k: i64) -> Timeline {
        Timeline {
            first_pts_90k,
            offset_90k: 0,
            expected_pts_90k: first_pts_90k,
            duration_90k: 0,
            first_audio_pts: None,
            audio_offset: 0,
        }
    }

    /// Places `gop` (first frame at `first_pts`, fragment number `sequence_number`) after what
    /// the segment holds; nothing changes until the caller keeps `timeline_after`.
    fn place(&self, gop: &Gop, first_pts: i64, sequence_number: u32) -> Placement {
        let mut next = *self;
        // Camera timestamps are external input: saturate rather than overflow.
        let discontinuity = sequence_number > 1
            && first_pts.abs_diff(self.expected_pts_90k) > MAX_MEDIA_JUMP_90K.unsigned_abs();
        if discontinuity {
            // Take the gap out: this GOP starts where the segment's video ends.
            next.offset_90k = self
                .duration_90k
                .saturating_sub(first_pts.saturating_sub(self.first_pts_90k));
        }
        let video_base_90k = first_pts
            .saturating_sub(self.first_pts_90k)
            .saturating_add(next.offset_90k)
            .max(0);
        let audio_base = match gop.audio.first() {
            None => 0,
            Some(first) => {
                let rate = gop
                    .params
                    .audio
                    .as_ref()
                    .map_or(0, |a| i64::from(a.sample_rate));
                let segment_first = *next.first_audio_pts.get_or_insert(first.pts);
                if discontinuity {
                    // Line the audio up with the video again after the gap.
                    let video_in_audio_ticks =
                        video_base_90k.saturating_mul(rate) / i64::from(TIMESCALE_90K);
                    next.audio_offset = video_in_audio_ticks
                        .saturating_sub(first.pts.saturating_sub(segment_first));
                }
                first
                    .pts
                    .saturating_sub(segment_first)
                    .saturating_add(next.audio_offset)
                    .max(0) as u64
            }
        };
        next.duration_90k = video_base_90k.saturating_add(gop.duration_90k());
        next.expected_pts_90k = first_pts.saturating_add(gop.duration_90k());
        Placement {
            times: FragmentTimes {
                sequence_number,
                video_base_90k: video_base_90k as u64,
                audio_base,
            },
            discontinuity,
            timeline_after: next,
        }
    }
}

impl CameraWriter {
    pub(super) fn new(
        store: Store,
        camera: &str,
        options: WriterOptions,
    ) -> Result<CameraWriter, StoreError> {
        if camera.is_empty()
            || camera.len() > MAX_CAMERA_NAME_BYTES
            || camera.chars().any(char::is_control)
        {
            return Err(StoreError::Invalid {
                path: store.dir().to_owned(),
                problem: format!(
                    "camera name {camera:?} must be 1 to {MAX_CAMERA_NAME_BYTES} bytes without \
                     control characters"
                ),
            });
        }
        if !store.is_writable() {
            return Err(StoreError::Invalid {
                path: store.dir().to_owned(),
                problem: "store was opened read-only".into(),
            });
        }
        {
            let mut ring = store.ring();
            if ring.writers.contains_key(camera) {
                return Err(StoreError::CameraBusy {
                    path: store.dir().to_owned(),
                    camera: camera.to_owned(),
                });
            }
            ring.writers.insert(camera.to_owned(), options.share_slots);
        }
        Ok(CameraWriter {
            store,
            camera: camera.to_owned(),
            options,
            segment: None,
            event: None,
            write_buf: Vec::new(),
            init_buf: Vec::new(),
        })
    }

    /// The camera this writer records.
    pub fn camera(&self) -> &str {
        &self.camera
    }

    /// Writes `gop` as one fragment: one positioned write, plus an fdatasync when
    /// `sync_interval` has passed since the last one. Starts a new segment first when needed.
    ///
    /// A malformed GOP ([`StoreError::BadGop`]) is refused without touching the store; after an
    /// I/O error the current segment is closed and the next GOP starts a new one.
    pub fn append(&mut self, gop: &Gop) -> Result<(), StoreError> {
        let first_pts = match gop.frames.first() {
            Some(frame) if frame.is_key => frame.pts_90k,
            Some(_) => return Err(self.bad_gop("does not start with a key frame".into())),
            None => return Err(self.bad_gop("has no video frames".into())),
        };
        self.check_attached()?;
        if let Some(segment) = &self.segment {
            if self.segment_ends_before(segment, gop) {
                self.finish_segment()?;
            }
        }
        if self.segment.is_some() && self.append_to_segment(gop, first_pts)? {
            return Ok(());
        }
        if self.segment.is_some() {
            // The GOP did not fit in the rest of the slot.
            self.finish_segment()?;
        }
        self.start_segment(gop, first_pts)
    }

    /// Syncs data written since the last sync (fdatasync), if any.
    /// While the store is unavailable there is nothing to sync (see `attach.rs`).
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if self.check_attached().is_err() {
            return Ok(());
        }
        let Some(segment) = self.segment.as_mut() else {
            return Ok(());
        };
        if !segment.dirty {
            return Ok(());
        }
        let result = segment.file.sync_data().map_err(|e| {
            self.store.write_failed(&e);
            StoreError::io(&segment.path, "fdatasync slot", e)
        });
        segment.dirty = false;
        segment.last_sync = Instant::now();
        segment.syncs += 1;
        let (slot, generation) = (segment.slot, segment.generation);
        if let Some(state) = current_slot(&mut self.store.ring(), generation, slot) {
            state.counters.syncs += 1;
        }
        if result.is_err() {
            self.abandon_segment();
        }
        result
    }

    /// Marks video from now on as `event`'s: writes its record into the open segment now (or
    /// at the start of the next segment), and opens every segment started until
    /// [`CameraWriter::end_event`] with it, so each segment says which event it belongs to.
    /// For a pre-roll held in RAM, call this before appending the pre-roll GOPs.
    ///
    /// The first call for an event assigns its store-wide id (returned; `event.id` is ignored);
    /// calling it again while the event runs (same `start_wall_ms`) records a change, e.g. a
    /// sensor that joined. Event segments are protected from wrapping (see `ring.rs`).
    pub fn begin_event(&mut self, event: EventInfo) -> Result<u64, StoreError> {
        let id = match &self.event {
            Some(running) if running.start_wall_ms == event.start_wall_ms => running.id,
            _ => {
                let mut ring = self.store.ring();
                let id = ring.next_event_id;
                ring.next_event_id += 1;
                id
            }
        };
        self.event = Some(EventInfo {
            id,
            end_wall_ms: None,
            ..event
        });
        let fits = self.write_event_record(RECORD_ROOM_BYTES)?;
        if !fits {
            // The slot is full: the next segment opens with the record instead.
            self.finish_segment()?;
        }
        Ok(id)
    }

    /// Records the running event's end time (its record goes into the open segment, in the
    /// room every fragment leaves for it), syncs, and returns to plain video. The segment stays
    /// open: in events mode the next event continues it.
    pub fn end_event(&mut self, end_wall_ms: i64) -> Result<(), StoreError> {
        let Some(event) = self.event.as_mut() else {
            return Ok(());
        };
        event.end_wall_ms = Some(end_wall_ms);
        let result = match self.write_event_record(0) {
            Ok(true) => self.sync(),
            Ok(false) => {
                tracing::warn!(
                    camera = %self.camera,
                    event = event_id(&self.event),
                    "no room left in the slot for the event's end; it is listed without one"
                );
                Ok(())
            }
            Err(error) => Err(error),
        };
        self.event = None;
        result
    }

    /// The id of the event being recorded, if any.
    pub fn current_event(&self) -> Option<&EventInfo> {
        self.event.as_ref()
    }

    /// Ends the current segment now (synced); the next GOP starts a new one.
    pub fn end_segment(&mut self) -> Result<(), StoreError> {
        self.finish_segment()
    }

    /// Ends the current segment (synced) and releases the camera, reporting any error.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.finish_segment()
    }

    /// Writes the running event's record into the open segment, leaving `keep_free` bytes
    /// after it. `Ok(false)` when there is no room; `Ok(true)` when written or when no segment
    /// is open (the next segment starts with it).
    fn write_event_record(&mut self, keep_free: u64) -> Result<bool, StoreError> {
        let slot_bytes = self.store.layout().slot_bytes;
        self.check_attached()?;
        let (Some(segment), Some(event)) = (self.segment.as_mut(), self.event.as_ref()) else {
            return Ok(true);
        };
        let record = EventRecord {
            after_fragments: segment.next_index,
            event: event.clone(),
        };
        let offset = segment.next_offset;
        if offset + record.encoded_len() + keep_free + FREE_HEADER_BYTES > slot_bytes {
            return Ok(false);
        }
        self.write_buf.clear();
        let crc = record.encode(segment.segment_id, Some(segment.link), &mut self.write_buf);
        cover_rest(&mut self.write_buf, offset, slot_bytes);
        if let Err(e) = segment.file.write_all_at(&self.write_buf, offset) {
            self.store.write_failed(&e);
            let error = StoreError::io(&segment.path, "write event record", e);
            self.abandon_segment();
            return Err(error);
        }
        segment.link = crc;
        segment.dirty = true;
        segment.next_offset = offset + record.encoded_len();
        let (slot, generation) = (segment.slot, segment.generation);
        let mut ring = self.store.ring();
        if let Some(state) = current_slot(&mut ring, generation, slot) {
            state.end_offset = offset + record.encoded_len();
            state.events.push(record);
            state.counters.bytes_written += self.write_buf.len() as u64;
        }
        Ok(true)
    }

    fn segment_ends_before(&self, segment: &OpenSegment, gop: &Gop) -> bool {
        let params_changed =
            !Arc::ptr_eq(&segment.params, &gop.params) && *segment.params != *gop.params;
        let long_enough = self
            .options
            .segment_90k
            .is_some_and(|length| segment.timeline.duration_90k >= length);
        params_changed || long_enough
    }

    /// Writes the GOP into the open segment; `false` when it does not fit the rest of the slot.
    fn append_to_segment(&mut self, gop: &Gop, first_pts: i64) -> Result<bool, StoreError> {
        let slot_bytes = self.store.layout().slot_bytes;
        let Some(segment) = self.segment.as_mut() else {
            return Ok(false);
        };
        let placement = segment
            .timeline
            .place(gop, first_pts, segment.next_index + 1);
        // The fragment's head is muxed straight behind room for its header; the video is not
        // copied (see `write_fragment`).
        self.write_buf.clear();
        self.write_buf.resize(FRAGMENT_HEADER_BYTES as usize, 0);
        mux::write_fragment_head(gop, &placement.times, &mut self.write_buf)
            .map_err(|e| bad_gop(&self.store, &self.camera, e.to_string()))?;
        let fragment_bytes = self.write_buf.len() as u64 + payload_bytes(gop);
        if segment.next_offset + fragment_bytes + RECORD_ROOM_BYTES + FREE_HEADER_BYTES > slot_bytes
        {
            return Ok(false);
        }
        let offset = segment.next_offset;
        let info = encode_fragment(segment, gop, &placement, offset, &mut self.write_buf, 0)?;
        self.write_fragment(offset, gop, info, placement.timeline_after)?;
        Ok(true)
    }

    fn start_segment(&mut self, gop: &Gop, first_pts: i64) -> Result<(), StoreError> {
        let slot_bytes = self.store.layout().slot_bytes;
        self.init_buf.clear();
        mux::write_init_segment(&gop.params, &mut self.init_buf)
            .map_err(|e| self.bad_gop(e.to_string()))?;
        let timeline = Timeline::new(first_pts);
        let placement = timeline.place(gop, first_pts, 1);
        // The running event's record opens the segment, so it says which event it belongs to.
        let mut record = self.event.as_ref().map(|event| EventRecord {
            after_fragments: 0,
            event: event.clone(),
        });
        let record_len = record.as_ref().map_or(0, EventRecord::encoded_len) as usize;
        // Slot header, init segment, record and fragment header are filled in once the slot is
        // known; the fragment's head is muxed straight behind the room left for them.
        let init_at = SLOT_HEADER_BYTES as usize;
        let record_at = init_at + self.init_buf.len();
        let fragment_at = record_at + record_len;
        self.write_buf.clear();
        self.write_buf
            .resize(fragment_at + FRAGMENT_HEADER_BYTES as usize, 0);
        mux::write_fragment_head(gop, &placement.times, &mut self.write_buf)
            .map_err(|e| self.bad_gop(e.to_string()))?;
        let first_write_bytes = self.write_buf.len() as u64
            + payload_bytes(gop)
            + RECORD_ROOM_BYTES
            + FREE_HEADER_BYTES;
        if first_write_bytes > slot_bytes {
            return Err(self.bad_gop(format!(
                "needs {first_write_bytes} bytes, more than a whole slot ({slot_bytes} bytes); \
                 initialise the store with larger slots"
            )));
        }

        let (slot, header, reused, generation) = self.allocate_slot(gop)?;
        let path = slot_path(self.store.dir(), slot);
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(file) => file,
            Err(e) => {
                self.store.write_failed(&e);
                self.release_slot(slot, generation, true);
                return Err(StoreError::io(&path, "open slot for writing", e));
            }
        };
        let mut segment = OpenSegment {
            slot,
            path,
            file,
            segment_id: header.segment_id,
            params: Arc::clone(&gop.params),
            next_offset: SLOT_HEADER_BYTES + self.init_buf.len() as u64,
            next_index: 0,
            timeline,
            last_sync: Instant::now(),
            dirty: false,
            syncs: 0,
            link: 0,
            generation,
        };
        let mut head = Vec::with_capacity(fragment_at);
        segment.link = header.encode(&mut head);
        head.extend_from_slice(&self.init_buf);
        if let Some(record) = &record {
            segment.link = record.encode(header.segment_id, Some(segment.link), &mut head);
        }
        debug_assert_eq!(head.len(), fragment_at);
        // Same length as the room left for them, so nothing behind them moves.
        self.write_buf.splice(..fragment_at, head);
        segment.next_offset += record_len as u64;
        let mut write_at = 0;
        if reused {
            // The slot holds an older segment whose chain recovery walks by headers only. Put
            // the new header on the card before anything else, so a power cut cannot leave the
            // old header in front of new bytes written over the old fragments.
            let header_page = self
                .write_buf
                .get(..SLOT_HEADER_BYTES as usize)
                .unwrap_or_default();
            if let Err(e) = segment
                .file
                .write_all_at(header_page, 0)
                .and_then(|()| segment.file.sync_data())
            {
                self.store.write_failed(&e);
                self.release_slot(slot, generation, true);
                return Err(StoreError::io(&segment.path, "write slot header", e));
            }
            segment.syncs += 1;
            if let Some(state) = current_slot(&mut self.store.ring(), generation, slot) {
                state.counters.syncs += 1;
                state.counters.bytes_written += SLOT_HEADER_BYTES;
            }
            write_at = SLOT_HEADER_BYTES;
        }
        let offset = segment.next_offset;
        let info = encode_fragment(
            &mut segment,
            gop,
            &placement,
            offset,
            &mut self.write_buf,
            fragment_at,
        )?;
        if write_at > 0 {
            self.write_buf.drain(..write_at as usize);
        }
        if let (Some(record), Some(state)) = (
            record.take(),
            current_slot(&mut self.store.ring(), generation, slot),
        ) {
            state.events.push(record);
        }
        tracing::debug!(camera = %self.camera, slot, segment = header.segment_id, "segment started");
        self.segment = Some(segment);
        self.write_fragment(write_at, gop, info, placement.timeline_after)
    }

    /// Picks the slot, and records the new segment in the index (the slot's old content is no
    /// longer listed from here on; its fragments count as overwritten for their camera).
    /// Returns the slot, the new header, whether the slot held a segment before, and the
    /// store's generation.
    fn allocate_slot(&mut self, gop: &Gop) -> Result<(u32, SlotHeader, bool, u64), StoreError> {
        let store_id = self.store.inner.marker.store_id;
        let mut ring = self.store.ring();
        let index = ring::choose_slot(&ring.slots, &ring.writers, &self.camera, ring.event_share)
            .ok_or_else(|| StoreError::Full {
            path: self.store.dir().to_owned(),
            slot_count: self.store.layout().slot_count,
        })?;
        let segment_id = ring.next_segment_id;
        ring.next_segment_id += 1;
        let camera_fragments_before = ring.camera_written(&self.camera);
        let ring = &mut *ring;
        let state = ring
            .slots
            .get_mut(index)
            .ok_or_else(|| StoreError::Corrupt {
                path: self.store.dir().to_owned(),
                problem: format!("slot {index} missing from the index"),
            })?;
        let header = SlotHeader {
            store_id,
            slot_index: index as u32,
            segment_id,
            camera: self.camera.clone(),
            kind: if self.event.is_some() {
                SegmentKind::Event
            } else {
                SegmentKind::Continuous
            },
            codec: gop.params.video.codec,
            width: gop.params.video.width,
            height: gop.params.video.height,
            has_audio: gop.params.audio.is_some(),
            init_len: self.init_buf.len() as u32,
            init_crc: CRC32C.checksum(&self.init_buf),
            start_wall_ms: gop.start_wall_ms,
            lifetime_bytes_before: state.counters.bytes_written,
            lifetime_syncs_before: state.counters.syncs,
            laps_before: state.counters.segments as u32,
            camera_fragments_before,
            linked: true,
        };
        let reused = state.header.is_some();
        if let Some(old) = &state.header {
            let fragments = state.fragments.len() as u64;
            *ring.overwritten.entry(old.camera.clone()).or_default() += fragments;
            tracing::info!(
                camera = %self.camera,
                slot = index,
                overwritten_camera = %old.camera,
                overwritten_segment = old.segment_id,
                overwritten_fragments = fragments,
                overwritten_event = state.is_event(),
                "wrapping over slot"
            );
        }
        state.header = Some(header.clone());
        // A fresh index rather than a cleared one: a cleared Vec keeps the capacity of the
        // longest segment the slot ever held (an events-mode segment can hold hundreds of
        // fragments), and across the ring those capacities ratcheted the heap up for hours of
        // a soak. The index stays the size of what the store holds.
        state.events = Vec::new();
        state.fragments = Vec::new();
        state.end_offset = SLOT_HEADER_BYTES + u64::from(header.init_len);
        state.busy = true;
        state.counters.segments += 1;
        Ok((index as u32, header, reused, ring.generation))
    }

    /// Writes `write_buf`, then `gop`'s frames, then the cover over the rest of the slot, at
    /// `offset` in one vectored write; then publishes the fragment and syncs if due.
    fn write_fragment(
        &mut self,
        offset: u64,
        gop: &Gop,
        info: FragmentInfo,
        timeline_after: Timeline,
    ) -> Result<(), StoreError> {
        let slot_bytes = self.store.layout().slot_bytes;
        let Some(segment) = self.segment.as_mut() else {
            return Ok(());
        };
        let cover = tail_cover(info.end_offset(), slot_bytes);
        // One small allocation per GOP (the list of pieces), none per frame.
        let mut pieces = Vec::with_capacity(gop.frames.len() + gop.audio.len() + 2);
        pieces.push(IoSlice::new(&self.write_buf));
        pieces.extend(
            mux::fragment_payload(gop)
                .filter(|piece| !piece.is_empty())
                .map(IoSlice::new),
        );
        pieces.push(IoSlice::new(&cover));
        let written_bytes = info.end_offset() - offset + FREE_HEADER_BYTES;
        if let Err(e) = write_all_vectored_at(&segment.file, &mut pieces, offset) {
            self.store.write_failed(&e);
            let error = StoreError::io(&segment.path, "write fragment", e);
            self.abandon_segment();
            return Err(error);
        }
        segment.dirty = true;
        segment.next_offset = info.end_offset();
        segment.next_index += 1;
        segment.timeline = timeline_after;
        let (slot, generation) = (segment.slot, segment.generation);
        let due = segment.last_sync.elapsed() >= self.options.sync_interval;
        {
            let mut ring = self.store.ring();
            *ring.written.entry(self.camera.clone()).or_default() += 1;
            if let Some(state) = current_slot(&mut ring, generation, slot) {
                state.end_offset = info.end_offset();
                state.fragments.push(info);
                state.counters.bytes_written += written_bytes;
            }
        }
        if due {
            self.sync()?;
        }
        Ok(())
    }

    /// Syncs and closes the current segment, freeing its slot for others to wrap over.
    fn finish_segment(&mut self) -> Result<(), StoreError> {
        let result = self.sync();
        if let Some(segment) = self.segment.take() {
            self.release_slot(segment.slot, segment.generation, false);
        }
        result
    }

    /// Drops the current segment after an I/O error; its slot is listed as far as it was
    /// written and rescanned at the next open.
    fn abandon_segment(&mut self) {
        if let Some(segment) = self.segment.take() {
            self.release_slot(segment.slot, segment.generation, false);
        }
    }

    /// Refuses to write while the store is unavailable, and drops (unsynced, without touching
    /// the index) a segment opened before the store last detached: its descriptor may point into
    /// a directory or file system that is no longer the store.
    fn check_attached(&mut self) -> Result<(), StoreError> {
        if !self.store.is_attached() {
            self.segment = None;
            return Err(StoreError::Unavailable {
                path: self.store.dir().to_owned(),
                status: self.store.status().name(),
            });
        }
        let generation = self.store.ring().generation;
        if self
            .segment
            .as_ref()
            .is_some_and(|s| s.generation != generation)
        {
            self.segment = None;
        }
        Ok(())
    }

    fn release_slot(&self, slot: u32, generation: u64, forget_segment: bool) {
        let mut ring = self.store.ring();
        if let Some(state) = current_slot(&mut ring, generation, slot) {
            state.busy = false;
            if forget_segment {
                *state = SlotState {
                    counters: state.counters,
                    ..SlotState::default()
                };
            } else {
                // The segment is complete: give back the growth slack of its index.
                state.fragments.shrink_to_fit();
                state.events.shrink_to_fit();
            }
        }
    }

    fn bad_gop(&self, problem: String) -> StoreError {
        bad_gop(&self.store, &self.camera, problem)
    }
}

impl Drop for CameraWriter {
    fn drop(&mut self) {
        if let Err(error) = self.finish_segment() {
            tracing::warn!(camera = %self.camera, %error, "closing the segment failed");
        }
        self.store.ring().writers.remove(&self.camera);
    }
}

/// The index entry of `slot`, unless the store detached or attached again since `generation`
/// (the index no longer describes what that writer wrote).
fn current_slot(ring: &mut RingState, generation: u64, slot: u32) -> Option<&mut SlotState> {
    if ring.generation != generation {
        return None;
    }
    ring.slots.get_mut(slot as usize)
}

fn event_id(event: &Option<EventInfo>) -> u64 {
    event.as_ref().map_or(0, |e| e.id)
}

fn bad_gop(store: &Store, camera: &str, problem: String) -> StoreError {
    StoreError::BadGop {
        path: store.dir().to_owned(),
        camera: camera.to_owned(),
        problem,
    }
}

/// Fills in the header of the fragment whose header room starts at `buf[header_at]` and whose
/// body is the rest of `buf` (its head: `moof` and `mdat` header) followed by `gop`'s payload
/// ([`mux::fragment_payload`]); `offset` is where the fragment goes in the slot.
fn encode_fragment(
    segment: &mut OpenSegment,
    gop: &Gop,
    placement: &Placement,
    offset: u64,
    buf: &mut [u8],
    header_at: usize,
) -> Result<FragmentInfo, StoreError> {
    let body_at = header_at + FRAGMENT_HEADER_BYTES as usize;
    let head = buf.get(body_at..).unwrap_or_default();
    let body_bytes = head.len() as u64 + payload_bytes(gop);
    let body_len = u32::try_from(body_bytes).map_err(|_| StoreError::BadGop {
        path: segment.path.clone(),
        camera: String::new(),
        problem: "fragment larger than 4 GiB".into(),
    })?;
    let header = FragmentHeader {
        segment_id: segment.segment_id,
        index: segment.next_index,
        body_len,
        wall_ms: gop.start_wall_ms,
        base_90k: placement.times.video_base_90k,
        duration_90k: u32::try_from(gop.duration_90k().max(0)).unwrap_or(u32::MAX),
        frame_count: gop.frames.len() as u32,
        segment_syncs: segment.syncs,
        discontinuity: placement.discontinuity,
        link: segment.link,
    };
    let mut header_bytes = Vec::with_capacity(FRAGMENT_HEADER_BYTES as usize);
    header.encode_pieces(
        std::iter::once(head).chain(mux::fragment_payload(gop)),
        &mut header_bytes,
    );
    debug_assert_eq!(header_bytes.len(), FRAGMENT_HEADER_BYTES as usize);
    let crc = header_bytes
        .get(header_bytes.len() - 4..)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .unwrap_or_default();
    if let Some(room) = buf.get_mut(header_at..body_at) {
        room.copy_from_slice(&header_bytes);
    }
    segment.link = crc;
    Ok(FragmentInfo {
        index: header.index,
        offset,
        body_offset: offset + FRAGMENT_HEADER_BYTES,
        body_len,
        wall_ms: header.wall_ms,
        base_90k: header.base_90k,
        duration_90k: header.duration_90k,
        frame_count: header.frame_count,
        segment_syncs: header.segment_syncs,
        crc,
        discontinuity: header.discontinuity,
    })
}

/// Bytes of `gop`'s fragment payload (its frames), which follow the fragment's head.
fn payload_bytes(gop: &Gop) -> u64 {
    mux::fragment_payload(gop)
        .map(|piece| piece.len() as u64)
        .sum()
}

/// The `free` box header that hides everything from `end` to the end of the slot.
fn tail_cover(end: u64, slot_bytes: u64) -> [u8; FREE_HEADER_BYTES as usize] {
    let mut cover = [0u8; FREE_HEADER_BYTES as usize];
    let remaining = (slot_bytes - end) as u32;
    cover[..4].copy_from_slice(&remaining.to_be_bytes());
    cover[4..].copy_from_slice(b"free");
    cover
}

/// Most pieces one `pwritev` takes (Linux's `IOV_MAX`); a GOP with more frames than this is
/// written in several calls.
const IOV_MAX: usize = 1024;

/// Writes every piece of `pieces`, in order, at `offset` of `file`: `pwritev` calls of up to
/// [`IOV_MAX`] pieces, continuing after a short write where it stopped. Pieces must not be empty.
fn write_all_vectored_at(
    file: &File,
    mut pieces: &mut [IoSlice<'_>],
    mut offset: u64,
) -> io::Result<()> {
    while !pieces.is_empty() {
        let batch = pieces.get(..IOV_MAX.min(pieces.len())).unwrap_or_default();
        let written = match rustix::io::pwritev(file, batch, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => written,
            Err(rustix::io::Errno::INTR) => continue,
            Err(errno) => return Err(errno.into()),
        };
        offset += written as u64;
        IoSlice::advance_slices(&mut pieces, written);
    }
    Ok(())
}

/// Appends the `free` box header that hides everything from the end of `buf` (written at
/// `buf_offset`) to the end of the slot.
fn cover_rest(buf: &mut Vec<u8>, buf_offset: u64, slot_bytes: u64) {
    let end = buf_offset + buf.len() as u64;
    let remaining = slot_bytes - end;
    crate::mux::boxes::put_free_box_header(buf, remaining as u32);
}
