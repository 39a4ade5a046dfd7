//! The store lock: an exclusive, non-blocking `flock` on the marker file, held for as long as a
//! [`StoreLock`] lives. The kernel drops it when the process dies, so a crash never leaves a
//! stale lock behind (no lock file to create or clean up).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::StoreError;

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
        // SAFETY: flock only reads the descriptor number, which `file` keeps open.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            return Err(if error.kind() == std::io::ErrorKind::WouldBlock {
                StoreError::Locked {
                    path: path.to_owned(),
                }
            } else {
                StoreError::io(path, "flock", error)
            });
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
