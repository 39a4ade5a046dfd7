//! Checking what `edgenvr record`/`run` left in a store: every segment (slot file) plays, and the
//! listing `edgenvr store ls --json` as data.

use std::path::{Path, PathBuf};

use edgenvr::store::Store;

use crate::ffprobe::{count_video_frames, decode_errors};

/// One recorded segment as the store lists it.
#[derive(Debug)]
pub struct Segment {
    /// The camera.
    pub camera: String,
    /// The slot file (a playable fMP4).
    pub path: PathBuf,
    /// Fragments (GOPs) the store found intact.
    pub fragments: usize,
    /// Frames ffprobe decoded.
    pub frames: u64,
}

/// Opens the store (it must not be locked by a running recorder), lists every segment, and
/// checks each plays: ffprobe counts frames without an error and a full decode prints nothing.
pub fn playable_segments(dir: &Path) -> anyhow::Result<Vec<Segment>> {
    let store = Store::open(dir)?;
    let mut segments = Vec::new();
    for info in store.segments() {
        let errors = decode_errors(&info.path)?;
        anyhow::ensure!(
            errors.trim().is_empty(),
            "{} does not decode cleanly: {errors}",
            info.path.display()
        );
        segments.push(Segment {
            camera: info.camera.clone(),
            frames: count_video_frames(&info.path)?,
            fragments: info.fragments.len(),
            path: info.path.clone(),
        });
    }
    Ok(segments)
}

/// `edgenvr store ls DIR --json`, parsed.
pub fn store_ls(edgenvr: &Path, dir: &Path) -> anyhow::Result<serde_json::Value> {
    let out = std::process::Command::new(edgenvr)
        .args(["store", "ls"])
        .arg(dir)
        .arg("--json")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "store ls failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}
