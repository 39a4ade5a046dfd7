//! Protocol versions meeting: this nvrctl against a version 1 box, and a version 1 nvrctl
//! against this (version 2) box. Both must either understand each other or say which version
//! each speaks.
//!
//! The version 1 box is its own bytes: `fixtures/state-v1-session.bin` was captured from the
//! state port of `edgenvr run` built at commit [`V1_COMMIT`] (box "v1-box", one sim PIR
//! `pir-hall` and the storage sensors; a raw socket read the session while `edgenvr sim set`
//! drove the PIR high, low, high). A small server here replays it as that box did: the whole
//! session at once, then silence, reading and dropping what the client sends. The version 1
//! nvrctl is the real one, built from [`V1_COMMIT`] (see `bins::old_nvrctl`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgenvr_tests::bins;
use edgenvr_tests::edgenvr_box::{spawn_run, BoxDir};

/// The last commit whose box and nvrctl speak protocol version 1.
const V1_COMMIT: &str = "ddc1cfb741589ff3e12e1c89d825f5f4655cfb68";

/// Guards against a hang only.
const HANG_GUARD: Duration = Duration::from_secs(60);

const V1_SESSION: &[u8] = include_bytes!("../fixtures/state-v1-session.bin");

/// Serves `session` to every client, as a version 1 box: writes it, then reads and drops
/// until the client leaves. Returns the port.
fn replay(session: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.write_all(session);
                let mut sink = [0u8; 512];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

fn nvrctl(cache: &std::path::Path) -> Command {
    let mut command = Command::new(bins::nvrctl());
    command.env("XDG_CACHE_HOME", cache);
    command
}

#[test]
fn this_nvrctl_reads_a_version_1_box() {
    let cache = tempfile::tempdir().unwrap();
    let port = replay(V1_SESSION);
    let target = format!("127.0.0.1:{port}");

    let state = nvrctl(cache.path())
        .args(["state", &target, "--json"])
        .output()
        .unwrap();
    assert!(
        state.status.success(),
        "{}",
        String::from_utf8_lossy(&state.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(json["box"], "v1-box");
    let sensors = json["sensors"].as_array().unwrap();
    let pir = sensors.iter().find(|s| s["name"] == "pir-hall").unwrap();
    // The replay sends the whole capture at once: the snapshot and the edges after it arrive
    // together, and the state shows the last edge.
    assert_eq!(
        (&pir["role"], &pir["value"]),
        (&"sensor".into(), &true.into())
    );
    let used = sensors
        .iter()
        .find(|s| s["name"] == "storage_used")
        .unwrap();
    assert_eq!(used["unit"], "%");

    // Live: the snapshot, then the three edges the capture holds, in order.
    let mut watch = nvrctl(cache.path())
        .args(["watch", &target, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut edges = Vec::new();
    let deadline = Instant::now() + HANG_GUARD;
    for line in lines {
        let json: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if json["event"] == "change" && json["sensor"] == "pir-hall" {
            edges.push(json["value"].as_bool().unwrap());
        }
        if edges.len() == 3 || Instant::now() > deadline {
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(edges, [true, false, true]);
    // A version 1 hello names no catalog: nothing is cached for it.
    assert!(!cache.path().join("nvrctl/catalogs").exists());
}

#[test]
fn a_version_1_nvrctl_says_which_versions_this_box_and_it_speak() {
    let old = bins::old_nvrctl(V1_COMMIT, "v1").expect("build the version 1 nvrctl");
    let dir = BoxDir::small("v2-box", "[state]\nlisten = \"127.0.0.1:0\"\n");
    let mut edgenvr_box = spawn_run(&dir.config).unwrap();
    let addr = edgenvr_box.wait_for_listener("state", HANG_GUARD).unwrap();
    let state = Command::new(&old).args(["state", &addr]).output().unwrap();
    let stderr = String::from_utf8_lossy(&state.stderr);
    assert!(
        !state.status.success(),
        "the old nvrctl cannot show a v2 box"
    );
    assert!(
        stderr.contains("protocol version 2") && stderr.contains("version 1"),
        "it says which versions each side speaks: {stderr}"
    );
    // And this nvrctl reads the same box.
    let cache = tempfile::tempdir().unwrap();
    let now = nvrctl(cache.path())
        .args(["state", &addr, "--json"])
        .output()
        .unwrap();
    assert!(
        now.status.success(),
        "{}",
        String::from_utf8_lossy(&now.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&now.stdout).unwrap();
    assert_eq!(json["box"], "v2-box");
    let exit = edgenvr_box.terminate(HANG_GUARD).unwrap();
    assert!(exit.success());
}
