//! Damage in the middle of a segment of real H.264: recovery keeps every fragment before it, the
//! repaired slot plays exactly those, and directories that are not stores are refused.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use edgenvr::store::{Store, WriterOptions};
use edgenvr_tests::bins;
use edgenvr_tests::clips::Codec;
use edgenvr_tests::ffprobe::{count_video_frames, decode_errors};
use edgenvr_tests::gops::gops;
use edgenvr_tests::h26x::encode_test_stream;
use edgenvr_tests::test_store::{init_store_of_1mib_slots, record_gops, WALL_START_MS};

fn edgenvr(args: &[&str]) -> std::process::Output {
    Command::new(bins::edgenvr()).args(args).output().unwrap()
}

/// A store holding one 6-GOP segment of camera "front"; returns the store directory.
fn recorded_store(work: &Path) -> std::path::PathBuf {
    let stream = encode_test_stream(work, Codec::H264, 6).unwrap();
    let dir = work.join("store");
    init_store_of_1mib_slots(&dir, 4 << 20).unwrap();
    let store = Store::open(&dir).unwrap();
    record_gops(
        &store,
        WriterOptions {
            segment_90k: Some(60 * 90_000),
            sync_interval: Duration::from_secs(2),
            share_slots: None,
        },
        &gops(&stream, 0, WALL_START_MS),
    )
    .unwrap();
    dir
}

#[test]
fn a_corrupted_fragment_in_the_middle_keeps_everything_before_it() {
    let work = tempfile::tempdir().unwrap();
    let dir = recorded_store(work.path());
    let segment = Store::open(&dir).unwrap().segments()[0].clone();
    assert_eq!(segment.fragments.len(), 6);
    // Flip one byte inside fragment 3's video.
    let fragment = &segment.fragments[3];
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&segment.path)
        .unwrap();
    let at = fragment.body_offset + u64::from(fragment.body_len) - 100;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x55], at).unwrap();
    drop(file);

    let store = Store::open(&dir).unwrap();
    let segments = store.segments();
    assert_eq!(segments[0].fragments.len(), 3);
    assert_eq!(segments[0].fragments[..], segment.fragments[..3]);
    let finding = &store.recovery_findings()[0];
    assert!(finding.problem.contains("checksum"), "{finding:?}");
    drop(store);
    // The repair covered the damaged rest: the slot plays the 3 intact GOPs, cleanly.
    assert_eq!(count_video_frames(&segment.path).unwrap(), 75);
    assert_eq!(decode_errors(&segment.path).unwrap(), "");
}

#[test]
fn a_torn_fragment_is_cut_off_by_fsck_which_exits_zero() {
    let work = tempfile::tempdir().unwrap();
    let dir = recorded_store(work.path());
    let segment = Store::open(&dir).unwrap().segments()[0].clone();
    // A torn write: the second half of fragment 4 never reached the card (zeroes remain).
    let fragment = &segment.fragments[4];
    let half = u64::from(fragment.body_len) / 2;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment.path)
        .unwrap();
    file.write_all_at(&vec![0u8; half as usize], fragment.body_offset + half)
        .unwrap();
    drop(file);

    let dir_arg = dir.to_str().unwrap();
    let fsck = edgenvr(&["store", "fsck", dir_arg]);
    let report = String::from_utf8_lossy(&fsck.stdout);
    assert!(fsck.status.success(), "{fsck:?}");
    assert!(
        report.contains("fragment 4 failing its checksum"),
        "{report}"
    );
    assert!(report.contains("repaired: covered"), "{report}");
    assert!(report.contains("4 intact fragments"), "{report}");
    assert_eq!(count_video_frames(&segment.path).unwrap(), 100);
    assert_eq!(decode_errors(&segment.path).unwrap(), "");
    // A second fsck finds nothing left to repair.
    let again = edgenvr(&["store", "fsck", dir_arg, "--json"]);
    assert!(again.status.success());
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["findings"].as_array().unwrap().len(), 0);
    assert_eq!(report["fragments"], 4);
}

#[test]
fn directories_that_are_not_stores_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let empty_arg = empty.to_str().unwrap();

    let ls = edgenvr(&["store", "ls", empty_arg]);
    assert_eq!(ls.status.code(), Some(1));
    let message = String::from_utf8_lossy(&ls.stderr);
    assert!(message.contains("not an edgenvr store"), "{message}");
    assert!(message.contains(empty_arg), "{message}");

    let fsck = edgenvr(&["store", "fsck", empty_arg]);
    assert_eq!(fsck.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&fsck.stdout).contains("not usable"));

    // A directory with other files (say, the SD card's root under an unmounted mount point).
    std::fs::write(empty.join("photo.jpg"), b"not video").unwrap();
    let init = edgenvr(&["store", "init", empty_arg, "--size", "1MiB"]);
    assert_eq!(init.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&init.stderr).contains("refusing to initialise"));
    let entries: Vec<_> = std::fs::read_dir(&empty).unwrap().collect();
    assert_eq!(entries.len(), 1, "nothing was written next to the photo");
}

#[test]
fn init_shows_progress_and_a_second_init_changes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("new-store");
    let dir_arg = dir.to_str().unwrap();
    let init = edgenvr(&["store", "init", dir_arg, "--size", "8MiB"]);
    assert!(init.status.success(), "{init:?}");
    let progress = String::from_utf8_lossy(&init.stderr);
    assert!(progress.contains("100% (8.0 MiB of 8.0 MiB)"), "{progress}");
    assert!(String::from_utf8_lossy(&init.stdout).contains("initialised store"));
    let again = edgenvr(&["store", "init", dir_arg, "--size", "8MiB"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already initialised"));
    let other = edgenvr(&["store", "init", dir_arg, "--size", "16MiB"]);
    assert_eq!(other.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&other.stderr).contains("already a store"));
    let bad_size = edgenvr(&["store", "init", dir_arg, "--size", "8 parsecs"]);
    assert_eq!(bad_size.status.code(), Some(2), "usage error");
}
