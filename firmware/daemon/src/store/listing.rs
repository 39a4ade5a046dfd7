//! Recordings per camera as wall-clock time ranges with the gaps between them, built from the
//! fragments' own timestamps. Pure computation over [`SegmentInfo`]s; no I/O.
//!
//! Honesty about the wall clock: every fragment carries the wall time its first frame was
//! stamped with by the recorder, and its media duration (from RTP). Inside one segment media time
//! is continuous, so when two fragments of one segment disagree with it by more than
//! [`GAP_TOLERANCE_MS`], the wall clock was stepped (a Pi without an RTC getting NTP time): the
//! range is split there and the new range is marked `clock_jump_before`, not shown as a gap. A
//! fragment marked as a discontinuity (media time jumped: a reconnect, or the time between two
//! events of an events-mode camera) starts a new range like a segment boundary does.
//! Between segments a wall time earlier than the previous end is also a clock step; a later one is
//! a gap (a forward step while a camera was reconnecting cannot be told from an outage). Ranges
//! are listed in recording order, so after a backward step they may overlap in wall time.

use std::collections::BTreeMap;

use super::{EventInfo, FragmentInfo, SegmentInfo};
use crate::media::TIMESCALE_90K;

/// Wall-clock stamps jitter with network delivery by far less than a second; an outage or a
/// reconnect costs seconds. Differences within this are not gaps.
pub const GAP_TOLERANCE_MS: i64 = 1000;

/// One camera's recordings.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CameraRecordings {
    /// Camera name.
    pub camera: String,
    /// Continuous stretches, in recording order.
    pub ranges: Vec<RecordingRange>,
    /// Recorded events, in the order they began.
    pub events: Vec<EventRecording>,
}

/// What became of a camera's fragments: every fragment its writer put in the store is either
/// still listed or was wrapped over by the ring, so `written == listed + overwritten` (a slot
/// the recovery scan found damaged counts as wrapped over; `edgenvr store fsck` names it).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CameraTotals {
    /// Camera name.
    pub camera: String,
    /// Fragments (GOPs) the camera has written to the store: a running count carried from
    /// segment to segment in its slot headers, so it survives restarts. Rebuilt at open from
    /// the camera's newest surviving segment: exact unless the ring wrapped over the camera's
    /// newer segments while an older one survived (a protected event) or over all of them —
    /// then it restarts from what is left. Within one run the `_since_open` counts are exact.
    pub fragments_written: u64,
    /// Fragments listed now.
    pub fragments_listed: u64,
    /// Fragments wrapped over by the ring.
    pub fragments_overwritten: u64,
    /// Of `fragments_written`, those written since the store was opened (exact).
    #[serde(skip)]
    pub written_since_open: u64,
    /// Of `fragments_overwritten`, those wrapped over since the store was opened (exact).
    #[serde(skip)]
    pub overwritten_since_open: u64,
}

/// An event and the video kept of it: from its pre-roll start to its post-roll end, wherever
/// that video sits (in its own segments, in the previous event's post-roll, across several
/// segments), clipped to the video that exists.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EventRecording {
    /// Store-wide event number (`nvrctl pull --event ID`).
    pub id: u64,
    /// When the event started (the first trigger), Unix ms.
    pub start_wall_ms: i64,
    /// When it ended (post-roll over), Unix ms; `None` if the end was never recorded (still
    /// running, or the recorder stopped first).
    pub end_wall_ms: Option<i64>,
    /// The sensors that triggered it.
    pub sensors: Vec<String>,
    /// Where its video was to start: the trigger minus the pre-roll, Unix ms.
    pub video_from_wall_ms: i64,
    /// Wall-clock time of the first frame kept (the key frame at or before
    /// `video_from_wall_ms`, or later when the video before it is not there).
    pub video_start_wall_ms: i64,
    /// Wall-clock end of the last frame kept.
    pub video_end_wall_ms: i64,
    /// Media duration of the video kept, 90 kHz.
    pub media_duration_90k: u64,
    /// Fragments (GOPs) of the video kept.
    pub fragments: u32,
    /// Video frames kept.
    pub frames: u64,
    /// Segment ids holding it.
    pub segment_ids: Vec<u64>,
}

/// A stretch of video without gaps.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RecordingRange {
    /// Wall-clock time of the first frame, Unix ms.
    pub start_wall_ms: i64,
    /// Wall-clock end of the last frame, Unix ms (its stamp plus its media duration).
    pub end_wall_ms: i64,
    /// Media duration of the video in the range, 90 kHz.
    pub media_duration_90k: u64,
    /// Segments touched (a segment split by a clock step counts in both ranges).
    pub segments: u32,
    /// Fragments (GOPs).
    pub fragments: u32,
    /// Video frames.
    pub frames: u64,
    /// Bytes of fragment bodies.
    pub bytes: u64,
    /// Wall-clock difference from the previous range's end to this start, ms; `None` for the first.
    pub gap_before_ms: Option<i64>,
    /// The boundary before this range is a wall-clock step, not missing video.
    pub clock_jump_before: bool,
}

/// Groups `segments` (in recording order) per camera into ranges and events.
pub fn recordings(segments: &[SegmentInfo]) -> Vec<CameraRecordings> {
    let mut by_camera: BTreeMap<&str, Vec<&SegmentInfo>> = BTreeMap::new();
    for segment in segments {
        by_camera
            .entry(segment.camera.as_str())
            .or_default()
            .push(segment);
    }
    by_camera
        .into_iter()
        .map(|(camera, mut segments)| {
            segments.sort_by_key(|s| s.segment_id);
            CameraRecordings {
                camera: camera.to_owned(),
                ranges: ranges(&segments),
                events: events(&segments),
            }
        })
        .collect()
}

fn end_ms(fragment: &FragmentInfo) -> i64 {
    fragment
        .wall_ms
        .saturating_add(i64::from(fragment.duration_90k) * 1000 / i64::from(TIMESCALE_90K))
}

/// One camera's events (segments in recording order): each event's newest record says what it
/// is; its video is every fragment of the camera that overlaps its time span.
fn events(segments: &[&SegmentInfo]) -> Vec<EventRecording> {
    // The newest state of each event, in order of first appearance, and the end of the video
    // of the last segment that mentions it (the end of an event whose end was not recorded).
    let mut order: Vec<u64> = Vec::new();
    let mut latest: BTreeMap<u64, (&EventInfo, i64)> = BTreeMap::new();
    for segment in segments {
        let segment_end = segment.fragments.last().map_or(i64::MIN, end_ms);
        for record in &segment.events {
            let id = record.event.id;
            if !latest.contains_key(&id) {
                order.push(id);
            }
            latest.insert(id, (&record.event, segment_end));
        }
    }
    if order.is_empty() {
        return Vec::new();
    }
    // The camera's fragments by wall time, to find each event's video by binary search.
    let mut fragments: Vec<(&FragmentInfo, u64)> = segments
        .iter()
        .flat_map(|s| s.fragments.iter().map(move |f| (f, s.segment_id)))
        .collect();
    fragments.sort_by_key(|(f, segment_id)| (f.wall_ms, *segment_id));
    let longest_ms = fragments
        .iter()
        .map(|(f, _)| end_ms(f).saturating_sub(f.wall_ms))
        .max()
        .unwrap_or(0);

    order
        .into_iter()
        .filter_map(|id| {
            let (event, last_video_end) = latest.get(&id)?;
            let from = event.video_from_wall_ms.min(event.start_wall_ms);
            let to = event
                .end_wall_ms
                .unwrap_or(*last_video_end)
                .max(event.start_wall_ms);
            let first =
                fragments.partition_point(|(f, _)| f.wall_ms < from.saturating_sub(longest_ms));
            let mut recording = EventRecording {
                id,
                start_wall_ms: event.start_wall_ms,
                end_wall_ms: event.end_wall_ms,
                sensors: event.sensors.clone(),
                video_from_wall_ms: event.video_from_wall_ms,
                video_start_wall_ms: i64::MAX,
                video_end_wall_ms: i64::MIN,
                media_duration_90k: 0,
                fragments: 0,
                frames: 0,
                segment_ids: Vec::new(),
            };
            for (fragment, segment_id) in fragments.get(first..).unwrap_or_default() {
                if fragment.wall_ms >= to {
                    break;
                }
                if end_ms(fragment) <= from {
                    continue;
                }
                recording.video_start_wall_ms = recording.video_start_wall_ms.min(fragment.wall_ms);
                recording.video_end_wall_ms = recording.video_end_wall_ms.max(end_ms(fragment));
                recording.media_duration_90k += u64::from(fragment.duration_90k);
                recording.fragments += 1;
                recording.frames += u64::from(fragment.frame_count);
                if !recording.segment_ids.contains(segment_id) {
                    recording.segment_ids.push(*segment_id);
                }
            }
            recording.segment_ids.sort_unstable();
            // An event whose video is all gone (wrapped over) has nothing to show.
            (recording.fragments > 0).then_some(recording)
        })
        .collect()
}

fn ranges(segments: &[&SegmentInfo]) -> Vec<RecordingRange> {
    let mut ranges: Vec<RecordingRange> = Vec::new();
    for segment in segments {
        let mut segment_counted = false;
        for (position, fragment) in segment.fragments.iter().enumerate() {
            let start = fragment.wall_ms;
            let duration_ms = i64::from(fragment.duration_90k) * 1000 / i64::from(TIMESCALE_90K);
            // A discontinuity inside a segment is missing video, like a segment boundary.
            let same_segment = position > 0 && !fragment.discontinuity;
            let boundary = ranges.last().and_then(|range| {
                let delta = start.saturating_sub(range.end_wall_ms);
                if same_segment {
                    (delta.abs() > GAP_TOLERANCE_MS).then_some((delta, true))
                } else if delta > GAP_TOLERANCE_MS {
                    Some((delta, false))
                } else if delta < -GAP_TOLERANCE_MS {
                    Some((delta, true))
                } else {
                    None
                }
            });
            let continues = ranges.last().is_some() && boundary.is_none();
            if !continues {
                let (gap_before_ms, clock_jump_before) = match boundary {
                    Some((delta, jump)) => (Some(delta), jump),
                    None => (None, false),
                };
                ranges.push(RecordingRange {
                    start_wall_ms: start,
                    end_wall_ms: start,
                    media_duration_90k: 0,
                    segments: 0,
                    fragments: 0,
                    frames: 0,
                    bytes: 0,
                    gap_before_ms,
                    clock_jump_before,
                });
                segment_counted = false;
            }
            if let Some(range) = ranges.last_mut() {
                range.end_wall_ms = start.saturating_add(duration_ms);
                range.media_duration_90k += u64::from(fragment.duration_90k);
                range.fragments += 1;
                range.frames += u64::from(fragment.frame_count);
                range.bytes += u64::from(fragment.body_len);
                if !segment_counted {
                    range.segments += 1;
                    segment_counted = true;
                }
            }
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::VideoCodec;
    use crate::store::format::SegmentKind;
    use crate::store::FragmentInfo;

    /// A segment of one-second fragments stamped at the given wall times.
    fn segment(camera: &str, segment_id: u64, walls_ms: &[i64]) -> SegmentInfo {
        SegmentInfo {
            slot: 0,
            segment_id,
            camera: camera.into(),
            kind: SegmentKind::Continuous,
            events: Vec::new(),
            codec: VideoCodec::H264,
            width: 1,
            height: 1,
            has_audio: false,
            init_len: 1,
            start_wall_ms: walls_ms.first().copied().unwrap_or(0),
            fragments: walls_ms
                .iter()
                .enumerate()
                .map(|(index, wall_ms)| FragmentInfo {
                    index: index as u32,
                    offset: 0,
                    body_offset: 0,
                    body_len: 100,
                    wall_ms: *wall_ms,
                    base_90k: index as u64 * 90_000,
                    duration_90k: 90_000,
                    frame_count: 25,
                    segment_syncs: 0,
                    crc: 0,
                    discontinuity: false,
                })
                .collect(),
            path: Default::default(),
        }
    }

    #[test]
    fn contiguous_segments_make_one_range_and_an_outage_makes_a_gap() {
        let listed = recordings(&[
            segment("front", 1, &[0, 1000]),
            segment("front", 2, &[2040, 3000]),
            segment("front", 3, &[10_000]),
            segment("back", 4, &[0]),
        ]);
        assert_eq!(listed.len(), 2);
        let front = &listed[1];
        assert_eq!(front.camera, "front");
        assert_eq!(front.ranges.len(), 2);
        assert_eq!(front.ranges[0].start_wall_ms, 0);
        assert_eq!(front.ranges[0].end_wall_ms, 4000);
        assert_eq!(front.ranges[0].segments, 2);
        assert_eq!(front.ranges[0].fragments, 4);
        assert_eq!(front.ranges[1].gap_before_ms, Some(6000));
        assert!(!front.ranges[1].clock_jump_before);
    }

    #[test]
    fn a_clock_step_inside_a_segment_is_marked_not_a_gap() {
        // NTP sets the clock 3 hours forward between the second and third GOP.
        let step_ms = 3 * 3600 * 1000;
        let listed = recordings(&[segment("front", 1, &[0, 1000, 2000 + step_ms])]);
        let ranges = &listed[0].ranges;
        assert_eq!(ranges.len(), 2);
        assert!(ranges[1].clock_jump_before);
        assert_eq!(ranges[1].gap_before_ms, Some(step_ms));
        assert_eq!(ranges[1].segments, 1);
    }

    #[test]
    fn a_backward_step_between_segments_is_a_clock_jump() {
        let listed = recordings(&[segment("front", 1, &[50_000]), segment("front", 2, &[0])]);
        let ranges = &listed[0].ranges;
        assert_eq!(ranges.len(), 2);
        assert!(ranges[1].clock_jump_before);
        assert_eq!(ranges[1].gap_before_ms, Some(-51_000));
    }
}
