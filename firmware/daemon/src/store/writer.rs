//! A camera's writer: turns GOPs into fragments in the camera's current slot, starting a new
//! segment (in a new slot) when the segment is long enough, the stream parameters change, media
//! time jumps, or the next GOP does not fit.
//!
//! Receives [`Gop`]s; writes slot files with positioned writes (one `write` per GOP, plus one
//! fdatasync per `sync_interval`); publishes each written fragment to the store's index so
//! listings include it at once. Blocking I/O on the caller's thread; a writer is `Send` and is
//! used by one thread (or task via `spawn_blocking`) at a time.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::format::{
    slot_path, EventInfo, FragmentHeader, SegmentKind, SlotHeader, CRC32C, EVENT_REGION_OFFSET,
    FRAGMENT_HEADER_BYTES, FREE_HEADER_BYTES, MAX_CAMERA_NAME_BYTES, SLOT_HEADER_BYTES,
};
use super::scan::FragmentInfo;
use super::{ring, SlotState, Store, StoreError};
use crate::media::{Gop, StreamParams, TIMESCALE_90K};
use crate::mux::{self, FragmentTimes};

/// A jump in media time between GOPs larger than this (half a second; far above any camera's
/// frame interval) means the stream restarted: the next GOP starts a new segment.
const MAX_MEDIA_JUMP_90K: i64 = TIMESCALE_90K as i64 / 2;

/// How a camera's segments are cut and synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterOptions {
    /// Target segment length in 90 kHz ticks: once a segment is at least this long, the next GOP
    /// starts a new one (segments end on key frames, so they run up to one GOP longer).
    pub segment_90k: i64,
    /// Longest time written data stays unsynced, the bound on video a power cut loses. Checked
    /// when a GOP is appended; call [`CameraWriter::sync`] from a timer if GOPs may stop.
    /// `Duration::ZERO` syncs every GOP.
    pub sync_interval: Duration,
    /// Slots this camera may hold before it wraps over its own oldest; `None` for an equal split
    /// of the store between the open writers.
    pub share_slots: Option<u32>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            // 10 s segments, the ffmpeg one-liner's choice and the README's default.
            segment_90k: 10 * i64::from(TIMESCALE_90K),
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
/// for the life of the process, across RTSP reconnects (a reconnect's jump in media time starts a
/// new segment by itself). Closing the writer says the camera is gone, and its video becomes the
/// first to be overwritten by the others.
#[derive(Debug)]
pub struct CameraWriter {
    store: Store,
    camera: String,
    options: WriterOptions,
    segment: Option<OpenSegment>,
    /// The event being recorded, if any: new segments are event segments carrying it.
    event: Option<EventInfo>,
    /// Reused buffers: the bytes of one write, and a fragment body.
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
    /// Where the next fragment goes (over the tail cover).
    next_offset: u64,
    next_index: u32,
    first_pts_90k: i64,
    expected_pts_90k: i64,
    first_audio_pts: Option<i64>,
    duration_90k: i64,
    last_sync: Instant,
    dirty: bool,
    syncs: u32,
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
        if let Some(segment) = &self.segment {
            if self.segment_ends_before(segment, gop, first_pts) {
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
    pub fn sync(&mut self) -> Result<(), StoreError> {
        let Some(segment) = self.segment.as_mut() else {
            return Ok(());
        };
        if !segment.dirty {
            return Ok(());
        }
        let result = segment
            .file
            .sync_data()
            .map_err(|e| StoreError::io(&segment.path, "fdatasync slot", e));
        segment.dirty = false;
        segment.last_sync = Instant::now();
        segment.syncs += 1;
        let slot = segment.slot;
        if let Some(state) = self.store.ring().slots.get_mut(slot as usize) {
            state.counters.syncs += 1;
        }
        if result.is_err() {
            self.abandon_segment();
        }
        result
    }

    /// Marks video from now on as event video: the current segment (if any) and every segment
    /// started until [`CameraWriter::end_event`] carry `event` and are protected from continuous
    /// recording (see [`Store::set_event_share_slots`]). For a pre-roll held in RAM, call this
    /// before appending the pre-roll GOPs. Marking the current segment rewrites its event region
    /// in place (one small write; the segment header's own sector is not touched).
    pub fn begin_event(&mut self, event: EventInfo) -> Result<(), StoreError> {
        self.event = Some(event);
        self.mark_current_segment()
    }

    /// Records the event's end time on the current segment and returns to continuous video: the
    /// next segment is an ordinary one.
    pub fn end_event(&mut self, end_wall_ms: i64) -> Result<(), StoreError> {
        if let Some(event) = self.event.as_mut() {
            event.end_wall_ms = Some(end_wall_ms);
        }
        let result = self.mark_current_segment();
        self.event = None;
        result
    }

    /// Ends the current segment now (synced); the next GOP starts a new one. For event-only
    /// recording between events.
    pub fn end_segment(&mut self) -> Result<(), StoreError> {
        self.finish_segment()
    }

    /// Ends the current segment (synced) and releases the camera, reporting any error.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.finish_segment()
    }

    /// Writes the current event into the open segment's event region.
    fn mark_current_segment(&mut self) -> Result<(), StoreError> {
        let (Some(segment), Some(event)) = (self.segment.as_mut(), self.event.as_ref()) else {
            return Ok(());
        };
        let region = event.encode_region();
        if let Err(e) = segment.file.write_all_at(&region, EVENT_REGION_OFFSET) {
            let error = StoreError::io(&segment.path, "write event metadata", e);
            self.abandon_segment();
            return Err(error);
        }
        segment.dirty = true;
        let slot = segment.slot;
        if let Some(state) = self.store.ring().slots.get_mut(slot as usize) {
            state.event = Some(event.clone());
            state.counters.bytes_written += region.len() as u64;
        }
        Ok(())
    }

    fn segment_ends_before(&self, segment: &OpenSegment, gop: &Gop, first_pts: i64) -> bool {
        let params_changed =
            !Arc::ptr_eq(&segment.params, &gop.params) && *segment.params != *gop.params;
        let long_enough = segment.duration_90k >= self.options.segment_90k;
        let media_jumped =
            first_pts.abs_diff(segment.expected_pts_90k) > MAX_MEDIA_JUMP_90K.unsigned_abs();
        params_changed || long_enough || media_jumped
    }

    /// Writes the GOP into the open segment; `false` when it does not fit the rest of the slot.
    fn append_to_segment(&mut self, gop: &Gop, first_pts: i64) -> Result<bool, StoreError> {
        let slot_bytes = self.store.layout().slot_bytes;
        let Some(segment) = self.segment.as_mut() else {
            return Ok(false);
        };
        let audio_base = audio_base(&mut segment.first_audio_pts, gop);
        let times = FragmentTimes {
            sequence_number: segment.next_index + 1,
            video_base_90k: first_pts.saturating_sub(segment.first_pts_90k).max(0) as u64,
            audio_base,
        };
        // The body is muxed straight behind room for its header: one copy of the video per GOP.
        self.write_buf.clear();
        self.write_buf.resize(FRAGMENT_HEADER_BYTES as usize, 0);
        mux::write_fragment(gop, &times, &mut self.write_buf)
            .map_err(|e| bad_gop(&self.store, &self.camera, e.to_string()))?;
        let fragment_bytes = self.write_buf.len() as u64;
        if segment.next_offset + fragment_bytes + FREE_HEADER_BYTES > slot_bytes {
            return Ok(false);
        }
        let offset = segment.next_offset;
        let info = encode_fragment(segment, gop, &times, offset, &mut self.write_buf, 0)?;
        cover_rest(&mut self.write_buf, offset, slot_bytes);
        self.write_fragment(offset, info, gop, first_pts)?;
        Ok(true)
    }

    fn start_segment(&mut self, gop: &Gop, first_pts: i64) -> Result<(), StoreError> {
        let slot_bytes = self.store.layout().slot_bytes;
        self.init_buf.clear();
        mux::write_init_segment(&gop.params, &mut self.init_buf)
            .map_err(|e| self.bad_gop(e.to_string()))?;
        let mut first_audio_pts = None;
        let times = FragmentTimes {
            sequence_number: 1,
            video_base_90k: 0,
            audio_base: audio_base(&mut first_audio_pts, gop),
        };
        // Slot header, init segment and fragment header are filled in once the slot is known;
        // the body is muxed straight behind the room left for them.
        let init_at = SLOT_HEADER_BYTES as usize;
        let fragment_at = init_at + self.init_buf.len();
        self.write_buf.clear();
        self.write_buf
            .resize(fragment_at + FRAGMENT_HEADER_BYTES as usize, 0);
        mux::write_fragment(gop, &times, &mut self.write_buf)
            .map_err(|e| self.bad_gop(e.to_string()))?;
        let first_write_bytes = self.write_buf.len() as u64 + FREE_HEADER_BYTES;
        if first_write_bytes > slot_bytes {
            return Err(self.bad_gop(format!(
                "needs {first_write_bytes} bytes, more than a whole slot ({slot_bytes} bytes); \
                 initialise the store with larger slots"
            )));
        }

        let (slot, header) = self.allocate_slot(gop)?;
        let path = slot_path(self.store.dir(), slot);
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(file) => file,
            Err(e) => {
                self.release_slot(slot, true);
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
            first_pts_90k: first_pts,
            expected_pts_90k: first_pts,
            first_audio_pts,
            duration_90k: 0,
            last_sync: Instant::now(),
            dirty: false,
            syncs: 0,
        };
        let mut slot_header = Vec::with_capacity(init_at);
        header.encode(&mut slot_header);
        if let Some(event) = &self.event {
            let region = event.encode_region();
            let at = EVENT_REGION_OFFSET as usize;
            if let Some(target) = slot_header.get_mut(at..at + region.len()) {
                target.copy_from_slice(&region);
            }
        }
        // Same lengths as the room left for them, so nothing behind them moves.
        self.write_buf.splice(..init_at, slot_header);
        self.write_buf
            .splice(init_at..fragment_at, self.init_buf.iter().copied());
        let offset = segment.next_offset;
        let info = encode_fragment(
            &mut segment,
            gop,
            &times,
            offset,
            &mut self.write_buf,
            fragment_at,
        )?;
        cover_rest(&mut self.write_buf, 0, slot_bytes);
        tracing::debug!(camera = %self.camera, slot, segment = header.segment_id, "segment started");
        self.segment = Some(segment);
        self.write_fragment(0, info, gop, first_pts)
    }

    /// Picks the slot, and records the new segment in the index (the slot's old content is no
    /// longer listed from here on).
    fn allocate_slot(&mut self, gop: &Gop) -> Result<(u32, SlotHeader), StoreError> {
        let store_id = self.store.inner.marker.store_id;
        let mut ring = self.store.ring();
        let purpose = if self.event.is_some() {
            ring::Purpose::Event
        } else {
            ring::Purpose::Continuous
        };
        let index = ring::choose_slot(
            &ring.slots,
            &ring.writers,
            &self.camera,
            ring.event_share,
            purpose,
        )
        .ok_or_else(|| StoreError::Full {
            path: self.store.dir().to_owned(),
            slot_count: self.store.layout().slot_count,
        })?;
        let segment_id = ring.next_segment_id;
        ring.next_segment_id += 1;
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
        };
        if let Some(old) = &state.header {
            tracing::debug!(
                camera = %self.camera,
                slot = index,
                overwritten_camera = %old.camera,
                overwritten_segment = old.segment_id,
                "wrapping over slot"
            );
        }
        state.header = Some(header.clone());
        state.event = self.event.clone();
        state.fragments.clear();
        state.end_offset = SLOT_HEADER_BYTES + u64::from(header.init_len);
        state.busy = true;
        state.counters.segments += 1;
        Ok((index as u32, header))
    }

    /// Writes `write_buf` at `offset`, then publishes the fragment and syncs if due.
    fn write_fragment(
        &mut self,
        offset: u64,
        info: FragmentInfo,
        gop: &Gop,
        first_pts: i64,
    ) -> Result<(), StoreError> {
        let Some(segment) = self.segment.as_mut() else {
            return Ok(());
        };
        if let Err(e) = segment.file.write_all_at(&self.write_buf, offset) {
            let error = StoreError::io(&segment.path, "write fragment", e);
            self.abandon_segment();
            return Err(error);
        }
        segment.dirty = true;
        segment.next_offset = info.end_offset();
        segment.next_index += 1;
        // Camera timestamps are external input: saturate rather than overflow.
        segment.duration_90k = first_pts
            .saturating_sub(segment.first_pts_90k)
            .saturating_add(gop.duration_90k());
        segment.expected_pts_90k = first_pts.saturating_add(gop.duration_90k());
        let slot = segment.slot;
        let due = segment.last_sync.elapsed() >= self.options.sync_interval;
        {
            let mut ring = self.store.ring();
            if let Some(state) = ring.slots.get_mut(slot as usize) {
                state.end_offset = info.end_offset();
                state.fragments.push(info);
                state.counters.bytes_written += self.write_buf.len() as u64;
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
            self.release_slot(segment.slot, false);
        }
        result
    }

    /// Drops the current segment after an I/O error; its slot is listed as far as it was
    /// written and rescanned at the next open.
    fn abandon_segment(&mut self) {
        if let Some(segment) = self.segment.take() {
            self.release_slot(segment.slot, false);
        }
    }

    fn release_slot(&self, slot: u32, forget_segment: bool) {
        let mut ring = self.store.ring();
        if let Some(state) = ring.slots.get_mut(slot as usize) {
            state.busy = false;
            if forget_segment {
                *state = SlotState {
                    counters: state.counters,
                    ..SlotState::default()
                };
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

fn bad_gop(store: &Store, camera: &str, problem: String) -> StoreError {
    StoreError::BadGop {
        path: store.dir().to_owned(),
        camera: camera.to_owned(),
        problem,
    }
}

/// The audio decode time of the GOP's first audio frame since the segment's first audio frame.
fn audio_base(first_audio_pts: &mut Option<i64>, gop: &Gop) -> u64 {
    let Some(first) = gop.audio.first() else {
        return 0;
    };
    let segment_first = *first_audio_pts.get_or_insert(first.pts);
    (first.pts - segment_first).max(0) as u64
}

/// Fills in the header of the fragment whose header room starts at `buf[header_at]` and whose
/// body runs from the end of that room to the end of `buf`; `offset` is where the fragment goes
/// in the slot.
fn encode_fragment(
    segment: &mut OpenSegment,
    gop: &Gop,
    times: &FragmentTimes,
    offset: u64,
    buf: &mut [u8],
    header_at: usize,
) -> Result<FragmentInfo, StoreError> {
    let body_at = header_at + FRAGMENT_HEADER_BYTES as usize;
    let body = buf.get(body_at..).unwrap_or_default();
    let body_len = u32::try_from(body.len()).map_err(|_| StoreError::BadGop {
        path: segment.path.clone(),
        camera: String::new(),
        problem: "fragment larger than 4 GiB".into(),
    })?;
    let header = FragmentHeader {
        segment_id: segment.segment_id,
        index: segment.next_index,
        body_len,
        wall_ms: gop.start_wall_ms,
        base_90k: times.video_base_90k,
        duration_90k: u32::try_from(gop.duration_90k().max(0)).unwrap_or(u32::MAX),
        frame_count: gop.frames.len() as u32,
        segment_syncs: segment.syncs,
    };
    let mut header_bytes = Vec::with_capacity(FRAGMENT_HEADER_BYTES as usize);
    header.encode(body, &mut header_bytes);
    debug_assert_eq!(header_bytes.len(), FRAGMENT_HEADER_BYTES as usize);
    let crc = header_bytes
        .get(header_bytes.len() - 4..)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .unwrap_or_default();
    if let Some(room) = buf.get_mut(header_at..body_at) {
        room.copy_from_slice(&header_bytes);
    }
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
    })
}

/// Appends the `free` box header that hides everything from the end of `buf` (written at
/// `buf_offset`) to the end of the slot.
fn cover_rest(buf: &mut Vec<u8>, buf_offset: u64, slot_bytes: u64) {
    let end = buf_offset + buf.len() as u64;
    let remaining = slot_bytes - end;
    crate::mux::boxes::put_free_box_header(buf, remaining as u32);
}
