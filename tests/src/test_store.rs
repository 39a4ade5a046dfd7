//! Stores for the store tests, made with the daemon's own library calls: a store of 1 MiB slots,
//! and a camera writer fed a list of test GOPs (from [`crate::gops`]) and closed. Blocking file
//! I/O on the caller's thread; nothing here checks the result (that is the tests' job).

use std::path::Path;

use edgenvr::media::Gop;
use edgenvr::store::{init_store, InitOptions, Store, WriterOptions};

/// Wall-clock start of the test recordings: 2026-01-01T00:00:00Z.
pub const WALL_START_MS: i64 = 1_767_225_600_000;

/// The camera every store test records.
pub const CAMERA: &str = "front";

/// Initialises a store of `size_bytes` in `dir`, split into 1 MiB slots (room for well over 4 s
/// of the 320x240 test stream each). Does not open it, so another process may.
pub fn init_store_of_1mib_slots(dir: &Path, size_bytes: u64) -> anyhow::Result<()> {
    init_store(
        dir,
        &InitOptions {
            size_bytes,
            slot_bytes: Some(1 << 20),
            slot_count: None,
        },
        &mut |_| {},
    )?;
    Ok(())
}

/// Appends every GOP of `gops` to a new [`CAMERA`] writer of `store` with `options`, then closes
/// the writer (the final sync).
pub fn record_gops(store: &Store, options: WriterOptions, gops: &[Gop]) -> anyhow::Result<()> {
    let mut writer = store.camera_writer(CAMERA, options)?;
    for gop in gops {
        writer.append(gop)?;
    }
    writer.close()?;
    Ok(())
}
