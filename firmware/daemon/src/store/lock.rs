//! The store lock: an exclusive, non-blocking `flock` on the marker file, held for as long as a
//! [`StoreLock`] lives. The kernel drops it when the process dies, so a crash never leaves a
//! stale lock behind (no lock file to create or clean up).
//!
//! A lock held by another process fails at once, except for a short retry window: while any
//! thread of a process spawns a child, the child holds copies of the parent's descriptors (and so
//! its `flock`s) until it execs, so a store closed and reopened in a process that spawns programs
//! can briefly see its own old lock.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::StoreError;

/// How long a contended lock is retried: far longer than a fork-to-exec window, far shorter than
/// anything a person would notice.
const LOCK_RETRY_WINDOW: Duration = Duration::from_millis(500);
/// Pause between attempts within the window.
const LOCK_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// An exclusive lock on a store; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
    path: PathBuf,
}

impl StoreLock {
    /// Takes the lock on `path` (the marker) or fails with [`StoreError::Locked`] at once.
    pub fn acquire(path: &Path) -> Result<StoreLock, StoreError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StoreError::io(path, "open marker for locking", e))?;
        let started = Instant::now();
        loop {
            // SAFETY: flock only reads the descriptor number, which `file` keeps open.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::WouldBlock {
                return Err(StoreError::io(path, "flock", error));
            }
            if started.elapsed() >= LOCK_RETRY_WINDOW {
                return Err(StoreError::Locked {
                    path: path.to_owned(),
                });
            }
            std::thread::sleep(LOCK_RETRY_PAUSE);
        }
        Ok(StoreLock {
            file,
            path: path.to_owned(),
        })
    }

    /// The locked marker file, for rewriting it in place.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
