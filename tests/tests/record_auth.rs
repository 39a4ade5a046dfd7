//! `edgenvr record` with digest authentication against a real gst-rtsp-server: the right
//! password (from `EDGENVR_RTSP_PASSWORD`) records; a wrong one ends the command with exit code 3
//! and a clear message that never shows the password.

use std::time::Duration;

use edgenvr_tests::bins;
use edgenvr_tests::clips::{make_clip, Codec};
use edgenvr_tests::process::Process;
use edgenvr_tests::recording::playable_segments;
use edgenvr_tests::rtsp_server::RtspServer;

const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// `edgenvr record`'s exit code for a refused password.
const EXIT_UNAUTHORIZED: i32 = 3;

#[test]
fn right_password_records_wrong_one_fails_clearly() -> anyhow::Result<()> {
    let edgenvr = bins::edgenvr();
    let work = tempfile::tempdir()?;
    let clip = make_clip(work.path(), Codec::H264, 2)?;
    let server = RtspServer::start(&[("/cam", &clip)], Some(("viewer", "c0rrect-horse")))?;
    let url = server
        .url("/cam", None)
        .replace("rtsp://", "rtsp://viewer@");

    let good_dir = work.path().join("good");
    std::fs::create_dir(&good_dir)?;
    let dir = good_dir.to_str().unwrap_or_default();
    let args = ["record", url.as_str(), "--dir", dir, "--wrap", "4"];
    let mut recorder = Process::spawn(
        &edgenvr,
        &args,
        &[("EDGENVR_RTSP_PASSWORD", "c0rrect-horse")],
    )?;
    recorder.wait_for_line("streaming", STEP_TIMEOUT)?;
    server.wait_frames("/cam", 60, STEP_TIMEOUT)?;
    assert!(recorder.terminate(STEP_TIMEOUT)?.success());
    assert!(!recorder.stderr().contains("c0rrect-horse"));
    let segments = playable_segments(&good_dir)?;
    assert!(segments.iter().map(|s| s.frames).sum::<u64>() > 0);

    // A wrong password in the URL: refused, exit 3, the password nowhere in the output.
    let bad_dir = work.path().join("bad");
    std::fs::create_dir(&bad_dir)?;
    let bad_url = server.url("/cam", Some(("viewer", "wr0ng-guess")));
    let dir = bad_dir.to_str().unwrap_or_default();
    let args = ["record", bad_url.as_str(), "--dir", dir, "--wrap", "4"];
    let mut recorder = Process::spawn(&edgenvr, &args, &[])?;
    let status = recorder.wait(STEP_TIMEOUT)?;
    let stderr = recorder.stderr();
    assert_eq!(status.code(), Some(EXIT_UNAUTHORIZED), "{stderr}");
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(
        stderr.contains("check the user name and password"),
        "{stderr}"
    );
    assert!(!stderr.contains("wr0ng-guess"), "{stderr}");
    Ok(())
}
