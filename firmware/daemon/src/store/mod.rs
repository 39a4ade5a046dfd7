//! The store: a wear-aware ring of preallocated slot files on the SD card or a USB disk, each
//! holding one fragmented-MP4 segment that players open directly.
//!
//! Receives whole GOPs from `record` through a [`CameraWriter`] per camera; emits, for `serve`
//! and `store ls`, the list of recordings ([`Store::recordings`], [`Store::segments`]) and the
//! bytes of init segments and fragments ([`Store::read_init`], [`Store::read_fragment`]).
//!
//! Wear rules (DESIGN.md): slot files are provisioned once by [`init_store`]; afterwards nothing
//! is created, deleted or truncated. A writer puts a segment's slot header, init segment and first
//! fragment in one write at the slot start, then each further GOP as one write, each followed by a
//! `free` box header that covers the rest of the slot (an older lap's bytes) so a player sees only
//! this segment. Data is synced (fdatasync) at most every `sync_interval`, and when a segment ends.
//!
//! Recovery: [`Store::open`] scans every slot's chain of fragment headers (segment id, index,
//! length, link to the entry before) and verifies the checksums of the newest segments of each
//! camera — the only ones that can hold unsynced, torn data — then covers any uncovered tail and
//! syncs what it verified. `fsck` verifies every checksum. The rule: design/storage.md.
//!
//! Availability: the store detaches from a directory that stops being the store or a disk that
//! fails, and attaches again by itself (`attach.rs`, [`Store::status`], [`Store::check`]).
//!
//! Threading: [`Store`] is a cheap `Clone` handle (`Arc`) usable from many threads; slot
//! allocation and the in-memory index sit behind one `Mutex`, taken once per GOP and never held
//! during I/O. All methods do blocking file I/O: call them from `spawn_blocking` or a thread per
//! camera, not from an async task directly. One process holds the store at a time (`flock`).
//!
//! ```no_run
//! # fn gops() -> Vec<edgenvr::media::Gop> { Vec::new() }
//! use edgenvr::store::{InitOptions, Store, WriterOptions};
//!
//! # fn main() -> Result<(), edgenvr::store::StoreError> {
//! let dir = std::path::Path::new("/mnt/usb/edgenvr");
//! // `record`: an existing empty directory is initialised, anything else must be a store.
//! let options = InitOptions { size_bytes: 8 << 30, ..InitOptions::default() };
//! let store = Store::open_or_init(dir, &options, &mut |_progress| {})?;
//! let mut writer = store.camera_writer("front", WriterOptions::default())?;
//! for gop in gops() {
//!     writer.append(&gop)?; // blocking: one write per GOP, fdatasync per sync_interval
//! }
//! writer.close()?;
//! // `serve`: ranges for listing, bytes for clips.
//! for segment in store.segments() {
//!     let init = store.read_init(&segment)?;
//!     for fragment in &segment.fragments {
//!         let moof_mdat = store.read_fragment(&segment, fragment)?;
//! #       let _ = (&init, moof_mdat);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod attach;
pub mod checksum;
mod cli_ops;
mod error;
pub mod format;
mod init;
mod listing;
mod lock;
mod ring;
pub mod scan;
mod writer;

pub mod cli;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub use cli_ops::{fsck, FsckReport};
pub use error::StoreError;
pub use format::{EventInfo, EventRecord, SegmentKind};
pub use init::{
    init_store, InitOptions, InitOutcome, InitProgress, Layout, DEFAULT_SLOT_BYTES, MIN_SLOT_BYTES,
};
pub use listing::{
    CameraRecordings, CameraTotals, EventRecording, RecordingRange, GAP_TOLERANCE_MS,
};
pub use scan::{FragmentInfo, ScanEnd, Verify};
pub use writer::{CameraWriter, WriterOptions};

use format::{
    slot_path, Marker, MarkerState, SlotHeader, CRC32C, FRAGMENT_HEADER_BYTES, FREE_HEADER_BYTES,
    MARKER_FILE, SLOT_HEADER_BYTES,
};
use lock::StoreLock;
use scan::{scan_slot, SlotScan};

use crate::media::VideoCodec;

/// An open, locked store. Clone it to share it between cameras and the HTTP server.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    marker: Marker,
    /// Opened for writing (holding the lock while attached).
    writable: bool,
    /// The lock, and whether the directory is still this store (see `attach.rs`).
    attach: attach::Attachment,
    ring: Mutex<RingState>,
    recovery: Vec<SlotFinding>,
}

/// The in-memory index of the ring; guarded by `Inner::ring`.
#[derive(Debug)]
struct RingState {
    slots: Vec<SlotState>,
    next_segment_id: u64,
    /// Cameras with an open writer, and the share each asked for (None: an equal share).
    writers: BTreeMap<String, Option<u32>>,
    /// How many of the newest event segments are protected from wrapping (see `ring.rs`).
    event_share: u32,
    /// The next event's id: one more than any event record in the store at open.
    next_event_id: u64,
    /// Fragments each camera has written to the store: the running total its newest segment
    /// carried at open, plus every fragment since.
    written: BTreeMap<String, u64>,
    /// Fragments of each camera wrapped over: what was written but is no longer listed at
    /// open, plus every fragment in a slot the ring reused since.
    overwritten: BTreeMap<String, u64>,
    /// `written` and `overwritten` as they were at open.
    at_open: (BTreeMap<String, u64>, BTreeMap<String, u64>),
    /// Bumped when the store detaches or attaches again: a writer's open segment of an older
    /// generation is dropped, and never updates the index.
    generation: u64,
}

impl RingState {
    /// The running total of fragments `camera` has written.
    fn camera_written(&self, camera: &str) -> u64 {
        self.written.get(camera).copied().unwrap_or(0)
    }
}

#[derive(Debug, Default)]
struct SlotState {
    header: Option<SlotHeader>,
    /// The event records in the segment's chain.
    events: Vec<EventRecord>,
    fragments: Vec<FragmentInfo>,
    /// Where the segment's next fragment goes.
    end_offset: u64,
    /// A writer is filling this slot.
    busy: bool,
    counters: SlotCounters,
}

impl SlotState {
    /// Whether the segment is event video: started during an event or holding an event record.
    fn is_event(&self) -> bool {
        !self.events.is_empty()
            || self
                .header
                .as_ref()
                .is_some_and(|h| h.kind == SegmentKind::Event)
    }
}

/// Wear counters of one slot file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SlotCounters {
    /// Bytes written to the slot file since the store was provisioned (zero-fill excluded).
    /// Survives restarts: earlier laps are in the slot header, the current one is scanned.
    pub bytes_written: u64,
    /// fdatasync calls on the slot file (after a restart, reconstructed from the fragment
    /// headers: may be one too high for a segment a crash cut short).
    pub syncs: u64,
    /// Segments written into the slot.
    pub segments: u64,
}

/// Wear and usage of the whole store.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// The layout.
    pub layout: Layout,
    /// Slots holding a segment.
    pub slots_in_use: u32,
    /// Sum over slots.
    pub totals: SlotCounters,
    /// Per slot, by index.
    pub per_slot: Vec<SlotCounters>,
}

/// A problem recovery found in one slot, and what it did about it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SlotFinding {
    /// Slot index.
    pub slot: u32,
    /// Slot file.
    pub path: PathBuf,
    /// What was found.
    pub problem: String,
    /// The repair made, if any.
    pub repair: Option<String>,
}

/// One segment as listed: where its bytes are and what they hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The slot holding it.
    pub slot: u32,
    /// Store-wide increasing id: recording order.
    pub segment_id: u64,
    /// Camera name.
    pub camera: String,
    /// How the segment started (see [`SegmentInfo::is_event`] for what it holds).
    pub kind: SegmentKind,
    /// The event records in the segment, in the order written: each event's state when it
    /// began, changed, ended, or was carried into this segment.
    pub events: Vec<EventRecord>,
    /// Video codec.
    pub codec: VideoCodec,
    /// Coded width.
    pub width: u16,
    /// Coded height.
    pub height: u16,
    /// Whether there is an AAC track.
    pub has_audio: bool,
    /// Length of the init segment (at byte 4096 of the slot).
    pub init_len: u32,
    /// Wall-clock time of the first frame, Unix ms.
    pub start_wall_ms: i64,
    /// The intact fragments, in order.
    pub fragments: Vec<FragmentInfo>,
    /// The slot file (playable as it is).
    pub path: PathBuf,
}

impl SegmentInfo {
    /// Whether the segment is event video (started during an event or holding an event
    /// record); the ring protects the newest of these (see `ring.rs`).
    pub fn is_event(&self) -> bool {
        self.kind == SegmentKind::Event || !self.events.is_empty()
    }

    /// Media duration of all fragments, 90 kHz.
    pub fn media_duration_90k(&self) -> u64 {
        self.fragments
            .iter()
            .map(|f| u64::from(f.duration_90k))
            .sum()
    }
}

/// How [`Store::open_with`] checks fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenCheck {
    /// Checksums of each camera's two newest segments (the only ones that can be torn), headers
    /// of the rest. What [`Store::open`] does.
    Newest,
    /// Checksums of every fragment (reads the whole store; `fsck`).
    Everything,
}

/// By default the newest quarter of the slots' worth of event segments is protected from
/// wrapping (`[storage] event_share`, see `ring.rs`).
pub const DEFAULT_EVENT_SHARE_PERCENT: u32 = 25;

/// Segments per camera whose checksums [`OpenCheck::Newest`] verifies: the one being written at a
/// crash and the one before it, whose final sync may have been in flight.
const NEWEST_SEGMENTS_VERIFIED: usize = 2;

impl Store {
    /// Opens and locks the store in `dir`, running the recovery scan.
    ///
    /// Refuses a directory without a ready marker ([`StoreError::NotAStore`]), a store another
    /// process holds ([`StoreError::Locked`]) and missing or wrong-sized slot files
    /// ([`StoreError::Corrupt`]; `fsck` repairs those).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, OpenCheck::Newest)
    }

    /// Opens `dir` if it is a store; if it is an existing, empty directory, initialises it with
    /// `options` first (the `record` command's behaviour). A missing directory is refused rather
    /// than created, so a mount point that is not mounted is not silently replaced.
    pub fn open_or_init(
        dir: &Path,
        options: &InitOptions,
        progress: &mut dyn FnMut(InitProgress),
    ) -> Result<Store, StoreError> {
        let not_found = || StoreError::NotAStore {
            path: dir.to_owned(),
            reason: "the directory does not exist (is the disk mounted?)".into(),
        };
        if !dir.is_dir() {
            return Err(not_found());
        }
        let resumable = matches!(
            init::read_marker(dir)?,
            Some(Marker {
                state: MarkerState::Initialising,
                ..
            })
        );
        if init::is_empty_dir(dir)? || resumable {
            init_store(dir, options, progress)?;
        }
        Store::open(dir)
    }

    /// Opens `dir` with the given depth of checking.
    pub fn open_with(dir: &Path, check: OpenCheck) -> Result<Store, StoreError> {
        Store::open_inner(dir, check, true)
    }

    /// Opens `dir` for listing and reading only, without the lock, so it works while another
    /// process records. Repairs nothing (findings say what `open` would repair), and refuses
    /// writers. A slot being written at that moment lists up to its last complete fragment.
    pub fn open_read_only(dir: &Path) -> Result<Store, StoreError> {
        Store::open_inner(dir, OpenCheck::Newest, false)
    }

    fn open_inner(dir: &Path, check: OpenCheck, writable: bool) -> Result<Store, StoreError> {
        let marker = match init::read_marker(dir) {
            Ok(Some(marker)) => marker,
            Ok(None) => {
                return Err(StoreError::NotAStore {
                    path: dir.to_owned(),
                    reason: if dir.is_dir() {
                        format!("no {MARKER_FILE}; initialise it with `edgenvr store init`")
                    } else {
                        "the directory does not exist (is the disk mounted?)".into()
                    },
                })
            }
            Err(e) => return Err(e),
        };
        if marker.state != MarkerState::Ready {
            return Err(StoreError::NotAStore {
                path: dir.to_owned(),
                reason: "its initialisation did not finish; run `edgenvr store init` with the \
                         same size again to resume it"
                    .into(),
            });
        }
        let lock = if writable {
            Some(StoreLock::acquire(&dir.join(MARKER_FILE))?)
        } else {
            None
        };
        check_slot_files(dir, &marker)?;
        let (slots, recovery) = recover(dir, &marker, check, writable)?;
        let next_segment_id = slots
            .iter()
            .filter_map(|s| s.header.as_ref().map(|h| h.segment_id))
            .max()
            .unwrap_or(0)
            + 1;
        let next_event_id = slots
            .iter()
            .flat_map(|s| s.events.iter().map(|r| r.event.id))
            .max()
            .unwrap_or(0)
            + 1;
        let (written, overwritten) = camera_counts_at_open(&slots);
        tracing::info!(
            dir = %dir.display(),
            slots = marker.slot_count,
            in_use = slots.iter().filter(|s| s.header.is_some()).count(),
            repaired = recovery.iter().filter(|f| f.repair.is_some()).count(),
            "store opened"
        );
        let event_share = event_share_slots(marker.slot_count, DEFAULT_EVENT_SHARE_PERCENT);
        Ok(Store {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                marker,
                writable,
                attach: attach::Attachment::new(lock),
                ring: Mutex::new(RingState {
                    event_share,
                    slots,
                    next_segment_id,
                    writers: BTreeMap::new(),
                    next_event_id,
                    at_open: (written.clone(), overwritten.clone()),
                    written,
                    overwritten,
                    generation: 0,
                }),
                recovery,
            }),
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Slot count and size.
    pub fn layout(&self) -> Layout {
        Layout {
            slot_count: self.inner.marker.slot_count,
            slot_bytes: self.inner.marker.slot_bytes,
        }
    }

    /// Sets how many of the newest event segments are protected from wrapping (default
    /// [`DEFAULT_EVENT_SHARE_PERCENT`] of the slots); older event segments age like any video.
    pub fn set_event_share_slots(&self, slots: u32) {
        self.ring().event_share = slots;
    }

    /// Sets the protected event share as a percentage of the slots (`[storage] event_share`).
    pub fn set_event_share_percent(&self, percent: u32) {
        self.set_event_share_slots(event_share_slots(self.layout().slot_count, percent));
    }

    /// Per camera: fragments written to the store, listed now, and wrapped over by the ring —
    /// `written == listed + overwritten` unless something was lost (see [`CameraTotals`]).
    pub fn camera_totals(&self) -> Vec<CameraTotals> {
        let ring = self.ring();
        let mut listed: BTreeMap<&str, u64> = BTreeMap::new();
        for slot in &ring.slots {
            if let Some(header) = &slot.header {
                *listed.entry(header.camera.as_str()).or_default() += slot.fragments.len() as u64;
            }
        }
        let cameras: std::collections::BTreeSet<&str> = ring
            .written
            .keys()
            .chain(ring.overwritten.keys())
            .map(String::as_str)
            .chain(listed.keys().copied())
            .collect();
        cameras
            .into_iter()
            .map(|camera| {
                let count = |map: &BTreeMap<String, u64>| map.get(camera).copied().unwrap_or(0);
                CameraTotals {
                    camera: camera.to_owned(),
                    fragments_written: count(&ring.written),
                    fragments_listed: listed.get(camera).copied().unwrap_or(0),
                    fragments_overwritten: count(&ring.overwritten),
                    written_since_open: count(&ring.written) - count(&ring.at_open.0),
                    overwritten_since_open: count(&ring.overwritten) - count(&ring.at_open.1),
                }
            })
            .collect()
    }

    /// Whether this handle may write (it was opened holding the lock).
    pub fn is_writable(&self) -> bool {
        self.inner.writable
    }

    /// What the recovery scan at open found and repaired.
    pub fn recovery_findings(&self) -> &[SlotFinding] {
        &self.inner.recovery
    }

    /// Opens the writer for `camera` (one per camera at a time; see [`CameraWriter`]).
    pub fn camera_writer(
        &self,
        camera: &str,
        options: WriterOptions,
    ) -> Result<CameraWriter, StoreError> {
        CameraWriter::new(self.clone(), camera, options)
    }

    /// Every segment in the store that holds at least one fragment, in recording order
    /// (segment id), including the one being written.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let ring = self.ring();
        let mut segments: Vec<SegmentInfo> = ring
            .slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                let header = slot.header.as_ref()?;
                if slot.fragments.is_empty() {
                    return None;
                }
                Some(SegmentInfo {
                    slot: index as u32,
                    segment_id: header.segment_id,
                    camera: header.camera.clone(),
                    kind: header.kind,
                    events: slot.events.clone(),
                    codec: header.codec,
                    width: header.width,
                    height: header.height,
                    has_audio: header.has_audio,
                    init_len: header.init_len,
                    start_wall_ms: header.start_wall_ms,
                    fragments: slot.fragments.clone(),
                    path: slot_path(&self.inner.dir, index as u32),
                })
            })
            .collect();
        segments.sort_by_key(|s| s.segment_id);
        segments
    }

    /// Recordings per camera as time ranges with the gaps between them (see [`RecordingRange`]).
    pub fn recordings(&self) -> Vec<CameraRecordings> {
        listing::recordings(&self.segments())
    }

    /// Reads a segment's init segment (`ftyp` + `moov`), checking that the slot still holds the
    /// segment ([`StoreError::Overwritten`] otherwise).
    pub fn read_init(&self, segment: &SegmentInfo) -> Result<Vec<u8>, StoreError> {
        let path = slot_path(&self.inner.dir, segment.slot);
        let file = File::open(&path).map_err(|e| StoreError::io(&path, "open slot", e))?;
        let mut region = vec![0u8; SLOT_HEADER_BYTES as usize];
        file.read_exact_at(&mut region, 0)
            .map_err(|e| StoreError::io(&path, "read slot header", e))?;
        let overwritten = || StoreError::Overwritten {
            path: path.clone(),
            offset: 0,
        };
        let header = SlotHeader::decode(&region).map_err(|_| overwritten())?;
        if header.segment_id != segment.segment_id {
            return Err(overwritten());
        }
        let mut init = vec![0u8; header.init_len as usize];
        file.read_exact_at(&mut init, SLOT_HEADER_BYTES)
            .map_err(|e| StoreError::io(&path, "read init segment", e))?;
        if CRC32C.checksum(&init) != header.init_crc {
            return Err(overwritten());
        }
        Ok(init)
    }

    /// Reads one fragment's body (`moof` + `mdat`), checking its header and checksum so bytes
    /// overwritten since listing are reported as [`StoreError::Overwritten`], never returned.
    pub fn read_fragment(
        &self,
        segment: &SegmentInfo,
        fragment: &FragmentInfo,
    ) -> Result<Vec<u8>, StoreError> {
        let path = slot_path(&self.inner.dir, segment.slot);
        let file = File::open(&path).map_err(|e| StoreError::io(&path, "open slot", e))?;
        let mut bytes = vec![0u8; FRAGMENT_HEADER_BYTES as usize + fragment.body_len as usize];
        file.read_exact_at(&mut bytes, fragment.offset)
            .map_err(|e| StoreError::io(&path, "read fragment", e))?;
        let (head, body) = bytes.split_at(FRAGMENT_HEADER_BYTES as usize);
        let intact = format::FragmentHeader::decode(head).is_some_and(|(header, crc)| {
            header.segment_id == segment.segment_id
                && header.index == fragment.index
                && crc == fragment.crc
                && format::FragmentHeader::checksum_matches(head, body, crc)
        });
        if !intact {
            return Err(StoreError::Overwritten {
                path,
                offset: fragment.offset,
            });
        }
        bytes.drain(..FRAGMENT_HEADER_BYTES as usize);
        Ok(bytes)
    }

    /// Wear counters and usage.
    pub fn stats(&self) -> StoreStats {
        let ring = self.ring();
        let per_slot: Vec<SlotCounters> = ring.slots.iter().map(|s| s.counters).collect();
        let totals = per_slot
            .iter()
            .fold(SlotCounters::default(), |a, c| SlotCounters {
                bytes_written: a.bytes_written + c.bytes_written,
                syncs: a.syncs + c.syncs,
                segments: a.segments + c.segments,
            });
        StoreStats {
            layout: self.layout(),
            slots_in_use: ring.slots.iter().filter(|s| s.header.is_some()).count() as u32,
            totals,
            per_slot,
        }
    }

    fn ring(&self) -> MutexGuard<'_, RingState> {
        // A panic while holding the lock cannot leave the index half-updated in a way that
        // matters more than losing it; keep serving.
        self.inner
            .ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether the file system holding `dir` is mounted read-only.
fn read_only_fs(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: all-zero bytes are a valid `statvfs` (plain integers); statvfs reads the
    // NUL-terminated path we own and writes only into the struct we pass.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    rc == 0 && stats.f_flag & libc::ST_RDONLY != 0
}

fn check_slot_files(dir: &Path, marker: &Marker) -> Result<(), StoreError> {
    for index in 0..marker.slot_count {
        let path = slot_path(dir, index);
        let length = std::fs::metadata(&path)
            .map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                problem: format!("slot file unusable ({e}); `edgenvr store fsck` recreates it"),
            })?
            .len();
        if length != marker.slot_bytes {
            return Err(StoreError::Corrupt {
                path,
                problem: format!(
                    "slot file is {length} bytes, expected {}; `edgenvr store fsck` repairs it",
                    marker.slot_bytes
                ),
            });
        }
    }
    Ok(())
}

/// Scans every slot, verifies checksums where `check` asks, and covers uncovered tails.
fn recover(
    dir: &Path,
    marker: &Marker,
    check: OpenCheck,
    repair: bool,
) -> Result<(Vec<SlotState>, Vec<SlotFinding>), StoreError> {
    let first_pass = match check {
        OpenCheck::Newest => Verify::Headers,
        OpenCheck::Everything => Verify::Checksums,
    };
    let mut scans = Vec::with_capacity(marker.slot_count as usize);
    for index in 0..marker.slot_count {
        scans.push(scan_one(dir, marker, index, first_pass)?);
    }
    if check == OpenCheck::Newest {
        let mut by_camera: BTreeMap<&str, Vec<(u64, u32)>> = BTreeMap::new();
        for (index, scan) in scans.iter().enumerate() {
            if let Some(header) = &scan.header {
                by_camera
                    .entry(header.camera.as_str())
                    .or_default()
                    .push((header.segment_id, index as u32));
            }
        }
        let mut newest = Vec::new();
        for segments in by_camera.values_mut() {
            segments.sort_unstable_by(|a, b| b.cmp(a));
            newest.extend(segments.iter().take(NEWEST_SEGMENTS_VERIFIED).map(|s| s.1));
        }
        for index in newest {
            let rescan = scan_one(dir, marker, index, Verify::Checksums)?;
            if let Some(slot) = scans.get_mut(index as usize) {
                *slot = rescan;
            }
            if repair {
                // What was just verified may still be only in the page cache (the previous
                // process was killed, not the power): put it on the card before new segments
                // push this one out of the newest two, after which only its headers are read.
                sync_slot(dir, index)?;
            }
        }
    }

    let mut findings = Vec::new();
    let mut slots = Vec::with_capacity(scans.len());
    for (index, scan) in scans.into_iter().enumerate() {
        let index = index as u32;
        let path = slot_path(dir, index);
        let mut finding = |problem: String, repair: Option<String>| {
            findings.push(SlotFinding {
                slot: index,
                path: path.clone(),
                problem,
                repair,
            })
        };
        if let Some(problem) = &scan.header_problem {
            if *problem != format::HeaderError::Empty {
                finding(format!("{problem}; slot treated as empty"), None);
            }
        }
        if scan.init_damaged {
            finding(
                "init segment checksum mismatch; slot treated as empty".into(),
                None,
            );
        }
        if let Some(header) = &scan.header {
            if scan.end != ScanEnd::TailCover && scan.end != ScanEnd::SlotEnd {
                let repair = if repair {
                    cover_tail(&path, marker.slot_bytes, scan.end_offset)?
                } else {
                    "none (opened read-only; `fsck` or the next recorder covers the tail)".into()
                };
                finding(
                    format!(
                        "segment {} of camera {}: scan stopped after {} fragment(s) at {}",
                        header.segment_id,
                        header.camera,
                        scan.fragments.len(),
                        describe_end(&scan.end)
                    ),
                    Some(repair),
                );
            }
        }
        slots.push(slot_state(scan));
    }
    Ok((slots, findings))
}

fn scan_one(
    dir: &Path,
    marker: &Marker,
    index: u32,
    verify: Verify,
) -> Result<SlotScan, StoreError> {
    let path = slot_path(dir, index);
    let file = File::open(&path).map_err(|e| StoreError::io(&path, "open slot", e))?;
    scan_slot(&file, marker.slot_bytes, marker.store_id, index, verify)
        .map_err(|e| StoreError::io(&path, "scan slot", e))
}

fn sync_slot(dir: &Path, index: u32) -> Result<(), StoreError> {
    let path = slot_path(dir, index);
    File::open(&path)
        .and_then(|file| file.sync_data())
        .map_err(|e| StoreError::io(&path, "sync slot", e))
}

fn describe_end(end: &ScanEnd) -> String {
    match end {
        ScanEnd::TailCover => "the tail cover".into(),
        ScanEnd::SlotEnd => "the slot end".into(),
        ScanEnd::NotAFragment => "bytes that are not a fragment (torn write)".into(),
        ScanEnd::BadEventRecord => "an event record that fails its checksum (torn write)".into(),
        ScanEnd::OlderLap => "a fragment of an older lap".into(),
        ScanEnd::ChecksumFailed { index } => format!("fragment {index} failing its checksum"),
        ScanEnd::TooLong => "a fragment longer than the slot".into(),
        ScanEnd::BrokenLink { index } => format!(
            "fragment {index} of an earlier write of this segment (it does not link to the \
             entry before it)"
        ),
    }
}

/// Writes the `free` header that hides a slot's bytes after `end_offset` from players.
fn cover_tail(path: &Path, slot_bytes: u64, end_offset: u64) -> Result<String, StoreError> {
    let remaining = slot_bytes.saturating_sub(end_offset);
    if remaining < FREE_HEADER_BYTES {
        return Ok("nothing to cover".into());
    }
    let mut cover = Vec::with_capacity(FREE_HEADER_BYTES as usize);
    crate::mux::boxes::put_free_box_header(&mut cover, remaining as u32);
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, "open slot for repair", e))?;
    file.write_all_at(&cover, end_offset)
        .and_then(|()| file.sync_data())
        .map_err(|e| StoreError::io(path, "cover slot tail", e))?;
    Ok(format!(
        "covered the {remaining} bytes after byte {end_offset} with a free box"
    ))
}

fn slot_state(mut scan: SlotScan) -> SlotState {
    // The index holds what the slot holds and no growth slack (see `release_slot`).
    scan.fragments.shrink_to_fit();
    scan.events.shrink_to_fit();
    let counters = match &scan.header {
        Some(header) => SlotCounters {
            // The first write covers the slot up to the first fragment's end, each later one a
            // fragment; every write also carries the tail cover's 8 bytes. A linked segment
            // that reused its slot wrote its header page once more, first.
            bytes_written: header.lifetime_bytes_before
                + if header.linked && header.laps_before > 0 {
                    SLOT_HEADER_BYTES
                } else {
                    0
                }
                + if scan.fragments.is_empty() {
                    0
                } else {
                    scan.end_offset + FREE_HEADER_BYTES * scan.fragments.len() as u64
                },
            // The writer syncs at least once after a segment's last fragment (interval, segment
            // end or close), so count that one too: exact for segments that ended normally, one
            // too many for a segment cut short by a crash.
            syncs: header.lifetime_syncs_before
                + scan
                    .fragments
                    .last()
                    .map_or(0, |f| u64::from(f.segment_syncs) + 1),
            segments: u64::from(header.laps_before) + 1,
        },
        None => SlotCounters::default(),
    };
    SlotState {
        header: scan.header,
        events: scan.events,
        fragments: scan.fragments,
        end_offset: scan.end_offset,
        busy: false,
        counters,
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod tests;

/// `percent` of `slot_count` slots, rounded down.
fn event_share_slots(slot_count: u32, percent: u32) -> u32 {
    (u64::from(slot_count) * u64::from(percent.min(100)) / 100) as u32
}

/// Each camera's fragments written and wrapped over, as far as the slots tell at open: a
/// camera's newest segment carries its running total of fragments before it; what is not listed
/// any more of that total was wrapped over (or lost to damage the recovery scan found).
fn camera_counts_at_open(slots: &[SlotState]) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let mut newest: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut listed: BTreeMap<&str, u64> = BTreeMap::new();
    for slot in slots {
        let Some(header) = &slot.header else { continue };
        let count = slot.fragments.len() as u64;
        *listed.entry(header.camera.as_str()).or_default() += count;
        let total = header.camera_fragments_before.saturating_add(count);
        let entry = newest.entry(header.camera.as_str()).or_insert((0, 0));
        if header.segment_id >= entry.0 {
            *entry = (header.segment_id, total);
        }
    }
    let mut written = BTreeMap::new();
    let mut overwritten = BTreeMap::new();
    for (camera, (_, total)) in newest {
        let listed = listed.get(camera).copied().unwrap_or(0);
        written.insert(camera.to_owned(), total.max(listed));
        overwritten.insert(camera.to_owned(), total.saturating_sub(listed));
    }
    (written, overwritten)
}
