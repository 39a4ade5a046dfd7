//! The recording floor (run by `scripts/bench-record.sh --floor`): the least a recorder of N
//! RTSP cameras can cost on this machine with the same RTSP client.
//!
//! `bench_floor URL N DIR` runs one process with a tokio current-thread runtime and N retina
//! sessions of URL (TCP interleaved, H.264/H.265 video only, MP4 frame format as edgenvr asks
//! for), and appends every access unit of session i to `DIR/floor-i.bin` through a 1 MiB
//! `BufWriter` — no muxing, no checksum, no index, no pre-roll, no sync. It stops at SIGINT or
//! SIGTERM, flushes, and prints `frames N`, the video frames written over all sessions (what
//! `scripts/bench-instructions.sh --floor` divides by). What edgenvr costs
//! above this is what the recorder adds; this is what the RTSP stream costs to receive.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{bail, Context};
use futures::StreamExt;
use retina::client::{self, PlayOptions, SessionOptions, SetupOptions};
use retina::codec::{CodecItem, FrameFormat};

/// The write buffer per session: large writes, as a recorder that batches per GOP makes.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, n, dir] = args.as_slice() else {
        bail!("usage: bench_floor URL N DIR");
    };
    let url = url::Url::parse(url).context("parsing URL")?;
    let n: usize = n.parse().context("parsing N")?;
    let dir = PathBuf::from(dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(url, n, &dir))
}

async fn run(url: url::Url, n: usize, dir: &Path) -> anyhow::Result<()> {
    let local = tokio::task::LocalSet::new();
    let frames = Rc::new(Cell::new(0u64));
    let mut sessions = Vec::new();
    for i in 0..n {
        let out = BufWriter::with_capacity(
            WRITE_BUFFER_BYTES,
            File::create(dir.join(format!("floor-{i}.bin")))?,
        );
        sessions.push(local.spawn_local(record(url.clone(), out, Rc::clone(&frames))));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    local
        .run_until(async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await;
    // Each session task holds its writer; aborting drops (and so flushes) it.
    for (i, session) in sessions.into_iter().enumerate() {
        session.abort();
        let counts = local.run_until(session).await;
        match counts {
            Err(e) if e.is_cancelled() => println!("session {i}: stopped"),
            Err(e) => println!("session {i}: {e}"),
            Ok(Err(e)) => println!("session {i}: failed: {e:#}"),
            Ok(Ok(())) => println!("session {i}: ended"),
        }
    }
    println!("frames {}", frames.get());
    Ok(())
}

/// One session: DESCRIBE, SETUP of the first video stream, PLAY, then every access unit's bytes
/// to `out` until the stream ends.
async fn record(
    url: url::Url,
    mut out: BufWriter<File>,
    frames: Rc<Cell<u64>>,
) -> anyhow::Result<()> {
    let mut described = client::Session::describe(url, SessionOptions::default()).await?;
    let video = described
        .streams()
        .iter()
        .position(|s| s.media() == "video")
        .context("no video stream")?;
    described
        .setup(
            video,
            SetupOptions::default()
                .transport(client::Transport::Tcp(Default::default()))
                .frame_format(FrameFormat::MP4),
        )
        .await?;
    let mut demuxed = described.play(PlayOptions::default()).await?.demuxed()?;
    while let Some(item) = demuxed.next().await {
        if let CodecItem::VideoFrame(frame) = item? {
            out.write_all(frame.data())?;
            frames.set(frames.get() + 1);
        }
    }
    out.flush()?;
    Ok(())
}
