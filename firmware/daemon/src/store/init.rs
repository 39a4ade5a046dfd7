//! Provisioning a store: the marker, then every slot file zero-filled to its full size.
//!
//! Zero-filling costs the whole size in writes once (minutes on a large USB disk), so progress is
//! reported through a callback and an interrupted init resumes: the marker is written first in
//! state `initialising` with the layout, each slot file is filled sequentially from its current
//! length, and the marker is rewritten in place as `ready` only when every slot is full and synced.
//! Why zeroes rather than `fallocate`: on ext4 the first lap over unwritten extents costs a journal
//! commit per sync (DESIGN.md, storage principles). Blocking I/O on the calling thread.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::format::{
    slot_path, Marker, MarkerState, FORMAT_VERSION, MARKER_FILE, MARKER_FORMAT, SLOTS_DIR,
    SLOT_HEADER_BYTES,
};
use super::lock::StoreLock;
use super::StoreError;

/// Default slot size: a 10 s segment of a camera at up to ~12 Mbit/s fits in one slot.
pub const DEFAULT_SLOT_BYTES: u64 = 16 << 20;
/// Smallest slot: the header page, an init segment and a few small GOPs.
pub const MIN_SLOT_BYTES: u64 = 64 << 10;
/// Largest slot: box sizes in a slot are 32-bit.
pub const MAX_SLOT_BYTES: u64 = (4 << 30) - SLOT_HEADER_BYTES;
/// Fewest slots: one being written while the previous one stays readable.
pub const MIN_SLOTS: u32 = 2;
/// A store smaller than this many default slots gets smaller slots instead, so cameras still
/// get a useful share each.
const MIN_DEFAULT_SLOTS: u64 = 8;
/// Zero-fill chunk: large sequential writes, and a progress report per MiB.
const FILL_CHUNK_BYTES: usize = 1 << 20;

/// How big a store to make. Give `size_bytes` and at most one of the slot options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InitOptions {
    /// Total bytes of slot files.
    pub size_bytes: u64,
    /// Size of each slot (rounded down to 4 KiB); default [`DEFAULT_SLOT_BYTES`].
    pub slot_bytes: Option<u64>,
    /// Number of slots (then the slot size is `size_bytes / slot_count`).
    pub slot_count: Option<u32>,
}

/// The shape of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Layout {
    /// Number of slot files.
    pub slot_count: u32,
    /// Bytes per slot file.
    pub slot_bytes: u64,
}

impl Layout {
    /// Works out slot count and size from `options`, checking the limits.
    pub fn plan(dir: &Path, options: &InitOptions) -> Result<Layout, StoreError> {
        let invalid = |problem: String| StoreError::Invalid {
            path: dir.to_owned(),
            problem,
        };
        let page = SLOT_HEADER_BYTES;
        let slot_bytes = match (options.slot_bytes, options.slot_count) {
            (Some(_), Some(_)) => {
                return Err(invalid("give a slot size or a slot count, not both".into()))
            }
            (Some(bytes), None) => bytes / page * page,
            (None, Some(0)) => return Err(invalid("slot count must be at least 2".into())),
            (None, Some(count)) => options.size_bytes / u64::from(count) / page * page,
            (None, None) => {
                DEFAULT_SLOT_BYTES.min(options.size_bytes / MIN_DEFAULT_SLOTS / page * page)
            }
        };
        if !(MIN_SLOT_BYTES..=MAX_SLOT_BYTES).contains(&slot_bytes) {
            return Err(invalid(format!(
                "slot size {slot_bytes} bytes is outside {MIN_SLOT_BYTES}..={MAX_SLOT_BYTES}; \
                 choose a larger store or a different slot size"
            )));
        }
        let slot_count = u32::try_from(options.size_bytes / slot_bytes)
            .map_err(|_| invalid("too many slots; choose a larger slot size".into()))?;
        if slot_count < MIN_SLOTS {
            return Err(invalid(format!(
                "a store of {} bytes holds {slot_count} slot(s) of {slot_bytes} bytes; \
                 at least {MIN_SLOTS} are needed",
                options.size_bytes
            )));
        }
        Ok(Layout {
            slot_count,
            slot_bytes,
        })
    }

    /// Total bytes of slot files.
    pub fn total_bytes(&self) -> u64 {
        u64::from(self.slot_count) * self.slot_bytes
    }
}

/// Progress of the zero-fill, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitProgress {
    /// Bytes of slot files provisioned so far (including those done before a resume).
    pub bytes_done: u64,
    /// Bytes when done.
    pub bytes_total: u64,
}

/// What [`init_store`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitOutcome {
    /// A new store was provisioned.
    Created,
    /// An interrupted init was finished.
    Resumed,
    /// The directory already was a store of this layout; nothing was written.
    AlreadyInitialised,
}

/// Provisions (or finishes provisioning) a store in `dir`, creating `dir` if needed.
///
/// Refuses a directory that holds other files, or a store of a different layout. Calls
/// `progress` after every MiB written. Blocking; takes minutes for large stores.
pub fn init_store(
    dir: &Path,
    options: &InitOptions,
    progress: &mut dyn FnMut(InitProgress),
) -> Result<(Layout, InitOutcome), StoreError> {
    let layout = Layout::plan(dir, options)?;
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, "create store directory", e))?;
    let marker_path = dir.join(MARKER_FILE);
    let (marker, outcome) = match read_marker(dir)? {
        Some(marker) => {
            let existing = Layout {
                slot_count: marker.slot_count,
                slot_bytes: marker.slot_bytes,
            };
            if existing != layout {
                return Err(StoreError::Invalid {
                    path: dir.to_owned(),
                    problem: format!(
                        "already a store of {} slots × {} bytes; the requested layout is {} × {}",
                        existing.slot_count,
                        existing.slot_bytes,
                        layout.slot_count,
                        layout.slot_bytes
                    ),
                });
            }
            match marker.state {
                MarkerState::Ready => return Ok((layout, InitOutcome::AlreadyInitialised)),
                MarkerState::Initialising => (marker, InitOutcome::Resumed),
            }
        }
        None => {
            refuse_non_empty(dir)?;
            let marker = Marker {
                format: MARKER_FORMAT.into(),
                version: FORMAT_VERSION,
                store_id: fastrand::u64(1..),
                slot_count: layout.slot_count,
                slot_bytes: layout.slot_bytes,
                state: MarkerState::Initialising,
            };
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker_path)
                .map_err(|e| StoreError::io(&marker_path, "create marker", e))?;
            file.write_all(&marker.encode())
                .and_then(|()| file.sync_all())
                .map_err(|e| StoreError::io(&marker_path, "write marker", e))?;
            sync_dir(dir)?;
            (marker, InitOutcome::Created)
        }
    };
    let lock = StoreLock::acquire(&marker_path)?;
    let slots_dir = dir.join(SLOTS_DIR);
    std::fs::create_dir_all(&slots_dir)
        .map_err(|e| StoreError::io(&slots_dir, "create slots directory", e))?;

    let zeroes = vec![0u8; FILL_CHUNK_BYTES];
    let bytes_total = layout.total_bytes();
    let mut bytes_done = 0u64;
    for index in 0..layout.slot_count {
        let path = slot_path(dir, index);
        bytes_done = fill_slot(&path, layout.slot_bytes, &zeroes, bytes_done, &mut |done| {
            progress(InitProgress {
                bytes_done: done,
                bytes_total,
            })
        })?;
    }
    sync_dir(&slots_dir)?;
    let ready = Marker {
        state: MarkerState::Ready,
        ..marker
    };
    lock.file()
        .write_all_at(&ready.encode(), 0)
        .and_then(|()| lock.file().sync_all())
        .map_err(|e| StoreError::io(lock.path(), "mark store ready", e))?;
    Ok((layout, outcome))
}

/// Fills `path` with zeroes up to `slot_bytes`, continuing from its current length. Returns the
/// running byte count.
pub(crate) fn fill_slot(
    path: &Path,
    slot_bytes: u64,
    zeroes: &[u8],
    mut bytes_done: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::io(path, "create slot file", e))?;
    let mut length = file
        .metadata()
        .map_err(|e| StoreError::io(path, "stat slot file", e))?
        .len();
    if length > slot_bytes {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            problem: format!("slot file is {length} bytes, larger than the slot size {slot_bytes}"),
        });
    }
    bytes_done += length;
    let was_full = length == slot_bytes;
    while length < slot_bytes {
        let chunk = zeroes
            .get(..(slot_bytes - length).min(zeroes.len() as u64) as usize)
            .unwrap_or(zeroes);
        file.write_all_at(chunk, length)
            .map_err(|e| StoreError::io(path, "zero-fill slot file", e))?;
        length += chunk.len() as u64;
        bytes_done += chunk.len() as u64;
        progress(bytes_done);
    }
    if !was_full {
        file.sync_all()
            .map_err(|e| StoreError::io(path, "sync slot file", e))?;
    }
    Ok(bytes_done)
}

/// Reads the marker of `dir`: `None` when there is none, an error when it is unreadable.
pub(crate) fn read_marker(dir: &Path) -> Result<Option<Marker>, StoreError> {
    let path = dir.join(MARKER_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(&path, "read marker", e)),
    };
    let marker: Marker = serde_json::from_slice(&bytes).map_err(|e| StoreError::NotAStore {
        path: dir.to_owned(),
        reason: format!("{MARKER_FILE} is not a valid store marker ({e})"),
    })?;
    if marker.format != MARKER_FORMAT {
        return Err(StoreError::NotAStore {
            path: dir.to_owned(),
            reason: format!("{MARKER_FILE} has format {:?}", marker.format),
        });
    }
    if marker.version != FORMAT_VERSION {
        return Err(StoreError::NotAStore {
            path: dir.to_owned(),
            reason: format!(
                "store format version {} is not supported (this build reads version {FORMAT_VERSION})",
                marker.version
            ),
        });
    }
    Ok(Some(marker))
}

fn refuse_non_empty(dir: &Path) -> Result<(), StoreError> {
    let mut entries =
        std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, "list directory", e))?;
    if entries.next().is_some() {
        return Err(StoreError::NotAStore {
            path: dir.to_owned(),
            reason: format!(
                "the directory holds files but no {MARKER_FILE}; refusing to initialise a store \
                 over them (use an empty directory)"
            ),
        });
    }
    Ok(())
}

/// Whether `dir` exists and has no entries.
pub(crate) fn is_empty_dir(dir: &Path) -> Result<bool, StoreError> {
    let mut entries =
        std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, "list directory", e))?;
    Ok(entries.next().is_none())
}

/// Makes a directory's entries durable (new files, renames).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, "sync directory", e))
}
