//! A recorder process killed with SIGKILL in the middle of a segment (no close, no final sync):
//! reopening the store keeps every fragment it completed, and every slot plays cleanly.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use edgenvr::store::Store;
use edgenvr_tests::ffprobe::{count_video_frames, decode_errors};
use edgenvr_tests::test_store::init_store_of_1mib_slots;

#[test]
fn fragments_completed_before_a_kill_9_survive_and_play() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    init_store_of_1mib_slots(&dir, 4 << 20).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_store-writer"))
        .arg(&dir)
        .arg(work.path())
        .arg("4")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // Seven GOPs: one full 4-GOP segment and three GOPs into the second.
    for n in 1..=7 {
        writeln!(stdin, "go").unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), format!("appended {n}"));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Opening succeeds: the kernel released the dead process's lock.
    let store = Store::open(&dir).unwrap();
    let segments = store.segments();
    let counts: Vec<usize> = segments.iter().map(|s| s.fragments.len()).collect();
    assert_eq!(counts, vec![4, 3]);
    assert!(
        store.recovery_findings().is_empty(),
        "each write ended with its tail cover"
    );
    for segment in &segments {
        assert_eq!(
            count_video_frames(&segment.path).unwrap(),
            25 * segment.fragments.len() as u64
        );
        assert_eq!(decode_errors(&segment.path).unwrap(), "");
    }
    let recordings = store.recordings();
    assert_eq!(recordings[0].ranges.len(), 1);
    assert_eq!(recordings[0].ranges[0].frames, 175);
}
