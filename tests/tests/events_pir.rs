//! Event recording end to end: the real `edgenvr run` binary records a camera served by the real
//! gst-rtsp-server in `mode = "events"`, a sim PIR is driven by the real `edgenvr sim set`
//! command, and the state is read over the real TCP state port with nvrctl's client.
//!
//! Shows: an idle events-mode camera writes nothing to the store, proven from outside the
//! process (`write_bytes` in /proc/PID/io and the slot files' hashes unchanged over the idle
//! period); a PIR edge makes one event whose video starts at least `pre_roll` before the trigger
//! (within one GOP) and ends `post_roll` after the clear (within one GOP); `edgenvr store ls`
//! lists it; ffmpeg decodes it without an error; the state port shows the PIR and the camera; a
//! sensor on a missing GPIO chip is reported and the box records on without it.
//! Every wait is for an event (a log line, frames sent by the server, a state change); time
//! limits only guard against a hang. It also prints the bytes per minute of the test stream that
//! the README's events-vs-continuous figure is scaled from.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edgenvr::store::Store;
use edgenvr_tests::bins;
use edgenvr_tests::clips::{make_clip, Codec, FPS, GOP_FRAMES};
use edgenvr_tests::ffprobe::{count_video_frames, decode_errors};
use edgenvr_tests::process::{run, Process};
use edgenvr_tests::rtsp_server::RtspServer;
use nvrctl::client::StateConnection;
use nvrctl::view::SensorValue as SeenValue;

/// Guards against a hang only.
const HANG_GUARD: Duration = Duration::from_secs(30);
/// The camera's pre-roll and post-roll (as in the config below).
const PRE_ROLL_MS: i64 = 2_000;
const POST_ROLL_MS: i64 = 3_000;
/// One GOP of the test clips (a key frame a second).
const GOP_MS: i64 = GOP_FRAMES as i64 * 1000 / FPS as i64;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `write_bytes` of /proc/PID/io: bytes this process caused to be sent to the storage layer.
fn write_bytes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("read /proc/PID/io");
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("write_bytes in /proc/PID/io")
}

/// A hash of every slot file's contents, by path.
fn hash_slots(store: &Path) -> Vec<(PathBuf, u64)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(store.join("slots"))
        .expect("slots dir")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let mut hasher = DefaultHasher::new();
            std::fs::read(&path).expect("read slot").hash(&mut hasher);
            (path, hasher.finish())
        })
        .collect()
}

fn sim_set(config: &Path, level: &str) {
    let (status, out, err) = run(
        &bins::edgenvr(),
        &[
            "sim",
            "set",
            "pir-hall",
            level,
            "--config",
            config.to_str().expect("utf-8 path"),
        ],
    )
    .expect("edgenvr sim set");
    assert!(status.success(), "sim set {level}: {out}{err}");
}

/// Reads the state port until `want(sensor name → value)` holds.
fn wait_state(
    connection: &mut StateConnection,
    what: &str,
    want: impl Fn(&dyn Fn(&str) -> Option<SeenValue>) -> bool,
) {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        let view = connection.view();
        let value_of = |name: &str| {
            view.sensors
                .values()
                .find(|s| s.name == name)
                .and_then(|s| s.value.as_ref())
                .map(|(value, _)| value.clone())
        };
        if view.snapshot_complete && want(&value_of) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the state port never showed {what}"
        );
        connection.read_updates().expect("a healthy state session");
    }
}

#[test]
fn a_sim_pir_edge_records_one_event_with_pre_and_post_roll_and_idle_writes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let clip = make_clip(work.path(), Codec::H264, 4).unwrap();
    let server = RtspServer::start(&[("/hall", &clip)], None).unwrap();
    let store = work.path().join("store");
    let edgenvr = bins::edgenvr();
    let store_arg = store.to_str().unwrap();
    let (status, out, err) = run(
        &edgenvr,
        &[
            "store", "init", store_arg, "--size", "16MiB", "--slots", "8",
        ],
    )
    .unwrap();
    assert!(status.success(), "store init: {out}{err}");

    let config = work.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[box]
name = "test-box"
[storage]
dir = "{store}"
segment = "10s"
sync_interval = "1s"
[state]
listen = "127.0.0.1:0"
[control]
socket = "{socket}"
[[sensor]]
name = "pir-hall"
kind = "pir"
backend = "sim"
debounce = "50ms"
[[sensor]]
name = "pir-porch"
kind = "pir"
backend = "gpiocdev"
chip = "gpiochip9"
line = 4
[[camera]]
name = "hall"
url = "{url}"
mode = "events"
pre_roll = "2s"
post_roll = "3s"
triggers = ["pir-hall"]
"#,
            store = store.display(),
            socket = work.path().join("control.sock").display(),
            url = server.url("/hall", None),
        ),
    )
    .unwrap();
    let (status, out, err) = run(
        &edgenvr,
        &["check-config", "--config", config.to_str().unwrap()],
    )
    .unwrap();
    assert!(status.success(), "check-config: {out}{err}");

    let mut edgenvr_box = Process::spawn(
        &edgenvr,
        &["run", "--config", config.to_str().unwrap()],
        &[("RUST_LOG", "info")],
    )
    .unwrap();
    let state_line = edgenvr_box
        .wait_for_line("listening state ", HANG_GUARD)
        .unwrap();
    let state_addr = state_line
        .split("listening state ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    edgenvr_box
        .wait_for_line("listening control ", HANG_GUARD)
        .unwrap();
    // A sensor whose pin cannot be opened is named in the log and left out; the box runs on.
    edgenvr_box
        .wait_for_line(
            "sensor \"pir-porch\": cannot open /dev/gpiochip9 line 4",
            HANG_GUARD,
        )
        .unwrap();
    edgenvr_box.wait_for_line("streaming", HANG_GUARD).unwrap();
    // Enough stream for a full pre-roll (two GOPs) and then some.
    let sent = server.frames_sent("/hall");
    server
        .wait_frames("/hall", sent + 4 * u64::from(GOP_FRAMES), HANG_GUARD)
        .unwrap();

    // Idle: four more seconds of video arrive and nothing reaches the store.
    let pid = edgenvr_box.id();
    let idle_io = write_bytes(pid);
    let idle_slots = hash_slots(&store);
    let sent = server.frames_sent("/hall");
    server
        .wait_frames("/hall", sent + 4 * u64::from(GOP_FRAMES), HANG_GUARD)
        .unwrap();
    assert_eq!(
        write_bytes(pid),
        idle_io,
        "an idle events-mode camera wrote to storage"
    );
    assert_eq!(
        hash_slots(&store),
        idle_slots,
        "slot files changed while idle"
    );

    // The state port shows the camera online and the PIR quiet.
    let mut state = StateConnection::open(&state_addr).unwrap();
    wait_state(&mut state, "hall online, pir-hall off", |value| {
        value("hall_online") == Some(SeenValue::Binary(true))
            && value("pir-hall") == Some(SeenValue::Binary(false))
            && value("hall_recording") == Some(SeenValue::Binary(false))
    });

    // Motion for about a second.
    let high_ms = now_ms();
    sim_set(&config, "high");
    wait_state(&mut state, "pir-hall on", |value| {
        value("pir-hall") == Some(SeenValue::Binary(true))
    });
    edgenvr_box
        .wait_for_line("event started", HANG_GUARD)
        .unwrap();
    wait_state(&mut state, "hall recording", |value| {
        value("hall_recording") == Some(SeenValue::Binary(true))
    });
    let sent = server.frames_sent("/hall");
    server
        .wait_frames("/hall", sent + u64::from(GOP_FRAMES), HANG_GUARD)
        .unwrap();
    let low_ms = now_ms();
    sim_set(&config, "low");
    wait_state(&mut state, "pir-hall off again", |value| {
        value("pir-hall") == Some(SeenValue::Binary(false))
    });
    edgenvr_box
        .wait_for_line("event ended", HANG_GUARD)
        .unwrap();
    wait_state(&mut state, "hall no longer recording", |value| {
        value("hall_recording") == Some(SeenValue::Binary(false))
    });
    let event_io = write_bytes(pid) - idle_io;
    assert!(
        event_io > 0,
        "the event's writes show in write_bytes (so the idle check could have seen writes)"
    );
    let exit = edgenvr_box.terminate(HANG_GUARD).unwrap();
    assert!(exit.success(), "edgenvr run exit: {exit:?}");

    // `store ls` lists exactly one event with the right times.
    let (status, listing, err) = run(&edgenvr, &["store", "ls", store_arg, "--json"]).unwrap();
    assert!(status.success(), "store ls: {err}");
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let hall = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["camera"] == "hall")
        .expect("camera hall listed");
    let events = hall["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{hall}");
    let event = &events[0];
    let field = |name: &str| {
        event[name]
            .as_i64()
            .unwrap_or_else(|| panic!("{name}: {event}"))
    };
    let (start, end) = (field("start_wall_ms"), field("end_wall_ms"));
    let (video_start, video_end) = (field("video_start_wall_ms"), field("video_end_wall_ms"));
    assert_eq!(event["sensors"], serde_json::json!(["pir-hall"]));
    assert!(
        (high_ms..low_ms).contains(&start),
        "trigger at {start}, set high at {high_ms}"
    );
    assert!(
        end >= low_ms + POST_ROLL_MS,
        "end {end}, clear after {low_ms}"
    );
    assert!(
        video_start <= start - PRE_ROLL_MS,
        "video starts {} ms before the trigger",
        start - video_start
    );
    assert!(
        video_start > start - PRE_ROLL_MS - GOP_MS,
        "more than one GOP of extra pre-roll: {} ms",
        start - video_start
    );
    assert!(
        video_end >= end,
        "video ends {} ms before the event",
        end - video_end
    );
    assert!(
        video_end <= end + GOP_MS,
        "more than one GOP after the post-roll: {} ms",
        video_end - end
    );

    // The video plays: every frame the store holds decodes without an error.
    let store_view = Store::open_read_only(&store).unwrap();
    let segments: Vec<_> = store_view
        .segments()
        .into_iter()
        .filter(|s| s.camera == "hall")
        .collect();
    assert!(!segments.is_empty());
    let mut video_bytes = 0u64;
    let mut media_90k = 0u64;
    for segment in &segments {
        assert!(
            segment.event.is_some(),
            "a non-event segment in events mode"
        );
        let frames: u64 = segment
            .fragments
            .iter()
            .map(|f| u64::from(f.frame_count))
            .sum();
        assert_eq!(count_video_frames(&segment.path).unwrap(), frames);
        assert_eq!(decode_errors(&segment.path).unwrap(), "");
        video_bytes += segment
            .fragments
            .iter()
            .map(|f| u64::from(f.body_len))
            .sum::<u64>();
        media_90k += segment.media_duration_90k();
    }
    // The measurement the README scales: stored bytes per minute of this stream.
    let seconds = media_90k as f64 / 90_000.0;
    eprintln!(
        "measured: {video_bytes} bytes of fragments for {seconds:.1} s of video = {:.0} bytes/min \
         (320x240 H.264 test stream); the box's write_bytes for the event: {event_io}",
        video_bytes as f64 * 60.0 / seconds,
    );
}
