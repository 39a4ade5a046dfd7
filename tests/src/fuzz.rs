//! The bodies of the fuzz targets in `fuzz/`, shared with `tests/tests/fuzz_corpus.rs`, which
//! replays every file of the committed corpus (`fuzz/corpus/TARGET/`) through them in an ordinary
//! `cargo test`, so CI runs the targets' code paths without a fuzzer.
//!
//! Each function takes the fuzzer's bytes, drives one public entry point that reads outside
//! data, and checks what must hold for any input (a panic is the bug a fuzzer reports); it
//! returns a short summary so the replay test can check that the seed inputs reach the deep
//! paths. Kept thin on purpose: the protocol and the store format are still moving, and
//! re-pointing a target means editing one function here.
//!
//! No I/O except [`slot_image`], which writes its input to a scratch file (`/dev/shm` when there
//! is one) because the recovery scan reads a `File`.

use std::cell::RefCell;
use std::fs::File;
use std::io::Write as _;

use edgenvr::serve::range::{parse_range, RangeRequest};
use edgenvr::store::scan::{scan_slot, FragmentInfo, Verify};
use edgenvr_proto::{Body, Feed, FrameDecoder, SensorId, ValueKind};

/// The fuzz targets, by the name of their corpus directory and `fuzz_targets/NAME.rs`.
pub const TARGETS: [&str; 4] = ["state_frames", "config", "range_header", "slot_scan"];

/// What [`state_frames`] decoded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FramesSummary {
    /// Frames whose checksum and header checked out.
    pub frames: usize,
    /// Spans the decoder rejected and skipped.
    pub rejected: usize,
    /// Catalog entries and changes read out of the frames.
    pub items: usize,
}

/// The kind a receiver's catalog would give sensor `id`: a fixed mix, so changes of every
/// kind (and of unknown sensors) are read.
fn kind_of(id: SensorId) -> Option<ValueKind> {
    match id.0 % 5 {
        0 => Some(ValueKind::Binary),
        1 => Some(ValueKind::Scalar),
        2 => Some(ValueKind::Complex),
        3 => Some(ValueKind::Unsigned),
        _ => None,
    }
}

/// The most pack bytes the fuzz body gathers before it drops them: packs of a few KiB reach
/// every path of the pack decoder, and big ones would only slow the fuzzer.
const MAX_FUZZ_PACK_BYTES: usize = 64 * 1024;
/// What a pack may inflate to here (the pack decoder's limit, exercised).
const MAX_FUZZ_INFLATED_BYTES: usize = 1 << 20;

/// The state frame decoder (`edgenvr_proto::FrameDecoder`), as `nvrctl` runs it on a socket.
/// The first byte picks the size of the pieces the rest is fed in (1–16 bytes, or all at once),
/// since frames arrive split anywhere. Every frame's catalog entries, changes and packed
/// snapshot values are read, and catalog pack parts are gathered and, at a last part, decoded
/// (`edgenvr_proto::pack::decode_catalog_pack`, protocol version 2).
pub fn state_frames(data: &[u8]) -> FramesSummary {
    let Some((&chunking, stream)) = data.split_first() else {
        return FramesSummary::default();
    };
    let chunk_bytes = match usize::from(chunking % 17) {
        0 => stream.len().max(1),
        n => n,
    };
    let mut decoder: FrameDecoder = FrameDecoder::new();
    let mut summary = FramesSummary::default();
    let mut pack: Vec<u8> = Vec::new();
    let mut next_offset = 0u64;
    for chunk in stream.chunks(chunk_bytes) {
        let mut input = chunk;
        loop {
            match decoder.feed(input) {
                Feed::NeedMore => break,
                Feed::Frame {
                    frame,
                    offset,
                    rest,
                } => {
                    assert!(offset >= next_offset, "frames go forward");
                    assert!(rest.len() < input.len(), "a frame consumes input");
                    summary.frames += 1;
                    summary.items += match frame.body {
                        Body::Catalog(catalog) => catalog.entries().count(),
                        Body::Changes(batch) => batch.changes(kind_of).count(),
                        Body::Snapshot(snapshot) => snapshot.batch.changes(kind_of).count(),
                        Body::PackedSnapshot(part) => part.values(kind_of).count(),
                        Body::CatalogPack(part) => {
                            if pack.len() + part.bytes.len() > MAX_FUZZ_PACK_BYTES {
                                pack.clear();
                            }
                            pack.extend_from_slice(part.bytes);
                            let mut entries = 0;
                            if part.last_part {
                                let _ = edgenvr_proto::pack::decode_catalog_pack(
                                    &pack,
                                    MAX_FUZZ_INFLATED_BYTES,
                                    |_| entries += 1,
                                );
                                pack.clear();
                            }
                            entries
                        }
                        _ => 0,
                    };
                    next_offset = offset;
                    input = rest;
                }
                Feed::Rejected {
                    offset,
                    skipped_bytes,
                    rest,
                    ..
                } => {
                    assert!(skipped_bytes >= 1, "a rejected span holds its delimiter");
                    assert!(offset >= next_offset, "rejections go forward");
                    assert!(rest.len() < input.len(), "a rejection consumes input");
                    summary.rejected += 1;
                    next_offset = offset + skipped_bytes;
                    input = rest;
                }
            }
        }
    }
    assert!(decoder.pending_bytes() <= stream.len() as u64);
    summary
}

/// The config parser behind `edgenvr check-config` (`edgenvr::config::parse`). Returns whether
/// the text is a usable config. Non-UTF-8 input is not a config (`read_to_string` refuses it
/// before the parser runs).
pub fn config(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    match edgenvr::config::parse(text) {
        Ok(_) => true,
        Err(problems) => {
            assert!(!problems.is_empty(), "a refused config names a problem");
            let lines = text.lines().count() + 1;
            for problem in &problems {
                assert!(!problem.message.is_empty(), "{problem:?}");
                assert!(problem.line.is_none_or(|line| (1..=lines).contains(&line)));
            }
            false
        }
    }
}

/// The HTTP `Range` parser of clip downloads (`edgenvr::serve::range::parse_range`). The first
/// eight bytes are the body length (little-endian), the rest the header value as a client sent
/// it (HTTP header values are bytes; the server only reads ASCII ones, as `to_str` does).
pub fn range_header(data: &[u8]) -> Option<RangeRequest> {
    let (length, header) = data.split_at_checked(8)?;
    let total_len = u64::from_le_bytes(length.try_into().ok()?);
    let header = std::str::from_utf8(header).ok()?;
    let answer = parse_range(Some(header), total_len);
    if let RangeRequest::Part(range) = answer {
        assert!(
            range.first <= range.last,
            "{header:?} {total_len}: {range:?}"
        );
        assert!(range.last < total_len, "{header:?} {total_len}: {range:?}");
        assert_eq!(range.len(), range.last - range.first + 1);
    }
    Some(answer)
}

/// What [`slot_image`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SlotSummary {
    /// The slot holds a segment header (and an intact init segment).
    pub has_segment: bool,
    /// Fragments that passed the header chain and their checksums.
    pub verified_fragments: usize,
    /// How the checksum walk ended, e.g. `TailCover`.
    pub end: String,
}

/// Scratch file of [`slot_image`], reused by every call on a thread.
fn scratch_file() -> std::io::Result<File> {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempfile_in(shm)
    } else {
        tempfile::tempfile()
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<File>> = const { RefCell::new(None) };
}

/// The recovery scan of one slot file (`edgenvr::store::scan::scan_slot`), as `Store::open` and
/// `store fsck` run it on every slot after a power cut. The input is the store id (8 bytes,
/// big-endian) and slot index (4 bytes) the scan expects, then the slot file's bytes. Scans with
/// headers only and with checksums: the checksum walk keeps a prefix of what the header walk
/// keeps, and every fragment it keeps lies inside the file, in order.
pub fn slot_image(data: &[u8]) -> SlotSummary {
    let Some((ids, image)) = data.split_at_checked(12) else {
        return SlotSummary::default();
    };
    let store_id = u64::from_be_bytes(ids[..8].try_into().unwrap_or_default());
    let slot_index = u32::from_be_bytes(ids[8..].try_into().unwrap_or_default());
    SCRATCH.with_borrow_mut(|scratch| {
        let file = match scratch {
            Some(file) => file,
            None => scratch.insert(scratch_file().expect("a scratch file")),
        };
        file.set_len(0).expect("truncate the scratch file");
        std::os::unix::fs::FileExt::write_all_at(&*file, image, 0).expect("write");
        file.flush().expect("flush");
        let file: &File = file;
        let slot_bytes = image.len() as u64;
        let scan = |verify| scan_slot(file, slot_bytes, store_id, slot_index, verify);
        // A slot shorter than its header is an I/O error ("failed to fill whole buffer"), which
        // the store reports; anything else must come back as a scan.
        let (Ok(headers), Ok(checksums)) = (scan(Verify::Headers), scan(Verify::Checksums)) else {
            return SlotSummary::default();
        };
        check_fragments(&checksums.fragments, checksums.end_offset, slot_bytes);
        check_fragments(&headers.fragments, headers.end_offset, slot_bytes);
        assert!(
            headers.fragments.starts_with(&checksums.fragments),
            "checksums keep a prefix of the header chain"
        );
        SlotSummary {
            has_segment: checksums.header.is_some(),
            verified_fragments: checksums.fragments.len(),
            end: format!("{:?}", checksums.end),
        }
    })
}

/// Fragments are numbered from 0, follow each other without gaps, end inside the slot, and the
/// scan's end offset is where the last one ends.
fn check_fragments(fragments: &[FragmentInfo], end_offset: u64, slot_bytes: u64) {
    for (index, pair) in fragments.windows(2).enumerate() {
        assert_eq!(pair[0].end_offset(), pair[1].offset, "fragment {index}");
    }
    for (index, fragment) in fragments.iter().enumerate() {
        assert_eq!(fragment.index as usize, index);
        assert!(fragment.offset < fragment.body_offset);
        assert!(fragment.end_offset() <= slot_bytes);
    }
    if let Some(last) = fragments.last() {
        assert_eq!(last.end_offset(), end_offset);
    }
    assert!(end_offset <= slot_bytes);
}
