//! The init segment: `ftyp` and a `moov` whose tracks have empty sample tables and whose `mvex`
//! announces that the samples come in fragments. No I/O.

use super::boxes::{
    put_u16, put_u32, put_u8, put_unity_matrix, put_zeros, write_box, write_full_box,
};
use super::{MuxError, AUDIO_TRACK_ID, VIDEO_TRACK_ID};
use crate::media::{AudioParams, StreamParams, VideoCodec, VideoParams, TIMESCALE_90K};

/// The movie timescale (`mvhd`); nothing is timed in it because fragments carry track time.
const MOVIE_TIMESCALE: u32 = 1000;
/// ISO 639-2 "und" packed into 15 bits, the language of both tracks.
const LANGUAGE_UND: u16 = 0x55c4;
/// Samples per AAC frame, the default audio sample duration.
pub(crate) const AAC_SAMPLES_PER_FRAME: u32 = 1024;

/// Appends the init segment (`ftyp` + `moov`) for `params` to `buf`.
///
/// The video sample entry embeds `params.video.decoder_config` verbatim as `avcC` (H.264) or
/// `hvcC` (H.265); the audio track, if any, embeds the AudioSpecificConfig in an `esds`.
pub fn write_init_segment(params: &StreamParams, buf: &mut Vec<u8>) -> Result<(), MuxError> {
    write_box(buf, b"ftyp", |buf| {
        buf.extend_from_slice(b"iso5");
        put_u32(buf, 512);
        for brand in [b"iso5", b"iso6", b"mp41"] {
            buf.extend_from_slice(brand);
        }
        Ok(())
    })?;
    write_box(buf, b"moov", |buf| {
        let track_count = if params.audio.is_some() { 2 } else { 1 };
        write_mvhd(buf, track_count + 1)?;
        write_video_trak(buf, &params.video)?;
        if let Some(audio) = &params.audio {
            write_audio_trak(buf, audio)?;
        }
        write_box(buf, b"mvex", |buf| {
            write_trex(buf, VIDEO_TRACK_ID)?;
            if params.audio.is_some() {
                write_trex(buf, AUDIO_TRACK_ID)?;
            }
            Ok(())
        })
    })
}

fn write_trex(buf: &mut Vec<u8>, track_id: u32) -> Result<(), MuxError> {
    write_full_box(buf, b"trex", 0, 0, |buf| {
        put_u32(buf, track_id);
        put_u32(buf, 1); // default sample description index
        put_u32(buf, 0); // default duration, size and flags: every trun states its own
        put_u32(buf, 0);
        put_u32(buf, 0);
        Ok(())
    })
}

fn write_mvhd(buf: &mut Vec<u8>, next_track_id: u32) -> Result<(), MuxError> {
    write_full_box(buf, b"mvhd", 0, 0, |buf| {
        put_u32(buf, 0); // creation time
        put_u32(buf, 0); // modification time
        put_u32(buf, MOVIE_TIMESCALE);
        put_u32(buf, 0); // duration: unknown, fragments follow
        put_u32(buf, 0x0001_0000); // rate 1.0
        put_u16(buf, 0x0100); // volume 1.0
        put_zeros(buf, 10);
        put_unity_matrix(buf);
        put_zeros(buf, 24); // pre_defined
        put_u32(buf, next_track_id);
        Ok(())
    })
}

fn write_tkhd(
    buf: &mut Vec<u8>,
    track_id: u32,
    volume: u16,
    width: u16,
    height: u16,
) -> Result<(), MuxError> {
    // Flags 3: track enabled and used in the presentation.
    write_full_box(buf, b"tkhd", 0, 3, |buf| {
        put_u32(buf, 0); // creation time
        put_u32(buf, 0); // modification time
        put_u32(buf, track_id);
        put_u32(buf, 0); // reserved
        put_u32(buf, 0); // duration
        put_zeros(buf, 8);
        put_u16(buf, 0); // layer
        put_u16(buf, 0); // alternate group
        put_u16(buf, volume);
        put_u16(buf, 0); // reserved
        put_unity_matrix(buf);
        put_u32(buf, u32::from(width) << 16);
        put_u32(buf, u32::from(height) << 16);
        Ok(())
    })
}

fn write_mdhd(buf: &mut Vec<u8>, timescale: u32) -> Result<(), MuxError> {
    write_full_box(buf, b"mdhd", 0, 0, |buf| {
        put_u32(buf, 0);
        put_u32(buf, 0);
        put_u32(buf, timescale);
        put_u32(buf, 0);
        put_u16(buf, LANGUAGE_UND);
        put_u16(buf, 0);
        Ok(())
    })
}

fn write_hdlr(buf: &mut Vec<u8>, handler: &[u8; 4], name: &str) -> Result<(), MuxError> {
    write_full_box(buf, b"hdlr", 0, 0, |buf| {
        put_u32(buf, 0); // pre_defined
        buf.extend_from_slice(handler);
        put_zeros(buf, 12);
        buf.extend_from_slice(name.as_bytes());
        put_u8(buf, 0);
        Ok(())
    })
}

fn write_dinf(buf: &mut Vec<u8>) -> Result<(), MuxError> {
    write_box(buf, b"dinf", |buf| {
        write_full_box(buf, b"dref", 0, 0, |buf| {
            put_u32(buf, 1);
            // Flag 1: the media data is in this file.
            write_full_box(buf, b"url ", 0, 1, |_| Ok(()))
        })
    })
}

/// The sample tables of a fragmented track: one sample entry and no samples.
fn write_stbl<F>(buf: &mut Vec<u8>, sample_entry: F) -> Result<(), MuxError>
where
    F: FnOnce(&mut Vec<u8>) -> Result<(), MuxError>,
{
    write_box(buf, b"stbl", |buf| {
        write_full_box(buf, b"stsd", 0, 0, |buf| {
            put_u32(buf, 1);
            sample_entry(buf)
        })?;
        write_full_box(buf, b"stts", 0, 0, |buf| {
            put_u32(buf, 0);
            Ok(())
        })?;
        write_full_box(buf, b"stsc", 0, 0, |buf| {
            put_u32(buf, 0);
            Ok(())
        })?;
        write_full_box(buf, b"stsz", 0, 0, |buf| {
            put_u32(buf, 0);
            put_u32(buf, 0);
            Ok(())
        })?;
        write_full_box(buf, b"stco", 0, 0, |buf| {
            put_u32(buf, 0);
            Ok(())
        })
    })
}

fn write_video_trak(buf: &mut Vec<u8>, video: &VideoParams) -> Result<(), MuxError> {
    write_box(buf, b"trak", |buf| {
        write_tkhd(buf, VIDEO_TRACK_ID, 0, video.width, video.height)?;
        write_box(buf, b"mdia", |buf| {
            write_mdhd(buf, TIMESCALE_90K)?;
            write_hdlr(buf, b"vide", "VideoHandler")?;
            write_box(buf, b"minf", |buf| {
                write_full_box(buf, b"vmhd", 0, 1, |buf| {
                    put_zeros(buf, 8); // graphics mode and opcolor
                    Ok(())
                })?;
                write_dinf(buf)?;
                write_stbl(buf, |buf| write_visual_sample_entry(buf, video))
            })
        })
    })
}

fn write_visual_sample_entry(buf: &mut Vec<u8>, video: &VideoParams) -> Result<(), MuxError> {
    let (entry, config_box) = match video.codec {
        VideoCodec::H264 => (b"avc1", b"avcC"),
        VideoCodec::H265 => (b"hvc1", b"hvcC"),
    };
    write_box(buf, entry, |buf| {
        put_zeros(buf, 6);
        put_u16(buf, 1); // data reference index
        put_zeros(buf, 16); // pre_defined and reserved
        put_u16(buf, video.width);
        put_u16(buf, video.height);
        put_u32(buf, 0x0048_0000); // 72 dpi horizontally
        put_u32(buf, 0x0048_0000); // 72 dpi vertically
        put_u32(buf, 0);
        put_u16(buf, 1); // frame count per sample
        put_zeros(buf, 32); // compressor name (empty Pascal string)
        put_u16(buf, 0x0018); // depth: colour, no alpha
        put_u16(buf, 0xffff); // pre_defined = -1
        write_box(buf, config_box, |buf| {
            buf.extend_from_slice(&video.decoder_config);
            Ok(())
        })
    })
}

fn write_audio_trak(buf: &mut Vec<u8>, audio: &AudioParams) -> Result<(), MuxError> {
    write_box(buf, b"trak", |buf| {
        write_tkhd(buf, AUDIO_TRACK_ID, 0x0100, 0, 0)?;
        write_box(buf, b"mdia", |buf| {
            write_mdhd(buf, audio.sample_rate)?;
            write_hdlr(buf, b"soun", "SoundHandler")?;
            write_box(buf, b"minf", |buf| {
                write_full_box(buf, b"smhd", 0, 0, |buf| {
                    put_u32(buf, 0); // balance and reserved
                    Ok(())
                })?;
                write_dinf(buf)?;
                write_stbl(buf, |buf| write_mp4a(buf, audio))
            })
        })
    })
}

fn write_mp4a(buf: &mut Vec<u8>, audio: &AudioParams) -> Result<(), MuxError> {
    let rate_16_16 = u16::try_from(audio.sample_rate)
        .map_err(|_| MuxError::BadParams("audio sample rate above 65535 Hz"))?;
    write_box(buf, b"mp4a", |buf| {
        put_zeros(buf, 6);
        put_u16(buf, 1); // data reference index
        put_zeros(buf, 8);
        put_u16(buf, audio.channels);
        put_u16(buf, 16); // sample size in bits
        put_u32(buf, 0);
        put_u32(buf, u32::from(rate_16_16) << 16);
        write_full_box(buf, b"esds", 0, 0, |buf| write_es_descriptor(buf, audio))
    })
}

/// The MPEG-4 ES_Descriptor for AAC (ISO/IEC 14496-1 §7.2.6.5).
fn write_es_descriptor(buf: &mut Vec<u8>, audio: &AudioParams) -> Result<(), MuxError> {
    let asc = &audio.audio_specific_config;
    let mut decoder_specific = Vec::with_capacity(asc.len() + 5);
    put_descriptor(&mut decoder_specific, 0x05, asc)?;

    let mut decoder_config = Vec::with_capacity(decoder_specific.len() + 13);
    put_u8(&mut decoder_config, 0x40); // object type: MPEG-4 audio
    put_u8(&mut decoder_config, (0x05 << 2) | 1); // stream type audio, upstream 0, reserved 1
    put_zeros(&mut decoder_config, 3); // buffer size
    put_u32(&mut decoder_config, 0); // max bitrate
    put_u32(&mut decoder_config, 0); // average bitrate
    decoder_config.extend_from_slice(&decoder_specific);

    let mut es = Vec::with_capacity(decoder_config.len() + 12);
    put_u16(&mut es, 0); // ES_ID
    put_u8(&mut es, 0); // no dependency, URL or OCR stream
    put_descriptor(&mut es, 0x04, &decoder_config)?;
    put_descriptor(&mut es, 0x06, &[0x02])?; // SLConfig: predefined for MP4 files
    put_descriptor(buf, 0x03, &es)
}

/// A descriptor: tag, size in the 4-byte expandable form, body.
fn put_descriptor(buf: &mut Vec<u8>, tag: u8, body: &[u8]) -> Result<(), MuxError> {
    // Four 7-bit groups describe up to 2^28 - 1 bytes.
    let len = u32::try_from(body.len())
        .ok()
        .filter(|len| *len < (1 << 28))
        .ok_or(MuxError::BadParams("audio specific config too long"))?;
    put_u8(buf, tag);
    put_u8(buf, 0x80 | ((len >> 21) & 0x7f) as u8);
    put_u8(buf, 0x80 | ((len >> 14) & 0x7f) as u8);
    put_u8(buf, 0x80 | ((len >> 7) & 0x7f) as u8);
    put_u8(buf, (len & 0x7f) as u8);
    buf.extend_from_slice(body);
    Ok(())
}
