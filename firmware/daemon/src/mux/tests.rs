//! The mux's output read back by an independent parser (the `mp4` crate) and checked box by box.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::media::{
    AudioFrame, AudioParams, Gop, StreamParams, VideoCodec, VideoFrame, VideoParams,
};

/// A well-formed avcC: High profile level 2.0, one 4-byte SPS, one 2-byte PPS.
const AVCC: &[u8] = &[
    1, 0x64, 0, 0x14, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x14, 1, 0, 2, 0x68, 0xee,
];
/// AudioSpecificConfig: AAC-LC, 48 kHz, stereo.
const ASC: &[u8] = &[0x11, 0x90];

fn params(audio: bool) -> StreamParams {
    StreamParams {
        video: VideoParams {
            codec: VideoCodec::H264,
            width: 320,
            height: 240,
            rfc6381_codec: "avc1.640014".into(),
            decoder_config: Bytes::from_static(AVCC),
        },
        audio: audio.then(|| AudioParams {
            sample_rate: 48_000,
            channels: 2,
            audio_specific_config: Bytes::from_static(ASC),
        }),
    }
}

fn gop(params: StreamParams) -> Gop {
    Gop {
        params: Arc::new(params),
        start_wall_ms: 0,
        frames: (0..5)
            .map(|i| VideoFrame {
                pts_90k: 1000 + i * 3600,
                is_key: i == 0,
                data: Bytes::from(vec![0, 0, 0, 2, 0x65, i as u8]),
            })
            .collect(),
        last_frame_duration_90k: 3600,
        audio: (0..9)
            .map(|i| AudioFrame {
                pts: 500 + i * 1024,
                data: Bytes::from(vec![0x21, i as u8, 0]),
            })
            .collect(),
    }
}

fn file(params: StreamParams) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_init_segment(&params, &mut bytes).unwrap();
    let times = FragmentTimes {
        sequence_number: 1,
        video_base_90k: 0,
        audio_base: 0,
    };
    write_fragment(&gop(params), &times, &mut bytes).unwrap();
    bytes
}

#[test]
fn video_and_audio_tracks_read_back_with_the_mp4_crate() {
    let bytes = file(params(true));
    let size = bytes.len() as u64;
    let reader = mp4::Mp4Reader::read_header(Cursor::new(bytes), size).unwrap();
    assert!(reader.is_fragmented());
    let video = reader.tracks().get(&VIDEO_TRACK_ID).unwrap();
    assert_eq!(video.box_type().unwrap(), "avc1".parse().unwrap());
    assert_eq!((video.width(), video.height()), (320, 240));
    assert_eq!(video.timescale(), 90_000);
    assert_eq!(
        video.sequence_parameter_set().unwrap(),
        &[0x67, 0x64, 0, 0x14]
    );
    assert_eq!(video.sample_count(), 5);
    let audio = reader.tracks().get(&AUDIO_TRACK_ID).unwrap();
    assert_eq!(audio.box_type().unwrap(), "mp4a".parse().unwrap());
    assert_eq!(audio.timescale(), 48_000);
    assert_eq!(audio.sample_count(), 9);
    assert_eq!(
        audio.sample_freq_index().unwrap(),
        mp4::SampleFreqIndex::Freq48000
    );
}

#[test]
fn trun_offsets_point_at_the_samples_in_mdat() {
    let params = params(true);
    let mut init = Vec::new();
    write_init_segment(&params, &mut init).unwrap();
    let bytes = file(params);
    let fragment = &bytes[init.len()..];
    let moof_size = u32::from_be_bytes(fragment[..4].try_into().unwrap()) as usize;
    assert_eq!(&fragment[4..8], b"moof");
    assert_eq!(&fragment[moof_size + 4..moof_size + 8], b"mdat");
    let reader =
        mp4::Mp4Reader::read_header(Cursor::new(bytes.clone()), bytes.len() as u64).unwrap();
    let video_trun = reader.tracks()[&VIDEO_TRACK_ID].trafs[0]
        .trun
        .clone()
        .unwrap();
    let audio_trun = reader.tracks()[&AUDIO_TRACK_ID].trafs[0]
        .trun
        .clone()
        .unwrap();
    let video_at = video_trun.data_offset.unwrap() as usize;
    let audio_at = audio_trun.data_offset.unwrap() as usize;
    assert_eq!(&fragment[video_at..video_at + 6], &[0, 0, 0, 2, 0x65, 0]);
    assert_eq!(&fragment[audio_at..audio_at + 3], &[0x21, 0, 0]);
    assert_eq!(video_trun.sample_durations, vec![3600; 5]);
    assert_eq!(video_trun.sample_flags[0], 0x0200_0000);
    assert_eq!(video_trun.sample_flags[1], 0x0101_0000);
    assert_eq!(audio_trun.sample_durations, vec![1024; 9]);
}

#[test]
fn a_video_only_stream_has_one_track_and_hevc_uses_hvc1() {
    let mut params = params(false);
    params.video.codec = VideoCodec::H265;
    let mut init = Vec::new();
    write_init_segment(&params, &mut init).unwrap();
    let contains = |needle: &[u8]| init.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"hvc1") && contains(b"hvcC"));
    assert!(!contains(b"avc1") && !contains(b"mp4a"));
    assert!(!contains(b"soun"));
}

#[test]
fn malformed_gops_are_refused() {
    let times = FragmentTimes {
        sequence_number: 1,
        video_base_90k: 0,
        audio_base: 0,
    };
    let mut buf = Vec::new();
    let mut empty = gop(params(false));
    empty.frames.clear();
    assert_eq!(
        write_fragment(&empty, &times, &mut buf),
        Err(MuxError::EmptyGop)
    );
    let mut keyless = gop(params(false));
    keyless.frames[0].is_key = false;
    assert_eq!(
        write_fragment(&keyless, &times, &mut buf),
        Err(MuxError::NoKeyFrame)
    );
    let mut backwards = gop(params(false));
    backwards.frames[3].pts_90k = 0;
    assert!(matches!(
        write_fragment(&backwards, &times, &mut buf),
        Err(MuxError::BadTimestamps { index: 3, .. })
    ));
}
