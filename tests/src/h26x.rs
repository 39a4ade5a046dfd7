//! H.264/H.265 test streams: a clip from [`crate::clips`] (ffmpeg, no B-frames), its Annex-B
//! byte stream split into NAL units and access units, and the `avcC`/`hvcC` decoder
//! configuration record built — what `ingest` gets from a camera, without a camera.

use std::path::Path;

use anyhow::{bail, ensure, Context};

use crate::clips::{make_clip, Codec};

/// One access unit (a frame) in MP4 sample form.
#[derive(Clone, Debug)]
pub struct AccessUnit {
    /// IDR / IRAP frame.
    pub is_key: bool,
    /// The frame's NAL units, each with a 4-byte big-endian length prefix (parameter sets and
    /// access unit delimiters removed: they live in the decoder configuration record).
    pub data: Vec<u8>,
}

/// An encoded clip split into frames.
#[derive(Clone, Debug)]
pub struct TestStream {
    /// The codec.
    pub codec: Codec,
    /// `avcC` or `hvcC` payload.
    pub decoder_config: Vec<u8>,
    /// The frames in decode (= presentation) order.
    pub access_units: Vec<AccessUnit>,
}

/// Encodes a `seconds`-long 320x240 clip into `dir` with [`make_clip`] and splits it.
pub fn encode_test_stream(dir: &Path, codec: Codec, seconds: u32) -> anyhow::Result<TestStream> {
    let path = make_clip(dir, codec, seconds)?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    split_stream(codec, &bytes)
}

/// Splits an Annex-B byte stream at start codes (`00 00 01`, `00 00 00 01`).
pub fn split_annex_b(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (n, start) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(stream.len(), |next| next - 3);
        // Trailing zeroes belong to the next 4-byte start code.
        while end > *start && stream[end - 1] == 0 {
            end -= 1;
        }
        if end > *start {
            nals.push(&stream[*start..end]);
        }
    }
    nals
}

/// Groups the NAL units of `stream` into access units and builds the decoder configuration.
pub fn split_stream(codec: Codec, stream: &[u8]) -> anyhow::Result<TestStream> {
    let mut parameter_sets: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut access_units: Vec<AccessUnit> = Vec::new();
    let mut current: Option<AccessUnit> = None;
    let mut current_has_vcl = false;
    for nal in split_annex_b(stream) {
        let Some(&first) = nal.first() else { continue };
        let (nal_type, is_vcl, is_key, is_param, first_slice) = match codec {
            Codec::H264 => {
                let t = first & 0x1f;
                let vcl = (1..=5).contains(&t);
                (
                    t,
                    vcl,
                    t == 5,
                    t == 7 || t == 8,
                    vcl && nal.get(1).is_some_and(|b| b & 0x80 != 0),
                )
            }
            Codec::H265 => {
                let t = (first >> 1) & 0x3f;
                let vcl = t < 32;
                (
                    t,
                    vcl,
                    (16..=21).contains(&t),
                    (32..=34).contains(&t),
                    vcl && nal.get(2).is_some_and(|b| b & 0x80 != 0),
                )
            }
        };
        let is_aud = match codec {
            Codec::H264 => nal_type == 9,
            Codec::H265 => nal_type == 35,
        };
        // A new access unit starts at a first slice, or at non-VCL data after the slices.
        let starts_new = current_has_vcl && (first_slice || !is_vcl);
        if starts_new {
            access_units.extend(current.take());
            current_has_vcl = false;
        }
        if is_param {
            if !parameter_sets.iter().any(|(t, _)| *t == nal_type) {
                parameter_sets.push((nal_type, nal.to_vec()));
            }
            continue;
        }
        if is_aud {
            continue;
        }
        let unit = current.get_or_insert_with(|| AccessUnit {
            is_key: false,
            data: Vec::new(),
        });
        unit.data
            .extend_from_slice(&u32::try_from(nal.len())?.to_be_bytes());
        unit.data.extend_from_slice(nal);
        if is_vcl {
            unit.is_key |= is_key;
            current_has_vcl = true;
        }
    }
    access_units.extend(current.filter(|_| current_has_vcl));
    let find = |t: u8| {
        parameter_sets
            .iter()
            .find(|(nal_type, _)| *nal_type == t)
            .map(|(_, nal)| nal.as_slice())
            .with_context(|| format!("stream has no NAL unit of type {t}"))
    };
    let decoder_config = match codec {
        Codec::H264 => avcc(find(7)?, find(8)?)?,
        Codec::H265 => hvcc(find(32)?, find(33)?, find(34)?)?,
    };
    ensure!(
        access_units.first().is_some_and(|au| au.is_key),
        "stream does not start with a key frame"
    );
    Ok(TestStream {
        codec,
        decoder_config,
        access_units,
    })
}

fn avcc(sps: &[u8], pps: &[u8]) -> anyhow::Result<Vec<u8>> {
    if sps.len() < 4 {
        bail!("SPS too short");
    }
    let mut out = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    out.extend_from_slice(&u16::try_from(sps.len())?.to_be_bytes());
    out.extend_from_slice(sps);
    out.push(1);
    out.extend_from_slice(&u16::try_from(pps.len())?.to_be_bytes());
    out.extend_from_slice(pps);
    Ok(out)
}

/// Removes emulation prevention bytes (`00 00 03` → `00 00`).
fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

fn hvcc(vps: &[u8], sps: &[u8], pps: &[u8]) -> anyhow::Result<Vec<u8>> {
    let sps_rbsp = rbsp(sps);
    // NAL header (2 bytes), then vps id / max sub layers / nesting (1 byte), then the 12-byte
    // general profile_tier_level.
    let ptl = sps_rbsp.get(3..15).context("SPS too short")?;
    let mut out = vec![1];
    out.extend_from_slice(ptl);
    out.extend_from_slice(&[
        0xf0, 0x00, // min_spatial_segmentation_idc = 0
        0xfc, // parallelism type unknown
        0xfd, // chroma format 4:2:0
        0xf8, // luma bit depth 8
        0xf8, // chroma bit depth 8
        0x00, 0x00, // average frame rate unknown
        0x0f, // one temporal layer, nested, 4-byte NAL lengths
        3,    // arrays: VPS, SPS, PPS
    ]);
    for (nal_type, nal) in [(32u8, vps), (33, sps), (34, pps)] {
        out.push(0x80 | nal_type);
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&u16::try_from(nal.len())?.to_be_bytes());
        out.extend_from_slice(nal);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4,
        ];
        let nals = split_annex_b(&stream);
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
    }

    #[test]
    fn removes_emulation_prevention() {
        assert_eq!(rbsp(&[1, 0, 0, 3, 1, 0, 0, 3]), vec![1, 0, 0, 1, 0, 0]);
    }
}
