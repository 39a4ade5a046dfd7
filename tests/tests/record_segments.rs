//! `edgenvr record` against a real gst-rtsp-server, H.264 and H.265 side by side (one 25 s wait
//! for both): with `--segment 10s` every segment plays in ffprobe without an error, and the
//! frames across segments match what the server sent within one GOP.

use std::time::Duration;

use edgenvr_tests::bins;
use edgenvr_tests::clips::{concat_clips, make_clip, make_clip_sized, Codec, GOP_FRAMES};
use edgenvr_tests::ffprobe::video_codec_name;
use edgenvr_tests::process::Process;
use edgenvr_tests::recording::playable_segments;
use edgenvr_tests::rtsp_server::RtspServer;

/// The recording length the issue asks for.
const RECORD_FOR: Duration = Duration::from_secs(25);
/// Generous bound for start-up and shutdown steps on a loaded 2-core machine.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn twenty_five_seconds_in_ten_second_segments_h264_and_h265() -> anyhow::Result<()> {
    let edgenvr = bins::edgenvr();
    let work = tempfile::tempdir()?;
    let h264 = make_clip(work.path(), Codec::H264, 4)?;
    let h265 = make_clip(work.path(), Codec::H265, 4)?;
    let server = RtspServer::start(&[("/h264", &h264), ("/h265", &h265)], None)?;

    let mut recorders = Vec::new();
    for codec in [Codec::H264, Codec::H265] {
        let dir = work.path().join(codec.extension());
        std::fs::create_dir(&dir)?;
        let url = server.url(&format!("/{}", codec.extension()), None);
        let args = [
            "record",
            url.as_str(),
            "--dir",
            dir.to_str().unwrap_or_default(),
            "--segment",
            "10s",
            "--wrap",
            "8",
            "--name",
            codec.extension(),
        ];
        let process = Process::spawn(&edgenvr, &args, &[])?;
        recorders.push((codec, dir, process));
    }
    for (_, _, process) in &recorders {
        process.wait_for_line("streaming", STEP_TIMEOUT)?;
    }
    // The recording itself: a legitimate wait.
    std::thread::sleep(RECORD_FOR);
    for (_, _, process) in &mut recorders {
        let status = process.terminate(STEP_TIMEOUT)?;
        assert!(status.success(), "record exits 0 after SIGTERM: {status}");
    }

    for (codec, dir, _) in &recorders {
        let path = format!("/{}", codec.extension());
        let sent = server.wait_idle(&path, 1, STEP_TIMEOUT)?;
        let segments = playable_segments(dir)?;
        // 25 s in 10 s segments: two full ones and the rest.
        assert_eq!(segments.len(), 3, "{codec:?}: {segments:?}");
        let recorded: u64 = segments.iter().map(|s| s.frames).sum();
        eprintln!("{codec:?}: server sent {sent} frames, segments hold {recorded}");
        assert!(
            recorded.abs_diff(sent) <= u64::from(GOP_FRAMES),
            "{codec:?}: recorded {recorded} frames, server sent {sent}"
        );
        for segment in &segments {
            assert_eq!(video_codec_name(&segment.path)?, codec.ffprobe_name());
        }
        // Whole segments hold 10 s of 1 s GOPs.
        for segment in &segments[..2] {
            assert_eq!(segment.fragments, 10, "{codec:?}: {segment:?}");
            assert_eq!(segment.frames, 10 * u64::from(GOP_FRAMES), "{segment:?}");
        }
    }
    Ok(())
}

/// `(width, frames)` of stream v:0.
fn width_and_frames(file: &std::path::Path) -> anyhow::Result<(u32, u64)> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=width,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (width, frames) = text
        .split_once(',')
        .ok_or_else(|| anyhow::anyhow!("ffprobe {}: {text:?}", file.display()))?;
    Ok((width.parse()?, frames.trim_end_matches(',').parse()?))
}

#[test]
fn a_resolution_change_starts_a_new_segment() -> anyhow::Result<()> {
    let edgenvr = bins::edgenvr();
    let work = tempfile::tempdir()?;
    // Two seconds at 320x240, two at 640x480, looped: the parameters change every 2 s.
    let small = make_clip_sized(work.path(), Codec::H264, 2, (320, 240))?;
    let large = make_clip_sized(work.path(), Codec::H264, 2, (640, 480))?;
    let mixed = concat_clips(&[small, large], &work.path().join("mixed.h264"))?;
    let server = RtspServer::start(&[("/cam", &mixed)], None)?;
    let dir = work.path().join("store");
    std::fs::create_dir(&dir)?;
    let url = server.url("/cam", None);
    let args = [
        "record",
        url.as_str(),
        "--dir",
        dir.to_str().unwrap_or_default(),
        "--wrap",
        "8",
    ];
    let mut recorder = Process::spawn(&edgenvr, &args, &[])?;
    // Four parameter sets seen: 320, 640, 320, 640 — three changes.
    recorder.wait_for_lines("stream parameters", 4, STEP_TIMEOUT)?;
    assert!(recorder.terminate(STEP_TIMEOUT)?.success());

    let segments = playable_segments(&dir)?;
    let shapes: Vec<(u32, u64)> = segments
        .iter()
        .map(|s| width_and_frames(&s.path))
        .collect::<anyhow::Result<_>>()?;
    assert!(shapes.len() >= 4, "{shapes:?}");
    for (i, (width, frames)) in shapes.iter().enumerate() {
        assert_eq!(*width, if i % 2 == 0 { 320 } else { 640 }, "{shapes:?}");
        if i < 3 {
            assert_eq!(*frames, 2 * u64::from(GOP_FRAMES), "whole part: {shapes:?}");
        }
    }
    Ok(())
}
