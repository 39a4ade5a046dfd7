//! ffprobe/ffmpeg as the independent judge of what was written: frame counts and full decodes.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context};

/// Frames ffprobe reads from the first video stream of `path` (`-count_frames`). Fails when
/// ffprobe reports any error.
pub fn count_video_frames(path: &Path) -> anyhow::Result<u64> {
    probe_count(path, "-count_frames", "v:0", "stream=nb_read_frames")
}

/// Decodes all of `path` with `ffmpeg -v error -i F -f null -`; returns what it printed (empty
/// when the file decodes cleanly).
pub fn decode_errors(path: &Path) -> anyhow::Result<String> {
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .context("running ffmpeg")?;
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        text.push_str(&format!("\nexit status {}", output.status));
    }
    Ok(text)
}

/// The codec name ffprobe reports for the first video stream (`h264`, `hevc`).
pub fn video_codec_name(path: &Path) -> anyhow::Result<String> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .context("running ffprobe")?;
    ensure!(output.status.success(), "ffprobe {} failed", path.display());
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Packets ffprobe counts in stream `selector` (e.g. `a:0`) of `path`; fails on any error.
pub fn count_packets(path: &Path, selector: &str) -> anyhow::Result<u64> {
    probe_count(path, "-count_packets", selector, "stream=nb_read_packets")
}

/// `(FIELD, frames read)` of stream `selector` (e.g. `v:0`, `a:0`) of `path`, from
/// `-count_frames -show_entries stream=FIELD,nb_read_frames` (e.g. FIELD `width`, `codec_name`).
/// Fails when the stream is missing or the frame count is not a number.
pub fn field_and_frame_count(
    path: &Path,
    selector: &str,
    field: &str,
) -> anyhow::Result<(String, u64)> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", selector])
        .args(["-show_entries", &format!("stream={field},nb_read_frames")])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .context("running ffprobe")?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let (value, frames) = text.split_once(',').with_context(|| {
        format!(
            "ffprobe {}: no stream {selector} ({text:?})",
            path.display()
        )
    })?;
    let frames = frames
        .trim_end_matches(',')
        .parse()
        .with_context(|| format!("ffprobe {}: unexpected output {text:?}", path.display()))?;
    Ok((value.to_owned(), frames))
}

/// Runs `ffprobe -v error COUNT_FLAG -select_streams SELECTOR -show_entries ENTRY` on `path` and
/// parses the single number it prints; fails when ffprobe exits unsuccessfully or prints any
/// error.
fn probe_count(path: &Path, count_flag: &str, selector: &str, entry: &str) -> anyhow::Result<u64> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", count_flag, "-select_streams", selector])
        .args(["-show_entries", entry, "-of", "csv=p=0"])
        .arg(path)
        .output()
        .context("running ffprobe")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success() && stderr.trim().is_empty(),
        "ffprobe {}: status {}, errors: {stderr}",
        path.display(),
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .trim()
        .trim_end_matches(',')
        .parse()
        .with_context(|| format!("ffprobe {}: unexpected output {stdout:?}", path.display()))
}
