//! Fragmented MP4 (ISO BMFF) writing: the init segment of a stream and one fragment per GOP.
//!
//! Receives [`crate::media::StreamParams`] and [`crate::media::Gop`]s; emits bytes appended to a
//! caller's `Vec<u8>` (so the store reuses one buffer per camera). A fragment comes as its head
//! ([`write_fragment_head`]: `moof` and the `mdat` header) plus the GOP's own frame bytes
//! ([`fragment_payload`]), so the store writes it with one vectored write and the video is never
//! copied; [`write_fragment`] joins them into one buffer. Does no I/O, holds no state, and is safe
//! to call from any thread.
//!
//! Tracks: video is track 1 (timescale 90 kHz, `avc1`+`avcC` or `hvc1`+`hvcC`); AAC audio, when
//! the stream has it, is track 2 (timescale = sample rate, `mp4a`+`esds`). Each fragment is one
//! `moof` (`mfhd`, then per track `traf` with `tfhd`, `tfdt`, `trun`) followed by one `mdat`
//! holding the video samples and then the audio samples.
//!
//! Why an own box writer rather than the `mp4` crate: `mp4` 0.14 writes `moov` at the end only and
//! its `hvcC` writer is broken (see DESIGN.md); the few boxes a fragmented file needs are simple.
//! Tests read our output back with the `mp4` crate as an independent parser.

pub mod boxes;
mod fragment;
mod init;

pub use fragment::{fragment_payload, write_fragment, write_fragment_head, FragmentTimes};
pub use init::write_init_segment;

/// The track id of the video track in every init segment and fragment.
pub const VIDEO_TRACK_ID: u32 = 1;
/// The track id of the AAC audio track, when the stream has one.
pub const AUDIO_TRACK_ID: u32 = 2;

/// Why a GOP or stream could not be turned into MP4 boxes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MuxError {
    /// A GOP with no video frames.
    #[error("GOP has no video frames")]
    EmptyGop,
    /// A GOP whose first frame is not a key frame cannot start a fragment a player can decode.
    #[error("GOP does not start with a key frame")]
    NoKeyFrame,
    /// Frame timestamps must increase within a GOP (no B-frame reordering is done).
    #[error("frame timestamps go backwards or jump too far inside a GOP (frame {index}: {pts_90k} after {previous_pts_90k})")]
    BadTimestamps {
        /// Index of the offending frame in the GOP (video) or in the GOP's audio.
        index: usize,
        /// Its timestamp.
        pts_90k: i64,
        /// The timestamp of the frame before it.
        previous_pts_90k: i64,
    },
    /// A box grew beyond what a 32-bit box size can describe.
    #[error("{fourcc} box would be {bytes} bytes, more than a 32-bit box size allows")]
    TooLarge {
        /// The box type.
        fourcc: String,
        /// Its size.
        bytes: u64,
    },
    /// A field of the stream parameters does not fit the box that carries it.
    #[error("stream parameter out of range: {0}")]
    BadParams(&'static str),
}

#[cfg(test)]
mod tests;
