//! Clip assembly benchmark (run by `scripts/bench-clip.sh`).
//!
//! `bench_clip synth DIR MINUTES MBIT` initialises a store in the empty directory DIR and writes
//! MINUTES of synthetic video at MBIT Mbit/s through the store's camera writer as fast as the
//! disk allows (2 s GOPs of 25 fps, 10 s segments; the bytes are not real H.264, which clip
//! assembly never decodes).
//!
//! `bench_clip clip DIR MINUTES` serves the store with the real HTTP API on loopback and
//! downloads a MINUTES-long clip twice over a plain TCP socket, discarding the bytes; the second
//! download is read from the page cache. It prints the throughput of the second download and the
//! process's peak resident memory over both downloads above the idle baseline (the server up,
//! the store open; the kernel's high-water mark, reset through /proc/self/clear_refs first).
//! `bench_clip clip DIR MINUTES AT_ONCE` runs AT_ONCE such downloads at the same time (each from
//! its own thread and socket; AT_ONCE at most the server's limit on concurrent downloads) and
//! reports the same peak over all of them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use edgenvr::media::synthetic;
use edgenvr::serve::{HttpServer, Token};
use edgenvr::store::{init_store, InitOptions, Store, WriterOptions};

/// 2026-01-01T00:00:00Z, the synthetic recording's start.
const T0_MS: i64 = 1_767_225_600_000;
/// 25 fps, 2 s GOPs: a common IP camera setting.
const FPS: i64 = 25;
const GOP_FRAMES: i64 = 50;
const TOKEN: &str = "bench-token-0123456789";

fn main() -> anyhow::Result<()> {
    // As the daemon does: its allocator settings are part of what a download costs.
    edgenvr::malloc::tune();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["synth", dir, minutes, mbit] => synth(Path::new(dir), minutes.parse()?, mbit.parse()?),
        ["clip", dir, minutes] => clip(Path::new(dir), minutes.parse()?, 1),
        ["clip", dir, minutes, at_once] => clip(Path::new(dir), minutes.parse()?, at_once.parse()?),
        _ => bail!(
            "usage: bench_clip synth DIR MINUTES MBIT | bench_clip clip DIR MINUTES [AT_ONCE]"
        ),
    }
}

fn synth(dir: &Path, minutes: i64, mbit: f64) -> anyhow::Result<()> {
    let gop_bytes = (mbit * 1e6 / 8.0 * (GOP_FRAMES / FPS) as f64) as usize;
    // The key frame carries a fifth of a GOP's bytes, the rest share the remainder.
    let key_bytes = gop_bytes / 5;
    let delta_bytes = (gop_bytes - key_bytes) / (GOP_FRAMES as usize - 1);
    let payload = Bytes::from(vec![0x5a; key_bytes.max(delta_bytes)]);
    let gops = minutes * 60 * FPS / GOP_FRAMES;
    // One 10 s segment (five GOPs) per slot with a quarter to spare, rounded up to MiB; slots
    // for the whole recording plus two, so nothing wraps.
    let slot_bytes = (5 * gop_bytes as u64 * 5 / 4).div_ceil(1 << 20) << 20;
    let size_bytes = (gops as u64 / 5 + 2) * slot_bytes;
    std::fs::create_dir_all(dir)?;
    init_store(
        dir,
        &InitOptions {
            size_bytes,
            slot_bytes: Some(slot_bytes),
            slot_count: None,
        },
        &mut |_| {},
    )
    .context("init store")?;
    let store = Store::open(dir)?;
    let mut writer = store.camera_writer(
        "bench",
        WriterOptions {
            sync_interval: Duration::from_secs(3600),
            ..WriterOptions::default()
        },
    )?;
    let params = synthetic::h264_params(1920, 1080);
    let frame_90k = 90_000 / FPS;
    let started = Instant::now();
    for n in 0..gops {
        let payloads =
            (0..GOP_FRAMES).map(|f| payload.slice(..if f == 0 { key_bytes } else { delta_bytes }));
        writer.append(&synthetic::gop(
            &params,
            T0_MS + n * GOP_FRAMES * 1000 / FPS,
            n * GOP_FRAMES * frame_90k,
            frame_90k as u32,
            payloads,
        ))?;
    }
    writer.close()?;
    println!(
        "synthesised {minutes} min at {mbit} Mbit/s ({gops} GOPs) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A field of /proc/self/status in KiB.
fn status_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} in /proc/self/status"))
}

/// One download; returns (bytes, seconds).
fn download(addr: &str, path: &str) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )?;
    // The client runs in the measured process: small buffers, so its own memory barely shows.
    let mut reader = BufReader::with_capacity(16 << 10, stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    if !status.contains(" 200 ") {
        bail!("clip request answered {status:?}");
    }
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse::<u64>().ok();
        }
    }
    let mut buffer = vec![0u8; 16 << 10];
    let mut received = 0u64;
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        received += read as u64;
    }
    if Some(received) != length {
        bail!("received {received} bytes, Content-Length said {length:?}");
    }
    Ok((received, started.elapsed().as_secs_f64()))
}

fn clip(dir: &Path, minutes: i64, at_once: usize) -> anyhow::Result<()> {
    let store = Store::open_read_only(dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let server = runtime.block_on(HttpServer::bind(
        "127.0.0.1:0".parse()?,
        store,
        Token::new(TOKEN),
    ))?;
    let addr = server.local_addr()?.to_string();
    std::thread::spawn(move || runtime.block_on(server.serve(std::future::pending())));
    // The clip: `minutes` from 30 s into the recording (mid-GOP, mid-segment, like a user's ask).
    let from_ms = T0_MS + 30_500;
    let to_ms = from_ms + minutes * 60_000;
    let path = format!("/api/clip.mp4?camera=bench&from={from_ms}&to={to_ms}");
    let baseline_kib = status_kib("VmRSS:")?;
    std::fs::write("/proc/self/clear_refs", "5").context("reset the peak RSS")?;
    download(&addr, &path)?; // warms the page cache
    let started = Instant::now();
    // One download runs on this thread, as the warm-up did; more get a thread each.
    let downloads: Vec<_> = (1..at_once)
        .map(|_| {
            let (addr, path) = (addr.clone(), path.clone());
            std::thread::spawn(move || download(&addr, &path))
        })
        .collect();
    let mut bytes = download(&addr, &path)?.0;
    for download in downloads {
        let (received, _) = download
            .join()
            .map_err(|_| anyhow::anyhow!("download thread panicked"))??;
        bytes += received;
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak_kib = status_kib("VmHWM:")?;
    println!(
        "clip {minutes} min x{at_once}: {:.1} MB in {seconds:.2} s = {:.0} MB/s; peak RSS {:.1} \
         MiB, {:.2} MiB above the idle baseline of {:.1} MiB",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / seconds,
        peak_kib as f64 / 1024.0,
        peak_kib.saturating_sub(baseline_kib) as f64 / 1024.0,
        baseline_kib as f64 / 1024.0,
    );
    Ok(())
}
