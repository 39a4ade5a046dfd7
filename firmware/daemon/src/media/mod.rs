//! The media types that flow from `ingest` through `record` to `mux` and `store`.
//!
//! Owns no state and does no I/O. Media time is in units of the RTP video clock (90 kHz, see
//! [`TIMESCALE_90K`]); wall-clock times are Unix milliseconds, anchored by `ingest`.

use std::sync::Arc;

use bytes::Bytes;

#[doc(hidden)]
pub mod synthetic;

/// The RTP video clock rate: every `_90k` value in this crate counts ticks of it.
pub const TIMESCALE_90K: u32 = 90_000;

/// Video codecs the box records (it never transcodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum VideoCodec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
}

/// What a decoder needs to know about a video stream; a change of any field starts a new segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoParams {
    /// The codec of the access units.
    pub codec: VideoCodec,
    /// Coded width in pixels.
    pub width: u16,
    /// Coded height in pixels.
    pub height: u16,
    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub rfc6381_codec: String,
    /// The decoder configuration record: `AVCDecoderConfigurationRecord` (avcC) for H.264,
    /// `HEVCDecoderConfigurationRecord` (hvcC) for H.265.
    pub decoder_config: Bytes,
}

/// AAC audio as sent by the camera.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioParams {
    /// Samples per second; also the audio track's timescale.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// The `AudioSpecificConfig` bytes for the esds box.
    pub audio_specific_config: Bytes,
}

/// The parameters of one camera stream. Shared (`Arc`) by every GOP recorded under them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamParams {
    /// The video track.
    pub video: VideoParams,
    /// The audio track, when the camera sends AAC.
    pub audio: Option<AudioParams>,
}

/// One video access unit.
#[derive(Clone, Debug)]
pub struct VideoFrame {
    /// Presentation time in 90 kHz ticks of media time (monotonic within a session).
    pub pts_90k: i64,
    /// True for an IDR/IRAP frame, where a GOP starts and a decoder can begin.
    pub is_key: bool,
    /// The NAL units, each prefixed by its 4-byte big-endian length (the MP4 sample format).
    pub data: Bytes,
}

/// One AAC audio frame.
#[derive(Clone, Debug)]
pub struct AudioFrame {
    /// Presentation time in ticks of the audio sample rate.
    pub pts: i64,
    /// The raw AAC frame (no ADTS header).
    pub data: Bytes,
}

/// A whole group of pictures: a key frame and the frames up to the next one, plus the audio
/// that plays alongside. The unit that `record` buffers, `mux` turns into one fragment and `store`
/// writes in one piece.
#[derive(Clone, Debug)]
pub struct Gop {
    /// The stream parameters these frames were coded with.
    pub params: Arc<StreamParams>,
    /// Wall-clock time of the first frame, Unix milliseconds.
    pub start_wall_ms: i64,
    /// Video frames, the first one a key frame; presentation order equals decode order (no
    /// B-frames are reordered).
    pub frames: Vec<VideoFrame>,
    /// The duration of the last frame in 90 kHz ticks (the gap to the next GOP's first frame, or
    /// the previous frame duration when that is not known yet).
    pub last_frame_duration_90k: u32,
    /// Audio frames that fall within this GOP.
    pub audio: Vec<AudioFrame>,
}

impl Gop {
    /// Duration of the GOP in 90 kHz ticks, from the first frame to the end of the last.
    pub fn duration_90k(&self) -> i64 {
        match (self.frames.first(), self.frames.last()) {
            (Some(first), Some(last)) => {
                last.pts_90k - first.pts_90k + i64::from(self.last_frame_duration_90k)
            }
            _ => 0,
        }
    }

    /// Bytes of video and audio payload, the figure the pre-roll budget counts.
    pub fn payload_bytes(&self) -> usize {
        self.frames.iter().map(|f| f.data.len()).sum::<usize>()
            + self.audio.iter().map(|f| f.data.len()).sum::<usize>()
    }
}
