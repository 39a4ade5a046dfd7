//! The daemon's entry points with the real binary: `record` refuses a directory that is not a
//! store, `check-config` names every problem and exits 1, `run` refuses an uninitialised store
//! and records the cameras of a valid config from a real gst-rtsp-server.

use std::path::Path;
use std::time::Duration;

use edgenvr_tests::bins;
use edgenvr_tests::clips::{make_clip, Codec};
use edgenvr_tests::process::{run, Process};
use edgenvr_tests::recording::playable_segments;
use edgenvr_tests::rtsp_server::RtspServer;

const STEP_TIMEOUT: Duration = Duration::from_secs(30);

fn listing(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

#[test]
fn record_refuses_a_directory_that_is_not_a_store() -> anyhow::Result<()> {
    let edgenvr = bins::edgenvr();
    let work = tempfile::tempdir()?;
    let dir = work.path().join("photos");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("holiday.jpg"), b"not video")?;
    let dir_arg = dir.to_str().unwrap_or_default();
    // No server is needed: the store is checked before any connection.
    let url = "rtsp://127.0.0.1:9/cam";
    let (status, _, stderr) = run(
        &edgenvr,
        &["record", url, "--dir", dir_arg, "--max-bytes", "64MiB"],
    )?;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not an edgenvr store"), "{stderr}");
    assert_eq!(listing(&dir)?, vec!["holiday.jpg"], "nothing was written");

    // Without a size even an empty directory is left alone, with the reason.
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty)?;
    let (status, _, stderr) = run(
        &edgenvr,
        &["record", url, "--dir", empty.to_str().unwrap_or_default()],
    )?;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--max-bytes SIZE or --wrap N"), "{stderr}");
    assert!(listing(&empty)?.is_empty());

    // A missing directory (an unmounted disk) is not created.
    let missing = work.path().join("usb");
    let (status, _, stderr) = run(
        &edgenvr,
        &[
            "record",
            url,
            "--dir",
            missing.to_str().unwrap_or_default(),
            "--wrap",
            "4",
        ],
    )?;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!missing.exists());
    Ok(())
}

#[test]
fn check_config_names_each_problem() -> anyhow::Result<()> {
    let edgenvr = bins::edgenvr();
    let work = tempfile::tempdir()?;
    let good = bins::workspace_root().join("examples/config.toml");
    let (status, stdout, stderr) = run(
        &edgenvr,
        &[
            "check-config",
            "--config",
            good.to_str().unwrap_or_default(),
        ],
    )?;
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains(": ok (2 cameras, 1 sensor)"), "{stdout}");

    let bad = work.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[storage]\ndir = \"/srv/nvr\"\n\n[[camera]]\nname = \"front\"\nurl = \"rtsp://a/b\"\n\n\
         [[camera]]\nname = \"front\"\nurl = \"rtsp://u:t0psecret@c/d\"\ntriggers = [\"pir\"]\n",
    )?;
    let bad_arg = bad.to_str().unwrap_or_default();
    let (status, _, stderr) = run(&edgenvr, &["check-config", "--config", bad_arg])?;
    assert_eq!(status.code(), Some(1), "{stderr}");
    let expected = [
        format!("{bad_arg}:9: camera[1].name: \"front\" is already the name of camera[0]"),
        format!("{bad_arg}:11: camera[1].triggers[0]: \"pir\" is not the name of a [[sensor]]"),
    ];
    for line in &expected {
        assert!(
            stderr.contains(line.as_str()),
            "missing {line:?} in:\n{stderr}"
        );
    }
    assert!(!stderr.contains("t0psecret"));

    std::fs::write(&bad, "[storage]\ndir = \"/srv/nvr\"\ncolour = \"blue\"\n")?;
    let (status, _, stderr) = run(&edgenvr, &["check-config", "--config", bad_arg])?;
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains(&format!("{bad_arg}:3: unknown field `colour`")),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn run_refuses_an_uninitialised_store_and_records_an_initialised_one() -> anyhow::Result<()> {
    let edgenvr = bins::edgenvr();
    let work = tempfile::tempdir()?;
    let clip = make_clip(work.path(), Codec::H265, 2)?;
    let server = RtspServer::start(&[("/cam", &clip)], None)?;
    let store = work.path().join("store");
    std::fs::create_dir(&store)?;
    let config = work.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[box]\nname = \"test\"\n[storage]\ndir = {:?}\nsegment = \"2s\"\n\
             [[camera]]\nname = \"porch\"\nurl = {:?}\n",
            store.display().to_string(),
            server.url("/cam", None)
        ),
    )?;
    let config_arg = config.to_str().unwrap_or_default();
    let (status, _, stderr) = run(&edgenvr, &["run", "--config", config_arg])?;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not an edgenvr store"), "{stderr}");
    assert!(listing(&store)?.is_empty(), "run never initialises a store");

    let store_arg = store.to_str().unwrap_or_default();
    let (status, _, stderr) = run(&edgenvr, &["store", "init", store_arg, "--size", "16MiB"])?;
    assert!(status.success(), "{stderr}");
    let mut daemon = Process::spawn(&edgenvr, &["run", "--config", config_arg], &[])?;
    daemon.wait_for_line("streaming", STEP_TIMEOUT)?;
    server.wait_frames("/cam", 75, STEP_TIMEOUT)?;
    assert!(daemon.terminate(STEP_TIMEOUT)?.success());
    let segments = playable_segments(&store)?;
    assert!(segments.len() >= 2, "2 s segments: {segments:?}");
    assert!(segments.iter().all(|s| s.camera == "porch"));
    Ok(())
}

#[test]
fn run_keeps_retrying_a_refused_camera_slowly_while_the_others_record() -> anyhow::Result<()> {
    let edgenvr = bins::edgenvr();
    let work = tempfile::tempdir()?;
    let clip = make_clip(work.path(), Codec::H264, 2)?;
    let open_server = RtspServer::start(&[("/cam", &clip)], None)?;
    let locked_server = RtspServer::start(&[("/cam", &clip)], Some(("admin", "right-one")))?;
    let store = work.path().join("store");
    let store_arg = store.to_str().unwrap_or_default();
    let (status, _, stderr) = run(&edgenvr, &["store", "init", store_arg, "--size", "16MiB"])?;
    assert!(status.success(), "{stderr}");
    let config = work.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndir = {:?}\n\n[[camera]]\nname = \"yard\"\nurl = {:?}\n\n\
             [[camera]]\nname = \"gate\"\nurl = {:?}\n",
            store.display().to_string(),
            open_server.url("/cam", None),
            locked_server.url("/cam", Some(("admin", "not-the-one"))),
        ),
    )?;
    let config_arg = config.to_str().unwrap_or_default();
    let mut daemon = Process::spawn(&edgenvr, &["run", "--config", config_arg], &[])?;
    let refused = daemon.wait_for_line("authentication failed", STEP_TIMEOUT)?;
    assert!(refused.contains("camera gate"), "{refused}");
    // Two minutes until the next attempt, not the fast backoff.
    assert!(refused.contains("retry_in_ms=120000"), "{refused}");
    daemon.wait_for_line("streaming camera=yard", STEP_TIMEOUT)?;
    open_server.wait_frames("/cam", 50, STEP_TIMEOUT)?;
    let status = daemon.terminate(STEP_TIMEOUT)?;
    assert!(
        status.success(),
        "the refused camera does not fail the daemon: {status}"
    );
    assert!(!daemon.stderr().contains("not-the-one"));
    let segments = playable_segments(&store)?;
    assert!(!segments.is_empty());
    assert!(segments.iter().all(|s| s.camera == "yard"), "{segments:?}");
    Ok(())
}

#[test]
fn run_shows_why_a_camera_is_not_recording() -> anyhow::Result<()> {
    use edgenvr::ingest::{CameraStatus, IngestErrorKind};
    let edgenvr = bins::edgenvr();
    let work = tempfile::tempdir()?;
    let clip = make_clip(work.path(), Codec::H264, 2)?;
    let server = RtspServer::start(&[("/cam", &clip)], Some(("admin", "right-one")))?;
    let store = work.path().join("store");
    let store_arg = store.to_str().unwrap_or_default();
    let (status, _, stderr) = run(&edgenvr, &["store", "init", store_arg, "--size", "16MiB"])?;
    assert!(status.success(), "{stderr}");
    let text = format!(
        "[storage]\ndir = {:?}\n[[camera]]\nname = \"gate\"\nurl = {:?}\n",
        store.display().to_string(),
        server.url("/cam", Some(("admin", "wrong-one"))),
    );
    let config = edgenvr::config::parse(&text).map_err(|p| anyhow::anyhow!("{p:?}"))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (trigger, shutdown) = edgenvr::shutdown::ShutdownTrigger::new();
    let (statuses_tx, statuses_rx) = tokio::sync::oneshot::channel();
    let seen = runtime.block_on(async {
        let daemon = edgenvr::daemon::run_with_status(config, shutdown, |statuses| {
            let _ = statuses_tx.send(statuses);
        });
        let watch = async {
            let mut statuses = statuses_rx.await?;
            let (name, status) = statuses
                .first_mut()
                .ok_or_else(|| anyhow::anyhow!("no camera status"))?;
            let seen = status
                .wait_for(|s| matches!(s, CameraStatus::Retrying { .. }))
                .await?
                .clone();
            trigger.trigger();
            anyhow::Ok((name.clone(), seen))
        };
        let (result, seen) =
            tokio::time::timeout(STEP_TIMEOUT, async { tokio::join!(daemon, watch) }).await?;
        result?;
        seen
    })?;
    assert_eq!(seen.0, "gate");
    match seen.1 {
        CameraStatus::Retrying { kind, reason, .. } => {
            assert_eq!(kind, IngestErrorKind::Unauthorized);
            assert!(reason.contains("authentication failed"), "{reason}");
            assert!(!reason.contains("wrong-one"), "{reason}");
        }
        other => panic!("unexpected status {other:?}"),
    }
    Ok(())
}
