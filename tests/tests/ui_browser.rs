//! The page in a real browser: headless Chromium (Debian's `chromium`, driven over WebDriver)
//! against the real `edgenvr run`, which records the real gst-rtsp-server with two cameras — one
//! continuous, one in events mode triggered by a sim PIR driven with the real `edgenvr sim set` —
//! and has a sim light output.
//!
//! Shows: the page sends to the login; a wrong token is refused (401, the note shown, no
//! access); the right one opens the page; each camera's timeline shows its recorded range and
//! the events-mode camera's two PIR events, marked with the sensor, and the event list has them;
//! clicking an event plays it from its pre-roll (the `<video>`'s currentTime advances, no error)
//! and playback runs on across the gap into the next event's video; clicking a moment on the
//! continuous camera's timeline plays from that moment, from a clip that starts at the key frame
//! before it; a PIR edge reaches the live panel (its latency from the box's own change time is
//! printed); the switch of a sim light turns the pin on and off (read back with `edgenvr sim
//! get`) and the panel shows it; the page fits a phone's width; the page breaks none of its
//! Content-Security-Policy. Screenshots of the timeline
//! and of playback go to `target/ui-screenshots/`. Waits are for events (log lines, frames sent,
//! conditions in the page); time limits only guard against a hang.

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgenvr_tests::bins::workspace_root;
use edgenvr_tests::clips::{make_clip, Codec, GOP_FRAMES};
use edgenvr_tests::edgenvr_box::{sim_set, spawn_run, wait_for_level, BoxDir};
use edgenvr_tests::page::{int, log_in, PLAYER_STATE};
use edgenvr_tests::process::Process;
use edgenvr_tests::rtsp_server::RtspServer;
use edgenvr_tests::webdriver::Browser;
use serde_json::Value;

/// Guards against a hang only.
const HANG_GUARD: Duration = Duration::from_secs(30);
const TOKEN: &str = "ui-test-token-0123456789";
/// One GOP of the test clips (a key frame a second).
const GOP_MS: i64 = 1_000;

/// Where the screenshots go (outside git; the README's picture is a copy of one).
fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("ui-screenshots")
}

/// The box: `front` continuous, `hall` in events mode on the sim PIR, a sim light, the page.
fn box_dir(url: &str) -> BoxDir {
    BoxDir::new(
        "ui-test",
        &["--size", "4MiB", "--slots", "8"],
        "sync_interval = \"1s\"",
        &format!(
            r#"
[http]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[[sensor]]
name = "pir-hall"
kind = "pir"
backend = "sim"
debounce = "50ms"
[[output]]
name = "light-porch"
backend = "sim"
[[camera]]
name = "front"
url = "{url}"
[[camera]]
name = "hall"
url = "{url}"
mode = "events"
pre_roll = "2s"
post_roll = "2s"
triggers = ["pir-hall"]
"#
        ),
    )
}

/// Waits for `gops` more GOPs of the stream to be sent.
fn let_gops_pass(server: &RtspServer, gops: u64) {
    let sent = server.frames_sent("/cam");
    server
        .wait_frames("/cam", sent + gops * u64::from(GOP_FRAMES), HANG_GUARD)
        .unwrap();
}

/// One PIR event: high for a GOP, then low; returns once the box logged its end (post-roll).
fn pir_event(edgenvr_box: &Process, server: &RtspServer, config: &Path, nth: usize) {
    sim_set(config, "pir-hall", "high").unwrap();
    edgenvr_box
        .wait_for_lines("event started", nth, HANG_GUARD)
        .unwrap();
    let_gops_pass(server, 1);
    sim_set(config, "pir-hall", "low").unwrap();
    edgenvr_box
        .wait_for_lines("event ended", nth, HANG_GUARD)
        .unwrap();
}

/// Waits until the player shows `camera` playing with its time advancing by `advance_s` past
/// where it was first seen; fails on a media error. Returns the state when it first played.
fn wait_playing(browser: &Browser, camera: &str, advance_s: f64) -> Value {
    let started = browser
        .wait_for(
            &format!("{camera} to play"),
            &format!(
                "(() => {{ const s = {PLAYER_STATE}; \
                 if (s.error || s.note) return s; \
                 return s.camera === '{camera}' && !s.paused && s.time > 0 ? s : null; }})()"
            ),
            HANG_GUARD,
        )
        .unwrap();
    assert!(
        started["error"].is_null() && started["note"].is_null(),
        "the player reports an error: {started}"
    );
    let from = started["time"].as_f64().unwrap();
    let advanced = browser
        .wait_for(
            "currentTime to advance",
            &format!(
                "(() => {{ const s = {PLAYER_STATE}; \
                 return s.error || s.note || s.time >= {from} + {advance_s} ? s : null; }})()"
            ),
            HANG_GUARD,
        )
        .unwrap();
    assert!(
        advanced["error"].is_null() && advanced["note"].is_null(),
        "the player reports an error: {advanced}"
    );
    started
}

#[test]
fn the_page_logs_in_shows_the_timeline_plays_events_and_moments_and_follows_live_state() {
    let work = tempfile::tempdir().unwrap();
    let clip = make_clip(work.path(), Codec::H264, 10).unwrap();
    let server = RtspServer::start(&[("/cam", &clip)], None).unwrap();
    let the_box = box_dir(&server.url("/cam", None));
    let config = the_box.config.clone();

    // The browser starts while the box does (a cold Chromium takes a few seconds).
    let browser = std::thread::spawn(|| Browser::start(1280, 1000));
    let edgenvr_box = spawn_run(&config).unwrap();
    let http = edgenvr_box.wait_for_listener("http", HANG_GUARD).unwrap();
    edgenvr_box
        .wait_for_listener("control", HANG_GUARD)
        .unwrap();
    edgenvr_box.wait_for_line("streaming", HANG_GUARD).unwrap();
    let base = format!("http://{http}");
    let browser = browser.join().unwrap().unwrap();

    // Two PIR events on the hall camera, with more quiet between them than pre- and post-roll,
    // so its timeline has two ranges and a gap; meanwhile `front` records continuously.
    let_gops_pass(&server, 3);
    pir_event(&edgenvr_box, &server, &config, 1);
    let_gops_pass(&server, 5);
    pir_event(&edgenvr_box, &server, &config, 2);

    // Not logged in: the page sends to the login form.
    browser.goto(&format!("{base}/")).unwrap();
    assert!(browser.current_url().unwrap().ends_with("/login"));

    // A wrong token is refused: the form again with its note, and still no access.
    let field = browser.find("#token").unwrap();
    browser.type_text(&field, "not-the-token-at-all").unwrap();
    browser
        .click(&browser.find("button[type=submit]").unwrap())
        .unwrap();
    browser
        .wait_for(
            "the refusal note",
            "document.body.classList.contains('refused') && \
             getComputedStyle(document.getElementById('refused')).display !== 'none'",
            HANG_GUARD,
        )
        .unwrap();
    let status = browser
        .execute_async(
            "fetch('/api/recordings').then(r => arguments[0](r.status))",
            Vec::new(),
        )
        .unwrap();
    assert_eq!(status, 401, "a refused login gives no access");

    // The right token opens the page.
    log_in(&browser, &base, TOKEN, HANG_GUARD).unwrap();
    let cookie_visible = browser
        .execute("return document.cookie;", Vec::new())
        .unwrap();
    assert_eq!(cookie_visible, "", "the login cookie is HttpOnly");
    // The refused attempts logged their 401s; nothing else may be in the console so far.
    let console = browser.console().unwrap();
    assert!(
        !console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "{console:#?}"
    );

    // The timeline: front's recorded range, hall's two event ranges and their PIR marks.
    browser
        .wait_for(
            "ranges and events on the timeline",
            "document.querySelectorAll('.track[data-camera=\"front\"] .range').length >= 1 && \
             document.querySelectorAll('.track[data-camera=\"hall\"] .range').length >= 2 && \
             document.querySelectorAll('.track[data-camera=\"hall\"] .event').length >= 2",
            HANG_GUARD,
        )
        .unwrap();
    browser.click_selector("#zoom-fit").unwrap();
    let marks = browser
        .wait_for(
            "the fitted view's event marks",
            "(() => { const m = [...document.querySelectorAll('.track[data-camera=\"hall\"] .event')]; \
             return m.length >= 2 && m.every(e => e.getBoundingClientRect().width >= 10) && \
             m.map(e => e.textContent); })()",
            HANG_GUARD,
        )
        .unwrap();
    assert!(
        marks
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m.as_str() == Some("pir-hall")),
        "each event is marked with its sensor: {marks}"
    );
    let listed = browser
        .execute(
            "return [...document.querySelectorAll('#events .event-item')].map(li => li.textContent);",
            Vec::new(),
        )
        .unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|t| {
        let t = t.as_str().unwrap();
        t.contains("hall") && t.contains("pir-hall")
    }));
    let front_bar = browser
        .execute(
            "const r = document.querySelector('.track[data-camera=\"front\"] .range') \
             .getBoundingClientRect(); return r.width;",
            Vec::new(),
        )
        .unwrap();
    assert!(
        front_bar.as_f64().unwrap() > 100.0,
        "front's range fills the fitted view"
    );
    let shots = screenshot_dir();
    browser.screenshot(&shots.join("timeline.png")).unwrap();

    // The events as the API lists them, to check what the player does with them.
    let listing = browser
        .execute_async(
            "fetch('/api/recordings?camera=hall').then(r => r.json()).then(arguments[0])",
            Vec::new(),
        )
        .unwrap();
    let hall = &listing["cameras"][0];
    let events = hall["events"].as_array().unwrap();
    let ranges = hall["ranges"].as_array().unwrap();
    assert_eq!((events.len(), ranges.len()), (2, 2), "{hall}");
    let first_start_ms = int(&events[0]["start_ms"]);
    let second_range_start_ms = int(&ranges[1]["start_ms"]);

    // Clicking the first event's mark plays it from its pre-roll, at 4x...
    browser
        .click(&browser.find("#speed option[value='4']").unwrap())
        .unwrap();
    browser
        .click_selector(&format!(
            ".track[data-camera=\"hall\"] .event[data-event-id=\"{}\"]",
            int(&events[0]["id"])
        ))
        .unwrap();
    let started = wait_playing(&browser, "hall", 0.5);
    assert_eq!(
        int(&started["seek"]),
        first_start_ms,
        "played from the pre-roll"
    );
    assert!(
        int(&started["clipStart"]) <= first_start_ms,
        "the clip starts at or before the pre-roll: {started}"
    );
    browser.screenshot(&shots.join("playback.png")).unwrap();
    // ... and runs on across the gap into the second event's video.
    let on = browser
        .wait_for(
            "playback to run on into the second event",
            &format!(
                "(() => {{ const s = {PLAYER_STATE}; \
                 return s.error || s.note || (s.clipStart >= {second_range_start_ms} - {GOP_MS} \
                 && s.wall > {second_range_start_ms} && !s.paused) ? s : null; }})()"
            ),
            HANG_GUARD,
        )
        .unwrap();
    assert!(on["error"].is_null() && on["note"].is_null(), "{on}");

    // Clicking a moment on front's timeline plays from exactly there, from a clip that starts
    // at the key frame before it.
    browser
        .click(&browser.find("#speed option[value='1']").unwrap())
        .unwrap();
    let bar = browser
        .execute(
            "const t = document.querySelector('.track[data-camera=\"front\"]').getBoundingClientRect(); \
             const r = document.querySelector('.track[data-camera=\"front\"] .range').getBoundingClientRect(); \
             const box = document.getElementById('timeline-box').dataset; \
             return {trackLeft: t.left, trackWidth: t.width, barLeft: r.left, barWidth: r.width, \
             from: Number(box.fromMs), to: Number(box.toMs)};",
            Vec::new(),
        )
        .unwrap();
    let f = |k: &str| bar[k].as_f64().unwrap();
    // A third of the way into the recorded bar, as an offset from the track's centre.
    let x_px = f("barLeft") + f("barWidth") / 3.0;
    let offset = (x_px - (f("trackLeft") + f("trackWidth") / 2.0)).round();
    let clicked_ms = f("from")
        + (f("trackLeft") + f("trackWidth") / 2.0 + offset - f("trackLeft")) / f("trackWidth")
            * (f("to") - f("from"));
    browser
        .click_at_selector(".track[data-camera=\"front\"]", offset as i64, 0)
        .unwrap();
    let moment = wait_playing(&browser, "front", 0.5);
    let ms_per_px = (f("to") - f("from")) / f("trackWidth");
    let seek = moment["seek"].as_f64().unwrap();
    assert!(
        (seek - clicked_ms).abs() <= 2.0 * ms_per_px,
        "played from the clicked moment: asked {clicked_ms}, seek {seek} ({ms_per_px} ms a pixel)"
    );
    let clip_start = moment["clipStart"].as_f64().unwrap();
    assert!(
        clip_start <= seek && seek - clip_start < (GOP_MS + 100) as f64,
        "the clip starts at the key frame before the moment: {moment}"
    );

    // A PIR edge reaches the live panel.
    browser
        .wait_for(
            "the live panel",
            "!!document.querySelector('.sensor[data-name=\"pir-hall\"]')",
            HANG_GUARD,
        )
        .unwrap();
    browser
        .execute(
            "window.__seen = null; const row = () => document.querySelector('.sensor[data-name=\"pir-hall\"]'); \
             new MutationObserver(() => { const r = row(); \
               if (r && r.classList.contains('on') && window.__seen === null) \
                 window.__seen = {at: Date.now(), changed: Number(r.dataset.timeMs)}; }) \
             .observe(document.getElementById('state'), {subtree: true, childList: true, attributes: true});",
            Vec::new(),
        )
        .unwrap();
    sim_set(&config, "pir-hall", "high").unwrap();
    let seen = browser
        .wait_for("the PIR edge on the page", "window.__seen", HANG_GUARD)
        .unwrap();
    let text = browser
        .execute(
            "return document.querySelector('.sensor[data-name=\"pir-hall\"] .value').textContent;",
            Vec::new(),
        )
        .unwrap();
    assert_eq!(text, "active");
    eprintln!(
        "PIR edge on the page {} ms after the box took it",
        int(&seen["at"]) - int(&seen["changed"])
    );
    sim_set(&config, "pir-hall", "low").unwrap();
    browser
        .wait_for(
            "the PIR clear on the page",
            "!document.querySelector('.sensor[data-name=\"pir-hall\"]').classList.contains('on')",
            HANG_GUARD,
        )
        .unwrap();

    // The light's switch: the pin follows, and the page shows what the pin did.
    let switch = ".sensor[data-name=\"light-porch\"] .switch";
    for (level, shown) in [("high", "on"), ("low", "off")] {
        browser.click_selector(switch).unwrap();
        wait_for_level(&config, "light-porch", level, HANG_GUARD).unwrap();
        browser
            .wait_for(
                &format!("the light {shown} on the page"),
                &format!(
                    "document.querySelector('.sensor[data-name=\"light-porch\"] .value').textContent === '{shown}'"
                ),
                HANG_GUARD,
            )
            .unwrap();
    }

    // On a phone's screen the page fits its width: one column, nothing to scroll sideways.
    browser.set_window_size(390, 844).unwrap();
    let overflow = browser
        .wait_for(
            "the phone layout",
            "(() => { const w = document.documentElement; \
             return window.innerWidth <= 400 && {scroll: w.scrollWidth, inner: window.innerWidth, \
             track: document.querySelector('.track').getBoundingClientRect().width}; })()",
            HANG_GUARD,
        )
        .unwrap();
    assert!(
        int(&overflow["scroll"]) <= int(&overflow["inner"]),
        "the page is wider than a phone: {overflow}"
    );
    assert!(overflow["track"].as_f64().unwrap() > 250.0, "{overflow}");
    browser.screenshot(&shots.join("phone.png")).unwrap();

    // The page kept to its own policy: no violation, no script error in the console.
    let console = browser.console().unwrap();
    let problems: Vec<&String> = console
        .iter()
        .filter(|line| line.contains("Content Security Policy") || line.starts_with("SEVERE"))
        .collect();
    assert!(problems.is_empty(), "console: {console:#?}");
    drop(browser);
    drop(edgenvr_box);
}
