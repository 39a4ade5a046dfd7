//! The soak: many cameras recorded by one real `edgenvr run` for a long time, with a PIR event
//! every minute and a clip pulled every five, measuring what a long night does to the box.
//! Run by `scripts/soak.sh SECONDS CAMERAS` (default 3600 s, 16 cameras).
//!
//! Usage: `soak [SECONDS] [CAMERAS] [OUT_DIR]`. Uses the binaries in `EDGENVR_BIN_DIR` (the
//! script points it at the release build); the box inherits the environment, so
//! `GLIBC_TUNABLES=glibc.malloc.tcache_count=7 scripts/soak.sh ...` runs the box with other
//! allocator settings.
//!
//! First the store is filled to its steady state (`fill`): the PIR is held on until the
//! events-mode cameras have wrapped over event segments as many times as there are such cameras,
//! so the ring holds every camera's share and the store's index (a few dozen bytes per fragment
//! held) no longer grows. From an empty 1 GiB store, at one event a minute, that would take most
//! of the hour, and the index filling would be measured as growth; a box spends its life with a
//! full card. Then the measured run of SECONDS starts.
//!
//! Cameras: the test RTSP server loops one 640x360 H.264 clip (25 fps, a key frame a second,
//! shared by every client); even-numbered cameras record continuously (10 s segments), odd ones
//! in events mode (5 s pre- and post-roll) triggered by the simulated PIR. Reported (and written
//! to `OUT_DIR/soak-report.json`, the RSS series to `OUT_DIR/rss.csv`, the box's log to
//! `OUT_DIR/box.log`): the box's resident memory (VmRSS, and its anonymous part RssAnon, the
//! heap and stacks, apart from the code pages that come in as paths first run) from a warm-up
//! point (a tenth of the run, at least a minute) and from half-time to the end, and RssAnon's
//! mean and peak over the five minutes after the warm-up against the last five (whole PIR
//! periods, so the minute's swing does not decide the figure), the same for the main heap
//! alone (`[heap]` in smaps: the allocator's small objects, apart from the video in flight,
//! which lives in chunk mappings and follows the load), its CPU time, ERROR/WARN/panic
//! lines in its log, every pulled clip's decode, and per camera the close line's GOP accounting
//! (assembled = written + dropped + failed + not recorded).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use edgenvr_tests::bins;
use edgenvr_tests::clips::{make_clip_sized, Codec};
use edgenvr_tests::edgenvr_box::{sim_set, spawn_run, BoxDir};
use edgenvr_tests::ffprobe::{count_video_frames, decode_errors};
use edgenvr_tests::process::{log_field, run, Process};
use edgenvr_tests::rtsp_server::RtspServer;
use serde_json::json;

const TOKEN: &str = "soak-token-0123456789abcdef";
const GUARD: Duration = Duration::from_secs(60);
/// How often memory and CPU are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// A PIR event a minute and a clip every five (shorter runs do both at least twice).
const PIR_EVERY_S: u64 = 60;
/// How long the PIR stays on for each event.
const PIR_ON: Duration = Duration::from_secs(2);
const CLIP_EVERY_S: u64 = 300;
/// The close-line counters summed over cameras.
const COUNTERS: [&str; 7] = [
    "frames_received",
    "assembled_gops",
    "written_gops",
    "dropped_gops",
    "failed_gops",
    "not_recorded_gops",
    "unaccounted_gops",
];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(Ok(3600), |a| a.parse())?;
    let cameras: usize = args.next().map_or(Ok(16), |a| a.parse())?;
    let out = PathBuf::from(args.next().unwrap_or_else(|| "target/soak".into()));
    std::fs::create_dir_all(&out)?;
    let work = tempfile::tempdir()?;
    let clip = make_clip_sized(work.path(), Codec::H264, 20, (640, 360))?;
    let server = RtspServer::start(&[("/cam", &clip)], None)?;

    let mut sections =
        String::from("[state]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n");
    sections += &format!("token = \"{TOKEN}\"\n");
    sections += "[[sensor]]\nname = \"pir\"\nkind = \"pir\"\nbackend = \"sim\"\n";
    for n in 0..cameras {
        sections += &format!(
            "[[camera]]\nname = \"cam-{n:02}\"\nurl = \"{}\"\n",
            server.url("/cam", None)
        );
        if n % 2 == 1 {
            sections +=
                "mode = \"events\"\npre_roll = \"5s\"\npost_roll = \"5s\"\ntriggers = [\"pir\"]\n";
        }
    }
    let box_dir = BoxDir::new(
        "soak",
        &["--size", "1GiB"],
        "segment = \"10s\"\nsync_interval = \"2s\"",
        &sections,
    );
    let mut edgenvr = spawn_run(&box_dir.config)?;
    let http = edgenvr.wait_for_listener("http", GUARD)?;
    edgenvr.wait_for_lines("streaming", cameras, GUARD)?;
    let pid = edgenvr.id();
    let ticks_per_s = clock_ticks()?;
    let fill_s = fill_store(&edgenvr, &box_dir, cameras / 2)?;

    let started = Instant::now();
    let warm_up = Duration::from_secs((seconds / 10).max(60));
    let mut rss_csv = std::fs::File::create(out.join("rss.csv"))?;
    writeln!(
        rss_csv,
        "elapsed_s,rss_kb,rss_anon_kb,rss_file_kb,heap_kb,arenas_kb,cpu_s"
    )?;
    let mut samples: Vec<Sample> = Vec::new();
    let cpu_start = cpu_ticks(pid)?;
    let pir_every = Duration::from_secs(PIR_EVERY_S.min(seconds / 3).max(10));
    let clip_every = Duration::from_secs(CLIP_EVERY_S.min(seconds / 3).max(20));
    let (mut next_sample, mut next_pir, mut next_clip) = (Duration::ZERO, pir_every, clip_every);
    let (mut events, mut clips) = (0u64, Vec::new());
    while started.elapsed() < Duration::from_secs(seconds) {
        let now = started.elapsed();
        if now >= next_sample {
            let memory = memory_kb(pid)?;
            let cpu_s = (cpu_ticks(pid)? - cpu_start) as f64 / ticks_per_s;
            writeln!(
                rss_csv,
                "{},{},{},{},{},{},{cpu_s:.1}",
                now.as_secs(),
                memory.rss,
                memory.anon,
                memory.file,
                memory.heap,
                memory.arenas
            )?;
            samples.push(Sample {
                at_s: now.as_secs(),
                rss: memory.rss,
                anon: memory.anon,
                heap: memory.heap,
                allocator: memory.heap + memory.arenas,
            });
            next_sample += SAMPLE_EVERY;
        }
        if now >= next_pir {
            sim_set(&box_dir.config, "pir", "high")?;
            std::thread::sleep(PIR_ON);
            sim_set(&box_dir.config, "pir", "low")?;
            events += 1;
            next_pir += pir_every;
        }
        if now >= next_clip {
            clips.push(pull_clip(&http, &out, clips.len())?);
            next_clip += clip_every;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let cpu_s = (cpu_ticks(pid)? - cpu_start) as f64 / ticks_per_s;
    let wall_s = started.elapsed().as_secs_f64();

    let exit = edgenvr.terminate(GUARD)?;
    let log = edgenvr.stderr();
    std::fs::write(out.join("box.log"), &log)?;
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    let closes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("recording closed"))
        .collect();
    let mut totals = serde_json::Map::new();
    for key in COUNTERS {
        let sum: i64 = closes.iter().map(|l| log_field(l, key).unwrap_or(0)).sum();
        totals.insert(key.into(), json!(sum));
    }
    let total = |key: &str| totals[key].as_i64().unwrap_or(0);
    let accounted = total("written_gops")
        + total("dropped_gops")
        + total("failed_gops")
        + total("not_recorded_gops");

    let warm = samples
        .iter()
        .find(|s| s.at_s >= warm_up.as_secs())
        .or(samples.first())
        .copied()
        .unwrap_or_default();
    let end = samples.last().copied().unwrap_or_default();
    let at = |t: u64| samples.iter().find(|s| s.at_s >= t).copied().unwrap_or(end);
    let quarter = |q: u64| at(seconds * q / 4).rss;
    let half = at(seconds / 2);
    // Whole PIR periods averaged: a single sample lands anywhere in the minute's swing (eight
    // pre-rolls filling, then written out at once), which is larger than 1 % of the total.
    let first_span = warm.at_s..warm.at_s + WINDOW_S;
    let last_span = end.at_s.saturating_sub(WINDOW_S - 1)..end.at_s + 1;
    let (anon_first, anon_last) = (
        window(&samples, first_span.clone(), |s| s.anon),
        window(&samples, last_span.clone(), |s| s.anon),
    );
    let (heap_first, heap_last) = (
        window(&samples, first_span.clone(), |s| s.heap),
        window(&samples, last_span.clone(), |s| s.heap),
    );
    let (allocator_first, allocator_last) = (
        window(&samples, first_span, |s| s.allocator),
        window(&samples, last_span, |s| s.allocator),
    );
    let report = json!({
        "seconds": seconds,
        "cameras": cameras,
        "fill_s": fill_s,
        "glibc_tunables": std::env::var("GLIBC_TUNABLES").ok(),
        "exit_success": exit.success(),
        "rss_kb": {
            "warm_up_s": warm.at_s, "at_warm_up": warm.rss,
            "peak": samples.iter().map(|s| s.rss).max(),
            "at_quarters": [quarter(1), quarter(2), quarter(3), end.rss],
            "end": end.rss, "growth_percent_since_warm_up": growth(warm.rss, end.rss),
            "growth_percent_second_half": growth(half.rss, end.rss),
        },
        "rss_anon_kb": {
            "at_warm_up": warm.anon, "at_half": half.anon, "end": end.anon,
            "peak": samples.iter().map(|s| s.anon).max(),
            "growth_percent_since_warm_up": growth(warm.anon, end.anon),
            "growth_percent_second_half": growth(half.anon, end.anon),
            "mean_first_5_min_after_warm_up": anon_first.mean,
            "mean_last_5_min": anon_last.mean,
            "growth_percent_of_5_min_mean": growth(anon_first.mean, anon_last.mean),
            "max_first_5_min_after_warm_up": anon_first.max,
            "max_last_5_min": anon_last.max,
            "growth_percent_of_5_min_max": growth(anon_first.max, anon_last.max),
        },
        "heap_kb": {
            "at_warm_up": warm.heap, "end": end.heap,
            "mean_first_5_min_after_warm_up": heap_first.mean,
            "mean_last_5_min": heap_last.mean,
            "growth_percent_of_5_min_mean": growth(heap_first.mean, heap_last.mean),
        },
        "allocator_kb": {
            "at_warm_up": warm.allocator, "end": end.allocator,
            "mean_first_5_min_after_warm_up": allocator_first.mean,
            "mean_last_5_min": allocator_last.mean,
            "growth_percent_of_5_min_mean": growth(allocator_first.mean, allocator_last.mean),
        },
        "cpu": { "seconds": cpu_s, "percent_of_one_core": cpu_s * 100.0 / wall_s },
        "log": { "error_lines": count(" ERROR "), "warn_lines": count(" WARN "),
                 "panics": count("panicked") },
        "pir_events": events,
        "clips": clips,
        "cameras_closed": closes.len(),
        "gops": totals,
        "assembled_equals_accounted": total("assembled_gops") == accounted,
    });
    std::fs::write(
        out.join("soak-report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    anyhow::ensure!(exit.success(), "edgenvr run exited with {exit:?}");
    anyhow::ensure!(closes.len() == cameras, "{} close lines", closes.len());
    Ok(())
}

/// How long filling the store may take: the events-mode cameras record all the time while the
/// PIR is held on, and filled their share of the 1 GiB store in about 14 minutes on this machine.
const FILL_GUARD: Duration = Duration::from_secs(40 * 60);

/// Holds the PIR on until the events-mode cameras have wrapped over `wraps` event segments (the
/// ring in its steady state); returns how long that took, in seconds.
fn fill_store(edgenvr: &Process, box_dir: &BoxDir, wraps: usize) -> anyhow::Result<u64> {
    let started = Instant::now();
    if wraps == 0 {
        return Ok(0);
    }
    sim_set(&box_dir.config, "pir", "high")?;
    edgenvr
        .wait_for_lines("overwritten_event=true", wraps, FILL_GUARD)
        .context("filling the store")?;
    sim_set(&box_dir.config, "pir", "low")?;
    Ok(started.elapsed().as_secs())
}

/// The span over which memory samples are averaged: five PIR periods.
const WINDOW_S: u64 = 5 * PIR_EVERY_S;

/// One memory sample of the box, in KiB.
#[derive(Clone, Copy, Default)]
struct Sample {
    at_s: u64,
    /// VmRSS.
    rss: u64,
    /// RssAnon: the heap, the chunk mappings holding video in flight and the stacks; the rest of
    /// VmRSS is the binary's and libraries' pages, which grow as code paths run the first time.
    anon: u64,
    /// The main heap (`[heap]`): the allocator's small objects.
    heap: u64,
    /// All of glibc's heaps: `[heap]` and the thread arenas. What is left of RssAnon is mostly
    /// the video in flight (the chunk mappings, `ingest/packer.rs`), which follows the load.
    allocator: u64,
}

fn growth(from: u64, to: u64) -> f64 {
    (to as f64 - from as f64) * 100.0 / (from.max(1) as f64)
}

/// One memory figure over a span of the run.
struct Window {
    mean: u64,
    max: u64,
}

/// The mean and the largest of `figure` over the samples taken in `span` (seconds).
fn window(samples: &[Sample], span: std::ops::Range<u64>, figure: fn(&Sample) -> u64) -> Window {
    let values: Vec<u64> = samples
        .iter()
        .filter(|s| span.contains(&s.at_s))
        .map(figure)
        .collect();
    Window {
        mean: values.iter().sum::<u64>() / (values.len().max(1) as u64),
        max: values.iter().copied().max().unwrap_or(0),
    }
}

/// Pulls the minute before the last ten seconds of camera 0 with `nvrctl pull`; returns what
/// ffprobe says of it.
fn pull_clip(http: &str, out: &Path, n: usize) -> anyhow::Result<serde_json::Value> {
    let file = out.join(format!("clip-{n}.mp4"));
    let file_arg = file.to_str().context("clip path is not UTF-8")?;
    let started = Instant::now();
    let (status, _, err) = run(
        &bins::nvrctl(),
        &[
            "pull",
            http,
            "--token",
            TOKEN,
            "--camera",
            "cam-00",
            "--from=-70s",
            "--to=-10s",
            "-o",
            file_arg,
        ],
    )?;
    let pull_s = started.elapsed().as_secs_f64();
    if !status.success() {
        return Ok(json!({ "n": n, "error": err.trim() }));
    }
    let frames = count_video_frames(&file)?;
    let errors = decode_errors(&file)?;
    std::fs::remove_file(&file)?;
    Ok(json!({ "n": n, "pull_s": pull_s, "frames": frames, "decode_errors": errors }))
}

/// Resident memory of a process, in KiB, from `/proc/PID/status` and `/proc/PID/smaps`.
struct Memory {
    rss: u64,
    anon: u64,
    file: u64,
    heap: u64,
    arenas: u64,
}

fn memory_kb(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    let (heap, arenas) = allocator_rss_kb(pid)?;
    Ok(Memory {
        rss: field("VmRSS:")?,
        anon: field("RssAnon:")?,
        file: field("RssFile:")?,
        heap,
        arenas,
    })
}

/// The alignment of glibc's thread arenas on 64-bit targets (`HEAP_MAX_SIZE`): each arena's
/// heap is an anonymous mapping starting on such a boundary.
const ARENA_ALIGN: u64 = 64 << 20;

/// Resident KiB of glibc's heaps: the main one (`[heap]`) and the thread arenas (anonymous
/// mappings on an [`ARENA_ALIGN`] boundary). Both 0 before the process has any.
fn allocator_rss_kb(pid: u32) -> anyhow::Result<(u64, u64)> {
    #[derive(PartialEq)]
    enum Kind {
        Heap,
        Arena,
        Other,
    }
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let (mut heap, mut arenas, mut kind) = (0, 0, Kind::Other);
    for line in smaps.lines() {
        // A mapping's first line is "start-end perms offset dev inode [path]"; its fields follow.
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, _)) = first.split_once('-') {
            let perms = fields.next().unwrap_or("");
            let inode = fields.nth(2).unwrap_or("");
            let path = fields.next();
            let start = u64::from_str_radix(start, 16).unwrap_or(1);
            kind = if path == Some("[heap]") {
                Kind::Heap
            } else if path.is_none()
                && inode == "0"
                && perms.starts_with("rw")
                && start % ARENA_ALIGN == 0
            {
                Kind::Arena
            } else {
                Kind::Other
            };
        } else if kind != Kind::Other {
            if let Some(kb) = line.strip_prefix("Rss:") {
                let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse()?;
                match kind {
                    Kind::Heap => heap += kb,
                    _ => arenas += kb,
                }
            }
        }
    }
    Ok((heap, arenas))
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        Ok(fields.get(n - 3).context("short /proc stat")?.parse()?)
    };
    Ok(field(14)? + field(15)?)
}

fn clock_ticks() -> anyhow::Result<f64> {
    let (status, out, _) = run(Path::new("getconf"), &["CLK_TCK"])?;
    anyhow::ensure!(status.success(), "getconf CLK_TCK");
    Ok(out.trim().parse()?)
}
