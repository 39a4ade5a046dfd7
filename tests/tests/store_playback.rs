//! Real H.264 and H.265 (encoded by ffmpeg) written through the store's CameraWriter: every slot
//! file plays in ffprobe/ffmpeg without a single error, and frame counts match what was written.

use std::time::Duration;

use edgenvr::store::{Store, WriterOptions};
use edgenvr_tests::clips::Codec;
use edgenvr_tests::ffprobe::{count_video_frames, decode_errors, video_codec_name};
use edgenvr_tests::gops::gops;
use edgenvr_tests::h26x::encode_test_stream;
use edgenvr_tests::test_store::{init_store_of_1mib_slots, record_gops, WALL_START_MS};

fn record_and_check(codec: Codec, expected_codec_name: &str) {
    let work = tempfile::tempdir().unwrap();
    let stream = encode_test_stream(work.path(), codec, 12).unwrap();
    let dir = work.path().join("store");
    // 8 slots of 1 MiB: far more than 12 s of 320x240 needs, so nothing wraps.
    init_store_of_1mib_slots(&dir, 8 << 20).unwrap();
    let store = Store::open(&dir).unwrap();
    let gops = gops(&stream, 1_000_000, WALL_START_MS);
    assert_eq!(gops.len(), 12, "one GOP per second");
    record_gops(
        &store,
        WriterOptions {
            segment_90k: Some(4 * 90_000),
            sync_interval: Duration::from_secs(1),
            share_slots: None,
        },
        &gops,
    )
    .unwrap();

    let segments = store.segments();
    assert_eq!(segments.len(), 3, "12 s in 4 s segments");
    let mut frames_total = 0;
    for segment in &segments {
        let listed_frames: u64 = segment
            .fragments
            .iter()
            .map(|f| u64::from(f.frame_count))
            .sum();
        assert_eq!(listed_frames, 100);
        assert_eq!(count_video_frames(&segment.path).unwrap(), listed_frames);
        assert_eq!(
            decode_errors(&segment.path).unwrap(),
            "",
            "{}",
            segment.path.display()
        );
        assert_eq!(
            video_codec_name(&segment.path).unwrap(),
            expected_codec_name
        );
        frames_total += listed_frames;
    }
    assert_eq!(frames_total, stream.access_units.len() as u64);

    let recordings = store.recordings();
    assert_eq!(recordings.len(), 1);
    let ranges = &recordings[0].ranges;
    assert_eq!(
        ranges.len(),
        1,
        "continuous recording is one range: {ranges:?}"
    );
    assert_eq!(ranges[0].start_wall_ms, WALL_START_MS);
    assert_eq!(ranges[0].end_wall_ms, WALL_START_MS + 12_000);
    assert_eq!(ranges[0].media_duration_90k, 12 * 90_000);

    // Reopening finds the same fragments (recovery scan) and repairs nothing.
    drop(store);
    let reopened = Store::open(&dir).unwrap();
    assert!(
        reopened.recovery_findings().is_empty(),
        "{:?}",
        reopened.recovery_findings()
    );
    assert_eq!(reopened.segments(), segments);
}

#[test]
fn h264_segments_play_in_ffprobe() {
    record_and_check(Codec::H264, "h264");
}

#[test]
fn h265_segments_play_in_ffprobe() {
    record_and_check(Codec::H265, "hevc");
}

#[test]
fn h264_with_aac_audio_plays_both_tracks() {
    let work = tempfile::tempdir().unwrap();
    let video = encode_test_stream(work.path(), Codec::H264, 4).unwrap();
    let audio = edgenvr_tests::aac::encode_test_audio(work.path(), 4).unwrap();
    let mut gops = gops(&video, 0, WALL_START_MS);
    edgenvr_tests::gops::add_audio(&mut gops, &audio, 0);
    let audio_frames: usize = gops.iter().map(|g| g.audio.len()).sum();
    assert!(
        audio_frames > 150,
        "4 s of 48 kHz AAC: {audio_frames} frames"
    );

    let dir = work.path().join("store");
    init_store_of_1mib_slots(&dir, 4 << 20).unwrap();
    let store = Store::open(&dir).unwrap();
    record_gops(&store, WriterOptions::default(), &gops).unwrap();
    let segments = store.segments();
    assert_eq!(segments.len(), 1);
    assert!(segments[0].has_audio);
    let path = &segments[0].path;
    assert_eq!(count_video_frames(path).unwrap(), 100);
    assert_eq!(
        edgenvr_tests::ffprobe::count_packets(path, "a:0").unwrap(),
        audio_frames as u64
    );
    assert_eq!(decode_errors(path).unwrap(), "");
}
