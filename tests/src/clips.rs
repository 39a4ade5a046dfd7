//! Test video clips, encoded at test time with ffmpeg: low resolution, 25 fps, no B-frames, a
//! closed GOP (IDR, as IP cameras send) every second, raw Annex-B, so the test RTSP server can loop them cheaply.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Frames per second of every clip.
pub const FPS: u32 = 25;
/// Frames per GOP (one key frame a second).
pub const GOP_FRAMES: u32 = 25;

/// Video codecs the clips come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// H.264.
    H264,
    /// H.265.
    H265,
}

impl Codec {
    /// File extension (also tells the server which parser to use).
    pub fn extension(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
        }
    }

    /// ffprobe's `codec_name`.
    pub fn ffprobe_name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "hevc",
        }
    }
}

/// Encodes a `seconds`-long 320x240 test pattern in `dir`, returning its path.
pub fn make_clip(dir: &Path, codec: Codec, seconds: u32) -> anyhow::Result<PathBuf> {
    make_clip_sized(dir, codec, seconds, (320, 240))
}

/// Encodes a `seconds`-long test pattern of `(width, height)` in `dir`.
pub fn make_clip_sized(
    dir: &Path,
    codec: Codec,
    seconds: u32,
    (width, height): (u32, u32),
) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!(
        "clip-{seconds}s-{width}x{height}.{}",
        codec.extension()
    ));
    let gop = GOP_FRAMES.to_string();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={width}x{height}:rate={FPS}"))
        .args(["-t", &seconds.to_string(), "-pix_fmt", "yuv420p"]);
    match codec {
        Codec::H264 => cmd.args([
            "-c:v",
            "libx264",
            "-bf",
            "0",
            "-g",
            &gop,
            "-keyint_min",
            &gop,
            "-sc_threshold",
            "0",
            "-f",
            "h264",
        ]),
        Codec::H265 => cmd.args([
            "-c:v",
            "libx265",
            "-x265-params",
            &format!(
                "bframes=0:keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:log-level=error"
            ),
            "-f",
            "hevc",
        ]),
    };
    let status = cmd.arg(&path).status()?;
    anyhow::ensure!(
        status.success(),
        "ffmpeg could not encode {}",
        path.display()
    );
    Ok(path)
}

/// Concatenates Annex-B clips into one file (a stream whose parameters change where each part
/// starts, as a camera's does when its resolution is changed).
pub fn concat_clips(parts: &[PathBuf], out: &Path) -> anyhow::Result<PathBuf> {
    let mut bytes = Vec::new();
    for part in parts {
        bytes.extend(std::fs::read(part)?);
    }
    std::fs::write(out, bytes)?;
    Ok(out.to_path_buf())
}
