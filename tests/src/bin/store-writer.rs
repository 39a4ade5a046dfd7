//! A stand-in recorder for crash tests: writes real H.264 GOPs into a store, one per line read
//! from stdin, and acknowledges each on stdout (`appended N`), so a test can kill it with SIGKILL
//! at a known point. Usage: `store-writer STORE_DIR WORK_DIR SEGMENT_SECONDS`.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use edgenvr::store::{Store, WriterOptions};
use edgenvr_tests::clips::Codec;
use edgenvr_tests::gops::gops;
use edgenvr_tests::h26x::encode_test_stream;
use edgenvr_tests::test_store::{CAMERA, WALL_START_MS};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, store_dir, work_dir, segment_seconds] = args.as_slice() else {
        anyhow::bail!("usage: store-writer STORE_DIR WORK_DIR SEGMENT_SECONDS");
    };
    let stream = encode_test_stream(Path::new(work_dir), Codec::H264, 20)?;
    let store = Store::open(Path::new(store_dir))?;
    let mut writer = store.camera_writer(
        CAMERA,
        WriterOptions {
            segment_90k: Some(segment_seconds.parse::<i64>()? * 90_000),
            // Never synced by time during the test: what survives a process crash is what the
            // kernel already holds, which is every completed write.
            sync_interval: Duration::from_secs(3600),
            share_slots: None,
        },
    )?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    let gops = gops(&stream, 0, WALL_START_MS);
    let mut lines = std::io::stdin().lock().lines();
    for (n, gop) in gops.iter().enumerate() {
        if lines.next().is_none() {
            break;
        }
        writer.append(gop)?;
        writeln!(stdout, "appended {}", n + 1)?;
        stdout.flush()?;
    }
    writer.close()?;
    Ok(())
}
