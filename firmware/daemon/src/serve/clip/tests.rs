//! Clip assembly against a real store in a temporary directory, filled with synthetic GOPs
//! through the store's own writer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::media::{synthetic, Gop, StreamParams};
use crate::serve::pieces::PIECE_BYTES;
use crate::store::{init_store, InitOptions, WriterOptions};

/// 2026-01-01T00:00:00Z.
const T0_MS: i64 = 1_767_225_600_000;
/// 25 fps.
const FRAME_90K: i64 = 3600;

fn params(width: u16) -> Arc<StreamParams> {
    synthetic::h264_params(width, 240)
}

/// One-second GOP number `n` (25 frames of `frame_bytes`).
fn gop(params: &Arc<StreamParams>, n: i64, frame_bytes: usize) -> Gop {
    let frames = (0..25).map(|f| Bytes::from(vec![(n + f) as u8; frame_bytes]));
    synthetic::gop(
        params,
        T0_MS + n * 1000,
        n * 90_000,
        FRAME_90K as u32,
        frames,
    )
}

/// A store of `slots` slots of 1 MiB in a temp dir, with 4 s segments.
fn store(slots: u32) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    init_store(
        dir.path(),
        &InitOptions {
            size_bytes: u64::from(slots) << 20,
            slot_bytes: Some(1 << 20),
            slot_count: None,
        },
        &mut |_| {},
    )
    .unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn writer_options() -> WriterOptions {
    WriterOptions {
        segment_90k: Some(4 * 90_000),
        sync_interval: Duration::from_secs(60),
        share_slots: None,
    }
}

fn read_all(reader: &mut ClipReader) -> (Vec<u8>, Vec<usize>) {
    let mut clip = Vec::new();
    let mut chunks = Vec::new();
    while let Some(chunk) = reader.next_chunk() {
        let chunk = chunk.unwrap();
        chunks.push(chunk.len());
        clip.extend_from_slice(&chunk);
    }
    (clip, chunks)
}

/// (sequence number, video base decode time) of every fragment, read by the `mp4` crate.
fn fragments_of(clip: &[u8]) -> Vec<(u32, u64)> {
    let reader =
        mp4::Mp4Reader::read_header(std::io::Cursor::new(clip), clip.len() as u64).unwrap();
    reader
        .moofs
        .iter()
        .map(|moof| {
            let base = moof.trafs[0].tfdt.as_ref().unwrap().base_media_decode_time;
            (moof.mfhd.sequence_number, base)
        })
        .collect()
}

#[test]
fn a_clip_across_segments_is_continuous_and_streams_one_fragment_at_a_time() {
    let (_dir, store) = store(8);
    let mut writer = store.camera_writer("front", writer_options()).unwrap();
    let params = params(320);
    for n in 0..12 {
        writer.append(&gop(&params, n, 2000)).unwrap();
    }
    writer.close().unwrap();
    assert_eq!(store.segments().len(), 3, "12 s in 4 s segments");

    // 1.5 s to 6.5 s: from the key frame at 1 s to the end of the GOP holding 6.5 s, across the
    // boundary at 4 s.
    let plan = ClipPlan::new(&store, "front", T0_MS + 1500, T0_MS + 6500).unwrap();
    assert_eq!(plan.start_wall_ms(), T0_MS + 1000);
    assert_eq!(plan.end_wall_ms(), T0_MS + 7000);
    assert_eq!(plan.fragment_count(), 6);
    assert_eq!(plan.media_duration_90k(), 6 * 90_000);
    assert!(plan.truncation().is_none());
    let plan = Arc::new(plan);

    let mut reader = ClipReader::new(Arc::clone(&plan), store.clone(), None);
    let (clip, chunks) = read_all(&mut reader);
    assert_eq!(clip.len() as u64, plan.total_len());
    // Init segment first, then exactly one chunk per fragment, none larger than a fragment.
    assert_eq!(chunks.len(), 1 + 6);
    assert!(chunks
        .iter()
        .all(|len| *len as u64 <= plan.largest_fragment_bytes() && *len <= PIECE_BYTES));
    let fragments = fragments_of(&clip);
    let expected: Vec<(u32, u64)> = (0..6).map(|i| (i + 1, u64::from(i) * 90_000)).collect();
    assert_eq!(fragments, expected);
}

#[test]
fn a_byte_range_is_the_same_bytes_as_that_part_of_the_whole() {
    let (_dir, store) = store(8);
    let mut writer = store.camera_writer("front", writer_options()).unwrap();
    let params = params(320);
    // 25 frames of 24 KB: 600 KB fragments, read in three pieces each.
    for n in 0..6 {
        writer.append(&gop(&params, n, 24_000)).unwrap();
    }
    writer.close().unwrap();
    let plan = Arc::new(ClipPlan::new(&store, "front", T0_MS, T0_MS + 6_000).unwrap());
    let (whole, _) = read_all(&mut ClipReader::new(Arc::clone(&plan), store.clone(), None));
    let total = plan.total_len();
    for (first, last) in [
        (0, 10),
        (5, total - 1),
        (total / 2, total - 1),
        (700, 40_000),
    ] {
        let range = ByteRange { first, last };
        let (part, _) = read_all(&mut ClipReader::new(
            Arc::clone(&plan),
            store.clone(),
            Some(range),
        ));
        assert_eq!(
            part,
            whole[first as usize..=last as usize],
            "{first}-{last}"
        );
    }
}

#[test]
fn no_video_in_the_range_or_for_the_camera() {
    let (_dir, store) = store(4);
    let mut writer = store.camera_writer("front", writer_options()).unwrap();
    writer.append(&gop(&params(320), 0, 100)).unwrap();
    writer.close().unwrap();
    for (camera, from, to) in [
        ("front", T0_MS + 5000, T0_MS + 9000),
        ("front", T0_MS - 9000, T0_MS),
        ("back", T0_MS, T0_MS + 1000),
    ] {
        assert!(
            matches!(
                ClipPlan::new(&store, camera, from, to),
                Err(ClipError::NoVideo { .. })
            ),
            "{camera} {from} {to}"
        );
    }
    // An instant inside the recording is the GOP that shows it.
    let instant = ClipPlan::new(&store, "front", T0_MS + 500, T0_MS + 500).unwrap();
    assert_eq!(instant.fragment_count(), 1);
}

#[test]
fn a_fragment_overwritten_while_sending_is_an_error_not_bytes() {
    // 4 slots of 1 MiB: 4 s segments of ~50 KB GOPs (one piece each) wrap quickly.
    let (_dir, store) = store(4);
    let mut writer = store.camera_writer("front", writer_options()).unwrap();
    let params = params(320);
    const { assert!(25 * 2000 < PIECE_BYTES) };
    for n in 0..8 {
        writer.append(&gop(&params, n, 2000)).unwrap();
    }
    let plan = Arc::new(ClipPlan::new(&store, "front", T0_MS, T0_MS + 8000).unwrap());
    let mut reader = ClipReader::new(Arc::clone(&plan), store.clone(), None);
    // The init segment and the first fragment go out intact...
    assert!(reader.next_chunk().unwrap().is_ok());
    assert!(reader.next_chunk().unwrap().is_ok());
    // ...then the ring wraps over every slot the clip came from.
    for n in 8..30 {
        writer.append(&gop(&params, n, 2000)).unwrap();
    }
    let error = reader.next_chunk().unwrap().unwrap_err();
    assert!(
        matches!(error, ClipError::Store(StoreError::Overwritten { .. })),
        "{error}"
    );
    assert!(reader.next_chunk().is_none(), "nothing after the error");
}

#[test]
fn big_fragments_go_out_in_pieces_and_a_changed_byte_cuts_the_response_short() {
    // 25 frames of 16 KB: 400 KB fragments, two pieces each (two fit a 1 MiB test slot).
    let (_dir, store) = store(8);
    let mut writer = store.camera_writer("front", writer_options()).unwrap();
    let params = params(320);
    for n in 0..3 {
        writer.append(&gop(&params, n, 16_000)).unwrap();
    }
    writer.close().unwrap();
    let plan = Arc::new(ClipPlan::new(&store, "front", T0_MS, T0_MS + 3000).unwrap());
    let (whole, chunks) = read_all(&mut ClipReader::new(Arc::clone(&plan), store.clone(), None));
    assert_eq!(whole.len() as u64, plan.total_len());
    assert!(chunks.iter().all(|len| *len <= PIECE_BYTES), "{chunks:?}");
    // The init segment, then at least two pieces per fragment.
    assert!(chunks.len() > 3 * 2, "{chunks:?}");

    // One byte in the middle of the second fragment changes on the card.
    let segment = &store.segments()[0];
    let fragment = &segment.fragments[1];
    let at = fragment.body_offset + u64::from(fragment.body_len) / 2;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&segment.path)
        .unwrap();
    use std::os::unix::fs::FileExt as _;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0xff], at).unwrap();

    let mut reader = ClipReader::new(Arc::clone(&plan), store.clone(), None);
    let mut sent = 0u64;
    let error = loop {
        match reader.next_chunk() {
            Some(Ok(chunk)) => sent += chunk.len() as u64,
            Some(Err(error)) => break error,
            None => panic!("the changed fragment was sent in full ({sent} bytes)"),
        }
    };
    assert!(
        matches!(error, ClipError::Store(StoreError::Overwritten { .. })),
        "{error}"
    );
    let third = store
        .segments()
        .iter()
        .flat_map(|s| s.fragments.clone())
        .nth(2)
        .unwrap();
    let second_ends = plan.total_len() - u64::from(third.body_len);
    assert!(sent < second_ends, "{sent} of {second_ends}");
    assert!(reader.next_chunk().is_none());

    // A range ending inside the changed fragment fails too, before its last byte.
    let range = ByteRange {
        first: 0,
        last: second_ends - 1000,
    };
    let mut reader = ClipReader::new(Arc::clone(&plan), store.clone(), Some(range));
    let results: Vec<_> = std::iter::from_fn(|| reader.next_chunk()).collect();
    assert!(results.last().unwrap().is_err());
}

#[test]
fn the_clip_ends_where_the_stream_parameters_change() {
    let (_dir, store) = store(8);
    let mut writer = store.camera_writer("front", writer_options()).unwrap();
    for n in 0..3 {
        writer.append(&gop(&params(320), n, 100)).unwrap();
    }
    for n in 3..6 {
        writer.append(&gop(&params(640), n, 100)).unwrap();
    }
    writer.close().unwrap();
    let plan = ClipPlan::new(&store, "front", T0_MS, T0_MS + 6000).unwrap();
    assert_eq!(plan.fragment_count(), 3);
    assert_eq!(plan.end_wall_ms(), T0_MS + 3000);
    let truncation = plan.truncation().unwrap();
    assert_eq!(truncation.at_wall_ms, T0_MS + 3000);
    assert!(truncation.reason.contains("640x240"), "{truncation:?}");
}

#[test]
fn the_segment_being_written_is_included() {
    let (_dir, store) = store(8);
    let mut writer = store.camera_writer("front", writer_options()).unwrap();
    let params = params(320);
    for n in 0..6 {
        writer.append(&gop(&params, n, 100)).unwrap();
    }
    // Not closed: the second segment is still open.
    let plan = ClipPlan::new(&store, "front", T0_MS, T0_MS + 60_000).unwrap();
    assert_eq!(plan.fragment_count(), 6);
    assert_eq!(plan.end_wall_ms(), T0_MS + 6000);
    drop(writer);
}
