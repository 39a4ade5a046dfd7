//! `edgenvr record` when things go wrong, against a real gst-rtsp-server: the server is killed and
//! restarted (the recorder reconnects by itself and the gap shows in `store ls`), and the recorder
//! itself is killed with SIGKILL mid-segment (every fragment completed before stays playable and
//! a restarted recorder carries on in the same store).

use std::path::Path;
use std::time::Duration;

use edgenvr_tests::bins;
use edgenvr_tests::clips::{make_clip, Codec, GOP_FRAMES};
use edgenvr_tests::edgenvr_box::spawn_record;
use edgenvr_tests::process::Process;
use edgenvr_tests::recording::{playable_segments, store_ls};
use edgenvr_tests::rtsp_server::RtspServer;

/// Generous bound for start-up, reconnect and shutdown steps on a loaded 2-core machine.
const STEP_TIMEOUT: Duration = Duration::from_secs(40);
/// Frames to let through between steps: three one-second GOPs.
const SOME_FRAMES: u64 = 3 * GOP_FRAMES as u64;

fn start_recorder(url: &str, dir: &Path) -> anyhow::Result<Process> {
    spawn_record(
        url,
        dir,
        &["--segment", "10s", "--wrap", "8", "--name", "front"],
        &[],
    )
}

#[test]
fn reconnects_after_the_server_restarts_and_the_gap_is_listed() -> anyhow::Result<()> {
    let edgenvr = bins::edgenvr();
    let work = tempfile::tempdir()?;
    let clip = make_clip(work.path(), Codec::H264, 4)?;
    let mut server = RtspServer::start(&[("/cam", &clip)], None)?;
    let url = server.url("/cam", None);
    let dir = work.path().join("store");
    std::fs::create_dir(&dir)?;
    let mut recorder = start_recorder(&url, &dir)?;

    recorder.wait_for_line("streaming", STEP_TIMEOUT)?;
    server.wait_frames("/cam", SOME_FRAMES, STEP_TIMEOUT)?;
    server.kill();
    // The recorder notices and schedules a retry (logged with its delay); the second retry
    // follows a refused connect, so the outage lasts past the listing's gap tolerance (1 s).
    recorder.wait_for_lines("retry_in_ms", 2, STEP_TIMEOUT)?;
    let server = server.restart()?;
    // No signal or restart of the recorder: it finds the camera again by itself.
    recorder.wait_for_lines("streaming", 2, STEP_TIMEOUT)?;
    server.wait_frames("/cam", SOME_FRAMES, STEP_TIMEOUT)?;
    let status = recorder.terminate(STEP_TIMEOUT)?;
    assert!(status.success(), "{status}");

    let listing = store_ls(&edgenvr, &dir)?;
    let ranges = listing["cameras"][0]["ranges"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("no ranges in {listing}"))?;
    assert_eq!(ranges.len(), 2, "one range before, one after: {listing}");
    let gap_ms = ranges[1]["gap_before_ms"].as_i64().unwrap_or(0);
    assert!(gap_ms > 0, "the outage is a gap: {listing}");
    for range in ranges {
        // The server counts frames as it stamps them, a few ahead of what it has sent.
        let frames = range["frames"].as_u64().unwrap_or(0);
        assert!(frames + u64::from(GOP_FRAMES) >= SOME_FRAMES, "{range}");
    }
    playable_segments(&dir)?;
    Ok(())
}

#[test]
fn a_camera_that_hangs_with_the_connection_open_is_detected_and_reconnected() -> anyhow::Result<()>
{
    let work = tempfile::tempdir()?;
    let clip = make_clip(work.path(), Codec::H264, 2)?;
    let server = RtspServer::start(&[("/cam", &clip)], None)?;
    let dir = work.path().join("store");
    std::fs::create_dir(&dir)?;
    let mut recorder = start_recorder(&server.url("/cam", None), &dir)?;
    recorder.wait_for_line("streaming", STEP_TIMEOUT)?;
    server.wait_frames("/cam", SOME_FRAMES, STEP_TIMEOUT)?;
    // Frozen: the TCP connection stays up, no frame comes (where the ffmpeg one-liner hangs).
    server.signal("STOP")?;
    recorder.wait_for_line("treating the stream as dead", STEP_TIMEOUT)?;
    server.signal("CONT")?;
    recorder.wait_for_lines("streaming", 2, STEP_TIMEOUT)?;
    let status = recorder.terminate(STEP_TIMEOUT)?;
    assert!(status.success(), "{status}");
    playable_segments(&dir)?;
    Ok(())
}

#[test]
fn sigkill_mid_segment_keeps_every_completed_fragment() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let clip = make_clip(work.path(), Codec::H264, 4)?;
    let server = RtspServer::start(&[("/cam", &clip)], None)?;
    let url = server.url("/cam", None);
    let dir = work.path().join("store");
    std::fs::create_dir(&dir)?;

    let mut recorder = start_recorder(&url, &dir)?;
    recorder.wait_for_line("streaming", STEP_TIMEOUT)?;
    // Mid-GOP and mid-segment: 4.5 s into a 10 s segment of 1 s GOPs.
    let four_and_a_half_seconds = 4 * u64::from(GOP_FRAMES) + u64::from(GOP_FRAMES) / 2;
    server.wait_frames("/cam", four_and_a_half_seconds, STEP_TIMEOUT)?;
    recorder.signal("KILL")?;
    let status = recorder.wait(STEP_TIMEOUT)?;
    assert!(!status.success());
    let sent = server.wait_idle("/cam", 1, STEP_TIMEOUT)?;

    let before = playable_segments(&dir)?;
    let recorded: u64 = before.iter().map(|s| s.frames).sum();
    eprintln!("sent {sent}, kept {recorded} after SIGKILL");
    // Lost at most: the GOP being assembled in RAM and the fragment in flight.
    assert!(
        recorded + 2 * u64::from(GOP_FRAMES) >= sent && recorded <= sent,
        "sent {sent}, kept {recorded}"
    );
    assert!(recorded > 0);

    // A restart recovers the store (the dead process's lock is gone) and records on.
    let mut recorder = start_recorder(&url, &dir)?;
    recorder.wait_for_line("streaming", STEP_TIMEOUT)?;
    server.wait_frames("/cam", sent + SOME_FRAMES, STEP_TIMEOUT)?;
    let status = recorder.terminate(STEP_TIMEOUT)?;
    assert!(status.success(), "{status}");

    let after = playable_segments(&dir)?;
    let first = after
        .iter()
        .find(|s| s.path == before[0].path)
        .ok_or_else(|| anyhow::anyhow!("the killed segment is gone"))?;
    assert_eq!(
        first.frames, before[0].frames,
        "recovery kept every fragment"
    );
    let sent_again = server.wait_idle("/cam", 2, STEP_TIMEOUT)? - sent;
    let recorded_again = after.iter().map(|s| s.frames).sum::<u64>() - recorded;
    assert!(
        recorded_again.abs_diff(sent_again) <= u64::from(GOP_FRAMES),
        "second run: sent {sent_again}, recorded {recorded_again}: {after:?}"
    );
    Ok(())
}
