//! Synthetic streams for tests and benchmarks: stream parameters and whole GOPs built from
//! payloads the caller chooses, so the store, the clip server and the benchmarks that drive them
//! without a camera share one definition of "a stream".
//!
//! No I/O. The parameters carry a stub `avcC` (no SPS/PPS): enough for the store and the MP4
//! writer, not for a decoder; tests that must play their video encode it with ffmpeg instead.

use std::sync::Arc;

use bytes::Bytes;

use super::{Gop, StreamParams, VideoCodec, VideoFrame, VideoParams};

/// H.264 High profile level 4.0 parameters of the given size, with a stub decoder configuration.
pub fn h264_params(width: u16, height: u16) -> Arc<StreamParams> {
    Arc::new(StreamParams {
        video: VideoParams {
            codec: VideoCodec::H264,
            width,
            height,
            rfc6381_codec: "avc1.640028".into(),
            // configurationVersion 1, profile 100, compatibility 0, level 40, 4-byte lengths,
            // no SPS, no PPS.
            decoder_config: Bytes::from_static(&[1, 0x64, 0, 0x28, 0xff, 0xe0, 0]),
        },
        audio: None,
    })
}

/// A GOP whose first frame is at `first_pts_90k` and wall time `start_wall_ms`, one frame per
/// payload every `frame_90k` ticks, the first one the key frame; no audio.
pub fn gop(
    params: &Arc<StreamParams>,
    start_wall_ms: i64,
    first_pts_90k: i64,
    frame_90k: u32,
    payloads: impl IntoIterator<Item = Bytes>,
) -> Gop {
    Gop {
        params: Arc::clone(params),
        start_wall_ms,
        frames: payloads
            .into_iter()
            .enumerate()
            .map(|(i, data)| VideoFrame {
                pts_90k: first_pts_90k + i as i64 * i64::from(frame_90k),
                is_key: i == 0,
                data,
            })
            .collect(),
        last_frame_duration_90k: frame_90k,
        audio: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_follow_each_other_and_only_the_first_is_key() {
        let params = h264_params(320, 240);
        let gop = gop(&params, 5_000, 90_000, 3600, (0..3).map(|_| Bytes::new()));
        let pts: Vec<i64> = gop.frames.iter().map(|f| f.pts_90k).collect();
        assert_eq!(pts, [90_000, 93_600, 97_200]);
        let keys: Vec<bool> = gop.frames.iter().map(|f| f.is_key).collect();
        assert_eq!(keys, [true, false, false]);
        assert_eq!(gop.duration_90k(), 3 * 3600);
    }
}
