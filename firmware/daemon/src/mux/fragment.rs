//! One fragment per GOP: `moof` (`mfhd`; per track `traf` = `tfhd` + `tfdt` + `trun`) and the
//! `mdat` holding the GOP's video samples, then its audio samples. No I/O.

use super::boxes::{put_i32, put_u32, put_u64, write_box, write_full_box};
use super::init::AAC_SAMPLES_PER_FRAME;
use super::{MuxError, AUDIO_TRACK_ID, VIDEO_TRACK_ID};
use crate::media::Gop;

/// `tfhd` flag: sample data offsets count from the start of the `moof`.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags: data offset present, and per sample duration, size (and flags for video).
const TRUN_DATA_OFFSET: u32 = 0x00_0001;
const TRUN_SAMPLE_DURATION: u32 = 0x00_0100;
const TRUN_SAMPLE_SIZE: u32 = 0x00_0200;
const TRUN_SAMPLE_FLAGS: u32 = 0x00_0400;
/// Sample flags of a key frame: depends on no other sample.
const SAMPLE_FLAGS_KEY: u32 = 0x0200_0000;
/// Sample flags of any other frame: depends on others, and is not a sync sample.
const SAMPLE_FLAGS_NON_KEY: u32 = 0x0101_0000;

/// Where a fragment sits on its tracks' time lines, and its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentTimes {
    /// The `mfhd` sequence number: 1 for a segment's first fragment, then increasing by one.
    pub sequence_number: u32,
    /// Decode time of the GOP's first video frame, in 90 kHz ticks since the segment started.
    pub video_base_90k: u64,
    /// Decode time of the GOP's first audio frame, in audio samples since the segment started.
    pub audio_base: u64,
}

/// Appends one fragment (`moof` + `mdat`) holding `gop` to `buf`: [`write_fragment_head`]
/// followed by a copy of every piece of [`fragment_payload`].
pub fn write_fragment(gop: &Gop, times: &FragmentTimes, buf: &mut Vec<u8>) -> Result<(), MuxError> {
    write_fragment_head(gop, times, buf)?;
    for piece in fragment_payload(gop) {
        buf.extend_from_slice(piece);
    }
    Ok(())
}

/// The `mdat` payload of `gop`'s fragment, in order: every video frame, then every audio frame.
/// The bytes a fragment holds are its head ([`write_fragment_head`]) followed by these, so a
/// writer can hand them to the kernel as they are (one vectored write) instead of copying them.
pub fn fragment_payload(gop: &Gop) -> impl Iterator<Item = &[u8]> + Clone {
    let video = gop.frames.iter().map(|f| &f.data[..]);
    let audio = gop.audio.iter().map(|f| &f.data[..]);
    video.chain(audio)
}

/// Appends the head of the fragment holding `gop` to `buf`: the `moof` and the `mdat` box
/// header, whose size counts the payload that follows ([`fragment_payload`]), not written here.
///
/// Video sample durations are the gaps between frame timestamps, the last one
/// `gop.last_frame_duration_90k`; audio sample durations likewise, the last one 1024 samples (one
/// AAC frame). Audio frames are written only if the GOP has any.
pub fn write_fragment_head(
    gop: &Gop,
    times: &FragmentTimes,
    buf: &mut Vec<u8>,
) -> Result<(), MuxError> {
    let first = gop.frames.first().ok_or(MuxError::EmptyGop)?;
    if !first.is_key {
        return Err(MuxError::NoKeyFrame);
    }
    let video_durations = sample_durations(
        gop.frames.iter().map(|f| f.pts_90k),
        gop.last_frame_duration_90k,
    )?;
    let audio_durations = sample_durations(gop.audio.iter().map(|f| f.pts), AAC_SAMPLES_PER_FRAME)?;

    let moof_start = buf.len();
    let mut video_offset_at = 0usize;
    let mut audio_offset_at = None;
    write_box(buf, b"moof", |buf| {
        write_full_box(buf, b"mfhd", 0, 0, |buf| {
            put_u32(buf, times.sequence_number);
            Ok(())
        })?;
        write_box(buf, b"traf", |buf| {
            write_tfhd_tfdt(buf, VIDEO_TRACK_ID, times.video_base_90k)?;
            let flags =
                TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE | TRUN_SAMPLE_FLAGS;
            write_full_box(buf, b"trun", 0, flags, |buf| {
                put_u32(buf, count_u32(gop.frames.len(), "trun")?);
                video_offset_at = buf.len();
                put_i32(buf, 0); // patched below, once the moof size is known
                for (frame, duration) in gop.frames.iter().zip(&video_durations) {
                    put_u32(buf, *duration);
                    put_u32(buf, count_u32(frame.data.len(), "video sample")?);
                    put_u32(
                        buf,
                        if frame.is_key {
                            SAMPLE_FLAGS_KEY
                        } else {
                            SAMPLE_FLAGS_NON_KEY
                        },
                    );
                }
                Ok(())
            })
        })?;
        if !gop.audio.is_empty() {
            write_box(buf, b"traf", |buf| {
                write_tfhd_tfdt(buf, AUDIO_TRACK_ID, times.audio_base)?;
                let flags = TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE;
                write_full_box(buf, b"trun", 0, flags, |buf| {
                    put_u32(buf, count_u32(gop.audio.len(), "trun")?);
                    audio_offset_at = Some(buf.len());
                    put_i32(buf, 0);
                    for (frame, duration) in gop.audio.iter().zip(&audio_durations) {
                        put_u32(buf, *duration);
                        put_u32(buf, count_u32(frame.data.len(), "audio sample")?);
                    }
                    Ok(())
                })
            })?;
        }
        Ok(())
    })?;
    let moof_bytes = buf.len() - moof_start;
    let video_bytes: usize = gop.frames.iter().map(|f| f.data.len()).sum();
    // Offsets count from the moof start; the mdat header is 8 bytes.
    let video_data_offset = moof_bytes + 8;
    patch_i32(buf, video_offset_at, video_data_offset)?;
    if let Some(at) = audio_offset_at {
        patch_i32(buf, at, video_data_offset + video_bytes)?;
    }
    let payload_bytes: usize = fragment_payload(gop).map(<[u8]>::len).sum();
    let mdat_bytes = payload_bytes + 8;
    let mdat_u32 = u32::try_from(mdat_bytes).map_err(|_| MuxError::TooLarge {
        fourcc: "mdat".to_owned(),
        bytes: mdat_bytes as u64,
    })?;
    put_u32(buf, mdat_u32);
    buf.extend_from_slice(b"mdat");
    Ok(())
}

fn write_tfhd_tfdt(buf: &mut Vec<u8>, track_id: u32, base: u64) -> Result<(), MuxError> {
    write_full_box(buf, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |buf| {
        put_u32(buf, track_id);
        Ok(())
    })?;
    write_full_box(buf, b"tfdt", 1, 0, |buf| {
        put_u64(buf, base);
        Ok(())
    })
}

/// Durations between consecutive timestamps, `last` for the final sample.
fn sample_durations(
    timestamps: impl Iterator<Item = i64> + Clone,
    last: u32,
) -> Result<Vec<u32>, MuxError> {
    let mut durations = Vec::new();
    let mut previous: Option<i64> = None;
    for (index, pts) in timestamps.enumerate() {
        if let Some(previous_pts) = previous {
            let gap = pts
                .checked_sub(previous_pts)
                .and_then(|gap| u32::try_from(gap).ok())
                .ok_or(MuxError::BadTimestamps {
                    index,
                    pts_90k: pts,
                    previous_pts_90k: previous_pts,
                })?;
            durations.push(gap);
        }
        previous = Some(pts);
    }
    if previous.is_some() {
        durations.push(last);
    }
    Ok(durations)
}

fn count_u32(value: usize, what: &'static str) -> Result<u32, MuxError> {
    u32::try_from(value).map_err(|_| MuxError::TooLarge {
        fourcc: what.to_owned(),
        bytes: value as u64,
    })
}

fn patch_i32(buf: &mut [u8], at: usize, value: usize) -> Result<(), MuxError> {
    let value = i32::try_from(value).map_err(|_| MuxError::TooLarge {
        fourcc: "moof".to_owned(),
        bytes: value as u64,
    })?;
    if let Some(slot) = buf.get_mut(at..at + 4) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
    Ok(())
}
