//! `nvrctl decode`: a captured byte stream of frames as JSON lines.
//!
//! Owns nothing beyond one decoding pass. Receives a reader (file or stdin); emits one JSON
//! object per frame (`"frame"`: hello, catalog, snapshot, changes, heartbeat, with their
//! values named from the catalog seen so far), one per damaged span (`"error"`, its
//! `"offset"`, `"skipped_bytes"` and the `"resync_offset"` where decoding picked up again),
//! and a final one if the stream ends inside a frame. Blocking I/O on the calling thread.

use std::io::{self, Read, Write};

use edgenvr_proto::{Feed, FrameDecoder};
use serde_json::json;

use crate::view::{frame_json, StateView};

/// What a decoding pass found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeSummary {
    /// Frames that passed their checksum.
    pub frames: u64,
    /// Spans of bytes thrown away (damaged frames, garbage).
    pub rejected: u64,
    /// Bytes of an incomplete frame at the end of the input.
    pub truncated_bytes: u64,
}

/// Decodes all of `input` into JSON lines on `out`.
pub fn decode(input: &mut dyn Read, out: &mut dyn Write) -> io::Result<DecodeSummary> {
    let mut decoder: Box<FrameDecoder> = Box::default();
    let mut view = StateView::default();
    let mut summary = DecodeSummary::default();
    // Large reads: a capture file is read in a few calls.
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let mut bytes = chunk.get(..read).unwrap_or_default();
        loop {
            let line = match decoder.feed(bytes) {
                Feed::NeedMore => break,
                Feed::Frame {
                    frame,
                    offset,
                    rest,
                } => {
                    summary.frames += 1;
                    bytes = rest;
                    frame_json(&mut view, &frame, offset).0
                }
                Feed::Rejected {
                    error,
                    offset,
                    skipped_bytes,
                    rest,
                } => {
                    summary.rejected += 1;
                    bytes = rest;
                    json!({
                        "offset": offset,
                        "error": error.to_string(),
                        "skipped_bytes": skipped_bytes,
                        "resync_offset": offset + skipped_bytes,
                    })
                }
            };
            writeln!(out, "{line}")?;
        }
    }
    let pending = decoder.pending_bytes();
    if pending > 0 {
        summary.truncated_bytes = pending;
        let line = json!({
            "error": "stream ends inside a frame",
            "skipped_bytes": pending,
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(summary)
}
