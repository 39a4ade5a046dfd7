//! The page's speed, measured in the real browser against a real box: how long from a click on
//! the timeline until the video shows a frame of the clicked moment and plays on, and how long a
//! sensor change takes from the box's state bus to the page. Run by `scripts/bench-ui.sh`.
//!
//! Usage: `bench-ui [SEEKS] [EDGES]` (default 30 and 20). Uses the binaries in
//! `EDGENVR_BIN_DIR` (the script points it at the release build).
//!
//! The camera: the test RTSP server looping a 1280x720 H.264 test pattern at 25 fps with a key
//! frame every 2 s (~2 Mbit/s), recorded continuously by `edgenvr run` for ~40 s first. Each seek
//! clicks a point of the recorded range; the clock starts as the click reaches the page (a
//! capturing listener notes `performance.now()` before the page's own handler runs), and stops at the first video frame
//! presented (`requestVideoFrameCallback`) at or after the moment asked for while playing.
//! Everything is on loopback: "the LAN" without its round trips (a LAN adds ~1 ms per request).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use edgenvr_tests::edgenvr_box::{sim_set, spawn_run, BoxDir};
use edgenvr_tests::page::{int, log_in};
use edgenvr_tests::rtsp_server::RtspServer;
use edgenvr_tests::webdriver::Browser;
use serde_json::Value;

const TOKEN: &str = "bench-ui-token-0123456789";
const GUARD: Duration = Duration::from_secs(30);
/// Frames per second of the bench clip (the RTSP server's default pace).
const FPS: u64 = 25;
/// Seconds recorded before measuring.
const RECORD_S: u64 = 40;

fn encode_clip(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("bench-720p.h264");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=1280x720:rate={FPS}"))
        .args(["-t", "20", "-pix_fmt", "yuv420p", "-c:v", "libx264"])
        .args([
            "-preset", "veryfast", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M",
        ])
        .args([
            "-bf",
            "0",
            "-g",
            "50",
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
        ])
        .args(["-f", "h264"])
        .arg(&path)
        .status()
        .context("ffmpeg")?;
    anyhow::ensure!(status.success(), "ffmpeg failed");
    Ok(path)
}

/// min, median, p95, max of `values` (sorted in place).
fn summary(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    format!(
        "min {:.0}  median {:.0}  p95 {:.0}  max {:.0}",
        at(0.0),
        at(0.5),
        at(0.95),
        at(1.0)
    )
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let seeks: usize = args.get(1).map_or(Ok(30), |a| a.parse())?;
    let edges: usize = args.get(2).map_or(Ok(20), |a| a.parse())?;
    let work = tempfile::tempdir()?;
    let clip = encode_clip(work.path())?;
    let server = RtspServer::start(&[("/cam", &clip)], None)?;
    let the_box = BoxDir::new(
        "bench-ui",
        &["--size", "64MiB", "--slots", "16"],
        "",
        &format!(
            "[http]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
             [[sensor]]\nname = \"pir\"\nkind = \"pir\"\nbackend = \"sim\"\ndebounce = \"0s\"\n\
             [[camera]]\nname = \"front\"\nurl = \"{}\"\n",
            server.url("/cam", None)
        ),
    );
    let config = the_box.config.clone();
    let edgenvr_box = spawn_run(&config)?;
    let http = edgenvr_box.wait_for_listener("http", GUARD)?;
    edgenvr_box.wait_for_line("streaming", GUARD)?;
    let browser = Browser::start(1280, 1000)?;
    let sent = server.frames_sent("/cam");
    eprintln!("recording {RECORD_S} s of 720p before measuring...");
    server.wait_frames(
        "/cam",
        sent + RECORD_S * FPS,
        Duration::from_secs(RECORD_S * 2),
    )?;

    let base = format!("http://{http}");
    log_in(&browser, &base, TOKEN, GUARD)?;
    browser.wait_for(
        "front's range",
        "!!document.querySelector('.track[data-camera=\"front\"] .range')",
        GUARD,
    )?;
    browser.click_selector("#zoom-fit")?;
    browser.wait_for(
        "the fitted view",
        "document.querySelector('.track[data-camera=\"front\"] .range').getBoundingClientRect().width > 300",
        GUARD,
    )?;

    let mut latencies = Vec::new();
    for n in 0..seeks {
        let geometry = browser.execute(
            "const t = document.querySelector('.track[data-camera=\"front\"]').getBoundingClientRect(); \
             const r = document.querySelector('.track[data-camera=\"front\"] .range').getBoundingClientRect(); \
             const p = document.getElementById('player'); p.pause(); delete p.dataset.seekMs; \
             window.__bench = {t0: null}; \
             document.getElementById('cameras').addEventListener('click', \
               () => { window.__bench.t0 = performance.now(); }, {capture: true, once: true}); \
             return {trackLeft: t.left, trackWidth: t.width, barLeft: r.left, barWidth: r.width};",
            Vec::new(),
        )?;
        let f = |k: &str| geometry[k].as_f64().unwrap_or(0.0);
        // A point in the range, away from its live end (the newest GOP may still be arriving).
        let x = f("barLeft") + f("barWidth") * (0.05 + 0.85 * fastrand_f64(n));
        let offset = (x - (f("trackLeft") + f("trackWidth") / 2.0)).round() as i64;
        browser.click_at_selector(".track[data-camera=\"front\"]", offset, 0)?;
        let result = browser.execute_async(
            "const done = arguments[0]; const p = document.getElementById('player'); \
             const guard = setTimeout(() => done({error: 'no frame within 10 s'}), 10000); \
             const check = (now, meta) => { \
               const seek = Number(p.dataset.seekMs), start = Number(p.dataset.clipStartMs); \
               if (p.dataset.seekMs !== undefined && !p.paused && \
                   meta.mediaTime >= (seek - start) / 1000 - 0.001) { \
                 clearTimeout(guard); \
                 done({ms: now - window.__bench.t0, target: (seek - start) / 1000, shown: meta.mediaTime}); \
               } else { p.requestVideoFrameCallback(check); } }; \
             p.requestVideoFrameCallback(check);",
            Vec::new(),
        )?;
        let ms = result["ms"]
            .as_f64()
            .with_context(|| format!("seek {n}: {result}"))?;
        latencies.push(ms);
    }
    println!(
        "seek to playing, ms (N={seeks}, 720p H.264, 2 s GOPs): {}",
        summary(&mut latencies)
    );

    let mut edge_ms = Vec::new();
    browser.wait_for(
        "the live panel",
        "!!document.querySelector('.sensor[data-name=\"pir\"]')",
        GUARD,
    )?;
    for n in 0..edges {
        let level = if n % 2 == 0 { "high" } else { "low" };
        let want_on = level == "high";
        browser.execute(
            "window.__seen = null; const want = arguments[0]; \
             const row = () => document.querySelector('.sensor[data-name=\"pir\"]'); \
             const observer = new MutationObserver(() => { const r = row(); \
               if (r && r.classList.contains('on') === want && window.__seen === null) { \
                 window.__seen = {at: Date.now(), changed: Number(r.dataset.timeMs)}; observer.disconnect(); } }); \
             observer.observe(document.getElementById('state'), {subtree: true, childList: true, attributes: true});",
            vec![Value::Bool(want_on)],
        )?;
        sim_set(&config, "pir", level)?;
        let seen = browser.wait_for("the PIR edge on the page", "window.__seen", GUARD)?;
        edge_ms.push((int(&seen["at"]) - int(&seen["changed"])) as f64);
    }
    println!(
        "sensor change, box to page, ms (N={edges}): {}",
        summary(&mut edge_ms)
    );
    Ok(())
}

/// A spread of points in [0, 1) that needs no random source (reproducible runs).
fn fastrand_f64(n: usize) -> f64 {
    // The golden-ratio sequence: evenly spread, no two seeks at the same place.
    (n as f64 * 0.618_033_988_75).fract()
}
