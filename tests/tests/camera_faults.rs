//! Cameras that go wrong, against the real box: each fault `edgenvr sim-camera --fault` plays
//! (silent, garbage RTP, malformed SDP, an oversized frame, timestamps that jump forward or back,
//! an SPS change without a key frame) and a gst-rtsp-server restarted again and again. Each is
//! marked offline (retrying, with backoff) or degraded with a named reason, and a healthy camera
//! recording at the same time keeps every frame (counted against what its camera sent).
//!
//! `EDGENVR_FAULT_RESTARTS` sets how often the server is restarted (default 3; `scripts/faults.sh`
//! runs 20). Real time: ~35 s with the defaults.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgenvr::ingest::{
    self, CameraSource, CameraStatus, IngestErrorKind, IngestEvent, IngestHandler, IngestOptions,
    Transport, MAX_FORWARD_STEP_90K,
};
use edgenvr::media::TIMESCALE_90K;
use edgenvr::shutdown::ShutdownTrigger;
use edgenvr::simcam::{self, Clip, Fault, SimCameraConfig};
use edgenvr_tests::bins;
use edgenvr_tests::clips::{make_clip, Codec, GOP_FRAMES};
use edgenvr_tests::edgenvr_box::{init_store, spawn_run};
use edgenvr_tests::process::Process;
use edgenvr_tests::recording::{playable_segments, store_ls};
use edgenvr_tests::rtsp_server::RtspServer;
use edgenvr_tests::sim_camera::SimCamera;

/// A safety net for each wait on a loaded 2-core machine; never a timing assertion.
const STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// The built-in clip's key frame interval: a GOP of 25 frames.
const SIM_GOP_FRAMES: u64 = 25;

/// Polls `condition` on the box's log until it holds.
fn wait_for_log(
    process: &Process,
    what: &str,
    condition: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while Instant::now() < deadline {
        if condition(&process.stderr()) {
            return Ok(());
        }
        // Polling a log another thread appends to; the condition is the event awaited.
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("timed out waiting for {what}; log:\n{}", process.stderr())
}

/// Log lines about `camera` (its `camera=NAME` field) that contain every one of `needles`.
fn camera_lines<'a>(log: &'a str, camera: &str, needles: &[&str]) -> Vec<&'a str> {
    let field = format!("camera={camera} ");
    log.lines()
        .filter(|line| format!("{line} ").contains(&field))
        .filter(|line| needles.iter().all(|needle| line.contains(needle)))
        .collect()
}

/// Frames `store ls --json` lists for `camera`, and its number of ranges.
fn recorded(listing: &serde_json::Value, camera: &str) -> (u64, usize) {
    let Some(entry) = listing["cameras"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["camera"] == camera)
    else {
        return (0, 0);
    };
    let ranges = entry["ranges"].as_array().cloned().unwrap_or_default();
    let frames = ranges.iter().filter_map(|r| r["frames"].as_u64()).sum();
    (frames, ranges.len())
}

/// Initialises a store of `size` in 1 MiB slots, each a 10 s segment (~600 KB of the test
/// clips): room for the whole run of every camera, so no recording wraps before it is counted.
fn init_test_store(store: &Path, size: &str) -> anyhow::Result<()> {
    init_store(store, &["--size", size, "--slot-size", "1MiB"])
}

/// The box's config: one camera per `(name, url)`, 10 s segments.
fn write_config(
    dir: &Path,
    store: &Path,
    cameras: &[(&str, String)],
) -> anyhow::Result<std::path::PathBuf> {
    let mut config = format!(
        "[storage]\ndir = \"{}\"\nsegment = \"10s\"\nsync_interval = \"1s\"\n",
        store.display()
    );
    for (name, url) in cameras {
        config.push_str(&format!(
            "\n[[camera]]\nname = \"{name}\"\nurl = \"{url}\"\n"
        ));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// A camera the test watches: received frames and every status it went through.
#[derive(Default)]
struct Seen {
    frames: Vec<i64>,
    params: usize,
    statuses: Vec<CameraStatus>,
}

struct Collect(Arc<Mutex<Seen>>);

impl IngestHandler for Collect {
    fn session_started(&mut self) {}
    fn event(&mut self, event: IngestEvent) {
        let mut seen = self.0.lock().unwrap();
        match event {
            IngestEvent::Params(_) => seen.params += 1,
            IngestEvent::Video(frame) => seen.frames.push(frame.pts_90k),
            IngestEvent::Audio(_) => {}
        }
    }
    fn session_ended(&mut self) {}
}

/// What a fault must lead to, in process: the status's reason, and whether it keeps recording
/// (degraded) or is retried (offline).
fn expected(fault: Fault) -> (IngestErrorKind, bool) {
    match fault {
        Fault::Silent => (IngestErrorKind::NoAnswer, false),
        Fault::GarbageRtp => (IngestErrorKind::BadMedia, false),
        Fault::BadSdp => (IngestErrorKind::BadDescription, false),
        Fault::Oversized => (IngestErrorKind::BadMedia, false),
        Fault::TsJump | Fault::TsBack => (IngestErrorKind::TimestampJump, true),
        Fault::SpsChange => (IngestErrorKind::ParametersWithoutKeyFrame, true),
    }
}

const FAULTS: [Fault; 7] = [
    Fault::Silent,
    Fault::GarbageRtp,
    Fault::BadSdp,
    Fault::Oversized,
    Fault::TsJump,
    Fault::TsBack,
    Fault::SpsChange,
];

/// Every fault against `ingest::run` in one process, all at once, with short timeouts: a
/// failing camera is retried (two failures or more, with its reason in the status), a degraded
/// one keeps delivering frames whose media time runs forward without a jump, and is healthy
/// again after `healthy_after` without a new fault.
#[test]
fn each_fault_gives_its_reason_in_the_camera_status() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let options = IngestOptions {
            connect_timeout: Duration::from_secs(1),
            stall_timeout: Duration::from_secs(2),
            backoff_initial: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(400),
            // Degraded cameras count as healthy again after this long without a new fault.
            healthy_after: Duration::from_secs(2),
            on_unauthorized: ingest::AuthFailurePolicy::GiveUp,
            ..IngestOptions::default()
        };
        let (trigger, shutdown) = ShutdownTrigger::new();
        let mut tasks = Vec::new();
        let mut watched = Vec::new();
        for fault in FAULTS {
            let camera = simcam::SimCamera::bind(SimCameraConfig {
                listen: "127.0.0.1:0".parse()?,
                paths: vec![],
                clip: Clip::embedded()?,
                fault: Some(fault),
            })
            .await?;
            let url = camera.urls()[0].clone();
            let server_shutdown = trigger.subscribe();
            tasks.push(tokio::spawn(async move {
                let mut stop = server_shutdown;
                camera.run(async move { stop.requested().await }).await;
            }));
            let source = CameraSource::new(&format!("{fault:?}"), &url, None, Transport::Tcp)?;
            let seen = Arc::new(Mutex::new(Seen::default()));
            let (status, mut status_rx) = tokio::sync::watch::channel(CameraStatus::Connecting);
            let history = seen.clone();
            tasks.push(tokio::spawn(async move {
                while status_rx.changed().await.is_ok() {
                    let current = status_rx.borrow_and_update().clone();
                    history.lock().unwrap().statuses.push(current);
                }
            }));
            let options = options.clone();
            let shutdown = shutdown.clone();
            let handler_seen = seen.clone();
            tasks.push(tokio::spawn(async move {
                let mut handler = Collect(handler_seen);
                let _ = ingest::run(&source, &options, shutdown, &status, &mut handler).await;
            }));
            watched.push((fault, seen));
        }

        let done = |fault: Fault, seen: &Seen| {
            let (kind, degraded) = expected(fault);
            if degraded {
                // Degraded, and a GOP's worth of frames since the fault.
                seen.statuses
                    .iter()
                    .any(|s| matches!(s, CameraStatus::Degraded { kind: k, .. } if *k == kind))
                    && seen.frames.len() as u64
                        > simcam::fault::FAULT_AFTER_FRAMES + 2 * SIM_GOP_FRAMES
            } else {
                seen.statuses.iter().any(|s| {
                    matches!(s, CameraStatus::Retrying { kind: k, consecutive_failures, .. }
                        if *k == kind && *consecutive_failures >= 2)
                })
            }
        };
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !watched
            .iter()
            .all(|(fault, seen)| done(*fault, &seen.lock().unwrap()))
        {
            if Instant::now() >= deadline {
                let missing: Vec<String> = watched
                    .iter()
                    .filter(|(fault, seen)| !done(*fault, &seen.lock().unwrap()))
                    .map(|(fault, seen)| {
                        let seen = seen.lock().unwrap();
                        let last = &seen.statuses[seen.statuses.len().saturating_sub(2)..];
                        format!(
                            "{fault:?}: {} frames, last statuses {last:?}",
                            seen.frames.len()
                        )
                    })
                    .collect();
                anyhow::bail!("faults not all seen in time: {missing:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        trigger.trigger();
        for task in tasks {
            task.await?;
        }

        for (fault, seen) in &watched {
            let seen = seen.lock().unwrap();
            let (kind, degraded) = expected(*fault);
            let reasons: Vec<String> = seen
                .statuses
                .iter()
                .filter(|s| s.reason() == Some(kind))
                .map(|s| format!("{s:?}"))
                .collect();
            assert!(!reasons.is_empty(), "{fault:?}: {:?}", seen.statuses);
            // Every status with a reason names the camera in its text.
            assert!(
                reasons
                    .iter()
                    .all(|r| r.contains(&format!("camera {fault:?}"))),
                "{fault:?}: {reasons:?}"
            );
            if degraded {
                assert!(
                    !seen
                        .statuses
                        .iter()
                        .any(|s| matches!(s, CameraStatus::Retrying { .. })),
                    "{fault:?} is worked around, not a failure: {:?}",
                    seen.statuses
                );
                assert!(seen.statuses.iter().any(CameraStatus::is_online));
                for pair in seen.frames.windows(2) {
                    let step = pair[1] - pair[0];
                    assert!(
                        step > -i64::from(TIMESCALE_90K) && step <= MAX_FORWARD_STEP_90K,
                        "{fault:?}: media time stepped {step}"
                    );
                }
            }
            if *fault == Fault::SpsChange {
                assert!(
                    seen.params >= 3,
                    "first, changed, restored: {}",
                    seen.params
                );
            }
            if *fault == Fault::Oversized {
                assert!(
                    reasons.iter().any(|r| r.contains("over the")),
                    "the frame size is named: {reasons:?}"
                );
            }
        }
        Ok(())
    })
}

/// The real box records a healthy camera and one camera per fault at once: every faulty camera
/// shows its reason in the log (retried with a growing delay, or degraded), the degraded ones
/// keep recording, every segment plays, and the healthy camera recorded every frame its camera
/// sent but for the GOP in flight at shutdown.
#[test]
fn faulty_cameras_do_not_disturb_a_healthy_one() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let store = work.path().join("store");
    // 12 slots (two minutes) per camera.
    init_test_store(&store, "96MiB")?;
    let healthy = SimCamera::start(&["--path", "ok"])?;
    let mut faulty = Vec::new();
    for fault in FAULTS {
        let mode = format!("{fault:?}");
        let flag = match fault {
            Fault::Silent => "silent",
            Fault::GarbageRtp => "garbage-rtp",
            Fault::BadSdp => "bad-sdp",
            Fault::Oversized => "oversized",
            Fault::TsJump => "ts-jump",
            Fault::TsBack => "ts-back",
            Fault::SpsChange => "sps-change",
        };
        faulty.push((fault, flag, mode, SimCamera::start(&["--fault", flag])?));
    }
    let mut cameras = vec![("good", healthy.url("ok"))];
    for (_, flag, _, camera) in &faulty {
        cameras.push((flag, camera.url("stream")));
    }
    let config = write_config(work.path(), &store, &cameras)?;
    let mut edgenvr = spawn_run(&config)?;

    for (fault, flag, _, _) in &faulty {
        let (kind, degraded) = expected(*fault);
        let reason = format!("reason={kind:?}");
        if degraded {
            wait_for_log(&edgenvr, &format!("{flag} degraded"), |log| {
                !camera_lines(log, flag, &[&reason]).is_empty()
            })?;
        } else {
            // Two failures in a row: retried, each time with the reason and the delay.
            wait_for_log(&edgenvr, &format!("{flag} retried"), |log| {
                !camera_lines(log, flag, &[&reason, "failures=2"]).is_empty()
            })?;
            let log = edgenvr.stderr();
            let delays: Vec<u64> = camera_lines(&log, flag, &[&reason, "retry_in_ms="])
                .iter()
                .filter_map(|line| {
                    line.split_once("retry_in_ms=")?
                        .1
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
                .collect();
            assert!(
                delays.len() >= 2 && delays.iter().all(|d| *d > 0),
                "{flag}: {delays:?}"
            );
        }
    }
    // The degraded cameras record past their fault: a few more GOPs after it.
    let past_fault = simcam::fault::FAULT_AFTER_FRAMES + 3 * SIM_GOP_FRAMES;
    let status = edgenvr.terminate(STEP_TIMEOUT)?;
    assert!(status.success(), "{status}");

    let listing = store_ls(&bins::edgenvr(), &store)?;
    // The box has gone: each camera's clients have left and logged what they were sent.
    let sent_to_box = |camera: &SimCamera| -> anyhow::Result<u64> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if let Some(&sent) = camera.frames_sent_per_client().last() {
                return Ok(sent);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no disconnect line:\n{}",
                camera.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let sent = sent_to_box(&healthy)?;
    let (frames, ranges) = recorded(&listing, "good");
    assert_eq!(ranges, 1, "one unbroken recording: {listing}");
    assert!(
        frames <= sent && sent - frames <= SIM_GOP_FRAMES,
        "the healthy camera sent {sent} frames and {frames} were recorded: {listing}"
    );
    for (fault, flag, _, camera) in &faulty {
        let (_, degraded) = expected(*fault);
        let (frames, _) = recorded(&listing, flag);
        if degraded {
            let sent = sent_to_box(camera)?;
            assert!(sent > past_fault, "{flag}: sent {sent}");
            // Frames the camera made undecodable (until the next key frame) and the GOP in flight
            // at shutdown are all that may be missing.
            let dropped = if *fault == Fault::SpsChange {
                SIM_GOP_FRAMES
            } else {
                0
            };
            assert!(
                frames <= sent && sent - frames <= SIM_GOP_FRAMES + dropped,
                "{flag}: sent {sent}, recorded {frames}: {listing}"
            );
        }
    }
    for segment in playable_segments(&store)? {
        assert!(segment.frames > 0, "{segment:?}");
    }
    for (_, _, _, camera) in faulty {
        assert!(camera.terminate());
    }
    assert!(healthy.terminate());
    Ok(())
}

/// gst-rtsp-server restarted `EDGENVR_FAULT_RESTARTS` times (default 3) under a recording box:
/// each time the box sees the camera end, retries with backoff and streams again by itself; a
/// healthy camera recording alongside keeps every frame, and every segment plays.
#[test]
fn rtsp_server_restarts_are_survived() -> anyhow::Result<()> {
    let restarts: usize = std::env::var("EDGENVR_FAULT_RESTARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let work = tempfile::tempdir()?;
    let clip = make_clip(work.path(), Codec::H264, 4)?;
    let mut server = RtspServer::start(&[("/cam", &clip)], None)?;
    let healthy = SimCamera::start(&["--path", "ok"])?;
    let store = work.path().join("store");
    // 20 restarts take about 6 minutes with the backoff capped at 30 s: 10 minutes per camera.
    init_test_store(&store, "128MiB")?;
    let config = write_config(
        work.path(),
        &store,
        &[
            ("good", healthy.url("ok")),
            ("gst", server.url("/cam", None)),
        ],
    )?;
    let mut edgenvr = spawn_run(&config)?;
    let started = Instant::now();
    for restart in 1..=restarts {
        wait_for_log(&edgenvr, "gst streaming", |log| {
            camera_lines(log, "gst", &["streaming"]).len() >= restart
        })?;
        let sent = server.frames_sent("/cam");
        server.wait_frames("/cam", sent + GOP_FRAMES as u64, STEP_TIMEOUT)?;
        server.kill();
        wait_for_log(&edgenvr, "gst retrying", |log| {
            camera_lines(log, "gst", &["retry_in_ms="]).len() >= restart
        })?;
        server = server.restart()?;
    }
    wait_for_log(&edgenvr, "gst streaming again", |log| {
        camera_lines(log, "gst", &["streaming"]).len() > restarts
    })?;
    eprintln!(
        "{restarts} restarts survived in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let status = edgenvr.terminate(STEP_TIMEOUT)?;
    assert!(status.success(), "{status}");

    let log = edgenvr.stderr();
    let ends = camera_lines(&log, "gst", &["retry_in_ms="]);
    assert!(
        ends.iter()
            .any(|l| l.contains("reason=Ended") || l.contains("reason=Stalled")),
        "the box saw the camera go: {ends:?}"
    );
    let listing = store_ls(&bins::edgenvr(), &store)?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let sent = loop {
        if let Some(&sent) = healthy.frames_sent_per_client().last() {
            break sent;
        }
        anyhow::ensure!(Instant::now() < deadline, "no disconnect line");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (frames, ranges) = recorded(&listing, "good");
    assert_eq!(ranges, 1, "{listing}");
    assert!(
        frames <= sent && sent - frames <= SIM_GOP_FRAMES,
        "sent {sent}, recorded {frames}"
    );
    let (gst_frames, gst_ranges) = recorded(&listing, "gst");
    assert!(gst_frames > 0 && gst_ranges > restarts / 2, "{listing}");
    for segment in playable_segments(&store)? {
        assert!(segment.frames > 0, "{segment:?}");
    }
    assert!(healthy.terminate());
    Ok(())
}
