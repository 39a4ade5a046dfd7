//! Replays the committed fuzz corpus (`fuzz/corpus/TARGET/*`) through the fuzz targets' bodies
//! (`edgenvr_tests::fuzz`), so every `cargo test` runs the code paths the fuzzers reached and the
//! inputs that once crashed them (`regress-*`), without a fuzzer. The seeds (`seed-*`, written by
//! `cargo run -p edgenvr-tests --bin fuzz-seeds -- fuzz/corpus`) must reach the deep paths:
//! frames decode, configs are usable, ranges are parts, slots hold a fragment chain.

use std::path::{Path, PathBuf};

use edgenvr::serve::range::RangeRequest;
use edgenvr_tests::fuzz::{self, TARGETS};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Every file of `target`'s corpus, with its name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let seeds: Vec<_> = corpus(target)
        .into_iter()
        .filter(|(name, _)| name.starts_with("seed-"))
        .collect();
    assert!(!seeds.is_empty(), "{target} has no seed");
    seeds
}

#[test]
fn every_target_has_a_corpus_and_a_fuzz_target() {
    let targets_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets");
    for target in TARGETS {
        assert!(
            targets_dir.join(format!("{target}.rs")).is_file(),
            "fuzz/fuzz_targets/{target}.rs"
        );
        corpus(target);
    }
}

#[test]
fn state_frames_corpus_replays() {
    for (_, data) in corpus("state_frames") {
        fuzz::state_frames(&data);
    }
    for (name, data) in seeds("state_frames") {
        let summary = fuzz::state_frames(&data);
        let damaged = name.contains("damaged");
        assert_eq!(summary.frames, if damaged { 4 } else { 5 }, "{name}");
        assert_eq!(summary.rejected, usize::from(damaged), "{name}");
        assert!(summary.items >= 4, "{name}: {summary:?}");
    }
}

#[test]
fn config_corpus_replays() {
    for (_, data) in corpus("config") {
        fuzz::config(&data);
    }
    for (name, data) in seeds("config") {
        assert!(fuzz::config(&data), "{name} is a usable config");
    }
}

#[test]
fn range_header_corpus_replays() {
    for (_, data) in corpus("range_header") {
        fuzz::range_header(&data);
    }
    for (name, data) in seeds("range_header") {
        let answer = fuzz::range_header(&data);
        let expected_part = !(name.contains("past-end") || name.contains("two-ranges"));
        assert_eq!(
            matches!(answer, Some(RangeRequest::Part(_))),
            expected_part,
            "{name}: {answer:?}"
        );
    }
}

#[test]
fn slot_scan_corpus_replays() {
    for (_, data) in corpus("slot_scan") {
        fuzz::slot_image(&data);
    }
    for (name, data) in seeds("slot_scan") {
        let summary = fuzz::slot_image(&data);
        assert!(summary.has_segment, "{name}: {summary:?}");
        assert!(summary.verified_fragments >= 1, "{name}: {summary:?}");
        assert_eq!(summary.end, "TailCover", "{name}");
    }
}
