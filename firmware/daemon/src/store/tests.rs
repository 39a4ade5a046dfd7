//! Unit tests of the store as a whole: writer, recovery scan, lock, refusal, init resume, shares.
//! Frames are synthetic (the bytes need not decode); playback is tested end to end in tests/.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::format::{slot_path, MarkerState, MARKER_FILE};
use super::*;
use crate::media::{synthetic, Gop, StreamParams};

pub(super) const SLOT_BYTES: u64 = 64 << 10;

pub(super) fn params(width: u16) -> Arc<StreamParams> {
    synthetic::h264_params(width, 240)
}

/// GOP number `n` of a 1 s, 25-frame stream; every GOP has the same byte size.
pub(super) fn gop(params: &Arc<StreamParams>, n: i64) -> Gop {
    // Each frame: one 96-byte NAL unit behind its 4-byte length, filled with the GOP number.
    let frame = Bytes::from([&[0, 0, 0, 96][..], &[n as u8; 96]].concat());
    synthetic::gop(
        params,
        1_000_000 + n * 1000,
        n * 90_000,
        3600,
        (0..25).map(|_| frame.clone()),
    )
}

pub(super) fn new_store(dir: &Path, slots: u32) {
    init_store(
        dir,
        &InitOptions {
            size_bytes: SLOT_BYTES * u64::from(slots),
            slot_bytes: Some(SLOT_BYTES),
            slot_count: None,
        },
        &mut |_| {},
    )
    .unwrap();
}

pub(super) fn options(segment_seconds: i64) -> WriterOptions {
    WriterOptions {
        segment_90k: Some(segment_seconds * 90_000),
        sync_interval: Duration::ZERO,
        share_slots: None,
    }
}

pub(super) fn write_gops(
    store: &Store,
    camera: &str,
    segment_seconds: i64,
    gops: std::ops::Range<i64>,
) {
    let p = params(320);
    let mut writer = store
        .camera_writer(camera, options(segment_seconds))
        .unwrap();
    for n in gops {
        writer.append(&gop(&p, n)).unwrap();
    }
    writer.close().unwrap();
}

pub(super) fn fragment_counts(store: &Store) -> Vec<(u32, usize)> {
    store
        .segments()
        .iter()
        .map(|s| (s.slot, s.fragments.len()))
        .collect()
}

#[test]
fn segments_are_cut_at_the_configured_length_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), 4);
    let store = Store::open(dir.path()).unwrap();
    write_gops(&store, "front", 3, 0..7);
    assert_eq!(fragment_counts(&store), vec![(0, 3), (1, 3), (2, 1)]);
    let before = store.segments();
    let stats = store.stats();
    assert_eq!(stats.slots_in_use, 3);
    assert!(stats.totals.syncs >= 7, "sync_interval 0 syncs every GOP");
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.segments(), before);
    assert!(store.recovery_findings().is_empty());
    assert_eq!(
        store.stats().totals.bytes_written,
        stats.totals.bytes_written
    );
    assert_eq!(store.stats().totals.segments, 3);
}

/// Each slot's index is the size of what the slot holds: slots reused by shorter segments do
/// not keep the capacity of the longest one they ever held (over a ring of thousands of slots
/// and hours of events, that capacity was heap growth a soak could see).
#[test]
fn the_index_holds_no_more_than_the_segments_in_the_slots() {
    fn assert_exact(store: &Store) {
        for (index, slot) in store.ring().slots.iter().enumerate() {
            assert_eq!(
                slot.fragments.capacity(),
                slot.fragments.len(),
                "slot {index}"
            );
            assert_eq!(slot.events.capacity(), slot.events.len(), "slot {index}");
        }
    }
    // The figure design/storage.md gives for the index per GOP stored.
    assert!(std::mem::size_of::<FragmentInfo>() <= 64);
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), 3);
    let store = Store::open(dir.path()).unwrap();
    // Segments as long as a slot takes, then one-GOP segments wrapping over them twice.
    write_gops(&store, "front", 1000, 0..40);
    let longest = fragment_counts(&store).iter().map(|c| c.1).max().unwrap();
    assert!(longest > 5, "a slot held {longest} fragments");
    assert_exact(&store);
    write_gops(&store, "front", 1, 40..46);
    assert_eq!(fragment_counts(&store), vec![(0, 1), (1, 1), (2, 1)]);
    assert_exact(&store);
    drop(store);
    assert_exact(&Store::open(dir.path()).unwrap());
}

#[test]
fn recovery_keeps_the_new_lap_and_stops_at_the_older_laps_bytes() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), 2);
    let slot0 = slot_path(dir.path(), 0);
    let store = Store::open(dir.path()).unwrap();
    write_gops(&store, "front", 6, 0..6);
    let old_lap = std::fs::read(&slot0).unwrap();
    // Slot 1 gets the next segment, then slot 0 is wrapped over with a 2-GOP segment.
    write_gops(&store, "front", 6, 6..12);
    write_gops(&store, "front", 6, 12..14);
    let new_end = store.segments().last().unwrap().fragments[1].end_offset();
    drop(store);

    // A power cut: the card kept the old lap's blocks after the new fragments (the cover header
    // that hid them never reached the card).
    let mut image = std::fs::read(&slot0).unwrap();
    image[new_end as usize..].copy_from_slice(&old_lap[new_end as usize..]);
    std::fs::write(&slot0, &image).unwrap();

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(fragment_counts(&store), vec![(1, 6), (0, 2)]);
    let findings = store.recovery_findings();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(findings[0].problem.contains("older lap"), "{findings:?}");
    assert!(findings[0].repair.is_some());
    // The repair covered the old lap, so the next open is clean.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.recovery_findings().is_empty());
    assert_eq!(fragment_counts(&store), vec![(1, 6), (0, 2)]);
}

#[test]
fn a_checksum_failure_stops_the_scan_and_keeps_what_precedes_it() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), 4);
    let store = Store::open(dir.path()).unwrap();
    write_gops(&store, "front", 10, 0..6);
    let fragment = store.segments()[0].fragments[3].clone();
    drop(store);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(slot_path(dir.path(), 0))
        .unwrap();
    file.write_all_at(&[0xee], fragment.body_offset + 200)
        .unwrap();
    drop(file);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(fragment_counts(&store), vec![(0, 3)]);
    assert!(store.recovery_findings()[0]
        .problem
        .contains("fragment 3 failing its checksum"));
}

#[test]
fn reading_back_checks_the_fragment_is_still_there() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), 2);
    let store = Store::open(dir.path()).unwrap();
    write_gops(&store, "front", 2, 0..2);
    let segment = store.segments()[0].clone();
    let init = store.read_init(&segment).unwrap();
    assert_eq!(&init[4..8], b"ftyp");
    let body = store
        .read_fragment(&segment, &segment.fragments[1])
        .unwrap();
    assert_eq!(&body[4..8], b"moof");
    // The ring wraps: slot 0 now holds a newer segment, and the old listing is detected stale.
    write_gops(&store, "front", 2, 2..6);
    assert!(matches!(
        store.read_fragment(&segment, &segment.fragments[1]),
        Err(StoreError::Overwritten { .. })
    ));
    assert!(matches!(
        store.read_init(&segment),
        Err(StoreError::Overwritten { .. })
    ));
}

/// The writer hands a GOP to the kernel as pieces (the fragment's head, each frame's bytes, the
/// tail cover) in as many `pwritev` calls as IOV_MAX allows: what lands on disk must be exactly
/// the muxer's fragment, checksum included, however many frames the GOP has.
#[test]
fn a_gop_of_more_frames_than_one_vectored_write_takes_is_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), 2);
    let store = Store::open(dir.path()).unwrap();
    let p = params(320);
    // 1,500 frames (IOV_MAX is 1,024), each a different size and fill, two of them empty.
    let frames = (0..1_500u32).map(|i| {
        let len = if i % 700 == 699 { 0 } else { 4 + i % 13 };
        Bytes::from(vec![i as u8; len as usize])
    });
    let big = synthetic::gop(&p, 1_000_000, 0, 3600, frames);
    let mut writer = store.camera_writer("front", options(1000)).unwrap();
    writer.append(&big).unwrap();
    writer.append(&gop(&p, 60)).unwrap();
    writer.close().unwrap();

    let reopened = Store::open_read_only(dir.path()).unwrap();
    let segment = reopened.segments()[0].clone();
    assert_eq!(segment.fragments.len(), 2);
    let stored = reopened
        .read_fragment(&segment, &segment.fragments[0])
        .unwrap();
    let mut expected = Vec::new();
    crate::mux::write_fragment(
        &big,
        &crate::mux::FragmentTimes {
            sequence_number: 1,
            video_base_90k: 0,
            audio_base: 0,
        },
        &mut expected,
    )
    .unwrap();
    assert_eq!(stored.len(), expected.len());
    assert!(
        stored == expected,
        "stored fragment differs from the muxer's"
    );
}

#[test]
fn a_second_opener_is_locked_out_but_can_read() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), 2);
    let store = Store::open(dir.path()).unwrap();
    write_gops(&store, "front", 2, 0..1);
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Locked { .. })
    ));
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.segments().len(), 1);
    assert!(reader.camera_writer("front", options(2)).is_err());
    drop(store);
    assert!(Store::open(dir.path()).is_ok());
}

#[test]
fn a_directory_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let error = Store::open(dir.path()).unwrap_err();
    assert!(matches!(error, StoreError::NotAStore { .. }));
    assert!(error.to_string().contains(MARKER_FILE), "{error}");
    let missing = dir.path().join("not-mounted");
    let error = Store::open_or_init(&missing, &InitOptions::default(), &mut |_| {}).unwrap_err();
    assert!(error.to_string().contains("is the disk mounted"), "{error}");
    assert!(!missing.exists());
    std::fs::write(dir.path().join("holiday.jpg"), b"x").unwrap();
    let options = InitOptions {
        size_bytes: 4 * SLOT_BYTES,
        slot_bytes: Some(SLOT_BYTES),
        slot_count: None,
    };
    assert!(matches!(
        init_store(dir.path(), &options, &mut |_| {}),
        Err(StoreError::NotAStore { .. })
    ));
    assert!(matches!(
        Store::open_or_init(dir.path(), &options, &mut |_| {}),
        Err(StoreError::NotAStore { .. })
    ));
}

#[test]
fn an_interrupted_init_is_refused_by_open_and_resumed_by_init() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), 4);
    // Make it look interrupted: marker still initialising, slot 1 half filled, slot 3 missing.
    let marker_path = dir.path().join(MARKER_FILE);
    let mut marker: format::Marker =
        serde_json::from_slice(&std::fs::read(&marker_path).unwrap()).unwrap();
    marker.state = MarkerState::Initialising;
    std::fs::write(&marker_path, marker.encode()).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(slot_path(dir.path(), 1))
        .unwrap()
        .set_len(SLOT_BYTES / 2)
        .unwrap();
    std::fs::remove_file(slot_path(dir.path(), 3)).unwrap();

    let error = Store::open(dir.path()).unwrap_err();
    assert!(error.to_string().contains("resume"), "{error}");
    let mut last = None;
    let (layout, outcome) = init_store(
        dir.path(),
        &InitOptions {
            size_bytes: 4 * SLOT_BYTES,
            slot_bytes: Some(SLOT_BYTES),
            slot_count: None,
        },
        &mut |p| last = Some(p),
    )
    .unwrap();
    assert_eq!(outcome, InitOutcome::Resumed);
    assert_eq!(layout.slot_count, 4);
    assert_eq!(
        last,
        Some(InitProgress {
            bytes_done: 4 * SLOT_BYTES,
            bytes_total: 4 * SLOT_BYTES
        })
    );
    for index in 0..4 {
        assert_eq!(
            std::fs::metadata(slot_path(dir.path(), index))
                .unwrap()
                .len(),
            SLOT_BYTES
        );
    }
    assert!(Store::open(dir.path()).is_ok());
}

#[test]
fn a_busy_camera_cannot_overwrite_another_cameras_share() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), 6);
    let store = Store::open(dir.path()).unwrap();
    let p = params(320);
    let mut quiet = store.camera_writer("quiet", options(1)).unwrap();
    let mut busy = store.camera_writer("busy", options(1)).unwrap();
    quiet.append(&gop(&p, 0)).unwrap();
    quiet.append(&gop(&p, 1)).unwrap();
    for n in 0..40 {
        busy.append(&gop(&p, n)).unwrap();
    }
    busy.close().unwrap();
    quiet.close().unwrap();
    let recordings = store.recordings();
    let quiet_frames: u64 = recordings
        .iter()
        .filter(|c| c.camera == "quiet")
        .flat_map(|c| &c.ranges)
        .map(|r| r.frames)
        .sum();
    assert_eq!(quiet_frames, 50, "the quiet camera's video survives");
    let busy_slots = store
        .segments()
        .iter()
        .filter(|s| s.camera == "busy")
        .count();
    assert_eq!(
        busy_slots, 4,
        "the busy camera takes the 4 slots the quiet one left, then wraps over its own"
    );
}

#[test]
fn new_parameters_or_a_full_slot_start_a_new_segment_and_a_media_jump_is_a_discontinuity() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), 8);
    let store = Store::open(dir.path()).unwrap();
    let mut writer = store.camera_writer("front", options(60)).unwrap();
    writer.append(&gop(&params(320), 0)).unwrap();
    writer.append(&gop(&params(640), 1)).unwrap(); // new parameters
    writer.append(&gop(&params(640), 30)).unwrap(); // media time jumps 28 s
    for n in 31..70 {
        writer.append(&gop(&params(640), n)).unwrap(); // fills the 64 KiB slot
    }
    writer.close().unwrap();
    let segments = store.segments();
    let counts: Vec<usize> = segments.iter().map(|s| s.fragments.len()).collect();
    assert_eq!(counts[0], 1);
    assert!(counts.len() >= 3, "a full slot moved on: {counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), 42);
    // The jump stays in the segment, marked, and the segment's timeline runs on without it.
    let second = &segments[1].fragments;
    let flags: Vec<bool> = second.iter().map(|f| f.discontinuity).collect();
    assert_eq!(flags[..3], [false, true, false]);
    assert!(flags[3..].iter().all(|d| !d));
    let bases: Vec<u64> = second.iter().map(|f| f.base_90k).collect();
    assert_eq!(bases[..3], [0, 90_000, 180_000]);
    // The listing shows the missing 28 s as a gap.
    let ranges = &store.recordings()[0].ranges;
    assert_eq!(ranges.len(), 2);
    assert_eq!(ranges[1].gap_before_ms, Some(28_000));
    assert!(!ranges[1].clock_jump_before);
}

#[test]
fn a_gop_larger_than_a_slot_or_without_key_frame_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), 2);
    let store = Store::open(dir.path()).unwrap();
    let mut writer = store.camera_writer("front", options(2)).unwrap();
    let mut huge = gop(&params(320), 0);
    huge.frames[1].data = Bytes::from(vec![0u8; SLOT_BYTES as usize]);
    assert!(matches!(
        writer.append(&huge),
        Err(StoreError::BadGop { .. })
    ));
    let mut keyless = gop(&params(320), 0);
    keyless.frames[0].is_key = false;
    assert!(matches!(
        writer.append(&keyless),
        Err(StoreError::BadGop { .. })
    ));
    assert!(matches!(
        store.camera_writer("front", options(2)),
        Err(StoreError::CameraBusy { .. })
    ));
    assert!(store.segments().is_empty());
}

pub(super) fn event(start_wall_ms: i64, pre_roll_ms: i64, sensor: &str) -> EventInfo {
    EventInfo {
        id: 0,
        start_wall_ms,
        video_from_wall_ms: start_wall_ms - pre_roll_ms,
        end_wall_ms: None,
        sensors: vec![sensor.into()],
    }
}

#[test]
fn events_are_recorded_listed_persisted_and_protected_from_continuous_wrapping() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), 8);
    let store = Store::open(dir.path()).unwrap();
    store.set_event_share_slots(2);
    let p = params(320);
    let mut writer = store.camera_writer("front", options(2)).unwrap();
    writer.append(&gop(&p, 0)).unwrap();
    writer.append(&gop(&p, 1)).unwrap();
    writer.append(&gop(&p, 2)).unwrap(); // segment 2 starts here
    let id = writer
        .begin_event(event(1_003_500, 2_000, "pir-door"))
        .unwrap();
    // A second sensor joins: same event, new record.
    let mut joined = event(1_003_500, 2_000, "pir-door");
    joined.sensors.push("pir-yard".into());
    assert_eq!(writer.begin_event(joined).unwrap(), id);
    for n in 3..5 {
        writer.append(&gop(&p, n)).unwrap(); // GOP 4 starts segment 3, opened with the event
    }
    writer.end_event(1_004_900).unwrap();
    writer.append(&gop(&p, 5)).unwrap(); // still segment 3
    writer.append(&gop(&p, 6)).unwrap(); // segment 4, plain video
    writer.close().unwrap();

    let kinds: Vec<(u64, SegmentKind, bool)> = store
        .segments()
        .iter()
        .map(|s| (s.segment_id, s.kind, s.is_event()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, SegmentKind::Continuous, false),
            (2, SegmentKind::Continuous, true),
            (3, SegmentKind::Event, true),
            (4, SegmentKind::Continuous, false)
        ]
    );
    // Pre-roll from 1_001_500: the GOP at 1_001_000 holds it; the end at 1_004_900 lies in the
    // GOP at 1_004_000. The video spans three segments.
    let expected = EventRecording {
        id,
        start_wall_ms: 1_003_500,
        end_wall_ms: Some(1_004_900),
        sensors: vec!["pir-door".into(), "pir-yard".into()],
        video_from_wall_ms: 1_001_500,
        video_start_wall_ms: 1_001_000,
        video_end_wall_ms: 1_005_000,
        media_duration_90k: 4 * 90_000,
        fragments: 4,
        frames: 100,
        segment_ids: vec![1, 2, 3],
    };
    assert_eq!(store.recordings()[0].events, vec![expected.clone()]);
    drop(store);

    // From disk: the records survived; 20 more continuous segments wrap the other slots but not
    // the two event segments. Segment 1 goes, so the event's pre-roll is clipped to what exists.
    let store = Store::open(dir.path()).unwrap();
    store.set_event_share_slots(2);
    assert_eq!(store.recordings()[0].events, vec![expected.clone()]);
    write_gops(&store, "front", 2, 10..50);
    let clipped = EventRecording {
        video_start_wall_ms: 1_002_000,
        media_duration_90k: 3 * 90_000,
        fragments: 3,
        frames: 75,
        segment_ids: vec![2, 3],
        ..expected
    };
    assert_eq!(store.recordings()[0].events, vec![clipped]);
    let segments = store.segments();
    let plain = segments.iter().filter(|s| !s.is_event()).count();
    assert_eq!(
        plain, 6,
        "the other 6 slots hold the newest continuous video"
    );
    // Nothing went silently: 47 GOPs written, 12 + 2 + 2 listed... every one accounted for.
    let totals = store.camera_totals();
    assert_eq!(totals.len(), 1);
    let t = &totals[0];
    assert_eq!(t.fragments_written, 47);
    assert_eq!(
        t.fragments_listed + t.fragments_overwritten,
        t.fragments_written
    );
    assert_eq!(
        t.fragments_listed,
        segments
            .iter()
            .map(|s| s.fragments.len() as u64)
            .sum::<u64>()
    );
}

#[test]
fn an_events_only_camera_keeps_events_back_to_back_and_fills_every_slot_before_wrapping() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), 4);
    let store = Store::open(dir.path()).unwrap();
    let p = params(320);
    let events_mode = WriterOptions {
        segment_90k: None,
        ..options(2)
    };
    let mut writer = store.camera_writer("hall", events_mode).unwrap();
    // Events of 3 GOPs, 100 s apart: far more than one per slot fits.
    let mut ids = Vec::new();
    for e in 0..12i64 {
        let first = e * 100;
        ids.push(
            writer
                .begin_event(event(1_000_000 + first * 1000 + 500, 500, "pir"))
                .unwrap(),
        );
        for n in first..first + 3 {
            writer.append(&gop(&p, n)).unwrap();
        }
        writer.end_event(1_000_000 + first * 1000 + 2_900).unwrap();
        let wrapped = store.camera_totals()[0].fragments_overwritten;
        if e < 6 {
            assert_eq!(wrapped, 0, "event {e}: wrapped while the ring had room");
        }
    }
    writer.close().unwrap();
    let segments = store.segments();
    assert!(segments.len() <= 4);
    let listed = store.recordings();
    let events = &listed[0].events;
    // Every event still in the store is listed whole, with its own id, 3 GOPs each.
    assert!(events.len() >= 8, "{} events kept", events.len());
    for event in events {
        assert_eq!(event.fragments, 3, "{event:?}");
        assert!(ids.contains(&event.id));
    }
    let newest: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert_eq!(newest.last(), ids.last());
    // Each event is its own range: the gaps between them are gaps, not clock steps.
    let ranges = &listed[0].ranges;
    assert_eq!(ranges.len(), events.len());
    assert!(ranges
        .iter()
        .skip(1)
        .all(|r| !r.clock_jump_before && r.gap_before_ms.is_some_and(|gap| gap > 90_000)));
    let t = &store.camera_totals()[0];
    assert_eq!(t.fragments_written, 36);
    assert_eq!(t.fragments_listed + t.fragments_overwritten, 36);
    assert_eq!(
        t.fragments_listed,
        u64::from(events.iter().map(|e| e.fragments).sum::<u32>())
    );
}

#[test]
fn cameras_write_from_threads_while_a_reader_sees_only_intact_or_overwritten_fragments() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), 6);
    let store = Store::open(dir.path()).unwrap();
    // Both writers are open before either writes and close only after both finished, so each
    // has a share of 3 throughout (closing a writer hands its share to the others).
    let both_written = Arc::new(std::sync::Barrier::new(2));
    let writers: Vec<_> = ["left", "right"]
        .into_iter()
        .map(|camera| store.camera_writer(camera, options(1)).unwrap())
        .map(|mut writer| {
            let both_written = Arc::clone(&both_written);
            std::thread::spawn(move || {
                let p = params(320);
                for n in 0..60 {
                    writer.append(&gop(&p, n)).unwrap();
                }
                both_written.wait();
                writer.close().unwrap();
            })
        })
        .collect();
    let writers_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let store = store.clone();
        let writers_done = Arc::clone(&writers_done);
        std::thread::spawn(move || {
            let (mut intact, mut overwritten) = (0u32, 0u32);
            // Read while the writers run, then once more after they finished.
            let mut last_pass = false;
            while !last_pass {
                last_pass = writers_done.load(std::sync::atomic::Ordering::Acquire);
                for segment in store.segments() {
                    for fragment in &segment.fragments {
                        match store.read_fragment(&segment, fragment) {
                            Ok(body) => {
                                assert_eq!(body.len(), fragment.body_len as usize);
                                assert_eq!(&body[4..8], b"moof");
                                intact += 1;
                            }
                            Err(StoreError::Overwritten { .. }) => overwritten += 1,
                            Err(other) => panic!("unexpected read error: {other}"),
                        }
                    }
                }
            }
            (intact, overwritten)
        })
    };
    for writer in writers {
        writer.join().unwrap();
    }
    writers_done.store(true, std::sync::atomic::Ordering::Release);
    let (intact, _overwritten) = reader.join().unwrap();
    assert!(intact >= 6, "the final pass reads every kept fragment");
    let per_camera: Vec<(String, usize)> = store
        .recordings()
        .into_iter()
        .map(|c| {
            (
                c.camera,
                c.ranges.iter().map(|r| r.fragments as usize).sum(),
            )
        })
        .collect();
    // Each camera keeps its share of 3 one-GOP segments: its newest 3 GOPs.
    assert_eq!(
        per_camera,
        vec![("left".to_string(), 3), ("right".to_string(), 3)]
    );
}

mod scan_properties {
    use std::io::Write;

    use proptest::prelude::*;

    use super::*;
    use crate::store::scan::scan_slot;

    /// The bytes of a slot holding one 8-GOP segment, its store id, and the fragments as listed
    /// (recorded once; the ARM test runs are emulated and slow).
    fn recorded_slot() -> (Vec<u8>, u64, Vec<FragmentInfo>) {
        static RECORDED: std::sync::OnceLock<(Vec<u8>, u64, Vec<FragmentInfo>)> =
            std::sync::OnceLock::new();
        RECORDED.get_or_init(record_slot).clone()
    }

    fn record_slot() -> (Vec<u8>, u64, Vec<FragmentInfo>) {
        let dir = tempfile::tempdir().unwrap();
        new_store(dir.path(), 2);
        let store = Store::open(dir.path()).unwrap();
        // Event records between the fragments: a begin after GOP 2, an end after GOP 5.
        let p = params(320);
        let mut writer = store.camera_writer("front", options(60)).unwrap();
        for n in 0..8 {
            if n == 3 {
                writer.begin_event(event(1_002_500, 1_000, "pir")).unwrap();
            }
            if n == 6 {
                writer.end_event(1_005_500).unwrap();
            }
            writer.append(&gop(&p, n)).unwrap();
        }
        writer.close().unwrap();
        assert_eq!(store.segments()[0].events.len(), 2);
        let fragments = store.segments()[0].fragments.clone();
        let store_id = store.inner.marker.store_id;
        (
            std::fs::read(slot_path(dir.path(), 0)).unwrap(),
            store_id,
            fragments,
        )
    }

    fn scan_bytes(bytes: &[u8], store_id: u64) -> scan::SlotScan {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        scan_slot(&file, SLOT_BYTES, store_id, 0, Verify::Checksums).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever bytes are damaged, the scan never panics and never returns a fragment that
        /// is not one the writer completed: what it keeps is a prefix of the original fragments.
        #[test]
        fn damage_anywhere_leaves_an_intact_prefix(
            damage in proptest::collection::vec((0..SLOT_BYTES as usize, any::<u8>()), 1..8),
        ) {
            let (mut bytes, store_id, fragments) = recorded_slot();
            for (at, value) in &damage {
                bytes[*at] ^= value | 1;
            }
            let scan = scan_bytes(&bytes, store_id);
            prop_assert!(scan.fragments.len() <= fragments.len());
            prop_assert_eq!(&scan.fragments[..], &fragments[..scan.fragments.len()]);
            // Event records kept are intact and in place: never past the fragments kept.
            for record in &scan.events {
                prop_assert!(record.after_fragments as usize <= scan.fragments.len());
                prop_assert_eq!(record.event.start_wall_ms, 1_002_500);
            }
            let first_damage = damage.iter().map(|(at, _)| *at as u64).min().unwrap_or(0);
            let intact_before = fragments
                .iter()
                .take_while(|f| f.end_offset() <= first_damage)
                .count();
            // Damage after the init segment keeps every fragment that ends before it.
            if first_damage >= fragments[0].offset {
                prop_assert!(scan.fragments.len() >= intact_before);
            }
        }

        /// Random bytes are never taken for a slot header.
        #[test]
        fn random_bytes_are_an_empty_slot(seed in any::<u64>()) {
            let mut rng = fastrand::Rng::with_seed(seed);
            let bytes: Vec<u8> = (0..SLOT_BYTES).map(|_| rng.u8(..)).collect();
            let scan = scan_bytes(&bytes, 1);
            prop_assert!(scan.header.is_none());
            prop_assert!(scan.fragments.is_empty());
        }
    }
}
