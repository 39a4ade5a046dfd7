//! Crashes of the real box: `edgenvr run` recording two cameras from the test RTSP server (one
//! continuous in 2 s segments over a ring of eight 256 KiB slots that wraps every ~16 s, one in
//! events mode) is killed with SIGKILL, or loses power, at random moments — mid-GOP, mid-sync,
//! mid-wrap, during an event (the PIR is on before every other crash) — and restarted each time.
//! After each crash `edgenvr store fsck` passes, what must have survived did (everything
//! written, for a kill; everything synced, for a power cut: see `edgenvr_tests::crash`), each
//! camera's video runs forward in time, and every listed segment decodes fully with ffprobe.
//!
//! The suite runs 5 kills and 3 power cuts; `EDGENVR_CRASH_KILLS=50` and
//! `EDGENVR_POWER_CUTS=20` run more (`scripts/faults.sh`). Each prints the video the continuous
//! camera lost per crash (`figure:` lines): the GOP being assembled and the queue for a kill, and
//! what was not synced for a power cut. Power cuts need root (a loop device and mount).

use std::path::Path;
use std::time::Duration;

use edgenvr_tests::crash::{
    check_after_crash, crash_box_config, listing, now_ms, test_camera, Crash, LoopDisk,
};
use edgenvr_tests::edgenvr_box::{init_store, sim_set, spawn_run};

const GUARD: Duration = Duration::from_secs(60);
const STORE_ARGS: [&str; 4] = ["--size", "2MiB", "--slots", "8"];

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rng() -> fastrand::Rng {
    let seed = std::env::var("EDGENVR_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash moments from EDGENVR_CRASH_SEED={seed}");
    fastrand::Rng::with_seed(seed)
}

/// What a run of the box up to its crash left to check.
struct Run {
    /// The listing taken shortly before the crash.
    before: Vec<edgenvr::store::SegmentInfo>,
    /// When both cameras were streaming, Unix ms: no video of this run is older.
    streaming_ms: i64,
    crash_ms: i64,
}

impl Run {
    /// The continuous camera's video lost: from the end of its last listed fragment (or the
    /// start of this run's stream, when nothing later is listed) to the crash.
    fn lost_ms(&self, checked: &edgenvr_tests::crash::CrashReport) -> i64 {
        let end = checked
            .lost_ms
            .get("front")
            .map(|lost| self.crash_ms - lost);
        self.crash_ms - end.unwrap_or(i64::MIN).max(self.streaming_ms)
    }
}

/// Starts the box, lets it record for a random while (with the PIR on when `event`), takes the
/// listing, and crashes it after a further random while. `cut` is called after the kill, before
/// anything else (the power cut).
fn record_and_crash(
    config: &Path,
    store: &Path,
    rng: &mut fastrand::Rng,
    event: bool,
    cut: &mut dyn FnMut() -> anyhow::Result<()>,
) -> Run {
    let mut edgenvr = spawn_run(config).unwrap();
    edgenvr.wait_for_lines("streaming", 2, GUARD).unwrap();
    let streaming_ms = now_ms();
    if event {
        sim_set(config, "pir", "high").unwrap();
    }
    // Random moments: anywhere in a GOP (1 s), a sync interval (1 s) or a segment (2 s).
    std::thread::sleep(Duration::from_millis(rng.u64(500..3500)));
    let before = listing(store).unwrap();
    std::thread::sleep(Duration::from_millis(rng.u64(0..1500)));
    edgenvr.signal("KILL").unwrap();
    let crash_ms = now_ms();
    edgenvr.wait(GUARD).unwrap();
    cut().unwrap();
    Run {
        before,
        streaming_ms,
        crash_ms,
    }
}

/// Prints the figure: the video lost per crash.
fn report(what: &str, lost: &[i64]) {
    let max = lost.iter().max().copied().unwrap_or(0);
    let mean = lost.iter().sum::<i64>() / lost.len().max(1) as i64;
    eprintln!(
        "figure: {what} ×{}: continuous camera lost mean {mean} ms, max {max} ms of video before \
         the crash",
        lost.len()
    );
}

#[test]
fn kill_9_at_random_moments_keeps_everything_written() {
    let kills = count("EDGENVR_CRASH_KILLS", 5);
    let work = tempfile::tempdir().unwrap();
    let server = test_camera(work.path()).unwrap();
    let store = work.path().join("store");
    init_store(&store, &STORE_ARGS).unwrap();
    let config = crash_box_config(work.path(), &store, &server.url("/cam", None), "").unwrap();
    let mut rng = rng();
    let (mut lost, mut listed) = (Vec::new(), 0);
    for kill in 0..kills {
        let run = record_and_crash(&config, &store, &mut rng, kill % 2 == 1, &mut || Ok(()));
        let checked = check_after_crash(&store, &run.before, Crash::Kill, run.crash_ms)
            .unwrap_or_else(|e| panic!("kill {kill}: {e:#}"));
        listed = checked.fragments;
        lost.push(run.lost_ms(&checked));
    }
    assert!(listed > 0, "nothing recorded in {kills} runs");
    report("kill -9", &lost);
}

#[test]
fn power_cuts_at_random_moments_lose_only_what_was_not_synced() {
    let cuts = count("EDGENVR_POWER_CUTS", 3);
    let work = tempfile::tempdir().unwrap();
    let server = test_camera(work.path()).unwrap();
    let mut disk = LoopDisk::new(work.path(), 32).expect("a loop device (run as root)");
    let store = disk.mount.join("store");
    std::fs::create_dir(&store).unwrap();
    init_store(&store, &STORE_ARGS).unwrap();
    let config = crash_box_config(work.path(), &store, &server.url("/cam", None), "").unwrap();
    let mut rng = rng();
    let mut lost = Vec::new();
    for cut in 0..cuts {
        let run = record_and_crash(&config, &store, &mut rng, cut % 2 == 1, &mut || {
            disk.power_cut()
        });
        let checked = check_after_crash(&store, &run.before, Crash::PowerCut, run.crash_ms)
            .unwrap_or_else(|e| panic!("power cut {cut}: {e:#}"));
        lost.push(run.lost_ms(&checked));
    }
    report("power cut (1 s sync)", &lost);
}
