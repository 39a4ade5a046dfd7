//! Store opening benchmark (run by `scripts/bench-open.sh`).
//!
//! `bench_open synth DIR SLOTS SLOT_KIB` initialises a store of SLOTS slots of SLOT_KIB KiB in the
//! empty directory DIR and writes synthetic video through the store's camera writer until every
//! slot holds a segment (one camera, 1 s GOPs of 25 frames sized so a 4 s segment fills ~80 % of a
//! slot: four fragments per slot, what a 16 MiB slot holds of a 10 s segment at ~10 Mbit/s in
//! 2 s GOPs, scaled down so thousands of slots fit this machine's disk).
//!
//! `bench_open time EDGENVR CONFIG STORE` times, in milliseconds of wall-clock time, (1) `EDGENVR
//! run --config CONFIG` from spawn to its last `recording` log line (the store opened and
//! recovered, every camera's writer open: ready to record), after which it gets SIGINT and is
//! waited for, and (2) `EDGENVR store ls STORE` from spawn to exit. Prints `run_ms N` and
//! `ls_ms N`. The caller drops the page cache before it for a cold figure.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use edgenvr::media::synthetic;
use edgenvr::store::{init_store, InitOptions, Store, WriterOptions};

/// 2026-01-01T00:00:00Z, the synthetic recording's start.
const T0_MS: i64 = 1_767_225_600_000;
const FPS: i64 = 25;
/// One GOP per second; a segment of four.
const GOP_FRAMES: i64 = 25;
const SEGMENT_GOPS: i64 = 4;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["synth", dir, slots, slot_kib] => synth(Path::new(dir), slots.parse()?, slot_kib.parse()?),
        ["time", edgenvr, config, store] => time(edgenvr, config, store),
        _ => bail!(
            "usage: bench_open synth DIR SLOTS SLOT_KIB | bench_open time EDGENVR CONFIG STORE"
        ),
    }
}

fn synth(dir: &Path, slots: u64, slot_kib: u64) -> anyhow::Result<()> {
    let slot_bytes = slot_kib << 10;
    // Four fragments fill four fifths of a slot.
    let gop_bytes = (slot_bytes * 4 / 5 / SEGMENT_GOPS as u64) as usize;
    let key_bytes = gop_bytes / 5;
    let delta_bytes = (gop_bytes - key_bytes) / (GOP_FRAMES as usize - 1);
    let payload = Bytes::from(vec![0x5a; key_bytes.max(delta_bytes)]);
    std::fs::create_dir_all(dir)?;
    init_store(
        dir,
        &InitOptions {
            size_bytes: slots * slot_bytes,
            slot_bytes: Some(slot_bytes),
            slot_count: None,
        },
        &mut |_| {},
    )
    .context("init store")?;
    let store = Store::open(dir)?;
    let mut writer = store.camera_writer(
        "cam01",
        WriterOptions {
            segment_90k: Some(SEGMENT_GOPS * 90_000),
            sync_interval: Duration::from_secs(3600),
            share_slots: None,
        },
    )?;
    let params = synthetic::h264_params(1920, 1080);
    let frame_90k = 90_000 / FPS;
    let started = Instant::now();
    let gops = slots as i64 * SEGMENT_GOPS;
    for n in 0..gops {
        let payloads =
            (0..GOP_FRAMES).map(|f| payload.slice(..if f == 0 { key_bytes } else { delta_bytes }));
        writer.append(&synthetic::gop(
            &params,
            T0_MS + n * 1000,
            n * GOP_FRAMES * frame_90k,
            frame_90k as u32,
            payloads,
        ))?;
    }
    writer.close()?;
    let in_use = store.segments().len();
    if in_use as u64 != slots {
        bail!("{in_use} of {slots} slots hold a segment");
    }
    println!(
        "synthesised {slots} slots of {slot_kib} KiB, every one written ({gops} GOPs) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn time(edgenvr: &str, config: &str, store: &str) -> anyhow::Result<()> {
    let cameras = std::fs::read_to_string(config)?
        .matches("[[camera]]")
        .count();
    let started = Instant::now();
    let mut run = Command::new(edgenvr)
        .args(["run", "--config", config])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning edgenvr run")?;
    let stderr = run.stderr.take().context("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let mut recording = 0;
    let mut ready = None;
    for line in lines.by_ref() {
        let line = line?;
        if line.contains(" recording ") || line.ends_with(" recording") {
            recording += 1;
            if recording == cameras {
                ready = Some(started.elapsed());
                break;
            }
        }
    }
    // SIGINT: the clean close the daemon does at Ctrl-C.
    Command::new("kill")
        .args(["-INT", &run.id().to_string()])
        .status()
        .context("kill -INT")?;
    for _ in lines {}
    let status = run.wait()?;
    let Some(ready) = ready else {
        bail!("edgenvr run never logged `recording` for {cameras} camera(s) ({status})");
    };
    println!("run_ms {}", ready.as_millis());

    let started = Instant::now();
    let status = Command::new(edgenvr)
        .args(["store", "ls", store])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let elapsed = started.elapsed();
    if !status.success() {
        bail!("edgenvr store ls failed: {status}");
    }
    println!("ls_ms {}", elapsed.as_millis());
    Ok(())
}
