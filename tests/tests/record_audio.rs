//! A camera that sends AAC audio with its video: `edgenvr record` keeps both tracks, and each
//! segment plays with its audio in ffprobe/ffmpeg.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use edgenvr_tests::bins;
use edgenvr_tests::clips::{make_clip, Codec, FPS};
use edgenvr_tests::process::Process;
use edgenvr_tests::recording::playable_segments;
use edgenvr_tests::rtsp_server::{RtspServer, ServerOptions};

const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The test server's AAC track: 16 kHz, 1024 samples per frame.
const AAC_FRAMES_PER_SECOND: f64 = 16_000.0 / 1024.0;

/// `(codec_name, frames)` of the first audio stream.
fn audio_stream(file: &Path) -> anyhow::Result<(String, u64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "a:0"])
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (name, frames) = text
        .split_once(',')
        .ok_or_else(|| anyhow::anyhow!("no audio stream in {}: {text:?}", file.display()))?;
    Ok((name.to_owned(), frames.trim_end_matches(',').parse()?))
}

#[test]
fn aac_from_the_camera_is_recorded_with_the_video() -> anyhow::Result<()> {
    let edgenvr = bins::edgenvr();
    let work = tempfile::tempdir()?;
    let clip = make_clip(work.path(), Codec::H264, 2)?;
    let server = RtspServer::start_with(
        &[("/cam", &clip)],
        ServerOptions {
            audio: true,
            ..ServerOptions::default()
        },
    )?;
    let dir = work.path().join("store");
    std::fs::create_dir(&dir)?;
    let url = server.url("/cam", None);
    let args = [
        "record",
        url.as_str(),
        "--dir",
        dir.to_str().unwrap_or_default(),
        "--wrap",
        "4",
    ];
    let mut recorder = Process::spawn(&edgenvr, &args, &[])?;
    let params = recorder.wait_for_line("stream parameters", STEP_TIMEOUT)?;
    assert!(params.contains("audio=true"), "{params}");
    server.wait_frames("/cam", 4 * u64::from(FPS), STEP_TIMEOUT)?;
    assert!(recorder.terminate(STEP_TIMEOUT)?.success());

    // playable_segments decodes every stream (audio included) and demands silence from ffmpeg.
    let segments = playable_segments(&dir)?;
    for segment in &segments {
        let (codec, audio_frames) = audio_stream(&segment.path)?;
        assert_eq!(codec, "aac");
        // Audio covers the same time as the video, give or take a fragment's edge.
        let video_seconds = segment.frames as f64 / f64::from(FPS);
        let expected = video_seconds * AAC_FRAMES_PER_SECOND;
        assert!(
            (audio_frames as f64 - expected).abs() <= AAC_FRAMES_PER_SECOND,
            "{audio_frames} AAC frames for {video_seconds} s of video in {segment:?}"
        );
    }
    Ok(())
}
