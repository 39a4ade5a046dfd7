//! The state port against hostile clients, on the real box: `edgenvr run` recording the real
//! `edgenvr sim-camera` with a sim PIR and `[state] listen`, a well-behaved `nvrctl watch`
//! connected first, then garbage, a thousand idle sockets and a client that never reads. The box
//! must keep publishing to the watcher and keep recording, with bounded memory; with a low
//! descriptor limit it refuses clients with a clear log line and still records.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edgenvr_tests::bins;
use edgenvr_tests::edgenvr_box::{sim_set, BoxDir};
use edgenvr_tests::process::{run, Process};
use edgenvr_tests::watcher::Watcher;

/// Guards against a hang only.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Idle connections opened at once: what a scanner or a misbehaving client could hold open.
const IDLE_CLIENTS: usize = 1_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The end of the last recorded range of `camera`, Unix ms (read while the box runs).
fn recorded_until_ms(store: &Path, camera: &str) -> i64 {
    let store_arg = store.to_str().unwrap();
    let (status, listing, err) =
        run(&bins::edgenvr(), &["store", "ls", store_arg, "--json"]).unwrap();
    assert!(status.success(), "store ls: {err}");
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    listing["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["camera"] == camera)
        .flat_map(|c| c["ranges"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["end_wall_ms"].as_i64())
        .max()
        .unwrap_or(0)
}

/// Polls the store until `camera` has video recorded past `after_ms`.
fn wait_recorded_past(store: &Path, camera: &str, after_ms: i64) {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while recorded_until_ms(store, camera) <= after_ms {
        assert!(
            std::time::Instant::now() < deadline,
            "{camera} stopped recording"
        );
        // A fragment lands once per GOP (1 s for the sim camera's clip).
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

struct Site {
    dir: BoxDir,
    _camera: Process,
}

impl Site {
    /// A sim camera and a box config recording it in 2 s segments (so new slot files are
    /// opened often: what a descriptor shortage would break).
    fn new() -> Site {
        let camera = Process::spawn(
            &bins::edgenvr(),
            &["sim-camera", "--listen", "127.0.0.1:0"],
            &[],
        )
        .unwrap();
        let rtsp = camera.wait_for_listener("rtsp", HANG_GUARD).unwrap();
        let dir = BoxDir::new(
            "hostile",
            &["--size", "32MiB", "--slots", "16"],
            "segment = \"2s\"",
            &format!(
                "[[camera]]\nname = \"front\"\nurl = \"rtsp://{rtsp}/stream\"\n\
                 [state]\nlisten = \"127.0.0.1:0\"\n\
                 [[sensor]]\nname = \"pir\"\nkind = \"pir\"\nbackend = \"sim\"\ndebounce = \"1ms\"\n"
            ),
        );
        Site {
            dir,
            _camera: camera,
        }
    }

    fn store(&self) -> std::path::PathBuf {
        self.dir.store.clone()
    }

    /// `edgenvr run`, under `prlimit --nofile=N:N` when `nofile` is given.
    fn run_box(&self, nofile: Option<u32>) -> (Process, String) {
        let edgenvr = bins::edgenvr();
        let config = self.dir.config.to_str().unwrap();
        let env = [("RUST_LOG", "info")];
        let process = match nofile {
            None => Process::spawn(&edgenvr, &["run", "--config", config], &env),
            Some(limit) => {
                let limit = format!("--nofile={limit}:{limit}");
                let edgenvr = edgenvr.to_str().unwrap();
                Process::spawn(
                    Path::new("prlimit"),
                    &[&limit, edgenvr, "run", "--config", config],
                    &env,
                )
            }
        }
        .unwrap();
        let state = process.wait_for_listener("state", HANG_GUARD).unwrap();
        process.wait_for_listener("control", HANG_GUARD).unwrap();
        (process, state)
    }
}

/// Bytes a confused or hostile client might send: noise with delimiters in it, frames that
/// look like hellos, one frame far over the size limit.
fn garbage() -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..256 * 1024u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    // A valid-looking hello header and a run past any frame limit.
    bytes.extend_from_slice(&[0x01, 0x14, 0x02, 0x06, 0x67, 0x00]);
    bytes.extend(std::iter::repeat_n(0x55u8, 64 * 1024));
    bytes
}

#[test]
fn garbage_a_thousand_idle_clients_and_a_client_that_never_reads_leave_the_box_serving() {
    let site = Site::new();
    let (mut edgenvr_box, state) = site.run_box(None);
    let watch = Watcher::start(&["watch", &state]);
    watch.wait_for(HANG_GUARD, "front_recording", true.into());
    let rss_before = rss_kib(edgenvr_box.id());

    let mut noisy = TcpStream::connect(&state).unwrap();
    noisy.write_all(&garbage()).unwrap();
    let never_reads = TcpStream::connect(&state).unwrap();
    let flood_started = now_ms();
    let idle: Vec<TcpStream> = (0..IDLE_CLIENTS)
        .filter_map(|_| TcpStream::connect(&state).ok())
        .collect();
    assert_eq!(idle.len(), IDLE_CLIENTS, "the kernel took every connection");

    // The watcher connected first keeps getting changes...
    sim_set(&site.dir.config, "pir", "high").unwrap();
    watch.wait_for(HANG_GUARD, "pir", true.into());
    sim_set(&site.dir.config, "pir", "low").unwrap();
    watch.wait_for(HANG_GUARD, "pir", false.into());
    // ...the camera keeps recording...
    wait_recorded_past(&site.store(), "front", flood_started + 3_000);
    // ...and memory stays bounded: 64 clients served, the rest refused at once.
    let grown_kib = rss_kib(edgenvr_box.id()).saturating_sub(rss_before);
    eprintln!("box RSS {rss_before} KiB before the flood, +{grown_kib} KiB with {IDLE_CLIENTS} idle clients");
    assert!(grown_kib < 32 * 1024, "RSS grew by {grown_kib} KiB");
    // The refusals are counted, not logged one line each.
    let refusals = edgenvr_box
        .stderr()
        .lines()
        .filter(|l| l.contains("connection refused: all 64 client slots are taken"))
        .count();
    assert!((1..=5).contains(&refusals), "{refusals} refusal lines");

    drop((noisy, never_reads, idle));
    // A client connecting after the flood is served again.
    let late = Watcher::start(&["watch", &state]);
    late.wait_for(HANG_GUARD, "pir", false.into());
    let exit = edgenvr_box.terminate(HANG_GUARD).unwrap();
    assert!(exit.success(), "edgenvr run exit: {exit:?}");
}

#[test]
fn out_of_descriptors_the_box_refuses_clients_clearly_and_keeps_recording() {
    let site = Site::new();
    // 96 descriptors: the box, its camera and store need ~25; the state port may take clients
    // only while 64 stay free.
    let (mut edgenvr_box, state) = site.run_box(Some(96));
    let watch = Watcher::start(&["watch", &state]);
    watch.wait_for(HANG_GUARD, "front_recording", true.into());
    let flood_started = now_ms();
    let idle: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(&state).ok())
        .collect();
    edgenvr_box
        .wait_for_line(
            "file descriptors are left under the process's limit of 96 (ulimit -n)",
            HANG_GUARD,
        )
        .unwrap();
    // New segments open new slot files: recording goes on across several of them.
    wait_recorded_past(&site.store(), "front", flood_started + 5_000);
    sim_set(&site.dir.config, "pir", "high").unwrap();
    watch.wait_for(HANG_GUARD, "pir", true.into());
    drop(idle);
    let exit = edgenvr_box.terminate(HANG_GUARD).unwrap();
    assert!(exit.success(), "edgenvr run exit: {exit:?}");
    assert!(
        !edgenvr_box.stderr().contains("writing a GOP failed"),
        "no write failed"
    );
}
