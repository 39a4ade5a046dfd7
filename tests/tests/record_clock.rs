//! The record path with a simulated clock that NTP sets mid-recording (a Pi without an RTC):
//! real H.264 frames go through `CameraRecorder` into a real store; recording continues across
//! the jump, every frame is kept, every segment plays, and the listing marks the step as a clock
//! jump rather than a gap.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edgenvr::ingest::{IngestEvent, IngestHandler};
use edgenvr::record::{CameraRecorder, GopWriter};
use edgenvr::store::{Store, WriterOptions};
use edgenvr::time::Clock;
use edgenvr_tests::clips::Codec;
use edgenvr_tests::ffprobe::{count_video_frames, decode_errors};
use edgenvr_tests::gops::{gops, stream_params};
use edgenvr_tests::h26x::encode_test_stream;
use edgenvr_tests::test_store::init_store_of_1mib_slots;

/// A clock the test sets by hand.
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_wall_ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Where a Pi without an RTC thinks it is after boot: a few seconds into 1970.
const BOOT_WALL_MS: i64 = 5_000;
/// The real time NTP sets: 2026-01-01T00:00:00Z.
const NTP_WALL_MS: i64 = 1_767_225_600_000;

#[test]
fn recording_continues_across_an_ntp_step_and_the_listing_says_so() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let stream = encode_test_stream(work.path(), Codec::H264, 12)?;
    let dir = work.path().join("store");
    init_store_of_1mib_slots(&dir, 8 << 20)?;
    let store = Store::open(&dir)?;
    let writer = store.camera_writer(
        "front",
        WriterOptions {
            segment_90k: Some(10 * 90_000),
            sync_interval: Duration::from_secs(1),
            share_slots: None,
        },
    )?;
    let clock = Arc::new(ManualClock(AtomicI64::new(BOOT_WALL_MS)));
    let writer = GopWriter::spawn("front", writer, Duration::from_secs(1))?;
    let counters = writer.counters();
    let mut recorder = CameraRecorder::new("front", clock.clone(), writer);

    recorder.session_started();
    recorder.event(IngestEvent::Params(stream_params(&stream)));
    let frames: Vec<_> = gops(&stream, 0, 0)
        .into_iter()
        .flat_map(|g| g.frames)
        .collect();
    let total_frames = frames.len();
    let mut finished_gops = 0u64;
    for (n, frame) in frames.into_iter().enumerate() {
        if frame.is_key && n > 0 {
            // This key frame closes a GOP. The test feeds frames far faster than a camera, so
            // let the writer catch up (its queue drops GOPs rather than stall the camera).
            while counters.written_gops.load(Ordering::Relaxed) < finished_gops {
                std::thread::sleep(Duration::from_millis(1));
            }
            finished_gops += 1;
        }
        let elapsed_ms = n as i64 * 40;
        // NTP steps the clock 6 s in, mid-segment.
        let now = if n < 150 { BOOT_WALL_MS } else { NTP_WALL_MS } + elapsed_ms;
        clock.0.store(now, Ordering::Relaxed);
        recorder.event(IngestEvent::Video(frame));
    }
    recorder.session_ended();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(recorder.close())
        .map_err(anyhow::Error::msg)?;
    drop(store);
    assert_eq!(counters.dropped_gops.load(Ordering::Relaxed), 0);

    let store = Store::open(&dir)?;
    let mut played = 0;
    for segment in store.segments() {
        let errors = decode_errors(&segment.path)?;
        assert!(errors.trim().is_empty(), "{errors}");
        played += count_video_frames(&segment.path)?;
    }
    assert_eq!(played, total_frames as u64, "no frame lost across the jump");

    let listing = store.recordings();
    let ranges = &listing[0].ranges;
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert!(
        ranges[0].start_wall_ms < 10 * 1000,
        "before NTP: 1970: {ranges:?}"
    );
    assert!(ranges[1].clock_jump_before, "{ranges:?}");
    // The GOP that saw the jump starts at the corrected time (one-second GOPs: frame 150 is a
    // key frame 6 s in).
    assert_eq!(ranges[1].start_wall_ms, NTP_WALL_MS + 6_000, "{ranges:?}");
    Ok(())
}
