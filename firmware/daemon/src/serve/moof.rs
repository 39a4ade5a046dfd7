//! Rewrites the numbers that make stored fragments one continuous clip: the `mfhd` sequence
//! number and each track's `tfdt` base decode time, in place (sizes never change, so a clip's
//! length is known before any fragment is read). Also reads the audio timescale from an init
//! segment. Works on bytes only; no I/O. Box layouts are the ones `mux` writes, but every offset
//! is bounds-checked: the bytes come from a card.

use crate::mux::{AUDIO_TRACK_ID, VIDEO_TRACK_ID};

/// Why a fragment or init segment could not be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoofError {
    /// A box is missing or its size does not fit.
    #[error("malformed {0} box")]
    Malformed(&'static str),
    /// A new base decode time does not fit a version-0 `tfdt` (never written by `mux`).
    #[error("decode time {0} does not fit the fragment's 32-bit tfdt")]
    TimeTooLarge(u64),
}

/// The new numbers for one fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentRewrite {
    /// `mfhd` sequence number in the clip (1, 2, ...).
    pub sequence_number: u32,
    /// Video base decode time in the clip, 90 kHz.
    pub video_base_90k: u64,
    /// Added to the audio track's base decode time (audio timescale), so audio moves with video.
    pub audio_shift: i64,
}

/// Iterates the boxes in `bytes`: `(fourcc, start, end)` of each, stopping at a malformed one.
fn boxes(bytes: &[u8]) -> impl Iterator<Item = Result<([u8; 4], usize, usize), MoofError>> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        let header = bytes.get(at..at + 8);
        let parsed = header.and_then(|h| {
            let size = u32::from_be_bytes(h.get(..4)?.try_into().ok()?) as usize;
            let fourcc: [u8; 4] = h.get(4..8)?.try_into().ok()?;
            let end = at.checked_add(size)?;
            (size >= 8 && end <= bytes.len()).then_some((fourcc, at, end))
        });
        match parsed {
            Some(found) => {
                at = found.2;
                Some(Ok(found))
            }
            None => {
                at = bytes.len();
                Some(Err(MoofError::Malformed("box header")))
            }
        }
    })
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn write_u32(bytes: &mut [u8], at: usize, value: u32) -> Option<()> {
    bytes
        .get_mut(at..at + 4)?
        .copy_from_slice(&value.to_be_bytes());
    Some(())
}

/// Applies `rewrite` to the `moof` at the start of `body` (a stored fragment body).
pub fn rewrite_fragment(body: &mut [u8], rewrite: &FragmentRewrite) -> Result<(), MoofError> {
    let (fourcc, _, moof_end) = boxes(body).next().ok_or(MoofError::Malformed("moof"))??;
    if &fourcc != b"moof" {
        return Err(MoofError::Malformed("moof"));
    }
    let children: Vec<_> = boxes(body.get(8..moof_end).ok_or(MoofError::Malformed("moof"))?)
        .collect::<Result<_, _>>()?;
    let mut saw_mfhd = false;
    for (fourcc, start, end) in children {
        let (start, end) = (start + 8, end + 8);
        match &fourcc {
            // mfhd: header 8, version+flags 4, sequence number.
            b"mfhd" => {
                write_u32(body, start + 12, rewrite.sequence_number)
                    .ok_or(MoofError::Malformed("mfhd"))?;
                saw_mfhd = true;
            }
            b"traf" => rewrite_traf(body, start, end, rewrite)?,
            _ => {}
        }
    }
    if !saw_mfhd {
        return Err(MoofError::Malformed("mfhd"));
    }
    Ok(())
}

fn rewrite_traf(
    body: &mut [u8],
    traf_start: usize,
    traf_end: usize,
    rewrite: &FragmentRewrite,
) -> Result<(), MoofError> {
    let inner = body
        .get(traf_start + 8..traf_end)
        .ok_or(MoofError::Malformed("traf"))?;
    let children: Vec<_> = boxes(inner).collect::<Result<_, _>>()?;
    let mut track_id = None;
    let mut tfdt_at = None;
    for (fourcc, start, _) in children {
        let start = traf_start + 8 + start;
        match &fourcc {
            // tfhd: header 8, version+flags 4, track id.
            b"tfhd" => track_id = read_u32(body, start + 12),
            b"tfdt" => tfdt_at = Some(start),
            _ => {}
        }
    }
    let (Some(track_id), Some(tfdt)) = (track_id, tfdt_at) else {
        return Err(MoofError::Malformed("traf"));
    };
    let version = *body.get(tfdt + 8).ok_or(MoofError::Malformed("tfdt"))?;
    let field = tfdt + 12;
    let old = if version == 1 {
        let bytes = body
            .get(field..field + 8)
            .ok_or(MoofError::Malformed("tfdt"))?;
        u64::from_be_bytes(bytes.try_into().map_err(|_| MoofError::Malformed("tfdt"))?)
    } else {
        u64::from(read_u32(body, field).ok_or(MoofError::Malformed("tfdt"))?)
    };
    let new = match track_id {
        VIDEO_TRACK_ID => rewrite.video_base_90k,
        AUDIO_TRACK_ID => old.saturating_add_signed(rewrite.audio_shift),
        _ => old,
    };
    if version == 1 {
        body.get_mut(field..field + 8)
            .ok_or(MoofError::Malformed("tfdt"))?
            .copy_from_slice(&new.to_be_bytes());
    } else {
        let new32 = u32::try_from(new).map_err(|_| MoofError::TimeTooLarge(new))?;
        write_u32(body, field, new32).ok_or(MoofError::Malformed("tfdt"))?;
    }
    Ok(())
}

/// The timescale of the audio track in an init segment (`moov/trak[tkhd.track_id == 2]/mdia/
/// mdhd`), `None` when there is no audio track.
pub fn audio_timescale(init: &[u8]) -> Result<Option<u32>, MoofError> {
    let child = |bytes: &[u8], name: &[u8; 4]| -> Result<Option<(usize, usize)>, MoofError> {
        for found in boxes(bytes) {
            let (fourcc, start, end) = found?;
            if &fourcc == name {
                return Ok(Some((start, end)));
            }
        }
        Ok(None)
    };
    let (moov_start, moov_end) = child(init, b"moov")?.ok_or(MoofError::Malformed("moov"))?;
    let moov = init
        .get(moov_start + 8..moov_end)
        .ok_or(MoofError::Malformed("moov"))?;
    for found in boxes(moov) {
        let (fourcc, start, end) = found?;
        if &fourcc != b"trak" {
            continue;
        }
        let trak = moov
            .get(start + 8..end)
            .ok_or(MoofError::Malformed("trak"))?;
        let (tkhd, _) = child(trak, b"tkhd")?.ok_or(MoofError::Malformed("tkhd"))?;
        // tkhd version 0: header 8, version+flags 4, creation 4, modification 4, track id.
        if read_u32(trak, tkhd + 20) != Some(AUDIO_TRACK_ID) {
            continue;
        }
        let (mdia_start, mdia_end) = child(trak, b"mdia")?.ok_or(MoofError::Malformed("mdia"))?;
        let mdia = trak
            .get(mdia_start + 8..mdia_end)
            .ok_or(MoofError::Malformed("mdia"))?;
        let (mdhd, _) = child(mdia, b"mdhd")?.ok_or(MoofError::Malformed("mdhd"))?;
        // mdhd version 0: header 8, version+flags 4, creation 4, modification 4, timescale.
        return read_u32(mdia, mdhd + 20)
            .map(Some)
            .ok_or(MoofError::Malformed("mdhd"));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::media::{
        AudioFrame, AudioParams, Gop, StreamParams, VideoCodec, VideoFrame, VideoParams,
    };
    use crate::mux::{write_fragment, write_init_segment, FragmentTimes};

    fn params(audio: bool) -> Arc<StreamParams> {
        Arc::new(StreamParams {
            video: VideoParams {
                codec: VideoCodec::H264,
                width: 320,
                height: 240,
                rfc6381_codec: "avc1.640014".into(),
                decoder_config: Bytes::from_static(&[1, 0x64, 0, 0x14, 0xff, 0xe0, 0]),
            },
            audio: audio.then(|| AudioParams {
                sample_rate: 48_000,
                channels: 1,
                audio_specific_config: Bytes::from_static(&[0x11, 0x88]),
            }),
        })
    }

    fn gop(audio: bool) -> Gop {
        Gop {
            params: params(audio),
            start_wall_ms: 0,
            frames: (0..3)
                .map(|n| VideoFrame {
                    pts_90k: 1000 + n * 3600,
                    is_key: n == 0,
                    data: Bytes::from(vec![n as u8; 10]),
                })
                .collect(),
            last_frame_duration_90k: 3600,
            audio: if audio {
                vec![AudioFrame {
                    pts: 5,
                    data: Bytes::from_static(&[9; 4]),
                }]
            } else {
                Vec::new()
            },
        }
    }

    /// Reads back (sequence, video tfdt, audio tfdt) with the `mp4` crate, an independent parser.
    fn read_back(body: &[u8]) -> (u32, u64, Option<u64>) {
        use mp4::ReadBox as _;
        let mut cursor = std::io::Cursor::new(body);
        let header = mp4::BoxHeader::read(&mut cursor).unwrap();
        let moof = mp4::MoofBox::read_box(&mut cursor, header.size).unwrap();
        let base = |track: u32| {
            moof.trafs
                .iter()
                .find(|t| t.tfhd.track_id == track)
                .and_then(|t| t.tfdt.as_ref())
                .map(|t| t.base_media_decode_time)
        };
        (moof.mfhd.sequence_number, base(1).unwrap(), base(2))
    }

    #[test]
    fn sequence_and_both_tracks_are_rewritten_in_place() {
        let mut body = Vec::new();
        let times = FragmentTimes {
            sequence_number: 4,
            video_base_90k: 270_000,
            audio_base: 144_000,
        };
        write_fragment(&gop(true), &times, &mut body).unwrap();
        let length = body.len();
        rewrite_fragment(
            &mut body,
            &FragmentRewrite {
                sequence_number: 17,
                video_base_90k: 9_000_000,
                audio_shift: -100,
            },
        )
        .unwrap();
        assert_eq!(body.len(), length);
        assert_eq!(read_back(&body), (17, 9_000_000, Some(143_900)));
    }

    #[test]
    fn damaged_boxes_are_errors_not_panics() {
        let mut body = Vec::new();
        write_fragment(
            &gop(false),
            &FragmentTimes {
                sequence_number: 1,
                video_base_90k: 0,
                audio_base: 0,
            },
            &mut body,
        )
        .unwrap();
        let rewrite = FragmentRewrite {
            sequence_number: 2,
            video_base_90k: 1,
            audio_shift: 0,
        };
        for cut in [0, 4, 8, 20, 40, body.len() / 2] {
            let mut truncated = body[..cut].to_vec();
            assert!(
                rewrite_fragment(&mut truncated, &rewrite).is_err(),
                "cut {cut}"
            );
        }
        let mut wrong = body.clone();
        wrong[4..8].copy_from_slice(b"mdat");
        assert_eq!(
            rewrite_fragment(&mut wrong, &rewrite),
            Err(MoofError::Malformed("moof"))
        );
    }

    #[test]
    fn audio_timescale_comes_from_the_audio_track() {
        let mut init = Vec::new();
        write_init_segment(&params(true), &mut init).unwrap();
        assert_eq!(audio_timescale(&init), Ok(Some(48_000)));
        init.clear();
        write_init_segment(&params(false), &mut init).unwrap();
        assert_eq!(audio_timescale(&init), Ok(None));
        assert!(audio_timescale(&[0, 0, 0, 9, b'm']).is_err());
    }
}
