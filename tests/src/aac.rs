//! AAC test audio: encode a tone with ffmpeg's AAC encoder as ADTS, split it into raw AAC frames
//! and derive the AudioSpecificConfig — what `ingest` gets from a camera's AAC track.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context};

/// Raw AAC frames (ADTS headers removed) and their configuration.
#[derive(Clone, Debug)]
pub struct AacStream {
    /// Samples per second.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// The 2-byte AudioSpecificConfig for `esds`.
    pub audio_specific_config: Vec<u8>,
    /// One entry per AAC frame of 1024 samples.
    pub frames: Vec<Vec<u8>>,
}

/// ADTS sampling frequency index → rate.
const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// Encodes `seconds` of a 440 Hz mono tone at 48 kHz into `dir` and splits it.
pub fn encode_test_audio(dir: &Path, seconds: u32) -> anyhow::Result<AacStream> {
    let path = dir.join("tone.aac");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("sine=frequency=440:sample_rate=48000")
        .args(["-t", &seconds.to_string(), "-c:a", "aac", "-f", "adts"])
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .status()
        .context("running ffmpeg")?;
    ensure!(
        status.success(),
        "ffmpeg failed encoding {}",
        path.display()
    );
    let bytes = std::fs::read(&path)?;
    split_adts(&bytes)
}

/// Splits an ADTS stream into raw frames.
pub fn split_adts(mut bytes: &[u8]) -> anyhow::Result<AacStream> {
    let mut frames = Vec::new();
    let mut config = None;
    while !bytes.is_empty() {
        ensure!(
            bytes.len() >= 7 && bytes[0] == 0xff && bytes[1] & 0xf0 == 0xf0,
            "lost ADTS sync"
        );
        let protection_absent = bytes[1] & 1 == 1;
        let object_type = (bytes[2] >> 6) + 1;
        let frequency_index = (bytes[2] >> 2) & 0x0f;
        let channels = ((bytes[2] & 1) << 2) | (bytes[3] >> 6);
        let frame_len = (usize::from(bytes[3] & 0x03) << 11)
            | (usize::from(bytes[4]) << 3)
            | usize::from(bytes[5] >> 5);
        let header_len = if protection_absent { 7 } else { 9 };
        ensure!(
            frame_len >= header_len && frame_len <= bytes.len(),
            "bad ADTS frame length"
        );
        frames.push(bytes[header_len..frame_len].to_vec());
        config.get_or_insert((object_type, frequency_index, channels));
        bytes = &bytes[frame_len..];
    }
    let (object_type, frequency_index, channels) = config.context("no ADTS frames")?;
    let sample_rate = *SAMPLE_RATES
        .get(usize::from(frequency_index))
        .context("bad sampling frequency index")?;
    let asc = (u16::from(object_type) << 11)
        | (u16::from(frequency_index) << 7)
        | (u16::from(channels) << 3);
    Ok(AacStream {
        sample_rate,
        channels: u16::from(channels),
        audio_specific_config: asc.to_be_bytes().to_vec(),
        frames,
    })
}
