//! `edgenvr run` under a stand-in for systemd's notify socket, as the packaged `Type=notify` unit
//! with `WatchdogSec=` runs it: the test binds a datagram socket in a temp dir, passes it as
//! `NOTIFY_SOCKET` with a `WATCHDOG_USEC`, and reads what the box says — `READY=1` once its
//! camera task is started, `WATCHDOG=1` pings, and `STOPPING=1` on SIGTERM, then exit 0.
//!
//! The camera points at a closed local port: the box keeps retrying it, which is enough to be
//! "running" and needs no RTSP server.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use edgenvr_tests::bins;
use edgenvr_tests::process::{run, Process};

/// Bound on any single wait, so a box that never notifies fails instead of hanging the suite.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

fn recv(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("no notification within the wait limit");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn run_notifies_ready_feeds_the_watchdog_and_says_stopping() {
    let edgenvr = bins::edgenvr();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let (status, _, stderr) = run(
        &edgenvr,
        &["store", "init", store.to_str().unwrap(), "--size", "8MiB"],
    )
    .unwrap();
    assert!(status.success(), "store init: {stderr}");

    // A port nothing listens on (the discard port, unused on test machines): the camera task
    // starts and keeps reconnecting.
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndir = {:?}\n\n[[camera]]\nname = \"front\"\nurl = \"rtsp://127.0.0.1:9/stream\"\n",
            store.to_str().unwrap()
        ),
    )
    .unwrap();

    let notify_path = dir.path().join("notify.sock");
    let manager = UnixDatagram::bind(&notify_path).unwrap();
    manager.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let mut box_ = Process::spawn(
        &edgenvr,
        &["run", "--config", config.to_str().unwrap()],
        &[
            ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
            // 200 ms watchdog: a ping every 100 ms, so a few arrive quickly.
            ("WATCHDOG_USEC", "200000"),
        ],
    )
    .unwrap();

    assert_eq!(recv(&manager), "READY=1\nSTATUS=recording 1 camera(s)\n");
    for _ in 0..3 {
        assert_eq!(recv(&manager), "WATCHDOG=1\n");
    }
    box_.signal("TERM").unwrap();
    let stopping = loop {
        let message = recv(&manager);
        if message != "WATCHDOG=1\n" {
            break message;
        }
    };
    assert_eq!(
        stopping,
        "STOPPING=1\nSTATUS=stopping: closing recordings\n"
    );
    let status = box_.wait(WAIT_LIMIT).unwrap();
    assert!(status.success(), "exit {status}: {}", box_.stderr());
}
