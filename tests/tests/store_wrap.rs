//! A tiny ring wraps around several times with real H.264: the oldest video is overwritten,
//! nothing newer is lost, no file is created, deleted or replaced (directory listing and inode
//! numbers compared from outside), and every slot plays only its own, newest video.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use edgenvr::store::{Store, WriterOptions};
use edgenvr_tests::bins;
use edgenvr_tests::clips::Codec;
use edgenvr_tests::ffprobe::{count_video_frames, decode_errors};
use edgenvr_tests::gops::gops;
use edgenvr_tests::h26x::encode_test_stream;
use edgenvr_tests::test_store::{record_gops, WALL_START_MS};

/// Every file under `dir`: path → (inode, size, modification is not compared: slots are written).
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            let name = entry
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string();
            files.insert(name, (metadata.ino(), metadata.len()));
        }
    }
    files
}

fn edgenvr(args: &[&str]) -> std::process::Output {
    Command::new(bins::edgenvr()).args(args).output().unwrap()
}

#[test]
fn a_tiny_ring_wraps_without_creating_files_and_each_slot_plays_only_its_newest_video() {
    let work = tempfile::tempdir().unwrap();
    // 19 GOPs of 1 s: segments of 2 GOPs, the last one of 1 GOP, so its slot's older lap
    // (2 GOPs) would show if the tail were not covered.
    let stream = encode_test_stream(work.path(), Codec::H264, 19).unwrap();
    let dir = work.path().join("store");
    let dir_arg = dir.to_str().unwrap();
    // 4 slots of 256 KiB: 2 s of the 320x240 test clip fits one slot; 19 s wrap the ring twice.
    let init = edgenvr(&["store", "init", dir_arg, "--size", "1MiB", "--slots", "4"]);
    assert!(init.status.success(), "{init:?}");
    assert!(String::from_utf8_lossy(&init.stdout).contains("4 slots"));
    let before = snapshot(&dir);
    assert_eq!(
        before.len(),
        6,
        "marker, slots/ and 4 slot files: {before:?}"
    );

    let store = Store::open(&dir).unwrap();
    let gops = gops(&stream, 0, WALL_START_MS);
    assert_eq!(gops.len(), 19);
    record_gops(
        &store,
        WriterOptions {
            segment_90k: Some(2 * 90_000),
            sync_interval: Duration::from_secs(2),
            share_slots: None,
        },
        &gops,
    )
    .unwrap();
    drop(store);

    assert_eq!(
        snapshot(&dir),
        before,
        "no file created, removed, replaced or resized"
    );

    // Segments 7..=10 remain (GOPs 12..19): the oldest six segments were overwritten.
    let store = Store::open(&dir).unwrap();
    assert!(store.recovery_findings().is_empty());
    let segments = store.segments();
    let ids: Vec<u64> = segments.iter().map(|s| s.segment_id).collect();
    assert_eq!(ids, vec![7, 8, 9, 10]);
    for segment in &segments {
        let listed: u64 = segment
            .fragments
            .iter()
            .map(|f| u64::from(f.frame_count))
            .sum();
        let expected = if segment.segment_id == 10 { 25 } else { 50 };
        assert_eq!(listed, expected);
        assert_eq!(
            count_video_frames(&segment.path).unwrap(),
            expected,
            "{} plays only its own segment",
            segment.path.display()
        );
        assert_eq!(decode_errors(&segment.path).unwrap(), "");
    }
    let recordings = store.recordings();
    assert_eq!(recordings[0].ranges.len(), 1, "nothing lost in between");
    let range = &recordings[0].ranges[0];
    assert_eq!(range.start_wall_ms, WALL_START_MS + 12_000);
    assert_eq!(range.end_wall_ms, WALL_START_MS + 19_000);
    assert_eq!(range.frames, 175);
    let stats = store.stats();
    assert_eq!(stats.totals.segments, 10);
    drop(store);

    // The same, from the command line.
    let ls = edgenvr(&["store", "ls", dir_arg, "--json"]);
    assert!(ls.status.success(), "{ls:?}");
    let listing: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let front = &listing["cameras"][0];
    assert_eq!(front["camera"], "front");
    assert_eq!(front["ranges"].as_array().unwrap().len(), 1);
    assert_eq!(front["ranges"][0]["frames"], 175);
    // Every GOP written is listed or counted as wrapped over.
    assert_eq!(front["totals"]["fragments_written"], 19);
    assert_eq!(front["totals"]["fragments_listed"], 7);
    assert_eq!(front["totals"]["fragments_overwritten"], 12);
    let text = edgenvr(&["store", "ls", dir_arg]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("front: 7s recorded in 1 range(s), 0 event(s); fragments: 19 written, 7 listed, 12 wrapped over"),
        "{text}"
    );
    assert!(text.contains("2026-01-01T00:00:12.000Z"), "{text}");
    let fsck = edgenvr(&["store", "fsck", dir_arg]);
    assert!(fsck.status.success(), "{fsck:?}");
    assert!(String::from_utf8_lossy(&fsck.stdout).contains("usable: 4 segments"));
    assert_eq!(snapshot(&dir), before);
}
