//! `fsck`: check every fragment of a store, repair what can be repaired, and report. Blocking
//! I/O; takes the store lock (a store being recorded is refused as [`StoreError::Locked`]).

use std::path::{Path, PathBuf};

use super::format::{slot_path, MarkerState, MARKER_FILE};
use super::init::{fill_slot, read_marker};
use super::lock::StoreLock;
use super::{OpenCheck, SlotFinding, Store, StoreError, StoreStats};

/// What `fsck` found and did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FsckReport {
    /// The store directory.
    pub dir: PathBuf,
    /// Slot files that were missing or short and were (re)filled with zeroes.
    pub refilled_slots: Vec<PathBuf>,
    /// Per-slot problems found by the full checksum scan, with the repair made.
    pub findings: Vec<SlotFinding>,
    /// Segments holding at least one intact fragment.
    pub segments: usize,
    /// Intact fragments.
    pub fragments: usize,
    /// Wear counters and usage.
    pub stats: StoreStats,
}

/// Checks and repairs the store in `dir`. `Ok` means the store is usable (after repairs).
pub fn fsck(dir: &Path) -> Result<FsckReport, StoreError> {
    let marker = read_marker(dir)?.ok_or_else(|| StoreError::NotAStore {
        path: dir.to_owned(),
        reason: format!("no {MARKER_FILE}"),
    })?;
    if marker.state != MarkerState::Ready {
        return Err(StoreError::NotAStore {
            path: dir.to_owned(),
            reason: "its initialisation did not finish; run `edgenvr store init` again to resume"
                .into(),
        });
    }
    let mut refilled_slots = Vec::new();
    {
        // Held while slot files are refilled; released before the full open takes it again
        // (flock locks belong to an open file, so the same process would conflict with itself).
        let _lock = StoreLock::acquire(&dir.join(MARKER_FILE))?;
        let zeroes = vec![0u8; 1 << 20];
        for index in 0..marker.slot_count {
            let path = slot_path(dir, index);
            let length = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if length < marker.slot_bytes {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| StoreError::io(parent, "create slots directory", e))?;
                }
                fill_slot(&path, marker.slot_bytes, &zeroes, 0, &mut |_| {})?;
                refilled_slots.push(path);
            }
        }
    }
    let store = Store::open_with(dir, OpenCheck::Everything)?;
    let segments = store.segments();
    Ok(FsckReport {
        dir: dir.to_owned(),
        refilled_slots,
        findings: store.recovery_findings().to_vec(),
        segments: segments.len(),
        fragments: segments.iter().map(|s| s.fragments.len()).sum(),
        stats: store.stats(),
    })
}
