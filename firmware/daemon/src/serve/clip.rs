//! Clip assembly: which stored fragments make the clip a request asks for ([`ClipPlan`]), and
//! the bytes of that clip, or any byte range of it, read fragment by fragment ([`ClipReader`]).
//!
//! A clip is one fragmented MP4: the init segment of its first segment, then every chosen
//! fragment with its `mfhd` sequence number and `tfdt` decode times rewritten so the clip's
//! timeline starts at 0 and runs on without a jump across segment boundaries. Rewriting never
//! changes a size, so the plan knows the clip's length and where each fragment sits in it before
//! any fragment is read: `Content-Length` and `Range` come from the plan alone.
//!
//! Memory: the plan holds about a hundred bytes per fragment (~200 KiB for an hour of 2 s GOPs);
//! the reader returns at most one piece ([`PIECE_BYTES`]) per call and keeps no video between
//! calls, so a download costs a piece or two of memory whatever the clip's length or bitrate.
//!
//! Integrity: each fragment is re-read with its header checked against the listing before its
//! first piece, and its checksum over all its bytes before the piece that ends it (or ends the
//! response) is handed out ([`FragmentPieces`]); a fragment the ring overwrote since the plan
//! was made is an error, which ends the response short (the client sees a broken connection,
//! never a complete but wrong file).
//!
//! Both types do blocking file I/O: call them from `spawn_blocking` ([`body_stream`] does).

use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

use super::moof::{self, FragmentRewrite, MoofError};
use super::pieces::{FragmentPieces, PIECE_BYTES};
use super::range::ByteRange;
use crate::media::TIMESCALE_90K;
use crate::store::{FragmentInfo, SegmentInfo, Store, StoreError};

/// Why a clip cannot be made or sent.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// Nothing recorded for the camera overlaps the asked time range.
    #[error("no video of camera {camera:?} between {from} and {to}")]
    NoVideo {
        /// The camera.
        camera: String,
        /// Start asked for, RFC 3339.
        from: String,
        /// End asked for, RFC 3339.
        to: String,
    },
    /// The store failed, or a fragment was overwritten by the ring while being sent.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored fragment did not have the boxes the muxer writes.
    #[error("fragment {index} of segment {segment_id}: {error}")]
    Fragment {
        /// Its segment.
        segment_id: u64,
        /// Its index in the segment.
        index: u32,
        /// What was wrong.
        error: MoofError,
    },
    /// The blocking read task failed (panicked or was cancelled at shutdown).
    #[error("clip reader task failed: {0}")]
    Task(String),
}

/// Where the clip was cut short of the asked end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// Wall time where the clip ends instead, Unix ms.
    pub at_wall_ms: i64,
    /// Why.
    pub reason: String,
}

/// One fragment of the clip: where it is stored and what it becomes.
#[derive(Clone, Debug)]
struct PlannedFragment {
    /// Index into [`ClipPlan::segments`].
    segment: u32,
    fragment: FragmentInfo,
    /// Offset of the fragment's first byte in the clip.
    clip_offset: u64,
    rewrite: FragmentRewrite,
}

/// The fragments of one clip and their places in it. Built once per request.
#[derive(Debug)]
pub struct ClipPlan {
    camera: String,
    init: Bytes,
    /// The segments fragments come from (their fragment lists emptied: the plan has its own).
    segments: Vec<SegmentInfo>,
    fragments: Vec<PlannedFragment>,
    total_len: u64,
    start_wall_ms: i64,
    end_wall_ms: i64,
    media_duration_90k: u64,
    truncation: Option<Truncation>,
}

fn duration_ms(fragment: &FragmentInfo) -> i64 {
    i64::from(fragment.duration_90k) * 1000 / i64::from(TIMESCALE_90K)
}

impl ClipPlan {
    /// Plans the clip of `camera` from the key frame at or before `from_ms` to the end of the
    /// fragment that holds `to_ms` (wall times, Unix ms): every fragment that overlaps the range,
    /// in recording order, including the segment still being written. Reads each segment's init
    /// segment (blocking); the clip ends before a segment whose stream parameters differ from
    /// the first one's (see [`ClipPlan::truncation`]).
    pub fn new(
        store: &Store,
        camera: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<ClipPlan, ClipError> {
        let no_video = || ClipError::NoVideo {
            camera: camera.to_owned(),
            from: super::times::format_ms(from_ms),
            to: super::times::format_ms(to_ms),
        };
        let mut segments: Vec<SegmentInfo> = Vec::new();
        let mut chosen: Vec<(u32, FragmentInfo)> = Vec::new();
        for mut segment in store.segments().into_iter().filter(|s| s.camera == camera) {
            let overlapping: Vec<FragmentInfo> = segment
                .fragments
                .drain(..)
                .filter(|f| f.wall_ms < to_ms && f.wall_ms + duration_ms(f) > from_ms)
                .collect();
            if overlapping.is_empty() {
                continue;
            }
            // The plan keeps its own list; the drained one's room (~70 bytes a fragment) would
            // stay allocated for as long as the download runs.
            segment.fragments = Vec::new();
            let index = segments.len() as u32;
            chosen.extend(overlapping.into_iter().map(|f| (index, f)));
            segments.push(segment);
        }

        let mut init: Option<Bytes> = None;
        let mut kept = vec![true; segments.len()];
        let mut truncation = None;
        let mut cut_at = chosen.len();
        for (index, segment) in segments.iter().enumerate() {
            let this_init = match store.read_init(segment) {
                Ok(bytes) => Bytes::from(bytes),
                // Wrapped over since the listing: as if it had not been listed.
                Err(StoreError::Overwritten { .. }) => {
                    if let Some(k) = kept.get_mut(index) {
                        *k = false;
                    }
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            match &init {
                None => init = Some(this_init),
                Some(first) if *first == this_init => {}
                Some(_) => {
                    let first_of_segment = chosen
                        .iter()
                        .position(|(s, _)| *s as usize == index)
                        .unwrap_or(chosen.len());
                    cut_at = first_of_segment;
                    truncation = Some(Truncation {
                        at_wall_ms: segment.start_wall_ms,
                        reason: format!(
                            "the stream parameters changed (now {:?} {}x{}); ask for the rest \
                             as a clip of its own",
                            segment.codec, segment.width, segment.height
                        ),
                    });
                    break;
                }
            }
        }
        chosen.truncate(cut_at);
        chosen.retain(|(s, _)| kept.get(*s as usize).copied().unwrap_or(false));
        let init = init.ok_or_else(no_video)?;
        if chosen.is_empty() {
            return Err(no_video());
        }
        let audio_timescale =
            moof::audio_timescale(&init).map_err(|error| ClipError::Fragment {
                segment_id: segments.first().map_or(0, |s| s.segment_id),
                index: 0,
                error,
            })?;

        let mut fragments = Vec::with_capacity(chosen.len());
        let mut clip_offset = init.len() as u64;
        let mut clip_base_90k = 0u64;
        for (sequence, (segment, fragment)) in chosen.into_iter().enumerate() {
            let shift_90k = i128::from(clip_base_90k) - i128::from(fragment.base_90k);
            let audio_shift = audio_timescale.map_or(0, |rate| {
                let shift = (shift_90k * i128::from(rate)).div_euclid(i128::from(TIMESCALE_90K));
                i64::try_from(shift).unwrap_or(0)
            });
            let rewrite = FragmentRewrite {
                sequence_number: u32::try_from(sequence + 1).unwrap_or(u32::MAX),
                video_base_90k: clip_base_90k,
                audio_shift,
            };
            let body_len = u64::from(fragment.body_len);
            clip_base_90k += u64::from(fragment.duration_90k);
            fragments.push(PlannedFragment {
                segment,
                fragment,
                clip_offset,
                rewrite,
            });
            clip_offset += body_len;
        }
        let start_wall_ms = fragments.first().map_or(from_ms, |f| f.fragment.wall_ms);
        let end_wall_ms = fragments
            .last()
            .map_or(to_ms, |f| f.fragment.wall_ms + duration_ms(&f.fragment));
        Ok(ClipPlan {
            camera: camera.to_owned(),
            init,
            segments,
            fragments,
            total_len: clip_offset,
            start_wall_ms,
            end_wall_ms,
            media_duration_90k: clip_base_90k,
            truncation,
        })
    }

    /// The camera.
    pub fn camera(&self) -> &str {
        &self.camera
    }

    /// Length of the whole clip in bytes.
    pub fn total_len(&self) -> u64 {
        self.total_len
    }

    /// Wall time of the clip's first frame (its first key frame), Unix ms.
    pub fn start_wall_ms(&self) -> i64 {
        self.start_wall_ms
    }

    /// Wall time of the end of the clip's last frame, Unix ms.
    pub fn end_wall_ms(&self) -> i64 {
        self.end_wall_ms
    }

    /// Media duration of the clip, 90 kHz.
    pub fn media_duration_90k(&self) -> u64 {
        self.media_duration_90k
    }

    /// Fragments (GOPs) in the clip.
    pub fn fragment_count(&self) -> usize {
        self.fragments.len()
    }

    /// Largest fragment body in the clip: the most a [`ClipReader`] holds at once.
    pub fn largest_fragment_bytes(&self) -> u64 {
        self.fragments
            .iter()
            .map(|f| u64::from(f.fragment.body_len))
            .max()
            .unwrap_or(0)
    }

    /// An entity tag naming exactly these bytes: the init segment and every fragment's segment,
    /// index and checksum. A resumed download sends it back (`If-Range`) so it is never
    /// continued with the bytes of a different clip (the ring moved on in between).
    pub fn etag(&self) -> String {
        let mut digest = crate::store::format::CRC32C.digest();
        digest.update(self.camera.as_bytes());
        digest.update(&self.init);
        for planned in &self.fragments {
            let segment_id = self
                .segments
                .get(planned.segment as usize)
                .map_or(0, |s| s.segment_id);
            digest.update(&segment_id.to_be_bytes());
            digest.update(&planned.fragment.index.to_be_bytes());
            digest.update(&planned.fragment.crc.to_be_bytes());
        }
        format!(
            "\"{:08x}-{:x}-{:x}\"",
            digest.finalize(),
            self.fragments.len(),
            self.total_len
        )
    }

    /// Set when the clip ends before the asked end because the stream changed.
    pub fn truncation(&self) -> Option<&Truncation> {
        self.truncation.as_ref()
    }
}

/// Reads a clip, or one byte range of it, one fragment per call. Holds no video between calls.
#[derive(Debug)]
pub struct ClipReader {
    plan: Arc<ClipPlan>,
    store: Store,
    /// Next clip byte to send.
    next: u64,
    /// One past the last clip byte to send.
    end: u64,
    /// The fragment being read piece by piece (its position in the plan).
    current: Option<(usize, FragmentPieces)>,
}

impl ClipReader {
    /// A reader of `range` of the clip (all of it when `None`).
    pub fn new(plan: Arc<ClipPlan>, store: Store, range: Option<ByteRange>) -> ClipReader {
        let (next, end) = match range {
            Some(range) => (
                range.first,
                range.last.saturating_add(1).min(plan.total_len),
            ),
            None => (0, plan.total_len),
        };
        ClipReader {
            plan,
            store,
            next,
            end,
            current: None,
        }
    }

    /// The next piece: part of the init segment, or (part of) one fragment, rewritten and
    /// checked. `None` at the end; after an error, `None` from then on.
    pub fn next_chunk(&mut self) -> Option<Result<Bytes, ClipError>> {
        self.next_chunk_with(Vec::new())
    }

    /// Bytes of the buffer the next [`ClipReader::next_chunk_with`] call fills (0 when it
    /// sends init bytes or nothing).
    pub fn next_buffer_bytes(&self) -> usize {
        self.fragment_at(self.next).map_or(0, |planned| {
            let left = (planned.clip_offset + u64::from(planned.fragment.body_len))
                .saturating_sub(self.next);
            left.min(PIECE_BYTES as u64) as usize
        })
    }

    /// [`ClipReader::next_chunk`] reading the fragment into `buffer` (which becomes the chunk).
    /// Give it a buffer of [`ClipReader::next_buffer_bytes`] capacity allocated on the thread
    /// that will free the chunk, and no allocation happens here.
    pub fn next_chunk_with(&mut self, buffer: Vec<u8>) -> Option<Result<Bytes, ClipError>> {
        if self.next >= self.end {
            return None;
        }
        let result = self.read_at(self.next, buffer);
        match &result {
            Ok(chunk) => self.next += chunk.len() as u64,
            Err(_) => {
                self.next = self.end;
                self.current = None;
            }
        }
        Some(result)
    }

    /// The planned fragment holding clip byte `at`, `None` inside the init segment.
    fn fragment_at(&self, at: u64) -> Option<&PlannedFragment> {
        if at < self.plan.init.len() as u64 {
            return None;
        }
        let position = self
            .plan
            .fragments
            .partition_point(|f| f.clip_offset <= at)
            .saturating_sub(1);
        self.plan.fragments.get(position)
    }

    fn read_at(&mut self, at: u64, mut piece: Vec<u8>) -> Result<Bytes, ClipError> {
        let init_len = self.plan.init.len() as u64;
        if at < init_len {
            let stop = self.end.min(init_len);
            return Ok(self.plan.init.slice(at as usize..stop as usize));
        }
        let plan = Arc::clone(&self.plan);
        let position = plan
            .fragments
            .partition_point(|f| f.clip_offset <= at)
            .saturating_sub(1);
        let Some(planned) = plan.fragments.get(position) else {
            return Ok(Bytes::new());
        };
        let segment =
            plan.segments
                .get(planned.segment as usize)
                .ok_or_else(|| StoreError::Corrupt {
                    path: self.store.dir().to_owned(),
                    problem: "clip plan refers to a segment it does not hold".into(),
                })?;
        let offset_in_body = at - planned.clip_offset;
        let mut pieces = match self.current.take() {
            Some((index, pieces)) if index == position && pieces.position() <= offset_in_body => {
                pieces
            }
            _ => FragmentPieces::open(segment, &planned.fragment)?,
        };
        pieces.skip_to(offset_in_body)?;
        piece.clear();
        pieces.read_piece(PIECE_BYTES, &mut piece)?;
        if offset_in_body == 0 {
            // The moof must be whole in the first piece to be rewritten (it is a few KiB; a
            // piece is far larger, but the bytes come from a card).
            let moof_len = piece
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_be_bytes) as usize;
            if moof_len > piece.len() {
                pieces.read_piece(moof_len - piece.len(), &mut piece)?;
            }
            moof::rewrite_fragment(&mut piece, &planned.rewrite).map_err(|error| {
                ClipError::Fragment {
                    segment_id: segment.segment_id,
                    index: planned.fragment.index,
                    error,
                }
            })?;
        }
        let send = (piece.len() as u64).min(self.end - at) as usize;
        if send == 0 {
            // The listing promised more bytes than the fragment has: never send a short file.
            return Err(StoreError::Overwritten {
                path: segment.path.clone(),
                offset: planned.fragment.offset,
            }
            .into());
        }
        // The piece that ends the fragment or the response goes out only once the checksum of
        // the whole fragment holds, so a changed fragment always leaves the response short.
        if pieces.is_done() || at + send as u64 >= self.end {
            pieces.verify()?;
        } else {
            self.current = Some((position, pieces));
        }
        let mut chunk = Bytes::from(piece);
        chunk.truncate(send);
        Ok(chunk)
    }
}

/// The reader as an async stream for an HTTP body: each chunk is read on the blocking pool, one
/// at a time (the next read starts only when the body asks for it, i.e. after the previous chunk
/// was handed to the socket). An error is logged and ends the stream with that error, which
/// makes the server drop the connection.
///
/// The piece buffer is allocated here, on the runtime thread that also frees it once written:
/// allocated on the blocking pool's threads, each thread's malloc arena keeps a block of its own
/// (measured with whole-fragment buffers: a 1-hour clip at 4 Mbit/s peaked 7.7 MiB above idle
/// that way, 3.3 MiB this way, and 1.8 MiB with 256 KiB pieces; `scripts/bench-clip.sh`).
pub fn body_stream(reader: ClipReader) -> impl Stream<Item = Result<Bytes, ClipError>> + Send {
    futures::stream::unfold(Some(reader), |state| async move {
        let mut reader = state?;
        let buffer = Vec::with_capacity(reader.next_buffer_bytes());
        let joined = tokio::task::spawn_blocking(move || {
            let chunk = reader.next_chunk_with(buffer);
            (reader, chunk)
        })
        .await;
        match joined {
            Ok((reader, Some(Ok(chunk)))) => Some((Ok(chunk), Some(reader))),
            Ok((reader, Some(Err(error)))) => {
                tracing::warn!(camera = %reader.plan.camera, %error, "clip aborted");
                Some((Err(error), None))
            }
            Ok((_, None)) => None,
            Err(join_error) => Some((Err(ClipError::Task(join_error.to_string())), None)),
        }
    })
}

#[cfg(test)]
mod tests;
