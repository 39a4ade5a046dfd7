//! Writes synthetic video into a store in real time, for measuring what reaches the device
//! (`scripts/bench-store-wear.sh` reads the block-layer counters around it).
//!
//! Usage: `store_wear DIR SECONDS KBIT_PER_S SYNC_INTERVAL_MS`. One 25-frame GOP per second of
//! random bytes (the store does not parse video), paced by the wall clock because compressing
//! time hides the cost of syncs and journal commits (DESIGN.md). Prints the video bytes handed
//! to the store and the store's own counters as JSON.

use std::time::{Duration, Instant};

use bytes::Bytes;
use edgenvr::media::synthetic;
use edgenvr::store::{Store, WriterOptions};

/// Frames per GOP and per second: a camera at 25 fps with one key frame a second.
const FRAMES_PER_GOP: usize = 25;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, seconds, kbps, sync_ms] = args.as_slice() else {
        anyhow::bail!("usage: store_wear DIR SECONDS KBIT_PER_S SYNC_INTERVAL_MS");
    };
    let seconds: u64 = seconds.parse()?;
    let bytes_per_gop = kbps.parse::<usize>()? * 1000 / 8;
    let store = Store::open(std::path::Path::new(dir))?;
    let params = synthetic::h264_params(1920, 1080);
    let mut writer = store.camera_writer(
        "bench",
        WriterOptions {
            sync_interval: Duration::from_millis(sync_ms.parse()?),
            ..WriterOptions::default()
        },
    )?;
    let mut rng = fastrand::Rng::with_seed(7);
    let frame_bytes = bytes_per_gop / FRAMES_PER_GOP;
    let mut video_bytes = 0u64;
    let start = Instant::now();
    for second in 0..seconds {
        let payloads = (0..FRAMES_PER_GOP).map(|_| {
            // One NAL unit of random bytes behind its 4-byte length.
            let mut data = vec![0u8; frame_bytes.max(5)];
            rng.fill(&mut data);
            let nal_len = (data.len() - 4) as u32;
            data[..4].copy_from_slice(&nal_len.to_be_bytes());
            Bytes::from(data)
        });
        let gop = synthetic::gop(
            &params,
            1_767_225_600_000 + second as i64 * 1000,
            second as i64 * 90_000,
            3600,
            payloads,
        );
        video_bytes += gop.payload_bytes() as u64;
        // A GOP is complete one second after it started: wait for that moment.
        let due = Duration::from_secs(second + 1);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        writer.append(&gop)?;
    }
    writer.close()?;
    let stats = store.stats();
    println!(
        "{}",
        serde_json::json!({
            "video_bytes": video_bytes,
            "store_bytes_written": stats.totals.bytes_written,
            "store_syncs": stats.totals.syncs,
            "segments": stats.totals.segments,
        })
    );
    Ok(())
}
