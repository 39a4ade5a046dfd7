//! The store's own status, and its hold on its directory: a store detaches when its directory
//! stops being the store it opened (renamed away, unmounted — lazily or not —, replaced), or
//! when writing fails (I/O error, read-only file system, no space), and attaches again by itself
//! when the directory is the same store again and a write works.
//!
//! Receives the outcome of the writers' failed writes ([`Store::write_failed`]) and periodic
//! checks ([`Store::check`], about once a second from the daemon). Emits the store's
//! [`StoreState`] ([`Store::status`]) and the number of outages ([`Store::outages`]).
//!
//! While detached, camera writers refuse GOPs at once ([`StoreError::Unavailable`]) without
//! opening any file, and drop their open segment unsynced: nothing goes through descriptors of a
//! directory that is no longer the store, and nothing is created under the path, so an empty
//! mount point underneath a vanished disk stays empty. Attaching again rescans the slots
//! (recovery as at open, see design/storage.md) and swaps the index, so listings show what the
//! disk really holds after the outage.
//!
//! Threading: [`Store::check`] does blocking I/O (a rescan on attaching); call it from a
//! blocking thread. The status is an atomic, cheap to read from anywhere.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use edgenvr_proto::StoreState;

use super::format::{MarkerState, MARKER_FILE};
use super::lock::StoreLock;
use super::{check_slot_files, init, recover, OpenCheck, Store, StoreError};

/// The store's hold on its directory; part of the store's shared state.
#[derive(Debug)]
pub(super) struct Attachment {
    /// Fast path for writers: false while detached.
    attached: AtomicBool,
    /// [`StoreState`] as its wire code.
    state: AtomicU8,
    outages: AtomicU64,
    /// The lock (writable stores) and the (device, inode) of the locked marker: the directory is
    /// still the store while its marker path names that same file. Taken only by [`Store::check`],
    /// detaching and attaching, never during a rescan.
    hold: Mutex<Hold>,
}

#[derive(Debug)]
struct Hold {
    lock: Option<StoreLock>,
    identity: Option<(u64, u64)>,
}

impl Attachment {
    pub(super) fn new(lock: Option<StoreLock>) -> Attachment {
        let identity = lock.as_ref().and_then(|l| file_identity(l.file()));
        Attachment {
            attached: AtomicBool::new(true),
            state: AtomicU8::new(StoreState::Ok.code()),
            outages: AtomicU64::new(0),
            hold: Mutex::new(Hold { lock, identity }),
        }
    }

    pub(super) fn is_attached(&self) -> bool {
        self.attached.load(Ordering::Acquire)
    }

    fn hold(&self) -> std::sync::MutexGuard<'_, Hold> {
        self.hold.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn file_identity(file: &std::fs::File) -> Option<(u64, u64)> {
    file.metadata().ok().map(|m| (m.dev(), m.ino()))
}

fn path_identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The state a failed write or sync puts the store in.
fn state_of(error: &std::io::Error) -> StoreState {
    match error.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => StoreState::Full,
        Some(libc::EROFS) => StoreState::ReadOnly,
        Some(libc::ENOENT | libc::ENODEV | libc::ENXIO | libc::ESTALE) => StoreState::Missing,
        _ => StoreState::IoError,
    }
}

impl Store {
    /// The store's status: `Ok` while attached, otherwise why it is detached.
    pub fn status(&self) -> StoreState {
        let code = self.inner.attach.state.load(Ordering::Acquire);
        StoreState::from_code(u64::from(code)).unwrap_or(StoreState::IoError)
    }

    /// How many times the store detached since it was opened.
    pub fn outages(&self) -> u64 {
        self.inner.attach.outages.load(Ordering::Relaxed)
    }

    /// Whether writers may write.
    pub(super) fn is_attached(&self) -> bool {
        self.inner.attach.is_attached()
    }

    /// A writer's write or sync failed with `error`: the store detaches until a check finds it
    /// writable again.
    pub(super) fn write_failed(&self, error: &std::io::Error) {
        self.detach(state_of(error), &error.to_string());
    }

    /// Looks at the store's directory (blocking; about once a second): detaches when the
    /// directory is no longer this store or its file system went read-only, and attaches again
    /// (rescanning the slots) when a detached store is back and writable. Returns the status.
    pub fn check(&self) -> StoreState {
        if !self.is_writable() {
            return self.status();
        }
        let marker_path = self.inner.dir.join(MARKER_FILE);
        if self.is_attached() {
            let same = {
                let hold = self.inner.attach.hold();
                hold.identity.is_some() && path_identity(&marker_path) == hold.identity
            };
            if !same {
                self.detach(
                    StoreState::Missing,
                    "the directory no longer holds this store (unmounted, renamed or replaced)",
                );
            } else if super::read_only_fs(&self.inner.dir) {
                self.detach(StoreState::ReadOnly, "the file system is read-only");
            }
        } else if let Err(error) = self.try_attach() {
            tracing::debug!(dir = %self.inner.dir.display(), %error, "store still unavailable");
        }
        self.status()
    }

    fn set_state(&self, state: StoreState) {
        self.inner
            .attach
            .state
            .store(state.code(), Ordering::Release);
    }

    fn detach(&self, state: StoreState, why: &str) {
        let attach = &self.inner.attach;
        let mut hold = attach.hold();
        self.set_state(state);
        if !attach.attached.swap(false, Ordering::AcqRel) {
            return;
        }
        attach.outages.fetch_add(1, Ordering::Relaxed);
        // Writers drop their open segments (their descriptors may point into a directory or
        // file system that is no longer the store) at their next GOP.
        self.ring().generation += 1;
        hold.lock = None;
        hold.identity = None;
        tracing::error!(
            dir = %self.inner.dir.display(),
            status = state.name(),
            "store unavailable: {why}; recording stops (pre-roll stays in RAM) and resumes by \
             itself when the store is back"
        );
    }

    /// Attaches again if the directory holds this store and takes a write.
    fn try_attach(&self) -> Result<(), StoreError> {
        let dir = &self.inner.dir;
        let marker = match init::read_marker(dir) {
            Ok(Some(marker))
                if marker.store_id == self.inner.marker.store_id
                    && marker.state == MarkerState::Ready =>
            {
                marker
            }
            Ok(_) => {
                self.set_state(StoreState::Missing);
                return Ok(());
            }
            Err(error) => {
                self.set_state(StoreState::Missing);
                return Err(error);
            }
        };
        let marker_path = dir.join(MARKER_FILE);
        let lock = StoreLock::acquire(&marker_path)?;
        // A write that reaches the disk: the marker's own bytes, rewritten in place and synced
        // (a failing card or a read-only file system refuses it).
        let probe = lock
            .file()
            .write_all_at(&marker.encode(), 0)
            .and_then(|()| lock.file().sync_data());
        if let Err(error) = probe {
            self.set_state(state_of(&error));
            return Err(StoreError::io(&marker_path, "rewrite marker", error));
        }
        check_slot_files(dir, &marker)?;
        let (slots, findings) = recover(dir, &marker, OpenCheck::Newest, true)?;
        for finding in &findings {
            tracing::warn!(slot = finding.slot, problem = %finding.problem, repair = ?finding.repair, "recovery on attaching");
        }
        let identity = file_identity(lock.file());
        let attach = &self.inner.attach;
        let mut hold = attach.hold();
        {
            let mut ring = self.ring();
            ring.generation += 1;
            let max_segment = slots
                .iter()
                .filter_map(|s| s.header.as_ref().map(|h| h.segment_id))
                .max()
                .unwrap_or(0);
            let max_event = slots
                .iter()
                .flat_map(|s| s.events.iter().map(|r| r.event.id))
                .max()
                .unwrap_or(0);
            ring.next_segment_id = ring.next_segment_id.max(max_segment + 1);
            ring.next_event_id = ring.next_event_id.max(max_event + 1);
            ring.slots = slots;
        }
        hold.lock = Some(lock);
        hold.identity = identity;
        self.set_state(StoreState::Ok);
        attach.attached.store(true, Ordering::Release);
        tracing::info!(dir = %dir.display(), "store available again; recording resumes");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{gop, new_store, options, params};
    use super::*;

    #[test]
    fn a_store_renamed_away_detaches_and_attaches_again_when_it_is_back() {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("store");
        std::fs::create_dir(&dir).unwrap();
        new_store(&dir, 4);
        let store = Store::open(&dir).unwrap();
        let p = params(320);
        let mut writer = store.camera_writer("front", options(60)).unwrap();
        writer.append(&gop(&p, 0)).unwrap();
        assert_eq!(store.check(), StoreState::Ok);

        let away = work.path().join("away");
        std::fs::rename(&dir, &away).unwrap();
        assert_eq!(store.check(), StoreState::Missing);
        assert!(matches!(
            writer.append(&gop(&p, 1)),
            Err(StoreError::Unavailable {
                status: "missing",
                ..
            })
        ));
        // Nothing is created where the store was.
        assert!(!dir.exists());
        assert_eq!(store.check(), StoreState::Missing);

        std::fs::rename(&away, &dir).unwrap();
        assert_eq!(store.check(), StoreState::Ok);
        writer.append(&gop(&p, 2)).unwrap();
        writer.close().unwrap();
        assert_eq!(store.outages(), 1);
        // The segment cut by the outage and the one after it, each fragment where it was.
        let walls: Vec<Vec<i64>> = store
            .segments()
            .iter()
            .map(|s| s.fragments.iter().map(|f| f.wall_ms).collect())
            .collect();
        assert_eq!(walls, vec![vec![1_000_000], vec![1_002_000]]);
    }

    #[test]
    fn a_failed_write_detaches_until_a_write_works_again() {
        let work = tempfile::tempdir().unwrap();
        new_store(work.path(), 4);
        let store = Store::open(work.path()).unwrap();
        store.write_failed(&std::io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(store.status(), StoreState::IoError);
        let mut writer = store.camera_writer("front", options(60)).unwrap();
        assert!(writer.append(&gop(&params(320), 0)).is_err());
        // The marker takes its probe write: the store is back.
        assert_eq!(store.check(), StoreState::Ok);
        writer.append(&gop(&params(320), 1)).unwrap();
        store.write_failed(&std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(store.status(), StoreState::Full);
        assert_eq!(store.outages(), 2);
    }
}
