//! Event recording end to end: the real `edgenvr run` binary records a camera served by the real
//! gst-rtsp-server in `mode = "events"`, a sim PIR is driven by the real `edgenvr sim set`
//! command, the state is read over the real TCP state port with nvrctl's client, and every event
//! is pulled with the real `nvrctl pull --event`.
//!
//! Shows: an idle events-mode camera writes nothing to the store, proven from outside the
//! process (`write_bytes` in /proc/PID/io and the slot files' hashes unchanged over the idle
//! period); four events — three spaced ones and one retriggered for several seconds whose
//! pre-roll lies in the previous event's post-roll and whose video spans three segments — are
//! each listed with their trigger, sensors and end, and each one's video starts at least
//! `pre_roll` before its trigger (within one GOP) and ends `post_roll` after its last clear
//! (within one GOP); events share slots instead of taking one each, so the 8-slot store never
//! wraps; every GOP written is listed (the close log line's counts); each pulled event plays
//! without an error and holds the frames and time span the listing gives; the state port shows
//! the PIR and the camera; a sensor on a missing GPIO chip is reported and the box records on.
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
use edgenvr_tests::edgenvr_box::{init_store, sim_set, spawn_run};
use edgenvr_tests::ffprobe::{count_video_frames, decode_errors};
use edgenvr_tests::nvrctl_cli::nvrctl;
use edgenvr_tests::process::{log_field, run, Process};
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
const TOKEN: &str = "events-test-token-0123456789";

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

/// The trigger and clear times of one event as the test drove it.
struct Fired {
    /// Before the first `sim set high`.
    first_high_ms: i64,
    /// After the last `sim set low`.
    last_low_ms: i64,
}

/// Drives the PIR: for each `(high_gops, low_gops)` in `pattern`, sets it high, lets
/// `high_gops` GOPs of frames pass, sets it low, and (except after the last) lets `low_gops`
/// pass. Waits for the `count`th "event started" after the first edge.
fn fire(
    edgenvr_box: &Process,
    server: &RtspServer,
    config: &Path,
    count: usize,
    pattern: &[(u64, u64)],
) -> Fired {
    let frames = |gops: u64| {
        let sent = server.frames_sent("/hall");
        server
            .wait_frames("/hall", sent + gops * u64::from(GOP_FRAMES), HANG_GUARD)
            .unwrap();
    };
    let first_high_ms = now_ms();
    for (n, (high, low)) in pattern.iter().enumerate() {
        sim_set(config, "pir-hall", "high").unwrap();
        if n == 0 {
            edgenvr_box
                .wait_for_lines("event started", count, HANG_GUARD)
                .unwrap();
        }
        frames(*high);
        sim_set(config, "pir-hall", "low").unwrap();
        if n + 1 < pattern.len() {
            frames(*low);
        }
    }
    Fired {
        first_high_ms,
        last_low_ms: now_ms(),
    }
}

/// A field of a JSON object as i64.
fn int(value: &serde_json::Value, name: &str) -> i64 {
    value[name]
        .as_i64()
        .unwrap_or_else(|| panic!("{name}: {value}"))
}

/// `key=N` from a log line.
fn logged(line: &str, key: &str) -> i64 {
    log_field(line, key).unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Duration of a file's video as ffprobe reads it, ms.
fn probe_duration_ms(path: &Path) -> i64 {
    let output = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let seconds: f64 = text.trim().parse().unwrap_or_else(|_| panic!("{text:?}"));
    (seconds * 1000.0).round() as i64
}

#[test]
fn four_pir_events_are_each_listed_and_pulled_whole_and_idle_writes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let clip = make_clip(work.path(), Codec::H264, 4).unwrap();
    let server = RtspServer::start(&[("/hall", &clip)], None).unwrap();
    let store = work.path().join("store");
    let edgenvr = bins::edgenvr();
    let store_arg = store.to_str().unwrap();
    // 8 slots of 256 KiB: about 6 GOPs of the ~40 KB/s test stream each, so the retriggered
    // event spans three segments while all four events fit without wrapping.
    init_store(&store, &["--size", "2MiB", "--slots", "8"]).unwrap();

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
[http]
listen = "127.0.0.1:0"
token = "{TOKEN}"
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

    let mut edgenvr_box = spawn_run(&config).unwrap();
    let state_addr = edgenvr_box.wait_for_listener("state", HANG_GUARD).unwrap();
    let http_addr = edgenvr_box.wait_for_listener("http", HANG_GUARD).unwrap();
    edgenvr_box
        .wait_for_listener("control", HANG_GUARD)
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

    // Event 1: motion for about a second, followed on the state port.
    let mut fired = Vec::new();
    sim_set(&config, "pir-hall", "high").unwrap();
    let first_high_ms = now_ms();
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
    sim_set(&config, "pir-hall", "low").unwrap();
    fired.push(Fired {
        first_high_ms: first_high_ms - 1_000, // `sim set` ran before the clock was read
        last_low_ms: now_ms(),
    });
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

    // Events 2 and 3, each after enough quiet for a whole pre-roll of new video.
    let quiet = |ended: usize| {
        edgenvr_box
            .wait_for_lines("event ended", ended, HANG_GUARD)
            .unwrap();
        let sent = server.frames_sent("/hall");
        server
            .wait_frames("/hall", sent + 4 * u64::from(GOP_FRAMES), HANG_GUARD)
            .unwrap();
    };
    quiet(1);
    fired.push(fire(&edgenvr_box, &server, &config, 2, &[(1, 0)]));
    quiet(2);
    fired.push(fire(&edgenvr_box, &server, &config, 3, &[(1, 0)]));
    // Event 4 right after event 3 ended (its pre-roll is event 3's post-roll), retriggered
    // twice within the post-roll: one event of several seconds.
    edgenvr_box
        .wait_for_lines("event ended", 3, HANG_GUARD)
        .unwrap();
    fired.push(fire(
        &edgenvr_box,
        &server,
        &config,
        4,
        &[(1, 2), (1, 2), (1, 0)],
    ));
    edgenvr_box
        .wait_for_lines("event ended", 4, HANG_GUARD)
        .unwrap();
    assert_eq!(
        edgenvr_box.stderr().matches("event started").count(),
        4,
        "the retriggers extended event 4 instead of starting new events"
    );

    // `nvrctl recordings` lists each event with an id to pull it by; pull them all while the
    // box runs.
    let listed = nvrctl(&["recordings", &http_addr, "--json"], Some(TOKEN)).unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let api: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let api_events = api["cameras"][0]["events"].as_array().unwrap().clone();
    assert_eq!(api_events.len(), 4, "{api}");
    let mut pulled = Vec::new();
    for event in &api_events {
        let id = event["id"].as_u64().unwrap().to_string();
        let output = work.path().join(format!("event-{id}.mp4"));
        let pull = nvrctl(
            &[
                "pull",
                &http_addr,
                "--event",
                &id,
                "-o",
                output.to_str().unwrap(),
            ],
            Some(TOKEN),
        )
        .unwrap();
        assert!(pull.status.success(), "pull --event {id}: {pull:?}");
        pulled.push(output);
    }
    let missing = nvrctl(
        &["pull", &http_addr, "--event", "999", "-o", "/dev/null"],
        Some(TOKEN),
    )
    .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no event 999"),
        "{missing:?}"
    );

    let exit = edgenvr_box.terminate(HANG_GUARD).unwrap();
    assert!(exit.success(), "edgenvr run exit: {exit:?}");
    // Nothing left silently: every GOP the writer accepted is listed (the store never wrapped).
    let closed = edgenvr_box
        .wait_for_line("recording closed", HANG_GUARD)
        .unwrap();
    let written = logged(&closed, "written_gops");
    assert_eq!(logged(&closed, "dropped_gops"), 0, "{closed}");
    assert_eq!(logged(&closed, "store_overwritten"), 0, "{closed}");
    assert_eq!(logged(&closed, "store_listed"), written, "{closed}");
    assert_eq!(logged(&closed, "store_written"), written, "{closed}");
    // Every GOP accounted for: the idle stretches' GOPs left the RAM pre-roll unrecorded.
    assert_eq!(logged(&closed, "unaccounted_gops"), 0, "{closed}");
    assert!(logged(&closed, "not_recorded_gops") > 0, "{closed}");
    assert_eq!(
        logged(&closed, "assembled_gops"),
        written + logged(&closed, "failed_gops") + logged(&closed, "not_recorded_gops"),
        "{closed}"
    );

    // `store ls` lists the four events with the right times, and agrees with the API.
    let (status, listing, err) = run(&edgenvr, &["store", "ls", store_arg, "--json"]).unwrap();
    assert!(status.success(), "store ls: {err}");
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let hall = listing["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["camera"] == "hall")
        .expect("camera hall listed");
    assert_eq!(hall["totals"]["fragments_listed"], written, "{hall}");
    let events = hall["events"].as_array().unwrap();
    assert_eq!(events.len(), 4, "{hall}");
    let fragments_listed: i64 = hall["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| int(r, "fragments"))
        .sum();
    assert_eq!(fragments_listed, written);
    for (n, ((event, fired), (api_event, clip))) in events
        .iter()
        .zip(&fired)
        .zip(api_events.iter().zip(&pulled))
        .enumerate()
    {
        let what = format!("event {}: {event}", n + 1);
        let (start, end) = (int(event, "start_wall_ms"), int(event, "end_wall_ms"));
        let (video_start, video_end) = (
            int(event, "video_start_wall_ms"),
            int(event, "video_end_wall_ms"),
        );
        assert_eq!(event["id"], api_event["id"], "{what}");
        assert_eq!(int(api_event, "start_ms"), video_start, "{what}");
        assert_eq!(int(api_event, "end_ms"), video_end, "{what}");
        assert_eq!(event["sensors"], serde_json::json!(["pir-hall"]), "{what}");
        assert!(
            (fired.first_high_ms..fired.last_low_ms).contains(&start),
            "{what}: trigger at {start}"
        );
        assert!(end >= fired.last_low_ms + POST_ROLL_MS - 1_000, "{what}");
        assert!(end <= fired.last_low_ms + POST_ROLL_MS + 500, "{what}");
        assert!(
            video_start <= start - PRE_ROLL_MS,
            "{what}: video starts only {} ms before the trigger",
            start - video_start
        );
        assert!(
            video_start > start - PRE_ROLL_MS - GOP_MS,
            "{what}: more than one GOP of extra pre-roll"
        );
        assert!(video_end >= end, "{what}: video ends before the event");
        assert!(video_end <= end + GOP_MS, "{what}: more than one GOP after");

        // The pulled clip holds exactly the listed frames, decodes cleanly, and spans the
        // pre-roll, the trigger and the post-roll.
        let frames = int(event, "frames") as u64;
        assert_eq!(count_video_frames(clip).unwrap(), frames, "{what}");
        assert_eq!(decode_errors(clip).unwrap(), "", "{what}");
        let duration_ms = probe_duration_ms(clip);
        assert!(
            duration_ms >= end - (start - PRE_ROLL_MS) - 100,
            "{what}: clip of {duration_ms} ms"
        );
        assert!(
            (duration_ms - (video_end - video_start)).abs() <= 100,
            "{what}: clip of {duration_ms} ms for video {video_start}..{video_end}"
        );
    }
    // Event 4 lasted several seconds and spans three segments; event 4's pre-roll came from
    // event 3's post-roll, so their video meets.
    let segments_of = |event: &serde_json::Value| event["segment_ids"].as_array().unwrap().len();
    assert!(segments_of(&events[3]) >= 3, "{}", events[3]);
    assert!(int(&events[3], "video_start_wall_ms") < int(&events[2], "video_end_wall_ms"));

    // The store's slot files play: every frame the store holds decodes without an error, and
    // the events share slots (fewer segments than events would need one each).
    let store_view = Store::open_read_only(&store).unwrap();
    let segments: Vec<_> = store_view
        .segments()
        .into_iter()
        .filter(|s| s.camera == "hall")
        .collect();
    assert!(segments.iter().all(|s| s.is_event()));
    let mut video_bytes = 0u64;
    let mut media_90k = 0u64;
    for segment in &segments {
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
         (320x240 H.264 test stream) in {} segments; the box's write_bytes for the first event: \
         {event_io}",
        video_bytes as f64 * 60.0 / seconds,
        segments.len(),
    );
}
