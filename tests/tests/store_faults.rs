//! Storage faults under the real box (`edgenvr run`, a continuous camera `front` and an
//! events-mode camera `back` from the test RTSP server): the store's directory renamed away and
//! back, its file system lazily unmounted (the mount point underneath shows) and mounted again,
//! the file system filled up, and a disk whose writes fail with EIO. Each outage shows in the
//! state frames (`storage_status` as `nvrctl watch` reads it, and the camera no longer
//! recording), nothing is created where the store was, the cameras stay connected (pre-roll
//! keeps running in RAM: an event triggered as the store comes back has its pre-roll), and
//! recording resumes by itself once the store is back. The close line counts the outages and
//! accounts for every GOP; `store fsck` passes and everything listed decodes.
//!
//! Needs root: an ext4 loop device, and FUSE (`scripts/faulty-fs.py`, Debian's python3-fusepy)
//! for the failing disk.

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgenvr::store::Store;
use edgenvr_tests::bins::workspace_root;
use edgenvr_tests::crash::{
    check_after_crash, crash_box_config, now_ms, test_camera, Crash, LoopDisk,
};
use edgenvr_tests::edgenvr_box::{init_store, sim_set, spawn_run};
use edgenvr_tests::process::{log_field, Process};
use edgenvr_tests::rtsp_server::RtspServer;
use edgenvr_tests::watcher::Watcher;
use serde_json::json;

const GUARD: Duration = Duration::from_secs(60);
const STORE_ARGS: [&str; 4] = ["--size", "2MiB", "--slots", "8"];
const STATE: &str = "[state]\nlisten = \"127.0.0.1:0\"\n";

/// Waits (a hang guard, not a timing assertion) until camera `camera` has a fragment that starts
/// at or after `after_ms`: its recording resumed.
fn wait_recorded_after(store: &Path, camera: &str, after_ms: i64) {
    let deadline = std::time::Instant::now() + GUARD;
    loop {
        let listed = Store::open_read_only(store).map(|s| s.segments());
        if listed.is_ok_and(|segments| {
            segments
                .iter()
                .filter(|s| s.camera == camera)
                .flat_map(|s| &s.fragments)
                .any(|f| f.wall_ms >= after_ms)
        }) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{camera}: nothing recorded after {after_ms}"
        );
        // The listing is a scan of the store: a few times a second is plenty.
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Starts the box recording `server` into `store`; returns once both cameras stream, `nvrctl
/// watch` follows its state and `front` has recorded.
fn start_box(work: &Path, store: &Path, server: &RtspServer) -> (PathBuf, Process, Watcher) {
    let config = crash_box_config(work, store, &server.url("/cam", None), STATE).unwrap();
    let edgenvr = spawn_run(&config).unwrap();
    let state = edgenvr.wait_for_listener("state", GUARD).unwrap();
    edgenvr.wait_for_lines("streaming", 2, GUARD).unwrap();
    let watch = Watcher::start(&["watch", &state]);
    wait_recorded_after(store, "front", now_ms());
    (config, edgenvr, watch)
}

/// The close line of `camera`, after the box exited.
fn close_line(edgenvr: &Process, camera: &str) -> String {
    edgenvr
        .stderr()
        .lines()
        .find(|l| l.contains("recording closed") && l.contains(&format!("camera=\"{camera}\"")))
        .unwrap_or_else(|| panic!("no close line for {camera}"))
        .to_owned()
}

fn field(line: &str, key: &str) -> i64 {
    log_field(line, key).unwrap_or_else(|| panic!("no {key}= in {line}"))
}

#[test]
fn a_store_that_vanishes_fills_up_and_comes_back_is_reported_and_recording_resumes() {
    let work = tempfile::tempdir().unwrap();
    let server = test_camera(work.path()).unwrap();
    let disk = LoopDisk::new(work.path(), 32).expect("a loop device (run as root)");
    let store = disk.mount.join("store");
    std::fs::create_dir(&store).unwrap();
    init_store(&store, &STORE_ARGS).unwrap();
    let (config, mut edgenvr, watch) = start_box(work.path(), &store, &server);

    // The directory renamed away: missing, the camera stops recording, nothing is created
    // where the store was; renamed back: ok, and recording resumes.
    let away = disk.mount.join("away");
    std::fs::rename(&store, &away).unwrap();
    watch.wait_for_all(
        GUARD,
        &[
            ("storage_status", json!("missing")),
            ("front_recording", json!(false)),
        ],
    );
    assert!(!store.exists(), "something was created where the store was");
    std::fs::rename(&away, &store).unwrap();
    watch.wait_for_all(
        GUARD,
        &[
            ("storage_status", json!("ok")),
            ("front_recording", json!(true)),
        ],
    );
    // The events camera's pre-roll kept running in RAM through the outage: an event triggered
    // now starts with video from before the trigger.
    let trigger_ms = now_ms();
    sim_set(&config, "pir", "high").unwrap();
    wait_recorded_after(&store, "front", now_ms());
    sim_set(&config, "pir", "low").unwrap();

    // The file system lazily unmounted: the mount point underneath shows, and must stay empty.
    disk.unmount_lazily().unwrap();
    watch.wait_for_all(
        GUARD,
        &[
            ("storage_status", json!("missing")),
            ("front_recording", json!(false)),
        ],
    );
    let underneath: Vec<_> = std::fs::read_dir(&disk.mount).unwrap().collect();
    assert!(
        underneath.is_empty(),
        "written to the disk underneath: {underneath:?}"
    );
    disk.mount_again().unwrap();
    watch.wait_for(GUARD, "storage_status", json!("ok"));
    let back_ms = now_ms();
    wait_recorded_after(&store, "front", back_ms);

    // The file system filled up: preallocated slots need no space, so recording goes on and
    // the store stays ok.
    let filler = disk.mount.join("filler");
    let (status, out, err) = edgenvr_tests::process::run(
        Path::new("dd"),
        &["if=/dev/zero", &format!("of={}", filler.display()), "bs=1M"],
    )
    .unwrap();
    assert!(
        !status.success() && err.contains("No space left"),
        "{out}{err}"
    );
    let full_ms = now_ms();
    wait_recorded_after(&store, "front", full_ms);
    std::fs::remove_file(&filler).unwrap();

    let exit = edgenvr.terminate(GUARD).unwrap();
    assert!(exit.success(), "{exit:?}");
    let front = close_line(&edgenvr, "front");
    assert_eq!(field(&front, "store_outages"), 2, "{front}");
    assert_eq!(field(&front, "unaccounted_gops"), 0, "{front}");
    assert!(field(&front, "failed_gops") > 0, "{front}");
    assert!(
        front.contains("store_status=\"ok\"") || front.contains("store_status=ok"),
        "{front}"
    );
    let back = close_line(&edgenvr, "back");
    assert_eq!(field(&back, "unaccounted_gops"), 0, "{back}");

    // The event has its whole pre-roll (2 s, from the key frame at or before it).
    let store_view = Store::open_read_only(&store).unwrap();
    let events: Vec<_> = store_view
        .recordings()
        .into_iter()
        .filter(|c| c.camera == "back")
        .flat_map(|c| c.events)
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert!(event.start_wall_ms >= trigger_ms, "{event:?}");
    assert_eq!(event.video_from_wall_ms, event.start_wall_ms - 2000);
    assert!(
        event.video_start_wall_ms <= event.video_from_wall_ms,
        "the event's video starts after its pre-roll: {event:?}"
    );
    drop(store_view);
    check_after_crash(&store, &[], Crash::Kill, now_ms()).unwrap();
}

#[test]
fn a_disk_whose_writes_fail_with_eio_is_reported_and_recording_resumes_when_it_heals() {
    let work = tempfile::tempdir().unwrap();
    let server = test_camera(work.path()).unwrap();
    let backing = work.path().join("backing");
    init_store(&backing, &STORE_ARGS).unwrap();
    let store = work.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let fail = work.path().join("fail");
    let script = workspace_root().join("scripts/faulty-fs.py");
    let args = [
        script.to_str().unwrap(),
        backing.to_str().unwrap(),
        store.to_str().unwrap(),
        fail.to_str().unwrap(),
    ];
    let mut fuse = Process::spawn(Path::new("/usr/bin/python3"), &args, &[]).unwrap();
    fuse.wait_for_line("mounted", GUARD)
        .expect("a FUSE mount (root, python3-fusepy)");
    let unmount = || {
        let _ = edgenvr_tests::process::run(Path::new("umount"), &[store.to_str().unwrap()]);
    };

    let (_, mut edgenvr, watch) = start_box(work.path(), &store, &server);

    std::fs::write(&fail, "").unwrap();
    watch.wait_for_all(
        GUARD,
        &[
            ("storage_status", json!("io_error")),
            ("front_recording", json!(false)),
        ],
    );
    std::fs::remove_file(&fail).unwrap();
    watch.wait_for(GUARD, "storage_status", json!("ok"));
    wait_recorded_after(&store, "front", now_ms());

    let exit = edgenvr.terminate(GUARD).unwrap();
    assert!(exit.success(), "{exit:?}");
    let front = close_line(&edgenvr, "front");
    assert_eq!(field(&front, "store_outages"), 1, "{front}");
    assert_eq!(field(&front, "unaccounted_gops"), 0, "{front}");
    unmount();
    fuse.wait(GUARD).unwrap();
    check_after_crash(&backing, &[], Crash::Kill, now_ms()).unwrap();
}
