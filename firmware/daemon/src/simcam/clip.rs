//! The clip a simulated camera serves: an Annex-B H.264 elementary stream split into access
//! units, with the parameter sets and the frame rate a sender needs.
//!
//! Receives the bytes of a `.h264` file (the embedded [`EMBEDDED_CLIP`] or one read by
//! [`Clip::from_file`]); emits a [`Clip`]: access units in decode order, each a list of NAL units
//! without start codes, the first one a key frame. Does no I/O apart from `from_file` reading the
//! file; holds the whole clip in memory (the NAL units are zero-copy slices of the file's bytes).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use h264_reader::nal::sps::SeqParameterSet;

/// The clip built into the binary, made by `scripts/make-test-clip.sh`: 640x360, 25 fps, 12 s,
/// H.264 Main profile, no B-frames, a key frame every second.
pub static EMBEDDED_CLIP: &[u8] = include_bytes!("../../assets/sim-clip.h264");

/// The biggest clip file accepted. A clip is held in RAM for the server's whole life; a test
/// camera needs seconds of video, so anything near this size is a wrong file, not a clip.
pub const MAX_CLIP_BYTES: u64 = 256 * 1024 * 1024;

/// Frame rate assumed when the SPS carries no VUI timing information (raw streams from some
/// encoders omit it); 25 fps is the most common camera rate outside North America.
const DEFAULT_FRAME_RATE: FrameRate = FrameRate {
    frames: 25,
    per_seconds: 1,
};

/// Frame rates outside 1..=240 fps are refused: below one frame a second the pacing of a test
/// stream is meaningless, above 240 the SPS timing is almost certainly a field-rate mix-up.
const MAX_FPS: u64 = 240;

// NAL unit types (H.264 Table 7-1) that the loader treats specially.
const NAL_NON_IDR_SLICE: u8 = 1;
const NAL_IDR_SLICE: u8 = 5;
const NAL_SEI: u8 = 6;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const NAL_END_OF_SEQUENCE: u8 = 10;
const NAL_END_OF_STREAM: u8 = 11;
const NAL_FILLER: u8 = 12;

/// Why a clip cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClipError {
    /// The clip file could not be read. (The message leaves the path to the caller's context,
    /// which names it for every clip error, parse errors included.)
    #[error("cannot read the file")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CLIP_BYTES`].
    #[error("clip {path} is {size_bytes} bytes, more than the {MAX_CLIP_BYTES} a clip may have")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size_bytes: u64,
    },
    /// No Annex-B start code (`00 00 01`) was found: not a raw H.264 stream (an MP4 or MKV
    /// file must be converted first, e.g. `ffmpeg -i in.mp4 -c copy -bsf:v h264_mp4toannexb -f h264 out.h264`).
    #[error("no Annex-B start code found: not a raw H.264 elementary stream")]
    NotAnnexB,
    /// A NAL unit header is invalid (forbidden bit set) or a slice is truncated.
    #[error("invalid NAL unit at byte {offset}: {reason}")]
    BadNal {
        /// Offset of the NAL unit in the file.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The stream holds no sequence parameter set.
    #[error("the stream has no SPS (sequence parameter set)")]
    NoSps,
    /// The stream holds no picture parameter set.
    #[error("the stream has no PPS (picture parameter set)")]
    NoPps,
    /// The SPS could not be parsed.
    #[error("cannot parse the SPS: {0}")]
    BadSps(String),
    /// The SPS timing gives a frame rate the server refuses.
    #[error("unsupported frame rate {frames}/{per_seconds} fps (1 to {MAX_FPS} fps are served)")]
    FrameRate {
        /// Frames...
        frames: u64,
        /// ...per this many seconds.
        per_seconds: u64,
    },
    /// The stream holds no IDR picture, so no client could ever start decoding it.
    #[error("the stream has no key frame (IDR picture)")]
    NoKeyFrame,
}

/// A frame rate as an exact fraction: `frames` frames every `per_seconds` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRate {
    /// Frames...
    pub frames: u64,
    /// ...per this many seconds.
    pub per_seconds: u64,
}

impl FrameRate {
    /// The media time of frame number `index` counted from 0, in ticks of a `clock_rate` Hz clock,
    /// computed from the start so that rounding never accumulates over long runs.
    pub fn ticks_at(self, index: u64, clock_rate: u32) -> u64 {
        let ticks = u128::from(index) * u128::from(clock_rate) * u128::from(self.per_seconds)
            / u128::from(self.frames);
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// The wall time from frame 0 to frame number `index`.
    pub fn elapsed_at(self, index: u64) -> std::time::Duration {
        const NANOS_PER_SECOND: u32 = 1_000_000_000;
        std::time::Duration::from_nanos(self.ticks_at(index, NANOS_PER_SECOND))
    }
}

/// One access unit (one picture): its NAL units in order, without start codes.
#[derive(Clone, Debug)]
pub struct AccessUnit {
    /// The NAL units, each starting with its one-byte NAL header.
    pub nals: Vec<Bytes>,
    /// True when the picture is an IDR, where a decoder can start.
    pub is_key: bool,
}

/// A loaded clip, ready to be packetised in a loop.
#[derive(Clone, Debug)]
pub struct Clip {
    sps: Bytes,
    pps: Bytes,
    width: u32,
    height: u32,
    frame_rate: FrameRate,
    access_units: Vec<AccessUnit>,
}

impl Clip {
    /// The clip built into the binary.
    pub fn embedded() -> Result<Clip, ClipError> {
        Clip::from_annex_b(Bytes::from_static(EMBEDDED_CLIP))
    }

    /// Reads and parses an Annex-B H.264 file.
    pub fn from_file(path: &Path) -> Result<Clip, ClipError> {
        let read_error = |source| ClipError::Read {
            path: path.to_owned(),
            source,
        };
        let size_bytes = std::fs::metadata(path).map_err(read_error)?.len();
        if size_bytes > MAX_CLIP_BYTES {
            return Err(ClipError::TooLarge {
                path: path.to_owned(),
                size_bytes,
            });
        }
        let data = std::fs::read(path).map_err(read_error)?;
        Clip::from_annex_b(Bytes::from(data))
    }

    /// Parses an Annex-B H.264 elementary stream.
    ///
    /// Leading pictures before the first IDR are dropped (a client must be able to decode from
    /// the first frame it gets), end-of-sequence/stream and filler NAL units are dropped (they
    /// would end the stream in the middle of a loop), and every IDR access unit that lacks
    /// in-band SPS and PPS gets them, as cameras send them, so a receiver joining at any key frame
    /// can decode.
    pub fn from_annex_b(data: Bytes) -> Result<Clip, ClipError> {
        let nals = split_annex_b(&data)?;
        let mut sps = None;
        let mut pps = None;
        let mut access_units = Vec::new();
        let mut current = AccessUnit {
            nals: Vec::new(),
            is_key: false,
        };
        let mut current_has_slice = false;
        for (offset, nal) in nals {
            let header = *nal.first().ok_or(ClipError::BadNal {
                offset,
                reason: "empty NAL unit",
            })?;
            if header & 0x80 != 0 {
                return Err(ClipError::BadNal {
                    offset,
                    reason: "forbidden_zero_bit is set",
                });
            }
            let nal_type = header & 0x1f;
            // H.264 7.4.1.2.3: these NAL types, and a slice with first_mb_in_slice == 0, begin a
            // new access unit once the current one has a slice.
            let starts_access_unit = match nal_type {
                NAL_NON_IDR_SLICE..=NAL_IDR_SLICE => {
                    // first_mb_in_slice is ue(v); the value 0 is coded as the single bit 1.
                    let first_slice_byte = *nal.get(1).ok_or(ClipError::BadNal {
                        offset,
                        reason: "slice NAL unit without a slice header",
                    })?;
                    first_slice_byte & 0x80 != 0
                }
                NAL_SEI | NAL_SPS | NAL_PPS | NAL_AUD | 14..=18 => true,
                _ => false,
            };
            if starts_access_unit && current_has_slice {
                access_units.push(std::mem::replace(
                    &mut current,
                    AccessUnit {
                        nals: Vec::new(),
                        is_key: false,
                    },
                ));
                current_has_slice = false;
            }
            match nal_type {
                NAL_END_OF_SEQUENCE | NAL_END_OF_STREAM | NAL_FILLER => continue,
                NAL_SPS if sps.is_none() => sps = Some(nal.clone()),
                NAL_PPS if pps.is_none() => pps = Some(nal.clone()),
                NAL_NON_IDR_SLICE..=NAL_IDR_SLICE => {
                    current_has_slice = true;
                    current.is_key |= nal_type == NAL_IDR_SLICE;
                }
                _ => {}
            }
            current.nals.push(nal);
        }
        if current_has_slice {
            access_units.push(current);
        }

        let sps = sps.ok_or(ClipError::NoSps)?;
        let pps = pps.ok_or(ClipError::NoPps)?;
        let parsed_sps = parse_sps(&sps)?;
        let (width, height) = parsed_sps
            .pixel_dimensions()
            .map_err(|e| ClipError::BadSps(format!("{e:?}")))?;
        let frame_rate = frame_rate_of(&parsed_sps)?;

        let first_key = access_units
            .iter()
            .position(|au| au.is_key)
            .ok_or(ClipError::NoKeyFrame)?;
        access_units.drain(..first_key);
        for au in access_units.iter_mut().filter(|au| au.is_key) {
            insert_parameter_sets(au, &sps, &pps);
        }

        Ok(Clip {
            sps,
            pps,
            width,
            height,
            frame_rate,
            access_units,
        })
    }

    /// The first sequence parameter set NAL unit (with its header byte).
    pub fn sps(&self) -> &Bytes {
        &self.sps
    }

    /// The first picture parameter set NAL unit (with its header byte).
    pub fn pps(&self) -> &Bytes {
        &self.pps
    }

    /// Picture width and height in pixels, after cropping.
    pub fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The frame rate from the SPS timing information (25 fps when the SPS has none).
    pub fn frame_rate(&self) -> FrameRate {
        self.frame_rate
    }

    /// The access units in decode order; never empty, and the first one is a key frame.
    pub fn access_units(&self) -> &[AccessUnit] {
        &self.access_units
    }

    /// A clip of the first `count` access units of this one (at least one): for tests that need
    /// a short loop.
    pub fn truncated(&self, count: usize) -> Clip {
        let mut clip = self.clone();
        clip.access_units.truncate(count.max(1));
        clip
    }
}

/// Splits an Annex-B byte stream at its start codes; yields each NAL unit's offset and bytes,
/// without the start code and without trailing zero bytes.
fn split_annex_b(data: &Bytes) -> Result<Vec<(usize, Bytes)>, ClipError> {
    // An Annex-B stream begins with a start code (after optional leading zero bytes); an MP4 or
    // any other container does not, even if `00 00 01` occurs somewhere inside it.
    let first_non_zero = data.iter().position(|&b| b != 0);
    if !matches!(first_non_zero, Some(at) if at >= 2 && data.get(at) == Some(&1)) {
        return Err(ClipError::NotAnnexB);
    }
    let mut starts = Vec::new();
    let mut i = 0;
    while let Some(window) = data.get(i..i + 3) {
        if window == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    if starts.is_empty() {
        return Err(ClipError::NotAnnexB);
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (n, &start) in starts.iter().enumerate() {
        // The next start code begins 3 bytes before the next NAL; any zero bytes in front of it
        // (the 4-byte start code's leading zero, trailing_zero_8bits) are not part of this NAL.
        let mut end = starts.get(n + 1).map_or(data.len(), |next| next - 3);
        while end > start && data.get(end - 1) == Some(&0) {
            end -= 1;
        }
        if end > start {
            nals.push((start, data.slice(start..end)));
        }
    }
    Ok(nals)
}

fn parse_sps(sps: &[u8]) -> Result<SeqParameterSet, ClipError> {
    let rbsp = h264_reader::rbsp::decode_nal(sps).map_err(|e| ClipError::BadSps(e.to_string()))?;
    SeqParameterSet::from_bits(h264_reader::rbsp::BitReader::new(&*rbsp))
        .map_err(|e| ClipError::BadSps(format!("{e:?}")))
}

fn frame_rate_of(sps: &SeqParameterSet) -> Result<FrameRate, ClipError> {
    let Some(timing) = sps
        .vui_parameters
        .as_ref()
        .and_then(|v| v.timing_info.as_ref())
    else {
        return Ok(DEFAULT_FRAME_RATE);
    };
    // H.264 E.2.1: a frame lasts two ticks of num_units_in_tick / time_scale seconds.
    let frame_rate = FrameRate {
        frames: u64::from(timing.time_scale),
        per_seconds: 2 * u64::from(timing.num_units_in_tick),
    };
    let fps_ok = frame_rate.per_seconds > 0
        && frame_rate.frames >= frame_rate.per_seconds
        && frame_rate.frames <= MAX_FPS * frame_rate.per_seconds;
    if fps_ok {
        Ok(frame_rate)
    } else {
        Err(ClipError::FrameRate {
            frames: frame_rate.frames,
            per_seconds: frame_rate.per_seconds,
        })
    }
}

/// Puts SPS and PPS in front of the first slice of a key access unit that has none.
fn insert_parameter_sets(au: &mut AccessUnit, sps: &Bytes, pps: &Bytes) {
    let has = |nal_type: u8| {
        au.nals
            .iter()
            .any(|n| n.first().map(|h| h & 0x1f) == Some(nal_type))
    };
    let (has_sps, has_pps) = (has(NAL_SPS), has(NAL_PPS));
    // After an access unit delimiter, which must stay first (H.264 7.4.1.2.3).
    let mut at =
        usize::from(au.nals.first().and_then(|n| n.first()).map(|h| h & 0x1f) == Some(NAL_AUD));
    if !has_sps {
        au.nals.insert(at, sps.clone());
        at += 1;
    }
    if !has_pps {
        au.nals.insert(at, pps.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_clip_is_640x360_25fps_with_a_key_frame_every_second() {
        let clip = Clip::embedded().unwrap();
        assert_eq!(clip.dimensions(), (640, 360));
        assert_eq!(
            clip.frame_rate(),
            FrameRate {
                frames: 50,
                per_seconds: 2
            }
        );
        let aus = clip.access_units();
        assert_eq!(aus.len(), 300, "12 s at 25 fps");
        let keys: Vec<usize> = (0..aus.len()).filter(|&i| aus[i].is_key).collect();
        assert_eq!(keys, (0..300).step_by(25).collect::<Vec<_>>());
        for key in keys {
            let types: Vec<u8> = aus[key].nals.iter().map(|n| n[0] & 0x1f).collect();
            assert_eq!(&types[..2], &[NAL_SPS, NAL_PPS], "AU {key}: {types:?}");
            assert!(types.contains(&NAL_IDR_SLICE));
        }
        assert_eq!(clip.sps()[0] & 0x1f, NAL_SPS);
        assert_eq!(clip.pps()[0] & 0x1f, NAL_PPS);
    }

    #[test]
    fn media_time_of_a_frame_does_not_drift() {
        let ntsc = FrameRate {
            frames: 30_000,
            per_seconds: 1001,
        };
        assert_eq!(ntsc.ticks_at(1, 90_000), 3003);
        // One hour later still exact: 107,892 frames of 3003 ticks.
        assert_eq!(ntsc.ticks_at(107_892, 90_000), 107_892 * 3003);
        let pal = FrameRate {
            frames: 25,
            per_seconds: 1,
        };
        assert_eq!(pal.elapsed_at(25), std::time::Duration::from_secs(1));
    }

    /// Builds a stream from NAL units, each behind a 4-byte start code.
    fn annex_b(nals: &[&[u8]]) -> Bytes {
        let mut out = Vec::new();
        for nal in nals {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
        Bytes::from(out)
    }

    fn embedded_parameter_sets() -> (Bytes, Bytes) {
        let clip = Clip::embedded().unwrap();
        (clip.sps().clone(), clip.pps().clone())
    }

    #[test]
    fn groups_slices_into_access_units_and_adds_parameter_sets_to_later_key_frames() {
        let (sps, pps) = embedded_parameter_sets();
        // A leading non-IDR picture (dropped), IDR with SPS/PPS, P, P in two slices, IDR without
        // SPS/PPS, end of stream (dropped).
        let stream = annex_b(&[
            &[0x41, 0x80, 0x01],
            &sps,
            &pps,
            &[0x65, 0x88, 0x01],
            &[0x41, 0x80, 0x02],
            &[0x41, 0x80, 0x03],
            &[0x41, 0x40, 0x04], // first_mb_in_slice != 0: second slice of the same picture
            &[0x65, 0x88, 0x05, 0, 0], // trailing zero bytes are not part of the NAL
            &[0x0b],
        ]);
        let clip = Clip::from_annex_b(stream).unwrap();
        let aus = clip.access_units();
        let shapes: Vec<(bool, Vec<u8>)> = aus
            .iter()
            .map(|au| (au.is_key, au.nals.iter().map(|n| n[0] & 0x1f).collect()))
            .collect();
        assert_eq!(
            shapes,
            vec![
                (true, vec![7, 8, 5]),
                (false, vec![1]),
                (false, vec![1, 1]),
                (true, vec![7, 8, 5]),
            ]
        );
        assert_eq!(&aus[3].nals[2][..], &[0x65, 0x88, 0x05]);
    }

    #[test]
    fn refuses_streams_it_cannot_serve() {
        let (sps, pps) = embedded_parameter_sets();
        let err = |stream| Clip::from_annex_b(stream).unwrap_err();
        assert!(matches!(
            err(Bytes::from_static(b"ftypisom not annex b")),
            ClipError::NotAnnexB
        ));
        assert!(matches!(
            err(Bytes::from_static(b"\0\0\0\x18ftypisom\0\0\x01\x67")),
            ClipError::NotAnnexB
        ));
        assert!(matches!(
            err(annex_b(&[&pps, &[0x65, 0x88]])),
            ClipError::NoSps
        ));
        assert!(matches!(
            err(annex_b(&[&sps, &[0x65, 0x88]])),
            ClipError::NoPps
        ));
        assert!(matches!(
            err(annex_b(&[&sps, &pps, &[0x41, 0x80]])),
            ClipError::NoKeyFrame
        ));
        assert!(matches!(
            err(annex_b(&[&sps, &pps, &[0xe5, 0x88]])),
            ClipError::BadNal { offset: _, .. }
        ));
        assert!(matches!(
            err(annex_b(&[&sps, &pps, &[0x65]])),
            ClipError::BadNal { .. }
        ));
        assert!(matches!(
            err(annex_b(&[&[0x67, 0xff], &pps, &[0x65, 0x88]])),
            ClipError::BadSps(_)
        ));
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let err = Clip::from_file(Path::new("/nonexistent/clip.h264")).unwrap_err();
        assert!(
            matches!(&err, ClipError::Read { path, .. } if path == Path::new("/nonexistent/clip.h264")),
            "{err:?}"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_nal_units_never_panic(
            nals in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0..12)
        ) {
            let nals: Vec<&[u8]> = nals.iter().map(Vec::as_slice).collect();
            let _ = Clip::from_annex_b(annex_b(&nals));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data: Vec<u8>) {
            let _ = Clip::from_annex_b(Bytes::from(data));
        }
    }
}
