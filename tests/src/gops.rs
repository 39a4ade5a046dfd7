//! Turns a [`TestStream`] into the daemon's media types: stream parameters and GOPs with 90 kHz
//! timestamps at 25 fps, stamped with wall-clock times as `ingest` would.

use std::sync::Arc;

use bytes::Bytes;
use edgenvr::media::{Gop, StreamParams, VideoCodec, VideoFrame, VideoParams};

use crate::clips::Codec;
use crate::h26x::TestStream;

/// 25 fps in 90 kHz ticks.
pub const FRAME_DURATION_90K: i64 = 3600;

/// The stream parameters of a 320x240 test stream.
pub fn stream_params(stream: &TestStream) -> Arc<StreamParams> {
    let codec = match stream.codec {
        Codec::H264 => VideoCodec::H264,
        Codec::H265 => VideoCodec::H265,
    };
    Arc::new(StreamParams {
        video: VideoParams {
            codec,
            width: 320,
            height: 240,
            rfc6381_codec: match codec {
                VideoCodec::H264 => "avc1.640014".into(),
                VideoCodec::H265 => "hvc1.1.6.L60.90".into(),
            },
            decoder_config: Bytes::from(stream.decoder_config.clone()),
        },
        audio: None,
    })
}

/// Splits the stream into GOPs (one per key frame) starting at media time `first_pts_90k` and
/// wall-clock time `first_wall_ms`.
pub fn gops(stream: &TestStream, first_pts_90k: i64, first_wall_ms: i64) -> Vec<Gop> {
    let params = stream_params(stream);
    let mut gops: Vec<Gop> = Vec::new();
    for (n, unit) in stream.access_units.iter().enumerate() {
        let pts_90k = first_pts_90k + n as i64 * FRAME_DURATION_90K;
        if unit.is_key || gops.is_empty() {
            gops.push(Gop {
                params: Arc::clone(&params),
                start_wall_ms: first_wall_ms + (pts_90k - first_pts_90k) / 90,
                frames: Vec::new(),
                last_frame_duration_90k: FRAME_DURATION_90K as u32,
                audio: Vec::new(),
            });
        }
        if let Some(gop) = gops.last_mut() {
            gop.frames.push(VideoFrame {
                pts_90k,
                is_key: unit.is_key,
                data: Bytes::from(unit.data.clone()),
            });
        }
    }
    gops
}

/// Adds `audio` to `gops` (built by [`gops`] from media time `first_pts_90k`): the stream
/// parameters gain the AAC track, and each audio frame goes into the GOP whose video time span
/// holds its start (audio and video both start at the first GOP).
pub fn add_audio(gops: &mut [Gop], audio: &crate::aac::AacStream, first_pts_90k: i64) {
    let Some(first) = gops.first() else { return };
    let mut params = (*first.params).clone();
    params.audio = Some(edgenvr::media::AudioParams {
        sample_rate: audio.sample_rate,
        channels: audio.channels,
        audio_specific_config: Bytes::from(audio.audio_specific_config.clone()),
    });
    let params = Arc::new(params);
    let samples_per_frame = 1024i64;
    for (n, frame) in audio.frames.iter().enumerate() {
        let pts = n as i64 * samples_per_frame;
        let at_90k = first_pts_90k + pts * 90_000 / i64::from(audio.sample_rate);
        let target = gops
            .iter()
            .rposition(|gop| gop.frames.first().is_some_and(|f| f.pts_90k <= at_90k));
        if let Some(gop) = target.and_then(|index| gops.get_mut(index)) {
            gop.audio.push(edgenvr::media::AudioFrame {
                pts,
                data: Bytes::from(frame.clone()),
            });
        }
    }
    for gop in gops.iter_mut() {
        gop.params = Arc::clone(&params);
    }
}
